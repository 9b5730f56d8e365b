//! Layer: process transport, at its bottom beside `platform` and
//! `windows`. May use `std`, `libc` and `windows-sys` only. The start
//! gate: a page of memory shared by the pool and one child, which decides,
//! once for each item the pool sent ahead, whether the child starts it or
//! the pool takes it back.
//!
//! The pool numbers the items it sends a child (a lone task is one item, a
//! `map` chunk one per input) 1, 2, 3, … and the child runs them in that
//! order. The gate holds two numbers, each in a word of its own cache line,
//! so that the side that writes one rarely disturbs the side that reads it:
//!
//! - `allowed`, written by the pool: the last item the child may start. The
//!   pool raises it as it sends items, and lowers it to take items back; a
//!   take-back also sets a flag beside it, so that the pool's next raise
//!   fails until the child has passed what was taken back ([`Gate::reset`]).
//! - `started`, written by the child: the last item it started, set just
//!   before it runs one.
//!
//! ```text
//!            pool sends item n            child: n <= allowed
//!   (not sent) ──allow(n)──▶ sent ─────────────────────────────▶ started
//!                             │
//!                             └──take_back(n): started < n ──▶ taken back
//!                                (allowed < n; the child skips n)
//! ```
//!
//! For each item exactly one side wins, as in Dekker's algorithm: the child
//! writes `started = n`, then reads `allowed`; the pool lowers `allowed`,
//! then reads `started`; all four operations are sequentially consistent.
//! If the child read the old `allowed`, its write came before the pool's
//! read, so the pool sees `n` started and its take-back of `n` fails. If
//! the child read the lowered `allowed`, it does not run `n` and puts
//! `started` back. (A pool that reads `started` in that instant sees `n` as
//! started: its take-back fails though `n` never runs, and `n` comes back
//! in the child's answer as not run, so nothing is lost.) A task that was
//! taken back never starts; a task that started is never taken back.
//! Numbers wrap at 2^32; they are compared as distances, and far fewer than
//! 2^31 items are ever in flight.
//!
//! The page is a sealed `memfd` on Linux, an unlinked POSIX shared memory
//! object on the other Unixes, and a section backed by the paging file on
//! Windows, handed to the child as its handle (a descriptor passed with
//! `SCM_RIGHTS`, or a handle it inherits). Each side maps it and closes the
//! handle, so a task of the child cannot reach it through one. What the
//! child writes there is only a claim: the pool never takes a number from
//! it as a bound for memory or as proof that a result belongs to a call
//! (answers carry their item numbers, checked against the call in flight).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// What hands a gate's page to the child: a descriptor, or a handle.
#[cfg(unix)]
pub(crate) type Page = std::os::fd::OwnedFd;
/// What hands a gate's page to the child: a descriptor, or a handle.
#[cfg(windows)]
pub(crate) type Page = std::os::windows::io::OwnedHandle;

/// Whether item `a` comes before item `b`, with wrapping numbers.
pub(crate) fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// The size of the shared page.
const LEN: usize = 4096;
/// Where `started` lies in the page: a cache line (and its neighbour, which
/// some processors fetch with it) away from `allowed` at 0.
const STARTED: usize = 128;
/// The flag beside `allowed`: items were taken back since the last reset.
const TAKEN: u64 = 1 << 32;

/// One child's start gate, mapped in this process.
#[derive(Debug)]
pub(crate) struct Gate {
    /// The start of a shared mapping of `LEN` bytes (made by `sys::map`),
    /// ours until drop.
    base: *mut u8,
}

// SAFETY: the words are only ever accessed atomically (`AtomicU64` is
// `Sync`), and the mapping belongs to this value, not to a thread.
unsafe impl Send for Gate {}
// SAFETY: as above; every method takes `&self` and uses atomic
// operations.
unsafe impl Sync for Gate {}

impl Gate {
    /// A new gate (nothing sent, nothing started), and the page's handle
    /// to hand to the child, which maps it with [`Gate::adopt`].
    pub(crate) fn create() -> io::Result<(Gate, Page)> {
        let page = sys::shared_page()?;
        let base = sys::map(&page)?;
        Ok((Gate { base }, page))
    }

    /// Maps the gate whose page the pool handed over.
    pub(crate) fn adopt(page: Page) -> io::Result<Gate> {
        sys::check(&page)?;
        let base = sys::map(&page)?;
        Ok(Gate { base })
    }

