//! A task that panics in a worker process fails only its own future, with
//! `Error::Panicked` carrying the message and the location in this file;
//! the worker catches it and serves the next task. Inside a `map` chunk, a
//! panic fails only its own item.

use crate::fixtures;

use concurrent_futures::{Error, ProcessPoolExecutor};
use fixtures::EXPECTED;
use fixtures::{PATIENCE, pid, settle};

/// A pool whose workers keep the panics these tests cause off stderr.
fn quiet_pool(max_workers: usize) -> ProcessPoolExecutor {
    ProcessPoolExecutor::builder()
        .max_workers(max_workers)
        .initializer(fixtures::quiet_expected_panics)
        .build()
        .unwrap()
}

const PANIC_LINE: u32 = line!() + 3;
fn unlucky(n: u32) -> u32 {
    if n.is_multiple_of(13) {
        panic!("{EXPECTED}no {n} today");
    }
    n * 2
}

fn assert_panicked_here(outcome: Result<u32, Error>, n: u32) {
    let Err(Error::Panicked {
        message, location, ..
    }) = outcome
    else {
        panic!("expected Error::Panicked for {n}, got {outcome:?}");
    };
    assert_eq!(message, format!("{EXPECTED}no {n} today"));
    let location = location.expect("the worker reports where the task panicked");
    let expected = format!("{}:{PANIC_LINE}:", file!());
    assert!(
        location.starts_with(&expected),
        "location {location:?}, expected {expected:?}..."
    );
}

#[test]
fn a_panic_fails_only_its_task() {
    let _alone = fixtures::alone();
    let executor = quiet_pool(1);
    let worker = settle(&executor.submit(pid, ())).unwrap();
    let before = executor.submit(unlucky, 1);
    let panicked = executor.submit(unlucky, 26);
    let after = executor.submit(unlucky, 2);
    assert_eq!(settle(&before), Ok(2));
    assert_panicked_here(settle(&panicked), 26);
    assert_eq!(settle(&after), Ok(4));
    assert_eq!(
        settle(&executor.submit(pid, ())),
        Ok(worker),
        "a panic is caught: the same worker process goes on"
    );
}

#[test]
fn a_panic_in_a_chunk_fails_only_its_item() {
    let _alone = fixtures::alone();
    let executor = quiet_pool(2);
    for chunksize in [1, 8, 100] {
        let results: Vec<_> = executor
            .map(unlucky, 1..=40)
            .chunksize(chunksize)
            .timeout(PATIENCE)
            .collect();
        assert_eq!(results.len(), 40, "chunksize {chunksize}");
        for (n, outcome) in (1..=40_u32).zip(results) {
            if n.is_multiple_of(13) {
                assert_panicked_here(outcome, n);
            } else {
                assert_eq!(outcome, Ok(n * 2), "item {n}, chunksize {chunksize}");
            }
        }
    }
}
