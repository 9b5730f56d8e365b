//! Layer: mpi. May use: `error`, `executor`, `mpi::hub`, `mpi::role`,
//! `mpi::settings`, `mpi::worker`, `panic`, `remote`, `remote::function`,
//! `remote::work`, std and crossbeam-channel.
//! [`MpiPoolExecutor`]: tasks on MPI ranks, like `mpi4py.futures`; the
//! remote front end over [`MpiTransport`]. Its files, from the top down
//! (each uses only files below it):
//!
//! - this file and [`comm`]: the executor, and the executor inside an
//!   existing MPI program, over its communicator (mpi4py's
//!   `MPICommExecutor`).
//! - [`hub`]: the one thread of the parent that owns MPI: its event loop,
//!   its pools, its workers and the handshake with them.
//! - [`worker`]: the worker's side, its endpoint for the remote layer's
//!   serve loop.
//! - [`liveness`]: heartbeats, how the hub learns that a busy worker on
//!   any host has died.
//! - [`gate`], [`tags`], [`backoff`], [`role`], [`settings`]: a worker's
//!   start gate, where the hub's request to cut a chunk takes back the
//!   items that have not started; the MPI tag of each message; polling
//!   without burning a core; how [`init`](crate::init) tells a worker from
//!   the parent; the spawn settings.
//! - [`ffi`] (the `mpi sys` layer): the MPI calls the `mpi` crate has no
//!   safe form of.
//!
//! Tasks travel as in every remote pool: a task header (the offsets of
//! `FunctionRef::of`, a keyed tag, a count) and the encoded arguments, answered by
//! the encoded outcomes, after the remote layer's handshake, with a
//! fingerprint of the executable's *contents* (ranks on other machines see
//! another inode for the same program). Each message kind is an MPI tag
//! ([`tags`]).

mod backoff;
mod comm;
mod ffi;
mod gate;
mod hub;
mod liveness;
mod role;
mod settings;
mod tags;
mod worker;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crossbeam_channel::Sender;

use self::hub::Command;
use self::role::Role;
use self::settings::MpiSettings;
use self::worker::{serve_spawned, serve_world};
use crate::remote::function::Secret;
use crate::remote::work::Work;
use crate::remote::{RemoteBuilder, RemoteExecutor, Transport, sealed};
use crate::{Error, Shutdown, panic};

/// Whether [`init`](crate::init) was called in this process: it calls
/// [`serve_if_rank`] each time.
static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// Called by [`init`](crate::init), each time: notes the call, then serves
/// and exits if this run is an MPI worker; on rank 0 of a static world
/// starts the hub; otherwise does nothing more.
pub(crate) fn serve_if_rank() {
    // ORDERING: Relaxed: only this thread's later pool creation reads it,
    // or threads started after it, which synchronise with this one.
    INIT_CALLED.store(true, Ordering::Relaxed);
    match Role::of_this_process() {
        Role::Alone => {}
        Role::World { rank: 0, .. } => hub::start_for_world(),
        Role::World { .. } => serve_world(),
        Role::Spawned => serve_spawned(),
    }
}

