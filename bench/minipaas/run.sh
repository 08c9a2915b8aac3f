#!/usr/bin/env bash
# MiniPaaS benchmark: MiniPaaS calls against the raw-SQL floors, on one throwaway PostgreSQL cluster (fsync on),
# with pgbench, 4 clients. Prints a table; see bench/minipaas/README.md.
#
#   bench/minipaas/run.sh [--seconds 20] [--runs 3] [--duration 120] [--skip-sustained] [--only NAMES] [--async-commit]
#                         [--baseline REV]
#
# --seconds   length of each pgbench run (default 20)
# --runs      runs per workload; the table shows the median (default 3)
# --duration  length of each sustained-load run, in seconds (default 120; the goal speaks of 600)
# --only      comma-separated workload names to run (default: all), e.g. enqueue,insert
# --async-commit  run pgbench's sessions with synchronous_commit = off: no transaction waits for the disk, so the
#             ratios show what each call costs in CPU, without the virtual disk's fsync weather (not the goals' setting)
# --baseline  also install packages/minipaas as of git revision REV (e.g. main, HEAD~3) in a second database and run
#             every MiniPaaS workload against it too, next to this tree's in the same rotation: a second table
#             shows this tree against REV, as the median of same-round ratios (before/after in one run)
set -euo pipefail

SECONDS_PER_RUN=20
RUNS=3
DURATION=120
SUSTAINED=1
ONLY=""
ASYNC_COMMIT=0
BASELINE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --skip-sustained) SUSTAINED=0; shift ;;
        --only) ONLY=$2; shift 2 ;;
        --async-commit) ASYNC_COMMIT=1; shift ;;
        --baseline) BASELINE=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
PACKAGE=$(cd "$HERE/../../packages/minipaas" && pwd)
BIN=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
CLIENTS=4
THREADS=2

# A throwaway cluster, owned by the postgres OS user when we are root (initdb refuses root).
WORK=$(mktemp -d /tmp/minipaas-bench.XXXXXX)
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    chown postgres "$WORK"
    RUN_AS=(runuser -u postgres --)
fi
PORT=$((20000 + RANDOM % 20000))
export PGHOST=$WORK PGPORT=$PORT PGUSER=postgres PGDATABASE=bench
cleanup() {
    "${RUN_AS[@]}" "$BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
    [ -n "${HOLDER_PID:-}" ] && kill "$HOLDER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
"${RUN_AS[@]}" "$BIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 >/dev/null
"${RUN_AS[@]}" "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories=$WORK -p $PORT -c shared_buffers=512MB -c max_connections=50" \
    start >/dev/null

psql() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@" >/dev/null; }

# Install a package folder the way Strata does: every migration's up part in manifest order, then the managed code.
install_package() {
    local db=$1 package=$2
    psql -d postgres -c "CREATE DATABASE $db"
    for migration in $(sed -n 's/^ *"\(migrations\/[^"]*\)".*/\1/p' "$package/strata.toml"); do
        sed '/^-- migrate:down/,$d' "$package/$migration"
    done | psql -d "$db"
    psql -d "$db" -f "$package/queues.sql"
    psql -d "$db" -f "$package/streams.sql"
    psql -d "$db" -c "CREATE TABLE q (id bigserial PRIMARY KEY, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
}
install_package bench "$PACKAGE"
if [ -n "$BASELINE" ]; then
    mkdir -p "$WORK/baseline"
    git -C "$HERE/../.." archive "$BASELINE" packages/minipaas | tar -x -C "$WORK/baseline"
    install_package base "$WORK/baseline/packages/minipaas"
fi

S=$WORK/scripts
mkdir -p "$S"
PAYLOAD='{"hello":"world","n":12345}'
cat > "$S/insert.sql" <<EOF
INSERT INTO q (payload) VALUES ('$PAYLOAD');
EOF
# The same INSERT into MiniPaaS's own table (its dequeue index included): the least any enqueue function costs.
cat > "$S/msginsert.sql" <<EOF
INSERT INTO minipaas.messages (queue_id, state, ready_at, enqueued_at, payload)
VALUES (1, 'ready', clock_timestamp(), clock_timestamp(), '$PAYLOAD');
EOF
cat > "$S/enqueue.sql" <<EOF
SELECT minipaas.queue_enqueue('bench', '$PAYLOAD');
EOF
cat > "$S/delete.sql" <<'EOF'
DELETE FROM q WHERE id = (SELECT id FROM q ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id, payload;
EOF
cat > "$S/delete100.sql" <<'EOF'
DELETE FROM q WHERE id IN (SELECT id FROM q ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 100) RETURNING id, payload;
EOF
cat > "$S/dequeue_ack.sql" <<'EOF'
SELECT id, lease_token FROM minipaas.queue_dequeue('bench', 1) \gset
SELECT minipaas.queue_ack(:id, :lease_token);
EOF
# The same two transactions, the lease committed without waiting for the disk (see README: a lease is soft state).
cat > "$S/dequeue_async_ack.sql" <<'EOF'
BEGIN;
SET LOCAL synchronous_commit = off;
SELECT id, lease_token FROM minipaas.queue_dequeue('bench', 1) \gset
COMMIT;
SELECT minipaas.queue_ack(:id, :lease_token);
EOF
cat > "$S/dequeue_ack100.sql" <<'EOF'
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(lease_token), '{}') AS tokens FROM minipaas.queue_dequeue('bench', 100) \gset
SELECT count(*) FROM minipaas.queue_ack_batch(:ids, :tokens);
EOF
cat > "$S/ack_dequeue.sql" <<'EOF'
SELECT id, lease_token FROM minipaas.queue_ack_dequeue('bench', ARRAY[:id]::bigint[], ARRAY[:lease_token]::bigint[], 1) \gset
EOF
cat > "$S/ack_dequeue100.sql" <<'EOF'
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(lease_token), '{}') AS tokens FROM minipaas.queue_ack_dequeue('bench', :ids::bigint[], :tokens::bigint[], 100) \gset
EOF
cat > "$S/publish.sql" <<EOF
SELECT minipaas.stream_publish('bench', '$PAYLOAD');
EOF
cat > "$S/consume.sql" <<'EOF'
\set after random(:first, :last)
SELECT count(*) FROM minipaas.stream_consume('bench', :after, 1000);
EOF

