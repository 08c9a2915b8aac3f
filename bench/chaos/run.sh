#!/usr/bin/env bash
# Chaos benchmark for interrupted deploys (issue 16, section 4): TRIALS times, `strata up` of a package with
# transactional and no-transaction migrations (inserts, sleeps, CREATE INDEX CONCURRENTLY) is killed at a random
# moment, alternately with SIGKILL of `strata` and with pg_terminate_backend of its backend. After each kill the
# script checks the database, then runs `strata up` again and checks it once more. It prints one line per trial and
# the totals; the goal is 0 partial states, 0 unrecorded states and 0 statements run twice.
#
#   partial     a transactional migration with some but not all of its rows
#   unrecorded  a no-transaction migration with more committed statements than its run recorded
#               (a CREATE INDEX CONCURRENTLY recorded as started does not count: the next run settles it)
#   twice       the recovery `up` failed on the UNIQUE constraint every step has, or left a row count off
#
# Usage: bench/chaos/run.sh [TRIALS] [SEED]       (defaults: 30 trials, seed from $RANDOM)
# Needs: the PostgreSQL server binaries (PG_BINDIR, pg_config --bindir, or /usr/lib/postgresql/*/bin), cargo.
# STRATA_BIN=path uses that binary instead of building one.
set -euo pipefail

trials=${1:-30}
seed=${2:-$RANDOM}
RANDOM=$seed
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/../lib.sh"

bench_pg_bindir
bench_strata

bench_workdir chaos
"${as_server[@]}" "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
"${as_server[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
    -o "-k $work -c listen_addresses='' -p $port" start >/dev/null
url() { echo "postgresql://postgres@/$1?host=$work&port=$port"; }
q() { "$bindir/psql" -X -A -t -q -v ON_ERROR_STOP=1 -d "$(url "$1")" -c "$2"; }

# --- the package: every statement leaves a row (or an index), so what committed can be counted -----------------------
pkg="$work/pkg"
mkdir -p "$pkg/migrations"
cat >"$pkg/strata.toml" <<'TOML'
name = "bench/chaos"
schema = "chaos"
migrations = [
    "migrations/0001_log.sql",
    "migrations/0002_tx.sql",
    "migrations/0003_notx.sql",
    "migrations/0004_tx.sql",
    "migrations/0005_notx.sql",
]
TOML
step() { echo "INSERT INTO log SELECT '$1', $2 FROM pg_sleep($3);"; }
{
    echo "CREATE TABLE log (migration text, step int, PRIMARY KEY (migration, step));"
    echo "CREATE TABLE item (id bigint);"
    echo "INSERT INTO item SELECT generate_series(1, 20000);"
} >"$pkg/migrations/0001_log.sql"
{ for s in 1 2 3 4; do step 0002 "$s" 0.05; done; } >"$pkg/migrations/0002_tx.sql"
{
    echo "-- strata:no-transaction"
    step 0003 1 0.05
    step 0003 2 0.1
    echo "CREATE INDEX CONCURRENTLY IF NOT EXISTS item_id ON item (id);"
    step 0003 3 0.05
    step 0003 4 0.1
} >"$pkg/migrations/0003_notx.sql"
{ for s in 1 2 3; do step 0004 "$s" 0.05; done; } >"$pkg/migrations/0004_tx.sql"
{
    echo "-- strata:no-transaction"
    step 0005 1 0.05
    echo "CREATE INDEX CONCURRENTLY item_neg ON item ((-id));"
    step 0005 2 0.1
    step 0005 3 0.05
} >"$pkg/migrations/0005_notx.sql"
expected_rows=(0 0 4 4 3 3) # by migration number
total_rows=14
tx_migrations=(0002 0004)
notx_migrations=(0003 0005)

# Committed statements of a no-transaction migration, counted from what they left.
committed_notx() { # db migration
    local rows index=0
    rows=$(q "$1" "SELECT count(*) FROM chaos.log WHERE migration = '$2'")
    case $2 in
        0003) index=$(q "$1" "SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('chaos.item_id') AND indisvalid") ;;
        0005) index=$(q "$1" "SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('chaos.item_neg') AND indisvalid") ;;
    esac
    echo $((rows + index))
}

# Time one undisturbed deploy, to spread the kills over it.
q postgres "CREATE DATABASE timing" >/dev/null
start=$EPOCHREALTIME
(cd "$pkg" && "$strata" -q --database-url "$(url timing)" up)
span_ms=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }')

