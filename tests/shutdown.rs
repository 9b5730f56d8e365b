//! Shutting down: refusing new work, waiting for queued work, cancelling it
//! on request, dropping the pool, and shutting down from inside a task.
//! Ported in spirit from Python's `test_shutdown.py`.
//!
//! Where the test must show that a call *blocks*, a task is held running and
//! the call is made on another thread; the test checks that the call has not
//! returned while the task is held (a short wait that can only ever make a
//! buggy pool pass, never a correct one fail), then releases the task.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread;

use concurrent_futures::{Error, Executor, Future, Shutdown, ThreadPoolExecutor};

mod common;
use common::{GRACE, PATIENCE, current_name, hold, named, spy};

/// Runs `f` on its own thread and returns its result, failing the test
/// (instead of hanging it) if `f` does not finish within `PATIENCE`.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || tx.send(f()));
    match rx.recv_timeout(PATIENCE) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("{what} hung"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Asserts that the call running on another thread, which reports on
/// `returned`, is still blocked.
fn assert_still_blocked<T: std::fmt::Debug>(returned: &Receiver<T>, what: &str) {
    if let Ok(early) = returned.recv_timeout(GRACE) {
        panic!("{what} returned while a task was still running: {early:?}");
    }
}

/// Runs `call` on another thread while tasks are held: it must still be
/// blocked after [`GRACE`], and return within [`PATIENCE`] once every one
/// of `releases` is sent. Returns what it returned.
fn blocks_until_released<T: Send + std::fmt::Debug>(
    what: &str,
    releases: Vec<Sender<()>>,
    call: impl FnOnce() -> T + Send,
) -> T {
    let (returned, call_returned) = mpsc::channel();
    thread::scope(|s| {
        // Owned here, so a failing assertion releases the tasks before the
        // scope joins its threads.
        let releases = releases;
        s.spawn(move || returned.send(call()).unwrap());
        assert_still_blocked(&call_returned, what);
        for release in &releases {
            release.send(()).unwrap();
        }
        (call_returned.recv_timeout(PATIENCE))
            .unwrap_or_else(|_| panic!("{what} did not return once the tasks were released"))
    })
}

/// A pool of one whose worker is held (`busy`, until `release`), with five
/// [`spy`] tasks queued behind it, 0 to 4; `runs` hears each that runs.
struct FiveQueued {
    executor: ThreadPoolExecutor,
    busy: Future<bool>,
    release: Sender<()>,
    queued: Vec<Future<u32>>,
    runs: Receiver<u32>,
}

fn five_queued_behind_a_held_task() -> FiveQueued {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, release) = hold(&executor);
    let (ran, runs) = mpsc::channel();
    let queued: Vec<_> = (0..5).map(|n| spy(&executor, &ran, n)).collect();
    FiveQueued {
        executor,
        busy,
        release,
        queued,
        runs,
    }
}

fn one(_: ()) -> u8 {
    1
}

#[test]
fn submit_after_shutdown_gives_shutdown() {
    let executor = ThreadPoolExecutor::new(2);
    assert_eq!(executor.submit(|()| 1, ()).result_timeout(PATIENCE), Ok(1));
    executor.shutdown();
    let refused = executor.submit(|()| 2, ());
    assert!(refused.done(), "refused at once, not queued");
    assert_eq!(refused.result(), Err(Error::Shutdown));
    executor.shutdown(); // a second shutdown is harmless
    assert_eq!(executor.submit(|()| 3, ()).result(), Err(Error::Shutdown));
}

#[test]
fn submit_after_shutdown_gives_shutdown_through_the_executor_trait() {
    fn after_shutdown(executor: &impl Executor) -> (Result<u8, Error>, Vec<Result<u8, Error>>) {
        executor.shutdown();
        let submitted = executor.submit(one, ()).result_timeout(PATIENCE);
        let mapped = executor.map(one, [(), ()]).collect();
        (submitted, mapped)
    }
    let executor = ThreadPoolExecutor::new(1);
    let (submitted, mapped) = within("submit after shutdown", move || after_shutdown(&executor));
    assert_eq!(submitted, Err(Error::Shutdown));
    assert_eq!(mapped, [Err(Error::Shutdown), Err(Error::Shutdown)]);
}

