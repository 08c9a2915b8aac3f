#!/usr/bin/env bash
# Interop benchmark (issue 5, "Performance"): the same 1,000-migration dbmate folder applied by dbmate and by
# Strata (`strata up --dir`, reading the folder in place), on the same throwaway server (fsync on, as in
# production; Unix socket only). Prints wall times side by side:
#
#   floor   psql -1 -f of the same up SQL, concatenated         (what the server itself needs)
#   fresh   every migration applied to an empty database        (median of RUNS, fresh database each run)
#   no-op   nothing to do, all 1,000 applied                   (median of 2*RUNS+1 runs)
#
# Two migration sets: "realistic" (bench/core's: tables, indexes, inserts and updates of 50 rows; server work
# dominates) and "small" (one cheap DDL statement each: the per-migration overhead of each tool dominates).
# Goals: Strata at least 2x faster than dbmate on the fresh deploy, and never slower on the no-op run.
#
# Usage: bench/interop/run.sh [MIGRATIONS] [RUNS]     (defaults: 1000 migrations, 3 runs)
# Needs: the PostgreSQL server binaries (PG_BINDIR, pg_config --bindir, or /usr/lib/postgresql/*/bin), cargo, and
# dbmate: $DBMATE, `dbmate` on PATH, or npm (the script runs `npm install dbmate` into a cache folder).
set -euo pipefail

migrations=${1:-1000}
runs=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/../lib.sh"

# --- tools ------------------------------------------------------------------------------------------------------
bench_pg_bindir

bench_dbmate

bench_strata

# --- cluster ----------------------------------------------------------------------------------------------------
bench_workdir interop

"${as_server[@]}" "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
"${as_server[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
    -o "-k $work -c listen_addresses='' -p $port -c shared_buffers=128MB" start >/dev/null
strata_url() { echo "postgresql://postgres@/$1?host=$work&port=$port"; }
dbmate_url() { echo "postgres://postgres@/$1?socket=$work&port=$port&sslmode=disable"; }
psql_admin() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -d "$(strata_url postgres)" "$@"; }
# Fresh databases are all created before any deploy is timed, and none is dropped until the end: on ext4 without a
# journal (this VM's disk), creating a file skips the inodes freed in the last seconds one by one, and a DROP
# DATABASE frees thousands. Dropping the previous run's database right before a deploy made every CREATE TABLE
# pay for that scan: the psql floor of the realistic set ran 2.8-3.6 s after a drop and 1.0-1.2 s without one.
create_dbs() { local db; for db in "$@"; do psql_admin -c "CREATE DATABASE $db" >/dev/null; done; psql_admin -c CHECKPOINT >/dev/null; }

# --- the migrations: one dbmate folder per set, read in place by both tools ----------------------------------------
generate() { # SET DIR
    local set=$1 dir=$2 i t up down
    mkdir -p "$dir"
    for ((i = 1; i <= migrations; i++)); do
        t=$(((i + 3) / 4))
        if [ "$set" = small ]; then
            if ((i == 1)); then
                up="CREATE TABLE hub (id bigint PRIMARY KEY);"; down="DROP TABLE hub;"
            elif ((i % 2)); then
                up="ALTER TABLE hub ADD COLUMN c$i integer;"; down="ALTER TABLE hub DROP COLUMN c$i;"
            else
                up="CREATE TABLE small_$i (id bigint);"; down="DROP TABLE small_$i;"
            fi
        else
            case $((i % 4)) in
                1) up="CREATE TABLE item_$t (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    amount numeric(12,2) NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE item_$t IS 'items, batch $t';"
                   down="DROP TABLE item_$t;" ;;
                2) up="CREATE INDEX item_${t}_name ON item_$t (name);
ALTER TABLE item_$t ADD COLUMN status text NOT NULL DEFAULT 'new';"
                   down="ALTER TABLE item_$t DROP COLUMN status;
DROP INDEX item_${t}_name;" ;;
                3) up="INSERT INTO item_$t (name, amount)
SELECT 'item ' || g, g * 1.5 FROM generate_series(1, 50) AS g;
UPDATE item_$t SET status = 'ready' WHERE amount > 30;"
                   down="DELETE FROM item_$t;" ;;
                0) up="CREATE TABLE tag_$t (
    item_id bigint NOT NULL REFERENCES item_$t (id),
    tag text NOT NULL,
    PRIMARY KEY (item_id, tag)
);
INSERT INTO tag_$t SELECT id, 'batch' FROM item_$t WHERE status = 'ready';"
                   down="DROP TABLE tag_$t;" ;;
            esac
        fi
        printf -- '-- migrate:up\n%s\n\n-- migrate:down\n%s\n' "$up" "$down" >"$dir/$(printf '%014d' $((20240101000000 + i)))_step_$i.sql"
        printf '%s\n' "$up" >>"$dir/../floor.sql.txt"
    done
}

