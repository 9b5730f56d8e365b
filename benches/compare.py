"""Tables and chart for benches/compare.sh.

Usage: compare.py CRITERION_DIR LOGS_DIR PARTS [BENCHMARKS_MD SVG]

Reads criterion's medians and the logs compare.sh wrote (python.txt,
limits.txt, process.txt, memory.txt, skew.txt, skew_python.txt, context.txt,
context_python.txt, shared.txt, meta.txt), prints one table of ratios
and the detailed tables per pool. With BENCHMARKS_MD and SVG it also draws
the chart into SVG and replaces the generated block of BENCHMARKS_MD (between
its `compare.sh:begin` and `compare.sh:end` markers) with what it printed.
"""
import contextlib, io, json, math, os, re, statistics, sys

crit, logs, parts = sys.argv[1], sys.argv[2], sys.argv[3].split()
markdown, svg_path = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, None)

def figure(bench):
    """Criterion's median in ns per iteration and the throughput, or (None, {})."""
    base = os.path.join(crit, bench, "new")
    try:
        median = json.load(open(os.path.join(base, "estimates.json")))["median"]["point_estimate"]
        meta = json.load(open(os.path.join(base, "benchmark.json")))
    except (OSError, KeyError, ValueError):
        return None, {}
    return median, meta.get("throughput") or {}

def ours(bench):
    """Criterion's median in microseconds per task (per element if a throughput is set)."""
    median, throughput = figure(bench)
    return None if median is None else median / throughput.get("Elements", 1) / 1e3

python = {}
for line in open(os.path.join(logs, "python.txt")):
    m = re.match(r"(thread [^:]+): .* ([\d.]+) us/task", line)
    if m:
        python[m.group(1)] = float(m.group(2))

def best_fixed(group, pattern):
    """The fastest row of a criterion group whose name matches `pattern` (a
    regex whose group is the chunk size): (label, us per item or None)."""
    rows = []
    with contextlib.suppress(OSError):
        for name in os.listdir(os.path.join(crit, group)):
            m = re.fullmatch(pattern, name)
            if m and (figure_us := ours(f"{group}/{name}")) is not None:
                rows.append((figure_us, int(m.group(1))))
    if not rows:
        return "best fixed chunksize", None
    figure_us, size = min(rows)
    return f"best fixed chunksize ({size}; {len(rows)} tried)", figure_us

# The task durations of the thread pool's map_duration rows.
DURATIONS = ["10ns", "1us", "100us", "10ms"]

