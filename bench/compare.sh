#!/usr/bin/env bash
# Compare two builds of strata on one benchmark, in the same session: the benchmark runs ROUNDS times with each
# binary, alternately (A B A B …), so load from other processes hits both alike. Prints, for each measurement the
# benchmark reports (its `RESULT name ms` lines, medians of its own runs), the median over the rounds for A and B
# and the ratio B/A (below 1: B is faster). Floors and dbmate rows are measured in every round too: their A and B
# columns show how much the machine itself varied.
#
# Usage: bench/compare.sh BIN_A BIN_B ROUNDS BENCHMARK [ARGS…]
#   e.g. bench/compare.sh /tmp/strata-main target/release/strata 3 bench/core/run.sh 1000 3
set -euo pipefail

[ $# -ge 4 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2") rounds=$3
shift 3
for bin in "$a" "$b"; do
    [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }
done

out=$(mktemp -d /tmp/strata-compare-XXXXXX)
trap 'rm -rf "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
    for side in A B; do
        bin=$a
        [ "$side" = B ] && bin=$b
        echo "round $r/$rounds: $side ($bin)…" >&2
        STRATA_BIN=$bin "$@" >"$out/$side.$r.txt" 2>"$out/$side.$r.err" || {
            cat "$out/$side.$r.err" >&2
            exit 1
        }
        grep '^RESULT ' "$out/$side.$r.txt" | sed "s/^RESULT /$side /" >>"$out/results"
    done
done

echo
echo "$* — A: $a, B: $b; $rounds rounds, alternating; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-24s %12s %12s %8s   %s\n' "measurement (ms)" "A median" "B median" "B/A" "every round: A | B"
awk '
    { v[$2, $1] = v[$2, $1] " " $3; if (!($2 in seen)) { seen[$2] = 1; order[n++] = $2 } }
    function median(list,    a, k, i, j, t) {
        k = split(list, a, " ")
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    END {
        for (i = 0; i < n; i++) {
            name = order[i]; ma = median(v[name, "A"]); mb = median(v[name, "B"])
            printf "%-24s %12.1f %12.1f %8.2f  %s |%s\n", name, ma, mb, (ma > 0 ? mb / ma : 0), v[name, "A"], v[name, "B"]
        }
    }' "$out/results"
