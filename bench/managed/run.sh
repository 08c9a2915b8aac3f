#!/usr/bin/env bash
# Benchmark of Strata's managed code and SQL tests (issue 3, "Performance").
#
# Starts a throwaway PostgreSQL cluster (fsync on; Unix socket only), generates a package of 2,000 functions and
# 300 views in dependency chains (views on views on functions), shuffled across 50 files, plus 1,000 tests
# (bench/managed/generate.sh), and prints wall times on that server:
#
#   floor deploy     psql -X -1 -f of the same statements in dependency order      (a fresh database each run, created beforehand)
#   first deploy     strata up --no-tests from an empty database                   (a fresh database each run, created beforehand)
#   unchanged        strata up with nothing to do (and the proof it touched nothing: the oid and xmin of every
#                    pg_proc, pg_class, pg_rewrite and pg_trigger row of the schema are unchanged)
#   one change       strata up --no-tests after changing the function at the bottom of a chain (its body; every
#                    other function of the chain and two views depend on it)
#   one change+tests strata up after the same change, tests included (they run because code changed)
#   floor tests      the test functions created and called in one psql session, rolled back
#   strata test      the tests, with Strata's savepoint per test, seeded order and tally
#
# Goals: first deploy <= 1.5 x floor; unchanged < 300 ms; one change < 500 ms; strata test <= 1.5 x floor tests.
#
# Usage: bench/managed/run.sh [RUNS]       (default 5; floor and Strata runs alternate so load hits both alike)
# Needs: the PostgreSQL server binaries (PG_BINDIR, pg_config --bindir, or /usr/lib/postgresql/*/bin), cargo.
# Run as root (the cluster then runs as the `postgres` user) or as an ordinary user.
set -euo pipefail

runs=${1:-5}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/../lib.sh"

# --- tools --------------------------------------------------------------------------------------------------------
bench_pg_bindir

bench_strata

# --- cluster --------------------------------------------------------------------------------------------------------
bench_workdir managed

"${as_server[@]}" "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
"${as_server[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
    -o "-k $work -c listen_addresses='' -p $port -c shared_buffers=128MB" start >/dev/null
