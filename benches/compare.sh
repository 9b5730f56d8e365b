#!/usr/bin/env bash
# The one command that compares this crate with its peers. Runs the
# thread-pool and process-pool benchmarks, the Python peer and the machine's
# raw limits in one session and prints one table of ratios (throughput and
# round trip against rayon, the threadpool crate, procspawn and Python's
# concurrent.futures), then every row per pool with its target. Every pool
# has the same worker count (2). A full run (no arguments, both parts) also
# redraws benches/comparison.svg and rewrites the generated block of
# BENCHMARKS.md; commit them with the code they measured.
#
#   benches/compare.sh                 # everything, about nine minutes
#   benches/compare.sh round_trip      # extra arguments go to criterion (a filter)
#   PARTS=process benches/compare.sh   # only the process pool (or PARTS=thread)
#   PARTS=context benches/compare.sh   # only the context rows (part of process)
#
# Environment: CARGO_TARGET_DIR (criterion's results are read from
# $CARGO_TARGET_DIR/criterion, default target/criterion), PEERS (the folder of
# overhead_python.py and limits.c, default ../shared/peers beside the
# repository), MAP_MEMORY_ITEMS (default 10000000), PARTS (default
# "thread process"). Needs cargo and python3, and gcc for the raw limits;
# without python3 the runs still happen but there are no tables.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
peers=${PEERS:-../shared/peers}
parts=${PARTS:-thread process}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
has() { [[ " $parts " == *" $1 "* ]]; }
# A failing bench is reported at the end (exit 1), after the other runs and the tables.
failed=()

loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'; }
code="code: $(git describe --always --dirty 2>/dev/null || echo 'not a git checkout'), run $(date -u '+%Y-%m-%d %H:%M UTC') by \`benches/compare.sh\`"
machine="machine: $(nproc) cores, $(uname -sr), $(rustc --version 2>/dev/null | cut -d' ' -f1-2), $(python3 --version 2>&1), load average $(loadavg)"
echo "$code"
echo "$machine"
# Stale results of a benchmark left out of this run must not reach the table.
rm -rf "$target/criterion/submit_result" "$target/criterion/round_trip" "$target/criterion/map"
rm -rf "$target/criterion/map_million" "$target/criterion/map_duration"
rm -rf "$target/criterion"/process_{start,round_trip,submit_result,map,big_arg,bytes,skew,shared}
touch "$logs/criterion.txt" "$logs/memory.txt" "$logs/process.txt" "$logs/limits.txt" \
    "$logs/skew.txt" "$logs/skew_python.txt" "$logs/context.txt" "$logs/context_python.txt" \
    "$logs/shared.txt"
if has thread; then
    cargo bench --bench thread_pool -- "$@" 2>&1 | tee "$logs/criterion.txt" || failed+=(thread_pool)
    cargo bench --bench map_memory -- "${MAP_MEMORY_ITEMS:-10000000}" 2>&1 | tee "$logs/memory.txt" \
        || failed+=(map_memory)
fi
if has process; then
    cargo bench --bench process_pool -- "$@" 2>&1 | tee "$logs/process.txt" || failed+=(process_pool)
    # Uneven work, beside its ideal schedule and Python on the same inputs.
    cargo bench --bench skew -- "$@" 2>&1 | tee "$logs/skew.txt" || failed+=(skew)
    # Context put once (Shared), with its 1 GiB lines.
    cargo bench --bench shared -- "$@" 2>&1 | tee "$logs/shared.txt" || failed+=(shared)
    if [ $# -eq 0 ] && command -v python3 >/dev/null; then
        python3 benches/skew_python.py 2>&1 | tee "$logs/skew_python.txt" || failed+=(skew_python)
    fi
fi
if has process || has context; then
    # Context every task reads (a 32 MiB table over 200 tasks on 2 workers),
    # each way, beside Python's initializer+initargs and per-task forms.
    cargo bench --bench context 2>&1 | tee "$logs/context.txt" || failed+=(context)
    if command -v python3 >/dev/null; then
        python3 benches/context_python.py 2>&1 | tee "$logs/context_python.txt" \
            || failed+=(context_python)
    fi
fi
if has process; then
    # The machine's floor: three runs on both cores and, where taskset exists,
    # three on one core; the table takes medians of each. On an idle VM the
    # two-core ping-pong pays for waking an idle vCPU (~45 us here against
    # ~6 us on one core), so the one-core figures are the tighter floor.
    if command -v gcc >/dev/null && [ -f "$peers/limits.c" ] \
        && gcc -O2 "$peers/limits.c" -o "$logs/limits" 2>"$logs/gcc.txt"; then
        {
            for _ in 1 2 3; do "$logs/limits"; done
            if command -v taskset >/dev/null; then
                for _ in 1 2 3; do taskset -c 0 "$logs/limits" | sed 's/^/one core: /'; done
            fi
        } 2>&1 | tee "$logs/limits.txt"
    else
        echo "no gcc or no $peers/limits.c: no raw limits" | tee "$logs/limits.txt"
    fi
fi
if ! has thread && ! has process; then
    echo "only the context rows: no Python column" | tee "$logs/python.txt"
elif command -v python3 >/dev/null && [ -f "$peers/overhead_python.py" ]; then
    python3 "$peers/overhead_python.py" 100000 2>&1 | tee "$logs/python.txt"
else
    echo "no python3 or no $peers/overhead_python.py: no Python column" | tee "$logs/python.txt"
fi
echo "load average after: $(loadavg)"
printf '%s\n\n%s, then %s after\n' "$code" "$machine" "$(loadavg)" >"$logs/meta.txt"
report_failures() {
    [ ${#failed[@]} -eq 0 ] || { echo "FAILED: ${failed[*]}"; exit 1; }
}
command -v python3 >/dev/null || { echo "python3 is needed for the table"; report_failures; exit 0; }

if [ $# -eq 0 ] && has thread && has process; then
    python3 benches/compare.py "$target/criterion" "$logs" "$parts" BENCHMARKS.md benches/comparison.svg
else
    python3 benches/compare.py "$target/criterion" "$logs" "$parts"
fi
report_failures
