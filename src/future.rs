//! Layer: core. May use: `error`, `future::watch`, `panic` and `sync`.
//! [`Future`]: the handle to a task's eventual result, and its producer side.
//!
//! A future is in one of five states. The worker moves it from pending to
//! running when it picks the task up; [`Future::cancel`] moves it from pending
//! to cancelled. Only one of the two can win, because both are one
//! compare-and-swap on the same atomic.
//!
//! ```text
//! PENDING ──claim──▶ RUNNING ──finish──▶ FINISHED (Ok) | FAILED (Err)
//!    │                  │
//!    │                  └──cancel, if a canceller is set (process pool)──▶ CANCELLED
//!    └──cancel / task dropped unrun──────────────────────────────────────▶ CANCELLED
//!       (if the task was sent ahead to a worker that has not started it,
//!        only once its hook took it back: see `Promise::hold`)
//! ```
//!
//! The state lives in an atomic so that `done()`, `running()` and the short
//! spin in `result()` read it without a lock. Everything else (the outcome, the
//! callbacks, the waiters) sits behind one mutex, and the state only becomes
//! terminal while that mutex is held, so a waiter that checks the state under
//! the lock can never miss its wake-up.
//!
//! # Model-checked with loom
//!
//! The races between these steps (complete against cancel, against a timed
//! wait running out, against `add_done_callback`, a watcher or a poll; cancel
//! against the worker's claim; either side dropped first) are checked under
//! every interleaving by [loom](https://docs.rs/loom), in `future/models.rs`:
//! each future resolves exactly once and every waiter wakes. The primitives
//! come from `crate::sync`, which is std's in a normal build and loom's with
//! `--cfg concurrent_futures_loom`. Run them (as CI does) with
//!
//! ```text
//! RUSTFLAGS="--cfg concurrent_futures_loom" cargo test --lib --release \
//!     --target-dir target/loom future::models
//! ```

use std::fmt;
use std::hash::{Hash, Hasher};
use std::hint;
use std::pin::Pin;
use std::sync::PoisonError;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use crate::sync::{self, Arc, AtomicU8, Condvar, Mutex, MutexGuard, Ordering};
use crate::{Error, panic};
use watch::{Notify, Watcher, register};

/// How long `result()` yields, checking, before it sleeps.
pub(crate) const SPIN_FOR: Duration = Duration::from_micros(SPIN_MICROS);
const SPIN_MICROS: u64 = 50;

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const FINISHED: u8 = 2;
const FAILED: u8 = 3;
const CANCELLED: u8 = 4;

/// A callback registered with [`Future::add_done_callback`].
type Callback<R> = Box<dyn FnOnce(&Future<R>) + Send>;

/// Stops a running task from outside, for example by killing its process.
pub(crate) type Canceller = Box<dyn FnOnce() + Send>;

/// Takes back a pending task that was sent ahead to a worker, so that the
/// worker never starts it: `true` if it did, `false` if the worker had
/// started it already (see [`Promise::hold`]).
pub(crate) type Hook = Box<dyn Fn() -> bool + Send>;

/// The handle to the result of a task that runs on an executor.
///
/// `submit` and `map` hand you futures. A future is `Send` and `Sync`: any
/// thread may wait on it, poll it or cancel it. It hands its value over once:
/// the first successful [`result`](Future::result) moves the value out, and a
/// later call returns [`Error::ResultTaken`]. That way results need not be
/// `Clone`.
///
/// It also implements [`std::future::Future`], so async code can `.await` it;
/// the waker is stored and woken on completion, with no polling loop.
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let executor = ThreadPoolExecutor::new(2);
/// let future = executor.submit(|n: u64| n * n, 12);
/// assert_eq!(future.result(), Ok(144));
/// assert!(future.done());
/// ```
///
/// # Which future is which: Python's `future_to_url`
///
/// [`as_completed`](crate::as_completed) and [`wait`](crate::wait) also take
/// `(key, future)` pairs and hand each back whole, so a completed future
/// comes with the input it was for; [`AsFuture`](crate::AsFuture) shows the
/// port of Python's `future_to_url` example.
///
/// A future is also equal only to itself and hashes by its identity, never by
/// its state or value, so it can key a `HashMap` or `HashSet` as in Python.
/// Clippy's `mutable_key_type` lint cannot see that the hash ignores the
/// state, and flags such a map; the pairs need no allowance.
///
/// ```
/// use concurrent_futures::{as_completed, ThreadPoolExecutor};
/// use std::collections::HashMap;
///
/// let executor = ThreadPoolExecutor::new(2);
/// #[allow(clippy::mutable_key_type)] // the hash is the identity, which never changes
/// let future_to_n: HashMap<_, _> = (1..=3).map(|n| (executor.submit(|n: u32| n * n, n), n)).collect();
/// for future in as_completed(future_to_n.keys()) {
///     let n = future_to_n[future];
///     assert_eq!(future.result(), Ok(n * n));
/// }
/// ```
#[must_use = "the task runs anyway; dropping its future only loses the result and any error (it does not cancel the task)"]
pub struct Future<R> {
    inner: Arc<Inner<R>>,
}