    /// The word at `offset` of the page.
    fn word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `base` is the page-aligned start of a live mapping of
        // `LEN` bytes, which lives as long as `self`; `offset` is 0 or
        // `STARTED`, multiples of 8 well inside it, so the word is
        // aligned and in bounds; every process that maps the page
        // accesses these words only through atomic operations, and a
        // fresh page reads as zero, a valid u64.
        unsafe { &*self.base.add(offset).cast::<AtomicU64>() }
    }

    fn allowed_word(&self) -> &AtomicU64 {
        self.word(0)
    }

    fn started_word(&self) -> &AtomicU64 {
        self.word(STARTED)
    }

    /// The pool: lets the child start items up to `item`, if the gate
    /// still allows exactly `mark` (what the pool last allowed) and
    /// nothing was taken back since the last [`reset`](Self::reset).
    /// `false` otherwise, and then nothing changes: the pool must wait
    /// until the child has passed what was taken back.
    pub(crate) fn allow(&self, mark: u32, item: u32) -> bool {
        // ORDERING: SeqCst, one of the four operations of the module
        // docs' argument (a raise is never raced by the child's read in
        // a harmful way, but one order for every access keeps it plain).
        self.allowed_word()
            .compare_exchange(
                u64::from(mark),
                u64::from(item),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }

    /// The pool: takes back every item from `from` on, if the child has
    /// not started `from` yet. `true`: none of them will start. Either
    /// way, no item after `from` will start, and the flag is set.
    pub(crate) fn take_back(&self, from: u32) -> bool {
        let last = from.wrapping_sub(1);
        // ORDERING: SeqCst: the pool's write, then its read, of the
        // module docs' argument.
        let _ = self
            .allowed_word()
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |word| {
                let allowed = match before(last, word as u32) {
                    true => last,
                    false => word as u32,
                };
                Some(TAKEN | u64::from(allowed))
            });
        before(self.started(), from)
    }

    /// The pool, once the child has answered every call sent: clears
    /// the flag of a take-back, and returns what is allowed now (the
    /// `mark` of the next [`allow`](Self::allow)).
    pub(crate) fn reset(&self) -> u32 {
        // ORDERING: SeqCst, as every access to the words.
        let word = self.allowed_word().fetch_and(!TAKEN, Ordering::SeqCst);
        word as u32
    }

    /// The last item the child started (0: none yet).
    pub(crate) fn started(&self) -> u32 {
        // ORDERING: SeqCst: the pool's read of the module docs' argument.
        self.started_word().load(Ordering::SeqCst) as u32
    }

    /// Whether `item` was started, or may still be: not taken back.
    pub(crate) fn allows(&self, item: u32) -> bool {
        // ORDERING: SeqCst, as every access to the words.
        !before(self.allowed_word().load(Ordering::SeqCst) as u32, item)
    }

    /// The child: starts `item` if the pool still allows it; `false` if
    /// it was taken back, and then the child must not run it.
    pub(crate) fn start(&self, item: u32) -> bool {
        // ORDERING: SeqCst: the child's write, then its read, of the
        // module docs' argument; and its undo.
        let before_it = self.started_word().swap(u64::from(item), Ordering::SeqCst);
        // ORDERING: as above.
        let allowed = self.allowed_word().load(Ordering::SeqCst) as u32;
        if before(allowed, item) {
            // ORDERING: as above.
            self.started_word().store(before_it, Ordering::SeqCst);
            return false;
        }
        true
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        sys::unmap(self.base);
    }
}

/// Mapping a page, on every Unix.
#[cfg(unix)]
mod unix {
    use super::*;
    use std::os::fd::{AsRawFd, OwnedFd};

    /// Whether the page handed over is one gate's size.
    pub(super) fn check(fd: &OwnedFd) -> io::Result<()> {
        // SAFETY: all-zero is a valid stat (plain integers).
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `stat` is valid for writes; the descriptor is ours.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } != 0 {
            return Err(io::Error::last_os_error());
        }
        match usize::try_from(stat.st_size) {
            Ok(LEN) => Ok(()),
            _ => Err(io::Error::other(
                "the start gate handed over has the wrong size",
            )),
        }
    }

    /// Maps the page, shared, read-write.
    pub(super) fn map(fd: &OwnedFd) -> io::Result<*mut u8> {
        // SAFETY: a fresh mapping chosen by the kernel (no address given)
        // of a descriptor we own, `LEN` bytes long; it aliases no Rust
        // object.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(base.cast())
    }

    /// Unmaps what [`map`] mapped.
    pub(super) fn unmap(base: *mut u8) {
        // SAFETY: `base` is the start of a mapping `map` made, of `LEN`
        // bytes, which its one owner (a Gate being dropped) no longer uses.
        unsafe { libc::munmap(base.cast(), LEN) };
    }
}

#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
mod sys {
    pub(super) use super::unix::{check, map, unmap};
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// A close-on-exec memfd of `LEN` bytes, sealed at that size, so that
    /// neither side can shrink it under the other's mapping.
    pub(super) fn shared_page() -> io::Result<OwnedFd> {
        let len = LEN;
        let name = c"concurrent-futures-gate";
        // SAFETY: `name` is a NUL-terminated string; memfd_create only reads it.
        let raw = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: memfd_create just returned this descriptor, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: ftruncate and fcntl take a descriptor we own and integers.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0
        // SAFETY: as above.
        || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }
}

