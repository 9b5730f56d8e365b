//! Layer: mpi. May use: `mpi::gate`, `mpi::tags`, `remote::function`, std,
//! crossbeam-channel and the mpi crate's point-to-point calls.
//! Whether a busy worker is alive, wherever it runs: heartbeats over MPI,
//! and nothing of a particular host (no `/proc`, no pid). Between the hub
//! and its workers: both sides use it.
//!
//! A worker runs each task on a thread of its own ([`TaskThread`]), while
//! its serving thread, the only one that calls MPI, sends the hub a
//! [`tags::HEARTBEAT`] every [`BEAT`] until the outcomes are ready. The
//! hub notes when it last heard from each busy worker ([`Heard`]): when
//! it handed it the work, and at each heartbeat. A busy worker silent for
//! [`SILENCE`] has died, or its host is unreachable: Open MPI 4 (without
//! its fault-tolerance extension, ULFM) offers no other way to learn it
//! that works across hosts. Its `MPI_ERRORS_RETURN` does not help: a send
//! to a dead rank over TCP hangs in a reconnect rather than fail, and in a
//! static world `mpiexec` kills the whole job, rank 0 included, unless it
//! runs with `--enable-recovery`.
//!
//! Short tasks send no heartbeat at all: one message per [`BEAT`] of a
//! running task is the whole cost on the wire. Meanwhile the serving
//! thread also looks, every [`LOOK`], for the hub asking it to cut the
//! task (a `map` chunk whose rest other ranks could run; see `gate`).

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ::mpi::Rank;
use ::mpi::point_to_point::{Destination, Source};
use ::mpi::request::StaticScope;
use ::mpi::topology::Communicator;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::gate::Gate;
use super::tags;
use crate::remote::function::Secret;

/// What the task thread runs on a task message: the worker's `run_task`
/// (over the remote layer's), outcomes out, asking the last argument before each
/// item whether it may start; or `Err` for a message it refuses.
type RunTask =
    fn(&mut Vec<u8>, &Secret, &mut Vec<u8>, &mut dyn FnMut() -> bool) -> Result<(), String>;

/// How often a rank running a task says it is alive.
pub(crate) const BEAT: Duration = Duration::from_millis(200);

/// How long a busy rank may stay silent before it is taken for dead:
/// many beats, so that a rank starved of its core for a moment on a busy
/// machine is not.
pub(crate) const SILENCE: Duration = Duration::from_secs(5);

/// How often the serving thread of a rank running a task looks for the
/// hub's requests (to cut the task), well within the hub's patience.
pub(crate) const LOOK: Duration = Duration::from_millis(1);

/// The thread of a worker rank that runs its tasks, so that the serving
/// thread can send heartbeats and answer the hub meanwhile.
pub(crate) struct TaskThread {
    todo: Sender<Vec<u8>>,
    done: Receiver<Result<Vec<u8>, String>>,
    /// Which items of the task running may start.
    gate: Arc<Gate>,
}

