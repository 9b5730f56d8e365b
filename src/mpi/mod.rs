//! [`MpiPoolExecutor`]: tasks on MPI ranks, like `mpi4py.futures`.
//!
//! - [`worker`]: how [`init`](crate::init) recognises a worker rank, and
//!   the loop it runs.
//! - [`manager`]: the one thread of the parent that owns MPI.
//! - [`liveness`]: heartbeats, how the manager learns that a busy rank on
//!   any host has died.
//!
//! Tasks travel exactly as in the process pool: a [`TaskHeader`] (the
//! trampoline and function offsets of [`Call::of`], a keyed tag, a count)
//! followed by the postcard-encoded arguments, answered by the encoded
//! outcomes. The handshake is the process pool's `Hello`/`Welcome`/`Ready`,
//! with a fingerprint of the executable's *contents* (ranks on other
//! machines see another inode for the same program). Each message kind is
//! an MPI tag ([`tags`]).

mod liveness;
mod manager;
pub(crate) mod worker;

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::future;
use crate::map::{Map, Meter, Pending};
use crate::process::call::{Call, Secret, Task};
use crate::process::wire::{Kind, TaskHeader};
use crate::process::{Chunk, One, Results, encode_arg};
use crate::{Error, Executor, Future, Payload, Shutdown, panic};

/// How long each automatic chunk of a `map` should run: far above a
/// task's round trip through the manager thread and MPI.
const CHUNK_TARGET: Duration = Duration::from_millis(1);

/// The MPI tags of the messages between the manager and a rank: the
/// process pool's frame kinds, and one more to stop.
mod tags {
    use super::Kind;
    pub(crate) const HELLO: ::mpi::Tag = Kind::Hello as ::mpi::Tag;
    pub(crate) const WELCOME: ::mpi::Tag = Kind::Welcome as ::mpi::Tag;
    pub(crate) const READY: ::mpi::Tag = Kind::Ready as ::mpi::Tag;
    pub(crate) const TASK: ::mpi::Tag = Kind::Task as ::mpi::Tag;
    pub(crate) const OUTCOMES: ::mpi::Tag = Kind::Outcomes as ::mpi::Tag;
    /// Stop serving. Empty: finalize MPI and exit. Not empty: a rank of
    /// the static world died, so exit without `MPI_Finalize`, which would
    /// wait for the dead rank for ever.
    pub(crate) const STOP: ::mpi::Tag = 6;
    /// Where a rank runs: `"<pid> <hostname>"`, sent after its `Hello`.
    pub(crate) const WHERE: ::mpi::Tag = 7;
    /// A rank running a task is alive (an empty message); see
    /// [`liveness`](super::liveness).
    pub(crate) const HEARTBEAT: ::mpi::Tag = 8;
}

/// What an executor asks of the manager thread.
pub(crate) enum Command {
    /// Make a pool of up to `workers` ranks.
    Open {
        workers: usize,
        reply: Sender<Result<Opened, Error>>,
    },
    /// Run `work` on pool `pool`.
    Task { pool: u64, work: Work },
    /// Take no more tasks for `pool`; cancel its queued ones if `cancel`;
    /// answer on `reply` once its tasks are done and its ranks released.
    Close {
        pool: u64,
        cancel: bool,
        reply: Option<Sender<()>>,
    },
    /// The process is exiting: stop every rank and finalize MPI.
    Finalize { reply: Sender<()> },
}

/// A new pool, as the manager made it.
pub(crate) struct Opened {
    pool: u64,
    workers: usize,
    secret: Secret,
}

/// One message's worth of work: a task, or a chunk of a `map`.
pub(crate) struct Work {
    /// The task message: header and encoded arguments.
    message: Vec<u8>,
    results: Box<dyn Results>,
}

/// Polling without burning a shared core: a few yields, then sleeps that
/// double from 10 µs up to 1 ms. Reset whenever something arrives.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    polls: u32,
}

