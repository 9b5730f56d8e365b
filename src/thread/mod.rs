//! Layer: pools (the thread pool). May use: `error`, `executor`, `future`,
//! `map`, `panic`, `spread`, `thread::scope`, `thread::task`, `trace` and
//! `work_queue`.
//! [`ThreadPoolExecutor`]: tasks on a pool of threads in this process.
//!
//! The queue and the lazily started threads are a [`WorkQueue`]; each thread runs
//! [`task::run_tasks`]: the initializer, then job after job. Scoped tasks,
//! which borrow, are in [`scope`].

mod scope;
mod task;

pub use scope::Scope;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::executor::forward_executor;
use crate::future;
use crate::map::{Map, Meter, Outcomes, Pending};
use crate::work_queue::WorkQueue;
use crate::{Error, Future, Shutdown, Spread, panic};
use task::{Task, ThreadTask};

/// How long each automatic chunk of a `map` should run: far above what
/// queueing a chunk and waking its worker and the caller cost, even on a
/// busy machine (at 0.1 ms, 1 us tasks ran 1.5x slower than in chunks of
/// 128 on two loaded cores; at 1 ms, as fast).
const CHUNK_TARGET: Duration = Duration::from_millis(1);

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
/// A task's panic is its future's [`Error::Panicked`], and a panic in a
/// result's or an argument's `Drop` kills no pool thread. But a task that
/// overflows its stack (deep recursion) aborts the whole program, as on
/// any Rust thread: that cannot be caught. Give such work a bigger
/// [`stack_size`](ThreadPoolBuilder::stack_size), or run it on a
/// [`ProcessPoolExecutor`](crate::ProcessPoolExecutor), where it kills only
/// its worker ([`Error::WorkerDied`]).
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
    queue: Arc<WorkQueue<ThreadTask>>,
}

