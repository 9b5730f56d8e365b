//! Layer: process sys. May use: `process::sys::handover`,
//! `process::sys::unix::passing`, std, libc and crossbeam-channel. The Unix half of the transport's system calls (the
//! Windows half is `sys/windows.rs`, with the same names; `mod.rs` lists them):
//! starting a child with its private channel, signalling and reaping it,
//! a channel end with a deadline, and the child's side of taking the
//! channel; and what differs between the Unixes the process pool runs on:
//! where the executable is, who holds the other end of a socket, and how a
//! child learns that its pool died. Descriptor passing is `unix/passing.rs`,
//! shared memory `unix/memory.rs`. The logic above these calls (`pool_side`,
//! `worker_side`) is the same on every platform.
//!
//! Two paths:
//!
//! - **Linux** uses what only Linux has: `/proc/self/exe`, which reaches
//!   the running image even if its file was since replaced, and
//!   `prctl(PR_SET_PDEATHSIG)`, so that the kernel signals a child whose
//!   pool dies, which then kills its process group (itself included).
//! - **The portable Unix path**, which macOS takes, and which Linux takes
//!   when built with `RUSTFLAGS="--cfg concurrent_futures_portable_unix"`
//!   (CI runs the process-pool suite so): [`std::env::current_exe`], and a
//!   watchdog thread that owns the read side of the child's channel
//!   ([`Watched`]). When the pool's end closes, the serve loop sees the end
//!   of the channel as on Linux, and if the pool died rather than retired
//!   this child, the watchdog ends the child at once, even mid-task, with
//!   its process group (see [`exit_with_group`]). That
//!   needs the pool's end of a channel
//!   to be in the pool alone: macOS has no `SOCK_CLOEXEC`, so a child
//!   spawned between a socket's creation and its close-on-exec flag would
//!   inherit it and keep it open; this crate's spawns are serialised
//!   ([`spawning`]), though a child that another thread of the program
//!   starts at that moment can still inherit one.
//!
//! [`peer_pid`] is the one call that differs by system on both paths:
//! `SO_PEERCRED` on Linux, `LOCAL_PEERPID` on macOS.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::handover::{Descriptor, Page, ReceiveFd, SendFd};
use passing::{receive, send_with_fd};

mod memory;
mod passing;

pub(crate) use memory::*;

pub(crate) use std::os::unix::process::parent_id;

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
pub(crate) use linux::*;
#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
pub(crate) use portable::*;

/// Held while a channel is made and a child spawned, so that no child of
/// this process starts between a socket's creation and its close-on-exec
/// flag. Linux sets the flag atomically and would not need it; macOS
/// cannot, and one rule for both costs a lock around a spawn.
pub(crate) fn spawning() -> MutexGuard<'static, ()> {
    static SPAWNING: Mutex<()> = Mutex::new(());
    SPAWNING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How the pool stops a child: a signal, sent to the child's whole
/// process group.
pub(crate) type Signal = libc::c_int;
/// What `kill_workers`, a cancel and a timeout send.
pub(crate) const KILL: Signal = libc::SIGKILL;
/// What `terminate_workers` sends.
pub(crate) const TERMINATE: Signal = libc::SIGTERM;
/// How a child ended.
pub(crate) type Status = ExitStatus;

/// A dead worker's exit code and signal, as `Error::WorkerDied` reports
/// them: from its exit status, or, when that was discarded (SIGCHLD
/// ignored), the signal the pool itself sent it, if any.
pub(crate) fn code_and_signal(
    status: Option<Status>,
    sent: Option<Signal>,
) -> (Option<i32>, Option<i32>) {
    (
        status.and_then(|s| s.code()),
        status
            .and_then(|s| s.signal())
            .or_else(|| status.is_none().then_some(sent).flatten()),
    )
}

/// How a child ended, in words.
pub(crate) fn describe(status: Status) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "ended".to_owned(),
    }
}

/// A started child: the leader of its own process group, not reaped yet
/// (its pid, and so its group's id, cannot be reused while this lives
/// unreaped).
#[derive(Debug)]
pub(crate) struct OsChild(Child);

