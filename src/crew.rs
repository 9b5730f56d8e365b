//! Layer: core, under the pools. May use `Error` and `Shutdown`; no pool,
//! no transport. [`Crew`]: a lazily grown set of threads serving one job
//! queue.
//!
//! The thread pool and the process transport are built on it. The thread
//! pool's crew threads run jobs themselves; the process transport's (its
//! managers) each drive one child process.
//!
//! Submitting puts a job on one crossbeam channel and starts a thread when
//! no idle one will take it, up to `max_workers`. The channel's only sender
//! sits behind a mutex, so a submit that races a shutdown is either queued
//! (and will be served) or refused with [`Error::Shutdown`], never lost.
//!
//! The queue's lifecycle is [`Intake`]; once closed it never opens again:
//!
//! ```text
//! Open ──shutdown──▶ ShutDown
//!   │                   │
//!   └──break_pool──▶ Broken ◀──break_pool──┘
//! ```
//!
//! Work that a process manager sent ahead and took back (its child was
//! busy) goes to a second queue, of work [given back](Crew::give_back),
//! which every crew thread serves before the first: that work was
//! submitted earlier. A thread that waits blocks on the first queue alone
//! (a wait on two channels made a serial round trip twice as slow); each
//! job given back sends it an empty entry, which wakes it to look.
//!
//! A crew thread counts as idle while it waits for a job. It takes jobs
//! through its [`Seat`]: each job comes with a [`Turn`], which counts the
//! thread idle again exactly once, when it [ends](Turn::end) or is
//! dropped, and which borrows the seat, so that no next job can be taken
//! while a turn is open.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, ThreadId};

use crossbeam_channel::{Receiver, Sender};

use crate::{Error, Shutdown, panic};

/// Work that can be refused: it must resolve its futures with the reason.
pub(crate) trait Job: Send + 'static {
    /// Resolves the job's futures with `error`, without running anything.
    fn fail(self, error: Error);
}

/// What a crew thread runs; it takes jobs from its [`Crew::seat`] until
/// `None`.
pub(crate) type Body<J> = Arc<dyn Fn(&Arc<Crew<J>>) + Send + Sync>;

/// The threads and queue of one pool.
pub(crate) struct Crew<J> {
    state: Mutex<State<J>>,
    /// Signalled when a shutdown finishes joining the threads it took.
    joined: Condvar,
    /// A handle on the queue, for the crew threads and for draining it.
    /// `None` entries only wake a thread to look at `returned`.
    queue: Receiver<Option<J>>,
    /// Work given back, served first.
    returned: Mutex<VecDeque<J>>,
    /// How many jobs `returned` holds, read without its lock.
    returned_len: AtomicUsize,
    /// Crew threads waiting for a job, or about to.
    idle: AtomicUsize,
    max_workers: usize,
    name_prefix: String,
    stack_size: Option<usize>,
    body: Body<J>,
}

