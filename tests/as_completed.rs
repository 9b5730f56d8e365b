//! `as_completed`: finished futures first, then the rest in the order they
//! complete (the test sets that order by releasing held tasks), duplicates
//! once, and `.timeout(d)` as one total deadline. Ported in spirit from
//! Python's `test_as_completed.py`.

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, Future, ThreadPoolExecutor, as_completed};

mod common;
use common::{PATIENCE, finished, held, position};

#[test]
fn finished_futures_come_first_then_the_rest_in_completion_order() {
    let executor = ThreadPoolExecutor::new(4);
    let (f0, release0) = held(&executor, 0);
    let f1 = finished(&executor, 1);
    let (f2, release2) = held(&executor, 2);
    let f3 = finished(&executor, 3);
    let (f4, release4) = held(&executor, 4);
    let all = [&f0, &f1, &f2, &f3, &f4];
    let mut iter = as_completed(all);

    let first_two: HashSet<_> = (0..2)
        .map(|_| position(&all, iter.next().unwrap()))
        .collect();
    assert_eq!(first_two, HashSet::from([1, 3]), "the finished ones first");

    // Now release in the order 4, 0, 2; each next() sees exactly that one.
    for (release, expected) in [(&release4, 4), (&release0, 0), (&release2, 2)] {
        release.send(()).unwrap();
        let next = iter.next().expect("one more future");
        assert_eq!(position(&all, next), expected);
        assert_eq!(next.result_timeout(Duration::ZERO), Ok(expected as u32));
    }
    assert!(iter.next().is_none());
}

#[test]
fn a_cancelled_future_is_yielded_as_completed() {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, release) = held(&executor, 0);
    let queued = executor.submit(|n: u32| n, 1);
    let all = [&busy, &queued];
    let mut iter = as_completed(all);
    assert!(queued.cancel());
    let first = iter.next().unwrap();
    assert_eq!(position(&all, first), 1);
    assert!(first.cancelled());
    release.send(()).unwrap();
    assert_eq!(position(&all, iter.next().unwrap()), 0);
    assert!(iter.next().is_none());
}

#[test]
fn a_future_given_twice_is_yielded_once() {
    let executor = ThreadPoolExecutor::new(2);
    let done = finished(&executor, 1);
    let (pending, release) = held(&executor, 2);
    let all = [&done, &pending, &done, &pending, &done];
    let mut iter = as_completed(all);
    assert!(std::ptr::eq(iter.next().unwrap(), &done));
    release.send(()).unwrap();
    assert!(std::ptr::eq(iter.next().unwrap(), &pending));
    assert!(iter.next().is_none(), "each future once");
}

#[test]
fn as_completed_on_nothing_ends_at_once() {
    let none: [&Future<u8>; 0] = [];
    assert!(as_completed(none).next().is_none());
    let mut timed = as_completed(none).timeout(PATIENCE);
    assert!(timed.next().is_none(), "nothing left, so no timeout either");
}

#[test]
fn every_future_is_yielded_whatever_the_order() {
    let executor = ThreadPoolExecutor::new(4);
    let futures: Vec<_> = (0..50).map(|n| executor.submit(|n: u32| n, n)).collect();
    let mut seen: Vec<u32> = as_completed(&futures)
        .map(|f| f.result().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
}

#[test]
fn the_timeout_yields_what_completes_then_timeout_once_then_ends() {
    let executor = ThreadPoolExecutor::new(2);
    let done = finished(&executor, 1);
    let (stuck, _release) = held(&executor, 2);
    let all = [&stuck, &done];
    let timeout = Duration::from_millis(100);
    let start = Instant::now();
    let mut iter = as_completed(all).timeout(timeout);
    let first = iter.next().unwrap().expect("the finished future first");
    assert_eq!(position(&all, first), 1);
    assert_eq!(
        iter.next().map(|r| r.map(|_| ())),
        Some(Err(Error::Timeout))
    );
    assert!(start.elapsed() >= timeout, "the timeout came early");
    assert!(iter.next().is_none());
    assert!(iter.next().is_none(), "and stays ended");
    assert!(!stuck.done(), "the timeout does not touch the futures");
}

#[test]
fn the_timeout_is_one_deadline_for_the_whole_iteration() {
    let executor = ThreadPoolExecutor::new(3);
    let done = finished(&executor, 1);
    let (stuck, _release) = held(&executor, 2);
    let all = [&done, &stuck];
    let timeout = Duration::from_millis(400);
    let mut iter = as_completed(all).timeout(timeout);
    // Time is the behaviour: spend the whole budget before the first next().
    thread::sleep(timeout);
    // What had finished before the call is still handed over...
    let first = iter.next().unwrap().expect("a finished future is yielded");
    assert_eq!(position(&all, first), 0);
    // ...but the rest get no fresh budget: the deadline is behind us.
    let start = Instant::now();
    assert_eq!(
        iter.next().map(|r| r.map(|_| ())),
        Some(Err(Error::Timeout))
    );
    let waited = start.elapsed();
    assert!(
        waited < timeout / 2,
        "the deadline had passed, yet next() waited {waited:?}"
    );
    assert!(iter.next().is_none());
}

#[test]
fn the_length_counts_the_futures_not_yet_yielded_held_or_not() {
    let executor = ThreadPoolExecutor::new(3);
    let done = finished(&executor, 1);
    let (first, release_first) = held(&executor, 2);
    let (second, release_second) = held(&executor, 3);
    // Given twice, counted once; the held ones count although not done.
    let all = [&done, &first, &done, &second];
    let mut iter = as_completed(all);
    assert_eq!((iter.len(), iter.size_hint()), (3, (3, Some(3))));
    assert!(std::ptr::eq(iter.next().unwrap(), &done));
    assert_eq!(iter.len(), 2, "two still held");
    release_second.send(()).unwrap();
    assert!(std::ptr::eq(iter.next().unwrap(), &second));
    assert_eq!(iter.len(), 1);
    release_first.send(()).unwrap();
    assert!(std::ptr::eq(iter.next().unwrap(), &first));
    assert_eq!(iter.len(), 0);
    assert!(iter.next().is_none(), "the length was exact");
}

#[test]
fn a_progress_bar_reaches_its_length_when_every_future_is_yielded() {
    use indicatif::{ProgressDrawTarget, ProgressIterator};
    let executor = ThreadPoolExecutor::new(4);
    let futures: Vec<_> = (0..20).map(|n| executor.submit(|n: u32| n, n)).collect();
    // .progress() sizes the bar from len(); hidden, the bar keeps the test quiet.
    let completed = as_completed(&futures).progress();
    completed
        .progress
        .set_draw_target(ProgressDrawTarget::hidden());
    let bar = completed.progress.clone();
    assert_eq!((bar.position(), bar.length()), (0, Some(20)));
    assert_eq!(completed.count(), 20);
    assert_eq!(bar.position(), 20);
}
