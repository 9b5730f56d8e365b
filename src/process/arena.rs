//! Layer: process transport, at its bottom beside `platform`. May use `std`,
//! `libc` and `frame`'s `ReceiveFd` trait only. Big payloads through shared memory: a message's big last part
//! (a lone plain vector's memory, or encoded arguments or outcomes of any
//! type) travels through an [`Arena`] (a `memfd` mapped by the pool and by
//! one child) instead of the channel.
//!
//! Why: through the socket, every byte is copied into the kernel and out
//! again, in pieces of the socket's buffer, with a context switch each. An
//! arena costs one copy on each side: the sender's into memory that is
//! already mapped and faulted in, the receiver's out of it, as it decodes
//! the value in place ([`Arena::view`]).
//!
//! # The protocol: who may touch the arena when
//!
//! The arena has one owner at a time, and ownership moves with the frames
//! on the channel. The pool lends it with a task frame (flag `LENT`) only
//! when no other call is in flight on that child; only such a task's
//! argument may lie in it, and only such a task's answer may use it:
//!
//! ```text
//! pool: write(argument) ── Task frame ────▶ child: view(argument), decoded
//!                                                 … task …
//!                                                 write(result)
//! pool: view(result), decoded ◀── Outcomes frame ──
//! ```
//!
//! The side that writes does so before it sends its frame; the other side
//! reads only after that frame arrived, and is done reading (it decoded
//! the value out) before it sends a frame of its own. Between two frames,
//! the memory belongs to one process alone; the system calls that move the
//! frame order the writes before the reads. So no byte is read while the
//! peer may still write it, nor written while it may read it: the slices
//! that [`Arena::view_mut`] and [`Arena::view`] form over the mapping live
//! only inside such windows (their callers say why).
//!
//! Nothing else can write the mapping: the `memfd` is close-on-exec (and
//! received so), closed once mapped, sealed against shrinking or growing
//! (so an access within its size never faults with `SIGBUS`), and the
//! mapping is not inherited by `fork` (`MADV_DONTFORK`), so a process that
//! a task starts has none of it.
//!
//! # Faults
//!
//! A child that dies mid-transfer (killed while writing a result into the
//! arena, say) sends no frame: the pool never reads that arena again. The
//! call fails as any call to a dying child does (only its task), and the
//! arena goes with the child's link; the next child gets a new one.
//!
//! # Memory
//!
//! An arena is made by whichever side first needs one big enough, sized to
//! the next power of two at least [`MIN`] and at most [`MAX`]; it is handed
//! to the other side once, with the frame that first uses it, or (one the
//! pool made for an argument that then failed to encode) the next task
//! frame that lends it (`SCM_RIGHTS` on the channel), and replaced only by
//! a bigger one. So a pool holds at
//! most one arena per worker, of at most [`MAX`] bytes: `max_workers` ×
//! the largest payload seen, rounded up to a power of two. Payloads above
//! [`MAX`] take the channel. The memory is returned when the worker retires
//! (at shutdown, or when it is replaced).
//!
//! A worker also keeps what its tasks free, up to twice its arena's size,
//! for the next payload's vectors ([`keep_freed`]): it holds at most that
//! much more memory, for its life.
//!
//! Linux only (`memfd_create`); on the portable Unix path (macOS)
//! [`Arena::create`] says it is unsupported and every payload takes the
//! channel.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
use std::os::unix::net::UnixStream;

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
use super::frame::ReceiveFd;

/// What hands an arena to the other side: its `memfd`.
pub(crate) type Descriptor = OwnedFd;

/// Payloads at least this big go through an arena (when there can be one).
/// Below it, the channel is as fast: see BENCHMARKS.md.
pub(crate) const THRESHOLD: usize = 256 << 10;
/// The smallest arena.
pub(crate) const MIN: usize = 1 << 20;
/// The largest arena; bigger payloads take the channel.
pub(crate) const MAX: usize = 1 << 30;

/// A shared memory region: a sealed `memfd` of a fixed size, mapped
/// read-write and shared, pre-faulted.
#[derive(Debug)]
pub(crate) struct Arena {
    base: *mut u8,
    len: usize,
}

