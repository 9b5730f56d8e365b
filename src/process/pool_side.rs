//! Layer: process. May use: `error`, `process::arena`, `process::constructor`,
//! `process::frame`, `process::gate`, `process::sys`, `process::worker_side`,
//! `remote::function`, `remote::codec`, `remote::message`, `shared`. The pool's
//! side of the link to one worker (a child process; `worker_side` is the
//! other side): starting it, the handshake, calls over its channel
//! (several in flight, answered in order), and stopping it; its process's
//! [`Life`] and its [`Health`].
//!
//! Children are fresh runs of the executable (not `fork()` of a
//! multi-threaded parent): on Linux `/proc/self/exe`, which reaches the
//! executable this process started from even if the file was since rebuilt
//! or moved. The system calls that start, stop and reap a child are
//! `sys`'s (`sys/unix.rs` on Unix, `sys/windows/` on Windows); the lifecycle and
//! the protocol here are the same everywhere.
//!
//! A child's lifecycle ([`Life`]), under its [`Process`]'s lock:
//!
//! ```text
//!          set_running(Some(call)) / set_running(None)
//!              ┌──────┐
//!              ▼      │
//!   spawn ──▶ Running ┴──kill──▶ Killed(signal) ──reap──▶ Reaped(status, sent)
//!              │                                               ▲
//!              └──────────────────reap (it exited)─────────────┘
//! ```

use std::collections::HashSet;
use std::io::{self, BufReader};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::arena::Arena;
use super::constructor::can_serve;
use super::frame::{self, FrameError};
use super::gate::Gate;
use super::sys::{self, ChannelEnd, Descriptor, OsChild, Signal, Status};
use super::worker_side::MARKER;
use crate::Error;
use crate::remote::codec::Deferred;
use crate::remote::function::{Fingerprint, Initializer, Secret};
use crate::remote::message::{self, Answer, Hello, Kind, TaskHeader, Welcome};
use crate::shared::{self, Region, Wire};

/// Why a new worker may not greet the pool. A worker of this program
/// serves before `main` (checked before any spawn: `can_serve`), so either
/// the executable it was started from is not this program, or something
/// before our constructor held it up.
const NOT_A_WORKER: &str = "either this program runs under a wrapper (valgrind, an emulator, \
    a debugger) that runs in its place as its executable (/proc/self/exe on Linux) and so cannot \
    start workers (use a ThreadPoolExecutor there), or code that runs before main (another \
    crate's constructor) held the worker up";

/// How long a new worker may take to greet the pool.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every worker of one pool is started with.
#[derive(Debug)]
pub(crate) struct Recipe {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) secret: Secret,
    pub(crate) initializer: Option<Initializer>,
}

/// The parent's link to one live child: its process and channel, owned by
/// one dispatcher thread.
#[derive(Debug)]
pub(crate) struct Worker {
    reader: BufReader<ChannelEnd>,
    writer: ChannelEnd,
    pub(crate) process: Arc<Process>,
    /// The last frame received; the outcomes of the last call.
    body: Vec<u8>,
    /// How many of the outcomes' last bytes lie in the arena (see `answer`).
    in_arena: usize,
    /// Task frames to write together (see `send`).
    staged: Vec<u8>,
    /// The memory shared with this child for big payloads, once one was
    /// needed (see `arena`).
    arena: Option<Arena>,
    /// A new arena not handed over yet: it goes with the next task frame.
    handing: Option<Descriptor>,
    /// Whether it may take more calls (see [`Health`]).
    health: Health,
    /// Where this child starts the items sent to it (none: one call at a
    /// time, each claimed as it is sent).
    pub(crate) gate: Option<Arc<Gate>>,
    /// The number of the next item to send.
    next_item: u32,
    /// The last item this side allowed on the gate.
    allowed: u32,
    /// The ids of the shared values put in this child (see `share`).
    known: HashSet<u64>,
}

