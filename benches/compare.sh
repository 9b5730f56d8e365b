#!/usr/bin/env bash
# Runs the thread-pool benchmarks and the Python peer in one session and prints
# one table of medians and ratios: ours against rayon, the threadpool crate and
# Python's concurrent.futures, each with the same worker count (2).
#
#   benches/compare.sh                 # everything, a few minutes
#   benches/compare.sh round_trip      # extra arguments go to criterion (a filter)
#
# Environment: CARGO_TARGET_DIR (criterion's results are read from
# $CARGO_TARGET_DIR/criterion, default target/criterion), PEERS (the folder of
# overhead_python.py, default ../shared/peers beside the repository),
# MAP_MEMORY_ITEMS (default 10000000). Needs cargo and python3; without python3
# the runs still happen but there is no table and no Python column.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
peers=${PEERS:-../shared/peers}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

echo "code: $(git describe --always --dirty 2>/dev/null || echo 'not a git checkout')"
echo "machine: $(nproc) cores, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
# Stale results of a benchmark left out of this run must not reach the table.
rm -rf "$target/criterion/submit_result" "$target/criterion/round_trip" "$target/criterion/map"
cargo bench --bench thread_pool -- "$@" 2>&1 | tee "$logs/criterion.txt"
cargo bench --bench map_memory -- "${MAP_MEMORY_ITEMS:-10000000}" 2>&1 | tee "$logs/memory.txt"
if command -v python3 >/dev/null && [ -f "$peers/overhead_python.py" ]; then
    python3 "$peers/overhead_python.py" 100000 2>&1 | tee "$logs/python.txt"
else
    echo "no python3 or no $peers/overhead_python.py: no Python column" | tee "$logs/python.txt"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
command -v python3 >/dev/null || { echo "python3 is needed for the table"; exit 0; }

python3 - "$target/criterion" "$logs" <<'PY'
import json, os, re, sys

crit, logs = sys.argv[1], sys.argv[2]

def ours(bench):
    """Criterion's median in microseconds per task (per element if a throughput is set)."""
    base = os.path.join(crit, bench, "new")
    try:
        median = json.load(open(os.path.join(base, "estimates.json")))["median"]["point_estimate"]
        meta = json.load(open(os.path.join(base, "benchmark.json")))
    except (OSError, KeyError, ValueError):
        return None
    elements = (meta.get("throughput") or {}).get("Elements", 1)
    return median / elements / 1e3

python = {}
for line in open(os.path.join(logs, "python.txt")):
    m = re.match(r"(thread [^:]+): .* ([\d.]+) us/task", line)
    if m:
        python[m.group(1)] = float(m.group(2))

def fmt(us):
    return "n/a" if us is None else f"{us:.3g}"

# (measure, our bench, [(peer label, peer median in us, target as a minimum of peer/ours or None)])
tables = [
    ("submit + result, us/task", "submit_result/ours", [
        ("rayon spawn + channel per task", ours("submit_result/rayon_spawn_channel_per_task"), 1.0),
        ("threadpool execute + channel per task", ours("submit_result/threadpool_execute_channel_per_task"), 1.0),
        ("rayon spawn + one shared channel (context)", ours("submit_result/rayon_spawn_shared_channel"), None),
        ("threadpool execute + one shared channel (context)", ours("submit_result/threadpool_execute_shared_channel"), None),
        ("Python ThreadPoolExecutor", python.get("thread submit+result"), 15.0),
    ]),
    ("serial round trip, us", "round_trip/ours", [
        ("rayon spawn + channel", ours("round_trip/rayon_spawn_channel"), 1 / 1.2),
        ("threadpool execute + channel", ours("round_trip/threadpool_execute_channel"), 20.0),
        ("Python ThreadPoolExecutor", python.get("thread round-trip (serial)"), None),
    ]),
]
for variant in ("ours_default", "ours_buffer_size_32", "ours_chunksize_64", "ours_chunksize_1024"):
    tables.append((f"map ({variant.removeprefix('ours_').replace('_', ' ')}), us/item", f"map/{variant}", [
        ("Python ThreadPoolExecutor.map", python.get("thread map"), 30.0),
        ("rayon par_iter().map().collect() (context: eager, no per-item Result)",
         ours("map/rayon_par_iter_collect_context"), None),
    ]))

print()
print("| measure | ours | peer | peer median | peer / ours | target | met |")
print("|---|---|---|---|---|---|---|")
for measure, bench, peers in tables:
    mine = ours(bench)
    for label, theirs, goal in peers:
        ratio = None if mine is None or theirs is None else theirs / mine
        if goal is None:
            target, met = "context", ""
        elif goal < 1:
            target = f"ours within {1 / goal:.1f}x (>= {goal:.2f})"
        else:
            target = f">= {goal:g}x"
        if goal is not None:
            met = "?" if ratio is None else ("met" if ratio >= goal else "NOT met")
        shown = "n/a" if ratio is None else f"{ratio:.3g}x"
        print(f"| {measure} | {fmt(mine)} | {label} | {fmt(theirs)} | {shown} | {target} | {met} |")

print()
for line in open(os.path.join(logs, "memory.txt")):
    if line.startswith("map_memory"):
        print("  " + line.rstrip())
PY