// SAFETY: an Arena is a mapping owned by one value; it has no thread
// affinity, and every access goes through a borrow of it (`view_mut`,
// `view`), under the protocol, so moving it to another thread is sound.
unsafe impl Send for Arena {}

impl Arena {
    /// A new arena of at least `len` bytes, and the descriptor to hand to
    /// the other side.
    pub(crate) fn create(len: usize) -> io::Result<(Arena, OwnedFd)> {
        if len > MAX {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let size = len.max(MIN).next_power_of_two();
        let fd = sys::memfd(size)?;
        let arena = Arena::map(&fd, size)?;
        Ok((arena, fd))
    }

    /// Maps the arena that the other side handed over.
    pub(crate) fn adopt(fd: OwnedFd) -> io::Result<Arena> {
        let size = sys::sealed_size(&fd)?;
        if size > MAX {
            return Err(io::Error::other("the arena handed over is too big"));
        }
        Arena::map(&fd, size)
    }

    fn map(fd: &OwnedFd, len: usize) -> io::Result<Arena> {
        let base = sys::map(fd, len)?;
        Ok(Arena { base, len })
    }

    /// The arena's size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first `len` bytes of the arena (at most its size), to write
    /// into: call only while this side owns the arena, before sending the
    /// frame that hands the bytes over (see the module docs).
    pub(crate) fn view_mut(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= self.len, "a payload bigger than its arena");
        // SAFETY: the mapping is `self.len` bytes, readable and writable,
        // sealed at that size (no SIGBUS) and alive while `self` is (the
        // reference borrows it mutably, so no other view of it exists in
        // this process); `len` fits (checked). The peer does not touch the
        // arena while this side owns it (module docs).
        unsafe { std::slice::from_raw_parts_mut(self.base, len) }
    }

    /// The first `len` bytes of the arena (at most its size), to decode in
    /// place: call only after the frame that handed them over arrived, and
    /// drop before sending a frame (see the module docs). Within that
    /// window the peer writes nothing, so the bytes hold still under the
    /// reference, as Rust requires.
    pub(crate) fn view(&self, len: usize) -> &[u8] {
        assert!(len <= self.len, "a payload bigger than its arena");
        // SAFETY: the mapping is `self.len` bytes, readable, sealed at that
        // size (no SIGBUS) and alive while `self` is (the reference borrows
        // it); `len` fits (checked). Nothing in this process writes it but
        // `view_mut`, which needs `&mut self`, so not while this borrow lives;
        // the peer wrote these bytes before sending the frame that handed
        // them over, and writes nothing more until this side sends one,
        // which its callers do only once the view is gone (module docs).
        unsafe { std::slice::from_raw_parts(self.base, len) }
    }
}

/// Called by a worker whose arena is now `len` bytes: lets its allocator
/// keep up to twice that much memory that tasks free, rather than return it
/// to the system, and serve blocks of up to that size from it.
///
/// Why: a big payload's vector is fresh memory, and the kernel faults in
/// and zeroes every page of it before the copy out of the arena can fill
/// it, which costs more than the copy itself (BENCHMARKS.md). glibc serves
/// a block above 32 MiB with a fresh `mmap` and unmaps it when freed, so
/// every task paid that again; now the task's argument, freed when the task
/// ends, is the memory the next argument is copied into. Only a worker does
/// this, never the pool's own process: the worker's allocator is the
/// pool's to tune. A no-op but with glibc (another global allocator, or
/// another C library, keeps its own policy).
pub(crate) fn keep_freed(len: usize) {
    sys::keep_freed(len);
}

impl Drop for Arena {
    fn drop(&mut self) {
        sys::unmap(self.base, self.len);
    }
}

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
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &message, sys::SEND_FLAGS) };
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
    let read = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut message, sys::RECEIVE_FLAGS) };
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
        sys::close_on_exec(&fd)?;
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

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
mod sys {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    pub(super) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
    /// A received descriptor is close-on-exec from the start.
    pub(super) const RECEIVE_FLAGS: libc::c_int = libc::MSG_CMSG_CLOEXEC;
    const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