/// Whether the queue takes jobs; see the module's diagram.
enum Intake<J> {
    Open(Sender<Option<J>>),
    ShutDown,
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

impl<J: Job> Crew<J> {
    pub(crate) fn new(
        max_workers: usize,
        name_prefix: String,
        stack_size: Option<usize>,
        body: Body<J>,
    ) -> Self {
        let (sender, queue) = crossbeam_channel::unbounded();
        Self {
            state: Mutex::new(State {
                intake: Intake::Open(sender),
                threads: Vec::new(),
                ids: Vec::new(),
                joining: 0,
                cancelled: false,
            }),
            joined: Condvar::new(),
            queue,
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

    /// Queues `job`, starting a worker if no idle one will take it. A job
    /// that cannot be served (shut down, broken, no worker) fails with the
    /// reason.
    pub(crate) fn enqueue(self: &Arc<Self>, job: J) {
        let mut state = self.lock();
        let refusal = match &state.intake {
            Intake::Broken(reason) => Error::BrokenExecutor {
                reason: reason.clone(),
            },
            Intake::ShutDown => Error::Shutdown,
            Intake::Open(sender) => {
                // The receiver lives in `self.queue`, so the send cannot fail.
                let _ = sender.send(Some(job));
                // ORDERING: SeqCst, paired with the fence in `took`: either
                // this load sees a thread that took a job as busy, or that
                // thread sees this job queued (and starts a thread for it).
                fence(Ordering::SeqCst);
                // ORDERING: otherwise a heuristic; see `mark_idle`.
                let idle = self.idle.load(Ordering::Relaxed);
                if self.queue.len() > idle
                    && state.threads.len() < self.max_workers
                    && let Err(error) = self.start_thread(&mut state)
                    && state.threads.is_empty()
                {
                    // Nobody would ever serve the queue: fail it now.
                    drop(state);
                    self.queue
                        .try_iter()
                        .flatten()
                        .for_each(|job| job.fail(error.clone()));
                }
                return;
            }
        };
        drop(state);
        job.fail(refusal);
    }

    fn start_thread(self: &Arc<Self>, state: &mut State<J>) -> Result<(), Error> {
        let name = format!("{}_{}", self.name_prefix, state.threads.len());
        let mut builder = thread::Builder::new().name(name);
        if let Some(bytes) = self.stack_size {
            builder = builder.stack_size(bytes);
        }
        let crew = Arc::clone(self);
        let handle = builder
            .spawn(move || {
                // The body catches everything user code does; should a panic
                // get through anyway, the thread is replaced, not lost (its
                // seat took it out of the idle count as it unwound).
                if panic::catch(|| (crew.body)(&crew)).is_err() {
                    crew.replace_dead_thread();
                }
            })
            .map_err(|error| Error::SpawnFailed {
                reason: error.to_string(),
            })?;
        state.ids.push(handle.thread().id());
        state.threads.push(handle);
        Ok(())
    }

    /// A seat for the calling crew thread, which counts it idle until the
    /// seat is dropped (the thread exits, or unwinds), except during its
    /// turns: the one way to take jobs. Each thread takes one, once.
    pub(crate) fn seat(self: &Arc<Self>) -> Seat<'_, J> {
        self.mark_idle();
        Seat { crew: self }
    }

    /// The calling crew thread took a job off the queue: it is busy. A
    /// submit in between its taking and this count saw it still idle, and
    /// started no thread for its job, which would then wait for a busy
    /// thread while the pool had room for another: so if work is queued
    /// that the idle threads will not all take, a thread starts now.
    fn took(self: &Arc<Self>) {
        self.mark_busy();
        // ORDERING: SeqCst, paired with the fence in `enqueue` (after its
        // send, before its load of `idle`).
        fence(Ordering::SeqCst);
        // ORDERING: the counts are heuristics, as in `enqueue`, whose test
        // this repeats under the lock.
        if self.queue.len() > self.idle.load(Ordering::Relaxed) {
            let mut state = self.lock();
            if matches!(state.intake, Intake::Open(_))
                && self.queue.len() > self.idle.load(Ordering::Relaxed)
                && state.threads.len() < self.max_workers
            {
                // If it fails, the threads there serve the work when free.
                let _ = self.start_thread(&mut state);
            }
        }
    }

    /// Puts `jobs`, not started, back on the queue for another thread, and
    /// takes the calling thread out of the pool: it exits, and no longer
    /// counts toward `max_workers`. If the queue is closed, each job fails
    /// with `error` instead.
    // Only the process pool's managers give a job back (a worker that would
    // not start, or was busy), and the process pool is built only on Linux,
    // macOS and Windows.
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    pub(crate) fn requeue_and_exit(&self, jobs: Vec<J>, error: Error) {
        let mut state = self.lock();
        self.forget_current_thread(&mut state);
        match &state.intake {
            Intake::Open(_) => jobs.into_iter().for_each(|job| self.put_back(&state, job)),
            Intake::ShutDown | Intake::Broken(_) => {
                drop(state);
                jobs.into_iter().for_each(|job| job.fail(error.clone()));
            }
        }
    }

    /// Gives back `jobs` that a crew thread took but did not start, for the
    /// next thread free (served before the queue), starting a thread if
    /// none is idle and the pool has room. After a shutdown that cancelled
    /// the queued work, they are dropped unrun (their futures resolve as
    /// cancelled); after a break, they fail as the queue's did. The calling
    /// thread serves them itself once it is free, so none waits for ever.
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    pub(crate) fn give_back(self: &Arc<Self>, jobs: impl IntoIterator<Item = J>) {
        let mut state = self.lock();
        if let Intake::Broken(reason) = &state.intake {
            let error = Error::BrokenExecutor {
                reason: reason.clone(),
            };
            drop(state);
            jobs.into_iter().for_each(|job| job.fail(error.clone()));
            return;
        }
        if state.cancelled {
            drop(state);
            for job in jobs {
                let _ = panic::catch(move || drop(job));
            }
            return;
        }
        jobs.into_iter().for_each(|job| self.put_back(&state, job));
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

    /// Queues `job` with the work given back, and wakes a waiting thread
    /// to look (while the queue is open; after a shutdown, the thread that
    /// gave it back serves it once it is free, if no other does).
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    fn put_back(&self, state: &State<J>, job: J) {
        self.returned_lock().push_back(job);
        // ORDERING: a count of what the deque holds, changed under its
        // lock; readers without the lock only skip an empty deque, and a
        // stale zero is caught by the wake-up entry sent next.
        self.returned_len.fetch_add(1, Ordering::Relaxed);
        if let Intake::Open(sender) = &state.intake {
            // The receiver lives in `self.queue`, so the send cannot fail.
            let _ = sender.send(None);
        }
    }

    /// Takes the calling thread's handle out of the pool, detaching it.
    fn forget_current_thread(&self, state: &mut State<J>) {
        let me = thread::current().id();
        state.threads.retain(|handle| handle.thread().id() != me);
    }

    /// What a crew thread that panicked does before it exits: leaves the
    /// pool, and starts a replacement if work waits.
    fn replace_dead_thread(self: &Arc<Self>) {
        let mut state = self.lock();
        self.forget_current_thread(&mut state);
        if let Intake::Open(_) = state.intake
            && !(self.queue.is_empty() && self.returned_lock().is_empty())
        {
            // If even that fails, the queued work waits for the next submit.
            let _ = self.start_thread(&mut state);
        }
    }

    /// Marks the pool broken: closes the queue and fails every queued job.
    pub(crate) fn break_pool(&self, reason: String) {
        {
            let mut state = self.lock();
            if !matches!(state.intake, Intake::Broken(_)) {
                state.intake = Intake::Broken(reason.clone());
            }
        }
        let error = Error::BrokenExecutor { reason };
        while let Some(job) = self.try_next() {
            job.fail(error.clone());
        }
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
            // Dropping a job unrun resolves its futures as cancelled. It
            // also drops a thread-pool task's argument: user code, caught.
            while let Some(job) = self.try_next() {
                let _ = panic::catch(move || drop(job));
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
                    // Crew threads catch every task panic, so a join error cannot
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

impl<J> Crew<J> {
    fn returned_lock(&self) -> MutexGuard<'_, VecDeque<J>> {
        // No code that can panic runs under this lock.
        self.returned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The oldest job given back, if there is one.
    fn take_returned(&self) -> Option<J> {
        // ORDERING: see `put_back`; an empty deque is skipped without the
        // lock.
        if self.returned_len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let job = self.returned_lock().pop_front();
        if job.is_some() {
            // ORDERING: as in `put_back`.
            self.returned_len.fetch_sub(1, Ordering::Relaxed);
        }
        job
    }

    /// The next job, given back or queued, without waiting.
    fn try_next(&self) -> Option<J> {
        self.take_returned()
            .or_else(|| self.queue.try_iter().flatten().next())
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

/// A crew thread's place at the queue; see [`Crew::seat`].
pub(crate) struct Seat<'c, J> {
    crew: &'c Arc<Crew<J>>,
}

impl<J: Job> Seat<'_, J> {
    /// The next job, waiting for one, with the turn that ends it; `None`
    /// once the queue is closed and empty, when the thread should exit.
    /// The thread counts as idle while it waits here, and busy during the
    /// turn.
    pub(crate) fn next_job(&mut self) -> Option<(J, Turn<'_, J>)> {
        let crew = self.crew;
        let job = loop {
            if let Some(job) = crew.take_returned() {
                break job;
            }
            match crew.queue.recv() {
                Ok(Some(job)) => break job,
                // Work was given back: look again.
                Ok(None) => {}
                // Closed and empty: the thread exits, unless work was
                // given back meanwhile.
                Err(_) => break crew.take_returned()?,
            }
        };
        crew.took();
        Some((job, Turn { crew }))
    }
}

impl<J> Drop for Seat<'_, J> {
    /// The thread leaves the pool: it no longer counts as idle. No turn is
    /// open (it would borrow the seat), so the count holds this seat's one.
    fn drop(&mut self) {
        self.crew.mark_busy();
    }
}

impl<J> fmt::Debug for Seat<'_, J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Seat").finish_non_exhaustive()
    }
}

/// A crew thread's work on one job: it counts the thread idle again when it
/// [ends](Turn::end), or when it is dropped, whichever comes first, once.
#[must_use = "a turn counts its thread busy until it ends"]
pub(crate) struct Turn<'s, J> {
    crew: &'s Crew<J>,
}

impl<'s, J> Turn<'s, J> {
    /// Another job for this same turn, if one is queued now: a thread that
    /// feeds a process several jobs at once takes them without waiting,
    /// and stays counted busy once.
    // Only the process pool's managers take several jobs a turn.
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    pub(crate) fn another_job(&self) -> Option<J> {
        self.crew.try_next()
    }

