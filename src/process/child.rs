//! Layer: process transport. May use the remote layer's `serve` and `call`,
//! and `frame`; no other transport. The child's side: how a run of the
//! program knows it is a process pool's child, and its endpoint for the
//! remote layer's serve loop. The crate's constructor (before `main`, see
//! `init.rs`) and [`init`](crate::init) call [`serve_if_child`].
//!
//! A child is a fresh run of the program, started by the pool with the
//! environment variable [`MARKER`] set to the pool's process id and the
//! private channel (one end of a socket pair) as its standard input. It
//! becomes a child that serves only if all of this holds:
//!
//! - the marker names its parent process (a grandchild that inherited the
//!   variable does not qualify);
//! - its standard input is a Unix socket whose peer is that parent
//!   ([`platform::peer_pid`]), so the variable alone, with a file or a
//!   terminal on standard input, does nothing;
//! - the handshake succeeds: same protocol version, same executable.
//!
//! The channel then moves to a close-on-exec descriptor and `/dev/null`
//! takes over standard input, so that neither a task reading stdin nor a
//! program the task starts can touch the channel. Standard output and error
//! stay the terminal's: a task's `println!` shows up as usual.

use std::env;
use std::fs::{self, File};
use std::io::{self, BufReader};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::parent_id;

use super::arena::Arena;
use super::frame::{self, FrameError};
use super::platform;
use crate::remote::call::Fingerprint;
use crate::remote::message::Kind;
use crate::remote::serve::{self, Endpoint};

/// The environment variable that marks a child; its value is the pool's pid.
pub(crate) const MARKER: &str = "CONCURRENT_FUTURES_WORKER";

/// If this run is a process pool's child, serves the pool and exits the
/// process; otherwise returns at once. `before_main`: called by the
/// constructor, before std's `main` prologue, whose one setting a worker
/// needs it makes here.
pub(crate) fn serve_if_child(before_main: bool) {
    let Some(pool) = spawned_by_pool() else {
        return;
    };
    if before_main {
        ignore_sigpipe();
    }
    let code = match serve_pool(pool) {
        Ok(()) => 0,
        Err(reason) => {
            eprintln!("concurrent-futures worker {}: {reason}", std::process::id());
            1
        }
    };
    std::process::exit(code);
}

/// This executable's fingerprint as the process pool measures it: the
/// identity of [`platform::executable`] (device, inode and size). While the
/// parent lives, its executable's inode cannot be reused or rewritten (Linux
/// refuses to write a running executable), so equal identities mean the
/// same bytes. The modification time is left out: `touch` changes it, not
/// the bytes, and would make every new worker a stranger. On the portable
/// path the file at the path may have been replaced; the code-layout half
/// of the fingerprint (see `remote::call`) still tells most rebuilds apart.
pub(crate) fn fingerprint() -> io::Result<Fingerprint> {
    let file = fs::metadata(platform::executable()?)?;
    Ok(Fingerprint::new([
        file.dev(),
        file.ino(),
        file.size(),
        u64::from_le_bytes(*b"file-id\0"),
    ]))
}

/// The pid of the pool that started this process as its child, if one did.
fn spawned_by_pool() -> Option<u32> {
    let pool: u32 = env::var(MARKER).ok()?.parse().ok()?;
    (pool == parent_id()).then_some(pool)
}

/// Serves the pool until it closes the channel.
fn serve_pool(pool: u32) -> Result<(), String> {
    let channel = take_channel(pool)?;
    let reader = platform::tie_to_pool(pool, &channel)?;
    let fingerprint = fingerprint().map_err(|e| format!("cannot identify the executable: {e}"))?;
    let mut endpoint = Channel {
        reader: BufReader::new(reader),
        writer: &channel,
        arena: None,
        lent: false,
    };
    serve::serve(&mut endpoint, fingerprint)
}

/// The child's end of the private channel, in frames.
struct Channel<'a> {
    reader: BufReader<platform::Reader>,
    writer: &'a UnixStream,
    /// The memory shared with the pool for big payloads, once one was
    /// needed (see `arena`).
    arena: Option<Arena>,
    /// Whether the task being served came with the arena lent: only then
    /// may its answer use it.
    lent: bool,
}

impl Endpoint for Channel<'_> {
    fn send(&mut self, kind: Kind, parts: &[&[u8]]) -> Result<(), String> {
        let sent = if std::mem::take(&mut self.lent) {
            frame::write_message(&mut self.writer, kind, parts, &mut self.arena)
        } else {
            frame::write_frame(&mut self.writer, kind, parts)
        };
        sent.map_err(|e| e.to_string())
    }

    fn receive(&mut self, body: &mut Vec<u8>, tail: &mut Vec<u8>) -> Result<Option<Kind>, String> {
        match frame::read_message(&mut self.reader, body, tail, &mut self.arena) {
            Ok((kind, lent)) => {
                self.lent = lent;
                Ok(Some(kind))
            }
            Err(FrameError::Closed) => Ok(None),
            Err(error) => Err(error.into_error().to_string()),
        }
    }
}

/// Ignores SIGPIPE, as std does before `main`: a task writing to a closed
/// pipe gets `EPIPE`, and a worker whose pool is gone fails to send rather
/// than die of the signal.
fn ignore_sigpipe() {
    // SAFETY: signal() with SIG_IGN installs no handler, only a disposition;
    // nothing else in this process depends on SIGPIPE's (std, later, would
    // set the same).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Takes the private channel off standard input; see the module docs.
fn take_channel(pool: u32) -> Result<UnixStream, String> {
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
    let channel = UnixStream::from(channel);
    check_peer(&channel, pool)?;
    Ok(channel)
}

/// Checks that `channel` is a Unix socket made by the pool process.
fn check_peer(channel: &UnixStream, pool: u32) -> Result<(), String> {
    let peer = platform::peer_pid(channel)
        .map_err(|e| format!("standard input is not the pool's private channel: {e}"))?;
    if peer != pool {
        return Err("standard input is a socket, but not one made by the pool".into());
    }
    Ok(())
}
