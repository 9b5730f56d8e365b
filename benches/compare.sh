#!/usr/bin/env bash
# Runs the thread-pool and process-pool benchmarks, the Python peer and the
# machine's raw limits in one session and prints two tables of medians and
# ratios: the thread pool against rayon, the threadpool crate and Python's
# concurrent.futures; the process pool against procspawn, Python and the raw
# limits of limits.c. Every pool has the same worker count (2).
#
#   benches/compare.sh                 # everything, about five minutes
#   benches/compare.sh round_trip      # extra arguments go to criterion (a filter)
#   PARTS=process benches/compare.sh   # only the process pool (or PARTS=thread)
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

echo "code: $(git describe --always --dirty 2>/dev/null || echo 'not a git checkout')"
echo "machine: $(nproc) cores, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
# Stale results of a benchmark left out of this run must not reach the table.
rm -rf "$target/criterion/submit_result" "$target/criterion/round_trip" "$target/criterion/map"
rm -rf "$target/criterion"/process_{start,round_trip,submit_result,map,big_arg}
touch "$logs/criterion.txt" "$logs/memory.txt" "$logs/process.txt" "$logs/limits.txt"
if has thread; then
    cargo bench --bench thread_pool -- "$@" 2>&1 | tee "$logs/criterion.txt" || failed+=(thread_pool)
    cargo bench --bench map_memory -- "${MAP_MEMORY_ITEMS:-10000000}" 2>&1 | tee "$logs/memory.txt" \
        || failed+=(map_memory)
fi
if has process; then
    cargo bench --bench process_pool -- "$@" 2>&1 | tee "$logs/process.txt" || failed+=(process_pool)
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
if command -v python3 >/dev/null && [ -f "$peers/overhead_python.py" ]; then
    python3 "$peers/overhead_python.py" 100000 2>&1 | tee "$logs/python.txt"
else
    echo "no python3 or no $peers/overhead_python.py: no Python column" | tee "$logs/python.txt"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
