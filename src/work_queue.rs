//! Layer: pools. May use: `error`, `executor` and `panic`. [`WorkQueue`]:
//! one pool's queue, and the lazily grown set of threads that serve it.
//!
//! The thread pool and the process transport are built on it. The thread
//! pool's queue threads run its tasks themselves; the process transport's
//! each drive one child process. What the queue holds is an [`Entry`]: a
//! task of the thread pool, or work of a remote pool.
//!
//! Submitting puts an entry on one crossbeam channel and starts a thread when
//! no idle one will take it, up to `max_workers`. The channel's only sender
//! sits behind a mutex, so a submit that races a shutdown is either queued
//! (and will be served) or refused with [`Error::Shutdown`], never lost.
//!
//! The queue's lifecycle is [`Intake`]; once closed it never opens again:
//!
//! ```text
//! Open ──shutdown──▶ ShutDown ──stop──▶ Stopped
//!   │ │                 │                  ▲
//!   │ └─────────────────┼───────stop───────┤
//!   └──break_pool──▶ Broken ◀──break_pool──┘
//!                     └─────────stop───────┘
//! ```
//!
//! `Stopped` is a process pool whose workers `terminate_workers` or
//! `kill_workers` stop: nothing runs again there, not even work given back,
//! and no new worker starts.
//!
//! Work that a process manager sent ahead and took back (its child was
//! busy) goes to a second queue, of work [given back](WorkQueue::give_back),
//! which every queue thread serves before the first: that work was
//! submitted earlier. A thread that waits blocks on the first queue alone
//! (a wait on two channels made a serial round trip twice as slow); each
//! entry given back sends it an empty one, which wakes it to look.
//!
//! A queue thread is idle while it waits for an entry, and busy while it
//! serves one. It takes entries through its [`Taker`]: each entry comes
//! with a [`Busy`], which counts the thread idle again exactly once, when
//! it [ends](Busy::end) (becoming [`Idle`]) or is dropped, and which
//! borrows the taker, so that no next entry can be taken while the thread
//! is busy:
//!
//! ```text
//! Idle (in Taker::take) ──an entry──▶ Busy ──end / drop──▶ Idle
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, ThreadId};

use crossbeam_channel::{Receiver, Sender};

use crate::{Error, Shutdown, panic};

/// Work that can be refused: it must resolve its futures with the reason.
pub(crate) trait Entry: Send + 'static {
    /// Resolves the entry's futures with `error`, without running anything.
    fn fail(self, error: Error);
}

/// What a queue thread runs; it takes entries from its [`WorkQueue::taker`] until
/// `None`.
pub(crate) type Body<J> = Arc<dyn Fn(&Arc<WorkQueue<J>>) + Send + Sync>;

/// The threads and queue of one pool.
pub(crate) struct WorkQueue<J> {
    state: Mutex<State<J>>,
    /// Signalled when a shutdown finishes joining the threads it took.
    joined: Condvar,
    /// A handle on the queue, for the queue threads and for draining it.
    /// `None` entries only wake a thread to look at `returned`.
    channel: Receiver<Option<J>>,
    /// Work given back, served first.
    returned: Mutex<VecDeque<J>>,
    /// How many entries `returned` holds, read without its lock.
    returned_len: AtomicUsize,
    /// WorkQueue threads waiting for an entry, or about to.
    idle: AtomicUsize,
    max_workers: usize,
    name_prefix: String,
    stack_size: Option<usize>,
    body: Body<J>,
}

/// Whether the queue takes entries; see the module's diagram.
enum Intake<J> {
    Open(Sender<Option<J>>),
    ShutDown,
    /// Its pool stops its workers: nothing is to run again.
    Stopped,
    /// The pool broke, for this reason.
    Broken(String),
}

struct State<J> {
    intake: Intake<J>,
    /// The threads not joined yet.
    threads: Vec<JoinHandle<()>>,
    /// Every thread ever started, so a shutdown can tell if a worker calls it.
    ids: Vec<ThreadId>,
    /// How many shutdowns are joining threads they took out of `threads`.
    joining: usize,
    /// Whether a shutdown cancelled the queued work: work given back
    /// after it is cancelled too.
    cancelled: bool,
}