# --- measurements -----------------------------------------------------------------------------------------------
now() { echo "$EPOCHREALTIME"; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
count() { "$bindir/psql" -X -A -t -d "$(strata_url "$1")" -c "$2"; }
dump() { "$bindir/pg_dump" --schema-only --no-owner -N strata -T public.schema_migrations -d "$(strata_url "$1")" | grep -v -e '^--' -e '^\\restrict' -e '^\\unrestrict'; }

results=()
measure() { # SET
    local set=$1 dir="$work/$1/app/db/migrations" r start
    generate "$set" "$dir"
    local floor_sql="$work/$set/app/db/floor.sql.txt"
    run_dbmate() { "$dbmate" --url "$(dbmate_url "$1")" --migrations-dir "$dir" --no-dump-schema migrate >/dev/null; }
    run_strata() { "$strata" -q --database-url "$(strata_url "$1")" up --dir "$dir"; }
    local floor_t=() dbmate_fresh=() strata_fresh=() dbmate_noop=() strata_noop=()
    echo "$set: fresh deploys…" >&2
    for ((r = 1; r <= runs; r++)); do
        create_dbs "floor_${set}_$r" "dbmate_${set}_$r" "strata_${set}_$r"
    done
    for ((r = 1; r <= runs; r++)); do
        start=$(now)
        "$bindir/psql" -X -q -1 -v ON_ERROR_STOP=1 -d "$(strata_url "floor_${set}_$r")" -f "$floor_sql" >/dev/null
        floor_t+=("$(ms_since "$start")")
        start=$(now); run_dbmate "dbmate_${set}_$r"; dbmate_fresh+=("$(ms_since "$start")")
        start=$(now); run_strata "strata_${set}_$r"; strata_fresh+=("$(ms_since "$start")")
    done
    local by_dbmate="dbmate_${set}_$runs" by_strata="strata_${set}_$runs"
    [ "$(count "$by_dbmate" 'SELECT count(*) FROM schema_migrations')" = "$migrations" ] || { echo "dbmate did not apply every migration" >&2; exit 1; }
    [ "$(count "$by_strata" "SELECT count(*) FROM strata.migration WHERE package = 'app'")" = "$migrations" ] || { echo "strata did not apply every migration" >&2; exit 1; }
    if ! diff <(dump "$by_dbmate") <(dump "$by_strata") >/dev/null; then
        echo "$set: the two databases differ:" >&2; diff <(dump "$by_dbmate") <(dump "$by_strata") | head -20 >&2; exit 1
    fi
    echo "$set: no-op runs…" >&2
    for ((r = 1; r <= runs * 2 + 1; r++)); do
        start=$(now); run_dbmate "$by_dbmate"; dbmate_noop+=("$(ms_since "$start")")
        start=$(now); run_strata "$by_strata"; strata_noop+=("$(ms_since "$start")")
    done
    echo "$set, every run in ms: floor ${floor_t[*]} | dbmate fresh ${dbmate_fresh[*]} | strata fresh ${strata_fresh[*]}"
    echo "$set, every run in ms: dbmate no-op ${dbmate_noop[*]} | strata no-op ${strata_noop[*]}"
    results+=("$set $(printf '%s\n' "${floor_t[@]}" | median) $(printf '%s\n' "${dbmate_fresh[@]}" | median) $(printf '%s\n' "${strata_fresh[@]}" | median) $(printf '%s\n' "${dbmate_noop[@]}" | median) $(printf '%s\n' "${strata_noop[@]}" | median)")
}

echo
echo "Interop benchmark: $migrations dbmate migrations per set, $("$bindir/postgres" --version), fsync on, Unix socket"
echo "$("$dbmate" --version); strata $("$strata" --version | awk '{ print $2 }') (release), reading the dbmate folder in place"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
measure realistic
measure small
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-10s %-8s %10s %10s %10s %16s %10s\n' "set" "run" "floor" "dbmate" "strata" "dbmate/strata" "goal"
printf '%-10s %-8s %10s %10s %10s %16s %10s\n' "----------" "--------" "----------" "----------" "----------" "----------------" "----------"
for line in "${results[@]}"; do
    read -r set floor df sf dn sn <<<"$line"
    printf '%-10s %-8s %10s %10s %10s %16s %10s\n' "$set" "fresh" "$floor" "$df" "$sf" "$(awk -v a="$df" -v b="$sf" 'BEGIN { printf "%.2fx", a / b }')" ">= 2x"
    printf '%-10s %-8s %10s %10s %10s %16s %10s\n' "" "no-op" "-" "$dn" "$sn" "$(awk -v a="$dn" -v b="$sn" 'BEGIN { printf "%.2fx", a / b }')" ">= 1x"
done
for line in "${results[@]}"; do # medians, for bench/compare.sh
    read -r set floor df sf dn sn <<<"$line"
    printf 'RESULT %s %s\n' "${set}_floor" "$floor" "${set}_dbmate_fresh" "$df" "${set}_strata_fresh" "$sf" \
        "${set}_dbmate_noop" "$dn" "${set}_strata_noop" "$sn"
done
echo "(medians in ms; fresh: median of $runs runs on fresh databases; no-op: median of $((runs * 2 + 1)) runs)"
