#!/usr/bin/env bash
# Console benchmark (issue 22, "Works with 10,000 runs and 1,000 queues"), on one throwaway server (fsync on; Unix
# socket only): the time `strata console` (release build) takes to answer each page, measured by curl
# (time_total, keep-alive off) as the median of RUNS requests per page; goal ≤ 200 ms per page.
#
# Data: MiniPaaS deployed with `strata up` (real runs with their migrations), 10,000 more rows in strata.run
# (synthetic, over 20 packages, 1 in 10 failed), 1,000 queues with 50 messages each (3 dead letters with their
# error history and 2 in flight per queue, through MiniPaaS's own functions), 100 streams of 100 events.
#
# Usage: bench/console/run.sh [RUNS] [RUN_ROWS] [QUEUES]     (defaults: 20, 10000, 1000)
# Needs: PostgreSQL server binaries (PG_BINDIR, pg_config --bindir, or /usr/lib/postgresql/*/bin), cargo, curl,
# python3 (to read one JSON answer).
set -euo pipefail

runs=${1:-20}
run_rows=${2:-10000}
queues=${3:-1000}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/../lib.sh"

bench_pg_bindir
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 2; }

bench_strata

bench_workdir console
console_pid=
bench_before_cleanup() {
    [ -n "$console_pid" ] && kill "$console_pid" 2>/dev/null || true
}

"${as_server[@]}" "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
"${as_server[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
    -o "-k $work -c listen_addresses='' -p $port" start >/dev/null
url="postgresql://postgres@/bench?host=$work&port=$port"
psql_db() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -d "$url" "$@"; }
"$bindir/psql" -X -q -d "postgresql://postgres@/postgres?host=$work&port=$port" -c "CREATE DATABASE bench"

echo "deploying MiniPaaS, adding $run_rows runs, $queues queues…" >&2
"$strata" up -q -p "$repo/packages/minipaas" -d "$url" --no-tests >/dev/null
psql_db >/dev/null <<SQL
-- Synthetic history: what 10,000 deploys of 20 packages leave behind (the console only reads these rows).
INSERT INTO strata.run (command, outcome, started_at, finished_at, from_state, to_state, error, strata_version,
                        os_user, client_host)
SELECT 'up',
       CASE WHEN g % 10 = 0 THEN 'failed' WHEN g % 3 = 0 THEN 'noop' ELSE 'success' END,
       now() - make_interval(mins => $run_rows - g),
       now() - make_interval(mins => $run_rows - g) + interval '150 ms',
       jsonb_build_object('example.com/pkg' || (g % 20), format('%s_step', g - 1)),
       jsonb_build_object('example.com/pkg' || (g % 20), format('%s_step', g)),
       CASE WHEN g % 10 = 0 THEN format('migrations/%s_step.sql:3:15: relation "t%s" does not exist (SQLSTATE 42P01)', g, g) END,
       '0.1.0', 'deploy', 'ci-runner-' || (g % 4)
  FROM generate_series(1, $run_rows) g;
ANALYZE strata.run;

CREATE PROCEDURE pg_temp.make_queues(n int) LANGUAGE plpgsql AS \$\$
DECLARE
    r record;
BEGIN
    FOR i IN 1..n LOOP
        PERFORM minipaas.queue_create(format('q%s', lpad(i::text, 4, '0')), max_attempts => 1);
        PERFORM minipaas.queue_enqueue_batch(format('q%s', lpad(i::text, 4, '0')),
            array(SELECT jsonb_build_object('order', g, 'customer', 'c' || g, 'lines', g % 7) FROM generate_series(1, 50) g));
        FOR r IN SELECT * FROM minipaas.queue_dequeue(format('q%s', lpad(i::text, 4, '0')), 3) LOOP
            PERFORM minipaas.queue_nack(r.id, r.lease_token, 'smtp: connection refused');
        END LOOP;
        PERFORM minipaas.queue_dequeue(format('q%s', lpad(i::text, 4, '0')), 2);
        IF i % 100 = 0 THEN COMMIT; END IF;
    END LOOP;
END \$\$;
CALL pg_temp.make_queues($queues);

SELECT minipaas.stream_publish(format('s%s', s), jsonb_build_object('n', e), key => 'k' || (e % 10))
  FROM generate_series(1, 100) s, generate_series(1, 100) e;
VACUUM ANALYZE;
SQL

console_port=$((40000 + RANDOM % 20000))
# --read-only: the benchmark only reads; page size 50 (the default).
# -p: the plan page plans MiniPaaS's package and the overview compares it with its files.
"$strata" console -d "$url" -p "$repo/packages/minipaas" --listen "127.0.0.1:$console_port" --read-only \
    >"$work/console.out" 2>"$work/console.err" &
console_pid=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$console_port/assets/style.css" && break
    sleep 0.1
done
# Let the first inspection and a queue sample finish (they run beside the pages).
sleep 3

run_id=$(psql_db -At -c "SELECT min(id) FROM strata.run")
failed_id=$(psql_db -At -c "SELECT max(id) FROM strata.run WHERE outcome = 'failed'")
pages=(
    "/"
    "/runs"
    "/runs?page=150"
    "/runs?outcome=failed"
    "/runs?package=example.com%2Fpkg7&page=5"
    "/runs/$run_id"
    "/runs/$failed_id"
    "/plan"
    "/queues"
    "/queues?page=20"
    "/queues?q=q09"
    "/queues/q0500"
    "/queues/q0500?state=dead"
    "/queues/q0500?state=in-flight"
    "/streams"
    "/streams/s50"
    "/api/runs?page=100"
    "/api/queues?page=10"
)
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
max() { sort -g | tail -n 1; }

printf '\nstrata console on %s runs, %s queues (%s messages), %s; median and max of %s requests\n\n' \
    "$(psql_db -At -c "SELECT count(*) FROM strata.run")" "$queues" \
    "$(psql_db -At -c "SELECT count(*) FROM minipaas.messages")" "$("$bindir/postgres" --version)" "$runs"
printf '| %-42s | %6s | %8s | %11s | %8s |\n' "page" "status" "KiB" "median (ms)" "max (ms)"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..44})" "--------" "----------" "-------------" "----------"
worst=0
for p in "${pages[@]}"; do
    times=()
    status=
    size=
    for _ in $(seq "$runs"); do
        read -r status size t < <(curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' \
            "http://127.0.0.1:$console_port$p")
        times+=("$t")
    done
    med=$(printf '%s\n' "${times[@]}" | median | awk '{ printf "%.1f", $1 * 1000 }')
    mx=$(printf '%s\n' "${times[@]}" | max | awk '{ printf "%.1f", $1 * 1000 }')
    printf '| %-42s | %6s | %8.1f | %11s | %8s |\n' "$p" "$status" "$(awk "BEGIN { print $size / 1024 }")" "$med" "$mx"
    worst=$(awk "BEGIN { print ($med > $worst) ? $med : $worst }")
done
printf '\nslowest median: %s ms (goal ≤ 200 ms)\n' "$worst"
# What runs beside the pages: the inspection behind the overview (every minute).
inspect_ms=$(curl -s "http://127.0.0.1:$console_port/api/overview" | python3 -c \
    'import json, sys; r = json.load(sys.stdin)["inspection"]; print("%.0f" % r["duration_ms"] if r else "not done")')
printf 'background inspection (every check, every minute): %s ms\n' "$inspect_ms"
