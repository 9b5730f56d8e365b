//! [`ThreadPoolExecutor`]: tasks on a pool of threads in this process.
//!
//! Submitting puts a job on one shared queue (a crossbeam channel); workers
//! take jobs off it. Threads start lazily, one per submit that finds no idle
//! worker, up to `max_workers`. The queue's only sender sits behind the pool's
//! mutex, so a submit that races a shutdown is either queued (and will run)
//! or refused with [`Error::Shutdown`], never lost.

mod worker;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, ThreadId};

use crossbeam_channel::{Receiver, Sender};

use crate::future::{self, Promise};
use crate::map::Map;
use crate::{Error, Executor, Future, Payload, Shutdown, panic};
use worker::{Chunk, Job, Task};

/// A pool of threads for I/O-bound work: downloads, file and database access,
/// anything that mostly waits.
///
/// Threads share the process's memory, so tasks may be any closure, capturing
/// what they like, with any `Send` argument and result: no serialization. For
/// CPU-heavy work that must be isolated from crashes, use the process pool.
///
/// Dropping the pool waits for every submitted task and joins every thread,
/// like leaving Python's `with ThreadPoolExecutor() as executor:` block.
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let executor = ThreadPoolExecutor::new(3);
/// let pages: Vec<_> = executor
///     .map(|url: &str| { std::thread::sleep(Duration::from_millis(100)); url.len() }, ["web1", "web2", "web3"])
///     .collect();
/// assert_eq!(pages, [Ok(4), Ok(4), Ok(4)]);
/// assert!(start.elapsed() < Duration::from_millis(300), "the three waits overlap");
/// ```
pub struct ThreadPoolExecutor {
    shared: Arc<Shared>,
}

/// What the pool and its workers share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// A handle on the queue for draining it at shutdown or breakage.
    jobs: Receiver<Box<dyn Job>>,
    /// Workers waiting for a job, or about to.
    idle: AtomicUsize,
    max_workers: usize,
    name_prefix: String,
    stack_size: Option<usize>,
    initializer: Option<Initializer>,
}

type Initializer = Arc<dyn Fn() + Send + Sync>;

struct State {
    /// `None` once the pool is shut down or broken: the queue is closed.
    sender: Option<Sender<Box<dyn Job>>>,
    threads: Vec<JoinHandle<()>>,
    /// Why the pool broke, if it did.
    broken: Option<String>,
}

impl ThreadPoolExecutor {
    /// A pool of at most `max_workers` threads.
    ///
    /// # Panics
    ///
    /// If `max_workers` is 0. Use [`ThreadPoolExecutor::builder`] to get an
    /// [`Error`] instead.
    ///
    /// ```
    /// let executor = concurrent_futures::ThreadPoolExecutor::new(3);
    /// assert_eq!(executor.max_workers(), 3);
    /// ```
    pub fn new(max_workers: usize) -> Self {
        Self::builder()
            .max_workers(max_workers)
            .build()
            .unwrap_or_else(|error| panic!("ThreadPoolExecutor::new: {error}"))
    }

