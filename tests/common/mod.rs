//! What the thread-pool tests share: how long they wait, tasks held running
//! until the test releases them, a look at which thread runs a task, the
//! gates and input counters of the `map` tests, and a waker that counts its
//! wake-ups.
//!
//! Each thread-pool test file says `mod common;`. The process-pool tests do
//! not use this module; they include `process_fixtures.rs` and
//! `harness.rs` from this folder by `#[path]`.

// Every test binary compiles its own copy of this module and uses only part
// of it; the rest would warn as dead code in that binary.
#![allow(dead_code)]

use std::fmt::Display;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::task::Wake;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use concurrent_futures::{Error, Future, Map, ReturnWhen, ThreadPoolExecutor, wait};

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

/// Counts how many items are pulled out of an input iterator.
pub fn counted<I: Iterator>(inputs: I) -> (impl Iterator<Item = I::Item>, Arc<AtomicUsize>) {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let inputs = inputs.inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    (inputs, pulled)
}

/// Gates that tasks block on until the test opens them, by index.
pub struct Gates {
    senders: Vec<Sender<()>>,
    /// What the tasks hold, to [`pass`] one gate each.
    pub receivers: Arc<Vec<Mutex<Receiver<()>>>>,
}

impl Gates {
    pub fn new(count: usize) -> Self {
        let (senders, receivers) = (0..count)
            .map(|_| mpsc::channel())
            .unzip::<_, _, Vec<_>, Vec<_>>();
        Self {
            senders,
            receivers: Arc::new(receivers.into_iter().map(Mutex::new).collect()),
        }
    }

    pub fn open(&self, index: usize) {
        self.senders[index].send(()).unwrap();
    }
}

/// Blocks until gate `index` opens (or its sender is dropped, which ends a
/// failing test instead of hanging it). Returns whether it was opened.
pub fn pass(gates: &[Mutex<Receiver<()>>], index: usize) -> bool {
    gates[index].lock().unwrap().recv().is_ok()
}

/// A task for a pool of one: item `held` reports on `started` and blocks on
/// gate 0; every item after it reports on `ran`, so the test can tell
/// whether it ever ran.
pub fn held_task(
    gates: &Gates,
    held: usize,
) -> (
    impl Fn(usize) -> usize + Send + Sync + 'static,
    Receiver<()>,
    Receiver<usize>,
) {
    let receivers = Arc::clone(&gates.receivers);
    let (started_tx, started) = mpsc::channel();
    let (ran_tx, ran) = mpsc::channel();
    let (started_tx, ran_tx) = (Mutex::new(started_tx), Mutex::new(ran_tx));
    let task = move |n: usize| {
        if n == held {
            started_tx.lock().unwrap().send(()).unwrap();
            pass(&receivers, 0);
        } else if n > held {
            ran_tx.lock().unwrap().send(n).unwrap();
        }
        n
    };
    (task, started, ran)
}

/// Which of the two maps a check shared by `map.rs` and `map_unordered.rs`
/// runs.
#[derive(Clone, Copy)]
pub enum Order {
    /// `map`: results in input order.
    Input,
    /// `map_unordered`: results as the tasks finish.
    Completion,
}

/// `executor.map(task, inputs)` or `executor.map_unordered(task, inputs)`,
/// as `order` says.
pub fn map_in<F, A, R, I>(
    executor: &ThreadPoolExecutor,
    order: Order,
    task: F,
    inputs: I,
) -> Map<'_, I::IntoIter, R>
where
    F: Fn(A) -> R + Send + Sync + 'static,
    A: Send + 'static,
    R: Send + 'static,
    I: IntoIterator<Item = A>,
{
    match order {
        Order::Input => executor.map(task, inputs),
        Order::Completion => executor.map_unordered(task, inputs),
    }
}

/// Fails unless no item after the held one of a [`held_task`] ever ran:
/// `ran`'s senders, owned by the task, are all gone without a word.
pub fn assert_never_ran(ran: &Receiver<usize>, what: &str) {
    assert_eq!(ran.try_recv(), Err(TryRecvError::Disconnected), "{what}");
}

/// A map's timeout passes while item 1 is held: the map yields item 0,
/// `Timeout` once, then ends for good, and the items queued behind the
/// held one are cancelled, never run.
pub fn check_the_timeout_yields_timeout_once_then_ends(order: Order) {
    let executor = ThreadPoolExecutor::new(1);
    let gates = Gates::new(1);
    // Item 0 is quick; item 1 is held; 2..6 queue behind it, each its own
    // chunk (an automatic chunk could hold item 1 and the next). The
    // deadline only has to leave room for item 0.
    let (task, _started, ran) = held_task(&gates, 1);
    let mut results = map_in(&executor, order, task, 0..6)
        .chunksize(1)
        .buffer_size(6)
        .timeout(Duration::from_secs(1));
    assert_eq!(results.next(), Some(Ok(0)));
    assert_eq!(results.next(), Some(Err(Error::Timeout)));
    assert_eq!(results.next(), None);
    assert_eq!(results.next(), None, "and stays ended");
    gates.open(0);
    executor.shutdown();
    drop(results); // drops the task, and with it the senders
    assert_never_ran(&ran, "the items queued behind the held one were cancelled");
}

/// Dropping a map while item 1 is held cancels the items queued behind
/// it: they never run.
pub fn check_dropping_the_iterator_cancels_the_tasks_not_started(order: Order) {
    let executor = ThreadPoolExecutor::new(1);
    let gates = Gates::new(1);
    // Item 0 is quick, item 1 is held, items 2..6 queue behind it, each
    // its own chunk (an automatic chunk could hold item 1 and the next).
    let (task, started, ran) = held_task(&gates, 1);
    let (inputs, pulled) = counted(0..6);
    let mut results = map_in(&executor, order, task, inputs)
        .chunksize(1)
        .buffer_size(6);
    assert_eq!(results.next(), Some(Ok(0)));
    assert_eq!(pulled.load(Ordering::SeqCst), 6, "all six were submitted");
    started.recv_timeout(PATIENCE).unwrap();
    drop(results);
    gates.open(0);
    executor.shutdown();
    assert_never_ran(&ran, "dropping the map cancelled the queued tasks");
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