report_failures() {
    [ ${#failed[@]} -eq 0 ] || { echo "FAILED: ${failed[*]}"; exit 1; }
}
command -v python3 >/dev/null || { echo "python3 is needed for the table"; report_failures; exit 0; }

python3 - "$target/criterion" "$logs" "$parts" <<'PY'
import json, os, re, statistics, sys

crit, logs, parts = sys.argv[1], sys.argv[2], sys.argv[3].split()

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

def thread_table():
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

def figure(bench):
    """Criterion's median in ns per iteration and the throughput, or (None, {})."""
    base = os.path.join(crit, bench, "new")
    try:
        median = json.load(open(os.path.join(base, "estimates.json")))["median"]["point_estimate"]
        meta = json.load(open(os.path.join(base, "benchmark.json")))
    except (OSError, KeyError, ValueError):
        return None, {}
    return median, meta.get("throughput") or {}

def ms(bench):
    median, _ = figure(bench)
    return None if median is None else median / 1e6

def gib_s(bench):
    median, throughput = figure(bench)
    return None if median is None else throughput.get("Bytes", 0) / (median / 1e9) / 2**30

def process_table():
    py = {}
    for line in open(os.path.join(logs, "python.txt")):
        if m := re.match(r"(process [^:]+): (\d+) tasks in ([\d.]+) s", line):
            py[m.group(1)] = float(m.group(3)) / int(m.group(2)) * 1e6  # us/task, unrounded
        elif m := re.match(r"process pool start \+ first result: ([\d.]+) ms", line):
            py["start"] = float(m.group(1))
        elif m := re.match(r"process 64 MiB argument: ([\d.]+) ms", line):
            py["big"] = 64 / 1024 / (float(m.group(1)) / 1e3)
    runs = {k: [] for k in ("ping", "pipe", "fork", "ping1", "pipe1", "fork1")}
    for line in open(os.path.join(logs, "limits.txt")):
        one = "1" if line.startswith("one core: ") else ""
        line = line.removeprefix("one core: ")
        if m := re.match(r"pipe ping-pong between processes: ([\d.]+) us", line):
            runs["ping" + one].append(float(m.group(1)))
        elif m := re.match(r"pipe bandwidth: .* = ([\d.]+) GiB/s", line):
            runs["pipe" + one].append(float(m.group(1)))
        elif m := re.match(r"fork\+exec\+wait of /bin/true: ([\d.]+) ms", line):
            runs["fork" + one].append(float(m.group(1)))
    limit = {k: statistics.median(v) if v else None for k, v in runs.items()}
    fds = {}
    attempt = None
    for line in open(os.path.join(logs, "process.txt")):
        if m := re.match(r"fds (\w+) (\d+) pending: before (\d+), peak (\d+), after (\d+)", line):
            fds[m.group(1)] = tuple(int(m.group(i)) for i in range(2, 6))
        elif line.startswith(("procspawn ", "start with two tasks")):
            attempt = (attempt or []) + [line.rstrip()]

    def fd_text(who):
        f = fds.get(who)
        return "n/a" if f is None else f"{f[0]} pending: fds {f[1]} / {f[2]} / {f[3]}"

    # (measure, ours, higher is better, absolute target (text, test) or None,
    #  [(peer, figure, minimum speed-up or None for context)])
    rows = [
        ("pool start + first result, ms", ms("process_start/ours"), False, None, [
            ("procspawn Pool::new(2) + spawn + join", ms("process_start/procspawn_pool"), 1.0),
            ("Python ProcessPoolExecutor", py.get("start"), None),
            ("raw limit: fork+exec+wait of /bin/true", limit["fork"], None),
            ("raw limit, one core: fork+exec+wait of /bin/true", limit["fork1"], None),
        ]),
        ("pool start, two tasks (both workers), ms (context)", ms("process_start/ours_two_tasks_context"), False, None, [
            ("procspawn Pool::new(2) + spawn + join", ms("process_start/procspawn_pool"), None),
        ]),
        ("serial round trip, us", ours("process_round_trip/ours"), False,
         ("<= 20 us", lambda v: v <= 20), [
            ("procspawn pool spawn + join", ours("process_round_trip/procspawn_pool"), None),
            ("Python ProcessPoolExecutor", py.get("process round-trip (serial)"), None),
            ("raw limit: pipe ping-pong", limit["ping"], None),
            ("raw limit, one core: pipe ping-pong", limit["ping1"], None),
        ]),
        (f"submit + result, us/task, ours {fd_text('ours')} (before / peak / after)",
         ours("process_submit_result/ours_100k_pending"), False,
         ("<= 10 us/task, fds flat", lambda v: v <= 10 and (
             "ours" in fds and fds["ours"][2] <= fds["ours"][1] + 3 and fds["ours"][3] <= fds["ours"][1] + 3)), [
            (f"procspawn pool, {fd_text('procspawn')}", ours("process_submit_result/procspawn_pool_1k_pending"), None),
            ("Python ProcessPoolExecutor, 10000 pending", py.get("process submit+result"), None),
        ]),
        ("map chunksize 1000 over 1M items, us/item", ours("process_map/ours_chunksize_1000"), False, None, [
            ("Python map chunksize=1000 (100k items)", py.get("process map chunksize=1000"), 5.0),
            ("procspawn pool, a spawn per 1000-item chunk (context)",
             ours("process_map/procspawn_pool_chunk_1000_context"), None),
        ]),
        ("64 MiB Vec<u8> argument, GiB/s", gib_s("process_big_arg/ours"), True,
         (">= 1 GiB/s", lambda v: v >= 1), [
            ("procspawn pool spawn + join", gib_s("process_big_arg/procspawn_pool"), None),
            ("Python ProcessPoolExecutor (bytes)", py.get("big"), None),
            ("raw limit: pipe bandwidth", limit["pipe"], None),
            ("raw limit, one core: pipe bandwidth", limit["pipe1"], None),
        ]),
    ]
    print()
    print("Process pool (speed-up above 1: ours is faster; fds are this process's open descriptors)")
    print()
    print("| measure | ours | peer | peer figure | speed-up | target | met |")
    print("|---|---|---|---|---|---|---|")
    for measure, mine, higher, absolute, peers in rows:
        if absolute is not None:
            text, test = absolute
            met = "?" if mine is None else ("met" if test(mine) else "NOT met")
            print(f"| {measure} | {fmt(mine)} | (absolute) | | | {text} | {met} |")
        for label, theirs, goal in peers:
            if mine is None or theirs is None or mine == 0 or theirs == 0:
                ratio = None
            else:
                ratio = mine / theirs if higher else theirs / mine
            if goal is None:
                target, met = ("raw limit" if label.startswith("raw") else "context"), ""
            else:
                target = f">= {goal:g}x"
                met = "?" if ratio is None else ("met" if ratio >= goal else "NOT met")
            shown = "n/a" if ratio is None else f"{ratio:.3g}x"
            print(f"| {measure} | {fmt(mine)} | {label} | {fmt(theirs)} | {shown} | {target} | {met} |")
    print()
    for line in attempt or []:
        print("  " + line)

if "thread" in parts:
    thread_table()
if "process" in parts:
    process_table()
PY
report_failures
