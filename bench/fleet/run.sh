#!/usr/bin/env bash
# Fleet benchmark (issue 21, "Performance"): one deploy to many databases, and to many tenant schemas of one
# database, on one throwaway server (fsync on, as in production; Unix socket only). Prints wall times:
#
#   databases   TARGETS databases x MIGRATIONS migrations (bench/core's realistic migrations):
#     floor         the same SQL sent by `psql -1 -f` to each database, JOBS at a time (xargs -P)
#     floor + own   the floor, each database also getting Strata's history tables (pg_dump of its schema) by psql
#     fleet         `strata up --targets targets.toml --jobs JOBS` (one process)
#     strata loop   a shell loop running `strata up` per database, one after the other
#     dbmate loop   a shell loop running `dbmate migrate` per database, one after the other
#   tenants     TARGETS schemas of one database x MIGRATIONS migrations:
#     floor         `psql -1` per schema (search_path set to it, then the same SQL), JOBS at a time
#     fleet         `strata up --tenant-schemas 'sN\_%' --jobs JOBS`
#   growth      fleet and floor for 10, 100, 1,000 (up to TARGETS) databases and tenant schemas
#
# Goals: fleet >= 3x faster than the dbmate loop; fleet <= 1.2x the floor (databases and tenants); time linear in
# the number of targets.
#
# Usage: bench/fleet/run.sh [TARGETS] [MIGRATIONS] [JOBS] [PARTS]
#        (defaults: 1000 targets, 20 migrations, nproc jobs, PARTS `all`; `databases` or `tenants` runs one half)
# Needs: the PostgreSQL server binaries (PG_BINDIR, pg_config --bindir, or /usr/lib/postgresql/*/bin), cargo,
# dbmate ($DBMATE, on PATH, or installed from npm into ~/.cache/strata-bench/dbmate as bench/interop does), about
# 8 GB of disk for 1,000 databases. The databases are all created (untimed) before anything is measured; between
# methods every database is emptied again (untimed), and the floor runs first and last to show the drift.
set -euo pipefail

targets=${1:-1000}
migrations=${2:-20}
jobs=${3:-$(nproc)}
parts=${4:-all}
case $parts in all | databases | tenants) ;; *) echo "PARTS is all, databases or tenants, not $parts" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/../lib.sh"

# --- tools ------------------------------------------------------------------------------------------------------
bench_pg_bindir

bench_dbmate

bench_strata

# --- cluster ----------------------------------------------------------------------------------------------------
bench_workdir fleet

"${as_server[@]}" "$bindir/initdb" -D "$work/data" -A trust -U postgres --no-sync >/dev/null
"${as_server[@]}" "$bindir/pg_ctl" -D "$work/data" -l "$work/server.log" -w \
    -o "-k $work -c listen_addresses='' -p $port -c shared_buffers=128MB -c max_connections=$((jobs * 2 + 20))" \
    start >/dev/null
