//! A program whose `main` does NOT call `concurrent_futures::init()` gets
//! `Error::InitMissing` from a process pool, at once: no hang, and no fork
//! bomb of runs of `main` starting pools of their own.

// Runs on Linux (natively, and on the portable Unix path that macOS takes):
// its checks read /proc, and the process pool is not built on Windows yet.
// Elsewhere this binary is empty; `no_main` only until these tests use the
// default harness, where `#![cfg]` alone would do.
#![cfg_attr(not(target_os = "linux"), no_main)]
#![cfg(target_os = "linux")]

#[path = "common/process_fixtures.rs"]
mod fixtures;
#[path = "common/process_harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use concurrent_futures::{Error, ProcessPoolExecutor};
use fixtures::{PATIENCE, assert_no_children, pid, settle};

fn main() {
    // Deliberately no concurrent_futures::init() here.
    harness::run(harness::cases![a_pool_without_init_says_so]);
}

fn a_pool_without_init_says_so() {
    let start = Instant::now();
    let executor = ProcessPoolExecutor::new(4);
    let futures: Vec<_> = (0..8).map(|_| executor.submit(pid, ())).collect();
    for future in &futures {
        assert_eq!(settle(future), Err(Error::InitMissing));
    }
    let mapped: Vec<_> = executor.map(pid, [(); 5]).timeout(PATIENCE).collect();
    assert_eq!(mapped, [const { Err(Error::InitMissing) }; 5]);
    assert_no_children();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "it took {took:?}");
    let message = Error::InitMissing.to_string();
    assert!(
        message.contains("init()") && message.contains("harness = false"),
        "{message}"
    );
    drop(executor);
    assert_no_children();
}
