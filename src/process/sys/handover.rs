//! Layer: process sys. May use: std only.
//! What travels beside a channel's bytes: the types that hand memory to
//! the other side, and the two traits of a channel end that can hand a
//! descriptor over with its bytes (the frames of `frame.rs` use them).

use std::io::{self, Read, Write};

/// What hands an arena to the other side with a frame's bytes: a
/// descriptor (Unix, `SCM_RIGHTS`).
#[cfg(unix)]
pub(crate) type Descriptor = std::os::fd::OwnedFd;
/// What would hand an arena over on Windows; there is none (no arenas),
/// so no value of it exists.
#[cfg(windows)]
#[derive(Debug)]
pub(crate) enum Descriptor {}

/// What hands a start gate's page to the child: a descriptor, or a
/// section's handle.
#[cfg(unix)]
pub(crate) type Page = std::os::fd::OwnedFd;
/// What hands a start gate's page to the child: a descriptor, or a
/// section's handle.
#[cfg(windows)]
pub(crate) type Page = std::os::windows::io::OwnedHandle;

/// A channel's writing side that can hand a descriptor over with bytes.
pub(crate) trait SendFd: Write {
    /// Writes some of `bytes` (at least one, or fails) with `fd` attached.
    fn send_fd(&mut self, bytes: &[u8], fd: &Descriptor) -> io::Result<usize>;
}

/// A channel's reading side that keeps a descriptor handed over with its
/// bytes.
pub(crate) trait ReceiveFd: Read {
    /// The descriptor received, if one is waiting.
    fn received_fd(&mut self) -> Option<Descriptor>;
}
