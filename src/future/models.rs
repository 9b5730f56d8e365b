//! Layer: tests. May use: `future`, `future::watch`, `sync` and `wait`.
//! Model checks of the state machine with [loom]: each model runs a race
//! under every interleaving loom can reach, and
//! asserts that the future resolves exactly once, that everything waiting on
//! it is told, and (loom checks this for every run) that no `Arc` leaks and
//! nothing deadlocks.
//!
//! They sit beside the module, not in `tests/`, because they drive the
//! worker's side (`pair`, `Promise::claim`, `hold`, `claim_held`, `complete`) and
//! the watchers of `wait`/`as_completed`, which are crate-private; exposing
//! them only for the models would widen the public API for no user. Run:
//!
//! ```text
//! RUSTFLAGS="--cfg concurrent_futures_loom" cargo test --lib --release \
//!     --target-dir target/loom future::models
//! ```
//!
//! The search is exhaustive (loom's default: no preemption bound) and takes
//! a few seconds; should a new model make it too slow, bound it with
//! `LOOM_MAX_PREEMPTIONS=3`: with that bound the models still failed on
//! every bug seeded into `future.rs` to try them (a plain load and store for
//! the claim's compare-and-swap, no `notify_all`, a timeout that kept its
//! sleeper count, a watch or a poll that read the state before the lock).
//!
//! [loom]: https://docs.rs/loom

use super::watch::watch_key;
use super::*;
use crate::as_completed;

use futures_core::Stream;
use loom::{model, thread};

/// A timeout that real time never reaches within a run, so under loom only
/// the modelled expiry (see `crate::sync`) ends a timed wait.
const LONG: Duration = Duration::from_secs(3600);

/// A counter kept outside the model (std's atomics, invisible to loom), so
/// that counting adds no interleavings; it is read after the threads joined.
#[derive(Clone, Default)]
struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Count {
    fn add(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A worker that picks the task up and completes it with 7.
fn run_to_seven(promise: Promise<u8>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        assert!(promise.claim(), "nobody cancels in this model");
        promise.complete(Ok(7));
    })
}

/// Asserts that a future finished with 7 hands it over exactly once.
fn assert_seven_once(future: &Future<u8>) {
    assert_eq!(future.result(), Ok(7));
    assert_eq!(future.result(), Err(Error::ResultTaken));
}

/// Asserts that a cancelled future says so, every time.
fn assert_cancelled(future: &Future<u8>) {
    assert_cancelled_with(future, Error::Cancelled);
}

/// Asserts that a future is cancelled, and says `error` every time.
fn assert_cancelled_with(future: &Future<u8>, error: Error) {
    assert!(future.cancelled() && future.done());
    assert_eq!(future.result(), Err(error.clone()));
    assert_eq!(future.result(), Err(error));
}

/// No thread is left counted as asleep on the condvar.
fn assert_no_sleepers(future: &Future<u8>) {
    assert_eq!(future.inner.lock().sleepers, 0);
}

/// Complete (without a claim, as the executor does for a task it could not
/// run) against `cancel` of the pending future: exactly one wins, and
/// `cancel`'s answer agrees with the final state.
#[test]
fn complete_vs_cancel_of_a_pending_future() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let worker = thread::spawn(move || promise.complete(Ok(7)));
        let cancelled = future.cancel();
        worker.join().unwrap();
        assert!(future.done());
        assert_eq!(cancelled, future.cancelled());
        if cancelled {
            assert_cancelled(&future);
        } else {
            assert_seven_once(&future);
        }
    });
}

/// Complete against `cancel` of a running task that has a canceller (a lone
/// process-pool task): exactly one wins, and the canceller runs once if and
/// only if the cancel won.
#[test]
fn complete_vs_cancel_of_a_running_future_with_a_canceller() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let killed = Count::default();
        assert!(promise.claim_held(Some(Box::new({
            let killed = killed.clone();
            move || killed.add()
        }))));
        let worker = thread::spawn(move || promise.complete(Ok(7)));
        let cancelled = future.cancel();
        worker.join().unwrap();
        assert_eq!(cancelled, future.cancelled());
        assert_eq!(killed.get(), usize::from(cancelled));
        if cancelled {
            assert_cancelled_with(&future, Error::CancelledWhileRunning);
        } else {
            assert_seven_once(&future);
        }
    });
}

