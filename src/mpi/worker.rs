//! Layer: mpi. May use: `mpi::backoff`, `mpi::gate`, `mpi::liveness`,
//! `mpi::role`, `mpi::tags`, `remote::function`, `remote::codec`,
//! `remote::message`, `remote::serve`, std and the mpi crate.
//! The worker's side: a spawned run or a rank ≥ 1 of a static world (see
//! [`role`](super::role)) serves with the remote layer's loop
//! ([`serve`](crate::remote::serve)), through its [`WorkerEndpoint`] over
//! the communicator, until the hub says stop: the handshake, then task
//! after task. Each task runs on a thread of its own while the serving
//! thread sends heartbeats, so that the hub can tell a long task from a
//! dead worker ([`liveness`](super::liveness)), and answers the hub's
//! requests to cut a chunk after its running item ([`gate`](super::gate)),
//! saying how many of its items run: the hub gives the rest to other
//! workers. A task whose tag does not match ends the service, as on every
//! transport: nothing it names is called.

use std::time::Duration;

use ::mpi::point_to_point::{Destination, Source};
use ::mpi::topology::Communicator;

use super::backoff::Backoff;
use super::gate::Gate;
use super::liveness::{self, TaskThread};
use super::role::{WORKER_ARG, fingerprint};
use super::tags;
use crate::remote::codec::Bulk;
use crate::remote::function::Secret;
use crate::remote::message::{Answer, Kind, TaskHeader};
use crate::remote::serve::{self, Endpoint, run_task_with_tail};

/// How long an item must have run for a cut to take back every item after
/// it, rather than half of them: about the hub's patience with a chunk.
const SLOW: Duration = Duration::from_millis(2);

fn report(result: Result<(), String>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(reason) => {
            eprintln!(
                "concurrent-futures MPI worker {}: {reason}",
                std::process::id()
            );
            1
        }
    }
}

/// Serves the parent that spawned this run, then exits.
pub(super) fn serve_spawned() -> ! {
    std::process::exit(spawned())
}

/// Serves rank 0 of the static world, then exits.
pub(super) fn serve_world() -> ! {
    std::process::exit(world())
}

fn spawned() -> i32 {
    let Some(universe) = ::mpi::initialize() else {
        return report(Err("MPI was already initialized".into()));
    };
    let Some(parent) = universe.world().parent() else {
        return report(Err(format!(
            "started with {WORKER_ARG}, but not spawned by an MpiPoolExecutor (no MPI parent)"
        )));
    };
    let result = serve_hub(&parent, 0);
    if result == Ok(Finalize::No) {
        // A rank of this job died: a disconnect or MPI_Finalize would wait
        // for it.
        std::mem::forget(parent);
        std::mem::forget(universe);
        return report(Ok(()));
    }
    // The mpi crate hands out the parent as an owned intercommunicator:
    // dropping it disconnects from the parent (which disconnects too when
    // it closes the pool). It must go before the universe, whose drop
    // would otherwise disconnect the same handle a second time (a crash in
    // Open MPI) before it finalizes MPI.
    drop(parent);
    drop(universe);
    report(result.map(drop))
}

fn world() -> i32 {
    let Some(universe) = ::mpi::initialize() else {
        return report(Err("MPI was already initialized".into()));
    };
    let result = serve_hub(&universe.world(), 0);
    if result == Ok(Finalize::No) {
        std::mem::forget(universe); // MPI_Finalize would wait for a dead rank
    } else {
        drop(universe);
    }
    report(result.map(drop))
}

/// Whether to finalize MPI once stopped: not if a rank of the job has
/// died, as `MPI_Finalize` waits for every rank.
#[derive(Debug, PartialEq, Eq)]
enum Finalize {
    Yes,
    No,
}

/// A serving rank of the comm form (`MpiPoolBuilder::with_comm`):
/// serves the hub at rank `root` of `comm` until it says stop. `Err` says
/// why it stopped early.
pub(super) fn serve_comm<C: Communicator>(comm: &C, root: ::mpi::Rank) -> Result<(), String> {
    serve_hub(comm, root).map(drop)
}

/// Serves the hub at rank `hub_rank` of `comm` until it says stop.
fn serve_hub<C: Communicator>(comm: &C, hub_rank: ::mpi::Rank) -> Result<Finalize, String> {
    let hub = comm.process_at_rank(hub_rank);
    let fingerprint = fingerprint().map_err(|e| format!("cannot identify the executable: {e}"))?;
    // So that a parent on the same host can tell when this rank has died.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let place = format!("{} {}", std::process::id(), host.trim());
    hub.send_with_tag(place.as_bytes(), tags::WHERE);
    let mut endpoint = WorkerEndpoint {
        comm,
        hub: hub_rank,
        tasks: None,
        finalize: Finalize::Yes,
    };
    // A refused rank says why on its own host too, reported or not: there
    // the user may be reading only that host's output.
    serve::serve(&mut endpoint, fingerprint).map_err(|stopped| stopped.reason)?;
    Ok(endpoint.finalize)
}

