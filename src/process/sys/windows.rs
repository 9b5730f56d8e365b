//! Layer: process sys. May use: std only.
//! The Windows half of the transport's system calls, with the names of the
//! Unix half (`unix.rs`; `mod.rs` lists them): starting a child with its
//! private channel, stopping and reaping it, a channel end whose reads and
//! writes may time out, and the child's side of taking the channel.
//!
//! Its parts: `launch.rs` (starting, stopping and reaping a worker),
//! `job_object.rs` (a worker's job object and its exit codes), `channel.rs`
//! (a channel end and the deadline watcher), `worker_side.rs` (the
//! child's side), `memory.rs` (shared memory).
//!
//! - **The channel** is two anonymous pipes, one each way, never a named
//!   pipe another process could open. The child's ends reach that one
//!   child only: `CreateProcessW` gets an explicit list of the handles it
//!   may inherit (`PROC_THREAD_ATTRIBUTE_HANDLE_LIST`), inheritable copies
//!   made just for the call and closed right after it. (std's `Command`
//!   would hand the child every inheritable handle of the program,
//!   rust-lang/rust#161158.) Their values travel in the marker variable;
//!   the child checks that both are pipes and makes them non-inheritable
//!   before any task runs, so nothing a task starts gets them.
//! - **A Job object per worker**, with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`,
//!   which only the pool holds: the worker is put in it right after it is
//!   created, before the pool reads its greeting, so before any task runs,
//!   and whatever its tasks start joins it. (It is not created suspended:
//!   a pool killed between the creation and the resume would leave a
//!   suspended orphan, seen under Wine. A child whose pool dies before the
//!   job holds it reads end-of-file on its channel and exits.) When the pool's process ends, however it ends, the system
//!   closes the handle and kills the job. A kill (a cancel, a timeout,
//!   `kill_workers`, `terminate_workers`) is `TerminateJobObject`, with an
//!   exit code that says which ([`KILL`], [`TERMINATE`]); it is what a
//!   process group and its signal are on Unix.
//! - **Deadlines:** pipes have no timeouts. A [`ChannelEnd`] with a time set
//!   is registered with one watcher thread, which terminates the worker's
//!   job when the time comes; the blocked read or write then fails, and is
//!   reported as timed out.
//!
//! Spawns are serialised ([`spawning`]) so that no other child of this
//! crate is started while the inheritable copies exist; a child that
//! another thread of the program starts with std's `Command` in those
//! microseconds can still inherit them (std hands out every inheritable
//! handle), which would only keep the channel open after the worker dies.

mod channel;
mod job_object;
mod launch;
mod memory;
mod worker_side;

pub(crate) use channel::*;
pub(crate) use job_object::{KILL, Signal, Status, TERMINATE, code_and_signal, describe};
pub(crate) use launch::*;
pub(crate) use memory::*;
pub(crate) use worker_side::*;
