//! The life of one `Future`: cancel, done/running, result with and without a
//! timeout, waking blocked threads, done callbacks, and handing the value over
//! once. Ported in spirit from Python's `test_future.py`.
//!
//! No test sleeps to synchronise: a task is held "running" by blocking on a
//! channel until the test releases it, and reports that it started on another.

use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, Future, ThreadPoolExecutor};

mod common;
use common::{PATIENCE, current_name, hold, named, spy};

#[test]
fn cancel_is_true_on_pending_and_cancelled_false_on_running_and_finished() {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, release) = hold(&executor);
    let (ran, runs) = mpsc::channel();
    let queued = spy(&executor, &ran, 1);
    drop(ran);

    assert!(!queued.done() && !queued.running() && !queued.cancelled());
    assert!(queued.cancel(), "a pending future cancels");
    assert!(queued.cancel(), "cancelling again still says cancelled");
    assert!(queued.cancelled() && queued.done() && !queued.running());

    assert!(busy.running());
    assert!(!busy.cancel(), "a running task cannot be cancelled");
    assert!(busy.running() && !busy.cancelled(), "and keeps running");

    release.send(()).unwrap();
    assert_eq!(busy.result_timeout(PATIENCE), Ok(true));
    assert!(!busy.cancel(), "a finished future stays finished");
    assert!(!busy.cancelled());

    executor.shutdown();
    assert_eq!(
        runs.try_recv(),
        Err(TryRecvError::Disconnected),
        "the cancelled task must never run"
    );
}

#[test]
fn done_and_running_follow_the_life_of_the_task() {
    let executor = ThreadPoolExecutor::new(1);
    let (first, release_first) = hold(&executor);
    let (started, wait_started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    let second = executor.submit(
        move |()| {
            started.send(()).unwrap();
            gate.recv().map(|()| 2)
        },
        (),
    );

    // Pending: queued behind `first`.
    assert!(!second.running(), "pending is not running");
    assert!(!second.done(), "pending is not done");

    release_first.send(()).unwrap();
    wait_started.recv_timeout(PATIENCE).unwrap();
    assert!(first.done() && !first.running());
    assert!(second.running(), "started and held: running");
    assert!(!second.done(), "running is not done");

    release.send(()).unwrap();
    assert_eq!(second.result_timeout(PATIENCE), Ok(Ok(2)));
    assert!(second.done() && !second.running() && !second.cancelled());
}

#[test]
fn a_failed_future_is_done_and_not_running() {
    let executor = ThreadPoolExecutor::new(1);
    let future = executor.submit(|()| -> u8 { panic!("failure") }, ());
    assert!(matches!(
        future.result_timeout(PATIENCE),
        Err(Error::Panicked { .. })
    ));
    assert!(future.done() && !future.running() && !future.cancelled());
    assert!(
        !future.cancel(),
        "a failed future is finished, not cancellable"
    );
}

#[test]
fn result_timeout_zero_on_a_pending_future_times_out_and_leaves_it_usable() {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, release) = hold(&executor);
    let queued = executor.submit(|n: u32| n * 3, 5);

    assert_eq!(queued.result_timeout(Duration::ZERO), Err(Error::Timeout));
    assert_eq!(busy.result_timeout(Duration::ZERO), Err(Error::Timeout));
    assert!(
        !queued.done() && !queued.cancelled(),
        "a timeout changes nothing"
    );
    assert!(busy.running());

    release.send(()).unwrap();
    assert_eq!(busy.result_timeout(PATIENCE), Ok(true));
    assert_eq!(queued.result_timeout(PATIENCE), Ok(15));
}

#[test]
fn result_timeout_waits_about_as_long_as_asked() {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, _release) = hold(&executor);
    let wait = Duration::from_millis(50);
    let start = Instant::now();
    assert_eq!(busy.result_timeout(wait), Err(Error::Timeout));
    let waited = start.elapsed();
    assert!(waited >= wait, "gave up early, after {waited:?}");
    assert!(busy.running(), "the task is untouched by the timeout");
}

