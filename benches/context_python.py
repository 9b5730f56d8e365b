"""Python's ProcessPoolExecutor on the job of benches/context.rs: a 32 MiB
read-only table (an array.array of 4 Mi unsigned 64-bit numbers, Python's
closest to a Vec<u64>; a list would pickle far slower) used by 200 small
tasks on 2 workers, with the same lookups. Prints the median of the runs of
each row, as `python context NAME: SECONDS s`:

- initargs: the best practice, `ProcessPoolExecutor(2, initializer=init,
  initargs=(table,))` putting the table in a global, then the 200 tasks;
  the pool's start and shutdown inside the time, as in the Rust row;
- initargs_forkserver: the same with the forkserver start method (the
  default on Linux from Python 3.14; spawn, on macOS and Windows, pickles
  initargs too): the table is pickled and sent to each worker;
- start_only: the same pool without the table;
- per_task: a started pool, the table passed with every task
  (`map(lookup_in, [table] * 200, range(200))`, which is what
  `functools.partial(lookup_in, table)` sends too).

The start method is this Python's default (fork on Linux before 3.14,
where a fork hands initargs over without pickling them)."""
import array, multiprocessing, statistics, time
from concurrent.futures import ProcessPoolExecutor

TABLE_LEN = 4 << 20
TASKS = 200
WORKERS = 2

def make_table():
    return array.array("Q", ((i * 2_654_435_761) % 1000 for i in range(TABLE_LEN)))

def lookup_in(table, i):
    return sum(table[(i * 20_011 + k * 500_009) % len(table)] for k in range(8))

table = None

def init(t):
    global table
    table = t

def lookup(i):
    return lookup_in(table, i)

def nothing(i):
    return i

def timed(runs, expected, job):
    if job() != expected:
        raise SystemExit("the warm-up run gave a wrong sum")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        total = job()
        times.append(time.perf_counter() - start)
        if total != expected:
            raise SystemExit("a run gave a wrong sum")
    return statistics.median(times)

def main():
    data = make_table()
    expected = sum(lookup_in(data, i) for i in range(TASKS))

    def initargs():
        with ProcessPoolExecutor(WORKERS, initializer=init, initargs=(data,)) as executor:
            return sum(executor.map(lookup, range(TASKS)))
    print(f"python context initargs: {timed(5, expected, initargs):.6f} s", flush=True)

    forkserver = multiprocessing.get_context("forkserver")
    def initargs_forkserver():
        with ProcessPoolExecutor(WORKERS, mp_context=forkserver, initializer=init,
                                 initargs=(data,)) as executor:
            return sum(executor.map(lookup, range(TASKS)))
    print(f"python context initargs_forkserver: {timed(5, expected, initargs_forkserver):.6f} s",
          flush=True)

    def start_only():
        with ProcessPoolExecutor(WORKERS) as executor:
            return sum(executor.map(nothing, range(TASKS)))
    print(f"python context start_only: {timed(5, sum(range(TASKS)), start_only):.6f} s", flush=True)

    with ProcessPoolExecutor(WORKERS) as executor:
        executor.submit(nothing, 0).result()
        per_task = lambda: sum(executor.map(lookup_in, [data] * TASKS, range(TASKS)))
        print(f"python context per_task: {timed(3, expected, per_task):.6f} s", flush=True)

if __name__ == "__main__":
    main()
