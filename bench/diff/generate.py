#!/usr/bin/env python3
"""Generate the declarative-schema benchmark's schemas (bench/diff/run.sh).

Writes into OUT_DIR:
  a.sql         schema `bm`: 1,000 tables (5-20 columns, 1-2 indexes each, foreign keys to earlier tables),
                200 views (50 of them on other views), 300 functions (SQL and PL/pgSQL)
  b.sql         the same with 1% of the objects changed (30 changes: columns added, column types widened, indexes
                added, views and functions changed, tables added)
  migration_up.sql   the package migration's up part (the floor replays it)
  pkg/          a Strata package: migrations/0001_base.sql is a.sql; schema/*.sql is b.sql cut into 10 files
Deterministic (fixed seed).
"""
import os
import random
import sys

out = sys.argv[1]
rng = random.Random(20261206)
TYPES = ["integer", "bigint", "text", "varchar(50)", "numeric(10,2)", "boolean", "timestamptz", "date", "jsonb", "uuid"]

tables = []  # (name, [(col, type)], fk_target or None, [index column lists])
for i in range(1000):
    n = rng.randint(4, 19)
    cols = [(f"c{j}", rng.choice(TYPES)) for j in range(n)]
    fk = rng.randrange(i) if i > 0 and rng.random() < 0.3 else None
    idx = [[rng.choice(cols)[0]] for _ in range(rng.randint(1, 2))]
    tables.append((f"t{i:04d}", cols, fk, idx))

views = []  # (name, sql)
for v in range(200):
    if v >= 150:
        base = f"v{rng.randrange(150):03d}"
        views.append((f"v{v:03d}", f"SELECT id, c0 FROM bm.{base} WHERE id > {v}"))
    else:
        t = tables[rng.randrange(1000)]
        cols = ", ".join(c for c, _ in t[1][:3])
        views.append((f"v{v:03d}", f"SELECT id, {cols} FROM bm.{t[0]}"))

functions = []  # (name, sql body)
for f in range(300):
    t = tables[rng.randrange(1000)][0]
    if f % 2 == 0:
        functions.append((f"f{f:03d}", f"CREATE FUNCTION bm.f{f:03d}(x bigint) RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) + x FROM bm.{t} $$;"))
    else:
        functions.append((f"f{f:03d}", f"CREATE FUNCTION bm.f{f:03d}(x bigint) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN RETURN x * {f}; END $$;"))

# 1% of the objects change in b.
changes = rng.sample(range(1000), 20)
add_column = set(changes[:8])
widen = set(changes[8:12])
new_index = set(changes[12:18])
changed_views = set(rng.sample(range(150), 4))
changed_functions = set(rng.sample(range(300), 6))


def render(version):
    parts = ["CREATE SCHEMA IF NOT EXISTS bm;"]
    for i, (name, cols, fk, idx) in enumerate(tables):
        cols = list(cols)
        if version == "b" and i in widen:
            cols = [(c, "bigint" if t == "integer" else "text" if t == "varchar(50)" else t) for c, t in cols]
            cols[0] = (cols[0][0], "text" if cols[0][1] in ("varchar(50)",) else cols[0][1])
        defs = ["id bigint PRIMARY KEY"] + [f"{c} {t}" for c, t in cols]
        if fk is not None:
            defs.append(f"ref_id bigint REFERENCES bm.{tables[fk][0]} (id)")
        if version == "b" and i in add_column:
            defs.append("added_at timestamptz NOT NULL DEFAULT now()")
        parts.append(f"CREATE TABLE bm.{name} (\n    " + ",\n    ".join(defs) + "\n);")
        for k, cs in enumerate(idx):
            parts.append(f"CREATE INDEX {name}_i{k} ON bm.{name} ({', '.join(cs)});")
        if version == "b" and i in new_index:
            parts.append(f"CREATE INDEX {name}_new ON bm.{name} (id, {cols[-1][0]});")
    if version == "b":
        parts.append("CREATE TABLE bm.extra1 (id bigint PRIMARY KEY, note text);")
        parts.append("CREATE TABLE bm.extra2 (id bigint PRIMARY KEY, extra1_id bigint REFERENCES bm.extra1);")
    for v, (name, sql) in enumerate(views):
        if version == "b" and v in changed_views:
            sql = sql + " AND true" if " WHERE " in sql else sql + " WHERE id IS NOT NULL"
        parts.append(f"CREATE VIEW bm.{name} AS {sql};")
    for f, (name, sql) in enumerate(functions):
        if version == "b" and f in changed_functions:
            sql = sql.replace("$$ SELECT", "$$ SELECT 0 +").replace("BEGIN RETURN", "BEGIN RETURN 1 +")
        parts.append(sql)
    return parts


os.makedirs(os.path.join(out, "pkg", "migrations"), exist_ok=True)
os.makedirs(os.path.join(out, "pkg", "schema"), exist_ok=True)
a, b = render("a"), render("b")
with open(os.path.join(out, "a.sql"), "w") as fh:
    fh.write("\n".join(a) + "\n")
with open(os.path.join(out, "b.sql"), "w") as fh:
    fh.write("\n".join(b) + "\n")
with open(os.path.join(out, "migration_up.sql"), "w") as fh:
    fh.write("\n".join(a[1:]) + "\n")
with open(os.path.join(out, "pkg", "migrations", "0001_base.sql"), "w") as fh:
    fh.write("-- migrate:up\n" + "\n".join(a[1:]) + "\n-- migrate:down\nDROP SCHEMA bm CASCADE;\n")
chunk = (len(b) + 9) // 10
for k in range(10):
    with open(os.path.join(out, "pkg", "schema", f"part_{k}.sql"), "w") as fh:
        fh.write("-- strata:ignore (declared schema)\n" + "\n".join(b[1 + k * chunk:1 + (k + 1) * chunk]) + "\n")
with open(os.path.join(out, "pkg", "strata.toml"), "w") as fh:
    fh.write('name = "bench/diff"\nschema = "bm"\nmigrations = ["migrations/0001_base.sql"]\n')
print(f"{len(a)} statements in a, {len(b)} in b", file=sys.stderr)
