#!/usr/bin/env bash
# The no-op `strata up` of bench/core's package with two builds, alternately (A, B, A, B, …) on one database of a
# throwaway cluster: the finest comparison of the per-run overhead on a noisy machine. Prints both medians and B/A,
# and every run. With --cpu, each run's user+system CPU time (10 ms resolution) instead of its wall time.
#
# Usage: bench/core/noop-compare.sh [--cpu] BIN_A BIN_B [PAIRS]      (default: 21 pairs)
set -euo pipefail

cpu=false
if [ "${1:-}" = --cpu ]; then cpu=true; shift; fi
[ $# -ge 2 ] || { sed -n '2,6p' "$0" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2") pairs=${3:-21}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib.sh"
bench_pg_bindir
bench_workdir noop
"${as_server[@]}" "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
"${as_server[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
    -o "-k $work -c listen_addresses='' -p $port" start >/dev/null
"$bindir/psql" -X -q -d "postgresql://postgres@/postgres?host=$work&port=$port" -c "CREATE DATABASE bench"
url="postgresql://postgres@/bench?host=$work&port=$port"
"$here/generate.sh" "$work" 1000
cd "$work/pkg"
"$a" -q --database-url "$url" up

run() {
    if $cpu; then
        { /usr/bin/time -f "%U %S" "$1" -q --database-url "$url" up; } 2>&1 | awk '{ printf "%.0f", ($1 + $2) * 1000 }'
    else
        local start=$EPOCHREALTIME
        "$1" -q --database-url "$url" up
        awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (e - s) * 1000 }'
    fi
}
ta=() tb=()
for ((i = 0; i < pairs; i++)); do
    ta+=("$(run "$a")")
    tb+=("$(run "$b")")
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ma=$(printf '%s\n' "${ta[@]}" | median)
mb=$(printf '%s\n' "${tb[@]}" | median)
what=$($cpu && echo "CPU ms (user+sys)" || echo "wall ms")
echo "no-op strata up, $what, $pairs alternating pairs: A median $ma, B median $mb, B/A $(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.2f", b / a }'); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "A: ${ta[*]}"
echo "B: ${tb[*]}"
