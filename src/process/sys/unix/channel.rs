//! Layer: process sys. May use: `process::sys::handover`,
//! `process::sys::unix::passing`, std and libc.
//! A channel end whose reads and writes may time out (the socket's own
//! timeouts), and which hands descriptors over with its bytes.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::passing::{receive, send_with_fd};
use crate::process::sys::handover::{Descriptor, ReceiveFd, SendFd};

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
/// How many bytes of calls the channel surely holds before the child
/// reads them (see the dispatcher's `IN_FLIGHT_BYTES`): a Unix socket's
/// buffer takes some 200 KiB on Linux.
pub(crate) const UNREAD_BYTES: usize = 64 << 10;

#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
/// How many bytes of calls the channel surely holds before the child
/// reads them (see the dispatcher's `IN_FLIGHT_BYTES`): macOS gives a
/// Unix stream socket 8 KiB each way by default
/// (`net.local.stream.sendspace`, `recvspace`).
pub(crate) const UNREAD_BYTES: usize = 4 << 10;

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
    pub(super) fn new(stream: UnixStream) -> Self {
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
