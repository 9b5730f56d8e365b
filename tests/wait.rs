//! `wait`: FirstCompleted, FirstException and AllCompleted, duplicates, and
//! timeouts that never lose a future. Ported in spirit from Python's
//! `test_wait.py`.
//!
//! "Returns at once" is checked against a generous bound: if `wait` did not
//! return at once it would sit out its full `PATIENCE`. Where `wait` must
//! *not* return early, a short timeout is given and the time spent must be at
//! least that timeout, which can never flake.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, Future, ReturnWhen, ThreadPoolExecutor, wait};

mod common;
use common::{PATIENCE, finished, held, position};

/// Far less than `PATIENCE`: a wait that took this long was not "at once".
const PROMPTLY: Duration = Duration::from_secs(5);

/// A future cancelled while queued behind a held task.
fn cancelled(executor: &ThreadPoolExecutor) -> Future<i32> {
    let queued = executor.submit(|n: i32| n, 0);
    assert!(
        queued.cancel(),
        "queued behind held tasks, so still pending"
    );
    queued
}

/// Which of `all` the futures in `some` are, by position.
fn positions(all: &[&Future<i32>], some: &[&Future<i32>]) -> Vec<usize> {
    some.iter().map(|f| position(all, f)).collect()
}

/// Three held tasks, returning 1, `middle` and 3; `wait(when)` on another
/// thread must return promptly once the middle one is released, with it
/// alone done. Returns its future.
fn returns_once_the_middle_task_ends(when: ReturnWhen, middle: i32) -> Future<i32> {
    let executor = ThreadPoolExecutor::new(3);
    let (a, _release_a) = held(&executor, 1);
    let (b, release_b) = held(&executor, middle);
    let (c, _release_c) = held(&executor, 3);
    let all = [&a, &b, &c];
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            let start = Instant::now();
            let (done, not_done) = wait(all, when, Some(PATIENCE));
            (
                positions(&all, &done),
                positions(&all, &not_done),
                start.elapsed(),
            )
        });
        release_b.send(()).unwrap();
        let (done, not_done, took) = waiter.join().unwrap();
        assert_eq!((done, not_done), (vec![1], vec![0, 2]));
        assert!(took < PROMPTLY, "returned only after {took:?}");
    });
    b
}

#[test]
fn first_completed_returns_at_the_first_completion() {
    let b = returns_once_the_middle_task_ends(ReturnWhen::FirstCompleted, 2);
    assert_eq!(b.result(), Ok(2));
}

/// A held task and one already finished with `value` (failed, if
/// negative): `wait(when)` must return at once, with the finished one
/// alone done.
fn returns_at_once_with_the_finished_one(when: ReturnWhen, value: i32) {
    let executor = ThreadPoolExecutor::new(2);
    let (pending, _release) = held(&executor, 1);
    let done_already = finished(&executor, value);
    let all = [&pending, &done_already];
    let start = Instant::now();
    let (done, not_done) = wait(all, when, Some(PATIENCE));
    assert!(start.elapsed() < PROMPTLY, "took {:?}", start.elapsed());
    assert_eq!(
        (positions(&all, &done), positions(&all, &not_done)),
        (vec![1], vec![0])
    );
}

#[test]
fn first_completed_returns_at_once_if_a_future_is_already_done() {
    returns_at_once_with_the_finished_one(ReturnWhen::FirstCompleted, 2);
}

#[test]
fn a_cancelled_future_counts_as_completed() {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, _release) = held(&executor, 1);
    let gone = cancelled(&executor);
    let all = [&busy, &gone];
    let (done, not_done) = wait(all, ReturnWhen::FirstCompleted, Some(PATIENCE));
    assert_eq!(
        (positions(&all, &done), positions(&all, &not_done)),
        (vec![1], vec![0])
    );
}

#[test]
fn first_exception_returns_at_the_first_failure() {
    let failing = returns_once_the_middle_task_ends(ReturnWhen::FirstException, -1);
    assert!(matches!(failing.result(), Err(Error::Panicked { .. })));
}

#[test]
fn first_exception_returns_at_once_if_a_future_already_failed() {
    returns_at_once_with_the_finished_one(ReturnWhen::FirstException, -2);
}

#[test]
fn first_exception_does_not_stop_at_a_success_or_a_cancel() {
    let executor = ThreadPoolExecutor::new(2);
    let succeeded = finished(&executor, 1);
    let (pending, _release) = held(&executor, 2);
    let (_busy, _release_busy) = held(&executor, 3);
    let gone = cancelled(&executor);
    let all = [&succeeded, &pending, &gone];
    let timeout = Duration::from_millis(100);
    let start = Instant::now();
    let (done, not_done) = wait(all, ReturnWhen::FirstException, Some(timeout));
    let took = start.elapsed();
    assert!(
        took >= timeout,
        "no failure yet, so it waits for everything; it returned after {took:?}"
    );
    assert_eq!(
        (positions(&all, &done), positions(&all, &not_done)),
        (vec![0, 2], vec![1])
    );
}

