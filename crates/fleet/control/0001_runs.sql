-- One row per fleet run (`strata up --targets/--targets-query/--tenant-schemas`), and one per target of it.

-- migrate:up
CREATE TABLE run (
    id              text PRIMARY KEY,
    command         text NOT NULL,
    -- Where the targets came from: the targets file, the query, the tenant schema pattern.
    source          text NOT NULL,
    packages        text[] NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- The end of the latest attempt (a resumed run has several).
    finished_at     timestamptz,
    attempts        integer NOT NULL DEFAULT 1,
    os_user         text,
    strata_version  text NOT NULL
);
COMMENT ON TABLE run IS 'Fleet runs: one deploy to many databases or tenant schemas.';

CREATE TABLE target (
    run_id       text NOT NULL REFERENCES run (id) ON DELETE CASCADE,
    target       text NOT NULL,
    -- The target's place in the run's order (canaries first).
    position     integer NOT NULL,
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'abandoned', 'skipped')),
    attempt      integer,
    started_at   timestamptz,
    finished_at  timestamptz,
    duration_ms  double precision,
    -- Migrations applied by the attempt that succeeded.
    migrations   integer,
    error        text,
    PRIMARY KEY (run_id, target)
);
COMMENT ON TABLE target IS 'The outcome of each target of a fleet run (the latest attempt''s).';

-- migrate:down
DROP TABLE target;
DROP TABLE run;
