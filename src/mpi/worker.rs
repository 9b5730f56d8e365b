//! The rank's side: how [`init`](crate::init) recognises an MPI worker, and
//! the loop a worker rank runs.
//!
//! A run of the program is an MPI worker in one of two ways:
//!
//! - **spawned**: an [`MpiPoolExecutor`](super::MpiPoolExecutor) started it
//!   with `MPI_Comm_spawn`, passing [`WORKER_ARG`] as its only argument. It
//!   serves the parent over the parent intercommunicator.
//! - **a rank ≥ 1 of a static world**: the program runs under
//!   `mpiexec -n N` with N > 1 (Open MPI's `OMPI_COMM_WORLD_SIZE`/`_RANK`,
//!   or the `PMI_SIZE`/`PMI_RANK` of MPICH's Hydra). It serves rank 0 over
//!   `MPI_COMM_WORLD`. Rank 0 returns from `init` to run `main`, with the
//!   manager thread already started, so that the serving ranks are told to
//!   stop when rank 0's program ends, whether or not it used them.
//!
//! Either way the rank greets the manager ([`Hello`] with its
//! [`Fingerprint`]), checks the manager's [`Welcome`] (the same executable,
//! and the secret for task tags), reports `Ready`, and then answers each
//! task message with its outcomes until told to stop. It runs each task on
//! a thread of its own and sends heartbeats while the task runs, so that
//! the manager can tell a long task from a dead rank ([`liveness`]). A
//! task whose tag does not match is refused (every item gets an error);
//! nothing it names is called.

use std::env;

use ::mpi::point_to_point::{Destination, Source};
use ::mpi::topology::Communicator;

use super::liveness::{self, TaskThread};
use super::{Backoff, tags};
use crate::process::call::Fingerprint;
use crate::process::wire::{self, Hello, TaskHeader, Welcome};
use crate::{Error, panic};

/// The argument a spawned worker is started with.
pub(crate) const WORKER_ARG: &str = "--concurrent-futures-mpi-worker";

/// How this run of the program takes part in MPI, as far as the launcher's
/// environment and arguments tell before MPI is initialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Spawned by an `MpiPoolExecutor`: serve the parent.
    Spawned,
    /// Rank `rank` of a static world of `size > 1` processes.
    World { rank: usize, size: usize },
    /// Not launched as part of a larger MPI job.
    Alone,
}

impl Role {
    pub(crate) fn of_this_process() -> Role {
        if env::args_os().nth(1).is_some_and(|arg| arg == WORKER_ARG) {
            return Role::Spawned;
        }
        let number = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|name| env::var(name).ok()?.parse::<usize>().ok())
        };
        match (
            number(["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]),
            number(["OMPI_COMM_WORLD_RANK", "PMI_RANK"]),
        ) {
            (Some(size), Some(rank)) if size > 1 && rank < size => Role::World { rank, size },
            _ => Role::Alone,
        }
    }
}

/// Called by [`init`](crate::init): serves and exits if this run is an MPI
/// worker; on rank 0 of a static world starts the manager; otherwise does
/// nothing.
pub(crate) fn init() {
    let code = match Role::of_this_process() {
        Role::Alone => return,
        Role::World { rank: 0, .. } => {
            super::manager::start_for_world();
            return;
        }
        Role::Spawned => serve_spawned(),
        Role::World { .. } => serve_world(),
    };
    std::process::exit(code);
}

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

