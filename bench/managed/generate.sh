#!/usr/bin/env bash
# Writes the managed-code benchmark package (issue 3, "Performance"):
#
#   DIR/pkg/strata.toml, one migration (a table of 1,000 rows);
#   DIR/pkg/code_NN.sql     FUNCTIONS functions in chains of 20 (each calls the previous one: LANGUAGE sql bodies,
#                           every fourth PL/pgSQL) and VIEWS views in chains of 3 (views on views on functions),
#                           shuffled across FILES files (fixed seed, so runs are comparable);
#   DIR/pkg/tests_NN_test.sql  TESTS test functions (function results and view row counts), 100 per file;
#   DIR/floor.sql           the same statements in dependency order, for `psql -1 -f`;
#   DIR/tests_floor.sql     the test functions created and called in one psql session, then rolled back.
#
# Usage: bench/managed/generate.sh DIR [FUNCTIONS] [VIEWS] [FILES] [TESTS]    (defaults: 2000 300 50 1000)
set -euo pipefail

dir=$1
functions=${2:-2000}
views=${3:-300}
files=${4:-50}
tests=${5:-1000}
chain=20
pkg="$dir/pkg"
mkdir -p "$pkg/migrations"

cat >"$pkg/strata.toml" <<'EOF'
name = "bench/managed"
schema = "bm"
migrations = [
    "migrations/0001_items.sql",
]
EOF
items="CREATE TABLE item (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO item SELECT g, g % 100 FROM generate_series(1, 1000) AS g;"
printf '%s\n' "$items" >"$pkg/migrations/0001_items.sql"

# Every managed statement on one line, in dependency order: functions chain by chain, then views level by level.
awk -v functions="$functions" -v views="$views" -v chain="$chain" 'BEGIN {
    chains = int(functions / chain)
    for (i = 1; i <= functions; i++) {
        c = int((i - 1) / chain); p = (i - 1) % chain
        if (p == 0)
            printf "CREATE FUNCTION bm.f_%04d(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT x + %d $$;\n", i, c
        else if (i % 4 == 0)
            printf "CREATE FUNCTION bm.f_%04d(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN bm.f_%04d(x) + 1; END $$;\n", i, i - 1
        else
            printf "CREATE FUNCTION bm.f_%04d(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT bm.f_%04d(x) + 1 $$;\n", i, i - 1
    }
    # Views in chains of three: on a chain tip; on that view and a function in the middle of another chain; on
    # that view again.
    for (v = 1; v <= views; v++) {
        level = (v - 1) % 3
        k = int((v - 1) / 3)
        if (level == 0)
            printf "CREATE VIEW bm.v_%03d AS SELECT id, n, bm.f_%04d(n) AS a0 FROM bm.item;\n", v, (k % chains) * chain + chain
        else if (level == 1)
            printf "CREATE VIEW bm.v_%03d AS SELECT v.*, bm.f_%04d(v.a0) AS a1 FROM bm.v_%03d AS v;\n", v, ((k + 1) % chains) * chain + chain / 2, v - 1
        else
            printf "CREATE VIEW bm.v_%03d AS SELECT v.*, v.a0 + v.a1 AS a2 FROM bm.v_%03d AS v WHERE v.n < 50;\n", v, v - 1
    }
}' >"$dir/statements.sql"

{
    echo "CREATE SCHEMA bm;"
    echo "SET search_path = bm, public;"
    printf '%s\n' "$items"
    cat "$dir/statements.sql"
} >"$dir/floor.sql"

# Shuffle the statements across the files (and within them) with a fixed seed.
awk -v files="$files" -v pkg="$pkg" 'BEGIN { srand(42) }
{ printf "%d\t%.9f\t%s\n", 1 + int(rand() * files), rand(), $0 }' "$dir/statements.sql" |
    sort -t $'\t' -k1,1n -k2,2n |
    awk -F '\t' -v pkg="$pkg" '{ printf "%s\n\n", $3 > sprintf("%s/code_%02d.sql", pkg, $1) }'

# Tests: function results (expected value computed here) and view row counts.
awk -v tests="$tests" -v functions="$functions" -v views="$views" -v chain="$chain" -v pkg="$pkg" \
    -v floor="$dir/tests_floor.sql" 'BEGIN {
    chains = int(functions / chain)
    print "BEGIN;" > floor
    for (t = 1; t <= tests; t++) {
        file = sprintf("%s/tests_%02d_test.sql", pkg, int((t - 1) / 100))
        if (t % 10 == 0) {
            v = 1 + 3 * (int(t / 10) % int(views / 3))
            sql = sprintf("CREATE FUNCTION bm.t_%04d_test() RETURNS void LANGUAGE plpgsql AS $$ BEGIN IF (SELECT count(*) FROM bm.v_%03d) <> 1000 THEN RAISE EXCEPTION %sv_%03d has %% rows%s, (SELECT count(*) FROM bm.v_%03d); END IF; END $$;", t, v, "\047", v, "\047", v)
        } else {
            c = (t - 1) % chains; p = int((t - 1) / chains) % chain
            i = c * chain + p + 1
            want = 1 + c + p
            sql = sprintf("CREATE FUNCTION bm.t_%04d_test() RETURNS void LANGUAGE plpgsql AS $$ BEGIN IF bm.f_%04d(1) <> %d THEN RAISE EXCEPTION %sf_%04d(1) = %%, want %d%s, bm.f_%04d(1); END IF; END $$;", t, i, want, "\047", i, want, "\047", i)
        }
        printf "%s\n\n", sql > file
        print sql > floor
        calls[t] = sprintf("SELECT bm.t_%04d_test();", t)
    }
    for (t = 1; t <= tests; t++) print calls[t] > floor
    print "ROLLBACK;" > floor
}'
