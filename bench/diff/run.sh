#!/usr/bin/env bash
# Benchmark of the declarative schema (issue 17, "Performance").
#
# Starts a throwaway PostgreSQL cluster (Unix socket only) configured as `strata dev` configures the shadow cluster
# (durability off: fsync, synchronous_commit and full_page_writes off; every measurement runs on it), generates a schema of 1,000 tables (5-20 columns,
# indexes, foreign keys), 200 views and 300 functions, and a copy with 1% of its objects changed
# (bench/diff/generate.py), and prints wall times (median of RUNS) on that server:
#
#   strata diff        `strata diff --from URL_A --to URL_B` between two live databases (two catalog snapshots,
#                      the diff, the ordering, the SQL)
#   migra              `migra --unsafe URL_A URL_B` on the same databases (migra from PyPI, in a virtualenv)
#   floor              `psql -1 -f` of the package's migration into a fresh database, plus `psql -1 -f` of the
#                      declared files into another: the two loads any shadow-based tool must do
#   strata generate    `strata generate` in the package (migrations replayed with `strata up` into a shadow
#                      database, the declared files loaded into another, diff, and the proof: a clone of the first
#                      migrated and compared, down applied and compared), the shadow server already running
#                      (--shadow-url: warm, as the `strata dev` cluster is)
#
# Goals: strata diff <= 1 s; strata generate <= 1.5 x floor; strata diff >= 5 x faster than migra.
#
# Usage: bench/diff/run.sh [RUNS]          (default 5; STRATA_BIN=path uses that binary instead of building one)
# Needs: the PostgreSQL server binaries (PG_BINDIR, pg_config --bindir, or /usr/lib/postgresql/*/bin), cargo,
# python3 (with venv) and network access to PyPI the first time (migra and psycopg2-binary are installed into
# ${XDG_CACHE_HOME:-~/.cache}/strata-bench-migra; set MIGRA=/path/to/migra to use another).
# Run as root (the cluster then runs as the `postgres` user) or as an ordinary user.
set -euo pipefail

runs=${1:-5}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

# --- tools --------------------------------------------------------------------------------------------------------
bindir=${PG_BINDIR:-}
if [ -z "$bindir" ] && command -v pg_config >/dev/null 2>&1; then
    bindir=$(pg_config --bindir)
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
[ -x "$bindir/initdb" ] || { echo "no PostgreSQL server binaries found (set PG_BINDIR)" >&2; exit 2; }
psql_bin=$bindir/psql
[ -x "$psql_bin" ] || psql_bin=$(command -v psql)

if [ -n "${STRATA_BIN:-}" ]; then
    strata=$STRATA_BIN
else
    echo "building strata (release)…" >&2
    (cd "$repo" && cargo build --release -q -p strata-cli)
    strata="${CARGO_TARGET_DIR:-$repo/target}/release/strata"
fi
[ -x "$strata" ] || { echo "no release binary at $strata" >&2; exit 2; }

migra=${MIGRA:-}
if [ -z "$migra" ]; then
    venv=${XDG_CACHE_HOME:-$HOME/.cache}/strata-bench-migra
    if [ ! -x "$venv/bin/migra" ]; then
        echo "installing migra into $venv…" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q migra psycopg2-binary
    fi
    migra=$venv/bin/migra
fi

# --- cluster --------------------------------------------------------------------------------------------------------
work=$(mktemp -d /tmp/strata-bench-diff-XXXXXX)
chmod 755 "$work"
as_server=()
if [ "$(id -u)" = 0 ]; then
    chown postgres "$work"
    as_server=(runuser -u postgres --)