impl<J: Entry> WorkQueue<J> {
    pub(crate) fn new(
        max_workers: usize,
        name_prefix: String,
        stack_size: Option<usize>,
        body: Body<J>,
    ) -> Self {
        let (sender, channel) = crossbeam_channel::unbounded();
        Self {
            state: Mutex::new(State {
                intake: Intake::Open(sender),
                threads: Vec::new(),
                ids: Vec::new(),
                joining: 0,
                cancelled: false,
            }),
            joined: Condvar::new(),
            channel,
            returned: Mutex::new(VecDeque::new()),
            returned_len: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            max_workers,
            name_prefix,
            stack_size,
            body,
        }
    }

    pub(crate) fn max_workers(&self) -> usize {
        self.max_workers
    }

    fn lock(&self) -> MutexGuard<'_, State<J>> {
        // No code that can panic runs under this lock, so a poisoned lock
        // still guards consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `entry`, starting a worker if no idle one will take it. An entry
    /// that cannot be served (shut down, broken, no worker) fails with the
    /// reason.
    pub(crate) fn enqueue(self: &Arc<Self>, entry: J) {
        let mut state = self.lock();
        let refusal = match &state.intake {
            Intake::Broken(reason) => Error::BrokenExecutor {
                reason: reason.clone(),
            },
            Intake::ShutDown | Intake::Stopped => Error::Shutdown,
            Intake::Open(sender) => {
                // The receiver lives in `self.channel`, so the send cannot fail.
                let _ = sender.send(Some(entry));
                // ORDERING: SeqCst, paired with the fence in `took`: either
                // this load sees a thread that took an entry as busy, or that
                // thread sees this entry queued (and starts a thread for it).
                fence(Ordering::SeqCst);
                // ORDERING: otherwise a heuristic; see `mark_idle`.
                let idle = self.idle.load(Ordering::Relaxed);
                if self.channel.len() > idle
                    && state.threads.len() < self.max_workers
                    && let Err(error) = self.start_thread(&mut state)
                    && state.threads.is_empty()
                {
                    // Nobody would ever serve the queue: fail it now.
                    drop(state);
                    self.channel
                        .try_iter()
                        .flatten()
                        .for_each(|entry| entry.fail(error.clone()));
                }
                return;
            }
        };
        drop(state);
        entry.fail(refusal);
    }

    fn start_thread(self: &Arc<Self>, state: &mut State<J>) -> Result<(), Error> {
        let name = format!("{}_{}", self.name_prefix, state.threads.len());
        let mut builder = thread::Builder::new().name(name);
        if let Some(bytes) = self.stack_size {
            builder = builder.stack_size(bytes);
        }
        let queue = Arc::clone(self);
        let handle = builder
            .spawn(move || {
                // The body catches everything user code does; should a panic
                // get through anyway, the thread is replaced, not lost (its
                // taker took it out of the idle count as it unwound).
                if panic::catch(|| (queue.body)(&queue)).is_err() {
                    queue.replace_dead_thread();
                }
            })
            .map_err(|error| Error::SpawnFailed {
                reason: error.to_string(),
            })?;
        state.ids.push(handle.thread().id());
        state.threads.push(handle);
        Ok(())
    }

