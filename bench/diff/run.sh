#!/usr/bin/env bash
# Benchmark of the declarative schema (issue 17, "Performance").
#
# Starts a throwaway `strata dev` cluster (STRATA_DEV_DIR in a temporary directory; Unix socket only, durability off:
# fsync, synchronous_commit and full_page_writes off; every measurement runs on it), generates a schema of 1,000
# tables (5-20 columns, indexes, foreign keys), 200 views and 300 functions, and a copy with 1% of its objects changed
# (bench/diff/generate.py), and prints wall times (median of RUNS) on that server:
#
#   strata diff        `strata diff --from URL_A --to URL_B` between two live databases (two catalog snapshots,
#                      the diff, the ordering, the SQL)
#   migra              `migra --unsafe URL_A URL_B` on the same databases (migra from PyPI, in a virtualenv)
#   floor              `psql -1 -f` of the package's migration into a fresh database, plus `psql -1 -f` of the
#                      declared files into another: the two loads any shadow-based tool must do
#   strata generate    `strata generate` in the package, the dev cluster running (as `strata dev` keeps it): the
#                      migrations replayed with `strata up` into a shadow database while the declared files load into
#                      another, diff, and the proof (the migration applied to the replayed database and compared, down
#                      applied and compared).
#                      warm: the dev cluster keeps the replayed migrations as a template database, so the run copies
#                      it instead of replaying (the edit / generate loop); cold: that cache dropped before the run
#                      (first run, or the migrations changed).
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
. "$here/../lib.sh"

# --- tools --------------------------------------------------------------------------------------------------------
bench_pg_bindir
psql_bin=$bindir/psql
[ -x "$psql_bin" ] || psql_bin=$(command -v psql)

bench_strata

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
export STRATA_DEV_DIR=$work/dev
cleanup() {
    "$strata" -q dev destroy >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# The dev cluster generate uses, with room for 1,000 tables' locks in one transaction; the whole benchmark runs on it.
(cd "$work" && "$strata" -q dev start --pg-bin "$bindir" >/dev/null)
admin=$(cd "$work" && "$strata" dev url)
"$psql_bin" -X -q -d "$admin" -c "ALTER SYSTEM SET shared_buffers = '128MB'" \
    -c "ALTER SYSTEM SET max_locks_per_transaction = 1024"
(cd "$work" && "$strata" -q dev stop >/dev/null && "$strata" -q dev start >/dev/null)
url() { echo "${admin/\/postgres\?//$1?}"; }
murl() { url "$1" | sed 's/^postgresql:/postgresql+psycopg2:/'; }
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

diff_times=() migra_times=() floor_times=() cold_times=() warm_times=()
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

# The floor and generate (cold, then warm) alternate, so load hits them alike. Fresh databases for the floor are
# created first.
creates=()
for ((r = 1; r <= runs; r++)); do creates+=(-c "CREATE DATABASE floor_m_$r" -c "CREATE DATABASE floor_d_$r"); done
psql_db postgres "${creates[@]}" >/dev/null
pkg=$work/pkg
cp "$pkg/strata.toml" "$work/strata.toml.orig"
generate() {
    cp "$work/strata.toml.orig" "$pkg/strata.toml"
    rm -f "$pkg"/migrations/0002_*.sql
    local start
    start=$(now)
    (cd "$pkg" && STRATA_LOG=pgstrata_declare=debug "$strata" -q generate bench_change --allow-data-loss \
        >/dev/null 2>"$work/generate_$1.log")
    ms_since "$start"
}
drop_cache() {
    psql_db postgres -A -t -c "SELECT datname FROM pg_database WHERE datname LIKE 'strata_shadow_cache_%'" |
        while read -r db; do psql_db postgres -c "DROP DATABASE \"$db\"" >/dev/null; done
}
for ((r = 1; r <= runs; r++)); do
    start=$(now)
    psql_db "floor_m_$r" -c "CREATE SCHEMA bm" -1 -f "$work/migration_up.sql" >/dev/null
    files=()
    for file in "$pkg"/schema/*.sql; do files+=(-f "$file"); done
    psql_db "floor_d_$r" -c "CREATE SCHEMA bm" -1 "${files[@]}" >/dev/null
    floor_times+=("$(ms_since "$start")")

    drop_cache
    cold_times+=("$(generate cold)")
    warm_times+=("$(generate warm)")
done
[ -f "$pkg/migrations/0002_bench_change.sql" ] || { echo "strata generate wrote no migration" >&2; exit 1; }
generated=$(grep -c ';$' "$pkg/migrations/0002_bench_change.sql" || true)

for kind in cold warm; do
    echo "phases of the last strata generate ($kind):"
    sed -e 's/\x1b\[[0-9;]*m//g' "$work/generate_$kind.log" | grep -o 'declare: .*' | sed 's/^/  /'
done
d=$(printf '%s\n' "${diff_times[@]}" | median)
m=$(printf '%s\n' "${migra_times[@]}" | median)
f=$(printf '%s\n' "${floor_times[@]}" | median)
c=$(printf '%s\n' "${cold_times[@]}" | median)
g=$(printf '%s\n' "${warm_times[@]}" | median)
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
printf '| %-62s | %10s | %-28s |\n' "strata generate, warm (cached replay copied; proof included)" "$g" "<= 1.5x floor: $(awk -v g="$g" -v f="$f" 'BEGIN{printf "%.2fx", g/f}') $(verdict "$(awk -v g="$g" -v f="$f" 'BEGIN{print (g<=1.5*f)}')")"
printf '| %-62s | %10s | %-28s |\n' "strata generate, cold (empty cache: replay, cache kept)" "$c" "$(awk -v c="$c" -v f="$f" 'BEGIN{printf "%.2fx floor", c/f}')"
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
