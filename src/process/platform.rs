//! Layer: process transport, at its bottom. May use `std`, `libc`,
//! `crossbeam-channel`, and `arena`'s reader and `frame`'s trait for it only. What differs between the Unixes the process
//! pool runs on: where the executable is, who holds the other end of a
//! socket, and how a child learns that its pool died. The rest of the
//! transport is the same on Linux and macOS.
//!
//! Two paths:
//!
//! - **Linux** uses what only Linux has: `/proc/self/exe`, which reaches
//!   the running image even if its file was since replaced, and
//!   `prctl(PR_SET_PDEATHSIG)`, so that the kernel kills a child whose pool
//!   dies.
//! - **The portable Unix path**, which macOS takes, and which Linux takes
//!   when built with `RUSTFLAGS="--cfg concurrent_futures_portable_unix"`
//!   (CI runs the process-pool suite so): [`std::env::current_exe`], and a
//!   watchdog thread that owns the read side of the child's channel
//!   ([`Watched`]). When the pool's end closes, the serve loop sees the end
//!   of the channel as on Linux, and if the pool died rather than retired
//!   this child, the watchdog ends the child at once, even mid-task. That
//!   needs the pool's end of a channel
//!   to be in the pool alone: macOS has no `SOCK_CLOEXEC`, so a child
//!   spawned between a socket's creation and its close-on-exec flag would
//!   inherit it and keep it open; this crate's spawns are serialised
//!   ([`spawning`]), though a child that another thread of the program
//!   starts at that moment can still inherit one.
//!
//! [`peer_pid`] is the one call that differs by system on both paths:
//! `SO_PEERCRED` on Linux, `LOCAL_PEERPID` on macOS.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard, PoisonError};

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

    /// How a child reads its channel: directly, keeping a descriptor the
    /// pool hands over (an arena).
    pub(crate) type Reader = super::super::arena::FdReader;

    /// Asks the kernel to kill this child when the pool's thread that
    /// started it ends, so no child outlives the pool, even one killed with
    /// SIGKILL; returns the reader for the channel.
    pub(crate) fn tie_to_pool(pool: u32, channel: &UnixStream) -> Result<Reader, String> {
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and touches
        // no memory of this process.
        let status = unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        if status != 0 {
            return Err(format!("prctl: {}", io::Error::last_os_error()));
        }
        if parent_id() != pool {
            return Err("the pool exited before this worker started".into());
        }
        channel
            .try_clone()
            .map(Reader::new)
            .map_err(|e| format!("cannot read the private channel: {e}"))
    }
}

#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
mod portable {
    use std::io::{self, Read};
    use std::os::unix::net::UnixStream;
    use std::os::unix::process::parent_id;
    use std::path::PathBuf;
    use std::time::Duration;
    use std::{env, process, thread};

    use crossbeam_channel::{Receiver, bounded};

    /// The executable a child is started from: the path this process was
    /// started from. Unlike `/proc/self/exe`, the file there may have been
    /// replaced since; the handshake's fingerprint then differs, and the
    /// pool refuses the child (`Error::BrokenExecutor`).
    pub(crate) fn executable() -> io::Result<PathBuf> {
        env::current_exe()
    }

    /// How a child reads its channel: through the watchdog.
    pub(crate) type Reader = Watched;

    /// How often the watchdog looks for its new parent once the channel
    /// has closed. Only then: while the pool holds the channel, it blocks.
    const ORPHAN_CHECK: Duration = Duration::from_millis(20);

    /// Starts the watchdog: from now on this child exits when its pool dies,
    /// even while a task runs. If the pool is already gone, that is at once.
    pub(crate) fn tie_to_pool(pool: u32, channel: &UnixStream) -> Result<Reader, String> {
        let mut stream = channel
            .try_clone()
            .map_err(|e| format!("cannot read the private channel: {e}"))?;
        // One chunk in hand and one queued: the pool sends one call at a
        // time, so this holds at most the end of one call's frame.
        let (chunks, received) = bounded(1);
        thread::Builder::new()
            .name("concurrent-futures-watchdog".into())
            .spawn(move || {
                let mut buffer = vec![0; 64 * 1024];
                loop {
                    match stream.read(&mut buffer) {
                        Ok(0) => break,
                        Ok(n) => {
                            if chunks.send(buffer[..n].to_vec()).is_err() {
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
                // soon as the system has given this child a new parent.
                drop(chunks);
                while parent_id() == pool {
                    thread::sleep(ORPHAN_CHECK);
                }
                process::exit(0);
            })
            .map_err(|e| format!("cannot start the watchdog thread: {e}"))?;
        Ok(Watched {
            received,
            chunk: Vec::new(),
            at: 0,
        })
    }

    /// The channel's bytes, as the watchdog thread read them.
    #[derive(Debug)]
    pub(crate) struct Watched {
        received: Receiver<Vec<u8>>,
        chunk: Vec<u8>,
        /// How much of `chunk` has been read.
        at: usize,
    }

    /// The pool hands no descriptors over on this path (no arenas).
    impl crate::process::frame::ReceiveFd for Watched {
        fn received_fd(&mut self) -> Option<std::os::fd::OwnedFd> {
            None
        }
    }

    impl Read for Watched {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.chunk.len() {
                match self.received.recv() {
                    Ok(chunk) => self.chunk = chunk,
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