/// Whether a worker may take more calls. Its own record, changed only
/// here; with its process's [`Life`] it decides when the worker is
/// replaced ([`Worker::needs_replacing`]).
///
/// ```text
///                   send ──▶ calls + 1
///                   ┌─────┐
///                   ▼     │
///   start ──▶ Serving { calls } ──outcomes that did not decode──▶ Distrusted
///                   ▲     │                                     (killed when
///                   └─────┘                                       retired)
///                   took_back ──▶ calls - 1
/// ```
///
/// A serving worker is replaced, with nothing in flight, once its calls
/// reach `max_tasks_per_child` or a cancel killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// It takes calls; `calls` made so far, for `max_tasks_per_child`.
    Serving { calls: usize },
    /// It sent outcomes that did not decode: it gets no more calls.
    Distrusted,
}

/// Why a call did not return outcomes.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The deadline passed first.
    TimedOut,
    /// A task could not be sent: the worker had died.
    Undelivered,
    /// The worker is gone (or was killed); its exit status says how.
    Died,
    /// The worker broke the protocol.
    Protocol(Error),
}

impl Worker {
    /// Starts a worker and completes the handshake. `spawned` sees the
    /// process as soon as it exists, before the handshake (which runs the
    /// initializer, however long it takes), so that it can be killed.
    pub(crate) fn start(
        recipe: &Recipe,
        spawned: impl FnOnce(&Arc<Process>),
    ) -> Result<Worker, Error> {
        if !can_serve() {
            return Err(Error::InitMissing);
        }
        // Without a gate (no shared memory here), the pool sends one call at
        // a time: correct, only slower for tiny tasks. (Windows needs one.)
        let (gate, page) = match Gate::create() {
            Ok((gate, page)) => (Some(gate), Some(page)),
            Err(_) => (None, None),
        };
        let (child, reading, writing) = sys::launch(MARKER, page.as_ref()).map_err(spawn_failed)?;
        drop(page);
        let mut link = Worker {
            reader: BufReader::new(reading),
            writer: writing,
            process: Arc::new(Process {
                state: Mutex::new(ProcessState {
                    child,
                    life: Life::Running { call: None },
                }),
            }),
            body: Vec::new(),
            in_arena: 0,
            staged: Vec::new(),
            arena: None,
            handing: None,
            health: Health::Serving { calls: 0 },
            gate: gate.map(Arc::new),
            next_item: 1,
            allowed: 0,
            known: HashSet::new(),
        };
        spawned(&link.process);
        match link.handshake(recipe) {
            Ok(()) => Ok(link),
            Err(error) => {
                link.process.kill(sys::KILL);
                link.process.reap();
                Err(error)
            }
        }
    }

    /// Greets a new worker. A worker that dies or stalls while starting
    /// fails only the task it was started for ([`Error::SpawnFailed`]); a
    /// failure every worker would repeat (a different executable, an
    /// initializer that panics) breaks the pool ([`Error::BrokenExecutor`]).
    fn handshake(&mut self, recipe: &Recipe) -> Result<(), Error> {
        self.reader
            .get_mut()
            .set(Some(Instant::now() + HANDSHAKE_TIMEOUT));
        let hello = match frame::expect_frame(&mut self.reader, &mut self.body, Kind::Hello) {
            Ok(()) => Hello::decode(&self.body).map_err(message::Malformed::into_error)?,
            Err(FrameError::Io(e)) if is_timeout(&e) => {
                return Err(not_started(format!(
                    "a new worker did not greet the pool within {HANDSHAKE_TIMEOUT:?}; {NOT_A_WORKER}"
                )));
            }
            Err(_) => {
                let status = self.process.reap();
                return Err(not_started(format!(
                    "a new worker {} before greeting the pool; {NOT_A_WORKER}",
                    describe(status)
                )));
            }
        };
        if hello.fingerprint != recipe.fingerprint {
            return Err(broken(
                "a worker runs a different executable than the pool; refusing to send it tasks"
                    .into(),
            ));
        }
        let welcome = Welcome {
            fingerprint: recipe.fingerprint,
            secret: recipe.secret,
            initializer: recipe.initializer.as_ref().map(|init| init.function),
        };
        let arg = recipe
            .initializer
            .as_ref()
            .map_or(&[][..], |init| &init.arg);
        frame::write_frame(&mut self.writer, Kind::Welcome, &[&welcome.encode(), arg])
            .map_err(|e| not_started(format!("could not welcome a new worker: {e}")))?;
        // The initializer may take as long as it likes.
        self.reader.get_mut().set(None);
        match frame::expect_frame(&mut self.reader, &mut self.body, Kind::Ready) {
            Ok(()) => {
                match message::decode_ready(&self.body).map_err(message::Malformed::into_error)? {
                    Ok(()) => Ok(()),
                    Err(reason) => Err(broken(format!("a worker's initializer failed: {reason}"))),
                }
            }
            Err(_) => {
                let status = self.process.reap();
                Err(not_started(format!(
                    "a worker {} while starting up",
                    describe(status)
                )))
            }
        }
    }

