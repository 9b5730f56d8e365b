//! Layer: process. May use: `process::sys`.
//! The start gate: a page of memory shared by the pool and one child, which decides,
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
//! The page is `sys`'s (`page`, `map_page`): a sealed `memfd` on Linux, an
//! unlinked POSIX shared memory object on the other Unixes, and a section
//! backed by the paging file on Windows, handed to the child as its handle (a descriptor passed with
//! `SCM_RIGHTS`, or a handle it inherits). Each side maps it and closes the
//! handle, so a task of the child cannot reach it through one. What the
//! child writes there is only a claim: the pool never takes a number from
//! it as a bound for memory or as proof that a result belongs to a call
//! (answers carry their item numbers, checked against the call in flight).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use super::sys::{self, Page};

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
    /// The start of a shared mapping of `LEN` bytes (made by `sys::map_page`),
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
        let page = sys::page(LEN)?;
        let base = sys::map_page(&page, LEN)?;
        Ok((Gate { base }, page))
    }

    /// Maps the gate whose page the pool handed over.
    pub(crate) fn adopt(page: Page) -> io::Result<Gate> {
        sys::check_page(&page, LEN)?;
        let base = sys::map_page(&page, LEN)?;
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
        sys::unmap(self.base, LEN);
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
