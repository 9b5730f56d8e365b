//! Context that every task reads, on `ProcessPoolExecutor`: a 32 MiB
//! read-only table (`Vec<u64>`) used by 200 small tasks on 2 workers
//! (issue 23). Each row is the time of the whole job, beside the thread
//! pool sharing an `Arc` and beside Python's `ProcessPoolExecutor` on the
//! same job (`context_python.py`, run by `benches/compare.sh`). Prints one
//! line per row, `context NAME: SECONDS s` (the median of the runs), which
//! `compare.py` reads.
//!
//! - `per_task`: today's form on a started pool: the table in every task's
//!   argument (`starmap` over `(table, i)` pairs, `functools.partial`'s
//!   port).
//! - `initargs`: Python's best practice ported: a pool built with
//!   `initializer_with(init, table)`, whose workers put the table in a
//!   `static`, then the 200 tasks, then the pool dropped. The pool's start
//!   is inside the time, as the table crosses when a worker starts.
//! - `start_only`: the same pool without the table, built, the 200 tasks,
//!   dropped: what `initargs` costs beyond the table.
//! - `thread_arc`: a started `ThreadPoolExecutor` of 2 threads, each task a
//!   closure over an `Arc` of the table: nothing copied.
//!
//! Not criterion: the `per_task` row takes seconds a run, and criterion's
//! warm-up and ten samples at least would take minutes; the rows are few
//! and long, so each is one warm-up run, then the median of a few, as the
//! Python peer does.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use concurrent_futures::{ProcessPoolExecutor, ThreadPoolExecutor};

/// 32 MiB of `u64`.
const TABLE_LEN: usize = 4 << 20;
const TASKS: usize = 200;
const WORKERS: usize = 2;

fn table() -> Vec<u64> {
    (0..TABLE_LEN as u64)
        .map(|i| i.wrapping_mul(2_654_435_761) % 1000)
        .collect()
}

/// A small task: eight entries of the table, spread over it.
fn lookup_in(table: &[u64], i: usize) -> u64 {
    (0..8)
        .map(|k| table[(i * 20_011 + k * 500_009) % table.len()])
        .sum()
}

/// The worker's copy of the table, set by [`init`].
static TABLE: OnceLock<Vec<u64>> = OnceLock::new();

fn init(table: Vec<u64>) {
    TABLE
        .set(table)
        .expect("a worker runs its initializer once");
}

fn lookup(i: usize) -> u64 {
    lookup_in(TABLE.get().expect("set by init"), i)
}

fn nothing(i: usize) -> u64 {
    i as u64
}

fn lookup_per_task(table: Vec<u64>, i: usize) -> u64 {
    lookup_in(&table, i)
}

/// The median of `runs` runs of `job` in seconds, after one warm-up run;
/// each run's result must be `expected`. `prepare` makes each run's input,
/// outside the time.
fn timed<S>(
    runs: usize,
    expected: u64,
    mut prepare: impl FnMut() -> S,
    mut job: impl FnMut(S) -> u64,
) -> f64 {
    assert_eq!(job(prepare()), expected, "the warm-up run");
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let input = prepare();
            let start = Instant::now();
            let sum = job(input);
            let took = start.elapsed().as_secs_f64();
            assert_eq!(sum, expected);
            took
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn report(name: &str, seconds: f64) {
    println!("context {name}: {seconds:.6} s");
}

fn main() {
    // `cargo test --benches` runs each bench binary with `--bench` absent:
    // then do one quick pass of every row, with a small table.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let table = if quick { vec![1; 1 << 10] } else { table() };
    let expected: u64 = (0..TASKS).map(|i| lookup_in(&table, i)).sum();
    let runs = |slow: bool| match (quick, slow) {
        (true, _) => 1,
        (false, true) => 3,
        (false, false) => 5,
    };

    let pool = ProcessPoolExecutor::new(WORKERS);
    report(
        "per_task",
        timed(
            runs(true),
            expected,
            || (),
            |()| {
                let pairs = (0..TASKS).map(|i| (table.clone(), i));
                pool.starmap(lookup_per_task, pairs)
                    .map(Result::unwrap)
                    .sum()
            },
        ),
    );
    drop(pool);

    report(
        "initargs",
        timed(
            runs(false),
            expected,
            || table.clone(),
            |table| {
                let pool = ProcessPoolExecutor::builder()
                    .max_workers(WORKERS)
                    .initializer_with(init, table)
                    .build()
                    .expect("a pool");
                pool.map(lookup, 0..TASKS).map(Result::unwrap).sum()
            },
        ),
    );

    let unshared: u64 = (0..TASKS as u64).sum();
    report(
        "start_only",
        timed(
            runs(false),
            unshared,
            || (),
            |()| {
                let pool = ProcessPoolExecutor::new(WORKERS);
                pool.map(nothing, 0..TASKS).map(Result::unwrap).sum()
            },
        ),
    );

    let threads = ThreadPoolExecutor::new(WORKERS);
    let shared = Arc::new(table);
    report(
        "thread_arc",
        timed(
            runs(false),
            expected,
            || Arc::clone(&shared),
            |table| {
                threads
                    .map(move |i| lookup_in(&table, i), 0..TASKS)
                    .map(Result::unwrap)
                    .sum()
            },
        ),
    );
}