fi
port=$((20000 + RANDOM % 20000))
cleanup() {
    "${as_server[@]}" "$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"${as_server[@]}" "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
"${as_server[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
    -o "-k $work -c listen_addresses='' -p $port -c shared_buffers=128MB -c max_locks_per_transaction=1024 \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null
url() { echo "postgresql://postgres@/$1?host=$work&port=$port"; }
murl() { echo "postgresql+psycopg2://postgres@/$1?host=$work&port=$port"; }
psql_db() { local db=$1; shift; "$psql_bin" -X -q -v ON_ERROR_STOP=1 -d "$(url "$db")" "$@"; }

python3 "$here/generate.py" "$work"
psql_db postgres -c "CREATE DATABASE bench_a" -c "CREATE DATABASE bench_b" >/dev/null
psql_db bench_a -1 -f "$work/a.sql" >/dev/null
psql_db bench_b -1 -f "$work/b.sql" >/dev/null
objects=$(psql_db bench_a -A -t -c "SELECT count(*) FROM pg_class WHERE relnamespace = 'bm'::regnamespace AND relkind IN ('r','v','i')")
functions=$(psql_db bench_a -A -t -c "SELECT count(*) FROM pg_proc WHERE pronamespace = 'bm'::regnamespace")

# --- measurements ---------------------------------------------------------------------------------------------------
now() { echo "$EPOCHREALTIME"; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

diff_times=() migra_times=() floor_times=() generate_times=()
for ((r = 1; r <= runs; r++)); do
    start=$(now)
    "$strata" -q diff --from "$(url bench_a)" --to "$(url bench_b)" --allow-data-loss >"$work/strata.sql"
    diff_times+=("$(ms_since "$start")")

    start=$(now)
    # migra exits 2 when it printed changes; SQLAlchemy needs the driver named.
    status=0
    "$migra" --unsafe "$(murl bench_a)" "$(murl bench_b)" >"$work/migra.sql" || status=$?
    [ "$status" = 0 ] || [ "$status" = 2 ] || { echo "migra failed ($status)" >&2; exit 1; }
    migra_times+=("$(ms_since "$start")")
done
actions=$(grep -c ';$' "$work/strata.sql" || true)

# The floor and generate alternate, so load hits both alike. Fresh databases for the floor are created first.
creates=()
for ((r = 1; r <= runs; r++)); do creates+=(-c "CREATE DATABASE floor_m_$r" -c "CREATE DATABASE floor_d_$r"); done
psql_db postgres "${creates[@]}" >/dev/null
pkg=$work/pkg
cp "$pkg/strata.toml" "$work/strata.toml.orig"
shadow=$(url postgres)
for ((r = 1; r <= runs; r++)); do
    start=$(now)
    psql_db "floor_m_$r" -c "CREATE SCHEMA bm" -1 -f "$work/migration_up.sql" >/dev/null
    files=()
    for file in "$pkg"/schema/*.sql; do files+=(-f "$file"); done
    psql_db "floor_d_$r" -c "CREATE SCHEMA bm" -1 "${files[@]}" >/dev/null
    floor_times+=("$(ms_since "$start")")

    cp "$work/strata.toml.orig" "$pkg/strata.toml"
    rm -f "$pkg"/migrations/0002_*.sql
    start=$(now)
    (cd "$pkg" && STRATA_LOG=pgstrata_declare=debug "$strata" -q generate bench_change --shadow-url "$shadow" \
        --allow-data-loss >/dev/null 2>"$work/generate_$r.log")
    generate_times+=("$(ms_since "$start")")
done
[ -f "$pkg/migrations/0002_bench_change.sql" ] || { echo "strata generate wrote no migration" >&2; exit 1; }
generated=$(grep -c ';$' "$pkg/migrations/0002_bench_change.sql" || true)

echo "phases of the last strata generate:"
sed -e 's/\x1b\[[0-9;]*m//g' "$work/generate_$runs.log" | grep -o 'declare: .*' | sed 's/^/  /'
d=$(printf '%s\n' "${diff_times[@]}" | median)
m=$(printf '%s\n' "${migra_times[@]}" | median)
f=$(printf '%s\n' "${floor_times[@]}" | median)
g=$(printf '%s\n' "${generate_times[@]}" | median)
verdict() { if [ "$1" = 1 ]; then echo met; else echo "NOT met"; fi; }

echo
echo "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}'), $objects tables/views/indexes and $functions functions in schema bm; $runs runs, median"
echo "strata diff printed $actions statements; the generated migration has $generated"
echo
printf '| %-62s | %10s | %-28s |\n' "measurement" "ms" "goal"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..64})" "$(printf -- '-%.0s' {1..12})" "$(printf -- '-%.0s' {1..30})"
printf '| %-62s | %10s | %-28s |\n' "strata diff (two live databases, 1% of objects differ)" "$d" "<= 1000: $(verdict "$(awk -v d="$d" 'BEGIN{print (d<=1000)}')")"
printf '| %-62s | %10s | %-28s |\n' "migra --unsafe (same databases)" "$m" "strata >= 5x faster: $(awk -v d="$d" -v m="$m" 'BEGIN{printf "%.1fx", m/d}') $(verdict "$(awk -v d="$d" -v m="$m" 'BEGIN{print (m>=5*d)}')")"
printf '| %-62s | %10s | %-28s |\n' "floor: psql -1 -f migration + psql -1 -f declared files" "$f" ""
printf '| %-62s | %10s | %-28s |\n' "strata generate (warm shadow server, proof included)" "$g" "<= 1.5x floor: $(awk -v g="$g" -v f="$f" 'BEGIN{printf "%.2fx", g/f}') $(verdict "$(awk -v g="$g" -v f="$f" 'BEGIN{print (g<=1.5*f)}')")"