#[cfg(all(
    unix,
    not(all(target_os = "linux", not(concurrent_futures_portable_unix)))
))]
mod sys {
    pub(super) use super::unix::{check, map, unmap};
    use super::*;
    use std::hash::{BuildHasher, RandomState};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// A POSIX shared memory object of `LEN` bytes under a random name,
    /// unlinked at once: only the descriptor reaches it.
    pub(super) fn shared_page() -> io::Result<OwnedFd> {
        let len = LEN;
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
}

/// The page on Windows: a section backed by the paging file.
#[cfg(windows)]
mod sys {
    use super::*;
    use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
    use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
    use windows_sys::Win32::System::Memory::{
        CreateFileMappingW, FILE_MAP_ALL_ACCESS, MEMORY_MAPPED_VIEW_ADDRESS, MapViewOfFile,
        PAGE_READWRITE, UnmapViewOfFile,
    };

    /// A fresh section of `LEN` bytes, with no name: only its handle
    /// reaches it.
    pub(super) fn shared_page() -> io::Result<OwnedHandle> {
        // SAFETY: no name and no security attributes (null pointers); the
        // paging file backs it (INVALID_HANDLE_VALUE); plain integers else.
        let raw = unsafe {
            CreateFileMappingW(
                INVALID_HANDLE_VALUE,
                std::ptr::null(),
                PAGE_READWRITE,
                0,
                LEN as u32,
                std::ptr::null(),
            )
        };
        if raw.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: CreateFileMappingW just returned this handle, owned by
        // nobody else.
        Ok(unsafe { OwnedHandle::from_raw_handle(raw) })
    }

    /// Nothing to check before mapping: a view of `LEN` bytes of a smaller
    /// section fails to map.
    pub(super) fn check(_: &OwnedHandle) -> io::Result<()> {
        Ok(())
    }

    /// Maps a view of the section's `LEN` bytes, read-write.
    pub(super) fn map(section: &OwnedHandle) -> io::Result<*mut u8> {
        // SAFETY: a fresh view chosen by the system of a section handle we
        // own; it aliases no Rust object.
        let view =
            unsafe { MapViewOfFile(section.as_raw_handle(), FILE_MAP_ALL_ACCESS, 0, 0, LEN) };
        if view.Value.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(view.Value.cast())
    }

    /// Unmaps what [`map`] mapped.
    pub(super) fn unmap(base: *mut u8) {
        // SAFETY: `base` is the start of a view `map` made, which its one
        // owner (a Gate being dropped) no longer uses.
        unsafe { UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS { Value: base.cast() }) };
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    /// The pool's view and the child's view of one gate, in one process.
    fn pair() -> (Gate, Gate) {
        let (pool, fd) = Gate::create().unwrap();
        (pool, Gate::adopt(fd).unwrap())
    }

    #[test]
    fn the_child_starts_only_what_was_allowed() {
        let (pool, child) = pair();
        assert!(!child.start(1), "nothing allowed yet");
        assert!(pool.allow(0, 3));
        assert!(child.start(1));
        assert!(child.start(2));
        assert_eq!(pool.started(), 2);
        assert!(!pool.take_back(2), "item 2 started already");
        assert!(pool.take_back(3));
        assert!(!child.start(3), "item 3 was taken back");
        assert!(!pool.allows(3));
        assert!(!pool.allow(1, 4), "no raise until the child passed them");
        // The failed take-back of 2 held back what follows it too.
        assert_eq!(pool.reset(), 1);
        assert!(pool.allow(1, 4));
        assert!(child.start(4));
    }

    #[test]
    fn taking_back_never_raises_what_is_allowed() {
        let (pool, child) = pair();
        assert!(pool.allow(0, 10));
        assert!(pool.take_back(4));
        assert!(pool.take_back(8), "not started, so still taken back");
        assert!(pool.allows(3) && !pool.allows(4));
        assert!(child.start(3));
        assert!(!child.start(4));
    }

    #[test]
    fn numbers_wrap() {
        let (pool, child) = pair();
        let last = u32::MAX - 1;
        assert!(pool.allow(0, last));
        assert!(child.start(last));
        assert!(pool.allow(last, 2)); // u32::MAX, 0, 1, 2 come after it
        assert!(child.start(u32::MAX));
        assert!(child.start(0));
        assert!(pool.take_back(1));
        assert!(!child.start(1));
        assert_eq!(pool.started(), 0);
    }

    #[test]
    fn one_of_start_and_take_back_wins_each_item() {
        let (pool, child) = pair();
        const ITEMS: u32 = 20_000;
        assert!(pool.allow(0, ITEMS));
        let starter =
            std::thread::spawn(move || (1..=ITEMS).take_while(|&i| child.start(i)).count());
        let tries: Vec<_> = (1..=ITEMS)
            .rev()
            .step_by(97)
            .map(|item| (item, pool.take_back(item)))
            .collect();
        let started = starter.join().unwrap() as u32;
        assert_eq!(pool.started(), started, "the child started a prefix");
        for (item, taken) in tries {
            assert_eq!(taken, started < item, "item {item}: one side won it");
        }
    }
}
