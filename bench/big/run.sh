#!/usr/bin/env bash
# One big migration: STATEMENTS small INSERTs in a single file (default 1.9 million, about 57 MB, the size of a data
# dump), applied by `psql -X -q -1 -f` and by `strata up`, each into a fresh database. Prints wall time and peak
# memory (/usr/bin/time -v's "Maximum resident set size") of both.
#
# Goals (issue 16): strata's time <= 1.3 x psql's; strata's peak memory <= 3 x the file's size.
#
# Usage: bench/big/run.sh [STATEMENTS] [RUNS]       (defaults: 1900000 statements, 2 runs each, alternating)
# Needs: the PostgreSQL server binaries (PG_BINDIR, pg_config --bindir, or /usr/lib/postgresql/*/bin), cargo, and
# /usr/bin/time (GNU time). STRATA_BIN=path uses that binary instead of building one.
set -euo pipefail

statements=${1:-1900000}
runs=${2:-2}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/../lib.sh"

bench_pg_bindir
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (Debian: apt-get install time)" >&2; exit 2; }

bench_strata

bench_workdir big
"${as_server[@]}" "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
"${as_server[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
    -o "-k $work -c listen_addresses='' -p $port -c shared_buffers=128MB" start >/dev/null
url() { echo "postgresql://postgres@/$1?host=$work&port=$port"; }
psql_admin() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -d "$(url postgres)" "$@"; }

# --- the file ---------------------------------------------------------------------------------------------------------
pkg="$work/pkg"
mkdir -p "$pkg/migrations"
printf 'name = "bench/big"\nschema = "big"\nmigrations = ["migrations/0001_load.sql"]\n' >"$pkg/strata.toml"
awk -v n="$statements" 'BEGIN {
    print "CREATE TABLE item (id bigint PRIMARY KEY, v text);"
    for (i = 1; i < n; i++) printf "INSERT INTO item VALUES (%d, %d);\n", i, i % 997
}' >"$pkg/migrations/0001_load.sql"
{
    echo "CREATE SCHEMA big;"
    echo "SET search_path = big, public;"
    cat "$pkg/migrations/0001_load.sql"
} >"$work/floor.sql"
bytes=$(stat -c %s "$pkg/migrations/0001_load.sql")

# --- runs -------------------------------------------------------------------------------------------------------------
for ((r = 1; r <= runs; r++)); do
    psql_admin -c "CREATE DATABASE floor_$r" -c "CREATE DATABASE strata_$r" >/dev/null
done
psql_admin -c CHECKPOINT >/dev/null
measure() { # label, command…: appends "label seconds kilobytes"
    local label=$1
    shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null
    echo "$label $(cat "$work/time")" >>"$work/results"
}
: >"$work/results"
for ((r = 1; r <= runs; r++)); do
    measure psql "$bindir/psql" -X -q -1 -v ON_ERROR_STOP=1 -d "$(url "floor_$r")" -f "$work/floor.sql"
    measure strata sh -c "cd '$pkg' && '$strata' -q --database-url '$(url "strata_$r")' up"
done
count=$("$bindir/psql" -X -A -t -d "$(url "strata_$runs")" -c "SELECT count(*) FROM big.item")
[ "$count" = "$((statements - 1))" ] || { echo "strata loaded $count rows, expected $((statements - 1))" >&2; exit 1; }

best() { awk -v l="$1" -v c="$2" '$1 == l { v = $c; if (m == "" || v < m) m = v } END { print m }' "$work/results"; }
p_s=$(best psql 2); s_s=$(best strata 2); p_kb=$(best psql 3); s_kb=$(best strata 3)
echo
echo "Strata big-file benchmark: $statements statements, $((bytes / 1000000)) MB, $("$bindir/postgres" --version)"
echo "$(nproc) CPUs, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "every run (label, seconds, peak RSS kB):"
sed 's/^/  /' "$work/results"
echo
printf '%-26s %12s %16s\n' "" "best time (s)" "best peak RSS (MB)"
printf '%-26s %12s %16s\n' "psql -X -q -1 -f" "$p_s" "$((p_kb / 1024))"
printf '%-26s %12s %16s\n' "strata up" "$s_s" "$((s_kb / 1024))"
awk -v p="$p_s" -v s="$s_s" -v kb="$s_kb" -v bytes="$bytes" 'BEGIN {
    printf "strata / psql time = %.2fx (goal <= 1.30x): %s\n", s / p, (s / p <= 1.3) ? "met" : "MISSED"
    m = kb * 1024 / bytes
    printf "strata peak memory = %.2fx the file (goal <= 3x): %s\n", m, (m <= 3) ? "met" : "MISSED"
}'
