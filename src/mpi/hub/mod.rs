//! Layer: mpi. May use: `error`, `mpi::ffi`, `mpi::hub::event_loop`,
//! `mpi::role`, `remote::decode`, std, crossbeam-channel and the mpi crate.
//! The hub: the one thread of a process that owns MPI, and the channel
//! that executors reach it by.
//!
//! Open MPI's communicators are not `Send`, so a single thread initializes
//! MPI, owns the universe and every communicator, and makes every MPI call
//! of the parent side. Executors talk to it over a channel of [`Command`]s.
//! It starts with the first `MpiPoolExecutor` (or
//! in `init` on rank 0 of a static world) and lives until the
//! process exits, when an `atexit` hook has it stop the workers and
//! finalize MPI. MPI cannot be initialized twice in one process, so every
//! executor of the process shares this thread; each executor is one *pool*
//! here: its queue and calls out, on workers of its own (a spawned group)
//! or on the static world's serving ranks, which every pool of the process
//! shares, as under `python -m mpi4py.futures`. Spawned workers outlive
//! their executor, for the next one of the same size.
//!
//! - [`event_loop`]: the loop. It hands queued work to free workers (one
//!   call each, so it knows which work every worker holds; the pools take
//!   turns at a shared worker; a pool with an initializer sends it, as a
//!   task, before a worker's first task of the pool, and breaks if it
//!   fails), then receives outcomes from any worker of each communicator
//!   and gives each to the pool whose work that worker holds, polling with
//!   a backoff while work is out and blocking on the channel while none is.
//!   Done callbacks run on a separate thread, so that a slow callback
//!   never stalls MPI. Busy workers are watched through their heartbeats
//!   (`liveness`): one silent for too long is dead, on
//!   whatever host it ran, and its pool is broken. Silence is judged after
//!   the messages that arrived have been received, so a worker is never
//!   taken for dead because the hub was slow to read it.
//! - [`pool`]: one executor's queue, calls out and life.
//! - [`workers`]: the static world's serving ranks and the spawned groups,
//!   and whether each still serves.
//! - [`handshake`]: greeting new workers, and stopping them.
//!
//! A `map` chunk runs on one worker, but need not run there whole: when a
//! worker has held a chunk for the loop's patience (2 ms) while a worker
//! its pool could use is free, the hub asks it to cut the chunk (see
//! `gate`): right after the item running, if that one has
//! run for a while (a slow input), else halfway through the items not
//! started (a chunk of quick ones, split with the free worker). The worker
//! answers how many items run there; the rest becomes work of its own,
//! already marked running, queued first for the next free worker, and its
//! outcomes complete the same future. So a slow input holds up only
//! itself, wherever it falls in the input.
//!
//! ```text
//!            a free worker            held 2 ms, a worker free
//!  queue ─────────────────▶ busy ──────────────────────────────▶ asked
//!    ▲  (pending; marked             (running())                    │
//!    │   running as it is sent)                                     │
//!    └──── the rest, first in line ◀── the worker answers: the ─────┘
//!          (running)                   items it had not started, or
//!                                      the later half of them, taken back
//! ```
//!
//! Every task message carries a number (its header's `first`), echoed in
//! the worker's answer to a cut and with its outcomes, which say how many
//! of its items ran: an answer is checked against the work its worker
//! holds, and never completes another's future.

use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use ::mpi::Rank;
use ::mpi::environment::Threading;
use ::mpi::topology::SimpleCommunicator;
use crossbeam_channel::{Receiver, Sender};

pub(crate) use self::event_loop::Command;
use self::event_loop::Hub;
use super::ffi;
use super::role::Role;
use crate::Error;

mod event_loop;
mod handshake;
mod pool;
mod workers;

/// How long the exit hook waits for the hub to stop the workers.
const EXIT_PATIENCE: Duration = Duration::from_secs(30);

/// The hub's channel, or why it could not start.
static HUB: OnceLock<Result<Sender<Command>, String>> = OnceLock::new();

/// The channel to the hub, starting it on first use.
pub(crate) fn commands() -> Result<&'static Sender<Command>, Error> {
    HUB.get_or_init(|| start(Role::of_this_process()))
        .as_ref()
        .map_err(|reason| Error::BrokenExecutor {
            reason: reason.clone(),
        })
}

/// Whether this process's hub thread has started (and owns MPI).
pub(crate) fn started() -> bool {
    HUB.get().is_some()
}

/// Rank 0 of a static world: starts the hub at once, so that it
/// greets the serving ranks now and stops them when the program ends,
/// even if the program never builds an executor.
pub(crate) fn start_for_world() {
    if let Err(error) = commands() {
        eprintln!("concurrent-futures: {error}");
    }
}

fn start(role: Role) -> Result<Sender<Command>, String> {
    let (commands, inbox) = crossbeam_channel::unbounded();
    let (started, outcome) = crossbeam_channel::bounded(1);
    thread::Builder::new()
        .name("concurrent-futures-mpi-hub".into())
        // It decodes results: user code, as deep as the depth bound.
        .stack_size(crate::remote::decode::STACK_SIZE)
        .spawn(move || run(role, &started, &inbox))
        .map_err(|e| format!("cannot start the MPI hub thread: {e}"))?;
    outcome
        .recv()
        .unwrap_or_else(|_| Err("the MPI hub thread died while starting".into()))?;
    if !ffi::at_exit(finalize_at_exit) {
        eprintln!("concurrent-futures: cannot register the MPI exit hook; MPI is not finalized");
    }
    Ok(commands)
}

/// Runs at process exit: asks the hub to stop every rank and finalize.
extern "C" fn finalize_at_exit() {
    if let Some(Ok(commands)) = HUB.get() {
        let (reply, done) = crossbeam_channel::bounded(1);
        if commands.send(Command::Finalize { reply }).is_ok() {
            let _ = done.recv_timeout(EXIT_PATIENCE);
        }
    }
}

/// The body of the hub thread.
fn run(role: Role, started: &Sender<Result<(), String>>, inbox: &Receiver<Command>) {
    let Some((universe, _)) = ::mpi::initialize_with_threading(Threading::Funneled) else {
        let _ = started.send(Err(
            "MPI was already initialized in this process by other code; \
             the MPI executor must be the one to initialize it"
                .into(),
        ));
        return;
    };
    ffi::errors_return_on_self();
    let mut hub = match Hub::new(Some(universe), SimpleCommunicator::world()) {
        Ok(hub) => hub,
        Err(error) => {
            let _ = started.send(Err(error));
            return;
        }
    };
    if let Role::World { size, .. } = role {
        hub.greet_world((1..size).filter_map(|r| Rank::try_from(r).ok()).collect());
    }
    let _ = started.send(Ok(()));
    let reply = hub.serve(inbox);
    hub.end();
    if let Some(reply) = reply {
        let _ = reply.send(());
    }
}

/// The comm form's hub, on the calling thread of rank `root` of `comm` (a
/// duplicate of the user's communicator, whose other ranks serve): greets
/// them, serves `inbox` until every sender is gone, then stops them. MPI
/// is the program's: it stays initialized.
pub(super) fn serve_comm(
    comm: SimpleCommunicator,
    root: Rank,
    inbox: &Receiver<Command>,
) -> Result<(), Error> {
    let mut hub = Hub::new(None, comm).map_err(|reason| Error::BrokenExecutor { reason })?;
    hub.greet_world((0..hub.size()).filter(|&rank| rank != root).collect());
    hub.serve(inbox);
    hub.end();
    Ok(())
}