    /// Numbers the `count` items of a call about to be sent: the number of
    /// the first. The child may start them once
    /// [`allow_sent`](Self::allow_sent) says so.
    pub(crate) fn number(&mut self, count: u32) -> u32 {
        let first = self.next_item;
        self.next_item = first.wrapping_add(count.max(1));
        first
    }

    /// Lets the child start every item numbered so far (one write for a
    /// batch of calls). `false` if items sent before were taken back since
    /// (a cancel): nothing more may start until the child has answered
    /// every call in flight (see [`resume`](Self::resume)).
    pub(crate) fn allow_sent(&mut self) -> bool {
        let last = self.next_item.wrapping_sub(1);
        let Some(gate) = &self.gate else {
            return true;
        };
        if self.allowed == last {
            return true;
        }
        let allowed = gate.allow(self.allowed, last);
        if allowed {
            self.allowed = last;
        }
        allowed
    }

    /// Its outcomes did not decode: the child gets no more calls, and is
    /// killed when retired.
    pub(crate) fn distrust(&mut self) {
        self.health = Health::Distrusted;
    }

    /// Whether the child must be replaced before its next call: a cancel
    /// killed it, it sent outcomes that did not decode, or it has served
    /// `max_calls` (`max_tasks_per_child`).
    pub(crate) fn needs_replacing(&self, max_calls: Option<usize>) -> bool {
        match self.health {
            Health::Distrusted => true,
            Health::Serving { calls } => {
                self.process.was_killed() || max_calls.is_some_and(|max| calls >= max)
            }
        }
    }

    /// A call sent to this child was taken back before it started: it does
    /// not count toward `max_tasks_per_child`.
    pub(crate) fn took_back(&mut self) {
        if let Health::Serving { calls } = &mut self.health {
            *calls = calls.saturating_sub(1);
        }
    }

    /// With every call answered, the child has passed every item sent:
    /// what was taken back no longer matters, and items may start again.
    pub(crate) fn resume(&mut self) {
        if let Some(gate) = &self.gate {
            self.allowed = gate.reset();
        }
    }