    /// A builder for the pool's settings.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let executor = ThreadPoolExecutor::builder()
    ///     .max_workers(2)
    ///     .thread_name_prefix("unduh")
    ///     .build()?;
    /// let name = executor.submit(|()| std::thread::current().name().map(String::from), ());
    /// assert_eq!(name.result()?, Some("unduh_0".to_string()));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::default()
    }

    /// The most threads this pool will run.
    ///
    /// ```
    /// # use concurrent_futures::ThreadPoolExecutor;
    /// assert_eq!(ThreadPoolExecutor::new(5).max_workers(), 5);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.shared.max_workers
    }

    /// Schedules `task(arg)` and returns a future for its result.
    ///
    /// `task` is any closure that can move to another thread. It never blocks
    /// and never panics: after shutdown, or once the pool is broken, the
    /// future holds that error.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let greeting = String::from("Selamat");
    /// let future = executor.submit(move |name: &str| format!("{greeting}, {name}!"), "pagi");
    /// assert_eq!(future.result().unwrap(), "Selamat, pagi!");
    /// ```
    pub fn submit<F, A, R>(&self, task: F, arg: A) -> Future<R>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        let (promise, future) = future::pair();
        self.shared.enqueue(Box::new(Task { task, arg, promise }));
        future
    }

    /// Runs `task` over `inputs` and yields the results in input order.
    ///
    /// `task` may be any shared closure. The iterator is lazy, keeps a
    /// bounded number of tasks in flight, and cancels what has not started
    /// when it is dropped; see [`Map`].
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let executor = ThreadPoolExecutor::new(3);
    /// let suffix = String::from(" selesai");
    /// for line in executor.map(move |n: u32| format!("Tugas {n}{suffix}"), [1, 2, 3]) {
    ///     println!("{}", line?);
    /// }
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn map<F, A, R, I>(&self, task: F, inputs: I) -> Map<'_, I::IntoIter, R>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        let task = Arc::new(task);
        let submit = move |chunk: &mut Vec<A>, out: &mut VecDeque<Future<R>>| {
            if chunk.len() == 1 {
                let task = Arc::clone(&task);
                let arg = chunk.pop().expect("one item");
                out.push_back(self.submit(move |arg| task(arg), arg));
                return;
            }
            let items: Vec<(A, Promise<R>)> = chunk
                .drain(..)
                .map(|arg| {
                    let (promise, future) = future::pair();
                    out.push_back(future);
                    (arg, promise)
                })
                .collect();
            self.shared.enqueue(Box::new(Chunk {
                task: Arc::clone(&task),
                items,
            }));
        };
        Map::new(inputs.into_iter(), self.max_workers(), Box::new(submit))
    }

    /// Stops taking tasks and waits for the queued ones to run; see
    /// [`Executor::shutdown`]. Called by `Drop`.
    ///
    /// ```
    /// # use concurrent_futures::ThreadPoolExecutor;
    /// let executor = ThreadPoolExecutor::new(1);
    /// let future = executor.submit(|()| 1, ());
    /// executor.shutdown();
    /// assert!(future.done());
    /// ```
    pub fn shutdown(&self) {
        self.shutdown_with(Shutdown::default());
    }

    /// Shuts down as `how` says; see [`Shutdown`].
    ///
    /// Safe to call from inside one of the pool's own tasks: the calling
    /// worker is not waited for (it would be waiting for itself).
    ///
    /// ```
    /// use concurrent_futures::{Error, Shutdown, ThreadPoolExecutor};
    /// use std::sync::mpsc;
    ///
    /// let executor = ThreadPoolExecutor::new(1);
    /// let (started, wait_started) = mpsc::channel();
    /// let (release, gate) = mpsc::channel::<()>();
    /// let running = executor.submit(move |()| { started.send(()).unwrap(); gate.recv().is_ok() }, ());
    /// let queued = executor.submit(|()| true, ());
    /// wait_started.recv().unwrap();
    /// release.send(()).unwrap();
    /// executor.shutdown_with(Shutdown { cancel_futures: true, ..Shutdown::default() });
    /// assert_eq!(running.result(), Ok(true));              // running tasks finish
    /// assert_eq!(queued.result(), Err(Error::Cancelled));  // queued ones are cancelled
    /// ```
    pub fn shutdown_with(&self, how: Shutdown) {
        let threads = {
            let mut state = self.shared.lock();
            state.sender = None;
            if how.wait {
                std::mem::take(&mut state.threads)
            } else {
                Vec::new()
            }
        };
        if how.cancel_futures {
            // Dropping a job unrun resolves its futures as cancelled.
            self.shared.jobs.try_iter().for_each(drop);
        }
        join_all_but_current(threads);
    }
}