/// The producer side of a [`Future`], held by whoever runs the task.
///
/// Dropping a promise that was never completed resolves its future as
/// cancelled, so no future is ever left waiting for a task that is gone.
pub(crate) struct Promise<R> {
    inner: Arc<Inner<R>>,
}

/// Makes a connected pair: the promise for the worker, the future for the user.
pub(crate) fn pair<R>() -> (Promise<R>, Future<R>) {
    let inner = Arc::new(Inner {
        state: AtomicU8::new(PENDING),
        slot: Mutex::new(Slot {
            outcome: None,
            sleepers: 0,
            callbacks: Vec::new(),
            watchers: Vec::new(),
            waker: None,
            canceller: None,
            hook: None,
            stopped: false,
        }),
        ready: Condvar::new(),
    });
    let future = Future {
        inner: Arc::clone(&inner),
    };
    (Promise { inner }, future)
}

struct Inner<R> {
    state: AtomicU8,
    slot: Mutex<Slot<R>>,
    /// Signalled when the state becomes terminal and `sleepers > 0`.
    ready: Condvar,
}

struct Slot<R> {
    /// `Some` from finish until the result is taken; `None` for a cancelled future.
    outcome: Option<Result<R, Error>>,
    /// Threads blocked on `ready`; finishing skips the notify when there are none.
    sleepers: usize,
    callbacks: Vec<Callback<R>>,
    /// Registrations by [`wait`](crate::wait) and [`as_completed`](crate::as_completed).
    watchers: Vec<Watcher>,
    /// The waker of the last `.await` that found the future pending.
    waker: Option<Waker>,
    /// Set while running, if the executor can stop the task from outside.
    canceller: Option<Canceller>,
    /// Set while pending, if the task was sent ahead to a worker: a cancel
    /// must first take it back.
    hook: Option<Hook>,
    /// Whether a cancel stopped the task while it ran (through its
    /// canceller), rather than before: what `result` then says.
    stopped: bool,
}

impl<R> Slot<R> {
    /// The error of a cancelled future: cancelled before its task ran, or
    /// while it ran.
    fn cancelled(&self) -> Error {
        match self.stopped {
            true => Error::CancelledWhileRunning,
            false => Error::Cancelled,
        }
    }
}

/// Everything to tell once the state is terminal, gathered under the lock
/// and then told after it is released.
struct Wakeups<R> {
    sleepers: bool,
    callbacks: Vec<Callback<R>>,
    watchers: Vec<Watcher>,
    waker: Option<Waker>,
}

impl<R> Inner<R> {
    fn state(&self) -> u8 {
        // ORDERING: Acquire pairs with the Release store in `finish` and the
        // AcqRel swaps in `claim`/`cancel`, so a reader that sees a terminal
        // state also sees the outcome stored before it.
        self.state.load(Ordering::Acquire)
    }

    fn lock(&self) -> MutexGuard<'_, Slot<R>> {
        // A panic never happens while the lock is held (user code runs outside
        // it), so a poisoned lock still holds consistent data.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves a non-terminal future to `state`, storing `outcome`. Returns
    /// what must be woken, or `None` if the future was already terminal.
    fn finish(&self, state: u8, outcome: Option<Result<R, Error>>) -> Option<Wakeups<R>> {
        let mut slot = self.lock();
        if self.state() >= FINISHED {
            return None;
        }
        slot.outcome = outcome;
        slot.canceller = None;
        slot.hook = None;
        // ORDERING: Release publishes `outcome` (written above) to lock-free
        // readers of the state; the mutex orders it for everyone else.
        self.state.store(state, Ordering::Release);
        Some(Wakeups::take(&mut slot))
    }
}