/// A pool of MPI ranks that run tasks: Python's
/// `mpi4py.futures.MPIPoolExecutor`, behind the same [`Executor`](crate::Executor) trait as
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
///   `python -m mpi4py.futures`. Every executor of the program shares
///   those ranks, as mpi4py's do: each runs up to `max_workers` tasks on
///   them at once, the executors taking turns at a free rank. They stop
///   when rank 0's program exits.
///
/// Any number of executors may be busy at once, in either mode: each
/// answer goes to the executor whose task its rank ran, and a rank is taken
/// for dead only when it fell silent (see below).
///
/// A task goes to a rank only once that rank is free, so a queued task is
/// pending (`running()` is false) and a cancel stops it without touching a
/// rank. A `map` chunk that a rank has held for 2 ms while another rank
/// is free is cut: right after its running input if that one has run 2 ms,
/// else halfway through the inputs not started. The rest runs on the next
/// free rank, so a slow input holds up only itself.
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
/// running a task sends a heartbeat every 200 ms, and the hub takes a
/// busy rank silent for 5 s for dead. The executor is then broken: the
/// dead rank's task, the queued tasks and later submissions fail with
/// [`Error::BrokenExecutor`], as in mpi4py. Open MPI 4 (without its
/// fault-tolerance extension) aborts the dead rank's job: in spawn mode the
/// spawned job, and a new executor spawns fresh ranks (run without
/// `--enable-recovery`, it aborts every spawned job of the program, so
/// every executor on spawned ranks breaks with it, and none waits on ranks
/// that are gone); in static-world mode
/// the whole program, rank 0 included, unless `mpiexec` runs with
/// `--enable-recovery`, when the other ranks serve later executors (the
/// program then ends without `MPI_Finalize`, which would wait for the dead
/// rank). Spawn mode under `mpiexec -n 1` needs `--enable-recovery` too.
///
/// # On a cluster, and under Slurm
///
/// Every node needs the same binary, byte for byte (each rank proves it at
/// startup; a node with another build is refused with
/// [`Error::BrokenExecutor`] naming its rank and host), at the same path,
/// with the same Open MPI. These are the forms CI runs, on three simulated
/// hosts (network namespaces on one machine: `.ci/mpi-hosts`) and on a real
/// Slurm over them (`slurmctld` and one `slurmd` per host:
/// `.ci/slurm-cluster`, `.ci/slurm-check`), with the MPI tests and
/// `examples/square_sum_mpi.rs`:
///
/// ```text
/// # mpiexec with a hostfile (.ci/mpi-hosts-check)
/// mpiexec --hostfile hosts -n 3 ./program                      # static world
/// mpiexec --hostfile hosts -n 1 --enable-recovery ./program    # spawn mode
///
/// # Slurm (.ci/slurm-check)
/// srun --mpi=pmix -N 3 -n 3 --ntasks-per-node=1 ./program      # static world
/// sbatch --wait -N 3 -n 3 --ntasks-per-node=1 job.sh           # spawn mode, job.sh being:
///     #!/bin/sh
///     exec mpiexec -n 1 --enable-recovery ./program
/// ```
///
/// CI sets, for its private subnet and its 2 cores,
/// `OMPI_MCA_btl_tcp_if_include` and `OMPI_MCA_oob_tcp_if_include` (the
/// nodes' network), `OMPI_MCA_btl=tcp,vader,self`,
/// `OMPI_MCA_mpi_yield_when_idle=1` (more processes than cores) and
/// `OMPI_MCA_rmaps_base_oversubscribe=1`; `srun` and `sbatch` pass them on.
/// What it showed:
///
/// - Under `srun`, Open MPI's `OMPI_COMM_WORLD_*` variables are not set:
///   a rank knows the static world from Slurm's `SLURM_STEP_NUM_TASKS` and
///   its `PMIX_RANK` (a batch script's own run has none, and is alone).
/// - Spawn mode needs `mpiexec -n 1` (a program run alone spawns on its
///   own node only), and free slots: a spawned group is kept for the next
///   executor of its size and settings, so a program that builds executors
///   of several sizes holds several groups' slots. Allocate enough, or let
///   Open MPI oversubscribe.
/// - **A node going down** (its `slurmd` killed, then every process on
///   it), mid-task: under `srun --no-kill` (static world) the executor
///   reports [`Error::BrokenExecutor`] within about 5 s and the program goes
///   on with the ranks left. In spawn mode the executor reports it as fast,
///   but then Open MPI 4.1's `mpiexec`, whose daemon on that node is gone,
///   terminates the whole job, rank 0 included, even with
///   `--enable-recovery` (`FORCE-TERMINATE AT Unreachable`). A rank that
///   dies on a live node is survived in both modes.
///
/// # Coming from `mpi4py.futures`
///
/// | mpi4py | here |
/// |---|---|
/// | `MPIPoolExecutor(max_workers=n)` | [`MpiPoolExecutor::new(n)`](MpiPoolExecutor::new) |
/// | `MPIPoolExecutor()`, `MPI4PY_FUTURES_MAX_WORKERS` | [`MpiPoolExecutor::builder().build()`](MpiPoolBuilder), [`MPI_MAX_WORKERS_VAR`] |
/// | `python_exe`, `path`, `wdir`, `env`, `mpi_info` | `program`, `working_dir`, `env`, `info` on [`MpiPoolBuilder`] |
/// | `python -m mpi4py.futures prog.py` | `mpiexec -n N ./prog`, with [`init`](crate::init) first in `main` |
/// | `MPICommExecutor(comm, root)` | [`MpiPoolBuilder::with_comm`](RemoteBuilder::with_comm), [`with_world`](RemoteBuilder::with_world) |
/// | `shutdown(wait, cancel_futures=...)`, repeated | [`shutdown_with`](RemoteExecutor::shutdown_with): every call honoured |
/// | `initializer=f, initargs=(a,)` | [`initializer_with(f, a)`](RemoteBuilder::initializer_with), [`initializer(f)`](RemoteBuilder::initializer) |
///
/// `tests/mpi.rs` and `tests/mpi_comm.rs` mirror mpi4py's own futures
/// tests (`demo/futures/test_futures.py`); each case names the test it
/// mirrors. The deliberate differences:
///
/// - **No `bootup()`, no `num_workers`:** the ranks are spawned or greeted
///   when the executor is built, and [`max_workers`](RemoteExecutor::max_workers)
///   is their number.
/// - **No `get_comm_workers()`:** a task is a plain function of its
///   argument; it reaches no communicator of the pool's.
/// - **No keyword arguments:** a task takes one argument (a tuple for
///   several), or two with `starmap`.
/// - **The comm form refuses a one-rank communicator** (mpi4py then spawns
///   workers): its MPI is the program's, and spawning needs the executor's
///   own MPI thread. It needs every rank of the communicator to call it.
/// - **Executors in a static world share its serving ranks**, as mpi4py's
///   shared pool does, but each keeps its own `max_workers` bound.
/// - **The initializer runs per executor, on ranks that outlive it:** each
///   rank runs an executor's initializer before its first task of that
///   executor, but a rank of the static world serves every executor, and a
///   spawned group is reused by the next executor of its size, so a rank
///   may have run another executor's initializer before. An initializer
///   should set its global so that a second run replaces the value (a
///   `RwLock`, as Python's `global table` assignment), not expect a fresh
///   process (a `OnceLock` fails there).
/// - **No `aplus`-style `then`/`collect`/`compose`:** a
///   [`Future`](crate::Future) has done callbacks, and `wait`/`as_completed`
///   combine futures.
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
pub type MpiPoolExecutor = RemoteExecutor<MpiTransport>;

