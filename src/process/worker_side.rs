//! Layer: process. May use: `process::arena`, `process::frame`,
//! `process::gate`, `process::sys`, `remote::function`, `remote::codec`,
//! `remote::message`, `remote::serve`, `shared`. The worker's side of the
//! link (`pool_side` is the pool's): how a run of the program knows it is
//! a process pool's child, and its endpoint for the remote layer's serve
//! loop. The crate's constructor (before `main`) and
//! [`init`](crate::init) call [`serve_if_child`], both through `constructor`.
//!
//! A child is a fresh run of the program, started by the pool with the
//! program's own arguments (for its tasks' `std::env::args`), the
//! environment variable [`MARKER`] set to the pool's process id (on
//! Windows followed by the values of the channel's two handles and of the
//! start gate's section) and the
//! private channel: on Unix two socket pairs, one each way, the calls'
//! end as its standard input, whose first bytes carry the answers' end; on
//! Windows two anonymous pipes' ends that only this child inherited. It
//! becomes a child that serves only if all of this holds:
//!
//! - the marker names its parent process (a grandchild that inherited the
//!   variable does not qualify);
//! - the channel is what the pool makes: on Unix, standard input is a Unix
//!   socket whose peer is that parent, and so is the answers' end, so the
//!   variable alone, with a file or a terminal on standard input, does
//!   nothing; on Windows, both handles are pipes;
//! - the handshake succeeds: same protocol version, same executable.
//!
//! The channel then moves out of reach of the task's own code: on Unix to
//! a close-on-exec descriptor, with `/dev/null` on standard input; on
//! Windows its handles stop being inheritable (standard input is `NUL`
//! already). So neither a task reading stdin nor a program the task starts
//! can touch the channel. Standard output and error stay the terminal's: a
//! task's `println!` shows up as usual.

use std::env;
use std::io::{self, BufReader};

use super::arena::{self, Arena};
use super::frame::{self, FrameError};
use super::gate::Gate;
use super::sys;
use crate::remote::codec::Bulk;
use crate::remote::function::{Fingerprint, Secret};
use crate::remote::message::{Answer, Kind, TaskHeader};
use crate::remote::serve::{self, Endpoint, Stopped};
#[cfg(unix)]
use {super::sys::ReceiveFd, crate::shared::Region};

/// The environment variable that marks a child; its value starts with the
/// pool's pid.
pub(crate) const MARKER: &str = "CONCURRENT_FUTURES_WORKER";

/// If this run is a process pool's child, serves the pool and exits the
/// process; otherwise returns at once. `before_main`: called by the
/// constructor, before std's `main` prologue, whose settings a worker
/// needs it makes here (`sys::before_main`).
pub(crate) fn serve_if_child(before_main: bool) {
    let Some((pool, rest)) = spawned_by_pool() else {
        return;
    };
    if before_main {
        sys::before_main();
    }
    sys::worker_signals();
    let code = match sys::on_worker_stack(move || serve_pool(pool, &rest)) {
        Ok(()) => 0,
        // The pool reports a refusal it heard (a panicking initializer, a
        // different executable) in `BrokenExecutor`: said once, there.
        Err(Stopped { reported: true, .. }) => 1,
        Err(Stopped { reason, .. }) => {
            eprintln!("concurrent-futures worker {}: {reason}", std::process::id());
            1
        }
    };
    // With whatever its tasks left running (on Windows, its Job object
    // does that).
    sys::exit_with_group(code);
}

/// This executable's fingerprint as the process pool measures it: the
/// identity of the executable's file (`sys::file_identity`: device, inode
/// and size on Unix; volume, file index and size on Windows). While the
/// parent lives, its executable's file cannot be reused or rewritten
/// (Linux refuses to write a running executable, Windows to open it for
/// writing), so equal identities mean the same bytes. The modification time
/// is left out: `touch` changes it, not the bytes, and would make every
/// new worker a stranger. Where the path is not `/proc/self/exe`, the file
/// at the path may have been replaced; the code-layout half of the
/// fingerprint (see `remote::function`) still tells most rebuilds apart.
pub(crate) fn fingerprint() -> io::Result<Fingerprint> {
    let [a, b, c] = sys::file_identity(&sys::executable()?)?;
    Ok(Fingerprint::new([
        a,
        b,
        c,
        u64::from_le_bytes(*b"file-id\0"),
    ]))
}

/// The pid of the pool that started this process as its child, if one did,
/// and the rest of the marker.
fn spawned_by_pool() -> Option<(u32, String)> {
    let marker = env::var(MARKER).ok()?;
    let (pool, rest) = marker.split_once(':').unwrap_or((&marker, ""));
    let pool: u32 = pool.parse().ok()?;
    (pool == sys::parent_id()).then(|| (pool, rest.to_owned()))
}