/// Joins `threads`, except the calling thread if it is one of them.
fn join_all_but_current(threads: Vec<JoinHandle<()>>) {
    let me: ThreadId = thread::current().id();
    for handle in threads {
        if handle.thread().id() != me {
            // Workers catch every task panic, so a join error cannot happen;
            // if it somehow did, there is nothing left to clean up.
            let _ = handle.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code that can panic runs under this lock, so a poisoned lock
        // still guards consistent state.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Queues `job`, starting a thread if no idle one will take it. A job
    /// that cannot run (shut down, broken, no thread) fails with the reason.
    fn enqueue(self: &Arc<Self>, job: Box<dyn Job>) {
        let mut state = self.lock();
        let refusal = match (&state.sender, &state.broken) {
            (_, Some(reason)) => Error::BrokenExecutor {
                reason: reason.clone(),
            },
            (None, None) => Error::Shutdown,
            (Some(sender), None) => {
                // The receiver lives in `self.jobs`, so the send cannot fail.
                let _ = sender.send(job);
                // ORDERING: a heuristic; see `worker::mark_idle`.
                let idle = self.idle.load(Ordering::Relaxed);
                if self.jobs.len() > idle
                    && state.threads.len() < self.max_workers
                    && let Err(error) = self.start_thread(&mut state)
                    && state.threads.is_empty()
                {
                    // Nobody would ever run the queue: fail it now.
                    drop(state);
                    self.jobs.try_iter().for_each(|job| job.fail(error.clone()));
                }
                return;
            }
        };
        drop(state);
        job.fail(refusal);
    }

    fn start_thread(self: &Arc<Self>, state: &mut State) -> Result<(), Error> {
        let name = format!("{}_{}", self.name_prefix, state.threads.len());
        let mut builder = thread::Builder::new().name(name);
        if let Some(bytes) = self.stack_size {
            builder = builder.stack_size(bytes);
        }
        let shared = Arc::clone(self);
        let jobs = self.jobs.clone();
        let handle = builder
            .spawn(move || worker::work(shared, jobs))
            .map_err(|error| Error::SpawnFailed {
                reason: error.to_string(),
            })?;
        state.threads.push(handle);
        Ok(())
    }

    /// Marks the pool broken: closes the queue and fails every queued job.
    fn break_pool(&self, reason: String) {
        {
            let mut state = self.lock();
            state.sender = None;
            state.broken.get_or_insert(reason.clone());
        }
        let error = Error::BrokenExecutor { reason };
        self.jobs.try_iter().for_each(|job| job.fail(error.clone()));
    }
}

impl Default for ThreadPoolExecutor {
    /// A pool with Python's default size, `min(32, cpus + 4)`.
    fn default() -> Self {
        Self::new(ThreadPoolBuilder::default().max_workers)
    }
}

impl Drop for ThreadPoolExecutor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Executor for ThreadPoolExecutor {
    fn submit<A: Payload, R: Payload>(&self, task: fn(A) -> R, arg: A) -> Future<R> {
        ThreadPoolExecutor::submit(self, task, arg)
    }

    fn map<'e, A, R, I>(&'e self, task: fn(A) -> R, inputs: I) -> Map<'e, I::IntoIter, R>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        ThreadPoolExecutor::map(self, task, inputs)
    }

    fn shutdown_with(&self, how: Shutdown) {
        ThreadPoolExecutor::shutdown_with(self, how);
    }
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("ThreadPoolExecutor")
            .field("max_workers", &self.shared.max_workers)
            .field("threads", &state.threads.len())
            .field("queued", &self.shared.jobs.len())
            .field("shut_down", &state.sender.is_none())
            .field("broken", &state.broken)
            .finish()
    }
}

/// Settings for a [`ThreadPoolExecutor`]; start from
/// [`ThreadPoolExecutor::builder`].
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let executor = ThreadPoolExecutor::builder()
///     .max_workers(4)
///     .thread_name_prefix("worker")
///     .stack_size(256 * 1024)
///     .initializer(|| println!("a worker starts"))
///     .build()?;
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct ThreadPoolBuilder {
    max_workers: usize,
    name_prefix: Option<String>,
    stack_size: Option<usize>,
    initializer: Option<Initializer>,
}

