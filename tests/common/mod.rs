//! What the thread-pool tests share: how long they wait, tasks held running
//! until the test releases them, a look at which thread runs a task, and a
//! waker that counts its wake-ups.
//!
//! Each thread-pool test file says `mod common;`. The process-pool tests do
//! not use this module; they include `process_fixtures.rs` and
//! `process_harness.rs` from this folder by `#[path]`.

// Every test binary compiles its own copy of this module and uses only part
// of it; the rest would warn as dead code in that binary.
#![allow(dead_code)]

use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::task::Wake;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use concurrent_futures::{Future, ReturnWhen, ThreadPoolExecutor, wait};

/// Long enough that only a bug makes a test wait this long.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How long a test gives something that should not happen (a blocked call
/// returning, a thread starting) the chance to happen wrongly. Only a buggy
/// pool is affected by how long this is.
pub const GRACE: Duration = Duration::from_millis(100);

/// The name of the thread this runs on, or `<unnamed>`.
pub fn current_name() -> String {
    thread::current().name().unwrap_or("<unnamed>").to_owned()
}

/// A pool of `max_workers` threads named `{prefix}_0`, `{prefix}_1`, ...
pub fn named(prefix: &str, max_workers: usize) -> ThreadPoolExecutor {
    ThreadPoolExecutor::builder()
        .max_workers(max_workers)
        .thread_name_prefix(prefix)
        .build()
        .unwrap()
}

/// Submits a task that reports it started, then blocks until released.
/// Returns once the task is running. Dropping the sender releases it too
/// (with `false`), so a failing test never leaves the pool stuck.
pub fn hold(executor: &ThreadPoolExecutor) -> (Future<bool>, Sender<()>) {
    hold_with(executor, |released| released)
}

/// [`hold`], with a task that returns `outcome(true)` when released and
/// `outcome(false)` when the sender is dropped.
pub fn hold_with<T: Send + 'static>(
    executor: &ThreadPoolExecutor,
    outcome: fn(bool) -> T,
) -> (Future<T>, Sender<()>) {
    let (started, wait_started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    let future = executor.submit(
        move |()| {
            started.send(()).unwrap();
            outcome(gate.recv().is_ok())
        },
        (),
    );
    wait_started
        .recv_timeout(PATIENCE)
        .expect("the held task should start");
    (future, release)
}

/// A task that reports `n` on `ran` if it ever runs, and returns `n`.
pub fn spy(executor: &ThreadPoolExecutor, ran: &Sender<u32>, n: u32) -> Future<u32> {
    let ran = ran.clone();
    executor.submit(
        move |n| {
            ran.send(n).unwrap();
            n
        },
        n,
    )
}

/// Submits a task that blocks until released (not waiting for it to start),
/// then returns `n` or, for a negative `n`, panics. Dropping the sender
/// releases it too.
pub fn held<T>(executor: &ThreadPoolExecutor, n: T) -> (Future<T>, Sender<()>)
where
    T: Copy + Default + PartialOrd + Display + Send + 'static,
{
    let (release, gate) = mpsc::channel::<()>();
    let future = executor.submit(
        move |n: T| {
            let _ = gate.recv();
            assert!(n >= T::default(), "task {n} fails");
            n
        },
        n,
    );
    (future, release)
}

/// A future that is already done with `n` (or failed, for a negative `n`).
pub fn finished<T>(executor: &ThreadPoolExecutor, n: T) -> Future<T>
where
    T: Copy + Default + PartialOrd + Display + Send + 'static,
{
    let (future, release) = held(executor, n);
    release.send(()).unwrap();
    let (done, _) = wait([&future], ReturnWhen::AllCompleted, Some(PATIENCE));
    assert_eq!(done.len(), 1, "the task should finish");
    future
}

/// Which of `all` `future` is, by position (by identity, not by value).
pub fn position<T>(all: &[&Future<T>], future: &Future<T>) -> usize {
    all.iter()
        .position(|g| std::ptr::eq(*g, future))
        .expect("only futures it was given are handed back")
}

/// A waker that unparks the thread that made it and counts its wake-ups.
pub struct Unpark {
    thread: Thread,
    wakes: AtomicUsize,
}

impl Unpark {
    /// A waker for this thread, not woken yet; `Waker::from` it.
    pub fn here() -> Arc<Self> {
        Arc::new(Unpark {
            thread: thread::current(),
            wakes: AtomicUsize::new(0),
        })
    }

    /// How many wake-ups so far.
    pub fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }

    /// Parks until there have been `n` wake-ups; a spurious unpark does not
    /// count. Panics after `PATIENCE`, so a lost wake-up fails the test
    /// instead of hanging it.
    pub fn park_until(&self, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.wakes() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the waker was never woken");
            thread::park_timeout(left);
        }
    }
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}
