//! The worker side: [`init`], and the loop a worker process runs.
//!
//! A worker is a fresh run of the program, started by the pool with the
//! environment variable [`MARKER`] set to the pool's process id and the
//! private channel (one end of a socket pair) as its standard input. It
//! becomes a worker only if all of this holds:
//!
//! - the marker names its parent process (a grandchild that inherited the
//!   variable does not qualify);
//! - its standard input is a Unix socket whose peer is that parent
//!   (`SO_PEERCRED`), so the variable alone, with a file or a terminal on
//!   standard input, does nothing;
//! - the handshake succeeds: same protocol version, same executable.
//!
//! The channel then moves to a close-on-exec descriptor and `/dev/null`
//! takes over standard input, so that neither a task reading stdin nor a
//! program the task starts can touch the channel. Standard output and error
//! stay the terminal's: a task's `println!` shows up as usual.

use std::env;
use std::fs::File;
use std::io::{self, BufReader};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::parent_id;
use std::sync::atomic::{AtomicBool, Ordering};

use super::call::Fingerprint;
use super::wire::{self, Hello, Kind, TaskHeader, Welcome, WireError};
use crate::{Error, panic};

/// The environment variable that marks a worker; its value is the pool's pid.
pub(crate) const MARKER: &str = "CONCURRENT_FUTURES_WORKER";

static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// Turns this run of the program into a process-pool worker, if it is one;
/// otherwise returns at once. Make it the first line of `main`.
///
/// This is the Rust form of Python's `if __name__ == "__main__":` guard. A
/// [`ProcessPoolExecutor`](crate::ProcessPoolExecutor) starts its workers
/// by running your program again; in such a run `init()` serves tasks and
/// exits the process when the pool is done with it, so the rest of `main`
/// never runs there. In your own run it only notes that it was called: a
/// pool refuses to start workers otherwise, with [`Error::InitMissing`],
/// instead of running `main` again and again.
///
/// Tests need a `main` of their own for this: a test target with
/// `harness = false` whose `main` calls `init()` first.
///
/// ```
/// fn main() {
///     concurrent_futures::init();
///     // ... the program, which may use a ProcessPoolExecutor
/// }
/// ```
// The example is about `main` itself. (A top-level `main();` would silence
// this lint but make rustdoc warn that the doctest's main is not run.)
#[allow(clippy::needless_doctest_main)]
pub fn init() {
    // ORDERING: only this thread's later pool creation reads it, or threads
    // started after it, which synchronise with this one.
    INIT_CALLED.store(true, Ordering::Relaxed);
    let Some(pool) = spawned_by_pool() else {
        // Not a process-pool worker: perhaps an MPI worker rank, which
        // serves and exits here too.
        #[cfg(feature = "mpi")]
        crate::mpi::worker::init();
        return;
    };
    let code = match serve(pool) {
        Ok(()) => 0,
        Err(reason) => {
            eprintln!("concurrent-futures worker {}: {reason}", std::process::id());
            1
        }
    };
    std::process::exit(code);
}

/// Whether [`init`] was called in this process.
pub(crate) fn init_called() -> bool {
    INIT_CALLED.load(Ordering::Relaxed)
}

/// The pid of the pool that started this process as a worker, if one did.
fn spawned_by_pool() -> Option<u32> {
    let pool: u32 = env::var(MARKER).ok()?.parse().ok()?;
    (pool == parent_id()).then_some(pool)
}

/// Serves the pool until it closes the channel.
fn serve(pool: u32) -> Result<(), String> {
    die_with(pool)?;
    let channel = take_channel(pool)?;
    panic::install_hook();
    let fingerprint = Fingerprint::of_this_process()
        .map_err(|e| format!("cannot identify the executable: {e}"))?;
    let mut reader = BufReader::new(&channel);
    let mut writer = &channel;
    let mut body = Vec::new();
    let fail = |error: WireError| error.into_error().to_string();

    wire::write_frame(&mut writer, Kind::Hello, &[&Hello { fingerprint }.encode()])
        .map_err(|e| format!("cannot greet the pool: {e}"))?;
    wire::expect_frame(&mut reader, &mut body, Kind::Welcome).map_err(fail)?;
    let welcome = Welcome::decode(&body).map_err(fail)?;
    if welcome.fingerprint != fingerprint {
        return Err("the pool runs a different executable; refusing its tasks".into());
    }
    let ready = match welcome.initializer {
        // SAFETY: the call came in the Welcome, over the channel from our
        // parent, which runs this same executable (fingerprints match).
        Some(initializer) => unsafe { initializer.invoke_initializer() },
        None => Ok(()),
    };
    let reason = ready
        .as_ref()
        .err()
        .map_or(&[][..], |reason| reason.as_bytes());
    wire::write_frame(&mut writer, Kind::Ready, &[reason])
        .map_err(|e| format!("cannot report ready: {e}"))?;
    ready?;

    let mut outcomes = Vec::new();
    loop {
        match wire::read_frame(&mut reader, &mut body) {
            Ok(Kind::Task) => {}
            Ok(kind) => return Err(format!("unexpected {kind:?} frame")),
            Err(WireError::Closed) => return Ok(()),
            Err(error) => return Err(fail(error)),
        }
        let (header, _) = TaskHeader::decode(&body).map_err(fail)?;
        if header.tag != header.call.tag(&welcome.secret) {
            return Err(
                "refused a task whose tag does not match: it did not come from this pool".into(),
            );
        }
        outcomes.clear();
        // SAFETY: the fingerprints matched at the handshake and the tag
        // proves the pool made this call with `Call::of` (see `call`).
        if let Err(reason) = unsafe {
            header
                .call
                .invoke(header.count, &mut body, TaskHeader::LEN, &mut outcomes)
        } {
            outcomes.clear();
            for _ in 0..header.count {
                wire::encode_outcome::<()>(
                    Err(Error::Serialization(reason.clone())),
                    &mut outcomes,
                );
            }
        }
        wire::write_frame(&mut writer, Kind::Outcomes, &[&outcomes])
            .map_err(|e| format!("cannot send results: {e}"))?;
    }
}

/// Asks the kernel to kill this process when the pool's thread that started
/// it ends, so no worker outlives the pool, even one killed with SIGKILL.
fn die_with(pool: u32) -> Result<(), String> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and touches no
    // memory of this process.
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
    Ok(())
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
    let mut credentials = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
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
        return Err(format!(
            "standard input is not the pool's private channel: {}",
            io::Error::last_os_error()
        ));
    }
    if u32::try_from(credentials.pid) != Ok(pool) {
        return Err("standard input is a socket, but not one made by the pool".into());
    }
    Ok(())
}