# Resets the tables a workload uses, optionally fills a backlog, and leaves a quiet, vacuumed, checkpointed server.
reset() {
    local fill_raw=$1 fill_queue=$2
    psql -c "TRUNCATE q; TRUNCATE minipaas.messages; TRUNCATE minipaas.stream_events;
             DELETE FROM minipaas.queue_wakeups"
    if [ "$fill_raw" -gt 0 ]; then
        psql -c "INSERT INTO q (payload) SELECT '$PAYLOAD' FROM generate_series(1, $fill_raw)"
    fi
    if [ "$fill_queue" -gt 0 ]; then
        psql -c "SELECT count(*) FROM (SELECT minipaas.queue_enqueue_batch('bench', array_fill('$PAYLOAD'::jsonb, ARRAY[10000]))
                                         FROM generate_series(1, ($fill_queue + 9999) / 10000)) b"
    fi
    psql -c "VACUUM ANALYZE" -c "CHECKPOINT"
    sleep 2
}

# pgbench tps for one script (extra pgbench arguments allowed), over $PROTOCOL (prepared statements, or simple
# queries: text parsed and planned on every call, as psql and PgBouncer's transaction pooling send them). A failed
# run (a client aborted) stops the benchmark with pgbench's own output, instead of leaving a hole in the table.
PROTOCOL=prepared
bench() {
    local script=$1; shift
    local out
    if ! out=$(PGOPTIONS="$( [ "$ASYNC_COMMIT" = 1 ] && echo "-c synchronous_commit=off" )" "$BIN/pgbench" -n -M "$PROTOCOL" \
                   -c $CLIENTS -j $THREADS -T "$SECONDS_PER_RUN" "$@" -f "$S/$script" 2>&1); then
        echo "pgbench failed on $script:" >&2
        echo "$out" | tail -n 20 >&2
        exit 1
    fi
    echo "$out" | awk '/^tps = / { print $3 }'
}