/// A task sent ahead to a worker process, held pending with a hook that
/// takes it back on the worker's start gate (modelled: 0 open, 1 started, 2
/// taken back), against a cancel: the worker starts it and its manager
/// claims and completes it, or the cancel takes it back first. Never both:
/// if `cancel` said true the task never started; if false, its value
/// arrives.
#[test]
fn cancel_vs_start_of_a_task_sent_ahead() {
    use crate::sync::{AtomicU8, Ordering::*};
    model(|| {
        let (promise, future) = pair::<u8>();
        let gate = Arc::new(AtomicU8::new(0));
        let take_back = Arc::clone(&gate);
        assert!(promise.hold(Box::new(move || {
            take_back.compare_exchange(0, 2, AcqRel, Acquire).is_ok()
        })));
        let start = Arc::clone(&gate);
        let worker = thread::spawn(move || {
            if start.compare_exchange(0, 1, AcqRel, Acquire).is_ok() {
                assert!(promise.claim_held(None), "started, so not cancelled");
                promise.complete(Ok(7));
            }
            // Taken back: the manager drops it unrun.
        });
        let cancelled = future.cancel();
        worker.join().unwrap();
        assert_eq!(cancelled, future.cancelled());
        if cancelled {
            assert_eq!(gate.load(Acquire), 2, "a cancelled task never starts");
            assert_cancelled(&future);
        } else {
            assert_seven_once(&future);
        }
    });
}

/// Cancel against a worker picking the task up (`claim`): never both run and
/// cancelled; if `cancel` said true the task did not run, and if it said
/// false the task ran and its value arrives.
#[test]
fn cancel_vs_a_worker_picking_the_task_up() {
    cancel_vs_claim(Future::cancel);
}

/// The same race through `cancel_pending`, what `map` does to the inputs it
/// abandons.
#[test]
fn cancel_pending_vs_a_worker_picking_the_task_up() {
    cancel_vs_claim(Future::cancel_pending);
}

/// The race of `cancel` (one of the two forms) against a worker's `claim`.
fn cancel_vs_claim(cancel: fn(&Future<u8>) -> bool) {
    model(move || {
        let (promise, future) = pair::<u8>();
        let ran = Count::default();
        let worker = thread::spawn({
            let ran = ran.clone();
            move || {
                if promise.claim() {
                    ran.add();
                    promise.complete(Ok(7));
                }
            }
        });
        let cancelled = cancel(&future);
        worker.join().unwrap();
        assert_eq!(cancelled, future.cancelled());
        assert_eq!(ran.get(), usize::from(!cancelled));
        if cancelled {
            assert_cancelled(&future);
        } else {
            assert_seven_once(&future);
        }
    });
}

#[test]
fn every_blocked_result_wakes_on_complete() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let future = std::sync::Arc::new(future);
        let other = thread::spawn({
            let future = std::sync::Arc::clone(&future);
            move || future.result()
        });
        let worker = run_to_seven(promise);
        let mine = future.result();
        let theirs = other.join().unwrap();
        worker.join().unwrap();
        let mut got = [mine, theirs];
        got.sort_by_key(Result::is_err);
        assert_eq!(got, [Ok(7), Err(Error::ResultTaken)]);
        assert_no_sleepers(&future);
    });
}

/// A thread blocked in `result()` while another cancels: it wakes with
/// `Cancelled`.
#[test]
fn a_blocked_result_wakes_on_cancel() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let future = std::sync::Arc::new(future);
        let waiter = thread::spawn({
            let future = std::sync::Arc::clone(&future);
            move || future.result()
        });
        assert!(future.cancel());
        assert_eq!(waiter.join().unwrap(), Err(Error::Cancelled));
        assert!(!promise.claim());
        assert_no_sleepers(&future);
    });
}

/// Complete against `result_timeout` running out: the waiter gets the value
/// or `Timeout`, and after a timeout the future is still usable and hands
/// the value over exactly once.
#[test]
fn complete_vs_result_timeout_expiring() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let worker = run_to_seven(promise);
        let first = future.result_timeout(LONG);
        worker.join().unwrap();
        match first {
            Ok(7) => assert_eq!(future.result(), Err(Error::ResultTaken)),
            Err(Error::Timeout) => assert_seven_once(&future),
            other => panic!("result_timeout gave {other:?}"),
        }
        assert_no_sleepers(&future);
    });
}

