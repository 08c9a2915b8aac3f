-- Tenant schemas: one package deployed into many schemas of one database (`strata up --tenant-schemas`). Each
-- schema has its own history, recorded under the package name qualified by the schema (`app@tenant_1`: package
-- names cannot contain `@`), so strata.package, strata.migration, strata.managed_object and strata.repeatable keep
-- their keys. A deploy into one schema holds that schema's lock (other schemas deploy in parallel) and says which
-- schema its run was for, so each tenant's last run and error can be found.

-- migrate:up
ALTER TABLE strata.run ADD COLUMN schema_name text;
COMMENT ON COLUMN strata.run.schema_name IS 'The tenant schema the run deployed into (NULL: the database''s packages).';

-- migrate:down
ALTER TABLE strata.run DROP COLUMN schema_name;
