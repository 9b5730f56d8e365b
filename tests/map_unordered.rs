//! `map_unordered`: results in completion order, each input exactly once,
//! with `map`'s look-ahead, chunks, per-item errors, deadline and
//! cancel-on-drop. Completion order is set by gates the test opens, never by
//! sleeps.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use concurrent_futures::{Error, ThreadPoolExecutor};

mod common;
use common::{Gates, Order, PATIENCE, counted, pass};

/// A task whose item `n` blocks on gate `n / per_gate` when `n % per_gate`
/// is the last of its group, then returns `n`.
fn gated(gates: &Gates, per_gate: usize) -> impl Fn(usize) -> usize + Send + Sync + 'static {
    let receivers = Arc::clone(&gates.receivers);
    move |n| {
        if n % per_gate == per_gate - 1 {
            assert!(
                pass(&receivers, n / per_gate),
                "gate {} dropped",
                n / per_gate
            );
        }
        n
    }
}

#[test]
fn results_come_in_the_order_the_tasks_finish() {
    let executor = ThreadPoolExecutor::new(4);
    let gates = Gates::new(4);
    let mut results = executor
        .map_unordered(gated(&gates, 1), 0..4)
        .timeout(PATIENCE);
    for n in [2, 0, 3, 1] {
        gates.open(n);
        assert_eq!(results.next(), Some(Ok(n)), "gate {n} was the one opened");
    }
    assert_eq!(results.next(), None);
}

#[test]
fn a_stuck_task_does_not_hold_back_the_ones_after_it() {
    let executor = ThreadPoolExecutor::new(2);
    let gates = Gates::new(1);
    let receivers = Arc::clone(&gates.receivers);
    let task = move |n: usize| {
        if n == 0 {
            pass(&receivers, 0);
        }
        n
    };
    // One worker is held by item 0; the other runs every other item.
    let mut results = executor.map_unordered(task, 0..50).timeout(PATIENCE);
    let rest: Vec<_> = results.by_ref().take(49).collect();
    assert_eq!(rest, (1..50).map(Ok).collect::<Vec<_>>());
    gates.open(0);
    assert_eq!(results.next(), Some(Ok(0)));
    assert_eq!(results.next(), None);
}

#[test]
fn every_input_is_yielded_exactly_once() {
    let executor = ThreadPoolExecutor::new(3);
    for chunksize in [1, 4, 1000] {
        let mut results: Vec<_> = executor
            .map_unordered(|n: u32| n, 0..500)
            .chunksize(chunksize)
            .buffer_size(16)
            .timeout(PATIENCE)
            .collect::<Result<_, _>>()
            .unwrap();
        results.sort_unstable();
        assert_eq!(
            results,
            (0..500).collect::<Vec<_>>(),
            "chunksize {chunksize}"
        );
    }
}

#[test]
fn buffer_size_bounds_how_far_ahead_inputs_are_pulled() {
    let executor = ThreadPoolExecutor::new(2);
    let (inputs, pulled) = counted(0..1000);
    let mut results = executor
        .map_unordered(|n: u32| n, inputs)
        .buffer_size(3)
        .timeout(PATIENCE);
    for consumed in 1..=50 {
        assert!(matches!(results.next(), Some(Ok(_))));
        let pulled = pulled.load(Ordering::SeqCst);
        assert!(
            pulled <= consumed + 3,
            "pulled {pulled} inputs after consuming {consumed}, look-ahead 3"
        );
    }
}

#[test]
fn a_chunk_yields_its_items_together_in_input_order_when_it_finishes() {
    let executor = ThreadPoolExecutor::new(3);
    let gates = Gates::new(3);
    // Chunks [0, 1, 2], [3, 4, 5], [6, 7, 8]; the last item of each waits.
    let mut results = executor
        .map_unordered(gated(&gates, 3), 0..9)
        .chunksize(3)
        .timeout(PATIENCE);
    for chunk in [1, 2, 0] {
        gates.open(chunk);
        for n in chunk * 3..chunk * 3 + 3 {
            assert_eq!(results.next(), Some(Ok(n)), "chunk {chunk} was released");
        }
    }
    assert_eq!(results.next(), None);
}

#[test]
fn a_panic_is_that_items_error_and_iteration_goes_on() {
    let executor = ThreadPoolExecutor::new(2);
    for chunksize in [1, 3] {
        let results: Vec<_> = executor
            .map_unordered(
                |n: u32| {
                    assert_ne!(n, 4, "item {n} fails");
                    n
                },
                0..10,
            )
            .chunksize(chunksize)
            .timeout(PATIENCE)
            .collect();
        assert_eq!(results.len(), 10, "chunksize {chunksize}");
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(
            matches!(failed[..], [Error::Panicked { message, .. }] if message.contains("item 4 fails")),
            "chunksize {chunksize}: {failed:?}"
        );
        let mut ok: Vec<_> = results.into_iter().filter_map(Result::ok).collect();
        ok.sort_unstable();
        assert_eq!(ok, [0, 1, 2, 3, 5, 6, 7, 8, 9]);
    }
}

#[test]
fn the_timeout_yields_timeout_once_ends_and_cancels_the_rest() {
    common::check_the_timeout_yields_timeout_once_then_ends(Order::Completion);
}

#[test]
fn dropping_the_iterator_cancels_the_tasks_not_started() {
    common::check_dropping_the_iterator_cancels_the_tasks_not_started(Order::Completion);
}
