CREATE SCHEMA "My App";
CREATE TABLE "My App"."User Accounts" ("Id" int PRIMARY KEY, "eMail" text NOT NULL, "select" int);
CREATE INDEX "Idx Mail" ON "My App"."User Accounts" ("eMail");
CREATE VIEW "My App"."Active" AS SELECT "Id", "select" FROM "My App"."User Accounts";
CREATE TYPE "My App"."Kind" AS ENUM ('A', 'b c');