    /// A taker for the calling queue thread, which counts it idle until the
    /// taker is dropped (the thread exits, or unwinds), except during its
    /// turns: the one way to take entries. Each thread takes one, once.
    pub(crate) fn taker(self: &Arc<Self>) -> Taker<'_, J> {
        self.mark_idle();
        Taker { queue: self }
    }

    /// The calling queue thread took an entry off the queue: it is busy. A
    /// submit in between its taking and this count saw it still idle, and
    /// started no thread for its entry, which would then wait for a busy
    /// thread while the pool had room for another: so if work is queued
    /// that the idle threads will not all take, a thread starts now.
    fn took(self: &Arc<Self>) {
        self.mark_busy();
        // ORDERING: SeqCst, paired with the fence in `enqueue` (after its
        // send, before its load of `idle`).
        fence(Ordering::SeqCst);
        // ORDERING: the counts are heuristics, as in `enqueue`, whose test
        // this repeats under the lock.
        if self.channel.len() > self.idle.load(Ordering::Relaxed) {
            let mut state = self.lock();
            if matches!(state.intake, Intake::Open(_))
                && self.channel.len() > self.idle.load(Ordering::Relaxed)
                && state.threads.len() < self.max_workers
            {
                // If it fails, the threads there serve the work when free.
                let _ = self.start_thread(&mut state);
            }
        }
    }

    /// Puts `entries`, not started, back on the queue for another thread, and
    /// takes the calling thread out of the pool: it exits, and no longer
    /// counts toward `max_workers`. If the queue is closed, each entry fails
    /// with `error` instead.
    // Only the process pool's managers give an entry back (a worker that would
    // not start, or was busy), and the process pool is built only on Linux,
    // macOS and Windows.
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    pub(crate) fn requeue_and_exit(&self, entries: Vec<J>, error: Error) {
        let mut state = self.lock();
        self.forget_current_thread(&mut state);
        match &state.intake {
            Intake::Open(_) => entries
                .into_iter()
                .for_each(|entry| self.put_back(&state, entry)),
            Intake::ShutDown | Intake::Stopped | Intake::Broken(_) => {
                drop(state);
                entries
                    .into_iter()
                    .for_each(|entry| entry.fail(error.clone()));
            }
        }
    }

    /// Gives back `entries` that a queue thread took but did not start, for the
    /// next thread free (served before the queue), starting a thread if
    /// none is idle and the pool has room. After a shutdown that cancelled
    /// the queued work, they are dropped unrun (their futures resolve as
    /// cancelled); after a break, they fail as the queue's did. The calling
    /// thread serves them itself once it is free, so none waits for ever.
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    pub(crate) fn give_back(self: &Arc<Self>, entries: impl IntoIterator<Item = J>) {
        let mut state = self.lock();
        if let Intake::Broken(reason) = &state.intake {
            let error = Error::BrokenExecutor {
                reason: reason.clone(),
            };
            drop(state);
            entries
                .into_iter()
                .for_each(|entry| entry.fail(error.clone()));
            return;
        }
        if state.cancelled {
            drop(state);
            for entry in entries {
                let _ = panic::catch(move || drop(entry));
            }
            return;
        }
        entries
            .into_iter()
            .for_each(|entry| self.put_back(&state, entry));
        // ORDERING: a heuristic, as in `enqueue`; and see `put_back`.
        let (idle, given) = (
            self.idle.load(Ordering::Relaxed),
            self.returned_len.load(Ordering::Relaxed),
        );
        if given > idle && state.threads.len() < self.max_workers {
            // If it fails, the threads there serve the work when free.
            let _ = self.start_thread(&mut state);
        }
    }

    /// Whether work given back now would find a thread: an idle one, or
    /// room to start one.
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    pub(crate) fn could_take_more(&self) -> bool {
        // ORDERING: a heuristic, as in `enqueue`.
        self.idle.load(Ordering::Relaxed) > 0 || self.lock().threads.len() < self.max_workers
    }

    /// Whether a shutdown cancelled the queued work.
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    pub(crate) fn cancelled(&self) -> bool {
        self.lock().cancelled
    }

    /// Queues `entry` with the work given back, and wakes a waiting thread
    /// to look (while the queue is open; after a shutdown, the thread that
    /// gave it back serves it once it is free, if no other does).
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    fn put_back(&self, state: &State<J>, entry: J) {
        self.returned_lock().push_back(entry);
        // ORDERING: a count of what the deque holds, changed under its
        // lock; readers without the lock only skip an empty deque, and a
        // stale zero is caught by the wake-up entry sent next.
        self.returned_len.fetch_add(1, Ordering::Relaxed);
        if let Intake::Open(sender) = &state.intake {
            // The receiver lives in `self.channel`, so the send cannot fail.
            let _ = sender.send(None);
        }
    }

    /// Takes the calling thread's handle out of the pool, detaching it.
    fn forget_current_thread(&self, state: &mut State<J>) {
        let me = thread::current().id();
        state.threads.retain(|handle| handle.thread().id() != me);
    }

    /// What a queue thread that panicked does before it exits: leaves the
    /// pool, and starts a replacement if work waits.
    fn replace_dead_thread(self: &Arc<Self>) {
        let mut state = self.lock();
        self.forget_current_thread(&mut state);
        if let Intake::Open(_) = state.intake
            && !(self.channel.is_empty() && self.returned_lock().is_empty())
        {
            // If even that fails, the queued work waits for the next submit.
            let _ = self.start_thread(&mut state);
        }
    }

    /// Marks the pool broken: closes the queue and fails every queued entry.
    pub(crate) fn break_pool(&self, reason: String) {
        {
            let mut state = self.lock();
            if !matches!(state.intake, Intake::Broken(_) | Intake::Stopped) {
                state.intake = Intake::Broken(reason.clone());
            }
        }
        let error = Error::BrokenExecutor { reason };
        while let Some(entry) = self.try_next() {
            entry.fail(error.clone());
        }
    }

    /// Closes the queue for good and cancels everything in it, work given
    /// back later included: its pool is stopping its workers, and nothing
    /// is to run again (see [`stopped`](Self::stopped)).
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    pub(crate) fn stop(&self) {
        {
            let mut state = self.lock();
            state.intake = Intake::Stopped;
            state.cancelled = true;
        }
        while let Some(entry) = self.try_next() {
            let _ = panic::catch(move || drop(entry));
        }
    }

    /// Whether [`stop`](Self::stop) was called: a process pool's
    /// dispatcher then starts no child and drops what it holds unrun.
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    pub(crate) fn stopped(&self) -> bool {
        matches!(self.lock().intake, Intake::Stopped)
    }

    /// Closes the queue, as `how` says. With `wait`, returns once every
    /// worker has exited and been joined, even while another thread is
    /// shutting down too. A worker that calls it (a task may shut down its
    /// own pool) joins the others but cannot wait for itself: it puts its
    /// own handle back, for a later shutdown (the pool's drop) to join.
    pub(crate) fn shutdown(&self, how: Shutdown) {
        {
            let mut state = self.lock();
            if let Intake::Open(_) = state.intake {
                state.intake = Intake::ShutDown;
            }
            state.cancelled |= how.cancel_futures;
        }
        if how.cancel_futures {
            // Dropping an entry unrun resolves its futures as cancelled. It
            // also drops a thread-pool task's argument: user code, caught.
            while let Some(entry) = self.try_next() {
                let _ = panic::catch(move || drop(entry));
            }
        }
        if !how.wait {
            return;
        }
        let me = thread::current().id();
        let mut state = self.lock();
        let inside = state.ids.contains(&me);
        loop {
            let threads = std::mem::take(&mut state.threads);
            if threads.is_empty() {
                // Another shutdown may still be joining the threads it took:
                // wait for it, unless this is a worker, which it may be
                // joining.
                if inside || state.joining == 0 {
                    return;
                }
                state = self
                    .joined
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.joining += 1;
            drop(state);
            let mut own = None;
            for handle in threads {
                if handle.thread().id() == me {
                    own = Some(handle);
                } else {
                    // WorkQueue threads catch every task panic, so a join error cannot
                    // happen; if it did, there would be nothing left to clean up.
                    let _ = handle.join();
                }
            }
            state = self.lock();
            state.joining -= 1;
            state.threads.extend(own);
            self.joined.notify_all();
            if inside {
                return;
            }
        }
    }
}

