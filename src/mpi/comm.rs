//! Layer: mpi. May use: `error`, `mpi`, `mpi::hub`, `mpi::worker`,
//! `panic`, `remote`, std and the mpi crate's communicators.
//! The executor inside an existing MPI program:
//! `mpi4py.futures.MPICommExecutor`.
//!
//! Every rank of the user's communicator calls
//! [`with_comm`](RemoteBuilder::with_comm). The communicator is duplicated
//! (collectively), so that the executor's messages never meet the
//! program's. The root rank runs a hub on the calling thread, the thread
//! that makes every MPI call of this process meanwhile, and the user's
//! `body` on a scoped thread of its own with the executor; the other ranks
//! serve the root from the calling thread. When `body` returns, its
//! executor shuts down, the hub stops the serving ranks, and `with_comm`
//! returns on every rank: `Some(body's value)` on the root, `None` on the
//! others, like mpi4py's `with MPICommExecutor(comm, root) as executor:`.
//! MPI stays initialized: it is the program's.

use std::thread;

use ::mpi::Rank;
use ::mpi::environment;
use ::mpi::topology::{Communicator, SimpleCommunicator};

use super::{MpiPoolExecutor, MpiTransport, hub, worker};
use crate::remote::{RemoteBuilder, RemoteExecutor};
use crate::{Error, panic};

impl RemoteBuilder<MpiTransport> {
    /// Runs `body` with an executor whose tasks run on the other ranks of
    /// `comm`, an intracommunicator of the `mpi` crate that this program
    /// made: `mpi4py.futures.MPICommExecutor(comm, root)`. Call it on every
    /// rank of `comm`, from the thread that initialized MPI. On rank `root`
    /// it returns `Ok(Some(value))`, what `body` returned; on the others,
    /// which serve the root's tasks meanwhile, `Ok(None)` once the root's
    /// `body` is done and its executor shut down.
    ///
    /// The executor shares the serving ranks as a static world's pools do;
    /// `max_workers` (default: all of them) bounds how many run its tasks at
    /// once, and the spawn options change nothing. The program's own
    /// communicators are left alone: the executor talks over a duplicate of
    /// `comm`, freed before this returns. `body` runs on a thread of its
    /// own and must make no MPI call (this thread makes them for the
    /// executor meanwhile). The program needs no [`init`](crate::init): the
    /// serving ranks serve from here. (Under `mpiexec` or `srun`, a program
    /// that calls `init()` is a static world instead: its ranks other than
    /// 0 serve from inside `init()` and never reach this call.)
    ///
    /// Deliberate differences from mpi4py: a communicator of one rank is an
    /// error, not a fallback to spawned workers (MPI is the program's, and
    /// spawning needs the executor's own MPI thread); an intercommunicator
    /// cannot be passed at all (the type is an intracommunicator).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] on every rank if MPI is not initialized,
    /// if an [`MpiPoolExecutor`] of this process already owns MPI, if
    /// `root` is not a rank of `comm`, or if `comm` has a single rank;
    /// [`Error::BrokenExecutor`] if a serving rank runs another executable
    /// or stops serving early.
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime (`mpiexec -n 3 ./program`).
    /// use concurrent_futures::MpiPoolExecutor;
    /// use mpi::traits::Communicator;
    ///
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    ///
    /// let universe = mpi::initialize().expect("MPI");
    /// let world = universe.world();
    /// let sum = MpiPoolExecutor::builder().with_comm(&world, 0, |executor| {
    ///     executor.map(square, 0..100).map(Result::unwrap).sum::<u64>()
    /// })?;
    /// match sum {
    ///     Some(sum) => assert_eq!(sum, 328_350), // rank 0
    ///     None => assert_ne!(world.rank(), 0),   // a rank that served
    /// }
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn with_comm<T: Send>(
        self,
        comm: &SimpleCommunicator,
        root: Rank,
        body: impl FnOnce(&MpiPoolExecutor) -> T + Send,
    ) -> Result<Option<T>, Error> {
        self.check()?;
        let invalid = |what: String| Err(Error::InvalidArgument(what));
        if !environment::is_initialized() {
            return invalid(
                "MPI is not initialized: initialize it first (mpi::initialize()), \
                 or use with_world"
                    .into(),
            );
        }
        if hub::started() {
            return invalid(
                "an MpiPoolExecutor of this process already owns MPI on a thread of its \
                 own; the comm form needs the thread that initialized MPI"
                    .into(),
            );
        }
        let size = comm.size();
        if !(0..size).contains(&root) {
            return invalid(format!(
                "root {root} is not a rank of the communicator, whose ranks are 0 to {}",
                size - 1
            ));
        }
        if size < 2 {
            return invalid(
                "the communicator has a single rank: the comm form needs a serving rank \
                 besides the root (MpiPoolExecutor::new spawns workers instead)"
                    .into(),
            );
        }
        let comm = comm.duplicate();
        if comm.rank() != root {
            return worker::serve_comm(&comm, root)
                .map(|()| None)
                .map_err(|reason| Error::BrokenExecutor { reason });
        }
        panic::install_hook();
        let (commands, inbox) = crossbeam_channel::unbounded();
        let max_workers = self.max_workers_set.then_some(self.max_workers);
        thread::scope(|scope| {
            let user = thread::Builder::new()
                .name("concurrent-futures-mpi-comm-body".into())
                .spawn_scoped(scope, move || {
                    let executor = self.open(commands, max_workers)?;
                    let value = body(&executor);
                    drop(executor); // shuts down, waiting for its tasks
                    Ok(value)
                })
                .map_err(|e| Error::BrokenExecutor {
                    reason: format!("cannot start the thread of the comm form's body: {e}"),
                })?;
            // Returns once the body's thread has dropped its channel.
            let served = hub::serve_comm(comm, root, &inbox);
            match user.join() {
                Ok(value) => served.and(value.map(Some)),
                Err(panicked) => std::panic::resume_unwind(panicked),
            }
        })
    }

