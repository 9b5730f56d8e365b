//! Layer: process sys. May use: std only.
//! The Unix half of the transport's system calls (the Windows half is
//! `windows.rs`, with the same names; `mod.rs` lists them): starting a
//! child with its private channel, signalling and reaping it, a channel
//! end whose reads and writes may time out, and the child's side of taking the
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

//!
//! Its parts: `launch.rs` (starting, signalling and reaping a worker),
//! `channel.rs` (a channel end whose reads and writes may time out),
//! `worker_side.rs` (the child's side), `passing.rs` (descriptors passed
//! with bytes), `memory.rs` (shared memory).

mod channel;
mod launch;
mod memory;
mod passing;
mod worker_side;

pub(crate) use channel::*;
pub(crate) use launch::*;
pub(crate) use memory::*;
pub(crate) use std::os::unix::process::parent_id;
pub(crate) use worker_side::*;
