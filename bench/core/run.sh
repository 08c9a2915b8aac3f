#!/usr/bin/env bash
# Benchmark of Strata's core deploy path (issue 2, "Performance").
#
# Starts a throwaway PostgreSQL cluster (fsync on, as in production; Unix socket only), generates a package of
# 1,000 small migrations (tables, indexes, inserts, each with a down section), and prints wall times on that server:
#
#   floor       psql -X -1 -f of the same up SQL, concatenated        (fresh database each run)
#   fresh       strata up from an empty database                      (fresh database each run)
#   no-op       strata up with all 1,000 migrations applied           (median of several runs)
#
# Goals: fresh <= 1.3 x floor; no-op < 100 ms.
#
# Usage: bench/core/run.sh [MIGRATIONS] [RUNS]       (defaults: 1000 migrations, 5 runs each)
# Floor and fresh runs alternate, so load from other processes hits both alike; the table shows medians and the
# best run of each (on a busy machine the best runs are the better estimate of the ratio).
# Needs: the PostgreSQL server binaries (PG_BINDIR, pg_config --bindir, or /usr/lib/postgresql/*/bin), cargo.
# Run as root (the cluster then runs as the `postgres` user) or as an ordinary user.
set -euo pipefail

migrations=${1:-1000}
runs=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/../lib.sh"

# --- tools --------------------------------------------------------------------------------------------------------
bench_pg_bindir

bench_strata

# --- cluster --------------------------------------------------------------------------------------------------------
bench_workdir core

"${as_server[@]}" "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
# fsync and synchronous_commit stay on (the defaults), as in production.
"${as_server[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
    -o "-k $work -c listen_addresses='' -p $port -c shared_buffers=128MB" start >/dev/null
url() { echo "postgresql://postgres@/$1?host=$work&port=$port"; }
psql_admin() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -d "$(url postgres)" "$@"; }
# Every fresh database is created before any deploy is timed, and none is dropped: on ext4 without a journal (this
# VM's disk), creating a file steps over each inode freed in the last seconds, and a DROP DATABASE frees thousands,
# which slowed every CREATE TABLE of the next deploy (a 1,000-migration floor: 2.8-3.6 s right after a drop,
# 1.0-1.2 s without one).
create_dbs() {
    local db
    for db in "$@"; do psql_admin -c "CREATE DATABASE $db" >/dev/null; done
    psql_admin -c CHECKPOINT >/dev/null
}

# --- the package ----------------------------------------------------------------------------------------------------
"$here/generate.sh" "$work" "$migrations"
pkg="$work/pkg"
floor_sql="$work/floor.sql"
statements=$(grep -c ';$' "$floor_sql")

# --- measurements ---------------------------------------------------------------------------------------------------
now() { echo "$EPOCHREALTIME"; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

floor_times=()
fresh_times=()
for ((r = 1; r <= runs; r++)); do
    create_dbs "floor_db_$r" "strata_db_$r"
done
for ((r = 1; r <= runs; r++)); do
    start=$(now)
    "$bindir/psql" -X -q -1 -v ON_ERROR_STOP=1 -d "$(url "floor_db_$r")" -f "$floor_sql" >/dev/null
    floor_times+=("$(ms_since "$start")")

    start=$(now)
    (cd "$pkg" && "$strata" -q --database-url "$(url "strata_db_$r")" up)
    fresh_times+=("$(ms_since "$start")")
done
strata_db="strata_db_$runs"

applied=$("$bindir/psql" -X -A -t -d "$(url "$strata_db")" -c "SELECT count(*) FROM strata.migration WHERE package = 'bench/core'")
[ "$applied" = "$migrations" ] || { echo "strata applied $applied migrations, expected $migrations" >&2; exit 1; }

noop_times=()
for ((r = 1; r <= runs * 2 + 1; r++)); do
    start=$(now)
    (cd "$pkg" && "$strata" -q --database-url "$(url "$strata_db")" up)
    noop_times+=("$(ms_since "$start")")
done

floor=$(printf '%s\n' "${floor_times[@]}" | median)
fresh=$(printf '%s\n' "${fresh_times[@]}" | median)
noop=$(printf '%s\n' "${noop_times[@]}" | median)
floor_min=$(printf '%s\n' "${floor_times[@]}" | sort -n | head -n 1)
fresh_min=$(printf '%s\n' "${fresh_times[@]}" | sort -n | head -n 1)
noop_min=$(printf '%s\n' "${noop_times[@]}" | sort -n | head -n 1)
version=$("$bindir/postgres" --version)

echo
echo "Strata core benchmark: $migrations migrations ($statements statements), $version, fsync on, Unix socket"
echo "$(nproc) CPUs, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "every run, ms: floor ${floor_times[*]} | fresh ${fresh_times[*]} | no-op ${noop_times[*]}"
echo
printf '%-44s %12s %12s %14s\n' "measurement" "median (ms)" "best (ms)" "goal"
printf '%-44s %12s %12s %14s\n' "--------------------------------------------" "------------" "------------" "--------------"
printf '%-44s %12s %12s %14s\n' "floor: psql -1 -f (same up SQL, one file)" "$floor" "$floor_min" "-"
printf '%-44s %12s %12s %14s\n' "strata up, empty database" "$fresh" "$fresh_min" "<= 1.3 x floor"
printf '%-44s %12s %12s %14s\n' "strata up, nothing to do" "$noop" "$noop_min" "< 100"
printf 'RESULT %s %s\n' floor "$floor" fresh "$fresh" noop "$noop" # medians, for bench/compare.sh
echo
awk -v f="$floor" -v s="$fresh" -v n="$noop" -v fm="$floor_min" -v sm="$fresh_min" 'BEGIN {
    r = s / f
    printf "fresh / floor = %.2fx on medians, %.2fx on best runs (goal <= 1.30x): %s\n", r, sm / fm, (r <= 1.3) ? "met" : "MISSED"
    printf "no-op = %.1f ms median (goal < 100 ms): %s\n", n, (n < 100) ? "met" : "MISSED"
}'