    /// [`with_comm`](Self::with_comm) over `MPI_COMM_WORLD`, initializing
    /// MPI first if nothing has (then finalizing it before this returns, so
    /// that no MPI can be used afterwards in this process): the comm form
    /// for a program that does not initialize MPI itself. Run it under
    /// `mpiexec -n N` on every rank.
    ///
    /// # Errors
    ///
    /// As [`with_comm`](Self::with_comm), and [`Error::BrokenExecutor`] if
    /// MPI cannot be initialized.
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime (`mpiexec -n 3 ./program`).
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    ///
    /// let nine = concurrent_futures::MpiPoolExecutor::builder()
    ///     .with_world(0, |executor| executor.submit(square, 3).result())?;
    /// if let Some(nine) = nine {
    ///     assert_eq!(nine, Ok(9)); // rank 0
    /// }
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn with_world<T: Send>(
        self,
        root: Rank,
        body: impl FnOnce(&MpiPoolExecutor) -> T + Send,
    ) -> Result<Option<T>, Error> {
        if environment::is_initialized() {
            return self.with_comm(&SimpleCommunicator::world(), root, body);
        }
        let universe = ::mpi::initialize().ok_or_else(|| Error::BrokenExecutor {
            reason: "MPI could not be initialized".into(),
        })?;
        let value = self.with_comm(&universe.world(), root, body);
        drop(universe); // finalizes MPI
        value
    }
}

impl RemoteExecutor<MpiTransport> {
    /// [`MpiPoolBuilder::with_comm`](RemoteBuilder::with_comm) with the
    /// default settings: `mpi4py.futures.MPICommExecutor(comm, root)`.
    ///
    /// # Errors
    ///
    /// As [`MpiPoolBuilder::with_comm`](RemoteBuilder::with_comm).
    ///
    /// ```no_run
    /// // `no_run`: needs an MPI runtime (`mpiexec -n 3 ./program`).
    /// let universe = mpi::initialize().expect("MPI");
    /// let pid = concurrent_futures::MpiPoolExecutor::with_comm(&universe.world(), 0, |executor| {
    ///     executor.submit(|(): ()| std::process::id(), ()).result()
    /// })?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn with_comm<T: Send>(
        comm: &SimpleCommunicator,
        root: Rank,
        body: impl FnOnce(&MpiPoolExecutor) -> T + Send,
    ) -> Result<Option<T>, Error> {
        Self::builder().with_comm(comm, root, body)
    }
}