#[test]
fn submit_after_shutdown_without_waiting_gives_shutdown() {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, release) = hold(&executor);
    executor.shutdown_with(Shutdown {
        wait: false,
        cancel_futures: false,
    });
    assert!(
        busy.running(),
        "returned without waiting for the running task"
    );
    assert_eq!(executor.submit(|()| 1, ()).result(), Err(Error::Shutdown));
    release.send(()).unwrap();
    assert_eq!(busy.result_timeout(PATIENCE), Ok(true));
}

#[test]
fn shutdown_waits_for_running_and_queued_work() {
    let five = five_queued_behind_a_held_task();
    let all_done = blocks_until_released("shutdown()", vec![five.release], || {
        five.executor.shutdown();
        five.queued.iter().all(Future::done)
    });
    assert!(all_done, "when shutdown returns, all queued work has run");
    assert_eq!(five.busy.result(), Ok(true));
    assert_eq!(five.runs.try_iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    for (n, future) in (0..).zip(&five.queued) {
        assert_eq!(future.result(), Ok(n));
    }
}

#[test]
fn cancel_futures_cancels_queued_work_and_running_work_finishes() {
    let five = five_queued_behind_a_held_task();
    five.executor.shutdown_with(Shutdown {
        wait: false,
        cancel_futures: true,
    });
    for future in &five.queued {
        assert!(future.cancelled(), "cancelled by the time shutdown returns");
        assert_eq!(future.result(), Err(Error::Cancelled));
    }
    assert!(five.busy.running(), "the running task is not touched");
    five.release.send(()).unwrap();
    assert_eq!(five.busy.result_timeout(PATIENCE), Ok(true));
    five.executor.shutdown();
    assert_eq!(
        five.runs.try_recv(),
        Err(TryRecvError::Disconnected),
        "no cancelled task ran"
    );
}

#[test]
fn cancel_futures_with_waiting_waits_only_for_the_running_task() {
    let five = five_queued_behind_a_held_task();
    let busy_done = blocks_until_released(
        "shutdown_with(wait, cancel_futures)",
        vec![five.release],
        || {
            five.executor.shutdown_with(Shutdown {
                wait: true,
                cancel_futures: true,
            });
            five.busy.done()
        },
    );
    assert!(
        busy_done,
        "shutdown_with(wait) returned only once the running task was done"
    );
    assert_eq!(five.busy.result(), Ok(true));
    assert!(five.queued.iter().all(Future::cancelled));
    assert_eq!(five.runs.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn cancelling_a_just_submitted_future_then_shutting_down_does_not_hang() {
    // gh-94440.
    for _ in 0..50 {
        let outcome = within("shutdown after cancel", || {
            let executor = ThreadPoolExecutor::new(1);
            let future = executor.submit(|n: u8| n, 1);
            let cancelled = future.cancel();
            executor.shutdown();
            (cancelled, future.result())
        });
        match outcome {
            (true, result) => assert_eq!(result, Err(Error::Cancelled)),
            // The worker claimed it first: then it ran.
            (false, result) => assert_eq!(result, Ok(1)),
        }
    }
}

/// Sends this thread's name on `exited` when the thread ends, during its
/// thread-local destructors, which run before anyone joining it returns.
struct ExitSentinel {
    exited: Sender<String>,
}

impl Drop for ExitSentinel {
    fn drop(&mut self) {
        let _ = self.exited.send(current_name());
    }
}

thread_local! {
    static SENTINEL: RefCell<Option<ExitSentinel>> = const { RefCell::new(None) };
}

/// Makes the calling thread report on `exited` when it ends.
fn watch_exit(exited: &Sender<String>) {
    SENTINEL.with_borrow_mut(|sentinel| {
        sentinel.get_or_insert_with(|| ExitSentinel {
            exited: exited.clone(),
        });
    });
}

#[test]
fn dropping_the_executor_waits_for_work_and_joins_every_thread() {
    let executor = named("dropped", 3);
    let (exited, exits) = mpsc::channel();
    let exited = Arc::new(Mutex::new(exited));
    // Three held tasks, so three threads; each watches its thread's exit.
    let (all_started, wait_all_started) = mpsc::channel();
    let mut releases = Vec::new();
    let mut held = Vec::new();
    for _ in 0..3 {
        let (release, gate) = mpsc::channel::<()>();
        let (exited, all_started) = (Arc::clone(&exited), all_started.clone());
        held.push(executor.submit(
            move |()| {
                watch_exit(&exited.lock().unwrap());
                all_started.send(()).unwrap();
                gate.recv().is_ok()
            },
            (),
        ));
        releases.push(release);
    }
    for _ in 0..3 {
        wait_all_started.recv_timeout(PATIENCE).unwrap();
    }
    let queued: Vec<_> = (0..10).map(|n| executor.submit(|n: u32| n, n)).collect();

    blocks_until_released("drop(executor)", releases, move || drop(executor));
    // Drop has returned: every thread has exited, no waiting needed.
    let names: HashSet<String> = exits.try_iter().collect();
    let expected: HashSet<String> = (0..3).map(|n| format!("dropped_{n}")).collect();
    assert_eq!(names, expected, "every worker thread was joined");
    for future in &held {
        assert_eq!(future.result(), Ok(true));
    }
    for (n, future) in (0..).zip(&queued) {
        assert_eq!(
            future.result(),
            Ok(n),
            "queued work ran before drop returned"
        );
    }
}

#[test]
fn shutdown_from_inside_a_task_does_not_deadlock() {
    let executor = Arc::new(named("inside", 2));
    let (release, gate) = mpsc::channel::<()>();
    let other = executor.submit(move |()| gate.recv().is_ok(), ());
    let pool = Arc::clone(&executor);
    let (shut, shutdown_returned) = mpsc::channel();
    let from_inside = executor.submit(
        move |()| {
            pool.shutdown();
            shut.send(()).unwrap();
            pool.submit(|()| true, ()).result()
        },
        (),
    );
    // The task's shutdown waits for the other worker, but not for itself.
    assert_still_blocked(&shutdown_returned, "shutdown() from inside a task");
    release.send(()).unwrap();
    assert_eq!(
        from_inside.result_timeout(PATIENCE),
        Ok(Err(Error::Shutdown)),
        "shutdown from inside returned, and the pool then refused work"
    );
    assert_eq!(other.result_timeout(PATIENCE), Ok(true));
    assert_eq!(executor.submit(|()| 1, ()).result(), Err(Error::Shutdown));
    within("dropping the pool after an inside shutdown", move || {
        drop(executor);
    });
}

#[test]
fn the_last_handle_dropped_inside_a_task_does_not_deadlock() {
    let executor = Arc::new(ThreadPoolExecutor::new(1));
    let pool = Arc::clone(&executor);
    let (release, gate) = mpsc::channel::<()>();
    let future = executor.submit(
        move |()| {
            let _ = gate.recv();
            // By now the test has dropped its handle: this is the last one,
            // and dropping it shuts the pool down from its own worker.
            drop(pool);
            "dropped inside"
        },
        (),
    );
    drop(executor);
    release.send(()).unwrap();
    assert_eq!(future.result_timeout(PATIENCE), Ok("dropped inside"));
}

#[test]
fn dropping_the_pool_after_a_shutdown_from_inside_still_waits_for_queued_work() {
    let executor = Arc::new(ThreadPoolExecutor::new(1));
    let pool = Arc::clone(&executor);
    let (go, gate) = mpsc::channel::<()>();
    // On the only worker: first a task that shuts the pool down from inside
    // (once told to), then one queued behind it and held.
    let from_inside = executor.submit(
        move |()| {
            let _ = gate.recv();
            pool.shutdown();
        },
        (),
    );
    let (release, held_gate) = mpsc::channel::<()>();
    let (started, wait_started) = mpsc::channel();
    let queued = executor.submit(
        move |()| {
            started.send(()).unwrap();
            held_gate.recv().is_ok()
        },
        (),
    );
    go.send(()).unwrap();
    assert_eq!(from_inside.result_timeout(PATIENCE), Ok(()));
    wait_started.recv_timeout(PATIENCE).unwrap();

    let queued_done = blocks_until_released("drop(executor)", vec![release], || {
        drop(executor);
        queued.done()
    });
    assert!(queued_done, "dropping the pool waited for the queued task");
}

#[test]
fn every_caller_of_shutdown_waits_not_only_the_first() {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, release) = hold(&executor);
    let (returned, shutdown_returned) = mpsc::channel();
    thread::scope(|s| {
        // Owned here, so a failing assertion releases the task before the
        // scope joins its threads.
        let release = release;
        for _ in 0..2 {
            let returned = returned.clone();
            let (executor, busy) = (&executor, &busy);
            s.spawn(move || {
                executor.shutdown();
                returned.send(busy.done()).unwrap();
            });
        }
        assert_still_blocked(&shutdown_returned, "a second concurrent shutdown()");
        release.send(()).unwrap();
        for _ in 0..2 {
            assert_eq!(shutdown_returned.recv_timeout(PATIENCE), Ok(true));
        }
    });
}