/// How an [`MpiPoolExecutor`] reaches its ranks: through the process's one
/// MPI hub thread. You never name it; it is the type parameter behind
/// [`MpiPoolExecutor`].
pub struct MpiTransport {
    pool: u64,
    max_workers: usize,
    secret: Secret,
    commands: Sender<Command>,
    /// Whether it takes tasks. Tasks are sent while holding it, so that none
    /// follows the pool's `Close`.
    intake: Mutex<Intake>,
}

/// Whether an [`MpiTransport`] takes tasks:
///
/// ```text
/// Open ──shutdown──▶ Closed ──shutdown──▶ Closed
/// ```
///
/// Every shutdown, the first or a later one, sends the hub a `Close`: a
/// later one may cancel what an earlier one left queued, and wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intake {
    Open,
    Closed,
}

impl Transport for MpiTransport {}

// Sealed, so crate-private types are fine here: see `remote::sealed`.
#[allow(private_interfaces)]
impl sealed::Transport for MpiTransport {
    const POOL: &'static str = "MpiPoolExecutor";
    type Settings = MpiSettings;

    fn max_workers(&self) -> usize {
        self.max_workers
    }

    fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Sends one task message to the hub, or fails its results if the pool
    /// is shut down or the hub is gone.
    fn send(&self, work: Work) {
        let intake = self.intake.lock().unwrap_or_else(PoisonError::into_inner);
        if *intake == Intake::Closed {
            return work.results.fail(Error::Shutdown);
        }
        let command = Command::Run {
            pool: self.pool,
            work,
        };
        if let Err(crossbeam_channel::SendError(Command::Run { work, .. })) =
            self.commands.send(command)
        {
            work.results.fail(Error::BrokenExecutor {
                reason: "the MPI hub thread has stopped".into(),
            });
        }
    }

