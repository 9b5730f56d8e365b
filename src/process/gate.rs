//! Layer: process transport, at its bottom beside `platform`. May use `std`
//! and `libc` only. The start gate: one word of memory shared by the pool
//! and one child, which decides, once for each item the pool sent ahead,
//! whether the child starts it or the pool takes it back.
//!
//! The pool numbers the items it sends a child (a lone task is one item, a
//! `map` chunk one per input) 1, 2, 3, … and the child runs them in that
//! order. The word holds two of those numbers:
//!
//! - `allowed`: the last item the child may start. The pool raises it as
//!   it sends items, and lowers it to take items back.
//! - `started`: the last item the child started. Only the child raises it,
//!   item by item, just before it runs one.
//!
//! ```text
//!            pool sends item n            child: n <= allowed
//!   (not sent) ──allow(n)──▶ sent ─────────────────────────────▶ started
//!                             │
//!                             └──take_back(n): started < n ──▶ taken back
//!                                (allowed = n - 1; the child skips n)
//! ```
//!
//! Both moves are one compare-and-swap on the same word, so for each item
//! exactly one wins: the child starts it, or the pool has it back and the
//! child, when it reads it, answers that it did not run it. A task that
//! was taken back never starts; a task that started is never taken back.
//! Numbers wrap at 2^32; they are compared as distances, and far fewer
//! than 2^31 items are ever in flight.
//!
//! The memory is a page of its own: a sealed `memfd` on Linux, an unlinked
//! POSIX shared memory object on the other Unixes. Windows has no gate yet
//! ([`Gate`] there has no value): its pool sends one call at a time. Each side maps it and closes the
//! descriptor, so a task of the child cannot reach it through a descriptor.
//! The child is the pool's own program, but what it writes to the word is
//! still only a claim: the pool never takes a number from it as a bound
//! for memory or as proof that a result belongs to a call (answers carry
//! their item numbers, checked against the call in flight).

#[cfg(unix)]
pub(crate) use shared::Gate;

/// Whether item `a` comes before item `b`, with wrapping numbers.
pub(crate) fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[cfg(unix)]
mod shared {
    use super::before;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The size of the shared page.
    const LEN: usize = 4096;

    /// One child's start gate, mapped in this process.
    #[derive(Debug)]
    pub(crate) struct Gate {
        /// The first word of a shared mapping of `LEN` bytes, ours until drop.
        word: *const AtomicU64,
    }

    // SAFETY: the word is only ever accessed atomically (`AtomicU64` is `Sync`),
    // and the mapping belongs to this value, not to a thread.
    unsafe impl Send for Gate {}
    // SAFETY: as above; every method takes `&self` and uses atomic operations.
    unsafe impl Sync for Gate {}

    fn allowed(word: u64) -> u32 {
        (word >> 32) as u32
    }

    fn started(word: u64) -> u32 {
        word as u32
    }

    fn pack(allowed: u32, started: u32) -> u64 {
        (u64::from(allowed) << 32) | u64::from(started)
    }

    impl Gate {
        /// A new gate (nothing sent, nothing started), and the descriptor to
        /// hand to the child, which maps it with [`Gate::adopt`].
        pub(crate) fn create() -> io::Result<(Gate, OwnedFd)> {
            let fd = sys::shared_page(LEN)?;
            let gate = Gate::map(&fd)?;
            Ok((gate, fd))
        }

        /// Maps the gate whose descriptor the pool handed over.
        pub(crate) fn adopt(fd: OwnedFd) -> io::Result<Gate> {
            // SAFETY: all-zero is a valid stat (plain integers).
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: `stat` is valid for writes; the descriptor is ours.
            if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } != 0 {
                return Err(io::Error::last_os_error());
            }
            if usize::try_from(stat.st_size).ok() != Some(LEN) {
                return Err(io::Error::other(
                    "the start gate handed over has the wrong size",
                ));
            }
            Gate::map(&fd)
        }

        fn map(fd: &OwnedFd) -> io::Result<Gate> {
            // SAFETY: a fresh mapping chosen by the kernel (no address given) of
            // a descriptor we own, `LEN` bytes long; it aliases no Rust object.
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
            Ok(Gate {
                word: base.cast::<AtomicU64>().cast_const(),
            })
        }

        fn word(&self) -> &AtomicU64 {
            // SAFETY: `word` is the page-aligned start of a live mapping of
            // `LEN` bytes (so aligned and big enough for an AtomicU64), which
            // lives as long as `self`; every process that maps it accesses it
            // only through atomic operations, and a fresh page reads as zero, a
            // valid u64.
            unsafe { &*self.word }
        }

