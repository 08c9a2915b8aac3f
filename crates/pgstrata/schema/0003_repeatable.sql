-- Repeatable scripts (Flyway's R__ files, the functions folder of the up/down layout) and adoption from other tools.
-- Numbered 0003 to leave 0002 to managed code.

-- migrate:up
CREATE TABLE strata.repeatable (
    package         text NOT NULL REFERENCES strata.package (name) ON UPDATE CASCADE,
    name            text NOT NULL,
    path            text NOT NULL,
    checksum        text NOT NULL,
    sql             text NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    applied_by      text NOT NULL DEFAULT current_user,
    duration_ms     double precision NOT NULL DEFAULT 0,
    strata_version  text NOT NULL,
    run_id          bigint REFERENCES strata.run (id),
    -- 'strata' when Strata ran it, 'adopted:flyway' when recorded from flyway_schema_history.
    source          text NOT NULL DEFAULT 'strata',
    PRIMARY KEY (package, name)
);
COMMENT ON TABLE strata.repeatable IS 'Repeatable scripts, re-run whenever their text changes: the text and checksum last applied.';

-- migrate:down
DROP TABLE strata.repeatable;