impl Default for ThreadPoolBuilder {
    fn default() -> Self {
        Self {
            max_workers: 32.min(num_cpus::get() + 4),
            name_prefix: None,
            stack_size: None,
            initializer: None,
        }
    }
}

impl ThreadPoolBuilder {
    /// The most threads the pool will run. Default: Python's
    /// `min(32, cpus + 4)`. Zero makes [`build`](Self::build) fail.
    ///
    /// ```
    /// # use concurrent_futures::{Error, ThreadPoolExecutor};
    /// assert!(matches!(
    ///     ThreadPoolExecutor::builder().max_workers(0).build(),
    ///     Err(Error::InvalidArgument(_))
    /// ));
    /// ```
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = max_workers;
        self
    }

    /// Names the threads `{prefix}_0`, `{prefix}_1`, and so on. Default:
    /// `ThreadPoolExecutor-{n}`, with `n` counting the pools of the process.
    ///
    /// ```
    /// # use concurrent_futures::ThreadPoolExecutor;
    /// let executor = ThreadPoolExecutor::builder().thread_name_prefix("unduh").build()?;
    /// let name = executor.submit(|()| std::thread::current().name().unwrap().to_owned(), ());
    /// assert_eq!(name.result()?, "unduh_0");
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = Some(prefix.into());
        self
    }

    /// The stack size of each worker thread, in bytes. Default: Rust's.
    ///
    /// ```
    /// # use concurrent_futures::ThreadPoolExecutor;
    /// let executor = ThreadPoolExecutor::builder().stack_size(8 << 20).build()?;
    /// assert_eq!(executor.submit(|n: u32| n + 1, 1).result()?, 2);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Runs `initializer` once in each worker thread before its first task.
    ///
    /// If it panics, the pool is broken: queued and later tasks fail with
    /// [`Error::BrokenExecutor`], whose message carries the panic.
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    ///
    /// let executor = ThreadPoolExecutor::builder()
    ///     .initializer(|| panic!("no database"))
    ///     .build()?;
    /// let Err(Error::BrokenExecutor { reason }) = executor.submit(|()| 1, ()).result() else {
    ///     panic!("the pool should be broken");
    /// };
    /// assert!(reason.contains("no database"));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn initializer(mut self, initializer: impl Fn() + Send + Sync + 'static) -> Self {
        self.initializer = Some(Arc::new(initializer));
        self
    }

    /// Builds the pool. No thread starts until the first task arrives.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `max_workers` is 0 or the name prefix
    /// contains a NUL byte.
    ///
    /// ```
    /// let executor = concurrent_futures::ThreadPoolExecutor::builder().build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn build(self) -> Result<ThreadPoolExecutor, Error> {
        static POOLS: AtomicUsize = AtomicUsize::new(0);
        if self.max_workers == 0 {
            return Err(Error::InvalidArgument(
                "max_workers must be at least 1".into(),
            ));
        }
        let name_prefix = match self.name_prefix {
            Some(prefix) if prefix.contains('\0') => {
                return Err(Error::InvalidArgument(
                    "thread_name_prefix must not contain a NUL byte".into(),
                ));
            }
            Some(prefix) => prefix,
            // ORDERING: only uniqueness matters.
            None => format!(
                "ThreadPoolExecutor-{}",
                POOLS.fetch_add(1, Ordering::Relaxed)
            ),
        };
        panic::install_hook();
        let (sender, jobs) = crossbeam_channel::unbounded();
        Ok(ThreadPoolExecutor {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    sender: Some(sender),
                    threads: Vec::new(),
                    broken: None,
                }),
                jobs,
                idle: AtomicUsize::new(0),
                max_workers: self.max_workers,
                name_prefix,
                stack_size: self.stack_size,
                initializer: self.initializer,
            }),
        })
    }
}

impl fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("thread_name_prefix", &self.name_prefix)
            .field("stack_size", &self.stack_size)
            .field("initializer", &self.initializer.is_some())
            .finish()
    }
}
