//! Layer: core's platform part, below the transports. May use `libc`
//! only. Linux: the shared memory that holds a `Shared<[T]>`'s bytes, a
//! `memfd` sealed against writes and against changing its size, mapped
//! read-only by the process that made it and by every worker it is
//! handed to (a transport sends [`Region::fd`] with `SCM_RIGHTS`).
//!
//! Why `&[u8]` over the mapping is sound: the bytes are written before the
//! seals go on (`pwrite`, no mapping of them exists then), and after
//! `F_SEAL_WRITE` no process can change them; `F_SEAL_SHRINK` means no
//! page of the mapping can disappear (no `SIGBUS`), and `F_SEAL_SEAL` that
//! no seal can be taken off. [`Region::adopt`] maps a descriptor only if
//! all four seals are on. The mapping is not pre-faulted: a worker's
//! memory grows by the pages its tasks read, and those pages are the
//! same physical memory in every process.
//!
//! Not `arena.rs`'s helpers: an arena is written by both sides, so it is
//! mapped read-write, pre-faulted and sealed at once; a region is written
//! once, sealed against writes after, and mapped lazily.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

use super::Bytes;

const SEALS: libc::c_int =
    libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;

/// Sealed, read-only shared memory holding a value's bytes.
#[derive(Debug)]
pub(crate) struct Region {
    fd: OwnedFd,
    base: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and sealed against writes (see the
// module docs): any thread may read it, and it has no thread affinity.
unsafe impl Send for Region {}
// SAFETY: as above; `&Region` only reads.
unsafe impl Sync for Region {}

fn check(status: libc::c_int) -> io::Result<libc::c_int> {
    if status < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(status)
    }
}

impl Region {
    /// A new region holding a copy of `bytes`. Empty bytes need no
    /// region (`mmap` takes no empty mapping): an error.
    pub(crate) fn copy_of(bytes: &[u8]) -> io::Result<Region> {
        if bytes.is_empty() {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let name = c"concurrent-futures-shared";
        // SAFETY: `name` is a NUL-terminated string; memfd_create only reads it.
        let raw = check(unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        })?;
        // SAFETY: memfd_create just returned this descriptor, owned by nobody else.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        file.set_len(bytes.len() as u64)?;
        file.write_all_at(bytes, 0)?;
        let fd = OwnedFd::from(file);
        // SAFETY: fcntl takes a descriptor we own and integers.
        check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) })?;
        Region::map(fd, bytes.len())
    }

    /// Maps a region handed over by the process that made it, if it is
    /// sealed as [`copy_of`](Region::copy_of) seals it.
    pub(crate) fn adopt(fd: OwnedFd) -> io::Result<Region> {
        // SAFETY: fcntl takes a descriptor we own and an integer.
        let seals = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })?;
        if seals & SEALS != SEALS {
            return Err(io::Error::other(
                "the shared value handed over is not sealed",
            ));
        }
        let len = File::from(fd.try_clone()?).metadata()?.len();
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidData)?;
        if len == 0 {
            return Err(io::Error::other("the shared value handed over is empty"));
        }
        Region::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<Region> {
        // SAFETY: a fresh read-only mapping chosen by the kernel (no
        // address given), of a descriptor we own; it aliases no Rust object.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Region {
            fd,
            base: base.cast_const().cast(),
            len,
        })
    }

    /// The descriptor to hand to a worker.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

impl Bytes for Region {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `base..base + len` is this region's mapping, alive until
        // it is dropped, readable, and never written again (sealed).
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
    }

    fn region(&self) -> Option<&Region> {
        Some(self)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `base..base + len` is the mapping made by `map`; its one
        // owner is being dropped, and no `&[u8]` into it outlives the
        // owner (`bytes` borrows `self`).
        unsafe { libc::munmap(self.base.cast_mut().cast(), self.len) };
    }
}
