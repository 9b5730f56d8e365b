//! Layer: core. May use: `sync`. How a completing future tells those who
//! watch it: the mechanism under [`wait`](crate::wait),
//! [`as_completed`](crate::as_completed) and the unordered `map`. Each of
//! them registers a [`Watcher`] on every future it waits for, all
//! reporting to one [`Notify`]: a channel of the indexes of completed
//! futures, and the waker of a task polling it as a stream. The future's
//! state machine (`future.rs`) tells the watchers when it becomes terminal.

use std::sync::PoisonError;
use std::sync::atomic::AtomicU64;
use std::task::Waker;

use crossbeam_channel::{Receiver, Sender};

use crate::sync::{Arc, Mutex, MutexGuard, Ordering};

/// A request to be told, by index, when a future completes.
pub(crate) struct Watcher {
    key: u64,
    index: usize,
    notify: Arc<Notify>,
}

impl Watcher {
    /// Asks for `index` on `notify`; withdrawn by `key`.
    pub(crate) fn new(key: u64, index: usize, notify: &Arc<Notify>) -> Self {
        Watcher {
            key,
            index,
            notify: Arc::clone(notify),
        }
    }

    /// The key of the `wait` or `as_completed` call that registered it.
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    /// Tells its `wait` or `as_completed` that the future completed.
    pub(crate) fn tell(self) {
        self.notify.send(self.index);
    }
}

/// Where the watchers of one `wait` or `as_completed` report: a channel of
/// the indexes of completed futures, for a thread to block on, and the waker
/// of a task polling that channel as a stream.
pub(crate) struct Notify {
    completed: Sender<usize>,
    waker: Mutex<Option<Waker>>,
}

impl Notify {
    /// A new `Notify` and the receiving end of its channel.
    pub(crate) fn channel() -> (Arc<Self>, Receiver<usize>) {
        let (completed, completions) = crossbeam_channel::unbounded();
        let notify = Arc::new(Notify {
            completed,
            waker: Mutex::new(None),
        });
        (notify, completions)
    }

    /// Wakes `waker` at the next completion.
    pub(crate) fn set_waker(&self, waker: &Waker) {
        register(&mut self.waker_slot(), waker);
    }

    /// Reports that the future at `index` completed.
    pub(crate) fn send(&self, index: usize) {
        // The receiver may be gone (the waiter timed out); that is fine.
        let _ = self.completed.send(index);
        let waker = self.waker_slot().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn waker_slot(&self) -> MutexGuard<'_, Option<Waker>> {
        // Nothing panics while this lock is held.
        self.waker.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Stores `waker` in `slot`, unless the one there already wakes the same task.
pub(crate) fn register(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(old) if old.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// A fresh key for one call of `wait` or `as_completed`.
pub(crate) fn watch_key() -> u64 {
    // std's atomic even under loom: a static needs a const constructor, and
    // the key is no part of the state machine.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // ORDERING: only uniqueness matters, which any ordering of an RMW gives.
    NEXT.fetch_add(1, Ordering::Relaxed)
}
