# Sourced by the benchmark scripts (`. "$(dirname "$0")/../lib.sh"`): what each of them needs before it measures,
# written once. Every function sets plain variables of the calling script and exits 2 with a message when
# something is missing.
#
#   bench_pg_bindir [TOOL...]  bindir: $PG_BINDIR, else `pg_config --bindir`, else the newest
#                              /usr/lib/postgresql/*/bin; it must hold initdb and each TOOL (e.g. pg_dump)
#   bench_strata               strata: $STRATA_BIN (a given build: bench/compare.sh runs two alternately), else a
#                              release build of this checkout
#   bench_dbmate               dbmate: $DBMATE, else on PATH, else installed from npm into
#                              ~/.cache/strata-bench/dbmate (as bench/interop and .ci/run do)
#   bench_workdir NAME         work: a fresh /tmp/strata-bench-NAME-XXXXXX the server's OS user can write;
#                              as_server: `runuser -u postgres --` when run as root (initdb refuses root), else
#                              nothing; port: a random one. On exit the server in $work/data is stopped and the
#                              folder removed (after `bench_before_cleanup`, if the script defines it).

# The repository this file belongs to.
bench_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bench_pg_bindir() {
    bindir=${PG_BINDIR:-}
    if [ -z "$bindir" ] && command -v pg_config >/dev/null 2>&1; then
        bindir=$(pg_config --bindir)
    fi
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
        bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    fi
    local tool
    for tool in initdb "$@"; do
        [ -x "$bindir/$tool" ] || { echo "no PostgreSQL $tool found (set PG_BINDIR)" >&2; exit 2; }
    done
}

bench_strata() {
    if [ -n "${STRATA_BIN:-}" ]; then
        strata=$STRATA_BIN
    else
        echo "building strata (release)…" >&2
        (cd "$bench_repo" && cargo build --release -q -p strata-cli)
        strata="${CARGO_TARGET_DIR:-$bench_repo/target}/release/strata"
    fi
    [ -x "$strata" ] || { echo "no strata binary at $strata" >&2; exit 2; }
}

bench_dbmate() {
    dbmate=${DBMATE:-}
    if [ -z "$dbmate" ] && command -v dbmate >/dev/null 2>&1; then
        dbmate=$(command -v dbmate)
    fi
    if [ -z "$dbmate" ]; then
        local cache=${XDG_CACHE_HOME:-$HOME/.cache}/strata-bench/dbmate
        dbmate="$cache/node_modules/@dbmate/linux-x64/bin/dbmate"
        if [ ! -x "$dbmate" ]; then
            echo "installing dbmate from npm into $cache…" >&2
            mkdir -p "$cache"
            npm install --silent --no-audit --no-fund --prefix "$cache" dbmate@2 >&2
        fi
    fi
    [ -x "$dbmate" ] || { echo "no dbmate binary (set DBMATE)" >&2; exit 2; }
}

bench_workdir() {
    work=$(mktemp -d "/tmp/strata-bench-$1-XXXXXX")
    chmod 755 "$work"
    as_server=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$work"
        as_server=(runuser -u postgres --)
    fi
    port=$((20000 + RANDOM % 20000))
    trap bench_cleanup EXIT
}

bench_cleanup() {
    if declare -F bench_before_cleanup >/dev/null; then
        bench_before_cleanup || true
    fi
    if [ -d "$work/data" ]; then
        "${as_server[@]}" "$bindir/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