    /// Sends one task frame: the header, the encoded arguments, then the
    /// memory of a lone plain-vector argument, or the `placed` bytes of an
    /// argument that [`place`](Self::place) encoded into the arena. With
    /// `lend` (no other call in flight on this child), the frame lends the
    /// arena and goes out now, and big bytes through the arena; else it is
    /// staged, to go out with the others in one write at the next
    /// [`flush`](Self::flush). First the child is readied for the values
    /// of `shared` that the call uses ([`share`](Self::share)). The deadline
    /// covers sending: a worker that stops reading (stopped, or stuck) must
    /// not hold the call forever.
    pub(crate) fn send(
        &mut self,
        shared: &[Arc<shared::Inner>],
        header: &TaskHeader,
        [args, tail]: [&[u8]; 2],
        placed: Option<usize>,
        lend: bool,
        deadline: Option<Instant>,
    ) -> Result<(), Fault> {
        debug_assert!(lend || placed.is_none(), "placed in an arena not lent");
        self.share(shared, deadline)?;
        if let Health::Serving { calls } = &mut self.health {
            *calls += 1;
        }
        // The arena is about to be lent again: what it held is gone.
        self.in_arena = 0;
        let parts = [&header.encode()[..], args, tail];
        if !lend {
            frame::stage_frame(&mut self.staged, Kind::Task, &parts);
            return Ok(());
        }
        self.flush(deadline)?;
        self.writer.set(deadline);
        let (writer, handing) = (&mut self.writer, &mut self.handing);
        let sent = match placed {
            Some(len) => frame::write_placed(writer, Kind::Task, &parts, len, handing),
            None => frame::write_message(writer, Kind::Task, &parts, &mut self.arena, handing),
        };
        self.writer.set(None);
        sent.map_err(sending_fault)
    }

    /// How many bytes [`share`](Self::share) would write for `shared`: the
    /// values this child lacks (a value in shared memory: only its header).
    pub(crate) fn put_bytes(&self, shared: &[Arc<shared::Inner>]) -> usize {
        (shared.iter())
            .filter(|inner| !self.known.contains(&inner.id()))
            .filter_map(|inner| inner.wire().ok())
            .map(|wire| match wire {
                Wire::Mapped(_) => shared::PUT_HEADER,
                wire => shared::PUT_HEADER + wire.bytes().len(),
            })
            .sum()
    }

    /// Readies the child for a call whose arguments hold `shared` handles:
    /// tells it to drop the values it was put whose last handle is gone
    /// (staged, to go with the next frames), and puts in it each value of
    /// `shared` it does not have yet (now, after the staged frames). So a
    /// value crosses to each child at most once, and a child that replaces
    /// one gets it again.
    fn share(
        &mut self,
        shared: &[Arc<shared::Inner>],
        deadline: Option<Instant>,
    ) -> Result<(), Fault> {
        let gone = shared::gone(&mut self.known);
        if !gone.is_empty() {
            let body = shared::release_body(&gone);
            frame::stage_frame(&mut self.staged, Kind::Release, &[&body]);
        }
        for inner in shared {
            // A value that cannot be sent failed its task at `submit`.
            let Ok(wire) = inner.wire() else {
                continue;
            };
            if self.known.contains(&inner.id()) {
                continue;
            }
            self.flush(deadline)?;
            let header = shared::put_header(inner, &wire);
            self.writer.set(deadline);
            let sent = match wire {
                Wire::Mapped(region) => put_region(&mut self.writer, &header, region),
                _ => frame::write_frame(&mut self.writer, Kind::Put, &[&header, wire.bytes()]),
            };
            self.writer.set(None);
            sent.map_err(sending_fault)?;
            self.known.insert(inner.id());
        }
        Ok(())
    }

    /// Encodes a lone task's deferred argument straight into the arena, to
    /// be [`send`](Self::send)'s `placed` bytes, in a frame that lends the
    /// arena: call only with nothing in flight (the arena is then the
    /// pool's). `None` if there can be no arena here: the argument must be
    /// encoded into memory of its own. `Some(Err)`: its `Serialize` failed,
    /// the task's error; the arena still is as the child knows it, or a new
    /// one waits for the next task frame to hand it over.
    pub(crate) fn place(&mut self, deferred: &Deferred) -> Option<Result<usize, Error>> {
        let (arena, handing, len) = (&mut self.arena, &mut self.handing, deferred.size());
        let placed = frame::fill_arena(arena, handing, len, |into| deferred.encode_into(into))?;
        Some(placed.map(|()| len))
    }

    /// Writes the staged task frames, in one call if the channel takes them.
    pub(crate) fn flush(&mut self, deadline: Option<Instant>) -> Result<(), Fault> {
        if self.staged.is_empty() {
            return Ok(());
        }
        self.writer.set(deadline);
        let sent = frame::write_staged(&mut self.writer, &self.staged);
        self.writer.set(None);
        self.staged.clear();
        sent.map_err(sending_fault)
    }

