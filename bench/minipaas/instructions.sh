#!/usr/bin/env bash
# MiniPaaS calls counted in CPU instructions: the server runs under valgrind (cachegrind, no cache simulation), one
# pgbench client runs a call N and then 2N times, and the difference over N is what one call costs its backend.
# Unlike transactions per second, the count does not depend on what else the machine is doing, so a change of a
# few percent shows. Prints a table; see bench/minipaas/README.md.
#
#   bench/minipaas/instructions.sh [--calls 300] [--baseline REV] [--only NAMES]
#
# --calls     N (default 300)
# --baseline  also install packages/minipaas as of git revision REV in a second database and count the same calls
#             there: the table gains the baseline's count and the ratio
# --only      comma-separated workloads (default: all): enqueue, publish, dequeue, dequeue100, ackdequeue; each is
#             counted over prepared statements and (but dequeue100) over the simple protocol
set -euo pipefail

CALLS=300
BASELINE=""
ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --calls) CALLS=$2; shift 2 ;;
        --baseline) BASELINE=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }

HERE=$(cd "$(dirname "$0")" && pwd)
PACKAGE=$(cd "$HERE/../../packages/minipaas" && pwd)
BIN=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}

WORK=$(mktemp -d /tmp/minipaas-instructions.XXXXXX)
mkdir -p "$WORK/counts"
RUN_AS=()
if [ "$(id -u)" = 0 ]; then
    chown -R postgres "$WORK"
    RUN_AS=(runuser -u postgres --)
