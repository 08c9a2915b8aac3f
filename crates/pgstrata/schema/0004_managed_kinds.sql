-- Managed code may also create aggregates, operators and casts.

-- migrate:up
ALTER TABLE strata.managed_object
    DROP CONSTRAINT managed_object_kind_check,
    ADD CONSTRAINT managed_object_kind_check
        CHECK (kind IN ('function', 'procedure', 'view', 'trigger', 'comment', 'aggregate', 'operator', 'cast'));

-- migrate:down
DELETE FROM strata.managed_object WHERE kind IN ('aggregate', 'operator', 'cast');
ALTER TABLE strata.managed_object
    DROP CONSTRAINT managed_object_kind_check,
    ADD CONSTRAINT managed_object_kind_check
        CHECK (kind IN ('function', 'procedure', 'view', 'trigger', 'comment'));
