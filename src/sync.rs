//! Layer: core. May use: std, or loom under its cfg.
//! The synchronization primitives of the future's state machine: std's in a
//! normal build, [loom]'s when built with `--cfg concurrent_futures_loom`,
//! for the model checks in `src/future/models.rs`.
//!
//! A normal build gets plain re-exports of std, and two `#[inline]` shims
//! that are exactly the std calls they wrap: no indirection at run time.
//!
//! Two things loom cannot model are mapped here:
//!
//! - **Time.** Deadlines stay [`std::time::Instant`] in both builds (they are
//!   not a sync primitive, and `map` hands the same deadline to crossbeam), so
//!   under loom no outcome may depend on how much real time passes: that would
//!   differ between the runs loom replays. [`time_left`] therefore reports a
//!   timed wait as over as soon as the thread has made one, and
//!   [`wait_timeout`] does not block: it lets go of the lock, yields so that
//!   any other thread may run, and takes the lock back, as a real wait that
//!   times out does. (loom's own `Condvar::wait_timeout` never times out; it
//!   would report a deadlock instead of exploring the expiry.) A real wait
//!   that is woken early is covered too: after either, the waiter re-checks
//!   the state under the lock, so the two only differ in when they return.
//! - **Spinning.** `Future::spin_briefly` is skipped under loom: it spins for
//!   a span of real time and only delays its caller, deciding nothing.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(concurrent_futures_loom))]
pub(crate) use std::sync::atomic::{AtomicU8, Ordering};
#[cfg(not(concurrent_futures_loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[cfg(concurrent_futures_loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, Ordering};
#[cfg(concurrent_futures_loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

use std::sync::PoisonError;
use std::time::{Duration, Instant};

/// How long is left until `deadline`; zero once it has passed.
#[cfg(not(concurrent_futures_loom))]
#[inline]
pub(crate) fn time_left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Waits on `ready` for at most `timeout`, with `guard` (a lock on `mutex`)
/// released meanwhile, and returns the lock retaken. `mutex` is only for
/// loom's version, which retakes the lock itself.
#[cfg(not(concurrent_futures_loom))]
#[inline]
pub(crate) fn wait_timeout<'a, T>(
    ready: &Condvar,
    _mutex: &'a Mutex<T>,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    ready
        .wait_timeout(guard, timeout)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}

#[cfg(concurrent_futures_loom)]
loom::thread_local! {
    /// Whether this (loom) thread's last timed wait ran out; read once.
    static TIMED_OUT: std::cell::Cell<bool> = std::cell::Cell::new(false);
}

/// Under loom: the real time left, unless this thread's last timed wait has
/// run out, which is then reported (once) as no time left. Models give
/// timeouts that real time never reaches within a run (or zero), so the
/// result never depends on the clock.
#[cfg(concurrent_futures_loom)]
pub(crate) fn time_left(deadline: Instant) -> Duration {
    if TIMED_OUT.with(|timed_out| timed_out.replace(false)) {
        Duration::ZERO
    } else {
        deadline.saturating_duration_since(Instant::now())
    }
}

/// Under loom: a timed wait that runs out. It lets go of the lock, yields to
/// whichever thread loom picks, and takes the lock back; [`time_left`] then
/// reports the time as up.
#[cfg(concurrent_futures_loom)]
pub(crate) fn wait_timeout<'a, T>(
    _ready: &Condvar,
    mutex: &'a Mutex<T>,
    guard: MutexGuard<'a, T>,
    _timeout: Duration,
) -> MutexGuard<'a, T> {
    drop(guard);
    TIMED_OUT.with(|timed_out| timed_out.set(true));
    loom::thread::yield_now();
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
