"""Python's ProcessPoolExecutor on the uneven work of benches/skew.rs: the
same inputs, default chunksize=1, the same worker counts. Prints the median
of three runs of each scenario, as `python skew NAME: SECONDS s`."""
import statistics, sys, time
from concurrent.futures import ProcessPoolExecutor

def task(millis):
    if millis:
        time.sleep(millis / 1000)
    return millis

def inputs(total, slow, at):
    return [400 if at <= i < at + slow else 0 for i in range(total)]

def timed(run, runs=3):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with ProcessPoolExecutor(4) as four:
        four.submit(task, 0).result()
        def slow_after_quick():
            futures = [four.submit(task, 0) for _ in range(2000)]
            futures += [four.submit(task, 400) for _ in range(8)]
            for future in futures:
                future.result()
        print(f"python skew slow_after_quick: {timed(slow_after_quick, runs):.3f} s", flush=True)
        total = 40_008
        for name, at in (("start", 0), ("middle", 20_000), ("end", total - 8)):
            data = inputs(total, 8, at)
            run = lambda: sum(four.map(task, data))
            print(f"python skew map_slow_{name}: {timed(run, runs):.3f} s", flush=True)
    with ProcessPoolExecutor(2) as two:
        two.submit(task, 0).result()
        def long_then_short():
            long = two.submit(task, 3000)
            short = [two.submit(task, 20) for _ in range(100)]
            for future in short:
                future.result()
            long.result()
        print(f"python skew long_then_short: {timed(long_then_short, runs):.3f} s", flush=True)

if __name__ == "__main__":
    main()