    /// Running tasks always finish: an MPI rank cannot be interrupted. Its
    /// ranks are then free for the next executor; they exit with the
    /// program. Every call is honoured, as on the other pools: a later
    /// one cancels what is still queued if it says so, and waits if it
    /// says so.
    fn shutdown(&self, how: Shutdown) {
        let (reply, done) = crossbeam_channel::bounded(1);
        let close = Command::Close {
            pool: self.pool,
            cancel: how.cancel_futures,
            reply: how.wait.then_some(reply),
        };
        let sent = {
            let mut intake = self.intake.lock().unwrap_or_else(PoisonError::into_inner);
            *intake = Intake::Closed;
            self.commands.send(close).is_ok()
        };
        if sent && how.wait {
            let _ = done.recv();
        }
    }
}

impl fmt::Debug for MpiTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpiTransport")
            .field("pool", &self.pool)
            .field("max_workers", &self.max_workers)
            .finish_non_exhaustive()
    }
}

impl RemoteExecutor<MpiTransport> {
    /// A pool of up to `max_workers` ranks: spawned ones, or those of the
    /// static world.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for zero workers; [`Error::InitMissing`]
    /// if [`init`](crate::init) was not called; [`Error::SpawnFailed`] if
    /// MPI could not spawn the workers (for example, more processes than
    /// cores without Open MPI's oversubscribe setting);
    /// [`Error::BrokenExecutor`] if MPI cannot be initialized, a rank runs
    /// another executable, or every serving rank of the static world has
    /// died.
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
}

/// Settings for an [`MpiPoolExecutor`]; start from
/// [`MpiPoolExecutor::builder`]. The settings every remote pool has are
/// [`RemoteBuilder`]'s; MPI adds the spawn options of `mpi4py.futures`:
/// [`program`](RemoteBuilder::program),
/// [`working_dir`](RemoteBuilder::working_dir), [`env`](RemoteBuilder::env)
/// and [`info`](RemoteBuilder::info) (host placement and any other
/// `MPI_Info` key of `MPI_Comm_spawn`). They apply in spawn mode; a static
/// world's ranks are already running, so there they change nothing.
///
/// **The default size**, when [`max_workers`](RemoteBuilder::max_workers)
/// is not set, is `mpi4py.futures`'s: in spawn mode, the environment
/// variable [`MPI_MAX_WORKERS_VAR`] (mpi4py's `MPI4PY_FUTURES_MAX_WORKERS`) if
/// set, else the MPI universe's size (`MPI_UNIVERSE_SIZE`: the slots the
/// launcher offers, such as a hostfile's or a Slurm allocation's) less this
/// program's world, else 1; in a static world, every serving rank.
///
/// ```no_run
/// // `no_run`: needs an MPI runtime; see MpiPoolExecutor's documentation.
/// concurrent_futures::init();
/// let executor = concurrent_futures::MpiPoolExecutor::builder().max_workers(4).build()?;
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub type MpiPoolBuilder = RemoteBuilder<MpiTransport>;

/// The environment variable that sets an [`MpiPoolExecutor`]'s default
/// size in spawn mode, as `MPI4PY_FUTURES_MAX_WORKERS` does mpi4py's.
///
/// ```
/// assert_eq!(concurrent_futures::MPI_MAX_WORKERS_VAR, "CONCURRENT_FUTURES_MPI_MAX_WORKERS");
/// ```
pub const MPI_MAX_WORKERS_VAR: &str = "CONCURRENT_FUTURES_MPI_MAX_WORKERS";

