//! Layer: process. May use: `work_queue`, `error`, `executor`, `panic`, `remote`,
//! `remote::function`, `remote::decode`, `remote::work`, `process::dispatch`,
//! `process::pool_side`, `process::sys`, `process::worker_side`. Tasks in
//! separate worker processes: [`ProcessPoolExecutor`], the remote front end
//! over [`ProcessTransport`].
//!
//! - [`dispatch`]: the queue thread (a dispatcher) that sends work to one
//!   worker and completes it from the answers; the pool's shared state and
//!   its queue's record of work, with its delivery state.
//! - [`pool_side`]: the pool's side of one worker's link: starting it, the
//!   handshake, a call, stopping it; a worker's process and health.
//! - [`frame`]: the frames on the private channel.
//! - [`arena`]: the shared memory that big payloads take instead of the
//!   channel (Linux; elsewhere, the channel carries them).
//! - [`gate`]: the word shared with each child that decides whether a call
//!   sent ahead starts there or is taken back.
//! - [`worker_side`]: the worker's side of the link: how a run knows it
//!   is one, and its endpoint for the remote layer's serve loop.
//! - `sys`: the system calls below the rest, which import nothing above
//!   them: `sys/unix` (Linux, and the portable path macOS takes) or
//!   `sys/windows`, under the same names (`sys/mod.rs` lists them):
//!   starting, stopping and reaping a child, its channel, descriptors
//!   passed on it, shared memory, the executable's path and identity, and
//!   how a child dies with its pool.
//!
//! The queue and the lazily started dispatcher threads are a [`WorkQueue`], as in
//! the thread pool: one dispatcher (and so one child process) per
//! `max_workers`, started when a submit finds no idle one. A child serves
//! from the crate's constructor, before `main` (`constructor.rs`). The files
//! above `sys` are the same on every platform; what differs lives in
//! `sys`, with the remote layer above unchanged.

mod arena;
pub(crate) mod constructor;
mod dispatch;
mod frame;
mod gate;
mod pool_side;
mod sys;
mod worker_side;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::remote::decode;
use crate::remote::function::Secret;
use crate::remote::work::Work;
use crate::remote::{RemoteBuilder, RemoteExecutor, Transport, at_least_one, sealed};
use crate::work_queue::WorkQueue;
use crate::{Error, Shutdown, panic};
use dispatch::{PoolState, QueuedWork};
#[cfg(fuzzing)]
pub use frame::fuzz as fuzz_wire;
use pool_side::Recipe;