impl Backoff {
    const YIELDS: u32 = 64;
    const LONGEST: Duration = Duration::from_millis(1);

    /// How long to wait before the next poll: `None` means just yield.
    pub(crate) fn delay(&mut self) -> Option<Duration> {
        self.polls = self.polls.saturating_add(1);
        let sleeps = self.polls.checked_sub(Self::YIELDS)?;
        Some((Duration::from_micros(10) * 2_u32.saturating_pow(sleeps.min(16))).min(Self::LONGEST))
    }

    /// Waits before the next poll.
    pub(crate) fn pause(&mut self) {
        match self.delay() {
            None => thread::yield_now(),
            Some(delay) => thread::sleep(delay),
        }
    }

    pub(crate) fn reset(&mut self) {
        self.polls = 0;
    }
}

/// A pool of MPI ranks that run tasks: Python's
/// `mpi4py.futures.MPIPoolExecutor`, behind the same [`Executor`] trait as
/// the thread and process pools. Needs the cargo feature `mpi`.
///
/// It works in one of two modes, chosen by how the program was launched:
///
/// - **Spawn mode.** Run alone (or as `mpiexec -n 1`), the executor starts
///   `max_workers` copies of this executable with `MPI_Comm_spawn`; they
///   become workers inside [`init`](crate::init). When the pool closes they
///   wait for the next executor of the same size, which takes them instead
///   of spawning anew; they exit with the program.
/// - **Static-world mode.** Under `mpiexec -n N ./program` with N > 1, rank 0
///   runs `main` and ranks 1 to N-1 serve tasks from inside `init`, like
///   `python -m mpi4py.futures`. An executor uses up to `max_workers` of
///   those ranks; they serve the next executor after this one closes, and
///   stop when rank 0's program exits.
///
/// As with the process pool, tasks are plain functions `fn(A) -> R` named by
/// their offset in the executable, which is trusted only because every rank
/// proved at startup that it runs the same executable (a fingerprint of its
/// contents) and every task carries a tag keyed with a per-run secret. A
/// panic in a task is that task's [`Error::Panicked`]; the rank goes on.
///
/// One thread per process owns MPI (Open MPI's communicators may not move
/// between threads); every executor of the process shares it. MPI can be
/// initialized only once per process, so it stays initialized until the
/// program exits, when the serving ranks are stopped and MPI is finalized.
///
/// **A rank that dies**, on this host or another, falls silent: a rank
/// running a task sends a heartbeat every 200 ms, and the manager takes a
/// busy rank silent for 5 s for dead. The executor is then broken: the
/// dead rank's task, the queued tasks and later submissions fail with
/// [`Error::BrokenExecutor`], as in mpi4py. Open MPI 4 (without its
/// fault-tolerance extension) aborts the dead rank's job: in spawn mode the
/// spawned job, and a new executor spawns fresh ranks; in static-world mode
/// the whole program, rank 0 included, unless `mpiexec` runs with
/// `--enable-recovery`, when the other ranks serve later executors (the
/// program then ends without `MPI_Finalize`, which would wait for the dead
/// rank). Spawn mode under `mpiexec -n 1` needs `--enable-recovery` too.
/// Either way, one failed task cannot be reported alone as the process
/// pool does; use a [`ProcessPoolExecutor`](crate::ProcessPoolExecutor)
/// for tasks that may crash. See `README.md` for the commands to run both
/// modes, and to run on a cluster.
///
/// This example is `no_run`: it needs an MPI runtime, and a doc test's
/// binary cannot serve as its own worker. `tests/mpi.rs` and
/// `examples/square_sum_mpi.rs` run the same code.
///
/// ```no_run
/// use concurrent_futures::{Executor, MpiPoolExecutor};
///
/// fn hitung_kuadrat(n: u64) -> u64 {
///     (0..n).map(|i| i * i).sum()
/// }
///
/// fn main() -> Result<(), concurrent_futures::Error> {
///     concurrent_futures::init(); // in a worker rank, this serves and never returns
///     let executor = MpiPoolExecutor::new(2)?;
///     let sums: Vec<u64> = executor.map(hitung_kuadrat, [10, 100]).collect::<Result<_, _>>()?;
///     assert_eq!(sums, [285, 328_350]);
///     Ok(())
/// }
/// ```
pub struct MpiPoolExecutor {
    pool: u64,
    workers: usize,
    secret: Secret,
    /// The builder's fixed `map` chunk size, if it set one.
    chunksize: Option<usize>,
    /// `None` once shut down. Tasks are sent while holding it, so that none
    /// follows the pool's `Close`.
    commands: Mutex<Option<Sender<Command>>>,
}

