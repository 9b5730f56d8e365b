//! Layer: process sys. May use: `process::sys::handover`.
//! Descriptor passing on a Unix socket: bytes with a descriptor attached
//! (`SCM_RIGHTS`), and the reads that keep a descriptor that came with
//! the bytes. The pool hands a child the answers' end of its channel and
//! its start gate's page this way, and either side a new arena.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
use std::os::unix::net::UnixStream;

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
use crate::process::sys::handover::ReceiveFd;

/// Linux: no SIGPIPE from a send, and a received descriptor is
/// close-on-exec from the start.
#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
const RECEIVE_FLAGS: libc::c_int = libc::MSG_CMSG_CLOEXEC;
/// The portable path has neither flag (macOS): SIGPIPE is ignored in a
/// worker, and a received descriptor is made close-on-exec after.
#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
const SEND_FLAGS: libc::c_int = 0;
#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
const RECEIVE_FLAGS: libc::c_int = 0;

/// A message header over one buffer, `iov`, and `control`'s buffer for
/// ancillary data: what `sendmsg` and `recvmsg` take. It points at both,
/// so they must outlive its use.
fn message_over(iov: &mut libc::iovec, control: &mut Control) -> libc::msghdr {
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = iov;
    message.msg_iovlen = 1;
    message.msg_control = control.0.as_mut_ptr().cast();
    message.msg_controllen = Control::SPACE as _;
    message
}

/// Sends `bytes` (at least one) with `fd` attached, as `SCM_RIGHTS`;
/// returns how many bytes went.
pub(crate) fn send_with_fd(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fd: BorrowedFd<'_>,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut control = Control::new();
    let message = message_over(&mut iov, &mut control);
    // SAFETY: `message` points at a control buffer of Control::SPACE bytes,
    // aligned for cmsghdr (Control's alignment) and big enough for one
    // header with one descriptor, so the first header is inside it and its
    // data has room for a c_int.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(size_of::<libc::c_int>() as u32) as _;
        libc::CMSG_DATA(header)
            .cast::<libc::c_int>()
            .write_unaligned(fd.as_raw_fd());
    }
    // SAFETY: `message` and everything it points to (the iovec over
    // `bytes`, the control buffer) are valid for the call; sendmsg only
    // reads them.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &message, SEND_FLAGS) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Reads from `socket` into `buf` as `read` does, keeping a descriptor that
/// came with the bytes (close-on-exec) in `received`. More than one
/// descriptor waiting is a broken protocol: an error.
pub(crate) fn receive(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    received: &mut Option<OwnedFd>,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = Control::new();
    let mut message = message_over(&mut iov, &mut control);
    // SAFETY: `message` points at `buf` (valid for writes of its length)
    // and at the control buffer (Control::SPACE bytes, valid for writes);
    // recvmsg writes within those lengths.
    let read = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut message, RECEIVE_FLAGS) };
    if read < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: recvmsg filled `message`, whose control buffer is still
    // alive: CMSG_FIRSTHDR and CMSG_NXTHDR walk it within msg_controllen.
    let mut header = unsafe { libc::CMSG_FIRSTHDR(&message) };
    let mut fds = Vec::new();
    while !header.is_null() {
        // SAFETY: `header` is a header inside the control buffer (above);
        // for SCM_RIGHTS its data holds c_ints up to its cmsg_len, read
        // unaligned, and each is a descriptor the kernel just opened for
        // this process: ours to own.
        unsafe {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header).cast::<libc::c_int>();
                let bytes = (*header).cmsg_len as usize - (data as usize - header as usize);
                for index in 0..bytes / size_of::<libc::c_int>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(index).read_unaligned()));
                }
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
    }
    let truncated = message.msg_flags & libc::MSG_CTRUNC != 0;
    for fd in fds {
        #[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
        close_on_exec(&fd)?;
        if received.replace(fd).is_some() {
            return Err(io::Error::other("more than one arena handed over at once"));
        }
    }
    if truncated {
        return Err(io::Error::other("descriptors were cut off the channel"));
    }
    Ok(read as usize)
}

/// A child's reading side of the channel on Linux: reads as the socket
/// does, keeping a descriptor that comes with the bytes.
#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
#[derive(Debug)]
pub(crate) struct FdReader {
    stream: UnixStream,
    received: Option<OwnedFd>,
}

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
impl FdReader {
    pub(crate) fn new(stream: UnixStream) -> Self {
        FdReader {
            stream,
            received: None,
        }
    }
}

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
impl io::Read for FdReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        receive(
            std::os::fd::AsFd::as_fd(&self.stream),
            buf,
            &mut self.received,
        )
    }
}

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
impl ReceiveFd for FdReader {
    fn received_fd(&mut self) -> Option<OwnedFd> {
        self.received.take()
    }
}

/// Room for one control message with one descriptor, aligned for cmsghdr.
#[repr(C, align(8))]
struct Control([u8; Control::SPACE]);

impl Control {
    const SPACE: usize = 32;

    fn new() -> Self {
        const {
            // SAFETY: CMSG_SPACE is arithmetic on its argument.
            let space = unsafe { libc::CMSG_SPACE(size_of::<libc::c_int>() as u32) };
            assert!(space as usize <= Self::SPACE);
        };
        Control([0; Self::SPACE])
    }
}

/// Makes a received descriptor close-on-exec: the portable path has no
/// flag to receive it so (macOS has no `MSG_CMSG_CLOEXEC`). The only one
/// it receives is the child's channel, before the child runs any task.
#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
fn close_on_exec(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl(F_SETFD) on a descriptor we own changes only its
    // flags and touches no memory of ours.
    match unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