fn serve_spawned() -> i32 {
    let Some(universe) = ::mpi::initialize() else {
        return report(Err("MPI was already initialized".into()));
    };
    let Some(parent) = universe.world().parent() else {
        return report(Err(format!(
            "started with {WORKER_ARG}, but not spawned by an MpiPoolExecutor (no MPI parent)"
        )));
    };
    let result = serve(&parent);
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

fn serve_world() -> i32 {
    let Some(universe) = ::mpi::initialize() else {
        return report(Err("MPI was already initialized".into()));
    };
    let result = serve(&universe.world());
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

/// Serves rank 0 of `comm` until it says stop.
fn serve<C: Communicator>(comm: &C) -> Result<Finalize, String> {
    panic::install_hook();
    let manager = comm.process_at_rank(0);
    let fingerprint = Fingerprint::of_executable_contents()
        .map_err(|e| format!("cannot identify the executable: {e}"))?;
    manager.send_with_tag(&Hello { fingerprint }.encode()[..], tags::HELLO);
    // So that a parent on the same host can tell when this rank has died.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let place = format!("{} {}", std::process::id(), host.trim());
    manager.send_with_tag(place.as_bytes(), tags::WHERE);
    let (body, _) = manager.receive_vec_with_tag::<u8>(tags::WELCOME);
    let welcome = Welcome::decode(&body).map_err(|e| e.into_error().to_string());
    let ready = match &welcome {
        Ok(welcome) if welcome.fingerprint != fingerprint => {
            Err("this rank runs a different build of the program than rank 0 (their executables differ); refusing its tasks".into())
        }
        Ok(_) => Ok(()),
        Err(reason) => Err(reason.clone()),
    };
    let reason = ready.as_ref().err().map_or(&[][..], |r| r.as_bytes());
    manager.send_with_tag(reason, tags::READY);
    ready?;
    let secret = welcome.expect("checked above").secret;
    let tasks = TaskThread::start(secret, run_task)?;

    let mut backoff = Backoff::default();
    loop {
        // Polling with a backoff, not a blocking probe: Open MPI's blocking
        // calls spin, which would steal the core an oversubscribed rank
        // shares with the others.
        // A probe, then a receive of what it found (not a matched probe:
        // see `manager::receive_outcomes`).
        let Some(status) = manager.immediate_probe() else {
            backoff.pause();
            continue;
        };
        backoff.reset();
        let (body, status) = manager.receive_vec_with_tag::<u8>(status.tag());
        match status.tag() {
            tags::TASK => {}
            tags::STOP if body.is_empty() => return Ok(Finalize::Yes),
            tags::STOP => return Ok(Finalize::No),
            other => return Err(format!("unexpected message with tag {other}")),
        }
        let outcomes = tasks.run(body, || liveness::beat(comm))?;
        manager.send_with_tag(&outcomes[..], tags::OUTCOMES);
    }
}

/// Runs one task message, leaving one outcome per item in `outcomes`.
fn run_task(body: &mut Vec<u8>, secret: &crate::process::call::Secret, outcomes: &mut Vec<u8>) {
    let (header, _) = match TaskHeader::decode(body) {
        Ok(decoded) => decoded,
        Err(error) => {
            // Without a header there is no count: one error outcome, which
            // the manager reports for the whole message.
            wire::encode_outcome::<()>(Err(error.into_error()), outcomes);
            return;
        }
    };
    let refuse = |reason: String, outcomes: &mut Vec<u8>| {
        outcomes.clear();
        for _ in 0..header.count {
            wire::encode_outcome::<()>(Err(Error::Protocol(reason.clone())), outcomes);
        }
    };
    if header.tag != header.call.tag(secret) {
        refuse(
            "the rank refused a task whose tag does not match: it did not come from this pool"
                .into(),
            outcomes,
        );
        return;
    }
    // SAFETY: the fingerprints (contents and code layout of the executable)
    // matched at the handshake, and the tag proves that the manager holding
    // this session's secret made this call with `Call::of` (see
    // `process::call`).
    let invoked = unsafe {
        header
            .call
            .invoke(header.count, body, TaskHeader::LEN, outcomes)
    };
    if let Err(reason) = invoked {
        outcomes.clear();
        for _ in 0..header.count {
            wire::encode_outcome::<()>(Err(Error::Serialization(reason.clone())), outcomes);
        }
    }
}