#[test]
fn a_timed_out_pending_future_can_still_be_cancelled() {
    let executor = ThreadPoolExecutor::new(1);
    let (_busy, _release) = hold(&executor);
    let queued = executor.submit(|()| 1, ());
    assert_eq!(queued.result_timeout(Duration::ZERO), Err(Error::Timeout));
    assert!(queued.cancel());
    assert_eq!(queued.result(), Err(Error::Cancelled));
}

#[test]
fn result_of_a_cancelled_future_is_cancelled_every_time() {
    let executor = ThreadPoolExecutor::new(1);
    let (_busy, _release) = hold(&executor);
    let queued = executor.submit(|()| 1, ());
    assert!(queued.cancel());
    assert_eq!(queued.result(), Err(Error::Cancelled));
    assert_eq!(queued.result(), Err(Error::Cancelled), "not ResultTaken");
    assert_eq!(queued.result_timeout(Duration::ZERO), Err(Error::Cancelled));
}

#[test]
fn result_hands_the_value_over_once() {
    let executor = ThreadPoolExecutor::new(1);
    // Not Clone: the value must move out, not be copied.
    struct Token(u32);
    let future = executor.submit(Token, 7);
    assert_eq!(future.result_timeout(PATIENCE).map(|t| t.0), Ok(7));
    assert!(matches!(future.result(), Err(Error::ResultTaken)));
    assert!(matches!(
        future.result_timeout(Duration::ZERO),
        Err(Error::ResultTaken)
    ));
    assert!(future.done(), "taking the value does not change the state");
}

#[test]
fn a_failure_is_handed_over_once_too() {
    let executor = ThreadPoolExecutor::new(1);
    let future = executor.submit(|()| -> u8 { panic!("once") }, ());
    assert!(matches!(future.result(), Err(Error::Panicked { .. })));
    assert_eq!(future.result(), Err(Error::ResultTaken));
}

/// Three threads of `s`, each blocked in `future.result_timeout`; returns
/// once each has said it is about to call it.
fn three_blocked_in_result<'s, T: Send>(
    s: &'s thread::Scope<'s, '_>,
    future: &'s Future<T>,
) -> Vec<thread::ScopedJoinHandle<'s, Result<T, Error>>> {
    let (waiting, wait_waiting) = mpsc::channel();
    let waiters = (0..3)
        .map(|_| {
            let waiting = waiting.clone();
            s.spawn(move || {
                waiting.send(()).unwrap();
                future.result_timeout(PATIENCE)
            })
        })
        .collect();
    for _ in 0..3 {
        wait_waiting.recv().unwrap();
    }
    waiters
}

#[test]
fn a_thread_blocked_in_result_is_woken_by_completion() {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, release) = hold(&executor);
    thread::scope(|s| {
        let waiters = three_blocked_in_result(s, &busy);
        release.send(()).unwrap();
        let mut results: Vec<_> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        results.sort_by_key(|r| r.is_err());
        assert_eq!(
            results,
            [Ok(true), Err(Error::ResultTaken), Err(Error::ResultTaken)],
            "every waiter wakes; exactly one gets the value"
        );
    });
}

#[test]
fn a_thread_blocked_in_result_is_woken_by_cancel() {
    let executor = ThreadPoolExecutor::new(1);
    let (_busy, _release) = hold(&executor);
    let queued = executor.submit(|()| "never", ());
    thread::scope(|s| {
        let waiters = three_blocked_in_result(s, &queued);
        assert!(queued.cancel());
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), Err(Error::Cancelled));
        }
    });
}

/// Runs `wait` on its own thread, after saying so on `waiting`, and hands
/// its answer back; a detached thread, so a lost wake-up fails the test
/// below (with a timeout) instead of hanging it.
fn waiter<T: Send + 'static>(
    wait: impl FnOnce() -> T + Send + 'static,
) -> (Receiver<()>, Receiver<T>) {
    let (waiting, wait_waiting) = mpsc::channel();
    let (answer, got_answer) = mpsc::channel();
    thread::spawn(move || {
        waiting.send(()).unwrap();
        answer.send(wait()).unwrap();
    });
    (wait_waiting, got_answer)
}

#[test]
fn a_thread_blocked_in_result_without_a_timeout_is_woken_by_completion() {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, release) = hold(&executor);
    let (waiting, answer) = waiter(move || busy.result());
    waiting.recv().unwrap();
    release.send(()).unwrap();
    assert_eq!(answer.recv_timeout(PATIENCE), Ok(Ok(true)));
}