def fmt(value):
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"

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
    tables += [
        ("default map, 1M items of a ~50 ns task, us/item", "map_million/ours_default_hash50", [
            ("rayon par_iter().map().collect()", ours("map_million/rayon_hash50"), 1 / 2),
        ]),
        ("default map, 1M identity items, us/item", "map_million/ours_default_identity", [
            ("rayon par_iter().map().collect()", ours("map_million/rayon_identity"), 1 / 10),
        ]),
    ]
    for label in DURATIONS:
        tables.append((f"default map, {label} tasks, us/item", f"map_duration/{label}_default", [
            (*best_fixed("map_duration", re.escape(label) + r"_chunksize_(\d+)"), 1 / 1.5),
        ]))
    variants = ("ours_default", "ours_buffer_size_32", "ours_buffer_size_32_pull_on_thread",
                "ours_chunksize_64", "ours_chunksize_1024")
    for variant in variants:
        # pull_on_thread is an opt-in for inputs that stall: its cost is
        # shown, with no target of its own.
        goal = None if variant.endswith("pull_on_thread") else 30.0
        tables.append((f"map ({variant.removeprefix('ours_').replace('_', ' ')}), us/item", f"map/{variant}", [
            ("Python ThreadPoolExecutor.map", python.get("thread map"), goal),
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
            print("- " + line.rstrip())
    for line in open(os.path.join(logs, "criterion.txt")):
        if line.startswith("map tasks:"):
            print("- " + line.rstrip())

def ms(bench):
    median, _ = figure(bench)
    return None if median is None else median / 1e6

def gib_s(bench):
    median, throughput = figure(bench)
    return None if median is None else throughput.get("Bytes", 0) / (median / 1e9) / 2**30

def result_gib_s(size):
    """A `size` result's GiB/s: the echo's median (both ways) less the
    argument's (one way), for the bytes coming back."""
    echo, throughput = figure(f"process_bytes/echo_{size}")
    arg, _ = figure(f"process_bytes/arg_{size}")
    if echo is None or arg is None or echo <= arg:
        return None
    return throughput.get("Bytes", 0) / ((echo - arg) / 1e9) / 2**30

# Python's process figures (us/task; ms for the start; GiB/s for the big argument)
# and the raw limits, medians of limits.c's runs.
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

def process_table():
    fds = {}
    attempt = None
    floor = {}
    for line in open(os.path.join(logs, "process.txt")):
        if m := re.match(r"fds (\w+) (\d+) pending: before (\d+), peak (\d+), after (\d+)", line):
            fds[m.group(1)] = tuple(int(m.group(i)) for i in range(2, 6))
        elif m := re.match(r"bytes floor (\w+): copy into a fresh vector ([\d.]+) GiB/s, into a reused one ([\d.]+)", line):
            floor[m.group(1)] = (float(m.group(2)), float(m.group(3)))
        elif line.startswith(("procspawn ", "start with two tasks", "process_map mix25")):
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
         ("<= 8 us", lambda v: v <= 8), [
            ("procspawn pool spawn + join", ours("process_round_trip/procspawn_pool"), None),
            ("Python ProcessPoolExecutor", py.get("process round-trip (serial)"), None),
            ("raw limit: pipe ping-pong", limit["ping"], None),
            ("raw limit, one core: pipe ping-pong", limit["ping1"], None),
        ]),
        (f"submit + result, us/task, ours {fd_text('ours')} (before / peak / after)",
         ours("process_submit_result/ours_100k_pending"), False,
         ("<= 3 us/task, fds flat", lambda v: v <= 3 and (
             "ours" in fds and fds["ours"][2] <= fds["ours"][1] + 3 and fds["ours"][3] <= fds["ours"][1] + 3)), [
            (f"procspawn pool, {fd_text('procspawn')}", ours("process_submit_result/procspawn_pool_1k_pending"), None),
            ("Python ProcessPoolExecutor, 10000 pending", py.get("process submit+result"), None),
        ]),
        ("map chunksize 1000 over 1M items, us/item", ours("process_map/ours_chunksize_1000"), False, None, [
            ("Python map chunksize=1000 (100k items)", py.get("process map chunksize=1000"), 5.0),
            ("procspawn pool, a spawn per 1000-item chunk (context)",
             ours("process_map/procspawn_pool_chunk_1000_context"), None),
        ]),
        ("default map of a ~25 ns task over 1M items, us/item", ours("process_map/ours_default_25ns"), False,
         None, [
            (*best_fixed("process_map", r"ours_chunksize_(\d+)_25ns"), 1 / 1.5),
        ]),
    ]
    for size, target in (("1MiB", None), ("64MiB", (">= 4 GiB/s", lambda v: v >= 4))):
        fresh, reused = floor.get(size, (None, None))
        floors = [
            ("floor: copy into a fresh Vec<u8> here", fresh, None),
            ("floor: copy into reused memory here (memcpy)", reused, None),
            # Bytes moved between processes through shared memory, owned
            # on both sides: the sender's copy in, the receiver's copy out.
            ("floor: two such copies, in and out of shared memory (memcpy / 2)",
             reused and reused / 2, None),
        ]
        label = size.replace("MiB", " MiB")
        peers = [("raw limit: pipe bandwidth (64 MiB)", limit["pipe"], None),
                 ("raw limit, one core: pipe bandwidth (64 MiB)", limit["pipe1"], None)]
        if size == "64MiB":
            peers = [("procspawn pool spawn + join", gib_s(f"process_bytes/procspawn_pool_arg_{size}"), None),
                     ("Python ProcessPoolExecutor (bytes)", py.get("big"), None)] + peers
        rows.append((f"{label} Vec<u8> argument, GiB/s", gib_s(f"process_bytes/arg_{size}"), True,
                     target, peers + floors))
        rows.append((f"{label} Vec<u8> result (echo less argument), GiB/s", result_gib_s(size), True,
                     target, floors))
    # Typed payloads of the same size, beside the Vec<u8> rows and the floor
    # of two copies: a Vec<f64> travels as its memory, a struct's encoding
    # is written straight into the shared memory and decoded out of it.
    reused = floor.get("64MiB", (None, None))[1]
    typed_floor = ("floor: two copies, in and out of shared memory (memcpy / 2)", reused and reused / 2, None)
    for name, label in (("f64_64MiB", "64 MiB Vec<f64>"), ("three_60MiB", "struct of three 20 MiB Vec<f64>")):
        three = (">= 3 GiB/s", lambda v: v >= 3)
        rows.append((f"{label} argument, GiB/s", gib_s(f"process_bytes/arg_{name}"), True, three, [
            ("64 MiB Vec<u8> argument", gib_s("process_bytes/arg_64MiB"), None), typed_floor]))
        rows.append((f"{label} result (echo less argument), GiB/s", result_gib_s(name), True, three, [
            ("64 MiB Vec<u8> result", result_gib_s("64MiB"), None), typed_floor]))
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
                target = f"ours within {1 / goal:.1f}x (>= {goal:.2f})" if goal < 1 else f">= {goal:g}x"
                met = "?" if ratio is None else ("met" if ratio >= goal else "NOT met")
            shown = "n/a" if ratio is None else f"{ratio:.3g}x"
            print(f"| {measure} | {fmt(mine)} | {label} | {fmt(theirs)} | {shown} | {target} | {met} |")
    print()
    for line in attempt or []:
        print("- " + line)

def skew_table():
    """Uneven work on the process pool: each row beside its ideal schedule
    (the slow work spread evenly over the workers) and Python's
    ProcessPoolExecutor (chunksize=1) on the same inputs."""
    python_skew = {}
    with contextlib.suppress(OSError):
        for line in open(os.path.join(logs, "skew_python.txt")):
            if m := re.match(r"python skew (\w+): ([\d.]+) s", line):
                python_skew[m.group(1)] = float(m.group(2))
    order = None
    with contextlib.suppress(OSError):
        for line in open(os.path.join(logs, "skew.txt")):
            if line.startswith("skew order:"):
                order = line.rstrip()
    slow = "8 x 400 ms"
    rows = [
        ("slow_after_quick", f"{slow} after 2,000 quick tasks, 4 workers", 0.8, 1.3),
        ("map_slow_start", f"default map, {slow} at the start of 40,008 inputs, 4 workers", 0.8, 1.3),
        ("map_slow_middle", f"default map, {slow} in the middle of 40,008 inputs, 4 workers", 0.8, 1.3),
        ("map_slow_end", f"default map, {slow} at the end of 40,008 inputs, 4 workers", 0.8, 1.3),
        ("long_then_short", "one 3 s task, then 100 x 20 ms, 2 workers", 3.0, 1.2),
    ]
    print()
    print("Uneven work (process pool): seconds, ours against the ideal schedule and Python (chunksize=1)")
    print()
    print("| work | ours, s | ideal, s | ours / ideal | target | met | Python, s | Python / ours |")
    print("|---|---|---|---|---|---|---|---|")
    for bench, label, ideal, goal in rows:
        mine = ms(f"process_skew/{bench}")
        mine = None if mine is None else mine / 1e3
        theirs = python_skew.get(bench)
        ratio = None if mine is None else mine / ideal
        met = "?" if ratio is None else ("met" if ratio <= goal else "NOT met")
        speed = "n/a" if mine is None or theirs is None else f"{theirs / mine:.3g}x"
        shown = "n/a" if ratio is None else f"{ratio:.3f}x"
        print(f"| {label} | {fmt(mine)} | {ideal:g} | {shown} | within {goal:g}x | {met} | {fmt(theirs)} | {speed} |")
    if order:
        print()
        print("- " + order + " (wanted: all 100)")

def context_table():
    """Context every task reads (issue 23): a 32 MiB table, 200 tasks, 2
    workers, each way of giving it to the tasks, in seconds for the whole
    job, beside Python's forms of the same job. Both files hold lines
    `[python ]context NAME: SECONDS s` (medians, from context.rs and
    context_python.py)."""
    def read(name, prefix):
        found = {}
        with contextlib.suppress(OSError):
            for line in open(os.path.join(logs, name)):
                if m := re.match(prefix + r"context (\w+): ([\d.]+) s", line):
                    found[m.group(1)] = float(m.group(2))
        return found
    mine, python = read("context.txt", ""), read("context_python.txt", "python ")
    if not mine and not python:
        return
    rows = [
        ("per_task", "the table in every task's argument, started pool", "per_task"),
        ("initargs", "`initializer_with(init, table)` into a static (Python: initializer + initargs into a global), pool start included", "initargs"),
        ("initargs", "the same, Python with the forkserver start method (it pickles initargs, as spawn does)", "initargs_forkserver"),
        ("start_only", "the same pool without the table, start included (what `initargs` costs beyond the table)", "start_only"),
        ("thread_arc", "thread pool, a closure over an `Arc` (Python: none)", None),
    ]
    print()
    print("Context every task reads: a 32 MiB table, 200 tasks, 2 workers; seconds for the job (medians)")
    print()
    print("| form | ours, s | Python, s | Python / ours |")
    print("|---|---|---|---|")
    # The Shared handle (benches/shared.rs, criterion's median), a new
    # handle each time on a started pool.
    handle = ms("process_shared/table_32mib_200_tasks_plain")
    if handle is not None:
        mine["shared_handle"] = handle / 1e3
        rows.insert(1, ("shared_handle", "a `Shared<[u64]>` handle in every task's argument (put once per worker, shared memory), started pool (Python: none)", None))
    for bench, label, peer in rows:
        ours_s, theirs = mine.get(bench), python.get(peer) if peer else None
        speed = "n/a" if ours_s is None or theirs is None else f"{theirs / ours_s:.3g}x"
        shown = lambda v: "n/a" if v is None else f"{v:.4g}"
        print(f"| {label} | {shown(ours_s)} | {shown(theirs) if peer else ''} | {speed if peer else ''} |")

def shared_table():
    """Context put once (`Shared`, benches/shared.rs): the 32 MiB table over
    200 tasks on 2 workers, and the 1 GiB value's lines from the log."""
    lines = []
    with contextlib.suppress(OSError):
        for line in open(os.path.join(logs, "shared.txt")):
            if line.startswith("shared 1GiB"):
                lines.append(line.rstrip())
    rows = [
        ("Shared<[u64]> (shared memory), process pool", "table_32mib_200_tasks_plain", 50),
        ("the same handle kept: the tasks alone, the value in both workers already (context)", "table_32mib_200_tasks_plain_kept", None),
        ("Shared<Vec<u64>> (serialized, sent once per worker; context)", "table_32mib_200_tasks_typed", None),
        ("Shared<[u64]>, thread pool (an Arc; context)", "table_32mib_200_tasks_threads", None),
    ]
    print()
    print("Context put once (`Shared`): a 32 MiB table, a new handle each time, over 200 small tasks, 2 workers; ms")
    print()
    print("| form | ms | target | met |")
    print("|---|---|---|---|")
    for label, bench, goal in rows:
        mine = ms(f"process_shared/{bench}")
        met = "" if goal is None else ("?" if mine is None else ("met" if mine <= goal else "NOT met"))
        target = "" if goal is None else f"<= {goal} ms"
        print(f"| {label} | {fmt(mine)} | {target} | {met} |")
    for line in lines:
        print()
        print("- " + line)

# The headline: (pool, measure, unit, higher is better, [(who, figure)]), ours first.
def headline():
    thread_tp = [
        ("ours", ours("submit_result/ours")),
        ("rayon", ours("submit_result/rayon_spawn_channel_per_task")),
        ("threadpool", ours("submit_result/threadpool_execute_channel_per_task")),
        ("Python", python.get("thread submit+result")),
    ]
    thread_rt = [
        ("ours", ours("round_trip/ours")),
        ("rayon", ours("round_trip/rayon_spawn_channel")),
        ("threadpool", ours("round_trip/threadpool_execute_channel")),
        ("Python", python.get("thread round-trip (serial)")),
    ]
    process_tp = [
        ("ours", ours("process_submit_result/ours_100k_pending")),
        ("procspawn", ours("process_submit_result/procspawn_pool_1k_pending")),
        ("Python", py.get("process submit+result")),
    ]
    process_rt = [
        ("ours", ours("process_round_trip/ours")),
        ("procspawn", ours("process_round_trip/procspawn_pool")),
        ("Python", py.get("process round-trip (serial)")),
        ("pipe ping-pong, one core (floor)", limit["ping1"]),
    ]
    per_second = lambda figures: [(w, None if f is None else 1e6 / f) for w, f in figures]
    rows = []
    if "thread" in parts:
        rows += [("threads", "throughput, tasks/s", True, per_second(thread_tp)),
                 ("threads", "round trip, us", False, thread_rt)]
    if "process" in parts:
        rows += [("processes", "throughput, tasks/s", True, per_second(process_tp)),
                 ("processes", "round trip, us", False, process_rt)]
    return rows

def ratio_table(rows):
    peers = ["rayon", "threadpool", "procspawn", "Python"]
    print("How many times faster ours is (above 1: ours is faster)")
    print()
    print("| pool | measure | ours | " + " | ".join(f"vs {p}" for p in peers) + " |")
    print("|---|---|---|" + "---|" * len(peers))
    for pool, measure, higher, figures in rows:
        mine = figures[0][1]
        cells = []
        for peer in peers:
            theirs = dict(figures).get(peer)
            if mine is None or theirs is None:
                cells.append("" if peer not in dict(figures) else "n/a")
            else:
                cells.append(f"{(mine / theirs if higher else theirs / mine):.3g}x")
        print(f"| {pool} | {measure} | {fmt(mine)} | " + " | ".join(cells) + " |")

def chart(rows, path):
    """Horizontal bars on a log scale, one panel per headline row."""
    width, bar, gap, label_w, top = 760, 18, 4, 230, 28
    panels, y = [], 10
    for pool, measure, higher, figures in rows:
        known = [(w, f) for w, f in figures if f]
        if not known:
            continue
        lo = math.floor(math.log10(min(f for _, f in known)))
        hi = math.ceil(math.log10(max(f for _, f in known)))
        hi = hi if hi > lo else lo + 1
        scale = lambda f: (math.log10(f) - lo) / (hi - lo) * (width - label_w - 90)
        better = "longer is better" if higher else "shorter is better"
        out = [f'<text x="0" y="{y + 16}" font-weight="bold">{pool}: {measure} ({better}, log scale)</text>']
        for i, (who, f) in enumerate(known):
            by = y + top + i * (bar + gap)
            colour = "#d95f02" if who == "ours" else "#7570b3"
            out.append(f'<text x="{label_w - 6}" y="{by + 13}" text-anchor="end">{who}</text>')
            out.append(f'<rect x="{label_w}" y="{by}" width="{max(scale(f), 1):.1f}" height="{bar}" fill="{colour}"/>')
            out.append(f'<text x="{label_w + max(scale(f), 1) + 4:.1f}" y="{by + 13}">{fmt(f)}</text>')
        panels.append("\n".join(out))
        y += top + len(known) * (bar + gap) + 16
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" '
           f'font-family="sans-serif" font-size="12">\n'
           f'<rect width="100%" height="100%" fill="white"/>\n' + "\n".join(panels) + "\n</svg>\n")
    with open(path, "w") as f:
        f.write(svg)

def report():
    meta = open(os.path.join(logs, "meta.txt")).read().strip() if os.path.exists(os.path.join(logs, "meta.txt")) else ""
    if meta:
        print(meta)
        print()
    rows = headline()
    if rows:
        ratio_table(rows)
    if svg_path:
        print()
        print(f"![ours against the peers, from this run](benches/{os.path.basename(svg_path)})")
    if "thread" in parts:
        print()
        print("### Thread pool, every row")
        thread_table()
    if "process" in parts:
        print()
        print("### Process pool, every row")
        process_table()
        skew_table()
        shared_table()
    if "process" in parts or "context" in parts:
        context_table()

printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    report()
print(printed.getvalue(), end="")
if markdown:
    chart(headline(), svg_path)
    text = open(markdown).read()
    begin, end = "<!-- compare.sh:begin -->", "<!-- compare.sh:end -->"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        open(markdown, "w").write(f"{head}{begin}\n{printed.getvalue().rstrip()}\n{end}{tail}")
        print(f"\nwrote {svg_path} and the generated block of {markdown}")
    else:
        print(f"\n{markdown} has no {begin} ... {end} block: left unchanged; wrote {svg_path}")