url() { echo "postgresql://postgres@/$1?host=$work&port=$port"; }
dbmate_url() { echo "postgres://postgres@/$1?socket=$work&port=$port&sslmode=disable"; }
psql_to() { local db=$1; shift; "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -d "$(url "$db")" "$@"; }
export -f url psql_to
export bindir work port

# --- the migrations ---------------------------------------------------------------------------------------------
"$repo/bench/core/generate.sh" "$work/gen" "$migrations" >/dev/null
pkg="$work/gen/pkg"
floor_sql="$work/gen/floor.sql"               # CREATE SCHEMA bench; SET search_path = bench, public; then the SQL
tail -n +3 "$floor_sql" >"$work/gen/body.sql"  # the SQL alone, for tenant schemas
mkdir -p "$work/dbmate"
i=0
for f in "$pkg"/migrations/*.sql; do
    i=$((i + 1))
    cp "$f" "$work/dbmate/$(printf '%014d' $((20240101000000 + i)))_$(basename "$f")"
done

# --- databases (created once, untimed) ---------------------------------------------------------------------------
db_name() { printf 'fleet_%05d' "$1"; }
if [ "$parts" != tenants ]; then
    echo "creating $targets databases…" >&2
    for ((i = 1; i <= targets; i++)); do echo "CREATE DATABASE $(db_name "$i");"; done | psql_to postgres
    psql_to postgres -c CHECKPOINT
fi
targets_file() { # N FILE
    local n=$1 i
    for ((i = 1; i <= n; i++)); do
        printf '[[target]]\nname = "%s"\nurl = "%s"\n' "$(db_name "$i")" "$(url "$(db_name "$i")")"
    done >"$2"
}
for n in 10 100 1000 "$targets"; do
    [ "$n" -le "$targets" ] && targets_file "$n" "$work/targets_$n.toml"
done
# Empty the first N databases again (Strata's schemas, the package's, dbmate's tables in public), JOBS at a time.
reset_dbs() {
    local n=$1 i
    for ((i = 1; i <= n; i++)); do db_name "$i"; echo; done |
        xargs -P "$jobs" -I{} bash -c 'psql_to {} -c "DROP SCHEMA IF EXISTS bench, strata CASCADE; DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION pg_database_owner; GRANT USAGE ON SCHEMA public TO PUBLIC" 2>/dev/null'
    psql_to postgres -c CHECKPOINT
}
# Strata's own migrations (its schema package), applied by every first deploy.
strata_own=$(ls "$repo"/crates/pgstrata/schema/*.sql | wc -l)
check_db() { # DB TABLE EXPECTED
    local got
    got=$("$bindir/psql" -X -A -t -d "$(url "$1")" -c "SELECT count(*) FROM $2")
    [ "$got" = "$3" ] || { echo "$1: $2 has $got rows, expected $3" >&2; exit 1; }
}

now() { echo "$EPOCHREALTIME"; }
# CPU beside wall time: the shared machine's load stretches wall times, not the work done. Client: user+sys of the
# processes this shell waited for (psql, xargs, strata, dbmate); server: user+sys of the backends the postmaster
# reaped (its children's times), both in ms. `clock_start` sets start; `ms_since` prints the wall ms and leaves
# "client_ms server_ms" in $work/cpu_last for `take`.
postmaster=$(head -n 1 "$work/data/postmaster.pid")
tick_ms=$((1000 / $(getconf CLK_TCK)))
# Reads what `times` wrote: it must run in the measuring shell itself (a command substitution would report its own,
# empty, children).
client_cpu_ms() { awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.0f", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 }' "$work/times"; }
server_cpu_ms() { awk -v t="$tick_ms" '{ print ($16 + $17) * t }' "/proc/$postmaster/stat"; }
clock_start() {
    start=$(now)
    start_server=$(server_cpu_ms)
    times >"$work/times"
    start_client=$(client_cpu_ms)
}
ms_since() {
    awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", (b - a) * 1000 }'
    sleep 0.3 # the last backends exit and are reaped
    times >"$work/times"
    echo "$(($(client_cpu_ms) - start_client)) $(($(server_cpu_ms) - start_server))" >"$work/cpu_last"
}
declare -A t cc cs
take() { # KEY COMMAND...: t[KEY] wall ms, cc[KEY] client CPU ms, cs[KEY] server CPU ms
    local key=$1
    shift
    t[$key]=$("$@")
    read -r "cc[$key]" "cs[$key]" <"$work/cpu_last"
}

floor_dbs() { # N [FILE run before the floor's SQL, in the same transaction]
    local n=$1 first=${2:+-f $2} i
    clock_start
    for ((i = 1; i <= n; i++)); do db_name "$i"; echo; done |
        xargs -P "$jobs" -I{} bash -c 'psql_to {} -1 '"$first"' -f "'"$floor_sql"'" >/dev/null'
    ms_since "$start"
}
fleet_dbs() { # N
    local n=$1
    clock_start
    "$strata" -q -p "$pkg" up --targets "$work/targets_$n.toml" --jobs "$jobs" --state-dir "$work/state" >&2
    ms_since "$start"
}

if [ "$parts" != tenants ]; then
echo "databases: floor…" >&2
take db_floor floor_dbs "$targets"; reset_dbs "$targets"
echo "databases: strata up --targets…" >&2
take db_fleet fleet_dbs "$targets"
check_db "$(db_name "$targets")" strata.migration $((migrations + strata_own))
# Strata's own tables as its migrations leave them, for the floor that includes them (see below).
"$bindir/pg_dump" -d "$(url "$(db_name "$targets")")" -n strata --schema-only -f "$work/gen/strata_own.sql"
reset_dbs "$targets"
echo "databases: floor with Strata's own tables…" >&2
# The same floor, each database also getting Strata's history tables (their DDL, by psql, in the same transaction):
# what any deploy that records a history in the database pays at least; the part of the gap it explains is not
# Strata's per-deploy overhead.
take db_floor_own floor_dbs "$targets" "$work/gen/strata_own.sql"; reset_dbs "$targets"
echo "databases: strata loop…" >&2
strata_loop() { # N
    local i
    clock_start
    for ((i = 1; i <= $1; i++)); do "$strata" -q -p "$pkg" -d "$(url "$(db_name "$i")")" up; done
    ms_since "$start"
}
take db_strata_loop strata_loop "$targets"
check_db "$(db_name "$targets")" strata.migration $((migrations + strata_own))
reset_dbs "$targets"
echo "databases: dbmate loop…" >&2
dbmate_loop() { # N
    local i
    clock_start
    for ((i = 1; i <= $1; i++)); do
        "$dbmate" --url "$(dbmate_url "$(db_name "$i")")" --migrations-dir "$work/dbmate" --no-dump-schema migrate >/dev/null
    done
    ms_since "$start"
}
take db_dbmate_loop dbmate_loop "$targets"
check_db "$(db_name "$targets")" public.schema_migrations "$migrations"
reset_dbs "$targets"
echo "databases: floor again…" >&2
take db_floor2 floor_dbs "$targets"; reset_dbs "$targets"

echo "databases: growth…" >&2
for n in 10 100; do
    [ "$n" -lt "$targets" ] || continue
    take grow_floor_$n floor_dbs "$n"; reset_dbs "$n"
    take grow_fleet_$n fleet_dbs "$n"; reset_dbs "$n"
done
fi

# --- tenant schemas: one database per size and method -----------------------------------------------------------
tenant_db() { # METHOD N
    local db="ten_$1_$2"
    psql_to postgres -c "CREATE DATABASE $db"
    # Schema names differ per size (s10_…, s100_…): each tenant's package role is new to the cluster, as it would be.
    psql_to "$db" -c "DO \$\$ BEGIN FOR i IN 1..$2 LOOP EXECUTE format('CREATE SCHEMA %I', 's$2_' || lpad(i::text, 5, '0')); END LOOP; END \$\$"
    psql_to postgres -c CHECKPOINT
    echo "$db"
}
floor_tenants() { # N
    local db
    db=$(tenant_db floor "$1")
    clock_start
    for ((i = 1; i <= $1; i++)); do printf 's%d_%05d\n' "$1" "$i"; done |
        xargs -P "$jobs" -I{} bash -c 'psql_to '"$db"' -1 -c "SET search_path = {}, public" -f "'"$work/gen/body.sql"'" >/dev/null'
    ms_since "$start"
}
fleet_tenants() { # N
    local db
    db=$(tenant_db fleet "$1")
    clock_start
    "$strata" -q -p "$pkg" -d "$(url "$db")" up --tenant-schemas "s$1\\_%" --jobs "$jobs" >&2
    ms_since "$start"
    check_db "$db" strata.migration $((migrations * $1 + strata_own + 1))
}
[ "$parts" = databases ] || echo "tenant schemas…" >&2
# Each size once (TARGETS may itself be 10 or 100).
tenant_sizes=$(printf '%s\n' 10 100 "$targets" | sort -nu)
for n in $tenant_sizes; do
    [ "$n" -le "$targets" ] && [ "$parts" != databases ] || continue
    take ten_floor_$n floor_tenants "$n"
    take ten_fleet_$n fleet_tenants "$n"
done

# --- the table --------------------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
per() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.1f", a / n }'; }
row() { printf '%-52s %9s %10s %9s %11s %11s\n' "$@"; }
# LABEL KEY N VS: wall, wall per target, ratio to VS (or -), client and server CPU per target
line() { row "$1" "${t[$2]}" "$(per "${t[$2]}" "$3")" "$([ "$4" = - ] && echo - || echo "$(ratio "${t[$2]}" "$4")x")" \
    "$(per "${cc[$2]}" "$3")" "$(per "${cs[$2]}" "$3")"; }
echo
echo "Fleet benchmark: $targets targets x $migrations migrations, --jobs $jobs, $("$bindir/postgres" --version), fsync on, Unix socket"
echo "strata $("$strata" --version | awk '{ print $2 }') (release); $("$dbmate" --version); $(nproc) cores; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "CPU columns: user+sys per target of the client processes (psql, strata, dbmate) and of the server's backends"
echo
if [ "$parts" != tenants ]; then
    floor_db=$(( (t[db_floor] + t[db_floor2]) / 2 ))
    row "databases" "wall ms" "ms/target" "vs floor" "client CPU" "server CPU"
    line "floor: psql -1 per database, $jobs at a time (first)" db_floor "$targets" -
    line "floor (last)" db_floor2 "$targets" -
    line "floor + Strata's own tables (pg_dump of its schema)" db_floor_own "$targets" "$floor_db"
    line "strata up --targets (one process, --jobs $jobs)" db_fleet "$targets" "$floor_db"
    line "shell loop: strata up per database" db_strata_loop "$targets" "$floor_db"
    line "shell loop: dbmate migrate per database" db_dbmate_loop "$targets" "$floor_db"
    echo "dbmate loop / fleet: $(ratio "${t[db_dbmate_loop]}" "${t[db_fleet]}")x (goal >= 3x); fleet / floor (mean of both floors): $(ratio "${t[db_fleet]}" "$floor_db")x (goal <= 1.2x)"
    echo "fleet / floor with Strata's own tables: $(ratio "${t[db_fleet]}" "${t[db_floor_own]}")x; dbmate loop / floor: $(ratio "${t[db_dbmate_loop]}" "$floor_db")x (the fleet cannot beat the dbmate loop by more than this much while it stays above the floor)"
fi
echo
row "growth" "floor ms" "fleet ms" "ratio" "fleet cpu" "floor cpu"
growth() { # LABEL N FLOOR_KEY FLEET_KEY: wall of both, ratio, client+server CPU per target of each
    row "$1 ($(per "${t[$4]}" "$2") ms/target)" "${t[$3]}" "${t[$4]}" "$(ratio "${t[$4]}" "${t[$3]}")x" \
        "$(per $((cc[$4] + cs[$4])) "$2")" "$(per $((cc[$3] + cs[$3])) "$2")"
}
for n in 10 100; do
    [ -n "${t[grow_fleet_$n]:-}" ] || continue
    growth "$n databases" "$n" "grow_floor_$n" "grow_fleet_$n"
done
[ "$parts" = tenants ] || growth "$targets databases" "$targets" db_floor db_fleet
for n in $tenant_sizes; do
    [ -n "${t[ten_fleet_$n]:-}" ] || continue
    growth "$n tenant schemas" "$n" "ten_floor_$n" "ten_fleet_$n"
done
for k in "${!t[@]}"; do printf 'RESULT %s %s %s %s\n' "$k" "${t[$k]}" "${cc[$k]:-}" "${cs[$k]:-}"; done | sort
