//! A process pool does not leak file descriptors: not over 10,000 tasks,
//! and not over many worker replacements (retired, crashed or killed).

use crate::fixtures;
use crate::harness;

use concurrent_futures::{Error, ProcessPoolExecutor};
use fixtures::{open_fds, pid, settle};

/// The cases of this file, run by `main.rs`.
pub(crate) const CASES: &[harness::Case] = harness::cases![
    ten_thousand_tasks_keep_the_fd_count_flat,
    replacing_workers_keeps_the_fd_count_flat,
];

/// A little slack for descriptors the runtime may open once.
const SLACK: usize = 3;

fn square(n: u64) -> u64 {
    n * n
}

fn ten_thousand_tasks_keep_the_fd_count_flat() {
    let executor = ProcessPoolExecutor::new(2);
    // Warm up: both workers running.
    let warm: Vec<_> = (0..100).map(|n| executor.submit(square, n)).collect();
    warm.iter().for_each(|f| assert!(settle(f).is_ok()));
    let before = open_fds();

    let futures: Vec<_> = (0..10_000).map(|n| executor.submit(square, n)).collect();
    for (n, future) in (0..).zip(&futures) {
        assert_eq!(settle(future), Ok(n * n));
    }
    let after = open_fds();
    assert!(
        after <= before + SLACK,
        "{before} fds before 10,000 tasks, {after} after"
    );
}

fn exits(_: ()) -> u32 {
    std::process::exit(3)
}

fn replacing_workers_keeps_the_fd_count_flat() {
    let before = open_fds();
    let executor = ProcessPoolExecutor::builder()
        .max_workers(2)
        .max_tasks_per_child(5)
        .build()
        .unwrap();
    for round in 0..20 {
        let tasks: Vec<_> = (0..10).map(|_| executor.submit(pid, ())).collect();
        let crash = executor.submit(exits, ());
        tasks
            .iter()
            .for_each(|f| assert!(settle(f).is_ok(), "round {round}"));
        assert!(matches!(settle(&crash), Err(Error::WorkerDied { .. })));
        // Each live worker holds a channel: two descriptors on our side.
        let now = open_fds();
        assert!(
            now <= before + 2 * 2 + SLACK,
            "round {round}: {before} fds before, {now} now"
        );
    }
    drop(executor);
    let after = open_fds();
    assert!(
        after <= before + SLACK,
        "{before} fds before 60 worker replacements, {after} after"
    );
    fixtures::assert_no_children();
}
