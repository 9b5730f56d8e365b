//! Layer: mpi. May use: std only.
//! A worker's start gate: one word shared by its serving thread and its
//! task thread, which decides, for each item of the task message being
//! run, whether the task thread starts it or the hub takes it back (a
//! `map` chunk cut after its running item, its rest given to other
//! workers).
//!
//! The word holds two counts of the message's items: `allowed`, how many
//! may start, and `started`, how many have. The serving thread sets both
//! ([`open`](Gate::open)) before it hands the message to the task thread;
//! then the two threads only ever change the word with a compare-and-swap:
//!
//! ```text
//!                  task thread: started < allowed
//!  (not started) ──────────start: started + 1──────────▶ started
//!        │
//!        └──cut: allowed lowered, never below started──▶ taken back
//!           (serving thread, on the hub's request)
//! ```
//!
//! A compare-and-swap changes the word only if nothing changed it since it
//! was read, so for each item exactly one of the two wins: the task thread
//! starts it, or a cut that left it out of `allowed` did. The items that
//! run are exactly the `allowed` a cut leaves. A cut is made only once an
//! item has started (never before a chunk's first): right after the item
//! running, if it is slow, else halfway through the items not started, so
//! that a chunk of quick items splits evenly between two workers.

use std::sync::atomic::{AtomicU64, Ordering};

/// A worker's start gate; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// `allowed` in the high half, `started` in the low half.
    word: AtomicU64,
}

fn word(allowed: u32, started: u32) -> u64 {
    u64::from(allowed) << 32 | u64::from(started)
}

/// `(allowed, started)`.
fn counts(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

impl Gate {
    /// The serving thread, before handing over a message of `count` items:
    /// all of them may start, none has.
    pub(crate) fn open(&self, count: u32) {
        // ORDERING: Relaxed: the task thread learns of the message through
        // the channel that carries it, which orders this store before its
        // first read. The word publishes no other memory.
        self.word.store(word(count, 0), Ordering::Relaxed);
    }

    /// The task thread, before each item: starts the next item, or `false`
    /// if it was taken back.
    pub(crate) fn start(&self) -> bool {
        // ORDERING: Relaxed: every change of the word is a read-modify-write
        // of this one word, so its modification order alone decides which
        // of `start` and `cut` wins an item; the items' outcomes travel
        // through a channel, not through the word.
        let mut now = self.word.load(Ordering::Relaxed);
        loop {
            let (allowed, started) = counts(now);
            if started >= allowed {
                return false;
            }
            let next = word(allowed, started + 1);
            match (self.word).compare_exchange_weak(now, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(changed) => now = changed,
            }
        }
    }

    /// How many items have started: which one runs, for the serving
    /// thread to tell how long it has.
    pub(crate) fn started(&self) -> u32 {
        // ORDERING: Relaxed, as in `start`: a glance, decides nothing.
        counts(self.word.load(Ordering::Relaxed)).1
    }

    /// The serving thread: once an item has started, takes back the items
    /// not started yet: all of them if `slow` (the item running is), else
    /// the later half. Returns how many items run in all: 0 if none has
    /// started yet (nothing was taken back), all those allowed if every one
    /// has started (nothing to take back).
    pub(crate) fn cut(&self, slow: bool) -> u32 {
        // ORDERING: Relaxed, as in `start`.
        let mut now = self.word.load(Ordering::Relaxed);
        loop {
            let (allowed, started) = counts(now);
            if started == 0 || started >= allowed {
                return started.min(allowed);
            }
            let keep = if slow { 0 } else { (allowed - started) / 2 };
            let next = word(started + keep, started);
            match (self.word).compare_exchange_weak(now, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return started + keep,
                Err(changed) => now = changed,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    use super::*;

    #[test]
    fn a_cut_takes_back_what_has_not_started() {
        let gate = Gate::default();
        gate.open(5);
        assert_eq!(gate.cut(true), 0, "nothing started: nothing taken back");
        assert!(gate.start() && gate.start());
        assert_eq!(gate.cut(true), 2, "items 2 to 4 taken back");
        assert!(!gate.start(), "a taken-back item never starts");
        assert_eq!(gate.cut(true), 2, "a second cut changes nothing");
        gate.open(2);
        assert!(gate.start() && gate.start() && !gate.start());
        assert_eq!(gate.cut(true), 2, "all started: nothing to take back");
    }

    #[test]
    fn a_cut_behind_a_quick_item_keeps_half_of_the_rest() {
        let gate = Gate::default();
        gate.open(10);
        assert!(gate.start());
        assert_eq!(gate.started(), 1);
        assert_eq!(gate.cut(false), 5, "items 1 to 4 kept, 5 to 9 taken back");
        assert!((1..5).all(|_| gate.start()) && !gate.start());
        assert_eq!(gate.cut(false), 5, "all that is left started");
        gate.open(2);
        assert!(gate.start());
        assert_eq!(gate.cut(false), 1, "the last one alone goes");
    }

    /// A cut racing the task thread, many times over: the items that ran
    /// are exactly those the cut says, never one more or one fewer.
    #[test]
    fn a_cut_racing_the_items_loses_none_and_adds_none() {
        const ITEMS: u32 = 64;
        for round in 0..2_000_u32 {
            let gate = Arc::new(Gate::default());
            gate.open(ITEMS);
            let ran = Arc::new(AtomicU32::new(0));
            let task = {
                let (gate, ran) = (Arc::clone(&gate), Arc::clone(&ran));
                std::thread::spawn(move || {
                    while gate.start() {
                        // ORDERING: Relaxed: read after the join.
                        ran.fetch_add(1, Ordering::Relaxed);
                    }
                })
            };
            // Cut at a point that varies from round to round, once an
            // item has started.
            for _ in 0..round % 97 {
                std::hint::spin_loop();
            }
            let cut = std::iter::repeat_with(|| gate.cut(round % 2 == 0))
                .find(|&at| at > 0)
                .expect("an endless iterator");
            task.join().expect("the task thread");
            // ORDERING: Relaxed: the join orders the thread's adds first.
            assert_eq!(ran.load(Ordering::Relaxed), cut, "round {round}");
        }
    }
}
