//! Layer: core (the platform part of `shared`). May use: std and libc
//! only. Unix: the shared memory that holds a `Shared<[T]>`'s bytes, mapped
//! read-only by the process that made it and by every worker it is handed
//! to (a transport sends [`Region::fd`] with `SCM_RIGHTS`).
//!
//! On Linux it is a `memfd` sealed against writes and against changing its
//! size. Why `&[u8]` over the mapping is sound there: the bytes are
//! written before the seals go on (`pwrite`, no mapping of them exists
//! then), and after `F_SEAL_WRITE` no process can change them;
//! `F_SEAL_SHRINK` means no page of the mapping can disappear (no
//! `SIGBUS`), and `F_SEAL_SEAL` that no seal can be taken off.
//! [`Region::adopt`] maps a descriptor only if all four seals are on.
//!
//! Elsewhere (the portable Unix path, macOS: no `memfd`, no seals) it is a
//! POSIX shared memory object under a random name, written through a
//! writable descriptor and mapping that are closed and unmapped before the
//! handle exists, and unlinked: what remains, and what workers get, is a
//! descriptor opened read-only, through which nobody can write or resize
//! it (`mmap` with `PROT_WRITE` and `ftruncate` both need a writable one).
//!
//! The mapping is not pre-faulted: a worker's memory grows by the pages
//! its tasks read, and those pages are the same physical memory in every
//! process.
//!
//! Not `arena.rs`'s or `gate.rs`'s helpers: an arena is written by both
//! sides, so it is mapped read-write, pre-faulted and sealed at once, and
//! the gate's page stays writable; a region is written once, then only
//! read.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Read-only shared memory holding a value's bytes.
#[derive(Debug)]
pub(crate) struct Region {
    fd: OwnedFd,
    base: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and nobody can write it (see the
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
        Region::map(sys::filled(bytes)?, bytes.len())
    }

    /// Maps a region handed over by the process that made it, if it is
    /// one that [`copy_of`](Region::copy_of) made (sealed, or read-only).
    pub(crate) fn adopt(fd: OwnedFd) -> io::Result<Region> {
        sys::verify(&fd)?;
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

impl Region {
    /// The value's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `base..base + len` is this region's mapping, alive until
        // it is dropped, readable, and never written again (module docs).
        unsafe { std::slice::from_raw_parts(self.base, self.len) }
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

/// Linux: a sealed `memfd`.
#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
mod sys {
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::FileExt;

    use super::check;

    const SEALS: libc::c_int =
        libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;

    /// A memfd holding `bytes`, sealed.
    pub(super) fn filled(bytes: &[u8]) -> io::Result<OwnedFd> {
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
        Ok(fd)
    }

    /// Whether `fd` is sealed as [`filled`] seals it.
    pub(super) fn verify(fd: &OwnedFd) -> io::Result<()> {
        // SAFETY: fcntl takes a descriptor we own and an integer.
        let seals = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })?;
        if seals & SEALS != SEALS {
            return Err(io::Error::other(
                "the shared value handed over is not sealed",
            ));
        }
        Ok(())
    }
}

/// The portable Unix path (macOS): a POSIX shared memory object, reached
/// only through a read-only descriptor.
#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
mod sys {
    use std::ffi::CString;
    use std::hash::{BuildHasher, RandomState};
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use super::check;

    /// Opens the object `name` with `flags`.
    fn open(name: &CString, flags: libc::c_int) -> io::Result<OwnedFd> {
        // SAFETY: `name` is NUL-terminated; shm_open only reads it.
        let raw = check(unsafe { libc::shm_open(name.as_ptr(), flags, 0o600 as libc::c_uint) })?;
        // SAFETY: shm_open just returned this descriptor, owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    }

    /// A read-only descriptor of an unlinked object holding `bytes`.
    pub(super) fn filled(bytes: &[u8]) -> io::Result<OwnedFd> {
        let (name, writable) = create()?;
        let read_only = open(&name, libc::O_RDONLY | libc::O_CLOEXEC);
        // SAFETY: `name` is NUL-terminated; the object is ours.
        unsafe { libc::shm_unlink(name.as_ptr()) };
        let read_only = read_only?;
        let len = libc::off_t::try_from(bytes.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: ftruncate takes a descriptor we own and an integer.
        check(unsafe { libc::ftruncate(writable.as_raw_fd(), len) })?;
        // SAFETY: a fresh writable mapping chosen by the kernel, of the
        // object just sized to `bytes.len()`; it aliases no Rust object.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes.len(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                writable.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `base` is a writable mapping of `bytes.len()` bytes that
        // nothing else can see yet (the read-only descriptor is not mapped
        // nor handed over before this returns); the source is `bytes`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.cast(), bytes.len());
            libc::munmap(base, bytes.len());
        }
        Ok(read_only)
    }

    /// A new object under a random name, and a writable descriptor of it.
    fn create() -> io::Result<(CString, OwnedFd)> {
        for _ in 0..8 {
            // Short: macOS allows names of at most 31 bytes.
            let random = RandomState::new().hash_one(std::process::id()) as u32;
            let name = CString::new(format!("/cf-shared-{random:08x}")).expect("no NUL");
            let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
            match open(&name, flags) {
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                opened => return Ok((name, opened?)),
            }
        }
        Err(io::ErrorKind::AlreadyExists.into())
    }

    /// Whether nobody can write through `fd`: it was opened read-only.
    pub(super) fn verify(fd: &OwnedFd) -> io::Result<()> {
        // SAFETY: fcntl(F_GETFL) takes a descriptor we own.
        let flags = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return Err(io::Error::other("the shared value handed over is writable"));
        }
        Ok(())
    }
}