impl<R> Wakeups<R> {
    /// Takes everything to tell out of a slot that just turned terminal.
    fn take(slot: &mut Slot<R>) -> Self {
        Wakeups {
            sleepers: slot.sleepers > 0,
            callbacks: std::mem::take(&mut slot.callbacks),
            watchers: std::mem::take(&mut slot.watchers),
            waker: slot.waker.take(),
        }
    }

    /// Wakes every waiter, then runs the callbacks in the order they were added.
    fn deliver(self, inner: &Arc<Inner<R>>) {
        self.wake(inner).run();
    }

    /// Wakes every waiter and hands back the callbacks, not run yet.
    fn wake(self, inner: &Arc<Inner<R>>) -> Callbacks<R> {
        if self.sleepers {
            inner.ready.notify_all();
        }
        for watcher in self.watchers {
            watcher.tell();
        }
        if let Some(waker) = self.waker {
            waker.wake();
        }
        let future = (!self.callbacks.is_empty()).then(|| Future {
            inner: Arc::clone(inner),
        });
        Callbacks {
            callbacks: self.callbacks,
            future,
        }
    }
}

/// The done callbacks of a future that has just completed, not run yet.
pub(crate) struct Callbacks<R> {
    callbacks: Vec<Callback<R>>,
    /// The future the callbacks are given; `None` when there are none.
    future: Option<Future<R>>,
}

impl<R> Callbacks<R> {
    /// Whether there is nothing to run.
    pub(crate) fn is_empty(&self) -> bool {
        self.callbacks.is_empty()
    }

    /// Runs the callbacks in the order they were added.
    pub(crate) fn run(self) {
        if let Some(future) = self.future {
            for callback in self.callbacks {
                // A panicking callback must not stop the others or the worker;
                // the panic hook has already reported it.
                let _ = panic::catch(|| callback(&future));
            }
            // The last handle drops the result, whose Drop is user code.
            let _ = panic::catch(move || drop(future));
        }
    }
}

impl<R> Promise<R> {
    /// Moves the future from pending to running. Returns `false` if it was
    /// cancelled first, in which case the task must not run.
    pub(crate) fn claim(&self) -> bool {
        // ORDERING: AcqRel makes the claim and a racing `cancel` agree on one
        // winner; both are read-modify-writes on the same atomic.
        self.inner
            .state
            .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The task was sent ahead to a worker that may not start it for a
    /// while, and can still be taken back: it stays pending, and
    /// [`Future::cancel`] first calls `hook`, under the lock, to take it
    /// back. Only if the hook says it did does the cancel go through; if
    /// the worker had started the task, the cancel fails as for a running
    /// one. `false` if the future is no longer pending.
    ///
    /// A future with a hook must be claimed with [`claim_held`]
    /// (Self::claim_held), under the same lock, so that a claim and a
    /// cancel never both win.
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "macos", windows)),
        allow(dead_code)
    )]
    pub(crate) fn hold(&self, hook: Hook) -> bool {
        let mut slot = self.inner.lock();
        let pending = self.inner.state() == PENDING;
        if pending {
            slot.hook = Some(hook);
        }
        pending
    }

    /// The task came back from the worker it was sent ahead to, unstarted:
    /// a cancel no longer needs to take it back.
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "macos", windows)),
        allow(dead_code)
    )]
    pub(crate) fn release(&self) {
        self.inner.lock().hook = None;
    }

    /// A running task moved to another worker (its first died before
    /// starting it): `canceller` now stops it there, replacing the one
    /// [`claim_held`](Self::claim_held) set. `false` if it is no longer
    /// running (a cancel came first), and then it must not be sent.
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "macos", windows)),
        allow(dead_code)
    )]
    pub(crate) fn rehome(&self, canceller: Canceller) -> bool {
        let mut slot = self.inner.lock();
        let running = self.inner.state() == RUNNING;
        if running {
            slot.canceller = Some(canceller);
        }
        running
    }

    /// Like [`claim`](Self::claim), under the lock that a cancel takes, so
    /// that it is safe with a [`hold`](Self::hold) hook, which it drops.
    /// With a `canceller`, [`Future::cancel`] may also stop the task while
    /// it runs: `canceller` is called once, after the future has turned
    /// cancelled. Both happen under that lock, so a cancel never finds the
    /// task running without its canceller.
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "macos", windows)),
        allow(dead_code)
    )]
    pub(crate) fn claim_held(&self, canceller: Option<Canceller>) -> bool {
        let mut slot = self.inner.lock();
        let claimed = self.claim();
        if claimed {
            slot.hook = None;
            slot.canceller = canceller;
        }
        claimed
    }

    /// Resolves the future with the task's outcome; a no-op if it is already
    /// resolved (for example, cancelled).
    pub(crate) fn complete(self, outcome: Result<R, Error>) {
        self.complete_deferring_callbacks(outcome).run();
    }

    /// Like [`complete`](Self::complete), but hands the done callbacks back
    /// instead of running them, so that a worker can count itself busy while
    /// they run: a callback may block, or submit more work and wait for it.
    ///
    /// The outcome is dropped here if nobody can see it any more (its
    /// future was dropped or cancelled): its `Drop` is user code, so a
    /// panic in it is caught. Such a panic loses no callback, since a
    /// callback to run would have kept the outcome alive.
    pub(crate) fn complete_deferring_callbacks(self, outcome: Result<R, Error>) -> Callbacks<R> {
        let state = if outcome.is_ok() { FINISHED } else { FAILED };
        let none = || Callbacks {
            callbacks: Vec::new(),
            future: None,
        };
        panic::catch(move || match self.inner.finish(state, Some(outcome)) {
            Some(wakeups) => wakeups.wake(&self.inner),
            None => none(),
        })
        .unwrap_or_else(|_| none())
    }
}