impl<J> WorkQueue<J> {
    fn returned_lock(&self) -> MutexGuard<'_, VecDeque<J>> {
        // No code that can panic runs under this lock.
        self.returned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The oldest entry given back, if there is one.
    fn take_returned(&self) -> Option<J> {
        // ORDERING: see `put_back`; an empty deque is skipped without the
        // lock.
        if self.returned_len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let entry = self.returned_lock().pop_front();
        if entry.is_some() {
            // ORDERING: as in `put_back`.
            self.returned_len.fetch_sub(1, Ordering::Relaxed);
        }
        entry
    }

    /// The next entry, given back or queued, without waiting.
    fn try_next(&self) -> Option<J> {
        self.take_returned()
            .or_else(|| self.channel.try_iter().flatten().next())
    }

    fn mark_idle(&self) {
        // ORDERING: `idle` only steers whether submit starts another thread;
        // a stale value costs a thread or a short wait, never correctness.
        // A caller who sees a result still sees this count, because
        // completing the future (a Release) comes after it.
        self.idle.fetch_add(1, Ordering::Relaxed);
    }

    fn mark_busy(&self) {
        // ORDERING: as in `mark_idle`.
        self.idle.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A queue thread's place at the queue; see [`WorkQueue::taker`].
pub(crate) struct Taker<'c, J> {
    queue: &'c Arc<WorkQueue<J>>,
}

impl<J: Entry> Taker<'_, J> {
    /// The next entry, waiting for one, with the [`Busy`] that ends it; `None`
    /// once the queue is closed and empty, when the thread should exit.
    /// The thread counts as idle while it waits here, and busy while it serves the
    /// entry.
    pub(crate) fn take(&mut self) -> Option<(J, Busy<'_, J>)> {
        let queue = self.queue;
        let entry = loop {
            if let Some(entry) = queue.take_returned() {
                break entry;
            }
            match queue.channel.recv() {
                Ok(Some(entry)) => break entry,
                // Work was given back: look again.
                Ok(None) => {}
                // Closed and empty: the thread exits, unless work was
                // given back meanwhile.
                Err(_) => break queue.take_returned()?,
            }
        };
        queue.took();
        Some((entry, Busy { queue }))
    }
}