impl MpiPoolExecutor {
    /// A pool of up to `max_workers` ranks: spawned ones, or those of the
    /// static world.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for zero workers; [`Error::InitMissing`]
    /// if [`init`](crate::init) was not called; [`Error::SpawnFailed`] if
    /// MPI could not spawn the workers (for example, more processes than
    /// cores without Open MPI's oversubscribe setting), or every rank of the
    /// static world serves another executor; [`Error::BrokenExecutor`] if
    /// MPI cannot be initialized, or a rank runs another executable.
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see the type's documentation.
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::new(3)?;
    /// assert!(executor.max_workers() <= 3);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn new(max_workers: usize) -> Result<Self, Error> {
        Self::builder().max_workers(max_workers).build()
    }

    /// A builder for the pool's settings.
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see the type's documentation.
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::builder()
    ///     .max_workers(2)
    ///     .chunksize(100)
    ///     .build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn builder() -> MpiPoolBuilder {
        MpiPoolBuilder::default()
    }

    /// How many ranks serve this pool. In static-world mode this can be
    /// fewer than asked for: the world's serving ranks not already in use.
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see the type's documentation.
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::new(2)?;
    /// println!("{} ranks serve this pool", executor.max_workers());
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn max_workers(&self) -> usize {
        self.workers
    }

    /// Schedules `task(arg)` on a rank; see [`Executor::submit`]. An
    /// argument that fails to serialize is the future's
    /// [`Error::Serialization`], before anything is sent.
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see the type's documentation.
    /// fn pid(_: ()) -> u32 { std::process::id() }
    ///
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::new(1)?;
    /// assert_ne!(executor.submit(pid, ()).result()?, std::process::id());
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn submit<A: Payload, R: Payload>(&self, task: fn(A) -> R, arg: A) -> Future<R> {
        self.submit_task(task, arg)
    }

    fn submit_task<T: Task>(&self, task: T, arg: T::Args) -> Future<T::Output> {
        let (promise, future) = future::pair();
        let mut args = Vec::new();
        match encode_arg(&arg, &mut args) {
            Ok(()) => self.send(Call::of(task), 1, &args, Box::new(One(promise))),
            Err(error) => promise.complete(Err(error)),
        }
        future
    }

    /// Runs `task` over `inputs` on the ranks, yielding the results in
    /// input order; see [`Map`]. Set [`Map::chunksize`] (or the builder's)
    /// to send many inputs per message: far less overhead for tiny tasks.
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see the type's documentation.
    /// fn square(n: u64) -> u64 { n * n }
    ///
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::new(2)?;
    /// let sum: u64 = executor.map(square, 0..1000).chunksize(100).map(Result::unwrap).sum();
    /// assert_eq!(sum, 332_833_500);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn map<A, R, I>(&self, task: fn(A) -> R, inputs: I) -> Map<'_, I::IntoIter, R>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        self.map_task(task, inputs)
    }

    /// Runs a function of two arguments over pairs, in input order; see
    /// [`Executor::starmap`].
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see the type's documentation.
    /// fn power(base: u64, exponent: u32) -> u64 { base.pow(exponent) }
    ///
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::new(2)?;
    /// let powers: Vec<_> = executor.starmap(power, [(2, 3), (3, 2)]).collect();
    /// assert_eq!(powers, [Ok(8), Ok(9)]);
    /// # Ok::<(), concurrent_futures::Error>(())
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

    /// Like [`map`](Self::map), but yields each result as soon as its task
    /// (or chunk) finishes; see [`Executor::map_unordered`].
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see the type's documentation.
    /// fn square(n: u64) -> (u64, u64) { (n, n * n) }
    ///
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::new(2)?;
    /// let mut pairs: Vec<_> = executor.map_unordered(square, 1..=3).map(Result::unwrap).collect();
    /// pairs.sort();
    /// assert_eq!(pairs, [(1, 1), (2, 4), (3, 9)]);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn map_unordered<A, R, I>(&self, task: fn(A) -> R, inputs: I) -> Map<'_, I::IntoIter, R>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        self.map(task, inputs).unordered()
    }

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
                self.send(call, chunk.sent, &chunk.args, chunk.results);
            }
            Pending::Chunk { future, len }
        };
        let map = Map::new(
            inputs.into_iter(),
            self.workers,
            CHUNK_TARGET,
            Box::new(submit),
        );
        match self.chunksize {
            Some(items_per_chunk) => map.chunksize(items_per_chunk),
            None => map,
        }
    }

    /// Sends one task message to the manager, or fails `results` if the
    /// pool is shut down or the manager is gone.
    fn send(&self, call: Call, count: usize, args: &[u8], results: Box<dyn Results>) {
        let header = TaskHeader {
            call,
            tag: call.tag(&self.secret),
            count: u32::try_from(count).unwrap_or(u32::MAX),
        };
        let mut message = Vec::with_capacity(TaskHeader::LEN + args.len());
        message.extend_from_slice(&header.encode());
        message.extend_from_slice(args);
        let work = Work { message, results };
        let commands = self.commands.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(commands) = commands.as_ref() else {
            return work.results.fail(Error::Shutdown);
        };
        let command = Command::Task {
            pool: self.pool,
            work,
        };
        if let Err(crossbeam_channel::SendError(Command::Task { work, .. })) =
            commands.send(command)
        {
            work.results.fail(Error::BrokenExecutor {
                reason: "the MPI manager thread has stopped".into(),
            });
        }
    }

    /// Stops taking tasks and waits for the submitted ones; see
    /// [`Executor::shutdown`]. Its ranks are then free for the next
    /// executor; they exit with the program.
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see the type's documentation.
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::new(1)?;
    /// executor.shutdown();
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn shutdown(&self) {
        self.shutdown_with(Shutdown::default());
    }

    /// Shuts down as `how` says; see [`Shutdown`]. Running tasks always
    /// finish: an MPI rank cannot be interrupted.
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see the type's documentation.
    /// use concurrent_futures::{MpiPoolExecutor, Shutdown};
    /// concurrent_futures::init();
    /// let executor = MpiPoolExecutor::new(1)?;
    /// executor.shutdown_with(Shutdown { wait: false, cancel_futures: true });
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn shutdown_with(&self, how: Shutdown) {
        let commands = self
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(commands) = commands else {
            return;
        };
        let (reply, done) = crossbeam_channel::bounded(1);
        let close = Command::Close {
            pool: self.pool,
            cancel: how.cancel_futures,
            reply: how.wait.then_some(reply),
        };
        if commands.send(close).is_ok() && how.wait {
            let _ = done.recv();
        }
    }
}