printf '%-5s %-10s %8s %-30s %8s %11s %6s %9s\n' trial kill "at (ms)" "state after the kill" partial unrecorded twice recovered
partial_total=0 unrecorded_total=0 twice_total=0 recovered_total=0
for ((t = 1; t <= trials; t++)); do
    db="trial_$t"
    q postgres "CREATE DATABASE $db" >/dev/null
    delay=$((RANDOM % (span_ms + 1)))
    mode=$([ $((t % 2)) = 1 ] && echo SIGKILL || echo terminate)
    (cd "$pkg" && exec "$strata" -q --database-url "$(url "$db")" up) >"$work/out_$t" 2>&1 &
    child=$!
    sleep "$(awk -v d="$delay" 'BEGIN { printf "%.3f", d / 1000 }')"
    if [ "$mode" = SIGKILL ]; then
        kill -KILL "$child" 2>/dev/null || true
    else
        q "$db" "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name LIKE 'strata%'" >/dev/null
    fi
    wait "$child" 2>/dev/null || true
    # A killed strata's backend finishes the message it holds before it notices.
    for _ in $(seq 1 600); do
        [ "$(q "$db" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                      AND pid <> pg_backend_pid() AND application_name LIKE 'strata%'")" = 0 ] && break
        sleep 0.05
    done

    partial=0 unrecorded=0 twice=0 recovered=no
    state="nothing"
    if [ "$(q "$db" "SELECT to_regclass('chaos.log') IS NOT NULL")" = t ]; then
        state=""
        recorded=$(q "$db" "SELECT string_agg(name, ' ' ORDER BY name) FROM strata.migration WHERE package = 'bench/chaos'")
        for m in "${tx_migrations[@]}"; do
            n=$(q "$db" "SELECT count(*) FROM chaos.log WHERE migration = '$m'")
            want=${expected_rows[10#$m]}
            if [ "$n" != 0 ] && [ "$n" != "$want" ]; then partial=1; fi
            case " $recorded " in *" ${m}_tx "*) [ "$n" = "$want" ] || partial=1 ;; *) [ "$n" = 0 ] || partial=1 ;; esac
        done
        for m in "${notx_migrations[@]}"; do
            done_n=$(committed_notx "$db" "$m")
            case " $recorded " in
                *" ${m}_notx "*) continue ;;
            esac
            [ "$done_n" = 0 ] && continue
            # The newest run's record of this migration: committed statements, and one started outside a
            # transaction (a CREATE INDEX CONCURRENTLY that may have finished).
            rec=$(q "$db" "SELECT coalesce(jsonb_array_length(detail->'progress'->'committed'), 0)
                                  + CASE WHEN jsonb_typeof(detail->'progress'->'started') = 'object' THEN 1 ELSE 0 END
                             FROM strata.run WHERE detail->'progress'->>'migration' = 'bench/chaos:${m}_notx'
                            ORDER BY id DESC LIMIT 1")
            rec=${rec:-0}
            [ "$done_n" -le "$rec" ] || unrecorded=1
            state="$state $m:$done_n/$rec"
        done
        state="recorded[${recorded:-}]$state"
    fi
    # Recover: `up` again (twice at most: the first may have to wait for nothing).
    for _ in 1 2; do
        if (cd "$pkg" && "$strata" -q --database-url "$(url "$db")" up) >"$work/recover_$t" 2>&1; then
            recovered=yes
            break
        fi
    done
    if grep -q 23505 "$work/recover_$t"; then twice=1; fi
    if [ $recovered = yes ]; then
        rows=$(q "$db" "SELECT count(*) FROM chaos.log")
        running=$(q "$db" "SELECT count(*) FROM strata.run WHERE outcome = 'running'")
        invalid=$(q "$db" "SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        applied=$(q "$db" "SELECT count(*) FROM strata.migration WHERE package = 'bench/chaos'")
        if [ "$rows" != "$total_rows" ] || [ "$running" != 0 ] || [ "$invalid" != 0 ] || [ "$applied" != 5 ]; then
            twice=1
            recovered="no ($rows rows, $running running, $invalid invalid, $applied applied)"
        fi
    fi
    printf '%-5s %-10s %8s %-30s %8s %11s %6s %9s\n' "$t" "$mode" "$delay" "${state:0:30}" "$partial" "$unrecorded" "$twice" "$recovered"
    partial_total=$((partial_total + partial))
    unrecorded_total=$((unrecorded_total + unrecorded))
    twice_total=$((twice_total + twice))
    [ "$recovered" = yes ] && recovered_total=$((recovered_total + 1))
done
echo
echo "Strata chaos benchmark: $trials trials (seed $seed), kills spread over a ${span_ms} ms deploy, $("$bindir/postgres" --version)"
printf 'partial states: %d   unrecorded states: %d   statements run twice: %d   recovered: %d of %d\n' \
    "$partial_total" "$unrecorded_total" "$twice_total" "$recovered_total" "$trials"
[ "$partial_total" = 0 ] && [ "$unrecorded_total" = 0 ] && [ "$twice_total" = 0 ] && [ "$recovered_total" = "$trials" ]