impl<R> Drop for Promise<R> {
    fn drop(&mut self) {
        if self.inner.state() < FINISHED
            && let Some(wakeups) = self.inner.finish(CANCELLED, None)
        {
            wakeups.deliver(&self.inner);
        }
    }
}

impl<R> Future<R> {
    /// Attempts to cancel the task.
    ///
    /// Returns `true` if the future is now cancelled: it was still pending
    /// (queued, not yet picked up by a worker), or it was already cancelled,
    /// or it was running on a process pool as a lone task, whose worker
    /// process is then killed (and replaced). Returns `false` if the task has
    /// finished, or is running where it cannot be stopped from outside: on a
    /// thread, or as part of a process pool's `map` chunk.
    ///
    /// Cancelling wakes every thread blocked in [`result`](Future::result)
    /// with [`Error::Cancelled`] (or, for a task stopped while it ran,
    /// [`Error::CancelledWhileRunning`]) and runs the done callbacks.
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use std::sync::mpsc;
    ///
    /// let executor = ThreadPoolExecutor::new(1);
    /// let (release, gate) = mpsc::channel::<()>();
    /// let busy = executor.submit(move |()| gate.recv().unwrap(), ());
    /// let queued = executor.submit(|()| "never runs", ());
    /// assert!(queued.cancel());                  // still queued behind `busy`
    /// assert_eq!(queued.result(), Err(Error::Cancelled));
    /// release.send(()).unwrap();
    /// busy.result().unwrap();
    /// assert!(!busy.cancel());                   // finished futures stay finished
    /// ```
    pub fn cancel(&self) -> bool {
        self.cancel_if(RUNNING)
    }

    /// Cancels the task only if it has not started; what `map` does to the
    /// inputs it abandons.
    pub(crate) fn cancel_pending(&self) -> bool {
        self.cancel_if(PENDING)
    }

    /// Cancels a pending task, or, if `up_to` is `RUNNING`, a running one
    /// that has a canceller.
    fn cancel_if(&self, up_to: u8) -> bool {
        let (wakeups, canceller) = {
            let mut slot = self.inner.lock();
            let from = match self.inner.state() {
                CANCELLED => return true,
                // Sent ahead to a worker: only if it is taken back in time.
                PENDING if slot.hook.as_ref().is_some_and(|take_back| !take_back()) => {
                    return false;
                }
                PENDING => PENDING,
                RUNNING if up_to == RUNNING && slot.canceller.is_some() => RUNNING,
                _ => return false,
            };
            // ORDERING: AcqRel, paired with `Promise::claim`: exactly one of
            // the two moves the future out of PENDING. (RUNNING only changes
            // under this lock.)
            if let Err(now) = self.inner.state.compare_exchange(
                from,
                CANCELLED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // The worker claimed it first.
                return now == CANCELLED;
            }
            slot.hook = None;
            slot.stopped = from == RUNNING;
            (Wakeups::take(&mut slot), slot.canceller.take())
        };
        wakeups.deliver(&self.inner);
        if let Some(canceller) = canceller {
            canceller();
        }
        true
    }