/// A pool of worker processes for CPU-bound work, and for work that must be
/// isolated: a crash, an abort or a leak takes down one worker, never your
/// program or the other tasks.
///
/// Each worker is a fresh run of your program that serves tasks before
/// `main` and exits when the pool is done with it: nothing of your
/// program's `main`, nor of libtest's, runs there. So a program, a
/// `#[test]`, a doctest such as this one, a bench or a library function can
/// start a pool with no set-up; [`init`](crate::init) is optional (see its
/// docs for what code before it means). Tasks are plain functions
/// `fn(A) -> R` with [serde](https://serde.rs) arguments and results, like
/// every [`Executor`](crate::Executor).
///
/// Unlike Python's `ProcessPoolExecutor`, a dying worker fails only the task
/// it was running ([`Error::WorkerDied`]) and is replaced; a running task can
/// be cancelled (its worker is killed and replaced); and a per-task timeout
/// stops runaway tasks. As in Python, no task runs twice: tasks sent to a
/// worker behind the one it died running go to its replacement, but a task
/// that may have started is never sent again. (So a worker killed between
/// two tasks it had been sent, from outside or by a cancel of the first
/// just as it finished, fails the second with [`Error::WorkerDied`]; an
/// idle worker's death fails nothing.)
///
/// Tiny tasks: while a worker answers quickly, its dispatcher thread sends it
/// several tasks at once (up to 32, written in one system call), and
/// fewer again as soon as one is slow; with a per-task timeout, one at a
/// time. A task sent ahead stays pending (`running()` is false, and
/// `cancel()` stops it without touching the worker) until the worker
/// starts it; when the worker spends more than 2 ms on one task with
/// others waiting behind it, those go back to the pool's queue for
/// whichever worker is free, and a `map` chunk is cut after its running
/// input, so uneven work spreads over the workers. (On Windows, whose pipes
/// hold no call the child has not read, one task at a time is sent to each
/// worker, and the rest of a chunk still goes on after a slow input.)
///
/// Big payloads: on Linux, a task's argument or result whose encoding is
/// 256 KiB or more, of any type, does not go through the worker's channel
/// but through memory shared with that worker. A `Vec<u8>`, `Vec<f32>` or
/// `Vec<f64>` is copied into it as it is, and out of it once on the other
/// side; any other value is encoded straight into it (a lone task's
/// argument by the pool, when it sends it: its `Serialize` runs on
/// `submit` to measure it, and again there) and decoded straight out of
/// it. Each worker keeps that memory from its first such payload on, sized
/// to the largest payload it has carried rounded up to a power of two (at
/// least 1 MiB, at most 1 GiB; bigger payloads take the channel), and
/// returns it when it exits: at shutdown, or when it is replaced. So the
/// pool holds at most `max_workers` times that. A worker also keeps up to
/// twice that size of the memory its tasks free (with glibc), so that the
/// next big argument lands in memory already in use rather than fresh
/// pages. A `Vec<u8>`, `Vec<f32>` or `Vec<f64>` result is copied into its
/// task's argument vector of the same type when it fills at least seven
/// eighths of that vector's capacity, so its capacity may exceed its
/// length by up to an eighth. Elsewhere (macOS, Windows), every payload
/// takes the channel.
///
/// ```
/// use concurrent_futures::{Executor, ProcessPoolExecutor};
///
/// fn sum_of_squares(n: u64) -> (u64, u32) {
///     ((0..n).map(|i| i * i).sum(), std::process::id())
/// }
///
/// let executor = ProcessPoolExecutor::new(2);
/// let results: Vec<_> = executor.map(sum_of_squares, [10, 100]).collect::<Result<_, _>>()?;
/// assert_eq!(results[0].0, 285);
/// assert_eq!(results[1].0, 328_350);
/// // Computed in worker processes, which ran no part of this doctest's main.
/// assert!(results.iter().all(|&(_, worker)| worker != std::process::id()));
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub type ProcessPoolExecutor = RemoteExecutor<ProcessTransport>;

/// How a [`ProcessPoolExecutor`] reaches its worker processes: a queue of
/// dispatcher threads, each driving one child over a private socket. You never
/// name it; it is the type parameter behind [`ProcessPoolExecutor`].
pub struct ProcessTransport {
    queue: Arc<WorkQueue<QueuedWork>>,
    shared: Arc<PoolState>,
}

/// How long [`terminate_workers`](ProcessPoolExecutor::terminate_workers)
/// gives the workers to end on SIGTERM before it kills what is left with
/// SIGKILL (its docs say one second).
const TERMINATE_GRACE: Duration = Duration::from_secs(1);

/// How often `terminate_workers` looks whether the workers have ended
/// within the grace period.
const GRACE_CHECK: Duration = Duration::from_millis(5);

impl Transport for ProcessTransport {}

// Sealed, so crate-private types are fine here: see `remote::sealed`.
#[allow(private_interfaces)]
impl sealed::Transport for ProcessTransport {
    const POOL: &'static str = "ProcessPoolExecutor";
    type Settings = ProcessSettings;

    fn max_workers(&self) -> usize {
        self.queue.max_workers()
    }

    fn secret(&self) -> &Secret {
        &self.shared.recipe.secret
    }

    fn send(&self, work: Work) {
        self.queue.enqueue(QueuedWork::new(work));
    }

    fn shutdown(&self, how: Shutdown) {
        self.queue.shutdown(how);
    }

    fn one_input_per_task(&self) -> bool {
        self.shared.timeout.is_some()
    }

    /// Straight into the child's arena (where there is none, the dispatcher
    /// encodes it into memory of its own).
    fn encodes_in_place(&self) -> bool {
        true
    }
}

impl fmt::Debug for ProcessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessTransport")
            .field("queue", &self.queue)
            .field("timeout", &self.shared.timeout)
            .field("max_tasks_per_child", &self.shared.max_tasks_per_child)
            .finish_non_exhaustive()
    }
}

impl RemoteExecutor<ProcessTransport> {
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

    /// Stops everything now: cancels the queued tasks, sends SIGTERM to every
    /// worker (on Windows: ends its Job object), and waits for them. A
    /// worker still there after a grace period of one second (its task
    /// ignores or handles SIGTERM) is killed with SIGKILL, so this returns
    /// in bounded time whatever the tasks do. Running tasks fail with
    /// [`Error::WorkerDied`]; no worker process is left.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// ProcessPoolExecutor::new(2).terminate_workers();
    /// ```
    pub fn terminate_workers(&self) {
        self.stop_now(sys::TERMINATE);
    }