/// Starts a run of [`executable`] as a child with `marker` set to this
/// process's pid and its private channel: two fresh socket pairs, one
/// each way. The child's end of the calls' pair is its standard input,
/// and the first bytes on it carry the child's end of the answers' pair.
/// Then comes the child's start gate's `page`, if the pool could make one
/// (one byte, with or without it). Returns the child with the pool's ends
/// (reader, writer).
///
/// One pair each way, not one pair both ways, because a Unix socket has
/// one wait queue for its readers and writers, and reading bytes wakes the
/// sender's socket's writers ("room to write"): on a shared pair, the
/// child reading a call woke the dispatcher waiting on that socket for the
/// answer, and the dispatcher reading the answer woke the child waiting for
/// its next call, for nothing. A serial round trip took 4.2 context
/// switches on Linux; with a pair each way, 2.0.
pub(crate) fn launch(
    marker: &str,
    page: Option<&Page>,
) -> io::Result<(OsChild, ChannelEnd, ChannelEnd)> {
    let spawning = spawning();
    let (calls, theirs) = UnixStream::pair()?;
    let (answers, answering) = UnixStream::pair()?;
    // Everything that can fail comes before the spawn. The answers' end
    // and the gate wait in the calls' socket until the child takes them;
    // if the child dies first, they go with the socket.
    send_with_fd(calls.as_fd(), &[0], answering.as_fd())?;
    drop(answering);
    match page {
        Some(page) => drop(send_with_fd(calls.as_fd(), &[1], page.as_fd())?),
        None => (&calls).write_all(&[0])?,
    }
    let mut command = Command::new(executable()?);
    // The caller's arguments, so that a task's `std::env::args` gives them;
    // they never reach a `main`, as a worker serves before it (`init.rs`).
    let mut args = std::env::args_os();
    if let Some(name) = args.next() {
        command.arg0(name);
    }
    command.args(args);
    let child = command
        .env(marker, std::process::id().to_string())
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        // Its own process group (setpgid in the child before exec), so
        // that stopping the worker stops whatever its tasks started too.
        .process_group(0)
        .spawn()?;
    // The command holds the child's end of the channel: drop it now, or
    // the channel would never report end-of-file when the child dies.
    drop(command);
    drop(spawning);
    Ok((
        OsChild(child),
        ChannelEnd::new(answers),
        ChannelEnd::new(calls),
    ))
}