    /// Waits, until `deadline`, for the answer to the oldest call in
    /// flight: which items ran, whose outcomes are left in `self.body`
    /// (after the answer) and in the arena (see [`answer`](Self::answer)).
    pub(crate) fn receive(&mut self, deadline: Option<Instant>) -> Result<Answer, Fault> {
        self.reader.get_mut().set(deadline);
        self.in_arena = 0;
        let read = frame::read_message(&mut self.reader, &mut self.body, &mut self.arena);
        match read {
            Ok(received) if received.kind == Kind::Outcomes => {
                self.in_arena = received.in_arena;
                Answer::decode(&self.body)
                    .map(|(answer, _)| answer)
                    .map_err(|malformed| Fault::Protocol(malformed.into_error()))
            }
            Ok(received) => Err(Fault::Protocol(Error::Protocol(format!(
                "the worker answered a task with a {:?} frame",
                received.kind
            )))),
            Err(FrameError::Io(e)) if is_timeout(&e) => Err(Fault::TimedOut),
            Err(FrameError::Closed | FrameError::Io(_)) => Err(Fault::Died),
            Err(error @ FrameError::Malformed(_)) => Err(Fault::Protocol(error.into_error())),
        }
    }

    /// Whether an answer has begun to arrive by `until` (bytes of it are
    /// here): waiting for it so never stops in the middle of one.
    pub(crate) fn answer_by(&mut self, until: Instant) -> bool {
        !self.reader.buffer().is_empty() || self.reader.get_ref().readable_by(until)
    }

    /// The outcomes of the answer just received, and their last bytes,
    /// where they came apart: in the arena, to decode in place. FunctionRef only
    /// before the next [`send`](Self::send): the arena is this side's until
    /// then (see `arena`), and the borrow of `self` makes sure the bytes
    /// are not used past it.
    pub(crate) fn answer(&self) -> (&[u8], &[u8]) {
        let outcomes = self.body.get(Answer::LEN..).unwrap_or_default();
        let tail = match &self.arena {
            Some(arena) => arena.view(self.in_arena),
            None => &[],
        };
        (outcomes, tail)
    }

    /// Lets the child finish: closing the channel makes it exit (a
    /// distrusted one is killed first). Waits for it.
    pub(crate) fn retire(self) {
        if self.health == Health::Distrusted {
            self.process.kill(sys::KILL);
        }
        let Worker {
            writer,
            reader,
            process,
            ..
        } = self;
        drop(writer);
        drop(reader);
        process.reap();
    }
}

/// Puts a shared value's memory in a child: its descriptor goes with the
/// frame (Linux).
#[cfg(unix)]
fn put_region(writer: &mut ChannelEnd, header: &[u8], region: &Region) -> io::Result<()> {
    frame::write_frame_with_fd(writer, Kind::Put, &[header], region.fd())
}

/// Elsewhere there is no shared memory to put.
#[cfg(windows)]
fn put_region(_: &mut ChannelEnd, _: &[u8], region: &Region) -> io::Result<()> {
    match *region {}
}

/// A worker's process: shared between its dispatcher and cancellers, which
/// kill it. Every kill happens under the lock, before the reap, so a pid
/// (and the process group of the same number) is never signalled after it
/// could have been reused.
///
/// The worker leads its own process group (on Windows: is alone in its
/// own Job object), and every signal goes to the whole group (ends the
/// whole job): whatever its tasks started (a shell, a `sleep`) ends with
/// it. When the worker ends, the rest of its group (job) is killed before
/// the worker is reaped, so nothing it left behind outlives it.
#[derive(Debug)]
pub(crate) struct Process {
    state: Mutex<ProcessState>,
}

#[derive(Debug)]
struct ProcessState {
    child: OsChild,
    life: Life,
}