type Initializer = Arc<dyn Fn() + Send + Sync>;

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
    #[track_caller] // the panic names the caller's line
    pub fn new(max_workers: usize) -> Self {
        match Self::builder().max_workers(max_workers).build() {
            Ok(executor) => executor,
            Err(error) => panic!("ThreadPoolExecutor::new: {error}"),
        }
    }

    /// A builder for the pool's settings.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let executor = ThreadPoolExecutor::builder()
    ///     .max_workers(2)
    ///     .thread_name_prefix("download")
    ///     .build()?;
    /// let name = executor.submit(|()| std::thread::current().name().map(String::from), ());
    /// assert_eq!(name.result()?, Some("download_0".to_string()));
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
        self.queue.max_workers()
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
    /// let greeting = String::from("Hello");
    /// let future = executor.submit(move |name: &str| format!("{greeting}, {name}!"), "world");
    /// assert_eq!(future.result().unwrap(), "Hello, world!");
    /// ```
    ///
    /// Python's `submit(fn, a, b)` passes one tuple here, which the closure
    /// destructures: `executor.submit(|(a, b): (u32, u32)| a + b, (1, 2))`;
    /// [`starmap`](Self::starmap) spreads tuples over several arguments.
    pub fn submit<F, A, R>(&self, task: F, arg: A) -> Future<R>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        let (promise, future) = future::pair();
        #[cfg(feature = "tracing")]
        let task = crate::trace::in_span(task);
        self.queue.enqueue(Box::new(Task { task, arg, promise }));
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
    /// let suffix = String::from(" done");
    /// for line in executor.map(move |n: u32| format!("Task {n}{suffix}"), [1, 2, 3]) {
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
        let submit = move |chunk: &mut Vec<A>, meter: Option<&Arc<Meter>>| {
            let task = Arc::clone(&task);
            if chunk.len() == 1 && meter.is_none() {
                let arg = chunk.pop().expect("one item");
                return Pending::One(self.submit(move |arg| task(arg), arg));
            }
            let len = chunk.len();
            let meter = meter.map(Arc::clone);
            let run_all = move |args: Vec<A>| {
                let start = meter.as_ref().map(|_| Instant::now());
                let results: Outcomes<R> = args
                    .into_iter()
                    .map(|arg| panic::catch(|| task(arg)))
                    .collect();
                if let (Some(meter), Some(start)) = (meter, start) {
                    meter.record(len, start.elapsed());
                }
                results
            };
            Pending::Chunk {
                future: self.submit(run_all, std::mem::take(chunk)),
                len,
            }
        };
        Map::new(
            inputs.into_iter(),
            self.max_workers(),
            CHUNK_TARGET,
            Box::new(submit),
        )
    }

    /// Runs `f` with a [`Scope`] whose tasks may borrow from the caller's
    /// stack, like [`std::thread::scope`], and returns what `f` returns.
    ///
    /// Returns only when every task submitted in the scope has run (or was
    /// cancelled and dropped), even if `f` panics: the panic then goes on
    /// once the tasks are done. A task's panic is its own future's
    /// [`Error::Panicked`].
    ///
    /// Once `f` returns, the calling thread runs the scope's tasks that no
    /// worker has started (without the pool's thread name or initializer),
    /// so a scope inside one of this pool's own tasks finishes even when
    /// every worker is busy. But blocking inside `f` on a task of the scope
    /// can wait forever if no worker is free: return the futures from `f`
    /// and read them after.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let mut data = vec![1, 2, 3, 4];
    /// let factor = 10; // borrowed by every task
    /// executor.scope(|s| {
    ///     for half in data.chunks_mut(2) {
    ///         drop(s.submit(|()| half.iter_mut().for_each(|n| *n *= factor), ()));
    ///     }
    /// });
    /// assert_eq!(data, [10, 20, 30, 40]);
    /// ```
    pub fn scope<'env, F, T>(&self, f: F) -> T
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
    {
        scope::run(&self.queue, f)
    }

    /// Runs `task` on every item of `items`, in a few chunks per worker, and
    /// returns the results in input order.
    ///
    /// Like [`map`](Self::map) for borrowed data: `task` and the items need
    /// not be `'static`, and nothing needs an `Arc`. Each item has its own
    /// result: a panic fails only that item. Returns once all are done.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let urls = vec![String::from("web1"), String::from("web22")];
    /// let prefix = String::from("https://");
    /// let full = executor.map_scoped(|url| format!("{prefix}{url}"), &urls);
    /// assert_eq!(full, [Ok("https://web1".to_string()), Ok("https://web22".to_string())]);
    /// ```
    pub fn map_scoped<T, R>(
        &self,
        task: impl Fn(&T) -> R + Sync,
        items: &[T],
    ) -> Vec<Result<R, Error>>
    where
        T: Sync,
        R: Send,
    {
        scope::map_slice(&self.queue, task, items)
    }

    /// Runs `task` over tuples of arguments, yielding the results in input
    /// order: Python's `starmap`, which calls `task(*args)` for each tuple.
    ///
    /// `task` may be any shared closure or function of one to six arguments
    /// (see [`Spread`]); a closure's argument types must be written out. The
    /// iterator is a [`Map`], with its settings.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// fn power(base: u64, exponent: u32) -> u64 {
    ///     base.pow(exponent)
    /// }
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let powers: Vec<_> = executor.starmap(power, [(2, 5), (3, 2)]).collect::<Result<_, _>>()?;
    /// assert_eq!(powers, [32, 9]);
    ///
    /// let hello = String::from("Hello");
    /// let greet = move |name: &str, city: &str, times: usize| format!("{hello} {name} from {city}").repeat(times);
    /// let mut lines = executor.starmap(greet, [("Ada", "London", 1)]);
    /// assert_eq!(lines.next(), Some(Ok("Hello Ada from London".to_owned())));
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn starmap<F, Args, I>(&self, task: F, inputs: I) -> Map<'_, I::IntoIter, F::Output>
    where
        F: Spread<Args> + Send + Sync + 'static,
        F::Output: Send + 'static,
        Args: Send + 'static,
        I: IntoIterator<Item = Args>,
    {
        self.map(move |args| task.call_with(args), inputs)
    }

    /// Like [`map`](Self::map), but yields each result as soon as its task
    /// finishes, for throughput; see [`Executor::map_unordered`](crate::Executor::map_unordered).
    ///
    /// To know which input a result belongs to, have the task return it.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    /// use std::time::Duration;
    ///
    /// let executor = ThreadPoolExecutor::new(3);
    /// let download = |seconds: u64| {
    ///     std::thread::sleep(Duration::from_millis(100 * seconds));
    ///     format!("web{seconds}")
    /// };
    /// let finished: Vec<_> = executor.map_unordered(download, [3, 1, 2]).collect::<Result<_, _>>()?;
    /// assert_eq!(finished.len(), 3); // most likely web1, web2, web3: the fastest first
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn map_unordered<F, A, R, I>(&self, task: F, inputs: I) -> Map<'_, I::IntoIter, R>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.map(task, inputs).unordered()
    }

    /// Stops taking tasks and waits for the queued ones to run; see
    /// [`Executor::shutdown`](crate::Executor::shutdown). Called by `Drop`.
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
    /// executor.shutdown_with(Shutdown { wait: false, cancel_futures: true });
    /// release.send(()).unwrap();
    /// assert_eq!(running.result(), Ok(true));              // running tasks finish
    /// assert_eq!(queued.result(), Err(Error::Cancelled));  // queued ones are cancelled
    /// ```
    pub fn shutdown_with(&self, how: Shutdown) {
        self.queue.shutdown(how);
    }
}

impl Default for ThreadPoolExecutor {
    /// A pool with Python's default size, `min(32, cpus + 4)`.
    #[track_caller]
    fn default() -> Self {
        Self::new(ThreadPoolBuilder::default().max_workers)
    }
}

impl Drop for ThreadPoolExecutor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

forward_executor!([] ThreadPoolExecutor);

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ThreadPoolExecutor")
            .field(&self.queue)
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
    /// let executor = ThreadPoolExecutor::builder().thread_name_prefix("download").build()?;
    /// let name = executor.submit(|()| std::thread::current().name().unwrap().to_owned(), ());
    /// assert_eq!(name.result()?, "download_0");
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
        let initializer = self.initializer;
        Ok(ThreadPoolExecutor {
            queue: Arc::new(WorkQueue::new(
                self.max_workers,
                name_prefix,
                self.stack_size,
                Arc::new(move |queue| task::run_tasks(queue, initializer.as_deref())),
            )),
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
