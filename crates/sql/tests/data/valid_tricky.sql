-- Every statement here is valid PostgreSQL 15; the server test sends them one by one, so a wrong
-- boundary shows up as a server error.
/* a ; comment /* nested ; */ still ; comment */
CREATE SCHEMA "odd;schema";
CREATE TABLE "odd;schema"."my;table" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "col;umn" text DEFAULT 'it''s; fine',
    e text DEFAULT E'back\'slash; \\ still string',
    u text DEFAULT U&'\0041;',
    d text DEFAULT $d$ $$ ; $$ $d$
);
CREATE VIEW "odd;schema".v AS SELECT id, "col;umn" FROM "odd;schema"."my;table";
CREATE FUNCTION "odd;schema".add(a int, b int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
    SELECT CASE WHEN a > 0 THEN a + b ELSE b END;
END;
CREATE PROCEDURE "odd;schema".p() LANGUAGE sql
BEGIN ATOMIC
    INSERT INTO "odd;schema"."my;table" ("col;umn") VALUES ('from p;');
    INSERT INTO "odd;schema"."my;table" ("col;umn") VALUES (CASE WHEN true THEN 'x;' END);
END;
CALL "odd;schema".p();
CREATE OR REPLACE FUNCTION "odd;schema".touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW."col;umn" := NEW."col;umn" || $$;$$; -- comment with ;
    RETURN NEW;
END
$fn$;
CREATE TRIGGER touch BEFORE INSERT ON "odd;schema"."my;table"
    FOR EACH ROW EXECUTE FUNCTION "odd;schema".touch();
CREATE RULE r AS ON INSERT TO "odd;schema".v DO INSTEAD (
    INSERT INTO "odd;schema"."my;table" ("col;umn") VALUES ('a;');
    INSERT INTO "odd;schema"."my;table" ("col;umn") VALUES ('b;')
);
INSERT INTO "odd;schema".v (id, "col;umn") VALUES (1, 'ignored');
DO $$ BEGIN RAISE NOTICE 'semi;colon'; END $$;
DO LANGUAGE plpgsql 'BEGIN PERFORM 1; END';
COMMENT ON TABLE "odd;schema"."my;table" IS 'Rows; many';
WITH moved AS (DELETE FROM "odd;schema"."my;table" WHERE "col;umn" = 'a;;' RETURNING *)
    SELECT count(*) FROM moved;
SELECT "odd;schema".add(1, 2)   -- no semicolon at the end, a trailing comment