/// Where a child is in its life; see the module's diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Running, and the number of the first item of the call it runs: the
    /// oldest in flight, if any.
    Running { call: Option<u32> },
    /// Signalled by the pool (a cancel, a timeout, a stop), not reaped yet;
    /// the last signal sent.
    Killed { signal: Signal },
    /// Waited for: how it ended, if that could be known (not when SIGCHLD
    /// is ignored, which discards exit statuses), and the last signal the
    /// pool sent it, if any.
    Reaped {
        status: Option<Status>,
        sent: Option<Signal>,
    },
}

impl Process {
    fn lock(&self) -> MutexGuard<'_, ProcessState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes which call the child runs now (by its first item), if any,
    /// while it runs.
    pub(crate) fn set_running(&self, first: Option<u32>) {
        if let Life::Running { call } = &mut self.lock().life {
            *call = first;
        }
    }

    /// Kills the child if it still runs the call whose first item is
    /// `first`: what cancelling a running task does.
    pub(crate) fn kill_if_running(&self, first: u32) {
        let mut state = self.lock();
        if state.life == (Life::Running { call: Some(first) }) {
            signal(&mut state, sys::KILL);
        }
    }

    /// Sends `sig` to the child's process group, unless it is already reaped.
    pub(crate) fn kill(&self, sig: Signal) {
        signal(&mut self.lock(), sig);
    }

    /// Whether the child has been reaped: it is gone.
    pub(crate) fn is_reaped(&self) -> bool {
        matches!(self.lock().life, Life::Reaped { .. })
    }

    /// Whether someone killed the child.
    fn was_killed(&self) -> bool {
        matches!(
            self.lock().life,
            Life::Killed { .. } | Life::Reaped { sent: Some(_), .. }
        )
    }

    /// Waits for the worker to exit, once, kills what is left of its
    /// process group, and returns how the worker ended.
    pub(crate) fn reap(&self) -> Option<Status> {
        let mut state = self.lock();
        if let Life::Reaped { status, .. } = state.life {
            return status;
        }
        // Under the lock that guards reaping: once, and never while a kill
        // could still be sent to the reaped child's reused id.
        let status = state.child.reap();
        let sent = match state.life {
            Life::Killed { signal } => Some(signal),
            _ => None,
        };
        state.life = Life::Reaped { status, sent };
        status
    }

    /// Reaps the worker and says how it died, as a task's error (see
    /// `sys::code_and_signal`).
    pub(crate) fn death(&self) -> Error {
        let status = self.reap();
        let sent = match self.lock().life {
            Life::Reaped { sent, .. } => sent,
            _ => None,
        };
        let (exit_code, signal) = sys::code_and_signal(status, sent);
        Error::WorkerDied { exit_code, signal }
    }
}

impl Drop for Process {
    /// A worker nobody retired (its dispatcher unwound, say) is killed and
    /// reaped here: no zombie, no orphan.
    fn drop(&mut self) {
        if !matches!(self.lock().life, Life::Reaped { .. }) {
            self.kill(sys::KILL);
            self.reap();
        }
    }
}

fn signal(state: &mut ProcessState, sig: Signal) {
    if let Life::Reaped { .. } = state.life {
        return;
    }
    state.life = Life::Killed { signal: sig };
    // Not reaped (checked above, under the lock that guards reaping).
    state.child.signal(sig);
}

fn describe(status: Option<Status>) -> String {
    status.map_or_else(|| "vanished".to_owned(), sys::describe)
}

/// A worker that did not start: this task fails, the pool goes on.
fn not_started(reason: String) -> Error {
    Error::SpawnFailed { reason }
}

/// A start-up failure that every worker would hit: the pool is broken.
fn broken(reason: String) -> Error {
    Error::BrokenExecutor { reason }
}

fn spawn_failed(error: io::Error) -> Error {
    Error::SpawnFailed {
        reason: error.to_string(),
    }
}

/// What a failed write to the child means.
fn sending_fault(error: io::Error) -> Fault {
    if is_timeout(&error) {
        Fault::TimedOut
    } else {
        Fault::Undelivered
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