impl Drop for MpiPoolExecutor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Executor for MpiPoolExecutor {
    fn submit<A: Payload, R: Payload>(&self, task: fn(A) -> R, arg: A) -> Future<R> {
        MpiPoolExecutor::submit(self, task, arg)
    }

    fn map<'e, A, R, I>(&'e self, task: fn(A) -> R, inputs: I) -> Map<'e, I::IntoIter, R>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        MpiPoolExecutor::map(self, task, inputs)
    }

    fn starmap<'e, A, B, R, I>(&'e self, task: fn(A, B) -> R, inputs: I) -> Map<'e, I::IntoIter, R>
    where
        A: Payload,
        B: Payload,
        R: Payload,
        I: IntoIterator<Item = (A, B)>,
    {
        MpiPoolExecutor::starmap(self, task, inputs)
    }

    fn shutdown_with(&self, how: Shutdown) {
        MpiPoolExecutor::shutdown_with(self, how);
    }
}

impl fmt::Debug for MpiPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiPoolExecutor")
            .field("pool", &self.pool)
            .field("workers", &self.workers)
            .field("chunksize", &self.chunksize)
            .finish_non_exhaustive()
    }
}

/// Settings for an [`MpiPoolExecutor`]; start from
/// [`MpiPoolExecutor::builder`].
///
/// ```no_run
/// // `no_run`: needs an MPI runtime; see MpiPoolExecutor's documentation.
/// concurrent_futures::init();
/// let executor = concurrent_futures::MpiPoolExecutor::builder().max_workers(4).build()?;
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct MpiPoolBuilder {
    max_workers: usize,
    chunksize: Option<usize>,
}