fi
PORT=$((20000 + RANDOM % 20000))
export PGHOST=$WORK PGPORT=$PORT PGUSER=postgres PGDATABASE=bench
cleanup() {
    # Fast shutdown of the postmaster (valgrind runs it as the same process).
    local pid
    pid=$(head -1 "$WORK/data/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
        kill -INT "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"${RUN_AS[@]}" "$BIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 >/dev/null
# No autovacuum: a worker starting in the middle of a count would make it wander.
"${RUN_AS[@]}" valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$WORK/counts/%p" \
    "$BIN/postgres" -D "$WORK/data" -c listen_addresses='' -c unix_socket_directories="$WORK" -p "$PORT" \
    -c fsync=off -c synchronous_commit=off -c autovacuum=off -c shared_buffers=128MB -c max_connections=20 \
    >"$WORK/server.log" 2>&1 &
for _ in $(seq 600); do
    "$BIN/pg_isready" -q -d postgres && break
    sleep 0.5
done
"$BIN/pg_isready" -q -d postgres || { echo "the server did not start:" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }

psql() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@" >/dev/null; }
install_package() {
    local db=$1 package=$2
    psql -d postgres -c "CREATE DATABASE $db"
    for migration in $(sed -n 's/^ *"\(migrations\/[^"]*\)".*/\1/p' "$package/strata.toml"); do
        sed '/^-- migrate:down/,$d' "$package/$migration"
    done | psql -d "$db"
    psql -d "$db" -f "$package/queues.sql"
    psql -d "$db" -f "$package/streams.sql"
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
echo "SELECT minipaas.queue_enqueue('bench', '$PAYLOAD');" > "$S/enqueue.sql"
echo "SELECT minipaas.stream_publish('bench', '$PAYLOAD');" > "$S/publish.sql"
cat > "$S/dequeue.sql" <<'EOF'
SELECT id, lease_token FROM minipaas.queue_dequeue('bench', 1) \gset
SELECT minipaas.queue_ack(:id, :lease_token);
EOF
cat > "$S/dequeue100.sql" <<'EOF'
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(lease_token), '{}') AS tokens FROM minipaas.queue_dequeue('bench', 100) \gset
SELECT count(*) FROM minipaas.queue_ack_batch(:ids, :tokens);
EOF
cat > "$S/ackdequeue.sql" <<'EOF'
SELECT id, lease_token FROM minipaas.queue_ack_dequeue('bench', ARRAY[:id]::bigint[], ARRAY[:lease_token]::bigint[], 1) \gset
EOF

# Empties the tables, fills a backlog of $1 messages, vacuums: every count starts from the same state.
reset() {
    psql -c "TRUNCATE minipaas.messages; TRUNCATE minipaas.stream_events; DELETE FROM minipaas.queue_wakeups"
    if [ "$1" -gt 0 ]; then
        psql -c "SELECT count(*) FROM (SELECT minipaas.queue_enqueue_batch('bench', array_fill('$PAYLOAD'::jsonb, ARRAY[10000]))
                                         FROM generate_series(1, ($1 + 9999) / 10000)) b"
    fi
    psql -c "VACUUM ANALYZE"
}

# Instructions of one pgbench client's backend running script $1 over protocol $2 from a backlog of $3 messages, $4
# times (more pgbench arguments may follow): the count file named after the backend's pid, which pg_stat_activity
# shows while pgbench runs.
count() {
    local script=$1 protocol=$2 backlog=$3 times=$4; shift 4
    reset "$backlog"
    "$BIN/pgbench" -n -c 1 -M "$protocol" -t "$times" "$@" -f "$S/$script" >"$WORK/pgbench.out" 2>&1 &
    local bench=$! backend=""
    while [ -z "$backend" ] && kill -0 "$bench" 2>/dev/null; do
        backend=$("$BIN/psql" -X -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'")
        [ -n "$backend" ] || sleep 0.1
    done
    wait "$bench" || { echo "pgbench failed on $script:" >&2; tail -20 "$WORK/pgbench.out" >&2; exit 1; }
    [ -n "$backend" ] || { echo "pgbench's backend ran too briefly to be seen: raise --calls" >&2; exit 1; }
    local value=""
    for _ in $(seq 300); do
        value=$(awk '/^summary:/ { print $2 }' "$WORK/counts/$backend" 2>/dev/null)
        [ -n "$value" ] && break
        sleep 0.2
    done
    [ -n "$value" ] || { echo "no instruction count for backend $backend" >&2; exit 1; }
    echo "$value"
}

# Instructions per call: (count of 2N - count of N) / N, which cancels the connection's start and end.
per_call() {
    local a b
    a=$(count "$1" "$2" "$3" "$CALLS" "${@:4}") || exit 1
    b=$(count "$1" "$2" "$3" $((2 * CALLS)) "${@:4}") || exit 1
    echo $(( (b - a) / CALLS ))
}

wanted() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }

# workload: script, backlog, extra pgbench arguments
declare -A SCRIPT=([enqueue]=enqueue.sql [publish]=publish.sql [dequeue]=dequeue.sql [dequeue100]=dequeue100.sql
                   [ackdequeue]=ackdequeue.sql)
declare -A BACKLOG=([enqueue]=0 [publish]=0 [dequeue]=30000 [dequeue100]=250000 [ackdequeue]=30000)
declare -A EXTRA=([ackdequeue]="-D id=0 -D lease_token=0")
# (dequeue100 passes arrays through pgbench variables, which the simple protocol would paste in unquoted.)
declare -A PROTOCOLS=([dequeue100]="prepared")

echo "MiniPaaS calls in instructions: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') under cachegrind, $CALLS calls" >&2
printf '\n%-34s %12s %12s %9s\n' "workload (instructions per call)" "this tree" \
    "$( [ -n "$BASELINE" ] && echo "$BASELINE" )" "$( [ -n "$BASELINE" ] && echo ratio )"
declare -A PREPARED
for name in enqueue publish dequeue dequeue100 ackdequeue; do
    wanted "$name" || continue
    for protocol in ${PROTOCOLS[$name]:-prepared simple}; do
        # shellcheck disable=SC2086
        mine=$(PGDATABASE=bench per_call "${SCRIPT[$name]}" "$protocol" "${BACKLOG[$name]}" ${EXTRA[$name]:-}) || exit 1
        label="$name, $protocol"
        if [ "$protocol" = prepared ]; then
            PREPARED[$name]=$mine
        else
            label="$label ($(awk -v p="${PREPARED[$name]}" -v s="$mine" 'BEGIN { printf "%.0f%%", 100 * p / s }') speed)"
        fi
        if [ -n "$BASELINE" ]; then
            # shellcheck disable=SC2086
            theirs=$(PGDATABASE=base per_call "${SCRIPT[$name]}" "$protocol" "${BACKLOG[$name]}" ${EXTRA[$name]:-}) || exit 1
            printf '%-34s %12d %12d %9s\n' "$label" "$mine" "$theirs" \
                "$(awk -v a="$mine" -v b="$theirs" 'BEGIN { printf "%.1f%%", 100 * a / b }')"
        else
            printf '%-34s %12d\n' "$label" "$mine"
        fi
    done
done