        /// The pool: lets the child start items up to `item`, if the gate
        /// still allows exactly `mark` (what the pool last allowed). `false`
        /// if items were taken back since, and then nothing changes: the pool
        /// must wait until the child has passed them before it allows more.
        pub(crate) fn allow(&self, mark: u32, item: u32) -> bool {
            // ORDERING: AcqRel on a read-modify-write of the one word the child
            // also swaps: the child that sees the new `allowed` also sees
            // everything the pool wrote before (the frame went by a system
            // call anyway); the word itself needs no other order.
            self.word()
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                    (allowed(word) == mark).then(|| pack(item, started(word)))
                })
                .is_ok()
        }

        /// The pool: takes back every item from `from` on, if the child has not
        /// started `from` yet. `true`: none of them will start.
        pub(crate) fn take_back(&self, from: u32) -> bool {
            // ORDERING: as in `allow`: one winner between this and `start`.
            self.word()
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                    let last = from.wrapping_sub(1);
                    before(started(word), from).then(|| {
                        let allowed = match before(last, allowed(word)) {
                            true => last,
                            false => allowed(word),
                        };
                        pack(allowed, started(word))
                    })
                })
                .is_ok()
        }

        /// The last item the child started (0: none yet).
        pub(crate) fn started(&self) -> u32 {
            // ORDERING: a reading of progress; Acquire so that a pool that sees
            // an item started also sees the child's earlier writes to the word.
            started(self.word().load(Ordering::Acquire))
        }

        /// The last item the child may start.
        pub(crate) fn allowed(&self) -> u32 {
            // ORDERING: as in `started`.
            allowed(self.word().load(Ordering::Acquire))
        }

        /// Whether `item` was started, or may still be: not taken back.
        pub(crate) fn allows(&self, item: u32) -> bool {
            // ORDERING: as in `started`.
            !before(allowed(self.word().load(Ordering::Acquire)), item)
        }

        /// The child: starts `item` if the pool still allows it; `false` if
        /// it was taken back, and then the child must not run it.
        pub(crate) fn start(&self, item: u32) -> bool {
            // ORDERING: as in `allow`.
            self.word()
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                    (!before(allowed(word), item)).then(|| pack(allowed(word), item))
                })
                .is_ok()
        }
    }

    impl Drop for Gate {
        fn drop(&mut self) {
            // SAFETY: `word` is the start of the mapping `map` made, of `LEN`
            // bytes, and no reference into it outlives `self`.
            unsafe { libc::munmap(self.word.cast_mut().cast(), LEN) };
        }
    }

    #[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
    mod sys {
        use super::*;

        /// A close-on-exec memfd of `len` bytes, sealed at that size, so that
        /// neither side can shrink it under the other's mapping.
        pub(super) fn shared_page(len: usize) -> io::Result<OwnedFd> {
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

    #[cfg(not(all(target_os = "linux", not(concurrent_futures_portable_unix))))]
    mod sys {
        use super::*;
        use std::hash::{BuildHasher, RandomState};

        /// A POSIX shared memory object of `len` bytes under a random name,
        /// unlinked at once: only the descriptor reaches it.
        pub(super) fn shared_page(len: usize) -> io::Result<OwnedFd> {
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
}

/// No gate on Windows yet: the pool sends one call at a time there.
#[cfg(windows)]
#[derive(Debug)]
pub(crate) enum Gate {}

#[cfg(windows)]
impl Gate {
    pub(crate) fn allow(&self, _mark: u32, _item: u32) -> bool {
        match *self {}
    }

    pub(crate) fn take_back(&self, _from: u32) -> bool {
        match *self {}
    }

    pub(crate) fn started(&self) -> u32 {
        match *self {}
    }

    pub(crate) fn allowed(&self) -> u32 {
        match *self {}
    }

    pub(crate) fn allows(&self, _item: u32) -> bool {
        match *self {}
    }

    pub(crate) fn start(&self, _item: u32) -> bool {
        match *self {}
    }
}

#[cfg(all(test, unix, not(miri)))]
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
        assert!(!pool.allow(3, 4), "the pool sees its items were taken back");
        assert!(pool.allow(2, 4));
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
        let starter = std::thread::spawn(move || (1..=ITEMS).filter(|&i| child.start(i)).count());
        let mut taken = 0;
        for item in (1..=ITEMS).rev().step_by(97) {
            if pool.take_back(item) {
                taken = ITEMS - item + 1;
            }
        }
        let started = starter.join().unwrap() as u32;
        assert_eq!(
            started + taken,
            ITEMS,
            "every item started or taken back, once"
        );
    }
}