    /// Like [`terminate_workers`](Self::terminate_workers), with SIGKILL (on
    /// Windows, the job ends with the pool's "killed" exit code).
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// ProcessPoolExecutor::new(2).kill_workers();
    /// ```
    pub fn kill_workers(&self) {
        self.stop_now(sys::KILL);
    }

    fn stop_now(&self, signal: sys::Signal) {
        let ProcessTransport { queue, shared } = &self.transport;
        queue.stop();
        let processes = shared.take_processes();
        for process in &processes {
            process.kill(signal);
        }
        if signal != sys::KILL {
            let deadline = Instant::now() + TERMINATE_GRACE;
            while processes.iter().any(|p| !p.is_reaped()) && Instant::now() < deadline {
                std::thread::sleep(GRACE_CHECK);
            }
            for process in &processes {
                process.kill(sys::KILL);
            }
        }
        drop(processes);
        queue.shutdown(Shutdown {
            wait: true,
            cancel_futures: true,
        });
    }
}

impl Default for RemoteExecutor<ProcessTransport> {
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

/// Settings for a [`ProcessPoolExecutor`]; start from
/// [`ProcessPoolExecutor::builder`]. The settings every remote pool has
/// are [`RemoteBuilder`]'s; these are the process pool's own.
pub type ProcessPoolBuilder = RemoteBuilder<ProcessTransport>;

/// The settings only a process pool has. `pub` only for the sealed
/// trait's associated type; this module is private, so no user can name it.
#[derive(Debug, Clone, Default)]
pub struct ProcessSettings {
    max_tasks_per_child: Option<usize>,
    timeout: Option<Duration>,
}

impl RemoteBuilder<ProcessTransport> {
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
        self.settings.max_tasks_per_child = Some(calls);
        self
    }

    /// Fails a task with [`Error::TaskTimedOut`] and kills its worker (with
    /// its whole process group, on Windows its Job object; the worker is
    /// replaced) if it runs longer
    /// than this, counted from when its argument starts to go out to the
    /// worker. With chunks, the limit is per chunk; so a pool with a timeout
    /// sends `map` inputs one per task unless a
    /// [`chunksize`](RemoteBuilder::chunksize) is set. Default: no limit.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// # use std::time::Duration;
    /// let executor = ProcessPoolExecutor::builder().timeout(Duration::from_secs(30)).build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn timeout(mut self, per_task: Duration) -> Self {
        self.settings.timeout = Some(per_task);
        self
    }

    /// Builds the pool. No process starts until the first task arrives.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a zero `max_workers`,
    /// `max_tasks_per_child` or `chunksize`; [`Error::SpawnFailed`] if this
    /// system cannot identify its own executable (`/proc/self/exe` on
    /// Linux, [`std::env::current_exe`] elsewhere).
    ///
    /// ```
    /// let executor = concurrent_futures::ProcessPoolExecutor::builder().build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn build(self) -> Result<ProcessPoolExecutor, Error> {
        self.check()?;
        let ProcessSettings {
            max_tasks_per_child,
            timeout,
        } = self.settings;
        at_least_one("max_tasks_per_child", max_tasks_per_child.unwrap_or(1))?;
        let fingerprint = worker_side::fingerprint().map_err(|error| Error::SpawnFailed {
            reason: format!("cannot identify this executable: {error}"),
        })?;
        panic::install_hook();
        let recipe = Recipe {
            fingerprint,
            secret: Secret::random(),
            initializer: self.initializer.and_then(Result::ok),
        };
        let shared = Arc::new(PoolState::new(recipe, timeout, max_tasks_per_child));
        let dispatch_shared = Arc::clone(&shared);
        let queue = WorkQueue::new(
            self.max_workers,
            "ProcessPoolExecutor-manager".to_owned(),
            // Dispatchers decode results: user code, as deep as the depth bound.
            Some(decode::STACK_SIZE),
            Arc::new(move |queue| dispatch::run(queue, &dispatch_shared)),
        );
        let transport = ProcessTransport {
            queue: Arc::new(queue),
            shared,
        };
        Ok(RemoteExecutor::over(transport, self.chunksize))
    }
}