    /// Ends the turn: the thread counts as idle again. Call it just before
    /// completing the job's futures, so that a caller who sees a result and
    /// submits again finds the thread counted, and no thread is started.
    /// The returned [`Idle`] runs the futures' done callbacks as busy.
    pub(crate) fn end(self) -> Idle<'s, J> {
        let crew = self.crew;
        drop(self);
        Idle { crew }
    }
}

impl<J> Drop for Turn<'_, J> {
    /// Also when the thread unwinds: its seat, dropped next, then takes it
    /// out of the count.
    fn drop(&mut self) {
        self.crew.mark_idle();
    }
}

/// A thread whose turn has ended, until it takes the next job.
pub(crate) struct Idle<'s, J> {
    crew: &'s Crew<J>,
}

impl<J> Idle<'_, J> {
    /// Runs `callbacks` (a job's done callbacks) counted busy: a callback
    /// may block, or submit work and wait for it, and such work must then
    /// get another thread (up to `max_workers`), not wait for this one.
    pub(crate) fn busy_while(&self, callbacks: impl FnOnce()) {
        /// Counts the thread idle again, even if `callbacks` unwinds.
        struct Back<'c, J>(&'c Crew<J>);
        impl<J> Drop for Back<'_, J> {
            fn drop(&mut self) {
                self.0.mark_idle();
            }
        }
        self.crew.mark_busy();
        let _back = Back(self.crew);
        callbacks();
    }
}