    /// Returns `true` if the future was cancelled.
    ///
    /// ```
    /// # use concurrent_futures::ThreadPoolExecutor;
    /// let future = ThreadPoolExecutor::new(1).submit(|()| 1, ());
    /// future.result().unwrap();
    /// assert!(!future.cancelled());
    /// ```
    pub fn cancelled(&self) -> bool {
        self.inner.state() == CANCELLED
    }

    /// Returns `true` while a worker is running the task.
    ///
    /// ```
    /// # use concurrent_futures::ThreadPoolExecutor;
    /// # use std::sync::mpsc;
    /// let executor = ThreadPoolExecutor::new(1);
    /// let (started, wait_started) = mpsc::channel();
    /// let (release, gate) = mpsc::channel::<()>();
    /// let future = executor.submit(move |()| { started.send(()).unwrap(); gate.recv().unwrap() }, ());
    /// wait_started.recv().unwrap();
    /// assert!(future.running());
    /// release.send(()).unwrap();
    /// future.result().unwrap();
    /// assert!(!future.running());
    /// ```
    pub fn running(&self) -> bool {
        self.inner.state() == RUNNING
    }

    /// Returns `true` once the future has finished (with a value or an error)
    /// or was cancelled. A done future never changes state again.
    ///
    /// ```
    /// # use concurrent_futures::ThreadPoolExecutor;
    /// let future = ThreadPoolExecutor::new(1).submit(|()| 1, ());
    /// let _ = future.result();
    /// assert!(future.done());
    /// ```
    pub fn done(&self) -> bool {
        self.inner.state() >= FINISHED
    }

    /// Whether the task finished with an error (cancellation is not one).
    pub(crate) fn failed_with_error(&self) -> bool {
        self.inner.state() == FAILED
    }

    /// Blocks until the task is done, then hands over its result.
    ///
    /// Returns the task's value, or [`Error::Panicked`] if it panicked,
    /// [`Error::Cancelled`] if it was cancelled, or the executor's error if it
    /// could not run. The value moves out: a second call returns
    /// [`Error::ResultTaken`].
    ///
    /// ```
    /// # use concurrent_futures::{Error, ThreadPoolExecutor};
    /// let future = ThreadPoolExecutor::new(1).submit(|s: &str| s.len(), "task");
    /// assert_eq!(future.result(), Ok(4));
    /// assert_eq!(future.result(), Err(Error::ResultTaken));
    /// ```
    pub fn result(&self) -> Result<R, Error> {
        self.wait_and_take(None)
    }

    /// Like [`result`](Future::result), but gives up after `timeout` with
    /// [`Error::Timeout`]. The future stays usable after a timeout: wait again,
    /// or cancel it. A zero timeout only checks.
    ///
    /// ```
    /// # use concurrent_futures::{Error, ThreadPoolExecutor};
    /// # use std::{sync::mpsc, time::Duration};
    /// let executor = ThreadPoolExecutor::new(1);
    /// let (release, gate) = mpsc::channel::<()>();
    /// let future = executor.submit(move |()| gate.recv().map(|()| "ready").unwrap(), ());
    /// assert_eq!(future.result_timeout(Duration::ZERO), Err(Error::Timeout));
    /// release.send(()).unwrap();
    /// assert_eq!(future.result_timeout(Duration::from_secs(60)), Ok("ready"));
    /// ```
    pub fn result_timeout(&self, timeout: Duration) -> Result<R, Error> {
        // A deadline too far to represent is no deadline.
        self.wait_and_take(Instant::now().checked_add(timeout))
    }