# Messages per second that a batch run really consumed: the backlog it started with, less what is left in the
# table, over the run's length (an empty batch counts as a transaction, not as 100 messages). A backlog that ran
# out stops the benchmark: the rate would be a floor, not a measurement.
consumed_per_second() {
    local table=$1 backlog=$2 left
    left=$("$BIN/psql" -X -At -c "SELECT count(*) FROM $table")
    if [ "$left" -le $(( CLIENTS * 100 )) ]; then
        echo "the backlog of $backlog messages in $table ran out during a ${SECONDS_PER_RUN}s run: raise BACKLOG100" >&2
        exit 1
    fi
    awk -v b="$backlog" -v l="$left" -v s="$SECONDS_PER_RUN" 'BEGIN { print (b - l) / s }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

wanted() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

declare -A RESULT
# Per-run results: SERIES[workload] (or SERIES[workload@base] for the baseline) holds one value per run, in order.
declare -A SERIES
add() { SERIES[$1]+="$2 "; }
series() { echo ${SERIES[$1]:-}; }
record() { RESULT[$1]=$(series "$1" | tr ' ' '\n' | grep . | median); }

# Backlogs large enough for a run: dequeue floors reach ~10k/s here, batches ~120k messages/s.
BACKLOG=$(( SECONDS_PER_RUN * 25000 + 100000 ))
BACKLOG100=$(( SECONDS_PER_RUN * 150000 + 100000 ))

echo "MiniPaaS benchmark: $CLIENTS clients, ${SECONDS_PER_RUN}s per run, median of $RUNS; PostgreSQL $("$BIN/postgres" --version | awk '{print $3}'), fsync on$( [ "$ASYNC_COMMIT" = 1 ] && echo ", synchronous_commit off (CPU cost only: goals not judged)" )" >&2

# One pgbench run of a workload, from its own fresh state, in the current database ($PGDATABASE); its result goes
# to SERIES[$2] (default: the workload's name). Names ending in "simple" run the same script over the simple protocol.
run_workload() {
    local name=$1 key=${2:-$1}
    PROTOCOL=prepared
    case "$name" in *simple) PROTOCOL=simple ;; esac
    case "${name%simple}" in
        insert) reset 0 0; add "$key" "$(bench insert.sql)" ;;
        enqueue) reset 0 0; add "$key" "$(bench enqueue.sql)" ;;
        msginsert) reset 0 0; add "$key" "$(bench msginsert.sql)" ;;
        publish) reset 0 0; add "$key" "$(bench publish.sql)" ;;
        delete) reset "$BACKLOG" 0; add "$key" "$(bench delete.sql)" ;;
        dequeue) reset 0 "$BACKLOG"; add "$key" "$(bench dequeue_ack.sql)" ;;
        dequeueasync) reset 0 "$BACKLOG"; add "$key" "$(bench dequeue_async_ack.sql)" ;;
        ackdequeue) reset 0 "$BACKLOG"; add "$key" "$(bench ack_dequeue.sql -D id=0 -D lease_token=0)" ;;
        delete100)
            reset "$BACKLOG100" 0; bench delete100.sql >/dev/null
            add "$key" "$(consumed_per_second q "$BACKLOG100")" ;;
        dequeue100)
            reset 0 "$BACKLOG100"; bench dequeue_ack100.sql >/dev/null
            add "$key" "$(consumed_per_second minipaas.messages "$BACKLOG100")" ;;
        ackdequeue100)
            reset 0 "$BACKLOG100"; bench ack_dequeue100.sql -D ids='{}' -D tokens='{}' >/dev/null
            add "$key" "$(consumed_per_second minipaas.messages "$BACKLOG100")" ;;
        consume)
            reset 0 0
            for _ in $(seq 50); do
                psql -c "SELECT count(*) FROM minipaas.stream_publish_batch('bench', array_fill('$PAYLOAD'::jsonb, ARRAY[10000]))"
            done
            psql -c "VACUUM ANALYZE minipaas.stream_events"
            read -r FIRST LAST < <("$BIN/psql" -X -At -F ' ' -c \
                "SELECT min(event_offset), (SELECT event_offset FROM minipaas.stream_events ORDER BY event_offset DESC
                                             OFFSET 1000 LIMIT 1) FROM minipaas.stream_events")
            add "$key" "$(bench consume.sql -D first="$FIRST" -D last="$LAST")" ;;
        *) echo "unknown workload $name" >&2; exit 2 ;;
    esac
}

# The MiniPaaS workloads (the rest are raw-SQL floors): with --baseline, each also runs against REV's package.
MINIPAAS_WORKLOADS=" enqueue enqueuesimple publish publishsimple dequeue dequeueasync ackdequeue ackdequeuesimple dequeue100 ackdequeue100 consume "
is_minipaas() { [[ "$MINIPAAS_WORKLOADS" == *" $1 "* ]]; }