#[test]
fn a_thread_blocked_in_result_without_a_timeout_is_woken_by_cancel() {
    let executor = ThreadPoolExecutor::new(1);
    let (_busy, _release) = hold(&executor);
    let queued = Arc::new(executor.submit(|()| "never", ()));
    let (waiting, answer) = waiter({
        let queued = Arc::clone(&queued);
        move || queued.result()
    });
    waiting.recv().unwrap();
    assert!(queued.cancel());
    assert_eq!(answer.recv_timeout(PATIENCE), Ok(Err(Error::Cancelled)));
}

/// What a callback saw: its index, the future's state, and the thread it ran on.
type Seen = Arc<Mutex<Vec<(usize, bool, bool, String)>>>;

fn add_recording_callbacks<R>(future: &Future<R>, seen: &Seen, count: usize) {
    for index in 0..count {
        let seen = Arc::clone(seen);
        future.add_done_callback(move |f| {
            seen.lock()
                .unwrap()
                .push((index, f.done(), f.cancelled(), current_name()));
        });
    }
}

#[test]
fn callbacks_run_in_order_on_success_in_the_worker() {
    let executor = named("cb", 1);
    let (busy, release) = hold(&executor);
    let seen = Seen::default();
    add_recording_callbacks(&busy, &seen, 3);
    assert!(
        seen.lock().unwrap().is_empty(),
        "not done: nothing runs yet"
    );
    release.send(()).unwrap();
    assert_eq!(busy.result_timeout(PATIENCE), Ok(true));
    // The value is published before the callbacks run, so wait for the
    // worker itself: shutting down joins it, callbacks and all.
    executor.shutdown();
    let seen = seen.lock().unwrap().clone();
    let expected: Vec<_> = (0..3)
        .map(|i| (i, true, false, "cb_0".to_owned()))
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn callbacks_run_in_order_on_failure() {
    let executor = ThreadPoolExecutor::new(1);
    let (_busy, release) = hold(&executor);
    let failing = executor.submit(|()| -> u8 { panic!("failing task") }, ());
    let seen = Seen::default();
    add_recording_callbacks(&failing, &seen, 3);
    let (results, got_result) = mpsc::channel();
    failing.add_done_callback(move |f| results.send(f.result()).unwrap());
    release.send(()).unwrap();
    let result = got_result.recv_timeout(PATIENCE).unwrap();
    assert!(
        matches!(&result, Err(Error::Panicked { message, .. }) if message == "failing task"),
        "{result:?}"
    );
    let order: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.0, s.1, s.2))
        .collect();
    assert_eq!(
        order,
        [(0, true, false), (1, true, false), (2, true, false)]
    );
}

#[test]
fn callbacks_run_in_order_on_cancel_in_the_cancelling_thread() {
    let executor = ThreadPoolExecutor::new(1);
    let (_busy, _release) = hold(&executor);
    let queued = executor.submit(|()| 1, ());
    let seen = Seen::default();
    add_recording_callbacks(&queued, &seen, 3);
    thread::scope(|s| {
        s.spawn(|| {
            assert!(queued.cancel());
            // The callbacks ran before cancel() returned, on this thread.
            let me = current_name();
            let seen = seen.lock().unwrap().clone();
            let expected: Vec<_> = (0..3).map(|i| (i, true, true, me.clone())).collect();
            assert_eq!(seen, expected);
        });
    });
}

#[test]
fn a_callback_added_to_a_done_future_runs_at_once_in_the_caller() {
    let executor = ThreadPoolExecutor::new(1);
    let future = executor.submit(|n: u8| n, 4);
    assert_eq!(future.result_timeout(PATIENCE), Ok(4));
    let seen = Seen::default();
    add_recording_callbacks(&future, &seen, 1);
    assert_eq!(
        *seen.lock().unwrap(),
        [(0, true, false, current_name())],
        "ran before add_done_callback returned, on this thread"
    );

    let cancelled = {
        let (_busy, _release) = hold(&executor);
        let queued = executor.submit(|()| 1, ());
        assert!(queued.cancel());
        queued
    };
    let seen = Seen::default();
    add_recording_callbacks(&cancelled, &seen, 1);
    assert_eq!(*seen.lock().unwrap(), [(0, true, true, current_name())]);
}

