//! `max_tasks_per_child(n)` replaces a worker process after it has run `n`
//! calls (a task, or a `map` chunk), counting from each worker's start.

use crate::fixtures;
use crate::harness;

use concurrent_futures::{Error, ProcessPoolExecutor};
use fixtures::{PATIENCE, pid, settle};

/// The cases of this file, run by `main.rs`.
pub(crate) const CASES: &[harness::Case] = harness::cases![
    a_worker_is_replaced_after_two_tasks,
    a_map_chunk_counts_as_one_call,
    each_new_worker_gets_its_full_allowance,
];

fn one_worker_of_two_tasks() -> ProcessPoolExecutor {
    ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap()
}

fn a_worker_is_replaced_after_two_tasks() {
    let executor = one_worker_of_two_tasks();
    let pids: Vec<u32> = (0..6)
        .map(|_| settle(&executor.submit(pid, ())).unwrap())
        .collect();
    let [a, b, c] = [pids[0], pids[2], pids[4]];
    assert_eq!(pids, [a, a, b, b, c, c], "two tasks per worker");
    assert!(a != b && b != c && a != c, "{pids:?}");
    assert!(
        !fixtures::exists(a) && !fixtures::exists(b),
        "retired workers are reaped"
    );
}

fn pid_of(_: u32) -> u32 {
    std::process::id()
}

fn a_map_chunk_counts_as_one_call() {
    let executor = one_worker_of_two_tasks();
    let pids: Vec<u32> = executor
        .map(pid_of, 0..12)
        .chunksize(3)
        .timeout(PATIENCE)
        .map(Result::unwrap)
        .collect();
    // Four chunks of three: two chunks per worker.
    let (a, b) = (pids[0], pids[6]);
    assert_ne!(a, b);
    assert_eq!(pids, [[a; 6], [b; 6]].concat());
}

fn exits(_: ()) -> u32 {
    std::process::exit(3)
}

fn each_new_worker_gets_its_full_allowance() {
    let executor = one_worker_of_two_tasks();
    let crashed = settle(&executor.submit(exits, ()));
    assert_eq!(
        crashed,
        Err(Error::WorkerDied {
            exit_code: Some(3),
            signal: None
        })
    );
    // The crash used one call of the dead worker, not of its replacement.
    let pids: Vec<u32> = (0..4)
        .map(|_| settle(&executor.submit(pid, ())).unwrap())
        .collect();
    let [b, c] = [pids[0], pids[2]];
    assert_ne!(b, c);
    assert_eq!(pids, [b, b, c, c], "two tasks per new worker");
}