url() { echo "postgresql://postgres@/$1?host=$work&port=$port"; }
psql_db() { local db=$1; shift; "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -d "$(url "$db")" "$@"; }
# Every fresh database is created before any deploy is timed, and none is dropped (as in bench/core/run.sh): on
# this VM's disk, creating a file steps over each inode freed in the last seconds, and a DROP DATABASE frees
# thousands, which slows every CREATE of the next deploy.
create_dbs() {
    local db
    for db in "$@"; do psql_db postgres -c "CREATE DATABASE $db" >/dev/null; done
    psql_db postgres -c CHECKPOINT >/dev/null
}

# --- the package ----------------------------------------------------------------------------------------------------
"$here/generate.sh" "$work"
pkg="$work/pkg"
# The function at the bottom of chain 0: what `one change` edits (an equivalent body, so the tests still pass).
change_file=$(grep -l 'FUNCTION bm.f_0001(' "$pkg"/code_*.sql)
flip() {
    if grep -q 'SELECT x + 0 \$\$' "$change_file"; then
        sed -i 's/SELECT x + 0 \$\$/SELECT 0 + x $$/' "$change_file"
    else
        sed -i 's/SELECT 0 + x \$\$/SELECT x + 0 $$/' "$change_file"
    fi
}
up() { (cd "$pkg" && "$strata" -q --database-url "$(url "$1")" up "${@:2}"); }

# --- measurements ---------------------------------------------------------------------------------------------------
now() { echo "$EPOCHREALTIME"; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
best() { sort -n | head -n 1; }
# Fingerprint of every catalog row of the schema's functions, views, rules and triggers: oid and xmin.
fingerprint() {
    psql_db "$1" -A -t -c "
        SELECT md5(string_agg(x, ',' ORDER BY x)) || ' over ' || count(*) || ' rows' FROM (
          SELECT 'p' || oid || ':' || xmin FROM pg_proc WHERE pronamespace = 'bm'::regnamespace
          UNION ALL SELECT 'c' || oid || ':' || xmin FROM pg_class WHERE relnamespace = 'bm'::regnamespace
          UNION ALL SELECT 'r' || r.oid || ':' || r.xmin FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
                     WHERE c.relnamespace = 'bm'::regnamespace
          UNION ALL SELECT 't' || t.oid || ':' || t.xmin FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                     WHERE c.relnamespace = 'bm'::regnamespace) AS rows(x)"
}

floor_times=() first_times=()
create_dbs $(for ((r = 1; r <= runs; r++)); do echo "floor_db_$r strata_db_$r"; done)
for ((r = 1; r <= runs; r++)); do
    start=$(now)
    psql_db "floor_db_$r" -1 -f "$work/floor.sql" >/dev/null
    floor_times+=("$(ms_since "$start")")

    start=$(now)
    up "strata_db_$r" --no-tests
    first_times+=("$(ms_since "$start")")
done
# The later measurements use the last run's databases.
floor_db=floor_db_$runs strata_db=strata_db_$runs
objects=$(psql_db "$strata_db" -A -t -c "SELECT count(*) FROM strata.managed_object WHERE package = 'bench/managed'")
[ "$objects" = 2300 ] || { echo "strata recorded $objects managed objects, expected 2300" >&2; exit 1; }
up "$strata_db" # the tests run once (the first deploy skipped them), so later deploys have nothing to do

before=$(fingerprint "$strata_db")
unchanged_times=()
for ((r = 1; r <= runs * 2 + 1; r++)); do
    start=$(now)
    up "$strata_db"
    unchanged_times+=("$(ms_since "$start")")
done
after=$(fingerprint "$strata_db")
[ "$before" = "$after" ] || { echo "an unchanged redeploy touched the catalog: $before vs $after" >&2; exit 1; }

change_times=() change_tests_times=()
for ((r = 1; r <= runs; r++)); do
    flip
    start=$(now)
    up "$strata_db" --no-tests
    change_times+=("$(ms_since "$start")")
    flip
    start=$(now)
    up "$strata_db"
    change_tests_times+=("$(ms_since "$start")")
done

floor_test_times=() test_times=()
for ((r = 1; r <= runs; r++)); do
    start=$(now)
    psql_db "$floor_db" -f "$work/tests_floor.sql" >/dev/null
    floor_test_times+=("$(ms_since "$start")")
    start=$(now)
    (cd "$pkg" && "$strata" -q --database-url "$(url "$strata_db")" test >/dev/null)
    test_times+=("$(ms_since "$start")")
done

m() { printf '%s\n' "$@" | median; }
b() { printf '%s\n' "$@" | best; }
floor=$(m "${floor_times[@]}") first=$(m "${first_times[@]}")
floor_b=$(b "${floor_times[@]}") first_b=$(b "${first_times[@]}")
unchanged=$(m "${unchanged_times[@]}") unchanged_b=$(b "${unchanged_times[@]}")
change=$(m "${change_times[@]}") change_b=$(b "${change_times[@]}")
change_tests=$(m "${change_tests_times[@]}") change_tests_b=$(b "${change_tests_times[@]}")
floor_tests=$(m "${floor_test_times[@]}") floor_tests_b=$(b "${floor_test_times[@]}")
tests=$(m "${test_times[@]}") tests_b=$(b "${test_times[@]}")

echo
echo "Strata managed-code benchmark: 2000 functions + 300 views in 50 files, 1000 tests; $("$bindir/postgres" --version)"
echo "fsync on, Unix socket; $(nproc) CPUs, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "unchanged redeploy touched nothing: catalog fingerprint $before, before and after $((runs * 2 + 1)) runs"
echo
printf '%-52s %12s %10s %18s\n' "measurement" "median (ms)" "best (ms)" "goal"
printf '%-52s %12s %10s %18s\n' "----------------------------------------------------" "------------" "----------" "------------------"
printf '%-52s %12s %10s %18s\n' "floor: psql -1 -f, statements in dependency order" "$floor" "$floor_b" "-"
printf '%-52s %12s %10s %18s\n' "strata up --no-tests, empty database" "$first" "$first_b" "<= 1.5 x floor"
printf '%-52s %12s %10s %18s\n' "strata up, nothing changed" "$unchanged" "$unchanged_b" "< 300"
printf '%-52s %12s %10s %18s\n' "strata up --no-tests, one function changed" "$change" "$change_b" "< 500"
printf '%-52s %12s %10s %18s\n' "strata up, one function changed (1000 tests run)" "$change_tests" "$change_tests_b" "-"
printf '%-52s %12s %10s %18s\n' "floor: tests created and called in one psql session" "$floor_tests" "$floor_tests_b" "-"
printf '%-52s %12s %10s %18s\n' "strata test" "$tests" "$tests_b" "<= 1.5 x floor"
printf 'RESULT %s %s\n' floor "$floor" first "$first" unchanged "$unchanged" change "$change" \
    change_tests "$change_tests" floor_tests "$floor_tests" tests "$tests" # medians, for bench/compare.sh
echo
awk -v f="$floor" -v s="$first" -v fb="$floor_b" -v sb="$first_b" -v u="$unchanged" -v c="$change" \
    -v ft="$floor_tests" -v t="$tests" -v ftb="$floor_tests_b" -v tb="$tests_b" 'BEGIN {
    printf "first deploy / floor = %.2fx on medians, %.2fx on best runs (goal <= 1.5x): %s\n", s / f, sb / fb, (s / f <= 1.5) ? "met" : "MISSED"
    printf "unchanged redeploy = %.1f ms median (goal < 300 ms): %s\n", u, (u < 300) ? "met" : "MISSED"
    printf "one-change redeploy = %.1f ms median (goal < 500 ms): %s\n", c, (c < 500) ? "met" : "MISSED"
    printf "strata test / floor = %.2fx on medians, %.2fx on best runs (goal <= 1.5x): %s\n", t / ft, tb / ftb, (t / ft <= 1.5) ? "met" : "MISSED"
}'
