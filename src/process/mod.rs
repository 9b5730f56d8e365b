//! [`ProcessPoolExecutor`]: tasks in separate worker processes.
//!
//! - [`worker`]: [`init`] and the loop a worker process runs.
//! - [`spawn`]: starting a worker, the handshake, calls, stopping it.
//! - [`manager`]: the pool-side thread that feeds one worker.
//! - [`wire`]: the frames on the private channel.
//! - [`call`]: naming a function across processes, the unsafe core.
//!
//! The queue and the lazily started manager threads are [`Workers`], as in
//! the thread pool: one manager (and so one worker process) per
//! `max_workers`, started when a submit finds no idle one.

pub(crate) mod call;
pub(crate) mod decode;
mod manager;
mod spawn;
pub(crate) mod wire;
pub(crate) mod worker;

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::future::{self, Canceller, Promise};
use crate::map::{Map, Meter, Outcomes, Pending};
use crate::workers::{self, Workers};
use crate::{Error, Executor, Future, Payload, Shutdown, panic};
use call::{Call, Fingerprint, Secret, Task};
use spawn::{Process, Recipe};
use wire::TaskHeader;
#[cfg(fuzzing)]
pub use wire::fuzz as fuzz_wire;
pub use worker::init;

/// A pool of worker processes for CPU-bound work, and for work that must be
/// isolated: a crash, an abort or a leak takes down one worker, never your
/// program or the other tasks.
///
/// Each worker is a fresh run of your program, so `main` must start with
/// [`init`]. Tasks are plain functions `fn(A) -> R` with
/// [serde](https://serde.rs) arguments and results, like every
/// [`Executor`].
///
/// Unlike Python's `ProcessPoolExecutor`, a dying worker fails only the task
/// it was running ([`Error::WorkerDied`]) and is replaced; a running task can
/// be cancelled (its worker is killed and replaced); and a per-task timeout
/// stops runaway tasks.
///
/// ```
/// use concurrent_futures::{Executor, ProcessPoolExecutor};
///
/// fn hitung_kuadrat(n: u64) -> u64 {
///     (0..n).map(|i| i * i).sum()
/// }
///
/// fn main() -> Result<(), concurrent_futures::Error> {
///     concurrent_futures::init(); // in a worker process, this never returns
///     let executor = ProcessPoolExecutor::new(2);
///     let sums: Vec<u64> = executor.map(hitung_kuadrat, [10, 100]).collect::<Result<_, _>>()?;
///     assert_eq!(sums, [285, 328_350]);
///     Ok(())
/// }
/// ```
pub struct ProcessPoolExecutor {
    workers: Arc<Workers<Work>>,
    shared: Arc<Shared>,
}

/// How long each automatic chunk of a `map` should run: far above the tens
/// of microseconds of a call's round trip through a worker's pipe.
const CHUNK_TARGET: Duration = Duration::from_millis(1);

/// What the executor and its manager threads share.
struct Shared {
    /// How to start a worker, or why workers cannot be started at all.
    recipe: Recipe,
    timeout: Option<Duration>,
    max_tasks_per_child: Option<usize>,
    /// The builder's fixed `map` chunk size, if it set one.
    chunksize: Option<usize>,
    /// Set by `terminate_workers`/`kill_workers`: run nothing more.
    stopping: AtomicBool,
    /// The live worker processes, for `terminate_workers`/`kill_workers`.
    processes: Mutex<Vec<Weak<Process>>>,
}

impl Shared {
    fn is_stopping(&self) -> bool {
        // ORDERING: Acquire pairs with the Release in `stop_now`; a manager
        // that misses the flag still has its worker killed there.
        self.stopping.load(Ordering::Acquire)
    }

    /// Whether any worker process of the pool is still there to run work.
    fn any_alive(&self) -> bool {
        let processes = self
            .processes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        processes.iter().any(|p| p.strong_count() > 0)
    }

    /// Remembers a new worker's process, forgetting dead ones.
    fn register(&self, process: &Arc<Process>) {
        let mut processes = self
            .processes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        processes.retain(|p| p.strong_count() > 0);
        processes.push(Arc::downgrade(process));
    }
}

/// One frame's worth of work: a task, or a chunk of a `map`.
pub(crate) struct Work {
    header: TaskHeader,
    /// The encoded arguments, sent after the header, then `tail`.
    args: Vec<u8>,
    /// A lone `Vec<u8>` argument's bytes, sent as they are: no copy.
    tail: Vec<u8>,
    results: Box<dyn Results>,
    /// Set when a manager claimed the work but could not start a worker
    /// for it, and put it back on the queue: where a cancel finds it.
    target: Option<Arc<Mutex<manager::Target>>>,
}

