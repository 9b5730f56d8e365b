//! Layer: process transport. May use the remote layer's messages, `frame`,
//! `child`'s marker and `init::can_serve`. The parent's side of one
//! child process: starting it, the handshake, calls over its channel
//! (several in flight, answered in order), and stopping it.
//!
//! Children are fresh runs of [`platform::executable`] (not `fork()` of a
//! multi-threaded parent): on Linux `/proc/self/exe`, which reaches the
//! executable this process started from even if the file was since rebuilt
//! or moved.
//!
//! A child's lifecycle ([`Life`]), under its [`Process`]'s lock:
//!
//! ```text
//!            set_running(call) / set_running(0)
//!              ┌──────┐
//!              ▼      │
//!   spawn ──▶ Running ┴──kill──▶ Killed(signal) ──reap──▶ Reaped(status, sent)
//!              │                                               ▲
//!              └──────────────────reap (it exited)─────────────┘
//! ```

use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::arena::{self, Arena};
use super::child::MARKER;
use super::frame::{self, FrameError, ReceiveFd, SendFd};
use super::platform;
use crate::Error;
use crate::init::can_serve;
use crate::remote::call::{Call, Fingerprint, Secret};
use crate::remote::codec;
use crate::remote::message::{self, Hello, Kind, TaskHeader, Welcome};

/// Why a new worker may not greet the pool. A worker of this program
/// serves before `main` (checked before any spawn: `can_serve`), so either
/// [`platform::executable`] is not this program, or something before our
/// constructor held it up.
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
    pub(crate) initializer: Option<Call>,
}

