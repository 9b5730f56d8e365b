//! Layer: process sys. May use: `process::sys::handover`,
//! `process::sys::unix::passing`, std, libc and crossbeam-channel.
//! A Unix worker's side: taking its channel off standard input and
//! checking who made it, dying with its pool (Linux: `PR_SET_PDEATHSIG`;
//! the portable path: a watchdog thread), its signals, ending copies that
//! a task forked, and how it exits with its process group.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;

use super::passing::{receive, send_with_fd};
use crate::process::sys::handover::{Descriptor, Page, SendFd};

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
pub(crate) use linux::*;
#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
pub(crate) use portable::*;

/// The child's writing end hands its arena over the same way.
impl SendFd for UnixStream {
    fn send_fd(&mut self, bytes: &[u8], fd: &Descriptor) -> io::Result<usize> {
        send_with_fd(self.as_fd(), bytes, fd.as_fd())
    }
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
    use std::thread;
    use std::time::Duration;

    use crossbeam_channel::{Receiver, bounded};

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
                crate::process::sys::unix::worker_side::exit_with_group(0);
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