impl OsChild {
    /// Sends `sig` to the child's process group. The caller guarantees the
    /// child is not reaped yet.
    pub(crate) fn signal(&mut self, sig: Signal) {
        let Ok(pid) = libc::pid_t::try_from(self.0.id()) else {
            return;
        };
        // SAFETY: kill(2) touches no memory of ours; `pid` is our own child,
        // not yet reaped (the caller's guarantee), so it still names that
        // process, and -pid the group it leads (it joined it before exec),
        // and no other.
        if unsafe { libc::kill(-pid, sig) } != 0 {
            // SAFETY: as above.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Waits for the child to exit, kills what is left of its process
    /// group, and reaps it. The caller calls this once.
    pub(crate) fn reap(&mut self) -> Option<Status> {
        if let Ok(pid) = libc::pid_t::try_from(self.0.id()) {
            // Wait for the exit but leave the worker a zombie: until it is
            // reaped, its pid, and so its group's id, cannot be reused.
            // (With SIGCHLD ignored there is no zombie; waitid then fails
            // and the group is left alone rather than risk a reused id.)
            let exited = loop {
                // SAFETY: siginfo_t is plain integers, for which all zeroes
                // is a valid value.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: `info` is a valid siginfo_t for waitid to fill in;
                // `pid` is our own unreaped child (the caller reaps once).
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
        self.0.wait().ok()
    }
}

/// One end of a worker's channel, with an optional deadline for its reads
/// or writes: the socket's own timeouts.
#[derive(Debug)]
pub(crate) struct ChannelEnd {
    stream: UnixStream,
    deadline: Option<Instant>,
    /// Whether the socket has a timeout set (a syscall to change).
    timeout_set: bool,
    /// A descriptor the child handed over (an arena), not yet taken.
    received: Option<OwnedFd>,
}

impl ChannelEnd {
    fn new(stream: UnixStream) -> Self {
        ChannelEnd {
            stream,
            deadline: None,
            timeout_set: false,
            received: None,
        }
    }

    /// Sets (or, with `None`, lifts) the deadline of the reads or writes
    /// that follow; past it they fail with a timeout.
    pub(crate) fn set(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Whether bytes can be read before `until` (or the channel closed):
    /// a wait that, unlike a read with a deadline, never stops in the
    /// middle of a frame.
    pub(crate) fn readable_by(&self, until: Instant) -> bool {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let millis = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
            let mut poll = libc::pollfd {
                fd: self.stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `poll` is one valid pollfd, for the call's duration,
            // of a descriptor we own.
            match unsafe { libc::poll(&mut poll, 1, millis) } {
                0 => return false,
                n if n > 0 => return true,
                _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                // A failing poll: let the read say what is wrong.
                _ => return true,
            }
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

impl Read for ChannelEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm(UnixStream::set_read_timeout)?;
        receive(self.stream.as_fd(), buf, &mut self.received)
    }
}

impl ReceiveFd for ChannelEnd {
    fn received_fd(&mut self) -> Option<Descriptor> {
        self.received.take()
    }
}

impl SendFd for ChannelEnd {
    fn send_fd(&mut self, bytes: &[u8], fd: &Descriptor) -> io::Result<usize> {
        self.arm(UnixStream::set_write_timeout)?;
        send_with_fd(self.stream.as_fd(), bytes, fd.as_fd())
    }
}

/// The child's writing end hands its arena over the same way.
impl SendFd for UnixStream {
    fn send_fd(&mut self, bytes: &[u8], fd: &Descriptor) -> io::Result<usize> {
        send_with_fd(self.as_fd(), bytes, fd.as_fd())
    }
}

impl Write for ChannelEnd {
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

/// The identity of the file at `path`: device, inode and size.
pub(crate) fn file_identity(path: &Path) -> io::Result<[u64; 3]> {
    let file = fs::metadata(path)?;
    Ok([file.dev(), file.ino(), file.size()])
}

/// What a child sets up before `main` that std would set up in `main`'s
/// prologue: it ignores SIGPIPE, as std does, so that a task writing to a
/// closed pipe gets `EPIPE`, and a worker whose pool is gone fails to send
/// rather than die of the signal.
pub(crate) fn before_main() {
    // SAFETY: signal() with SIG_IGN installs no handler, only a disposition;
    // nothing else in this process depends on SIGPIPE's (std, later, would
    // set the same).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Whether this process is a copy of a worker that a task made with
/// `fork()`, rather than the worker itself: set in the copy by a
/// `pthread_atfork` handler that [`watch_for_forks`] installs.
static FORKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes [`end_if_forked`] tell a worker from a copy that a task forked
/// off it.
pub(crate) fn watch_for_forks() {
    extern "C" fn in_the_copy() {
        // ORDERING: the copy has one thread, the one that forked; nothing
        // else reads the flag there.
        FORKED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // SAFETY: pthread_atfork only records the handler, a function that
    // stores to an atomic (async-signal-safe, as a fork child handler must
    // be); it runs in the copy of every later fork() of this process.
    unsafe { libc::pthread_atfork(None, None, Some(in_the_copy)) };
}

/// Ends a copy of the worker that a task made with `fork()` (see
/// [`watch_for_forks`]), at once and silently: only the worker itself
/// speaks on the channel, so no answer is ever sent twice, and no item of
/// the worker's runs again in the copy. In the worker, does nothing.
pub(crate) fn end_if_forked() {
    // ORDERING: see `watch_for_forks`; the flag is only ever set in the
    // copy, by the thread that then reads it.
    if FORKED.load(std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: _exit ends the process without running its exit hooks
        // (which would flush the worker's buffers in the copy's name); it
        // touches no memory of ours.
        unsafe { libc::_exit(0) };
    }
}

/// Gives this worker the signal set-up of a fresh program, whatever its
/// pool's was: a signal the pool ignored (which a child inherits, as
/// `nohup` relies on) takes its default action again, and no signal is
/// blocked. So `terminate_workers`' SIGTERM ends a worker even when the
/// program ignores SIGTERM, and a task's own processes start as they would
/// from the program. Three exceptions, each for a reason:
///
/// - SIGPIPE stays ignored (`before_main`), as std ignores it in `main`.
/// - SIGTTOU and SIGTTIN are ignored. A worker leads its own process group
///   (so that stopping it stops whatever its tasks started), which on a
///   terminal makes it a background job: without this, a task that writes
///   to the terminal with `stty tostop` set, or changes its settings
///   (`tcsetattr`), would stop the worker as a background job is stopped.
///   Ignored, the write or the change goes through, as it does from the
///   program; a task that reads the terminal (its standard input is
///   `/dev/null`, so only by opening `/dev/tty`) gets an error (`EIO`)
///   rather than stop. The processes a task starts inherit this.
/// - On Linux, the signal that says the pool died (`tie_to_pool`) is
///   caught, to end the worker with its process group.
pub(crate) fn worker_signals() {
    for signal in 1..=MAX_SIGNAL {
        // SAFETY: a zeroed `sigaction` is a valid value to fill in; the
        // query (a null new action) changes nothing, and a number that is
        // no signal (or one the C library keeps) just fails.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `action` is valid for writes.
        let queried = unsafe { libc::sigaction(signal, std::ptr::null(), &mut action) };
        if queried == 0 && action.sa_sigaction == libc::SIG_IGN {
            // SAFETY: SIG_DFL installs no handler, only a disposition.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    }
    for signal in [libc::SIGPIPE, libc::SIGTTOU, libc::SIGTTIN] {
        // SAFETY: SIG_IGN installs no handler, only a disposition.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    // SAFETY: a zeroed `sigset_t` is valid storage for sigemptyset to
    // initialise; pthread_sigmask reads it, and this is the worker's only
    // thread yet (it runs before the channel, and so any task, is set up).
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// The highest signal number to look at: Linux has 64 (the real-time
/// ones included), macOS 31; [`worker_signals`] skips the numbers that are
/// not signals here.
const MAX_SIGNAL: libc::c_int = 64;

/// Ends this worker, and first whatever its tasks started: the rest of the
/// process group the worker leads. So nothing a task started outlives its
/// worker, however the worker's end came (its pool retired it, or died;
/// on Linux `tie_to_pool`'s signal does the same mid-task). A task that
/// left in a group of its own (`setsid`) is spared.
///
/// Killing the group would kill the worker too, before it could exit
/// with `code` (and flush, and run what the C library runs at exit): so
/// the worker first moves into its parent's process group (the pool's,
/// or, if the pool died, whoever adopted the worker, if that group is in
/// the worker's session), and kills its own group from outside. Where it
/// cannot move, it kills the group with itself in it, after flushing
/// standard output.
pub(crate) fn exit_with_group(code: i32) -> ! {
    use std::io::Write as _;
    // SAFETY: getpid, getppid, getpgid and setpgid take and return plain
    // integers and touch no memory. Moving into the parent's group is
    // allowed only within the session; where it fails, nothing changed.
    let (group, moved) = unsafe {
        let group = libc::getpid();
        let theirs = libc::getpgid(libc::getppid());
        (
            group,
            theirs > 0 && theirs != group && libc::setpgid(0, theirs) == 0,
        )
    };
    if !moved {
        let _ = io::stdout().flush();
    }
    // SAFETY: kill(2) touches no memory. `group` is this process's pid,
    // which names the group it started as the leader of (the pool's
    // `process_group(0)`); the number cannot name another group while
    // this process lives.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    std::process::exit(code)
}

/// Runs the child's service: here, on the first thread, whose stack (8 MiB
/// by default on Linux and macOS) is what the remote layer's depth limits
/// assume a worker encodes on.
pub(crate) fn on_worker_stack<E>(serve: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
    serve()
}

/// How a child writes to its channel.
pub(crate) type ChildWriter = UnixStream;

/// The child's side: takes the private channel off standard input (a
/// close-on-exec copy; `/dev/null` takes descriptor 0) and the answers'
/// end that comes first on it, checks that the pool process made both, and
/// ties this child to the pool; then the start gate's page, if the pool
/// made one.
/// The marker's `rest` is empty on Unix.
pub(crate) fn take_channel(
    pool: u32,
    _rest: &str,
) -> Result<(Reader, ChildWriter, Option<Page>), String> {
    let stdin = io::stdin();
    // `try_clone_to_owned` duplicates with close-on-exec set.
    let channel = stdin
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("no private channel: {e}"))?;
    let null = File::open("/dev/null").map_err(|e| format!("cannot open /dev/null: {e}"))?;
    // SAFETY: both descriptors are open and owned here; dup2 atomically
    // replaces descriptor 0, which from now on nobody else uses as the channel.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(format!("dup2: {}", io::Error::last_os_error()));
    }
    let calls = UnixStream::from(channel);
    let made_by_pool = |socket: &UnixStream, what: &str| {
        let peer = peer_pid(socket)
            .map_err(|e| format!("{what} is not the pool's private channel: {e}"))?;
        match peer == pool {
            true => Ok(()),
            false => Err(format!("{what} is a socket, but not one made by the pool")),
        }
    };
    made_by_pool(&calls, "standard input")?;
    let mut received = None;
    let read = receive(calls.as_fd(), &mut [0], &mut received);
    let answers = match (read, received) {
        (Ok(1), Some(fd)) => UnixStream::from(fd),
        _ => return Err("the private channel did not start with its answers' end".into()),
    };
    made_by_pool(&answers, "the channel's answers' end")?;
    let mut received = None;
    let read = receive(calls.as_fd(), &mut [0], &mut received);
    let page = match (read, received) {
        (Ok(1), page) => page,
        _ => return Err("the private channel did not carry its start gate".into()),
    };
    let reader = tie_to_pool(pool, calls)?;
    Ok((reader, answers, page))
}

/// The pid of the process that made the other end of `channel`.
#[cfg(target_os = "linux")]
pub(crate) fn peer_pid(channel: &UnixStream) -> io::Result<u32> {
    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `credentials` and `len` are valid for writes, and `len` holds
    // the size of `credentials`, as SO_PEERCRED requires.
    let status = unsafe {
        libc::getsockopt(
            channel.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut credentials).cast(),
            &mut len,
        )
    };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(credentials.pid).map_err(|_| io::ErrorKind::InvalidData.into())
}

/// The pid of the process that made the other end of `channel`.
#[cfg(target_os = "macos")]
pub(crate) fn peer_pid(channel: &UnixStream) -> io::Result<u32> {
    let mut pid: libc::pid_t = 0;
    let mut len = size_of::<libc::pid_t>() as libc::socklen_t;
    // SAFETY: `pid` and `len` are valid for writes, and `len` holds the
    // size of `pid`, as LOCAL_PEERPID requires.
    let status = unsafe {
        libc::getsockopt(
            channel.as_raw_fd(),
            libc::SOL_LOCAL,
            libc::LOCAL_PEERPID,
            (&raw mut pid).cast(),
            &mut len,
        )
    };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    u32::try_from(pid).map_err(|_| io::ErrorKind::InvalidData.into())
}

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
mod linux {
    use std::io;
    use std::os::unix::net::UnixStream;
    use std::os::unix::process::parent_id;
    use std::path::PathBuf;

    /// The executable a child is started from: the parent's own image.
    pub(crate) fn executable() -> io::Result<PathBuf> {
        Ok(PathBuf::from("/proc/self/exe"))
    }

    /// How many bytes of calls the channel surely holds before the child
    /// reads them (see the dispatcher's `IN_FLIGHT_BYTES`): a Unix socket's
    /// buffer takes some 200 KiB on Linux.
    pub(crate) const UNREAD_BYTES: usize = 64 << 10;

    /// How a child reads its channel: directly, keeping a descriptor the
    /// pool hands over (an arena).
    pub(crate) type Reader = crate::process::sys::unix::passing::FdReader;

    /// Asks the kernel to signal this child when the pool's thread that
    /// started it ends (`PR_SET_PDEATHSIG`), even if the pool was killed
    /// with SIGKILL; the signal's handler kills the worker's whole process
    /// group, so whatever its task started dies too. Returns the reader for
    /// the channel.
    ///
    /// The signal is the last real-time one (`SIGRTMAX`), which no part
    /// of the worker uses otherwise: a task that changes its disposition
    /// undoes this (were it reset to its default, the worker alone would
    /// die).
    pub(crate) fn tie_to_pool(pool: u32, channel: UnixStream) -> Result<Reader, String> {
        let signal = libc::SIGRTMAX();
        // SAFETY: a zeroed `sigaction` is valid (no flags, an empty mask to
        // fill); `pool_died` is an `extern "C" fn(c_int)`, the handler
        // type that a zero `sa_flags` (no SA_SIGINFO) asks for, and it only
        // calls the async-signal-safe getpid and kill.
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = pool_died as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigfillset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if installed != 0 {
            return Err(format!("sigaction: {}", io::Error::last_os_error()));
        }
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and touches
        // no memory of this process.
        let status =
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) };
        if status != 0 {
            return Err(format!("prctl: {}", io::Error::last_os_error()));
        }
        if parent_id() != pool {
            return Err("the pool exited before this worker started".into());
        }
        Ok(Reader::new(channel))
    }

    /// The handler of `tie_to_pool`'s signal: the pool is gone, so the
    /// worker ends with everything its tasks started (the group it leads;
    /// see `exit_with_group`, which a worker whose channel closed takes).
    extern "C" fn pool_died(_: libc::c_int) {
        // SAFETY: getpid and kill are async-signal-safe and touch no
        // memory; the worker's pid names the group it leads.
        unsafe { libc::kill(-libc::getpid(), libc::SIGKILL) };
    }
}

#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
mod portable {
    use std::io::{self, Read};
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::os::unix::process::parent_id;
    use std::path::PathBuf;
    use std::time::Duration;
    use std::{env, thread};

    use crossbeam_channel::{Receiver, bounded};

    /// The executable a child is started from: the path this process was
    /// started from. Unlike `/proc/self/exe`, the file there may have been
    /// replaced since; the handshake's fingerprint then differs, and the
    /// pool refuses the child (`Error::BrokenExecutor`).
    pub(crate) fn executable() -> io::Result<PathBuf> {
        env::current_exe()
    }

    /// How many bytes of calls the channel surely holds before the child
    /// reads them (see the dispatcher's `IN_FLIGHT_BYTES`): macOS gives a
    /// Unix stream socket 8 KiB each way by default
    /// (`net.local.stream.sendspace`, `recvspace`).
    pub(crate) const UNREAD_BYTES: usize = 4 << 10;

    /// How a child reads its channel: through the watchdog.
    pub(crate) type Reader = Watched;

    /// How often the watchdog looks for its new parent once the channel
    /// has closed. Only then: while the pool holds the channel, it blocks.
    const ORPHAN_CHECK: Duration = Duration::from_millis(20);

    /// Starts the watchdog: from now on this child exits when its pool dies,
    /// even while a task runs. If the pool is already gone, that is at once.
    pub(crate) fn tie_to_pool(pool: u32, stream: UnixStream) -> Result<Reader, String> {
        // One chunk in hand and one queued: the pool sends one call at a
        // time, so this holds at most the end of one call's frame.
        let (chunks, received) = bounded(1);
        thread::Builder::new()
            .name("concurrent-futures-watchdog".into())
            .spawn(move || {
                let mut buffer = vec![0; 64 * 1024];
                loop {
                    // A descriptor (a shared value's memory) comes with the
                    // bytes it was sent with.
                    let mut fd = None;
                    match crate::process::sys::unix::passing::receive(
                        stream.as_fd(),
                        &mut buffer,
                        &mut fd,
                    ) {
                        Ok(0) => break,
                        Ok(n) => {
                            if chunks.send((buffer[..n].to_vec(), fd)).is_err() {
                                return; // the serve loop is done
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                // The pool closed the channel. If it retired this child, the
                // serve loop reads the rest and the end, and exits; if it
                // died, nobody wants the task that may be running: exit as
                // soon as the system has given this child a new parent,
                // with whatever the task started.
                drop(chunks);
                while parent_id() == pool {
                    thread::sleep(ORPHAN_CHECK);
                }
                crate::process::sys::unix::exit_with_group(0);
            })
            .map_err(|e| format!("cannot start the watchdog thread: {e}"))?;
        Ok(Watched {
            received,
            chunk: Vec::new(),
            at: 0,
            fd: None,
        })
    }

    /// The channel's bytes, as the watchdog thread read them, each chunk
    /// with the descriptor that came with it.
    #[derive(Debug)]
    pub(crate) struct Watched {
        received: Receiver<(Vec<u8>, Option<OwnedFd>)>,
        chunk: Vec<u8>,
        /// How much of `chunk` has been read.
        at: usize,
        /// The descriptor of the last chunk begun that had one (no arenas
        /// on this path: a shared value's memory).
        fd: Option<OwnedFd>,
    }

    impl crate::process::sys::handover::ReceiveFd for Watched {
        fn received_fd(&mut self) -> Option<OwnedFd> {
            self.fd.take()
        }
    }

    impl Read for Watched {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.chunk.len() {
                match self.received.recv() {
                    Ok((chunk, fd)) => {
                        self.chunk = chunk;
                        if fd.is_some() {
                            self.fd = fd;
                        }
                    }
                    Err(_) => return Ok(0), // the pool closed the channel
                }
                self.at = 0;
            }
            let n = buf.len().min(self.chunk.len() - self.at);
            buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }
}