    /// Waits until `deadline` (forever if `None`) and takes the result.
    pub(crate) fn wait_and_take(&self, deadline: Option<Instant>) -> Result<R, Error> {
        self.spin_briefly();
        self.sleep_and_take(deadline)
    }

    /// [`wait_and_take`](Self::wait_and_take) without the spinning: for a
    /// result not expected within [`SPIN_FOR`], where spinning would only
    /// take the CPU from the workers.
    pub(crate) fn sleep_and_take(&self, deadline: Option<Instant>) -> Result<R, Error> {
        let mut slot = self.inner.lock();
        loop {
            match self.inner.state() {
                CANCELLED => return Err(slot.cancelled()),
                FINISHED | FAILED => return slot.outcome.take().unwrap_or(Err(Error::ResultTaken)),
                _ => {}
            }
            slot.sleepers += 1;
            slot = match deadline {
                None => self
                    .inner
                    .ready
                    .wait(slot)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = sync::time_left(deadline);
                    if left.is_zero() {
                        slot.sleepers -= 1;
                        return Err(Error::Timeout);
                    }
                    sync::wait_timeout(&self.inner.ready, &self.inner.slot, slot, left)
                }
            };
            slot.sleepers -= 1;
        }
    }

    /// Waits a little before the caller sleeps: first a microsecond of
    /// spinning, then yielding the CPU for up to [`SPIN_FOR`]. A tiny task
    /// (or a process round trip) finishes in that time, and then no thread
    /// has to be woken; yielding leaves the CPU to the threads doing work.
    fn spin_briefly(&self) {
        // Under loom, skipped: its length is real time, which loom cannot
        // replay, and all it does is delay the caller (see `crate::sync`).
        if cfg!(concurrent_futures_loom) {
            return;
        }
        for step in 0..8 {
            match self.inner.state() {
                FINISHED.. => return,
                // Not even picked up yet: spinning would only take the CPU
                // from the worker that has to pick it up.
                PENDING if step >= 4 => break,
                _ => {}
            }
            for _ in 0..(1 << step) {
                hint::spin_loop();
            }
        }
        let start = Instant::now();
        while !self.done() && start.elapsed() < SPIN_FOR {
            thread::yield_now();
        }
    }

    /// Runs `callback` with this future once it is done.
    ///
    /// Callbacks run in the order they were added, on the thread that
    /// completes the future (a worker, or the thread that cancels it). A
    /// callback added to a future that is already done runs at once, on the
    /// calling thread. A callback that panics does not stop the others and
    /// does not harm the worker.
    ///
    /// The callback may take the result with [`result`](Future::result); then
    /// the future's owner gets [`Error::ResultTaken`].
    ///
    /// ```
    /// # use concurrent_futures::ThreadPoolExecutor;
    /// use std::sync::mpsc;
    ///
    /// let executor = ThreadPoolExecutor::new(1);
    /// let (tx, rx) = mpsc::channel();
    /// let future = executor.submit(|n: i32| n + 1, 1);
    /// future.add_done_callback(move |f| tx.send(f.done()).unwrap());
    /// assert_eq!(rx.recv(), Ok(true));
    /// assert_eq!(future.result(), Ok(2));
    /// ```
    pub fn add_done_callback(&self, callback: impl FnOnce(&Future<R>) + Send + 'static) {
        {
            let mut slot = self.inner.lock();
            if !self.done() {
                slot.callbacks.push(Box::new(callback));
                return;
            }
        }
        let _ = panic::catch(|| callback(self));
    }

    /// Asks to be sent `index` on `notify` when this future is done; if it is
    /// done already, sends at once. Returns `false` in that case.
    pub(crate) fn watch(&self, key: u64, index: usize, notify: &Arc<Notify>) -> bool {
        let mut slot = self.inner.lock();
        if self.done() {
            drop(slot);
            notify.send(index);
            return false;
        }
        slot.watchers.push(Watcher::new(key, index, notify));
        true
    }

    /// Withdraws the watchers registered under `key`.
    pub(crate) fn unwatch(&self, key: u64) {
        self.inner.lock().watchers.retain(|w| w.key() != key);
    }

    /// An address that is the same for every handle to this future.
    pub(crate) fn identity(&self) -> *const () {
        Arc::as_ptr(&self.inner).cast()
    }
}