impl workers::Job for Work {
    fn fail(self, error: Error) {
        self.results.fail(error);
    }
}

/// The future of one [`Work`], typed by the task's result.
pub(crate) trait Results: Send {
    /// Moves the future to running; `false` if it was cancelled. A lone
    /// task given a `canceller` (the process pool's kills its worker) can
    /// then be cancelled while it runs; without one, only before.
    fn claim(&mut self, canceller: Option<Canceller>) -> bool;
    /// Completes the future from the worker's outcomes (`Err` if they did
    /// not decode: the future then holds the protocol error). Either way,
    /// hands back its done callbacks to run, so that the manager can count
    /// itself busy meanwhile.
    fn deliver(self: Box<Self>, outcomes: &[u8]) -> Result<Deferred, Deferred>;
    /// Fails the future with `error`.
    fn fail(self: Box<Self>, error: Error);
}

/// Done callbacks still to run, if there are any.
pub(crate) type Deferred = Option<Box<dyn FnOnce() + Send>>;

/// Completes `promise` with `outcome`, deferring its done callbacks.
fn complete<T: Send + 'static>(promise: Promise<T>, outcome: Result<T, Error>) -> Deferred {
    let callbacks = promise.complete_deferring_callbacks(outcome);
    (!callbacks.is_empty()).then(|| Box::new(move || callbacks.run()) as Box<dyn FnOnce() + Send>)
}

/// A lone task's future.
pub(crate) struct One<R>(pub(crate) Promise<R>);

impl<R: Payload> Results for One<R> {
    fn claim(&mut self, canceller: Option<Canceller>) -> bool {
        match canceller {
            Some(canceller) => self.0.claim_cancellable(canceller),
            None => self.0.claim(),
        }
    }

    fn deliver(self: Box<Self>, outcomes: &[u8]) -> Result<Deferred, Deferred> {
        match wire::decode_outcomes::<R>(outcomes, 1) {
            Ok(mut outcomes) => Ok(complete(self.0, outcomes.pop().expect("one outcome"))),
            Err(error) => Err(complete(self.0, Err(error))),
        }
    }

    fn fail(self: Box<Self>, error: Error) {
        self.0.complete(Err(error));
    }
}

/// A `map` chunk's future. Inputs that failed to serialize were not sent;
/// their errors go back in at their positions.
pub(crate) struct Chunk<R> {
    pub(crate) promise: Promise<Outcomes<R>>,
    pub(crate) sent: usize,
    pub(crate) refused: Vec<(usize, Error)>,
    /// For an automatic chunk size: where to report how long the chunk
    /// ran, from its claim to its outcomes, and when it was claimed.
    meter: Option<(Arc<Meter>, Option<Instant>)>,
}

impl<R: Payload> Chunk<R> {
    /// Serializes a `map` chunk's inputs (draining `inputs`) for one task
    /// message, and returns the chunk's future with the message to send:
    /// `None` if no input serialized, and then the future already holds
    /// each input's error. With a `meter`, the chunk reports its time there.
    pub(crate) fn encode<A: Payload>(
        inputs: &mut Vec<A>,
        meter: Option<&Arc<Meter>>,
    ) -> (Future<Outcomes<R>>, Option<ChunkMessage>) {
        let (promise, future) = future::pair();
        let len = inputs.len();
        let (mut args, mut refused) = (Vec::new(), Vec::new());
        for (index, arg) in inputs.drain(..).enumerate() {
            if let Err(error) = encode_arg(&arg, &mut args) {
                refused.push((index, error));
            }
        }
        let sent = len - refused.len();
        if sent == 0 {
            promise.complete(Ok(refused.into_iter().map(|(_, e)| Err(e)).collect()));
            return (future, None);
        }
        let results = Box::new(Chunk {
            promise,
            sent,
            refused,
            meter: meter.map(|meter| (Arc::clone(meter), None)),
        });
        (
            future,
            Some(ChunkMessage {
                args,
                sent,
                results,
            }),
        )
    }
}

/// A `map` chunk ready to send: its encoded arguments, how many, and the
/// results to complete from the answer.
pub(crate) struct ChunkMessage {
    pub(crate) args: Vec<u8>,
    pub(crate) sent: usize,
    pub(crate) results: Box<dyn Results>,
}

