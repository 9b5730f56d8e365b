//! Layer: process sys. May use: `process::sys::handover`,
//! `process::sys::unix::channel`, `process::sys::unix::passing`, std and
//! libc.
//! Starting a Unix worker: its two socket pairs, the answers' end and the
//! gate's page passed on the calls' end, its own process group; signalling
//! it and reaping it; the executable it is started from (see `unix.rs`).

use std::fs::{self};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::channel::ChannelEnd;
use super::passing::send_with_fd;
use crate::process::sys::handover::Page;

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
    // they never reach a `main`, as a worker serves before it (`process/constructor.rs`).
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

/// The identity of the file at `path`: device, inode and size.
pub(crate) fn file_identity(path: &Path) -> io::Result<[u64; 3]> {
    let file = fs::metadata(path)?;
    Ok([file.dev(), file.ino(), file.size()])
}

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
/// The executable a child is started from: the parent's own image.
pub(crate) fn executable() -> io::Result<std::path::PathBuf> {
    Ok(std::path::PathBuf::from("/proc/self/exe"))
}

#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
/// The executable a child is started from: the path this process was
/// started from. Unlike `/proc/self/exe`, the file there may have been
/// replaced since; the handshake's fingerprint then differs, and the
/// pool refuses the child (`Error::BrokenExecutor`).
pub(crate) fn executable() -> io::Result<std::path::PathBuf> {
    std::env::current_exe()
}
