//! Layer: process sys. May use: std and libc only.
//! Shared memory on Unix: the arenas' memory (Linux: a sealed `memfd`,
//! mapped pre-faulted and not inherited by `fork()`; the portable path has
//! none, and every payload takes the channel) and the start gates' pages
//! (Linux: a sealed `memfd`; the portable path: a POSIX shared memory
//! object, unlinked at once).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
pub(crate) use linux::*;
#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
pub(crate) use portable::*;

fn check(status: libc::c_int) -> io::Result<libc::c_int> {
    if status < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(status)
    }
}

/// The size of the memory behind `fd`.
fn size(fd: &OwnedFd) -> io::Result<usize> {
    // SAFETY: all-zero is a valid stat (plain integers).
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is valid for writes; the descriptor is ours.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) })?;
    usize::try_from(stat.st_size).map_err(|_| io::ErrorKind::InvalidData.into())
}

/// Whether the page handed over is `len` bytes (a gate's size).
pub(crate) fn check_page(fd: &OwnedFd, len: usize) -> io::Result<()> {
    match size(fd)? == len {
        true => Ok(()),
        false => Err(io::Error::other(
            "the start gate handed over has the wrong size",
        )),
    }
}

/// Maps `len` bytes of `fd`, shared, read-write.
pub(crate) fn map_page(fd: &OwnedFd, len: usize) -> io::Result<*mut u8> {
    map(fd, len, libc::MAP_SHARED)
}

/// Maps `len` bytes of `fd` with `flags`, read-write.
fn map(fd: &OwnedFd, len: usize, flags: libc::c_int) -> io::Result<*mut u8> {
    // SAFETY: a fresh mapping chosen by the kernel (no address given),
    // of a descriptor we own; it aliases no Rust object.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(base.cast())
}

/// Unmaps what [`map_page`] or `map_arena` mapped, `len` bytes at `base`.
pub(crate) fn unmap(base: *mut u8, len: usize) {
    // SAFETY: `base..base + len` is a mapping made here, which its one
    // owner (an arena or a gate being dropped) no longer uses.
    unsafe { libc::munmap(base.cast(), len) };
}

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
mod linux {
    use std::ffi::CStr;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use crate::process::sys::unix::memory::{check, map, size, unmap};

    const SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

    /// A close-on-exec memfd of `size` bytes, sealed at that size, so that
    /// neither side can shrink it under the other's mapping.
    fn sealed_memfd(name: &CStr, size: usize) -> io::Result<OwnedFd> {
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

    /// A start gate's page of `len` bytes.
    pub(crate) fn page(len: usize) -> io::Result<OwnedFd> {
        sealed_memfd(c"concurrent-futures-gate", len)
    }

    /// An arena's memory of `size` bytes.
    pub(crate) fn arena_memory(size: usize) -> io::Result<OwnedFd> {
        sealed_memfd(c"concurrent-futures-arena", size)
    }

    /// The size of an arena's memory handed over, if it is sealed at that
    /// size.
    pub(crate) fn arena_size(fd: &OwnedFd) -> io::Result<usize> {
        // SAFETY: fcntl takes a descriptor we own and an integer.
        let seals = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })?;
        if seals & SEALS != SEALS {
            return Err(io::Error::other("the arena handed over is not sealed"));
        }
        size(fd)
    }

    /// Maps `len` bytes of an arena's memory, shared, pre-faulted, not
    /// inherited by fork.
    pub(crate) fn map_arena(fd: &OwnedFd, len: usize) -> io::Result<*mut u8> {
        let base = map(fd, len, libc::MAP_SHARED | libc::MAP_POPULATE)?;
        // SAFETY: `base..base + len` is the mapping just made, ours alone.
        if unsafe { libc::madvise(base.cast(), len, libc::MADV_DONTFORK) } != 0 {
            let error = io::Error::last_os_error();
            unmap(base, len);
            return Err(error);
        }
        Ok(base)
    }

    /// Lets this worker's allocator keep up to twice `len` bytes that tasks
    /// free (see `arena::keep_freed`).
    pub(crate) fn keep_freed(len: usize) {
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

/// The portable Unix path: no memfd, so no arena; a gate's page is a POSIX
/// shared memory object.
#[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
mod portable {
    use std::hash::{BuildHasher, RandomState};
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// A POSIX shared memory object of `len` bytes under a random name,
    /// unlinked at once: only the descriptor reaches it.
    pub(crate) fn page(len: usize) -> io::Result<OwnedFd> {
        for _ in 0..8 {
            // Short: macOS allows names of at most 31 bytes.
            let random = RandomState::new().hash_one(std::process::id()) as u32;
            let name = std::ffi::CString::new(format!("/cf-gate-{random:08x}"))
                .expect("no NUL in the name");
            let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
            // SAFETY: `name` is NUL-terminated; shm_open only reads it.
            let raw = unsafe { libc::shm_open(name.as_ptr(), flags, 0o600 as libc::c_uint) };
            if raw < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::AlreadyExists {
                    continue;
                }
                return Err(error);
            }
            // SAFETY: shm_open just returned this descriptor, owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: `name` is NUL-terminated; the object is ours.
            unsafe { libc::shm_unlink(name.as_ptr()) };
            // SAFETY: ftruncate takes a descriptor we own and an integer.
            if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
                return Err(io::Error::last_os_error());
            }
            return Ok(fd);
        }
        Err(io::ErrorKind::AlreadyExists.into())
    }

    /// No arena here: every payload takes the channel.
    pub(crate) fn arena_memory(_: usize) -> io::Result<OwnedFd> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// No arena here (see [`arena_memory`]).
    pub(crate) fn arena_size(_: &OwnedFd) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// No arena here (see [`arena_memory`]).
    pub(crate) fn map_arena(_: &OwnedFd, _: usize) -> io::Result<*mut u8> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// No arena, so no arena-sized memory to keep.
    pub(crate) fn keep_freed(_: usize) {}
}
