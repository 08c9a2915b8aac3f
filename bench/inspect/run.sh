#!/usr/bin/env bash
# Operating benchmark (issue 20, "Performance"), on one throwaway server (fsync on; Unix socket only):
#
#   inspect   `strata inspect` (every check) on a database of 10,000 tables and 30,000 indexes
#             (a primary key and two indexes each): wall time of the whole command, median of RUNS; goal ≤ 2 s.
#             Also the slowest checks of the median run, from its --json report.
#   backup    `strata backup --format directory --jobs 2` against `pg_dump -Fd -j 2` alone, on a database of
#             SIZE_MB (8 tables): median of RUNS each, alternating; goal: Strata within 1.1x. Strata also counts
#             every table's rows in the dump's snapshot, reads the archive's table of contents back and
#             checksums it.
#
# Usage: bench/inspect/run.sh [RUNS] [SIZE_MB] [TABLES]     (defaults: 3 runs, 2048 MB, 10000 tables; a size or
# a table count of 0 skips that part)
# Needs: the PostgreSQL server and client binaries of one major version (PG_BINDIR, pg_config --bindir, or
# /usr/lib/postgresql/*/bin), cargo, python3 (to read the JSON report).
set -euo pipefail

runs=${1:-3}
size_mb=${2:-2048}
tables=${3:-10000}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/../lib.sh"

# --- tools ------------------------------------------------------------------------------------------------------
bench_pg_bindir pg_dump

bench_strata

# --- cluster ----------------------------------------------------------------------------------------------------
bench_workdir inspect

"${as_server[@]}" "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
# max_locks_per_transaction: a pg_dump of 10,000 tables locks them all in one transaction.
"${as_server[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
    -o "-k $work -c listen_addresses='' -p $port -c shared_buffers=256MB -c max_wal_size=4GB \
        -c max_locks_per_transaction=256" start >/dev/null
url() { echo "postgresql://postgres@/$1?host=$work&port=$port"; }
psql_db() { local db=$1; shift; "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -d "$(url "$db")" "$@"; }
now() { date +%s.%N; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# --- inspect on a large catalog ---------------------------------------------------------------------------------
inspect_part() {
echo "creating $tables tables with 3 indexes each…" >&2
psql_db postgres -c "CREATE DATABASE catalog"
psql_db catalog <<SQL
CREATE PROCEDURE make_tables(n int) LANGUAGE plpgsql AS \$\$
BEGIN
    FOR i IN 1..n LOOP
        EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, a int, b text)', i);
        EXECUTE format('CREATE INDEX ON t%s (a)', i);
        EXECUTE format('CREATE INDEX ON t%s (b)', i);
        IF i % 500 = 0 THEN COMMIT; END IF;
    END LOOP;
END \$\$;
CALL make_tables($tables);
VACUUM ANALYZE;
SQL
indexes=$(psql_db catalog -At -c "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                                   JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'")
"$strata" --database-url "$(url catalog)" inspect >/dev/null # warm the OS cache once
times=()
for r in $(seq "$runs"); do
    t0=$(now)
    "$strata" --json --database-url "$(url catalog)" inspect >"$work/inspect-$r.json"
    t1=$(now)
    times+=("$(printf '%.2f' "$(echo "$t1 - $t0" | bc)")")
done
inspect_median=$(printf '%s\n' "${times[@]}" | median)
median_run=1
for r in $(seq "$runs"); do
    [ "${times[$((r - 1))]}" = "$inspect_median" ] && median_run=$r
done
slowest=$(python3 - "$work/inspect-$median_run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
checks = sorted(r["checks"], key=lambda c: -c["duration_ms"])[:5]
print(", ".join(f'{c["check"]} {c["duration_ms"]:.0f} ms' for c in checks))
bad = [c["check"] for c in r["checks"] if c["status"] == "failed"]
if bad:
    print("FAILED: " + ", ".join(bad))
PY
)
}

# --- backup of a large database ---------------------------------------------------------------------------------
backup_part() {
echo "creating a database of about $size_mb MB…" >&2
psql_db postgres -c "CREATE DATABASE big"
rows=$((size_mb * 1024 * 1024 / 8 / 130)) # ~130 bytes per row on disk, 8 tables
for i in $(seq 8); do
    psql_db big -c "CREATE TABLE data_$i (id bigint PRIMARY KEY, n int, label text, at timestamptz);
                    INSERT INTO data_$i SELECT g, g % 1000, md5(g::text) || md5((g * $i)::text),
                                               now() - g * interval '1 second'
                      FROM generate_series(1, $rows) g;" &
    if [ $((i % 2)) = 0 ]; then wait; fi
done
wait
psql_db big -c "VACUUM ANALYZE" -c CHECKPOINT
db_size=$(psql_db big -At -c "SELECT pg_size_pretty(pg_database_size('big'))")

pg_dump_times=()
strata_times=()
for r in $(seq "$runs"); do
    rm -rf "$work/pgdump" "$work/strata" "$work/strata.manifest.json"
    sync
    t0=$(now)
    PGHOST=$work PGPORT=$port PGUSER=postgres "$bindir/pg_dump" -Fd -j 2 -f "$work/pgdump" big
    t1=$(now)
    pg_dump_times+=("$(printf '%.2f' "$(echo "$t1 - $t0" | bc)")")
    rm -rf "$work/pgdump"
    sync
    t0=$(now)
    PG_BINDIR=$bindir "$strata" -q --database-url "$(url big)" backup --format directory --jobs 2 "$work/strata"
    t1=$(now)
    strata_times+=("$(printf '%.2f' "$(echo "$t1 - $t0" | bc)")")
done
archive_size=$(du -sh "$work/strata" | cut -f1)
pg_dump_median=$(printf '%s\n' "${pg_dump_times[@]}" | median)
strata_median=$(printf '%s\n' "${strata_times[@]}" | median)
ratio=$(printf '%.3f' "$(echo "scale=4; $strata_median / $pg_dump_median" | bc)")
}

[ "$tables" = 0 ] || inspect_part
[ "$size_mb" = 0 ] || backup_part

# --- results ----------------------------------------------------------------------------------------------------
version=$("$bindir/postgres" --version | awk '{ print $3 }')
printf '\nPostgreSQL %s, %s cores, %s runs (median)\n\n' "$version" "$(nproc)" "$runs"
printf '%-58s %12s %s\n' "measurement" "seconds" "all runs"
if [ "$tables" != 0 ]; then
    printf '%-58s %12s %s\n' "strata inspect, $tables tables / $indexes indexes (goal <= 2 s)" "$inspect_median" "${times[*]}"
fi
if [ "$size_mb" != 0 ]; then
    printf '%-58s %12s %s\n' "pg_dump -Fd -j 2, database of $db_size" "$pg_dump_median" "${pg_dump_times[*]}"
    printf '%-58s %12s %s\n' "strata backup --format directory --jobs 2 (archive $archive_size)" "$strata_median" "${strata_times[*]}"
    printf '\nstrata backup / pg_dump: %sx (goal <= 1.1x)\n' "$ratio"
fi
if [ "$tables" != 0 ]; then
    printf 'slowest checks of the median inspect run: %s\n' "$slowest"
fi
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
