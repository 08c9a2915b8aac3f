CREATE FUNCTION current_tenant() RETURNS text LANGUAGE sql STABLE AS $$ SELECT current_setting('app.tenant', true) $$;
CREATE TABLE t (id int PRIMARY KEY, tenant text DEFAULT current_tenant());
ALTER TABLE t ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON t USING (tenant = current_tenant()) WITH CHECK (tenant = current_tenant());