#[test]
fn a_panicking_callback_neither_stops_the_others_nor_kills_the_worker() {
    let executor = named("panicky", 1);
    let (busy, release) = hold(&executor);
    let (tx, rx) = mpsc::channel();
    for index in 0..3 {
        let tx = tx.clone();
        busy.add_done_callback(move |_| {
            tx.send(index).unwrap();
            assert_ne!(index, 1, "callback 1 panics");
        });
    }
    release.send(()).unwrap();
    let order: Vec<_> = (0..3).map(|_| rx.recv_timeout(PATIENCE).unwrap()).collect();
    assert_eq!(order, [0, 1, 2]);
    assert_eq!(busy.result_timeout(PATIENCE), Ok(true), "outcome unchanged");

    let next = executor.submit(|()| current_name(), ());
    assert_eq!(
        next.result_timeout(PATIENCE).as_deref(),
        Ok("panicky_0"),
        "the same worker serves the next task"
    );

    // Panicking in a callback run at once does not reach the caller either.
    let (tx, rx) = mpsc::channel();
    next.add_done_callback(|_| panic!("immediate callback panics"));
    next.add_done_callback(move |_| tx.send("after").unwrap());
    assert_eq!(rx.try_recv(), Ok("after"));
}

#[test]
fn a_callback_may_take_the_result() {
    let executor = ThreadPoolExecutor::new(1);
    let (tx, rx) = mpsc::channel();
    let (_busy, release) = hold(&executor);
    let future = executor.submit(|n: u32| n + 1, 41);
    future.add_done_callback(move |f| tx.send(f.result()).unwrap());
    release.send(()).unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), Ok(42));
    assert_eq!(future.result(), Err(Error::ResultTaken));
}

#[test]
fn futures_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let executor = ThreadPoolExecutor::new(1);
    let future = executor.submit(|()| String::from("shared"), ());
    send_sync(&future);
    let (tx, rx): (Sender<Result<String, Error>>, Receiver<_>) = mpsc::channel();
    thread::scope(|s| {
        s.spawn(|| tx.send(future.result_timeout(PATIENCE)).unwrap());
    });
    assert_eq!(rx.recv().unwrap().as_deref(), Ok("shared"));
}

/// A task's own error type, which takes the pool's errors too.
#[derive(Debug, PartialEq)]
enum FetchError {
    NotFound(String),
    Pool(Error),
}

impl From<Error> for FetchError {
    fn from(error: Error) -> Self {
        FetchError::Pool(error)
    }
}

#[test]
fn flat_result_puts_the_tasks_error_and_the_pools_in_one_err() {
    let executor = ThreadPoolExecutor::new(1);
    let fetch = |page: &str| match page {
        "panic" => panic!("no network"),
        "home" => Ok(4),
        other => Err(FetchError::NotFound(other.to_owned())),
    };
    assert_eq!(executor.submit(fetch, "home").flat_result(), Ok(4));
    assert_eq!(
        executor.submit(fetch, "nowhere").flat_result(),
        Err(FetchError::NotFound("nowhere".into()))
    );
    let panicked = executor.submit(fetch, "panic").flat_result();
    assert!(
        matches!(&panicked, Err(FetchError::Pool(Error::Panicked { message, .. })) if message == "no network"),
        "{panicked:?}"
    );

    // Cancelled behind a held task: the pool's error, as the task's type.
    let (busy, release) = hold(&executor);
    let queued = executor.submit(|n: u32| Ok::<u32, String>(n), 1);
    assert!(queued.cancel());
    assert_eq!(queued.flat_result(), Err(Error::Cancelled.to_string()));
    assert_eq!(
        queued.flat_result(),
        Err(Error::Cancelled.to_string()),
        "cancelled stays cancelled"
    );
    release.send(()).unwrap();
    assert_eq!(busy.result(), Ok(true));

    // The value is handed over once, as with result().
    let once = executor.submit(|n: u32| Ok::<u32, String>(n), 7);
    assert_eq!(once.flat_result(), Ok(7));
    assert_eq!(once.flat_result(), Err(Error::ResultTaken.to_string()));
}