impl<J> Drop for Taker<'_, J> {
    /// The thread leaves the pool: it no longer counts as idle. No [`Busy`] is
    /// open (it would borrow the taker), so the count holds this taker's one.
    fn drop(&mut self) {
        self.queue.mark_busy();
    }
}

impl<J> fmt::Debug for Taker<'_, J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Taker").finish_non_exhaustive()
    }
}

/// A queue thread's work on one entry: it counts the thread idle again when it
/// [ends](Busy::end), or when it is dropped, whichever comes first, once.
#[must_use = "a busy counts its thread busy until it ends"]
pub(crate) struct Busy<'s, J> {
    queue: &'s WorkQueue<J>,
}

impl<'s, J> Busy<'s, J> {
    /// Another entry for this same [`Busy`], if one is queued now: a thread that
    /// feeds a process several entries at once takes them without waiting,
    /// and stays counted busy once.
    // Only the process pool's managers take several entries at once.
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    pub(crate) fn take_another(&self) -> Option<J> {
        self.queue.try_next()
    }

    /// Ends it: the thread counts as idle again. Call it just before
    /// completing the entry's futures, so that a caller who sees a result and
    /// submits again finds the thread counted, and no thread is started.
    /// The returned [`Idle`] runs the futures' done callbacks as busy.
    pub(crate) fn end(self) -> Idle<'s, J> {
        let queue = self.queue;
        drop(self);
        Idle { queue }
    }
}

impl<J> Drop for Busy<'_, J> {
    /// Also when the thread unwinds: its taker, dropped next, then takes it
    /// out of the count.
    fn drop(&mut self) {
        self.queue.mark_idle();
    }
}

/// A thread that has served its entry, until it takes the next entry.
pub(crate) struct Idle<'s, J> {
    queue: &'s WorkQueue<J>,
}

impl<J> Idle<'_, J> {
    /// Runs `callbacks` (an entry's done callbacks) counted busy: a callback
    /// may block, or submit work and wait for it, and such work must then
    /// get another thread (up to `max_workers`), not wait for this one.
    pub(crate) fn busy_while(&self, callbacks: impl FnOnce()) {
        /// Counts the thread idle again, even if `callbacks` unwinds.
        struct Back<'c, J>(&'c WorkQueue<J>);
        impl<J> Drop for Back<'_, J> {
            fn drop(&mut self) {
                self.0.mark_idle();
            }
        }
        self.queue.mark_busy();
        let _back = Back(self.queue);
        callbacks();
    }
}

impl<J> fmt::Debug for Busy<'_, J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Busy").finish_non_exhaustive()
    }
}

impl<J> fmt::Debug for Idle<'_, J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idle").finish_non_exhaustive()
    }
}