impl<R> std::future::Future for Future<R> {
    type Output = Result<R, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.inner.lock();
        match self.inner.state() {
            CANCELLED => Poll::Ready(Err(slot.cancelled())),
            FINISHED | FAILED => {
                Poll::Ready(slot.outcome.take().unwrap_or(Err(Error::ResultTaken)))
            }
            _ => {
                register(&mut slot.waker, cx.waker());
                Poll::Pending
            }
        }
    }
}

/// Equal only to itself: two futures are equal when they are the same one.
impl<R> PartialEq for Future<R> {
    fn eq(&self, other: &Self) -> bool {
        self.identity() == other.identity()
    }
}

impl<R> Eq for Future<R> {}

/// Hashes the future's identity, which its state and value never change, so
/// a future keeps its place in a `HashMap` or `HashSet` while its task runs.
impl<R> Hash for Future<R> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.identity().hash(state);
    }
}

impl<R> fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.inner.state() {
            PENDING => "pending",
            RUNNING => "running",
            FINISHED => "finished",
            FAILED => "failed",
            _ => "cancelled",
        };
        f.debug_struct("Future").field("state", &state).finish()
    }
}

impl<R> fmt::Debug for Promise<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Promise").finish_non_exhaustive()
    }
}

#[cfg(all(test, concurrent_futures_loom))]
mod models;
pub(crate) mod watch;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_pending_future_cancels_and_stays_cancelled() {
        let (promise, future) = pair::<u8>();
        assert!(future.cancel());
        assert!(future.cancel(), "cancel is idempotent");
        assert!(future.cancelled() && future.done() && !future.running());
        assert!(!promise.claim(), "a cancelled task must not run");
        assert_eq!(future.result(), Err(Error::Cancelled));
    }

    #[test]
    fn a_running_or_finished_future_does_not_cancel() {
        let (promise, future) = pair::<u8>();
        assert!(promise.claim());
        assert!(future.running() && !future.done());
        assert!(!future.cancel());
        promise.complete(Ok(3));
        assert!(!future.cancel());
        assert_eq!(future.result(), Ok(3));
    }

    #[test]
    fn a_dropped_promise_cancels_its_future() {
        let (promise, future) = pair::<u8>();
        drop(promise);
        assert_eq!(future.result(), Err(Error::Cancelled));
    }

    #[test]
    fn completing_a_cancelled_future_changes_nothing() {
        let (promise, future) = pair::<u8>();
        assert!(future.cancel());
        promise.complete(Ok(1));
        assert_eq!(future.result(), Err(Error::Cancelled));
    }

    #[test]
    fn result_timeout_zero_leaves_the_future_usable() {
        let (promise, future) = pair::<u8>();
        assert_eq!(future.result_timeout(Duration::ZERO), Err(Error::Timeout));
        promise.complete(Ok(9));
        assert_eq!(future.result_timeout(Duration::ZERO), Ok(9));
        assert_eq!(future.result(), Err(Error::ResultTaken));
    }

    #[test]
    fn a_huge_timeout_is_no_deadline() {
        let (promise, future) = pair::<u8>();
        promise.complete(Ok(1));
        assert_eq!(future.result_timeout(Duration::MAX), Ok(1));
    }

    #[test]
    fn callbacks_run_in_order_even_when_one_panics() {
        let (promise, future) = pair::<u8>();
        let (tx, rx) = mpsc::channel();
        for n in 0..3 {
            let tx = tx.clone();
            future.add_done_callback(move |f| {
                tx.send((n, f.done())).unwrap();
                assert_ne!(n, 1, "callback 1 panics");
            });
        }
        promise.complete(Ok(1));
        let seen: Vec<_> = rx.try_iter().collect();
        assert_eq!(seen, [(0, true), (1, true), (2, true)]);
        let (tx, rx) = mpsc::channel();
        future.add_done_callback(move |_| tx.send(thread::current().id()).unwrap());
        assert_eq!(
            rx.try_recv(),
            Ok(thread::current().id()),
            "runs at once, here"
        );
    }

    #[test]
    fn debug_names_the_state() {
        let (promise, future) = pair::<u8>();
        assert_eq!(format!("{future:?}"), r#"Future { state: "pending" }"#);
        promise.complete(Err(Error::Timeout));
        assert_eq!(format!("{future:?}"), r#"Future { state: "failed" }"#);
    }
}