impl<R: Payload> Results for Chunk<R> {
    /// An item of a chunk shares its worker with the others: killing it
    /// would take them down too, so a running chunk cannot be cancelled.
    fn claim(&mut self, _: Option<Canceller>) -> bool {
        if let Some((_, claimed)) = &mut self.meter {
            *claimed = Some(Instant::now());
        }
        self.promise.claim()
    }

    fn deliver(self: Box<Self>, outcomes: &[u8]) -> Result<Deferred, Deferred> {
        if let Some((meter, Some(claimed))) = &self.meter {
            meter.record(self.sent, claimed.elapsed());
        }
        match wire::decode_outcomes::<R>(outcomes, self.sent) {
            Ok(mut results) => {
                for (index, error) in self.refused {
                    results.insert(index, Err(error));
                }
                Ok(complete(self.promise, Ok(results.into_iter().collect())))
            }
            Err(error) => Err(complete(self.promise, Err(error))),
        }
    }

    fn fail(self: Box<Self>, error: Error) {
        self.promise.complete(Err(error));
    }
}

/// Serializes one argument, turning a failure (or a panic in a `Serialize`
/// impl) into that task's error.
pub(crate) fn encode_arg<A: Payload>(arg: &A, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    let result = match panic::catch(|| wire::append(arg, out)) {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(error)) => wire::explain(&error),
        Err(panic) => panic.to_string(),
    };
    out.truncate(start);
    Err(Error::Serialization(format!(
        "the task's argument could not be serialized: {result}"
    )))
}

impl ProcessPoolExecutor {
    /// A pool of at most `max_workers` worker processes.
    ///
    /// # Panics
    ///
    /// If `max_workers` is 0. Use [`ProcessPoolExecutor::builder`] to get an
    /// [`Error`] instead.
    ///
    /// ```
    /// let executor = concurrent_futures::ProcessPoolExecutor::new(2);
    /// assert_eq!(executor.max_workers(), 2);
    /// ```
    #[track_caller] // the panic names the caller's line
    pub fn new(max_workers: usize) -> Self {
        match Self::builder().max_workers(max_workers).build() {
            Ok(executor) => executor,
            Err(error) => panic!("ProcessPoolExecutor::new: {error}"),
        }
    }