impl Default for MpiPoolBuilder {
    fn default() -> Self {
        Self {
            max_workers: num_cpus::get(),
            chunksize: None,
        }
    }
}

impl MpiPoolBuilder {
    /// The most ranks. Default: the number of CPUs (in static-world mode,
    /// at most the world's size minus one serve). Zero makes
    /// [`build`](Self::build) fail.
    ///
    /// ```
    /// # use concurrent_futures::{Error, MpiPoolExecutor};
    /// // Checked before MPI is touched, so this runs anywhere.
    /// assert!(matches!(MpiPoolExecutor::builder().max_workers(0).build(), Err(Error::InvalidArgument(_))));
    /// ```
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = max_workers;
        self
    }

    /// A fixed [`Map::chunksize`] for this pool's `map`s, instead of the
    /// automatic size. Zero makes [`build`](Self::build) fail.
    ///
    /// ```
    /// # use concurrent_futures::{Error, MpiPoolExecutor};
    /// assert!(matches!(MpiPoolExecutor::builder().chunksize(0).build(), Err(Error::InvalidArgument(_))));
    /// ```
    pub fn chunksize(mut self, items_per_chunk: usize) -> Self {
        self.chunksize = Some(items_per_chunk);
        self
    }

    /// Builds the pool: starts MPI's manager thread if it is not running,
    /// then spawns the workers or takes ranks of the static world.
    ///
    /// # Errors
    ///
    /// As [`MpiPoolExecutor::new`].
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see MpiPoolExecutor's documentation.
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::builder().build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn build(self) -> Result<MpiPoolExecutor, Error> {
        let invalid =
            |what: &str| Err(Error::InvalidArgument(format!("{what} must be at least 1")));
        if self.max_workers == 0 {
            return invalid("max_workers");
        }
        if self.chunksize == Some(0) {
            return invalid("chunksize");
        }
        if !crate::process::worker::init_called() {
            return Err(Error::InitMissing);
        }
        panic::install_hook();
        let commands = manager::commands()?.clone();
        let (reply, opened) = crossbeam_channel::bounded(1);
        commands
            .send(Command::Open {
                workers: self.max_workers,
                reply,
            })
            .map_err(|_| Error::BrokenExecutor {
                reason: "the MPI manager thread has stopped".into(),
            })?;
        let opened = opened.recv().map_err(|_| Error::BrokenExecutor {
            reason: "the MPI manager thread has stopped".into(),
        })??;
        Ok(MpiPoolExecutor {
            pool: opened.pool,
            workers: opened.workers,
            secret: opened.secret,
            chunksize: self.chunksize,
            commands: Mutex::new(Some(commands)),
        })
    }
}