# Each floor runs next to the calls it is compared with, in an order that rotates from run to run, so that a
# noisy moment (this is a shared machine) or a checkpoint does not always hit the same side.
WORKLOAD_GROUPS=("insert enqueue enqueuesimple msginsert publish publishsimple"
                 "delete dequeue dequeueasync ackdequeue ackdequeuesimple" "delete100 dequeue100 ackdequeue100" "consume")
for run in $(seq "$RUNS"); do
    echo "run $run/$RUNS" >&2
    for group in "${WORKLOAD_GROUPS[@]}"; do
        read -r -a names <<< "$group"
        if [ -n "$BASELINE" ]; then
            for name in $group; do is_minipaas "$name" && names+=("$name@base"); done
        fi
        n=${#names[@]}
        for i in $(seq 0 $((n - 1))); do
            name=${names[$(( (i + run - 1) % n ))]}
            if wanted "${name%@base}"; then
                if [[ "$name" == *@base ]]; then
                    PGDATABASE=base run_workload "${name%@base}" "$name"
                else
                    run_workload "$name"
                fi
            fi
        done
    done
done
for key in $(printf '%s\n' "${!SERIES[@]}" | sort); do
    echo "runs $key: $(series "$key")" >&2
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }'; }
verdict() {
    if [ "$ASYNC_COMMIT" = 1 ]; then echo "not judged (synchronous_commit off)"; return; fi
    awk -v v="$1" -v goal="$2" 'BEGIN { print (v >= goal ? "met" : "NOT met") }'
}
# a as a percentage of b (a number, for verdict).
pct() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > 0 ? 100 * a / b : 0) }'; }
# Median of the per-run ratios a[i]/b[i] (in percent) of two series: each MiniPaaS run is paired with the floor's
# run of the same round, which saw the same disk and CPU weather; medians of the two sides alone would not be.
paired() {
    local -a a b
    read -r -a a <<< "$(series "$1")"
    read -r -a b <<< "$(series "$2")"
    local i
    for i in "${!a[@]}"; do
        [ -n "${b[$i]:-}" ] && awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { if (y > 0) print 100 * x / y }'
    done | median
}

printf '\n%-48s %12s %12s %9s  %s\n' "workload (4 clients, median of $RUNS)" "per second" "floor" "vs floor" "goal"
line() {
    local floor=$3
    [ -n "$floor" ] && [ "$floor" != "?" ] && floor=$(printf '%.0f' "$floor")
    printf '%-48s %12.0f %12s %9s  %s\n' "$1" "$2" "$floor" "$4" "$5"
}
# A MiniPaaS workload against its floor: value, floor, median paired ratio, goal.
versus() {
    local label=$1 key=$2 floor=$3 goal=$4 goal_text=$5
    local r
    r=$(paired "$key" "$floor")
    line "$label" "${RESULT[$key]}" "${RESULT[$floor]:-?}" "$(printf '%.0f%%' "$r")" \
        "$goal_text: $(verdict "$r" "$goal")"
}
for key in "${!SERIES[@]}"; do record "$key"; done
if wanted insert; then line "raw INSERT (floor)" "${RESULT[insert]}" "" "" ""; fi
if wanted msginsert; then
    line "raw INSERT into minipaas.messages (reference)" "${RESULT[msginsert]}" "${RESULT[insert]:-?}" \
        "$(printf '%.0f%%' "$(paired msginsert insert)")" "the ceiling for queue_enqueue"
fi
if wanted enqueue; then versus "queue_enqueue" enqueue insert 90 ">= 90% of INSERT"; fi
if wanted enqueuesimple && wanted enqueue; then
    versus "… simple protocol (vs prepared)" enqueuesimple enqueue 90 ">= 90% of prepared"
fi
if wanted publish; then versus "stream_publish" publish insert 80 ">= 80% of INSERT"; fi
if wanted publishsimple && wanted publish; then
    versus "… simple protocol (vs prepared)" publishsimple publish 90 ">= 90% of prepared"
fi
if wanted delete; then line "raw DELETE … SKIP LOCKED, 1 per tx (floor)" "${RESULT[delete]}" "" "" ""; fi
if wanted dequeue; then
    line "queue_dequeue + queue_ack (2 tx), batch 1" "${RESULT[dequeue]}" "${RESULT[delete]:-?}" \
        "$(printf '%.0f%%' "$(paired dequeue delete)")" "reference: both commits wait for the disk"