    /// A builder for the pool's settings.
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    /// use std::time::Duration;
    ///
    /// let executor = ProcessPoolExecutor::builder()
    ///     .max_workers(4)
    ///     .max_tasks_per_child(1000)
    ///     .timeout(Duration::from_secs(60))
    ///     .build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder::default()
    }

    /// The most worker processes this pool will run.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// assert_eq!(ProcessPoolExecutor::new(3).max_workers(), 3);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.workers.max_workers()
    }

    /// Schedules `task(arg)` in a worker process; see [`Executor::submit`].
    ///
    /// The argument is serialized here, before anything is sent: if that
    /// fails, the future holds [`Error::Serialization`]. Cancelling the
    /// future while the task runs kills its worker (which is replaced).
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// fn pid(_: ()) -> u32 { std::process::id() }
    ///
    /// fn main() {
    ///     concurrent_futures::init();
    ///     let executor = ProcessPoolExecutor::new(1);
    ///     let worker = executor.submit(pid, ()).result().unwrap();
    ///     assert_ne!(worker, std::process::id(), "it ran in another process");
    /// }
    /// ```
    pub fn submit<A: Payload, R: Payload>(&self, task: fn(A) -> R, arg: A) -> Future<R> {
        self.submit_task(task, arg)
    }

    /// [`submit`](Self::submit), for a task of any [`Task`] type.
    fn submit_task<T: Task>(&self, task: T, arg: T::Args) -> Future<T::Output> {
        let (promise, future) = future::pair();
        let (mut args, mut tail) = (Vec::new(), Vec::new());
        let arg: Box<dyn Any> = Box::new(arg);
        let encoded = match arg.downcast::<Vec<u8>>() {
            // The bytes go out as they are, behind postcard's length prefix.
            Ok(bytes) => {
                wire::append_len(bytes.len(), &mut args);
                tail = *bytes;
                Ok(())
            }
            Err(arg) => encode_arg(
                arg.downcast_ref::<T::Args>()
                    .expect("the argument is a T::Args"),
                &mut args,
            ),
        };
        match encoded {
            Ok(()) => self.enqueue(Call::of(task), 1, [args, tail], Box::new(One(promise))),
            Err(error) => promise.complete(Err(error)),
        }
        future
    }

    /// Runs `task` over `inputs` in the worker processes, yielding the
    /// results in input order; see [`Map`].
    ///
    /// Set [`Map::chunksize`] (or the builder's default) to send inputs in
    /// chunks: far less overhead for tiny tasks. A panic inside a chunk still
    /// fails only its own item; a worker that dies fails its whole chunk.
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// fn square(n: u64) -> u64 { n * n }
    ///
    /// fn main() {
    ///     concurrent_futures::init();
    ///     let executor = ProcessPoolExecutor::new(2);
    ///     let sum: u64 = executor.map(square, 0..1000).chunksize(100).map(Result::unwrap).sum();
    ///     assert_eq!(sum, 332_833_500);
    /// }
    /// ```
    pub fn map<A, R, I>(&self, task: fn(A) -> R, inputs: I) -> Map<'_, I::IntoIter, R>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        self.map_task(task, inputs)
    }

    /// Runs a function of two arguments over pairs of them in the worker
    /// processes, yielding the results in input order: Python's
    /// `Pool.starmap`. See [`Executor::starmap`].
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// fn power(base: u64, exponent: u32) -> u64 {
    ///     base.pow(exponent)
    /// }
    ///
    /// fn main() {
    ///     concurrent_futures::init();
    ///     let executor = ProcessPoolExecutor::new(2);
    ///     let powers: Vec<_> = executor.starmap(power, [(2, 3), (3, 2)]).map(Result::unwrap).collect();
    ///     assert_eq!(powers, [8, 9]);
    /// }
    /// ```
    pub fn starmap<A, B, R, I>(&self, task: fn(A, B) -> R, inputs: I) -> Map<'_, I::IntoIter, R>
    where
        A: Payload,
        B: Payload,
        R: Payload,
        I: IntoIterator<Item = (A, B)>,
    {
        self.map_task(task, inputs)
    }

    /// [`map`](Self::map), for a task of any [`Task`] type.
    fn map_task<T: Task, I>(&self, task: T, inputs: I) -> Map<'_, I::IntoIter, T::Output>
    where
        I: IntoIterator<Item = T::Args>,
    {
        let call = Call::of(task);
        let submit = move |chunk: &mut Vec<T::Args>, meter: Option<&Arc<Meter>>| {
            if chunk.len() == 1 && meter.is_none() {
                let arg = chunk.pop().expect("one item");
                return Pending::One(self.submit_task(task, arg));
            }
            let len = chunk.len();
            let (future, encoded) = Chunk::encode(chunk, meter);
            if let Some(chunk) = encoded {
                self.enqueue(call, chunk.sent, [chunk.args, Vec::new()], chunk.results);
            }
            Pending::Chunk { future, len }
        };
        let map = Map::new(
            inputs.into_iter(),
            self.max_workers(),
            CHUNK_TARGET,
            Box::new(submit),
        );
        // A per-task timeout stays per task: no automatic chunks under it.
        match (self.shared.chunksize, self.shared.timeout) {
            (Some(items_per_chunk), _) => map.chunksize(items_per_chunk),
            (None, Some(_)) => map.chunksize(1),
            (None, None) => map,
        }
    }

    /// Like [`map`](Self::map), but yields each result as soon as its task
    /// (or its chunk) finishes; see [`Executor::map_unordered`].
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// fn square(n: u64) -> (u64, u64) {
    ///     (n, n * n) // the input travels with its result
    /// }
    ///
    /// fn main() {
    ///     concurrent_futures::init();
    ///     let executor = ProcessPoolExecutor::new(2);
    ///     let mut pairs: Vec<_> = executor.map_unordered(square, 1..=4).map(Result::unwrap).collect();
    ///     pairs.sort();
    ///     assert_eq!(pairs, [(1, 1), (2, 4), (3, 9), (4, 16)]);
    /// }
    /// ```
    pub fn map_unordered<A, R, I>(&self, task: fn(A) -> R, inputs: I) -> Map<'_, I::IntoIter, R>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        self.map(task, inputs).unordered()
    }

    fn enqueue(
        &self,
        call: Call,
        count: usize,
        [args, tail]: [Vec<u8>; 2],
        results: Box<dyn Results>,
    ) {
        let header = TaskHeader {
            call,
            tag: call.tag(&self.shared.recipe.secret),
            count: u32::try_from(count).unwrap_or(u32::MAX),
        };
        self.workers.enqueue(Work {
            header,
            args,
            tail,
            results,
            target: None,
        });
    }

    /// Stops taking tasks and waits for the queued ones; see
    /// [`Executor::shutdown`]. Afterwards no worker process is left.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// let executor = ProcessPoolExecutor::new(1);
    /// executor.shutdown();
    /// ```
    pub fn shutdown(&self) {
        self.shutdown_with(Shutdown::default());
    }

    /// Shuts down as `how` says; see [`Shutdown`].
    ///
    /// ```
    /// # use concurrent_futures::{ProcessPoolExecutor, Shutdown};
    /// let executor = ProcessPoolExecutor::new(1);
    /// executor.shutdown_with(Shutdown { cancel_futures: true, ..Shutdown::default() });
    /// ```
    pub fn shutdown_with(&self, how: Shutdown) {
        self.workers.shutdown(how);
    }

    /// Stops everything now: cancels the queued tasks, sends SIGTERM to every
    /// worker, and waits for them. Running tasks fail with
    /// [`Error::WorkerDied`]; no worker process is left.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// ProcessPoolExecutor::new(2).terminate_workers();
    /// ```
    pub fn terminate_workers(&self) {
        self.stop_now(libc::SIGTERM);
    }

    /// Like [`terminate_workers`](Self::terminate_workers), with SIGKILL.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// ProcessPoolExecutor::new(2).kill_workers();
    /// ```
    pub fn kill_workers(&self) {
        self.stop_now(libc::SIGKILL);
    }

    fn stop_now(&self, signal: libc::c_int) {
        // ORDERING: Release pairs with the Acquire in `is_stopping`.
        self.shared.stopping.store(true, Ordering::Release);
        self.workers.shutdown(Shutdown {
            wait: false,
            cancel_futures: true,
        });
        let processes = std::mem::take(
            &mut *self
                .shared
                .processes
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for process in processes.iter().filter_map(Weak::upgrade) {
            process.kill(signal);
        }
        self.workers.shutdown(Shutdown {
            wait: true,
            cancel_futures: true,
        });
    }
}