/// The parent's link to one live child: its process and channel, owned by
/// one manager thread.
#[derive(Debug)]
pub(crate) struct ChildLink {
    reader: BufReader<Deadline>,
    writer: Deadline,
    pub(crate) process: Arc<Process>,
    /// The last frame received; the outcomes of the last call.
    pub(crate) body: Vec<u8>,
    /// The outcomes' last bytes, if they came through the arena.
    pub(crate) tail: Vec<u8>,
    /// Task frames to write together (see `send`).
    staged: Vec<u8>,
    /// The memory shared with this child for big payloads, once one was
    /// needed (see `arena`).
    arena: Option<Arena>,
    /// Calls made to this worker, for `max_tasks_per_child`.
    pub(crate) calls: usize,
    /// Whether it sent outcomes that did not decode: it gets no more calls.
    pub(crate) distrusted: bool,
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

impl ChildLink {
    /// Starts a worker and completes the handshake. `spawned` sees the
    /// process as soon as it exists, before the handshake (which runs the
    /// initializer, however long it takes), so that it can be killed.
    pub(crate) fn start(
        recipe: &Recipe,
        spawned: impl FnOnce(&Arc<Process>),
    ) -> Result<ChildLink, Error> {
        if !can_serve() {
            return Err(Error::InitMissing);
        }
        let spawning = platform::spawning();
        let (ours, theirs) = UnixStream::pair().map_err(spawn_failed)?;
        // Everything that can fail comes before the spawn: once the child
        // exists, only the handshake can fail, and that path reaps it.
        let reading = ours.try_clone().map_err(spawn_failed)?;
        let writing = ours;
        let mut command = Command::new(platform::executable().map_err(spawn_failed)?);
        if let Some(name) = std::env::args_os().next() {
            command.arg0(name);
        }
        let child = command
            .env(MARKER, std::process::id().to_string())
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            // Its own process group (setpgid in the child before exec), so
            // that stopping the worker stops whatever its tasks started too.
            .process_group(0)
            .spawn()
            .map_err(spawn_failed)?;
        // The command holds the child's end of the channel: drop it now, or
        // the channel would never report end-of-file when the child dies.
        drop(command);
        drop(spawning);
        let mut link = ChildLink {
            reader: BufReader::new(Deadline::new(reading)),
            writer: Deadline::new(writing),
            process: Arc::new(Process {
                state: Mutex::new(ProcessState {
                    child,
                    life: Life::Running { call: 0 },
                }),
            }),
            body: Vec::new(),
            tail: Vec::new(),
            staged: Vec::new(),
            arena: None,
            calls: 0,
            distrusted: false,
        };
        spawned(&link.process);
        match link.handshake(recipe) {
            Ok(()) => Ok(link),
            Err(error) => {
                link.process.kill(libc::SIGKILL);
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
        self.reader.get_mut().deadline = Some(Instant::now() + HANDSHAKE_TIMEOUT);
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
            initializer: recipe.initializer,
        };
        frame::write_frame(&mut self.writer, Kind::Welcome, &[&welcome.encode()])
            .map_err(|e| not_started(format!("could not welcome a new worker: {e}")))?;
        // The initializer may take as long as it likes.
        self.reader.get_mut().deadline = None;
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

    /// Sends one task frame: the header, the encoded arguments, then the
    /// bytes of a lone `Vec<u8>` argument. With `lend` (no other call in
    /// flight on this child), the frame lends the arena and goes out now,
    /// and big bytes through the arena; else it is staged, to go out with
    /// the others in one write at the next [`flush`](Self::flush). The
    /// deadline covers sending: a worker that stops reading (stopped, or
    /// stuck) must not hold the call forever.
    pub(crate) fn send(
        &mut self,
        header: &TaskHeader,
        [args, tail]: [&[u8]; 2],
        lend: bool,
        deadline: Option<Instant>,
    ) -> Result<(), Fault> {
        self.calls += 1;
        let parts = [&header.encode()[..], args, tail];
        if !lend {
            frame::stage_frame(&mut self.staged, Kind::Task, &parts);
            return Ok(());
        }
        self.flush(deadline)?;
        self.writer.deadline = deadline;
        let sent = frame::write_message(&mut self.writer, Kind::Task, &parts, &mut self.arena);
        self.writer.deadline = None;
        sent.map_err(sending_fault)
    }

    /// Writes the staged task frames, in one call if the channel takes them.
    pub(crate) fn flush(&mut self, deadline: Option<Instant>) -> Result<(), Fault> {
        if self.staged.is_empty() {
            return Ok(());
        }
        self.writer.deadline = deadline;
        let sent = frame::write_staged(&mut self.writer, &self.staged);
        self.writer.deadline = None;
        self.staged.clear();
        sent.map_err(sending_fault)
    }

    /// Waits, until `deadline`, for the outcomes of the oldest call in
    /// flight, which are left in `self.body` and `self.tail`.
    /// `Ok(Err(error))`: the outcomes arrived whole, and the child is fine,
    /// but the task fails with `error` (this process had no memory for its
    /// result's bytes).
    pub(crate) fn receive(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Result<(), Error>, Fault> {
        self.reader.get_mut().deadline = deadline;
        let read = frame::read_message(
            &mut self.reader,
            &mut self.body,
            &mut self.tail,
            &mut self.arena,
        );
        match read {
            Ok((Kind::Outcomes, _)) => Ok(Ok(())),
            Ok((kind, _)) => Err(Fault::Protocol(Error::Protocol(format!(
                "the worker answered a task with a {kind:?} frame"
            )))),
            Err(FrameError::Io(e)) if is_timeout(&e) => Err(Fault::TimedOut),
            Err(FrameError::Closed | FrameError::Io(_)) => Err(Fault::Died),
            Err(error @ FrameError::Malformed(_)) => Err(Fault::Protocol(error.into_error())),
            Err(FrameError::NoMemory(len)) => Ok(Err(codec::no_memory_for_result(len))),
        }
    }

    /// Lets the child finish: closing the channel makes it exit. Waits for it.
    pub(crate) fn retire(self) {
        let ChildLink {
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

/// A worker's process: shared between its manager and cancellers, which
/// kill it. Every kill happens under the lock, before the reap, so a pid
/// (and the process group of the same number) is never signalled after it
/// could have been reused.
///
/// The worker leads its own process group, and every signal goes to the
/// whole group: whatever its tasks started (a shell, a `sleep`) ends with
/// it. When the worker ends, the rest of its group is killed before the
/// worker is reaped, so nothing it left behind outlives it.
#[derive(Debug)]
pub(crate) struct Process {
    state: Mutex<ProcessState>,
}

#[derive(Debug)]
struct ProcessState {
    child: Child,
    life: Life,
}

/// Where a child is in its life; see the module's diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Running, and the number of the call it runs: the oldest in flight
    /// (0: none).
    Running { call: u64 },
    /// Signalled by the pool (a cancel, a timeout, a stop), not reaped yet;
    /// the last signal sent.
    Killed { signal: libc::c_int },
    /// Waited for: how it ended, if that could be known (not when SIGCHLD
    /// is ignored, which discards exit statuses), and the last signal the
    /// pool sent it, if any.
    Reaped {
        status: Option<ExitStatus>,
        sent: Option<libc::c_int>,
    },
}

impl Process {
    fn lock(&self) -> MutexGuard<'_, ProcessState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes that call `seq` is in flight (0: none), if the child runs.
    pub(crate) fn set_running(&self, seq: u64) {
        if let Life::Running { call } = &mut self.lock().life {
            *call = seq;
        }
    }

    /// Kills the child if call `seq` is still in flight on it: what
    /// cancelling a running task does.
    pub(crate) fn kill_if_running(&self, seq: u64) {
        let mut state = self.lock();
        if state.life == (Life::Running { call: seq }) {
            signal(&mut state, libc::SIGKILL);
        }
    }

    /// Sends `sig` to the child's process group, unless it is already reaped.
    pub(crate) fn kill(&self, sig: libc::c_int) {
        signal(&mut self.lock(), sig);
    }

    /// Whether someone killed the child.
    pub(crate) fn was_killed(&self) -> bool {
        matches!(
            self.lock().life,
            Life::Killed { .. } | Life::Reaped { sent: Some(_), .. }
        )
    }

    /// Waits for the worker to exit, once, kills what is left of its
    /// process group, and returns how the worker ended.
    pub(crate) fn reap(&self) -> Option<ExitStatus> {
        let mut state = self.lock();
        if let Life::Reaped { status, .. } = state.life {
            return status;
        }
        if let Ok(pid) = libc::pid_t::try_from(state.child.id()) {
            // Wait for the exit but leave the worker a zombie: until it is
            // reaped, its pid, and so its group's id, cannot be reused.
            // (With SIGCHLD ignored there is no zombie; waitid then fails
            // and the group is left alone rather than risk a reused id.)
            let exited = loop {
                // SAFETY: siginfo_t is plain integers, for which all zeroes
                // is a valid value.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: `info` is a valid siginfo_t for waitid to fill in;
                // `pid` is our own unreaped child (checked above, under the
                // lock that guards reaping).
                let status = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    )
                };
                match status {
                    0 => break true,
                    _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                    _ => break false,
                }
            };
            if exited {
                // SAFETY: kill(2) touches no memory of ours; the group id is
                // our unreaped worker's pid, so it names that group only.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
        }
        let status = state.child.wait().ok();
        let sent = match state.life {
            Life::Killed { signal } => Some(signal),
            _ => None,
        };
        state.life = Life::Reaped { status, sent };
        status
    }

    /// Reaps the worker and says how it died, as a task's error: its exit
    /// code or signal, or, when the exit status was discarded (SIGCHLD
    /// ignored), the signal the pool itself sent it, if any.
    pub(crate) fn death(&self) -> Error {
        let status = self.reap();
        let sent = match self.lock().life {
            Life::Reaped { sent, .. } => sent,
            _ => None,
        };
        Error::WorkerDied {
            exit_code: status.and_then(|s| s.code()),
            signal: status
                .and_then(|s| s.signal())
                .or_else(|| status.is_none().then_some(sent).flatten()),
        }
    }
}

impl Drop for Process {
    /// A worker nobody retired (its manager unwound, say) is killed and
    /// reaped here: no zombie, no orphan.
    fn drop(&mut self) {
        if !matches!(self.lock().life, Life::Reaped { .. }) {
            self.kill(libc::SIGKILL);
            self.reap();
        }
    }
}

fn signal(state: &mut ProcessState, sig: libc::c_int) {
    if let Life::Reaped { .. } = state.life {
        return;
    }
    state.life = Life::Killed { signal: sig };
    let Ok(pid) = libc::pid_t::try_from(state.child.id()) else {
        return;
    };
    // SAFETY: kill(2) touches no memory of ours; `pid` is our own child,
    // not yet reaped (checked above, under the lock that guards reaping),
    // so it still names that process, and -pid the group it leads (it
    // joined it before exec), and no other.
    if unsafe { libc::kill(-pid, sig) } != 0 {
        // SAFETY: as above.
        unsafe { libc::kill(pid, sig) };
    }
}

fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            _ => "ended".to_owned(),
        },
        None => "vanished".to_owned(),
    }
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

/// One end of a worker's channel, with an optional deadline for its reads
/// or writes.
#[derive(Debug)]
struct Deadline {
    stream: UnixStream,
    deadline: Option<Instant>,
    /// Whether the socket has a timeout set (a syscall to change).
    timeout_set: bool,
    /// A descriptor the child handed over (an arena), not yet taken.
    received: Option<OwnedFd>,
}

impl Deadline {
    fn new(stream: UnixStream) -> Self {
        Deadline {
            stream,
            deadline: None,
            timeout_set: false,
            received: None,
        }
    }

    /// Sets the socket's timeout (for reads or for writes, as `set` does)
    /// to what is left until the deadline.
    fn arm(&mut self, set: fn(&UnixStream, Option<Duration>) -> io::Result<()>) -> io::Result<()> {
        match self.deadline {
            None if self.timeout_set => {
                set(&self.stream, None)?;
                self.timeout_set = false;
            }
            None => {}
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                set(&self.stream, Some(left))?;
                self.timeout_set = true;
            }
        }
        Ok(())
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(UnixStream::set_read_timeout)?;
        arena::receive(self.stream.as_fd(), buf, &mut self.received)
    }
}

impl ReceiveFd for Deadline {
    fn received_fd(&mut self) -> Option<OwnedFd> {
        self.received.take()
    }
}

impl SendFd for Deadline {
    fn send_fd(&mut self, bytes: &[u8], fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.arm(UnixStream::set_write_timeout)?;
        arena::send_with_fd(self.stream.as_fd(), bytes, fd)
    }
}

impl Write for Deadline {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm(UnixStream::set_write_timeout)?;
        self.stream.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.arm(UnixStream::set_write_timeout)?;
        self.stream.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