/// Serves the pool until it closes the channel.
fn serve_pool(pool: u32, rest: &str) -> Result<(), Stopped> {
    let (reader, writer, page) = sys::take_channel(pool, rest)?;
    let gate = page.map(Gate::adopt).transpose().map_err(|e| {
        format!("the start gate could not be mapped ({e}): not the pool's private channel")
    })?;
    let fingerprint = fingerprint().map_err(|e| format!("cannot identify the executable: {e}"))?;
    sys::watch_for_forks();
    let mut endpoint = Channel {
        reader: BufReader::new(reader),
        writer,
        arena: None,
        lent: false,
        in_arena: 0,
        kept: 0,
        gate,
        answer: [0; Answer::LEN],
    };
    serve::serve(&mut endpoint, fingerprint)
}

/// The child's end of the private channel, in frames.
struct Channel {
    reader: BufReader<sys::Reader>,
    writer: sys::ChildWriter,
    /// The memory shared with the pool for big payloads, once one was
    /// needed (see `arena`).
    arena: Option<Arena>,
    /// Whether the task being served came with the arena lent: only then
    /// may its answer use it.
    lent: bool,
    /// How many of the task's last bytes lie in the arena.
    in_arena: usize,
    /// The arena size that freed memory is kept for (`arena::keep_freed`).
    kept: usize,
    /// Where the pool says which items may start (none: every item may).
    gate: Option<Gate>,
    /// The [`Answer`] that goes before the outcomes of the task just run.
    answer: [u8; Answer::LEN],
}

impl Endpoint for Channel {
    fn send(&mut self, kind: Kind, parts: &[&[u8]]) -> Result<(), String> {
        let answer = self.answer;
        let with_answer: [&[u8]; 3];
        let parts = match (kind, parts) {
            (Kind::Outcomes, [outcomes]) => {
                with_answer = [&answer, outcomes, &[]];
                &with_answer[..2]
            }
            (Kind::Outcomes, [outcomes, tail]) => {
                with_answer = [&answer, outcomes, tail];
                &with_answer[..]
            }
            _ => parts,
        };
        let sent = if std::mem::take(&mut self.lent) {
            // A new arena made here goes with this frame at once.
            frame::write_message(&mut self.writer, kind, parts, &mut self.arena, &mut None)
        } else {
            frame::write_frame(&mut self.writer, kind, parts)
        };
        sent.map_err(|e| e.to_string())
    }

    /// Runs the items the gate allows, each started on it just before it
    /// runs, and notes the [`Answer`] to send with the outcomes.
    fn execute(
        &mut self,
        body: &mut Vec<u8>,
        secret: &Secret,
        outcomes: &mut Vec<u8>,
        bulk: &mut Bulk,
    ) -> Result<(), String> {
        // A header that does not decode is refused by the serve loop.
        let first = TaskHeader::decode(body).map_or(0, |(header, _)| header.first);
        let gate = self.gate.as_ref();
        let mut item = first;
        let mut may_start = || {
            sys::end_if_forked();
            let allowed = gate.is_none_or(|gate| gate.start(item));
            item = item.wrapping_add(1);
            allowed
        };
        // The task's last bytes are decoded where they lie, in the arena:
        // this side's from the task frame that lent it until the answer,
        // which `send` writes only after this view is gone (see `arena`).
        let tail = match &self.arena {
            Some(arena) => arena.view(std::mem::take(&mut self.in_arena)),
            None => &[],
        };
        let ran = serve::run_task_with_tail(body, tail, secret, outcomes, bulk, &mut may_start)?;
        sys::end_if_forked();
        self.answer = Answer {
            first,
            done: ran.done,
            consumed: ran.consumed as u64,
        }
        .encode();
        Ok(())
    }

    /// The memory of a shared value came with the `Put` frame's first
    /// bytes, so the reader holds it by now.
    #[cfg(unix)]
    fn take_region(&mut self) -> Result<Region, String> {
        let fd = (self.reader.get_mut().received_fd())
            .ok_or("a shared value's memory did not come with its Put frame")?;
        Region::adopt(fd).map_err(|error| format!("cannot map a shared value: {error}"))
    }

    fn receive(&mut self, body: &mut Vec<u8>) -> Result<Option<Kind>, String> {
        match frame::read_message(&mut self.reader, body, &mut self.arena) {
            Ok(received) => {
                self.lent = received.lent;
                self.in_arena = received.in_arena;
                let arena = self.arena.as_ref().map_or(0, Arena::len);
                if arena > self.kept {
                    arena::keep_freed(arena);
                    self.kept = arena;
                }
                Ok(Some(received.kind))
            }
            Err(FrameError::Closed) => Ok(None),
            Err(error) => Err(error.into_error().to_string()),
        }
    }
}