impl Default for ProcessPoolExecutor {
    /// A pool with Python's default size: one worker per CPU.
    ///
    /// # Panics
    ///
    /// If the pool cannot be built; [`ProcessPoolExecutor::builder`] returns
    /// that [`Error`] instead.
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// fn main() {
    ///     concurrent_futures::init();
    ///     let executor = ProcessPoolExecutor::default(); // ProcessPoolExecutor()
    ///     assert!(executor.max_workers() >= 1);
    ///     assert_eq!(executor.submit(|n: u32| n + 1, 41).result(), Ok(42));
    /// }
    /// ```
    #[track_caller]
    fn default() -> Self {
        Self::new(ProcessPoolBuilder::default().max_workers)
    }
}

impl Drop for ProcessPoolExecutor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Executor for ProcessPoolExecutor {
    fn submit<A: Payload, R: Payload>(&self, task: fn(A) -> R, arg: A) -> Future<R> {
        ProcessPoolExecutor::submit(self, task, arg)
    }

    fn map<'e, A, R, I>(&'e self, task: fn(A) -> R, inputs: I) -> Map<'e, I::IntoIter, R>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        ProcessPoolExecutor::map(self, task, inputs)
    }

    fn starmap<'e, A, B, R, I>(&'e self, task: fn(A, B) -> R, inputs: I) -> Map<'e, I::IntoIter, R>
    where
        A: Payload,
        B: Payload,
        R: Payload,
        I: IntoIterator<Item = (A, B)>,
    {
        ProcessPoolExecutor::starmap(self, task, inputs)
    }

    fn shutdown_with(&self, how: Shutdown) {
        ProcessPoolExecutor::shutdown_with(self, how);
    }
}

impl fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolExecutor")
            .field("workers", &self.workers)
            .field("timeout", &self.shared.timeout)
            .field("max_tasks_per_child", &self.shared.max_tasks_per_child)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`ProcessPoolExecutor`]; start from
/// [`ProcessPoolExecutor::builder`].
///
/// ```
/// use concurrent_futures::ProcessPoolExecutor;
///
/// fn connect() { /* open a per-process resource */ }
///
/// let executor = ProcessPoolExecutor::builder()
///     .max_workers(2)
///     .initializer(connect)
///     .chunksize(64)
///     .build()?;
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct ProcessPoolBuilder {
    max_workers: usize,
    initializer: Option<fn()>,
    max_tasks_per_child: Option<usize>,
    chunksize: Option<usize>,
    timeout: Option<Duration>,
}