#[test]
fn first_exception_without_a_failure_waits_for_all() {
    let executor = ThreadPoolExecutor::new(3);
    let (a, release_a) = held(&executor, 1);
    let (b, release_b) = held(&executor, 2);
    let all = [&a, &b];
    let (about_to_wait, wait_about) = mpsc::channel();
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            about_to_wait.send(()).unwrap();
            let (done, not_done) = wait(all, ReturnWhen::FirstException, Some(PATIENCE));
            (positions(&all, &done), positions(&all, &not_done))
        });
        wait_about.recv().unwrap();
        release_a.send(()).unwrap();
        release_b.send(()).unwrap();
        assert_eq!(waiter.join().unwrap(), (vec![0, 1], vec![]));
    });
}

#[test]
fn all_completed_waits_for_every_future() {
    let executor = ThreadPoolExecutor::new(3);
    let (a, release_a) = held(&executor, 1);
    let (b, release_b) = held(&executor, -2);
    let done_already = finished(&executor, 3);
    let all = [&a, &b, &done_already];
    let timeout = Duration::from_millis(100);
    // With two still held, it waits out the whole timeout.
    let start = Instant::now();
    let (done, not_done) = wait(all, ReturnWhen::AllCompleted, Some(timeout));
    assert!(start.elapsed() >= timeout);
    assert_eq!(
        (positions(&all, &done), positions(&all, &not_done)),
        (vec![2], vec![0, 1])
    );
    release_a.send(()).unwrap();
    release_b.send(()).unwrap();
    let (done, not_done) = wait(all, ReturnWhen::AllCompleted, Some(PATIENCE));
    assert_eq!((positions(&all, &done), not_done.len()), (vec![0, 1, 2], 0));
    assert_eq!(a.result(), Ok(1));
    assert!(matches!(b.result(), Err(Error::Panicked { .. })));
}

#[test]
fn all_completed_without_a_timeout() {
    let executor = ThreadPoolExecutor::new(4);
    let futures: Vec<_> = (0..20)
        .map(|n| executor.submit(|n: i32| n * 2, n))
        .collect();
    let (done, not_done) = wait(&futures, ReturnWhen::AllCompleted, None);
    assert_eq!((done.len(), not_done.len()), (20, 0));
    for (n, future) in (0..).zip(done) {
        assert_eq!(future.result(), Ok(n * 2), "done keeps input order");
    }
}

#[test]
fn a_future_given_twice_counts_once() {
    let executor = ThreadPoolExecutor::new(2);
    let (pending, _release) = held(&executor, 1);
    let done_already = finished(&executor, 2);
    let all = [&done_already, &pending, &done_already, &pending];
    let (done, not_done) = wait(all, ReturnWhen::AllCompleted, Some(Duration::ZERO));
    assert_eq!((done.len(), not_done.len()), (1, 1));
    assert!(std::ptr::eq(done[0], &done_already));
    assert!(std::ptr::eq(not_done[0], &pending));
}

#[test]
fn a_timeout_never_panics_and_never_loses_a_future() {
    let executor = ThreadPoolExecutor::new(3);
    let (a, _release_a) = held(&executor, 1);
    let done_already = finished(&executor, 2);
    let (b, _release_b) = held(&executor, 3);
    let all = [&a, &done_already, &b];
    for return_when in [
        ReturnWhen::FirstCompleted,
        ReturnWhen::FirstException,
        ReturnWhen::AllCompleted,
    ] {
        for timeout in [Duration::ZERO, Duration::from_millis(20)] {
            let (done, not_done) = wait(all, return_when, Some(timeout));
            assert_eq!(
                (positions(&all, &done), positions(&all, &not_done)),
                (vec![1], vec![0, 2]),
                "{return_when:?}, {timeout:?}"
            );
        }
    }
    // A timeout too large to add to "now" means no deadline, not a panic.
    let (done, not_done) = wait(
        [&done_already],
        ReturnWhen::AllCompleted,
        Some(Duration::MAX),
    );
    assert_eq!((done.len(), not_done.len()), (1, 0));
}

#[test]
fn waiting_on_nothing_returns_at_once() {
    let none: [&Future<i32>; 0] = [];
    for return_when in [
        ReturnWhen::FirstCompleted,
        ReturnWhen::FirstException,
        ReturnWhen::AllCompleted,
    ] {
        let (done, not_done) = wait(none, return_when, None);
        assert!(done.is_empty() && not_done.is_empty());
    }
}

#[test]
fn waiting_again_after_a_timeout_still_sees_the_completion() {
    let executor = ThreadPoolExecutor::new(1);
    let (a, release) = held(&executor, 5);
    for _ in 0..100 {
        let (done, _) = wait([&a], ReturnWhen::FirstCompleted, Some(Duration::ZERO));
        assert!(done.is_empty());
    }
    release.send(()).unwrap();
    let (done, not_done) = wait([&a], ReturnWhen::FirstCompleted, Some(PATIENCE));
    assert_eq!((done.len(), not_done.len()), (1, 0));
    assert_eq!(a.result(), Ok(5));
}