    fn check(status: libc::c_int) -> io::Result<libc::c_int> {
        if status < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(status)
        }
    }

    /// A close-on-exec memfd of `size` bytes, sealed at that size.
    pub(super) fn memfd(size: usize) -> io::Result<OwnedFd> {
        let name = c"concurrent-futures-arena";
        // SAFETY: `name` is a NUL-terminated string; memfd_create only reads it.
        let raw = check(unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        })?;
        // SAFETY: memfd_create just returned this descriptor, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let len = libc::off_t::try_from(size).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: ftruncate and fcntl take a descriptor we own and integers.
        check(unsafe { libc::ftruncate(fd.as_raw_fd(), len) })?;
        // SAFETY: as above.
        check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) })?;
        Ok(fd)
    }

    /// The size of a memfd handed over, if it is sealed at that size.
    pub(super) fn sealed_size(fd: &OwnedFd) -> io::Result<usize> {
        // SAFETY: fcntl takes a descriptor we own and an integer.
        let seals = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })?;
        if seals & SEALS != SEALS {
            return Err(io::Error::other("the arena handed over is not sealed"));
        }
        // SAFETY: all-zero is a valid stat (plain integers).
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `stat` is valid for writes; the descriptor is ours.
        check(unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) })?;
        usize::try_from(stat.st_size).map_err(|_| io::ErrorKind::InvalidData.into())
    }

    /// Maps `len` bytes of `fd`, shared, pre-faulted, not inherited by fork.
    pub(super) fn map(fd: &OwnedFd, len: usize) -> io::Result<*mut u8> {
        // SAFETY: a fresh mapping chosen by the kernel (no address given),
        // of a descriptor we own; it aliases no Rust object.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `base..base + len` is the mapping just made, ours alone.
        if unsafe { libc::madvise(base, len, libc::MADV_DONTFORK) } != 0 {
            let error = io::Error::last_os_error();
            unmap(base.cast(), len);
            return Err(error);
        }
        Ok(base.cast())
    }

    pub(super) fn unmap(base: *mut u8, len: usize) {
        // SAFETY: `base..base + len` is a mapping made by `map`, which its
        // one owner (an Arena being dropped) no longer uses.
        unsafe { libc::munmap(base.cast(), len) };
    }

    pub(super) fn keep_freed(len: usize) {
        #[cfg(target_env = "gnu")]
        {
            // A block of `len` bytes is a little more to malloc (its
            // header), and glibc serves one from `mmap` when it is at least
            // the threshold: twice `len` serves and keeps it.
            let most = libc::c_int::MAX as usize;
            let twice = len.saturating_mul(2).min(most) as libc::c_int;
            // SAFETY: mallopt(3) only changes two of glibc's thresholds,
            // under its own lock; any value is valid (one it refuses
            // leaves the old threshold, which is only slower).
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, twice);
                libc::mallopt(libc::M_TRIM_THRESHOLD, twice);
            }
        }
        #[cfg(not(target_env = "gnu"))]
        let _ = len;
    }
}

/// The portable Unix path: no memfd, so no arena; every payload takes the
/// channel.
#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
mod sys {
    use std::io;
    use std::os::fd::OwnedFd;

    pub(super) const SEND_FLAGS: libc::c_int = 0;
    pub(super) const RECEIVE_FLAGS: libc::c_int = 0;

    /// Makes a received descriptor close-on-exec: this path has no flag to
    /// receive it so (macOS has no `MSG_CMSG_CLOEXEC`). The only one it
    /// receives is the child's channel, before the child runs any task.
    pub(super) fn close_on_exec(fd: &OwnedFd) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl(F_SETFD) on a descriptor we own changes only its
        // flags and touches no memory of ours.
        match unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    pub(super) fn memfd(_: usize) -> io::Result<OwnedFd> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) fn sealed_size(_: &OwnedFd) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) fn map(_: &OwnedFd, _: usize) -> io::Result<*mut u8> {
        Err(io::ErrorKind::Unsupported.into())
    }

    pub(super) fn unmap(_: *mut u8, _: usize) {}

    pub(super) fn keep_freed(_: usize) {}
}