impl RemoteBuilder<MpiTransport> {
    /// Spawn mode: the program to start as workers, instead of this
    /// executable's path; for a cluster whose nodes hold the same build at
    /// another path. It must be the same build: a rank running other bytes
    /// is refused. (mpi4py's `python_exe` and `path` name where its
    /// interpreter and modules are; a Rust program is one file.)
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see MpiPoolExecutor's documentation.
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::builder()
    ///     .program("/shared/bin/my-program")
    ///     .build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn program(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.set_program(path.into());
        self
    }

    /// Spawn mode: the workers' working directory (mpi4py's `wdir`), passed
    /// as `MPI_Comm_spawn`'s standard `wdir` info key.
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see MpiPoolExecutor's documentation.
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::builder().working_dir("/scratch").build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn working_dir(self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into().to_string_lossy().into_owned();
        self.info("wdir", dir)
    }

    /// Spawn mode: sets an environment variable in the workers (mpi4py's
    /// `env`), on top of the environment the MPI launcher gives them.
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see MpiPoolExecutor's documentation.
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::builder().env("OMP_NUM_THREADS", "1").build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.add_env(key.into(), value.into());
        self
    }

    /// Spawn mode: an `MPI_Info` key and value for `MPI_Comm_spawn`
    /// (mpi4py's `mpi_info`), such as the standard `host` (where to place
    /// the workers) or Open MPI's `hostfile`, `map_by` or `add-host`. Which
    /// keys MPI honours is up to its implementation.
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see MpiPoolExecutor's documentation.
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::builder()
    ///     .max_workers(2)
    ///     .info("host", "node7,node8")
    ///     .build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn info(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.add_info(key.into(), value.into());
        self
    }

    /// Builds the pool: starts MPI's hub thread if it is not running,
    /// then spawns the workers or takes ranks of the static world.
    ///
    /// # Errors
    ///
    /// As [`MpiPoolExecutor::new`], and [`Error::InvalidArgument`] if
    /// [`MPI_MAX_WORKERS_VAR`] is set to anything but a positive number. The
    /// settings are checked before MPI is touched:
    ///
    /// ```
    /// # use concurrent_futures::{Error, MpiPoolExecutor};
    /// assert!(matches!(MpiPoolExecutor::builder().max_workers(0).build(), Err(Error::InvalidArgument(_))));
    /// assert!(matches!(MpiPoolExecutor::builder().chunksize(0).build(), Err(Error::InvalidArgument(_))));
    /// ```
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime; see MpiPoolExecutor's documentation.
    /// concurrent_futures::init();
    /// let executor = concurrent_futures::MpiPoolExecutor::builder().build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn build(self) -> Result<MpiPoolExecutor, Error> {
        self.check()?;
        // ORDERING: Relaxed: see `serve_if_rank`.
        if !INIT_CALLED.load(Ordering::Relaxed) {
            return Err(Error::InitMissing);
        }
        panic::install_hook();
        let commands = hub::commands()?.clone();
        let max_workers = match self.max_workers_set {
            true => Some(self.max_workers),
            false => default_workers()?,
        };
        self.open(commands, max_workers)
    }

    /// Asks the hub on `commands` for a pool of up to `max_workers` workers
    /// (`None`: its default), and makes the executor over it.
    fn open(
        self,
        commands: Sender<Command>,
        max_workers: Option<usize>,
    ) -> Result<MpiPoolExecutor, Error> {
        let stopped = || Error::BrokenExecutor {
            reason: "the MPI hub thread has stopped".into(),
        };
        let (reply, opened) = crossbeam_channel::bounded(1);
        commands
            .send(Command::Open {
                max_workers,
                spawn: self.settings,
                initializer: self.initializer.and_then(Result::ok),
                reply,
            })
            .map_err(|_| stopped())?;
        let opened = opened.recv().map_err(|_| stopped())??;
        let transport = MpiTransport {
            pool: opened.pool,
            max_workers: opened.max_workers,
            secret: opened.secret,
            commands,
            intake: Mutex::new(Intake::Open),
        };
        Ok(RemoteExecutor::over(transport, self.chunksize))
    }
}

/// The size [`MPI_MAX_WORKERS_VAR`] asks for, if it is set.
fn default_workers() -> Result<Option<usize>, Error> {
    let Some(value) = std::env::var_os(MPI_MAX_WORKERS_VAR) else {
        return Ok(None);
    };
    match value.to_str().and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(workers) if workers > 0 => Ok(Some(workers)),
        _ => Err(Error::InvalidArgument(format!(
            "{MPI_MAX_WORKERS_VAR}={} is not a positive number of workers",
            value.to_string_lossy()
        ))),
    }
}