impl Default for ProcessPoolBuilder {
    fn default() -> Self {
        Self {
            max_workers: num_cpus::get(),
            initializer: None,
            max_tasks_per_child: None,
            chunksize: None,
            timeout: None,
        }
    }
}

impl ProcessPoolBuilder {
    /// The most worker processes. Default: the number of CPUs. Zero makes
    /// [`build`](Self::build) fail.
    ///
    /// ```
    /// # use concurrent_futures::{Error, ProcessPoolExecutor};
    /// assert!(matches!(ProcessPoolExecutor::builder().max_workers(0).build(), Err(Error::InvalidArgument(_))));
    /// ```
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = max_workers;
        self
    }

    /// Runs `initializer` once in each worker process before its first task.
    /// If it panics, the pool is broken: tasks fail with
    /// [`Error::BrokenExecutor`], whose reason carries the panic message.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// fn warm_up() {}
    /// let executor = ProcessPoolExecutor::builder().initializer(warm_up).build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn initializer(mut self, initializer: fn()) -> Self {
        self.initializer = Some(initializer);
        self
    }

    /// Replaces each worker after it has run this many calls (a task, or a
    /// chunk of a `map`): a cure for leaks in the task code. Zero makes
    /// [`build`](Self::build) fail. Default: never.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// let executor = ProcessPoolExecutor::builder().max_tasks_per_child(100).build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn max_tasks_per_child(mut self, calls: usize) -> Self {
        self.max_tasks_per_child = Some(calls);
        self
    }

    /// A fixed [`Map::chunksize`] for this pool's `map`s, instead of the
    /// automatic size. Zero makes [`build`](Self::build) fail.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// let executor = ProcessPoolExecutor::builder().chunksize(256).build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn chunksize(mut self, items_per_chunk: usize) -> Self {
        self.chunksize = Some(items_per_chunk);
        self
    }

    /// Fails a task with [`Error::TaskTimedOut`] and kills its worker (with
    /// its whole process group; the worker is replaced) if it runs longer
    /// than this, counted from when its argument starts to go out to the
    /// worker. With chunks, the limit is per chunk; so a pool with a timeout
    /// sends `map` inputs one per task unless a [`chunksize`](Self::chunksize)
    /// is set. Default: no limit.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// # use std::time::Duration;
    /// let executor = ProcessPoolExecutor::builder().timeout(Duration::from_secs(30)).build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn timeout(mut self, per_task: Duration) -> Self {
        self.timeout = Some(per_task);
        self
    }

    /// Builds the pool. No process starts until the first task arrives.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a zero `max_workers`,
    /// `max_tasks_per_child` or `chunksize`; [`Error::SpawnFailed`] if this
    /// system cannot identify its own executable (`/proc/self/exe`).
    ///
    /// ```
    /// let executor = concurrent_futures::ProcessPoolExecutor::builder().build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn build(self) -> Result<ProcessPoolExecutor, Error> {
        let invalid =
            |what: &str| Err(Error::InvalidArgument(format!("{what} must be at least 1")));
        if self.max_workers == 0 {
            return invalid("max_workers");
        }
        if self.max_tasks_per_child == Some(0) {
            return invalid("max_tasks_per_child");
        }
        if self.chunksize == Some(0) {
            return invalid("chunksize");
        }
        let fingerprint = Fingerprint::of_this_process().map_err(|error| Error::SpawnFailed {
            reason: format!("cannot identify this executable through /proc/self/exe: {error}"),
        })?;
        panic::install_hook();
        let shared = Arc::new(Shared {
            recipe: Recipe {
                fingerprint,
                secret: Secret::random(),
                initializer: self.initializer.map(Call::of_initializer),
            },
            timeout: self.timeout,
            max_tasks_per_child: self.max_tasks_per_child,
            chunksize: self.chunksize,
            stopping: AtomicBool::new(false),
            processes: Mutex::new(Vec::new()),
        });
        let manager_shared = Arc::clone(&shared);
        let workers = Workers::new(
            self.max_workers,
            "ProcessPoolExecutor-manager".to_owned(),
            // Managers decode results: user code, as deep as the depth bound.
            Some(decode::STACK_SIZE),
            Arc::new(move |workers| manager::manage(workers, &manager_shared)),
        );
        Ok(ProcessPoolExecutor {
            workers: Arc::new(workers),
            shared,
        })
    }
}