/// A timed waiter and an untimed one at once, against completion: the
/// untimed one always wakes, and the value goes to exactly one of them.
#[test]
fn a_timed_and_an_untimed_waiter_vs_complete() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let future = std::sync::Arc::new(future);
        let timed = thread::spawn({
            let future = std::sync::Arc::clone(&future);
            move || future.result_timeout(LONG)
        });
        let worker = run_to_seven(promise);
        let untimed = future.result();
        let timed = timed.join().unwrap();
        worker.join().unwrap();
        let values = [&untimed, &timed]
            .into_iter()
            .filter(|r| **r == Ok(7))
            .count();
        assert_eq!(values, 1, "untimed {untimed:?}, timed {timed:?}");
        assert!(matches!(
            timed,
            Ok(7) | Err(Error::ResultTaken | Error::Timeout)
        ));
        assert_eq!(future.result(), Err(Error::ResultTaken));
        assert_no_sleepers(&future);
    });
}

/// Complete against `add_done_callback`: the callback runs exactly once,
/// whichever comes first, and sees a done future.
#[test]
fn complete_vs_add_done_callback() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let ran = Count::default();
        let worker = run_to_seven(promise);
        future.add_done_callback({
            let ran = ran.clone();
            move |future| {
                assert!(future.done());
                ran.add();
            }
        });
        worker.join().unwrap();
        assert_eq!(ran.get(), 1);
        assert_seven_once(&future);
    });
}

/// Cancel against `add_done_callback` from another thread: the same.
#[test]
fn cancel_vs_add_done_callback() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let future = std::sync::Arc::new(future);
        let ran = Count::default();
        let canceller = thread::spawn({
            let future = std::sync::Arc::clone(&future);
            move || assert!(future.cancel())
        });
        future.add_done_callback({
            let ran = ran.clone();
            move |future| {
                assert!(future.cancelled());
                ran.add();
            }
        });
        canceller.join().unwrap();
        assert_eq!(ran.get(), 1);
        drop(promise);
        assert_eq!(ran.get(), 1, "dropping the promise resolves nothing again");
    });
}

/// Dropping the future while the worker completes: no panic, and loom checks
/// that the shared state is freed whichever side lets go last.
#[test]
fn drop_future_vs_complete() {
    model(|| {
        let (promise, future) = pair::<u8>();
        future.add_done_callback(|future| assert!(future.done()));
        let worker = run_to_seven(promise);
        drop(future);
        worker.join().unwrap();
    });
}

/// A worker that picks the task up and then lets go of the promise without
/// completing it (it died): a thread blocked in `result()` wakes with
/// `Cancelled` instead of hanging.
#[test]
fn drop_promise_unfinished_vs_a_blocked_result() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let worker = thread::spawn(move || {
            assert!(promise.claim());
            drop(promise);
        });
        assert_eq!(future.result(), Err(Error::Cancelled));
        worker.join().unwrap();
        assert_cancelled(&future);
        assert_no_sleepers(&future);
    });
}

/// Both sides dropped at once on two threads, the promise unfinished: no
/// panic, no leak.
#[test]
fn drop_future_vs_drop_promise() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let worker = thread::spawn(move || drop(promise));
        drop(future);
        worker.join().unwrap();
    });
}

/// `.await` (a poll that leaves its waker) against completion: the waker is
/// woken, or `block_on` would be stuck and loom would report a deadlock.
#[test]
fn poll_registering_a_waker_vs_complete() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let worker = run_to_seven(promise);
        assert_eq!(loom::future::block_on(future), Ok(7));
        worker.join().unwrap();
    });
}

/// A `wait`/`as_completed` watcher registered while the worker completes:
/// its index arrives exactly once, whichever comes first.
#[test]
fn watch_vs_complete() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let (notify, completions) = Notify::channel();
        let worker = run_to_seven(promise);
        future.watch(watch_key(), 3, &notify);
        worker.join().unwrap();
        assert_eq!(completions.try_iter().collect::<Vec<_>>(), [3]);
        assert!(future.inner.lock().watchers.is_empty());
    });
}

/// The `as_completed` stream awaited while the worker completes: the stream
/// is woken and yields the future once, then ends.
#[test]
fn as_completed_stream_vs_complete() {
    model(|| {
        let (promise, future) = pair::<u8>();
        let worker = run_to_seven(promise);
        let mut stream = as_completed([&future]).into_stream();
        let mut next = || {
            loom::future::block_on(std::future::poll_fn(|cx| {
                Pin::new(&mut stream).poll_next(cx)
            }))
        };
        assert!(next().is_some_and(|done| done.identity() == future.identity()));
        assert!(next().is_none());
        worker.join().unwrap();
        assert_seven_once(&future);
    });
}