impl<J> fmt::Debug for Turn<'_, J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turn").finish_non_exhaustive()
    }
}

impl<J> fmt::Debug for Idle<'_, J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idle").finish_non_exhaustive()
    }
}

impl<J> fmt::Debug for Crew<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Crew")
            .field("max_workers", &self.max_workers)
            .field("threads", &state.threads.len())
            .field("queued", &self.queue.len())
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

    impl Job for Nothing {
        fn fail(self, _: Error) {}
    }

    fn idle<J>(crew: &Crew<J>) -> usize {
        crew.idle.load(Ordering::Relaxed)
    }

    #[test]
    fn a_seat_counts_its_thread_idle_exactly_when_it_waits() {
        // No thread of its own (max_workers 0): this test's thread sits.
        let crew = Arc::new(Crew::new(0, "test".into(), None, Arc::new(|_| ())));
        crew.enqueue(Nothing);
        crew.enqueue(Nothing);
        let mut seat = crew.seat();
        assert_eq!(idle(&crew), 1, "waiting");
        let (_, turn) = seat.next_job().expect("queued");
        assert_eq!(idle(&crew), 0, "on a turn");
        let after = turn.end();
        assert_eq!(idle(&crew), 1, "the turn ended");
        after.busy_while(|| assert_eq!(idle(&crew), 0, "running callbacks"));
        assert_eq!(idle(&crew), 1, "callbacks done");
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // resume_unwind: an unwind without the panic hook's message.
            after.busy_while(|| std::panic::resume_unwind(Box::new("a callback that escaped")));
        }));
        assert!(unwound.is_err());
        assert_eq!(idle(&crew), 1, "counted again after the unwind");
        // A turn dropped (not ended), as on an early return or an unwind.
        drop(seat.next_job().expect("queued"));
        assert_eq!(idle(&crew), 1);
        drop(seat);
        assert_eq!(idle(&crew), 0, "the thread left");
    }

    /// A job that panics its crew thread (outside any task's catch) or
    /// reports that it ran.
    enum Test {
        Panic,
        Report(std::sync::mpsc::Sender<()>),
    }

    impl Job for Test {
        fn fail(self, _: Error) {}
    }

    #[test]
    fn a_job_queued_while_a_thread_takes_another_gets_a_thread() {
        // The race, one step at a time on this test's thread, which acts
        // as a crew thread through the crew's own steps: it waits (idle),
        // takes a job off the queue, and before it counts itself busy a
        // submit comes, sees it idle and starts no thread. Before, nothing
        // more happened: the second job waited for a busy thread while the
        // crew had room for another (the likely cause of a rare timeout of
        // tests/starmap.rs, whose three tasks wait for one another, seen
        // once under heavy load).
        let body: Body<Test> = Arc::new(|crew: &Arc<Crew<Test>>| {
            let mut seat = crew.seat();
            while let Some((job, _turn)) = seat.next_job() {
                if let Test::Report(done) = job {
                    let _ = done.send(());
                }
            }
        });
        let crew = Arc::new(Crew::new(2, "test".into(), None, body));
        crew.mark_idle();
        let (first, _) = std::sync::mpsc::channel();
        crew.enqueue(Test::Report(first));
        assert!(crew.lock().threads.is_empty(), "this thread was idle");
        let taken = crew.queue.recv().expect("queued").expect("a job");
        let (done, ran) = std::sync::mpsc::channel();
        crew.enqueue(Test::Report(done));
        crew.took();
        ran.recv_timeout(std::time::Duration::from_secs(10))
            .expect("a thread started for the job queued behind the one taken");
        drop(taken);
        crew.shutdown(Shutdown::default());
    }

    #[test]
    fn a_crew_thread_that_panics_is_replaced() {
        let body: Body<Test> = Arc::new(|crew: &Arc<Crew<Test>>| {
            let mut seat = crew.seat();
            while let Some((job, _turn)) = seat.next_job() {
                match job {
                    // resume_unwind: an unwind without the hook's message.
                    Test::Panic => std::panic::resume_unwind(Box::new("a bug outside every catch")),
                    Test::Report(done) => drop(done.send(())),
                }
            }
        });
        let crew = Arc::new(Crew::new(1, "test".into(), None, body));
        crew.enqueue(Test::Panic);
        let (done, ran) = std::sync::mpsc::channel();
        crew.enqueue(Test::Report(done));
        // Before, the dead thread still counted toward max_workers: the
        // second job waited forever.
        ran.recv_timeout(std::time::Duration::from_secs(10))
            .expect("a replacement thread ran the next job");
        crew.shutdown(Shutdown::default());
        assert_eq!(idle(&crew), 0, "no thread left, none counted idle");
    }
}