fi
if wanted dequeueasync; then
    versus "… lease committed asynchronously (the Worker)" dequeueasync delete 60 ">= 60% of DELETE"
fi
if wanted ackdequeue; then
    versus "queue_ack_dequeue (ack + lease, 1 tx), batch 1" ackdequeue delete 60 ">= 60% of DELETE"
fi
if wanted ackdequeuesimple && wanted ackdequeue; then
    versus "… simple protocol (vs prepared)" ackdequeuesimple ackdequeue 90 ">= 90% of prepared"
fi
if wanted delete100; then line "raw DELETE … LIMIT 100 (msgs, reference)" "${RESULT[delete100]}" "" "" ""; fi
# Batch series hold messages per second (consumed_per_second), not transactions.
batch_line() {
    local label=$1 key=$2
    local msgs=${RESULT[$key]} r
    r=$(paired "$key" delete100)
    line "$label" "$msgs" "${RESULT[delete100]:-?}" "$(printf '%.0f%%' "$r")" \
        ">= 50,000 msgs/s: $(verdict "$msgs" 50000)"
}
if wanted dequeue100; then batch_line "queue_dequeue + queue_ack_batch, 100 (msgs)" dequeue100; fi
if wanted ackdequeue100; then batch_line "queue_ack_dequeue, batch 100 (msgs)" ackdequeue100; fi
if wanted consume; then
    line "stream_consume, 1000 per call (events)" "$(awk -v t="${RESULT[consume]}" 'BEGIN { print t * 1000 }')" "" "" ""
fi

# Before/after in one run: every MiniPaaS workload of this tree against the same workload on REV's package, the
# median of the ratios of runs made in the same round.
if [ -n "$BASELINE" ]; then
    printf '\n%-48s %12s %12s %9s\n' "this tree vs $BASELINE (same runs, median of $RUNS)" "this tree" "baseline" "ratio"
    for name in $MINIPAAS_WORKLOADS; do
        [ -n "$(series "$name@base")" ] || continue
        printf '%-48s %12.0f %12.0f %9s\n' "$name" "${RESULT[$name]}" "${RESULT[$name@base]}" \
            "$(printf '%.0f%%' "$(paired "$name" "$name@base")")"
    done
fi

# Sustained load: enqueue and dequeue+ack (the Worker's shape) mixed 1:1 over a standing backlog, throughput per
# 10 s; then again while another session holds a transaction (and its snapshot) open, so VACUUM can remove nothing.
sustained() {
    local label=$1 hold=$2
    reset 0 200000
    if [ "$hold" = 1 ]; then
        "$BIN/psql" -X -q -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT pg_current_xact_id()" \
            -c "SELECT pg_sleep($DURATION + 60)" >/dev/null 2>&1 &
        HOLDER_PID=$!
        sleep 1
    fi
    local progress
    progress=$("$BIN/pgbench" -n -M prepared -c $CLIENTS -j $THREADS -T "$DURATION" -P 10 \
        -f "$S/enqueue.sql@1" -f "$S/dequeue_async_ack.sql@1" 2>&1 | awk '/^progress:/ { print $4 }')
    if [ "$hold" = 1 ]; then kill "$HOLDER_PID" 2>/dev/null || true; HOLDER_PID=; fi
    local n first last
    n=$(echo "$progress" | wc -l)
    local window=$(( n < 12 ? (n / 2 > 0 ? n / 2 : 1) : 6 ))
    first=$(echo "$progress" | head -n "$window" | awk '{ s += $1 } END { print s / NR }')
    last=$(echo "$progress" | tail -n "$window" | awk '{ s += $1 } END { print s / NR }')
    local dead
    dead=$("$BIN/psql" -X -At -c "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'messages'")
    printf '%-48s %12.0f %12.0f %9s  %s\n' "$label" "$last" "$first" "$(ratio "$last" "$first")" \
        ">= 80% of the start: $(verdict "$(pct "$last" "$first")" 80) (${DURATION}s, first/last $((window * 10))s; dead tuples $dead)"
    echo "$label per 10 s: $(echo $progress | tr '\n' ' ')" >&2
}
if [ "$SUSTAINED" = 1 ]; then
    printf '\n%-48s %12s %12s %9s  %s\n' "sustained mixed load (tx/s)" "at the end" "at the start" "ratio" "goal"
    sustained "enqueue + dequeue/ack" 0
    sustained "… with a long transaction open" 1
fi