impl TaskThread {
    /// Starts the thread; `run` turns a task message into its outcomes, or
    /// refuses it.
    pub(crate) fn start(secret: Secret, run: RunTask) -> Result<Self, String> {
        let (todo, tasks) = crossbeam_channel::bounded::<Vec<u8>>(1);
        let (finished, done) = crossbeam_channel::bounded(1);
        let gate = Arc::new(Gate::default());
        let items = Arc::clone(&gate);
        thread::Builder::new()
            .name("concurrent-futures-mpi-task".into())
            .spawn(move || {
                for mut body in tasks {
                    let mut outcomes = Vec::new();
                    let may_start = &mut || items.start();
                    let ran = run(&mut body, &secret, &mut outcomes, may_start).map(|()| outcomes);
                    if finished.send(ran).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start the task thread: {e}"))?;
        Ok(TaskThread { todo, done, gate })
    }

    /// Runs one task message of `count` items, calling `beat` every
    /// [`BEAT`] and `look` every [`LOOK`] until its outcomes are ready,
    /// with the gate of its items and how long the item running has been
    /// seen running.
    pub(crate) fn run(
        &self,
        body: Vec<u8>,
        count: u32,
        mut beat: impl FnMut(),
        mut look: impl FnMut(&Gate, Duration),
    ) -> Result<Vec<u8>, String> {
        let gone = || "the task thread has stopped".to_owned();
        self.gate.open(count);
        self.todo.send(body).map_err(|_| gone())?;
        let mut beaten = Instant::now();
        let mut seen = (0, beaten);
        loop {
            match self.done.recv_timeout(LOOK) {
                Ok(ran) => return ran,
                Err(RecvTimeoutError::Timeout) => {
                    let started = self.gate.started();
                    if started != seen.0 {
                        seen = (started, Instant::now());
                    }
                    look(&self.gate, seen.1.elapsed());
                    if beaten.elapsed() >= BEAT {
                        beat();
                        beaten = Instant::now();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Err(gone()),
            }
        }
    }
}

/// Sends one heartbeat to rank `hub` of `comm`.
pub(crate) fn beat<C: Communicator>(comm: &C, hub: Rank) {
    comm.process_at_rank(hub)
        .send_with_tag(&[][..] as &[u8], tags::HEARTBEAT);
}

/// The body of a `STOP` that tells a rank to leave without
/// `MPI_Finalize`, which would wait for a dead rank for ever.
pub(crate) const ABANDON: &[u8] = b"a rank died";

/// How long [`stop_survivors`] gives its messages to leave.
const FAREWELL: Duration = Duration::from_secs(2);

/// At exit, tells each `(communicator, rank)` of groups on which a rank
/// has died to stop without finalizing MPI. Some may have died with it
/// (Open MPI aborts a whole spawned job unless `mpiexec` runs with
/// `--enable-recovery`), and a send to a dead rank over TCP can hang: so
/// the messages are sent without blocking, and the ones still unsent
/// after [`FAREWELL`], all together, are left to MPI, never waited for.
pub(crate) fn stop_survivors<'c, C: Communicator + 'c>(ranks: impl Iterator<Item = (&'c C, Rank)>) {
    let mut sending: Vec<_> = ranks
        .map(|(comm, rank)| {
            comm.process_at_rank(rank)
                .immediate_send_with_tag(StaticScope, ABANDON, tags::STOP)
        })
        .collect();
    let deadline = Instant::now() + FAREWELL;
    while !sending.is_empty() && Instant::now() < deadline {
        sending = sending
            .into_iter()
            .filter_map(|request| request.test().err())
            .collect();
        thread::sleep(Duration::from_millis(1));
    }
    // An unfinished request panics when dropped; these are left to MPI.
    sending.into_iter().for_each(std::mem::forget);
}

/// Whether Open MPI aborts every spawned job, not only its own, when a
/// spawned rank dies: it does unless it runs with recovery on
/// (`mpiexec --enable-recovery`, which sets the MCA parameter
/// `orte_enable_recovery` in the environment of the processes it starts;
/// a program run alone reads the same parameter). Measured with Open MPI
/// 4.1: run alone, a rank's `exit(3)` ended the ranks of every group that
/// program had spawned.
pub(crate) fn aborts_every_spawned_job() -> bool {
    let recovery = std::env::var("OMPI_MCA_orte_enable_recovery").unwrap_or_default();
    !matches!(
        recovery.to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on" | "enabled"
    )
}

/// Which communicator a worker is on, as the hub tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CommId {
    /// The communicator of the serving ranks every pool shares: the static
    /// world's, or the comm form's.
    World,
    /// The intercommunicator of the spawned group of this index.
    Group(usize),
}

/// When the hub last heard from each busy rank.
#[derive(Default)]
pub(crate) struct Heard(HashMap<(CommId, Rank), Instant>);

impl Heard {
    /// `rank` of `comm_id` is alive now: it was handed work, or it beat.
    pub(crate) fn alive(&mut self, comm_id: CommId, rank: Rank) {
        self.0.insert((comm_id, rank), Instant::now());
    }

    /// `rank` of `comm_id` answered: it is no longer watched.
    pub(crate) fn answered(&mut self, comm_id: CommId, rank: Rank) {
        self.0.remove(&(comm_id, rank));
    }

    /// Whether `rank` of `comm_id`, watched since it was handed work, has
    /// been silent for longer than [`SILENCE`].
    pub(crate) fn silent(&self, comm_id: CommId, rank: Rank) -> bool {
        self.0
            .get(&(comm_id, rank))
            .is_some_and(|last| last.elapsed() > SILENCE)
    }

    /// Receives every heartbeat that has arrived on `comm`.
    pub(crate) fn receive<C: Communicator>(&mut self, comm_id: CommId, comm: &C) {
        while let Some(status) = comm.any_process().immediate_probe_with_tag(tags::HEARTBEAT) {
            let rank = status.source_rank();
            let _: (Vec<u8>, _) = comm
                .process_at_rank(rank)
                .receive_vec_with_tag(tags::HEARTBEAT);
            self.alive(comm_id, rank);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_is_silent_only_once_watched_and_quiet_for_long() {
        let mut heard = Heard::default();
        assert!(
            !heard.silent(CommId::World, 1),
            "an unwatched rank is never silent"
        );
        heard.alive(CommId::World, 1);
        assert!(!heard.silent(CommId::World, 1));
        heard.0.insert(
            (CommId::World, 1),
            Instant::now() - SILENCE - Duration::from_millis(1),
        );
        assert!(heard.silent(CommId::World, 1));
        assert!(
            !heard.silent(CommId::Group(0), 1),
            "another communicator's rank 1"
        );
        heard.answered(CommId::World, 1);
        assert!(!heard.silent(CommId::World, 1));
    }

    /// Set once the test's look has cut the task.
    static CUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// An item that waits, once started, until [`CUT`] is set.
    const HOLD: u8 = 0xff;

    /// Echoes its body's items (its bytes after the first), stopping at
    /// one taken back; sleeps first if the first byte is 1.
    fn echo(
        body: &mut Vec<u8>,
        _: &Secret,
        out: &mut Vec<u8>,
        may_start: &mut dyn FnMut() -> bool,
    ) -> Result<(), String> {
        let body = std::mem::take(body);
        if body.first() == Some(&1) {
            thread::sleep(BEAT * 4);
        }
        for &byte in &body[1..] {
            if !may_start() {
                break;
            }
            out.push(byte);
            // ORDERING: Relaxed: a flag alone, nothing published with it.
            while byte == HOLD && !CUT.load(std::sync::atomic::Ordering::Relaxed) {
                thread::sleep(LOOK);
            }
        }
        Ok(())
    }

    #[test]
    fn a_long_task_beats_and_a_short_one_does_not() {
        let tasks = TaskThread::start(Secret([0; 2]), echo).unwrap();
        let mut beats = 0;
        assert_eq!(
            tasks.run(vec![0, 7], 1, || beats += 1, |_, _| {}),
            Ok(vec![7])
        );
        assert_eq!(beats, 0);
        assert_eq!(
            tasks.run(vec![1, 7], 1, || beats += 1, |_, _| {}),
            Ok(vec![7])
        );
        // About four; fewer if this thread was slow to wake.
        assert!((1..=4).contains(&beats), "{beats} beats");
    }

    #[test]
    fn a_look_while_the_task_runs_may_cut_it() {
        let tasks = TaskThread::start(Secret([0; 2]), echo).unwrap();
        let mut cut = 0;
        let look = |gate: &Gate, _| {
            if cut == 0 {
                cut = gate.cut(true);
                // ORDERING: Relaxed: see `echo`.
                CUT.store(cut > 0, std::sync::atomic::Ordering::Relaxed);
            }
        };
        let body = vec![0, 7, HOLD, 8, 9];
        let ran = tasks.run(body.clone(), 4, || {}, look).unwrap();
        // Cut after 7 or after the held item: what ran is what it says.
        assert!((1..=2).contains(&cut), "cut at {cut}");
        assert_eq!(ran, body[1..=cut as usize]);
    }
}