/// A worker's end of the communicator: messages to and from the hub's
/// rank, each kind under its tag.
struct WorkerEndpoint<'c, C> {
    comm: &'c C,
    /// The hub's rank in `comm`.
    hub: ::mpi::Rank,
    /// The thread that runs tasks, started with the first one.
    tasks: Option<TaskThread>,
    /// What the hub's `STOP` said to do about MPI.
    finalize: Finalize,
}

impl<C: Communicator> Endpoint for WorkerEndpoint<'_, C> {
    fn send(&mut self, kind: Kind, parts: &[&[u8]]) -> Result<(), String> {
        let hub = self.comm.process_at_rank(self.hub);
        match parts {
            [one] => hub.send_with_tag(*one, tags::of(kind)),
            _ => hub.send_with_tag(&parts.concat()[..], tags::of(kind)),
        }
        Ok(())
    }

    /// MPI carries every message whole: nothing comes apart.
    fn receive(&mut self, body: &mut Vec<u8>) -> Result<Option<Kind>, String> {
        let hub = self.comm.process_at_rank(self.hub);
        let mut backoff = Backoff::default();
        // Polling with a backoff, not a blocking probe: Open MPI's blocking
        // calls spin, which would steal the core an oversubscribed rank
        // shares with the others. A probe, then a receive of what it found
        // (not a matched probe: see the hub's `receive_from_any`).
        let status = loop {
            match hub.immediate_probe() {
                // A request to cut a task that has finished since: it owes
                // no answer (the hub has its outcomes, sent before this
                // was read).
                Some(status) if status.tag() == tags::CUT => {
                    let _: (Vec<u8>, _) = hub.receive_vec_with_tag(tags::CUT);
                }
                Some(status) => break status,
                None => backoff.pause(),
            }
        };
        let (message, status) = hub.receive_vec_with_tag::<u8>(status.tag());
        *body = message;
        match status.tag() {
            tags::STOP => {
                if !body.is_empty() {
                    self.finalize = Finalize::No;
                }
                Ok(None)
            }
            tag => match tags::kind(tag) {
                Some(kind) => Ok(Some(kind)),
                None => Err(format!("unexpected message with tag {tag}")),
            },
        }
    }

    /// On the task thread, with a heartbeat every
    /// [`BEAT`](liveness::BEAT) while it runs, and an answer to each
    /// request to cut it.
    /// Nothing comes apart (see `receive`), and `bulk` stays empty:
    /// [`run_task`] joins a result's bulk to the outcomes.
    fn execute(
        &mut self,
        body: &mut Vec<u8>,
        secret: &Secret,
        outcomes: &mut Vec<u8>,
        _: &mut Bulk,
    ) -> Result<(), String> {
        // A header that does not decode is refused, as `run_task` would.
        let (first, count) = (TaskHeader::decode(body))
            .map(|(header, _)| (header.first, header.count))
            .map_err(|e| e.into_error().to_string())?;
        let tasks = match &mut self.tasks {
            Some(tasks) => tasks,
            tasks => tasks.insert(TaskThread::start(*secret, run_task)?),
        };
        let (comm, hub) = (self.comm, self.hub);
        let beat = || liveness::beat(comm, hub);
        let look = |gate: &Gate, running: Duration| answer_cuts(comm, hub, first, gate, running);
        *outcomes = tasks.run(std::mem::take(body), count, beat, look)?;
        Ok(())
    }
}

/// Answers every request to cut the task numbered `first`, running with
/// `gate`, that has arrived from rank `hub` of `comm`: cuts it (after the
/// item running now if it has been `running` for [`SLOW`], else halfway
/// through the rest), and says how many of its items run. A request for
/// another task (one that has finished) is dropped: the hub has its
/// outcomes.
fn answer_cuts<C: Communicator>(
    comm: &C,
    hub: ::mpi::Rank,
    first: u32,
    gate: &Gate,
    running: Duration,
) {
    let hub = comm.process_at_rank(hub);
    while hub.immediate_probe_with_tag(tags::CUT).is_some() {
        let (asked, _) = hub.receive_vec_with_tag::<u8>(tags::CUT);
        if asked[..] != first.to_le_bytes() {
            continue;
        }
        let answer = Answer {
            first,
            done: gate.cut(running >= SLOW),
            consumed: 0,
        };
        hub.send_with_tag(&answer.encode()[..], tags::CUT);
    }
}

/// Runs one task message (on the task thread), leaving one outcome per
/// item in `outcomes`; `Err` (nothing called) if the message cannot be
/// trusted. MPI carries messages whole: a result's bulk joins the
/// outcomes, and an [`Answer`] (which message, how many of its items ran:
/// those `may_start` allowed) ends them.
fn run_task(
    body: &mut Vec<u8>,
    secret: &Secret,
    outcomes: &mut Vec<u8>,
    may_start: &mut dyn FnMut() -> bool,
) -> Result<(), String> {
    let (header, _) = TaskHeader::decode(body).map_err(|e| e.into_error().to_string())?;
    let first = header.first;
    let mut bulk = Bulk::default();
    let ran = run_task_with_tail(body, &[], secret, outcomes, &mut bulk, may_start)?;
    outcomes.extend_from_slice(bulk.bytes());
    let answer = Answer {
        first,
        done: ran.done,
        consumed: ran.consumed as u64,
    };
    outcomes.extend_from_slice(&answer.encode());
    Ok(())
}
