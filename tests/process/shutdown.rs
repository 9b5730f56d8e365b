//! Shutting a process pool down: waiting finishes the queued work;
//! `cancel_futures` cancels what has not started; `terminate_workers()` and
//! `kill_workers()` stop everything now, failing running tasks with
//! `WorkerDied` and queued ones with `Cancelled`. Afterwards no worker
//! process is left, not even a zombie.

use crate::fixtures;

use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, ProcessPoolExecutor, Shutdown};
use fixtures::{Scratch, assert_no_children, block_until_released, leave_a_mark, settle};

/// Takes a little while, so that work is still queued at shutdown.
fn slowly(n: u32) -> u32 {
    thread::sleep(Duration::from_millis(20));
    n
}

#[test]
fn shutdown_finishes_the_queued_work() {
    let _alone = fixtures::alone();
    assert_no_children();
    let executor = ProcessPoolExecutor::new(1);
    let futures: Vec<_> = (0..5).map(|n| executor.submit(slowly, n)).collect();
    executor.shutdown();
    assert!(futures.iter().all(|f| f.done()), "shutdown waited for them");
    let results: Vec<_> = futures.iter().map(settle).collect();
    assert_eq!(results, (0..5).map(Ok).collect::<Vec<_>>());
    assert_no_children();
    assert_eq!(settle(&executor.submit(slowly, 9)), Err(Error::Shutdown));
    assert_no_children();
}

#[test]
fn dropping_the_pool_finishes_the_queued_work() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(2);
    let futures: Vec<_> = (0..6).map(|n| executor.submit(slowly, n)).collect();
    drop(executor);
    assert!(futures.iter().all(|f| f.done()), "drop waited for them");
    let results: Vec<_> = futures.iter().map(settle).collect();
    assert_eq!(results, (0..6).map(Ok).collect::<Vec<_>>());
    assert_no_children();
}

#[test]
fn cancel_futures_cancels_what_has_not_started() {
    let _alone = fixtures::alone();
    let scratch = Scratch::new("cancel-futures");
    let executor = ProcessPoolExecutor::new(1);
    let running = executor.submit(block_until_released, scratch.arg());
    scratch.wait_for_files("started-", 1);
    let queued: Vec<_> = (0..3)
        .map(|_| executor.submit(leave_a_mark, scratch.arg()))
        .collect();

    executor.shutdown_with(Shutdown {
        wait: false,
        cancel_futures: true,
    });
    for future in &queued {
        assert!(future.cancelled(), "cancelled by the shutdown itself");
    }
    assert!(!running.done(), "the running task goes on");
    scratch.touch("release");
    settle(&running).expect("the running task finishes normally");
    executor.shutdown();
    assert_no_children();
    assert_eq!(scratch.files("ran-"), Vec::<String>::new(), "none ran");
}

/// Two running tasks and three queued ones, then `stop`: the running ones
/// die by `signal`, the queued ones are cancelled, no process is left.
fn stops_everything_now(stop: fn(&ProcessPoolExecutor), died: Error) {
    let scratch = Scratch::new("stop-now");
    let executor = ProcessPoolExecutor::new(2);
    let running: Vec<_> = (0..2)
        .map(|_| executor.submit(block_until_released, scratch.arg()))
        .collect();
    scratch.wait_for_files("started-", 2);
    let queued: Vec<_> = (0..3)
        .map(|_| executor.submit(leave_a_mark, scratch.arg()))
        .collect();

    let start = Instant::now();
    stop(&executor);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "it took {took:?}");
    assert!(running.iter().chain(&queued).all(|f| f.done()));
    let died = Err(died);
    for future in &running {
        assert_eq!(settle(future), died);
    }
    for future in &queued {
        assert_eq!(settle(future), Err(Error::Cancelled));
    }
    assert_no_children();
    assert_eq!(scratch.files("ran-"), Vec::<String>::new(), "none ran");
    assert_eq!(
        settle(&executor.submit(leave_a_mark, scratch.arg())),
        Err(Error::Shutdown)
    );
}

#[test]
fn terminate_workers_stops_everything_now() {
    let _alone = fixtures::alone();
    stops_everything_now(
        ProcessPoolExecutor::terminate_workers,
        fixtures::terminated_by_pool(),
    );
}

#[test]
fn kill_workers_stops_everything_now() {
    let _alone = fixtures::alone();
    stops_everything_now(
        ProcessPoolExecutor::kill_workers,
        fixtures::killed_by_pool(),
    );
}

const SLOW_START: &str = "slow-start";

/// An initializer that signals it started, then waits (at most 5 s) for
/// `release` in the directory the test made for it.
fn slow_start() {
    let dir = fixtures::parents_scratch(SLOW_START);
    std::fs::write(dir.join(format!("init-{}", std::process::id())), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dir.join("release").exists() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn kill_workers_stops_a_worker_that_is_still_starting() {
    let _alone = fixtures::alone();
    let scratch = Scratch::for_workers(SLOW_START);
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .initializer(slow_start)
        .build()
        .unwrap();
    let task = executor.submit(fixtures::pid, ());
    scratch.wait_for_files("init-", 1);

    let start = Instant::now();
    executor.kill_workers();
    let took = start.elapsed();
    scratch.touch("release"); // in case it did not stop
    let outcome = settle(&task);
    assert!(
        took < Duration::from_secs(2) && outcome.is_err(),
        "kill_workers() must kill a worker still in its initializer at once, and fail its \
         task; it took {took:?}, and the task's outcome is {outcome:?}"
    );
    assert_no_children();
}