impl<J> fmt::Debug for WorkQueue<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("WorkQueue")
            .field("max_workers", &self.max_workers)
            .field("threads", &state.threads.len())
            .field("queued", &self.channel.len())
            .field("given_back", &self.returned_len.load(Ordering::Relaxed))
            .field("shut_down", &!matches!(state.intake, Intake::Open(_)))
            .field(
                "broken",
                &match &state.intake {
                    Intake::Broken(reason) => Some(reason),
                    _ => None,
                },
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    impl Entry for Nothing {
        fn fail(self, _: Error) {}
    }

    fn idle<J>(queue: &WorkQueue<J>) -> usize {
        queue.idle.load(Ordering::Relaxed)
    }

    #[test]
    fn a_taker_counts_its_thread_idle_exactly_when_it_waits() {
        // No thread of its own (max_workers 0): this test's thread sits.
        let queue = Arc::new(WorkQueue::new(0, "test".into(), None, Arc::new(|_| ())));
        queue.enqueue(Nothing);
        queue.enqueue(Nothing);
        let mut taker = queue.taker();
        assert_eq!(idle(&queue), 1, "waiting");
        let (_, busy) = taker.take().expect("queued");
        assert_eq!(idle(&queue), 0, "on a busy");
        let after = busy.end();
        assert_eq!(idle(&queue), 1, "the busy ended");
        after.busy_while(|| assert_eq!(idle(&queue), 0, "running callbacks"));
        assert_eq!(idle(&queue), 1, "callbacks done");
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // resume_unwind: an unwind without the panic hook's message.
            after.busy_while(|| std::panic::resume_unwind(Box::new("a callback that escaped")));
        }));
        assert!(unwound.is_err());
        assert_eq!(idle(&queue), 1, "counted again after the unwind");
        // A `Busy` dropped (not ended), as on an early return or an unwind.
        drop(taker.take().expect("queued"));
        assert_eq!(idle(&queue), 1);
        drop(taker);
        assert_eq!(idle(&queue), 0, "the thread left");
    }

    /// An entry that counts how it ended: failed (with which error), or
    /// dropped unrun.
    struct Counted(std::sync::mpsc::Sender<Option<Error>>);

    impl Entry for Counted {
        fn fail(self, error: Error) {
            let _ = self.0.send(Some(error));
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            let _ = self.0.send(None);
        }
    }

    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    #[test]
    fn a_stopped_queue_runs_nothing_again_and_stays_stopped() {
        let queue = Arc::new(WorkQueue::new(0, "test".into(), None, Arc::new(|_| ())));
        let (report, ended) = std::sync::mpsc::channel();
        queue.enqueue(Counted(report.clone()));
        assert!(!queue.stopped());
        queue.stop();
        assert!(queue.stopped());
        assert!(
            matches!(ended.try_recv(), Ok(None)),
            "queued: dropped unrun"
        );
        queue.give_back([Counted(report.clone())]);
        assert!(
            matches!(ended.try_recv(), Ok(None)),
            "given back: dropped unrun"
        );
        queue.enqueue(Counted(report.clone()));
        assert!(
            matches!(ended.try_recv(), Ok(Some(Error::Shutdown))),
            "refused"
        );
        queue.break_pool("a child failed to start".into());
        queue.shutdown(Shutdown::default());
        assert!(queue.stopped(), "neither a break nor a shutdown undoes it");
        assert!(queue.try_next().is_none());
    }

    /// An entry that panics its queue thread (outside any task's catch) or
    /// reports that it ran.
    enum Test {
        Panic,
        Report(std::sync::mpsc::Sender<()>),
    }

    impl Entry for Test {
        fn fail(self, _: Error) {}
    }

    #[test]
    fn an_entry_queued_while_a_thread_takes_another_gets_a_thread() {
        // The race, one step at a time on this test's thread, which acts
        // as a queue thread through the queue's own steps: it waits (idle),
        // takes an entry off the queue, and before it counts itself busy a
        // submit comes, sees it idle and starts no thread. Before, nothing
        // more happened: the second entry waited for a busy thread while the
        // queue had room for another (the likely cause of a rare timeout of
        // tests/starmap.rs, whose three tasks wait for one another, seen
        // once under heavy load).
        let body: Body<Test> = Arc::new(|queue: &Arc<WorkQueue<Test>>| {
            let mut taker = queue.taker();
            while let Some((entry, _busy)) = taker.take() {
                if let Test::Report(done) = entry {
                    let _ = done.send(());
                }
            }
        });
        let queue = Arc::new(WorkQueue::new(2, "test".into(), None, body));
        queue.mark_idle();
        let (first, _) = std::sync::mpsc::channel();
        queue.enqueue(Test::Report(first));
        assert!(queue.lock().threads.is_empty(), "this thread was idle");
        let taken = queue.channel.recv().expect("queued").expect("an entry");
        let (done, ran) = std::sync::mpsc::channel();
        queue.enqueue(Test::Report(done));
        queue.took();
        ran.recv_timeout(std::time::Duration::from_secs(10))
            .expect("a thread started for the entry queued behind the one taken");
        drop(taken);
        queue.shutdown(Shutdown::default());
    }

    #[test]
    fn a_queue_thread_that_panics_is_replaced() {
        let body: Body<Test> = Arc::new(|queue: &Arc<WorkQueue<Test>>| {
            let mut taker = queue.taker();
            while let Some((entry, _busy)) = taker.take() {
                match entry {
                    // resume_unwind: an unwind without the hook's message.
                    Test::Panic => std::panic::resume_unwind(Box::new("a bug outside every catch")),
                    Test::Report(done) => drop(done.send(())),
                }
            }
        });
        let queue = Arc::new(WorkQueue::new(1, "test".into(), None, body));
        queue.enqueue(Test::Panic);
        let (done, ran) = std::sync::mpsc::channel();
        queue.enqueue(Test::Report(done));
        // Before, the dead thread still counted toward max_workers: the
        // second entry waited forever.
        ran.recv_timeout(std::time::Duration::from_secs(10))
            .expect("a replacement thread ran the next entry");
        queue.shutdown(Shutdown::default());
        assert_eq!(idle(&queue), 0, "no thread left, none counted idle");
    }
}
