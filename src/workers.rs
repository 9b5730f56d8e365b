//! [`Workers`]: a lazily grown set of threads serving one job queue.
//!
//! Both pools are built on it. The thread pool's workers run jobs
//! themselves; the process pool's workers each drive one child process.
//!
//! Submitting puts a job on one crossbeam channel and starts a thread when
//! no idle one will take it, up to `max_workers`. The channel's only sender
//! sits behind a mutex, so a submit that races a shutdown is either queued
//! (and will be served) or refused with [`Error::Shutdown`], never lost.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle, ThreadId};

use crossbeam_channel::{Receiver, Sender};

use crate::{Error, Shutdown, panic};

thread_local! {
    /// Whether this worker thread is counted in `idle`, so that a worker
    /// that dies anyway can be taken out of the count.
    static COUNTED_IDLE: Cell<bool> = const { Cell::new(false) };
}

/// Work that can be refused: it must resolve its futures with the reason.
pub(crate) trait Job: Send + 'static {
    /// Resolves the job's futures with `error`, without running anything.
    fn fail(self, error: Error);
}

/// What a worker thread runs; it calls [`Workers::next_job`] until `None`.
pub(crate) type Body<J> = Arc<dyn Fn(&Arc<Workers<J>>) + Send + Sync>;

/// The threads and queue of one pool.
pub(crate) struct Workers<J> {
    state: Mutex<State<J>>,
    /// Signalled when a shutdown finishes joining the threads it took.
    joined: Condvar,
    /// A handle on the queue, for workers and for draining it.
    queue: Receiver<J>,
    /// Workers waiting for a job, or about to.
    idle: AtomicUsize,
    max_workers: usize,
    name_prefix: String,
    stack_size: Option<usize>,
    body: Body<J>,
}

struct State<J> {
    /// `None` once shut down or broken: the queue is closed.
    sender: Option<Sender<J>>,
    /// The threads not joined yet.
    threads: Vec<JoinHandle<()>>,
    /// Every thread ever started, so a shutdown can tell if a worker calls it.
    ids: Vec<ThreadId>,
    /// How many shutdowns are joining threads they took out of `threads`.
    joining: usize,
    /// Why the pool broke, if it did.
    broken: Option<String>,
}

impl<J: Job> Workers<J> {
    pub(crate) fn new(
        max_workers: usize,
        name_prefix: String,
        stack_size: Option<usize>,
        body: Body<J>,
    ) -> Self {
        let (sender, queue) = crossbeam_channel::unbounded();
        Self {
            state: Mutex::new(State {
                sender: Some(sender),
                threads: Vec::new(),
                ids: Vec::new(),
                joining: 0,
                broken: None,
            }),
            joined: Condvar::new(),
            queue,
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
        let refusal = match (&state.sender, &state.broken) {
            (_, Some(reason)) => Error::BrokenExecutor {
                reason: reason.clone(),
            },
            (None, None) => Error::Shutdown,
            (Some(sender), None) => {
                // The receiver lives in `self.queue`, so the send cannot fail.
                let _ = sender.send(job);
                // ORDERING: a heuristic; see `mark_idle`.
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
        let workers = Arc::clone(self);
        let handle = builder
            .spawn(move || {
                // The body catches everything user code does; should a panic
                // get through anyway, the thread is replaced, not lost.
                if panic::catch(|| (workers.body)(&workers)).is_err() {
                    workers.replace_dead_thread();
                }
            })
            .map_err(|error| Error::SpawnFailed {
                reason: error.to_string(),
            })?;
        state.ids.push(handle.thread().id());
        state.threads.push(handle);
        Ok(())
    }

    /// The next job for a worker, waiting for one; `None` once the queue is
    /// closed and empty, when the worker should exit. The worker counts as
    /// idle while it waits here.
    pub(crate) fn next_job(&self) -> Option<J> {
        let job = self.queue.recv().ok()?;
        // ORDERING: as in `mark_idle`.
        self.idle.fetch_sub(1, Ordering::Relaxed);
        COUNTED_IDLE.set(false);
        Some(job)
    }

    /// Puts `job`, not started, back on the queue for another worker, and
    /// takes the calling worker out of the pool: it exits, and no longer
    /// counts toward `max_workers`. If the queue is closed, `job` fails with
    /// `error` instead.
    pub(crate) fn requeue_and_exit(&self, job: J, error: Error) {
        let mut state = self.lock();
        self.forget_current_thread(&mut state);
        match &state.sender {
            // The receiver lives in `self.queue`, so the send cannot fail.
            Some(sender) => drop(sender.send(job)),
            None => {
                drop(state);
                job.fail(error);
            }
        }
    }

    /// Takes the calling thread's handle out of the pool, detaching it.
    fn forget_current_thread(&self, state: &mut State<J>) {
        let me = thread::current().id();
        state.threads.retain(|handle| handle.thread().id() != me);
    }

    /// What a worker thread that panicked does before it exits: leaves the
    /// idle count and the pool, and starts a replacement if work waits.
    fn replace_dead_thread(self: &Arc<Self>) {
        if COUNTED_IDLE.replace(false) {
            // ORDERING: as in `mark_idle`.
            self.idle.fetch_sub(1, Ordering::Relaxed);
        }
        let mut state = self.lock();
        self.forget_current_thread(&mut state);
        if state.sender.is_some() && !self.queue.is_empty() {
            // If even that fails, the queued work waits for the next submit.
            let _ = self.start_thread(&mut state);
        }
    }

    /// Counts the calling worker as idle. A worker calls it once before its
    /// first [`next_job`](Self::next_job), and then after each job, just
    /// before completing the job's futures: a caller who sees a result and
    /// submits again then finds the worker counted, and no thread is started.
    pub(crate) fn mark_idle(&self) {
        // ORDERING: `idle` only steers whether submit starts another thread;
        // a stale value costs a thread or a short wait, never correctness.
        // A caller who sees the result still sees this count, because
        // completing the future (a Release) comes after it.
        self.idle.fetch_add(1, Ordering::Relaxed);
        COUNTED_IDLE.set(true);
    }

    /// Undoes [`mark_idle`](Self::mark_idle) while a worker that counted
    /// itself idle does more work for its last job: running its future's
    /// done callbacks.
    pub(crate) fn mark_busy(&self) {
        // ORDERING: as in `mark_idle`.
        self.idle.fetch_sub(1, Ordering::Relaxed);
        COUNTED_IDLE.set(false);
    }

    /// Marks the pool broken: closes the queue and fails every queued job.
    pub(crate) fn break_pool(&self, reason: String) {
        {
            let mut state = self.lock();
            state.sender = None;
            state.broken.get_or_insert(reason.clone());
        }
        let error = Error::BrokenExecutor { reason };
        self.queue
            .try_iter()
            .for_each(|job| job.fail(error.clone()));
    }

    /// Closes the queue, as `how` says. With `wait`, returns once every
    /// worker has exited and been joined, even while another thread is
    /// shutting down too. A worker that calls it (a task may shut down its
    /// own pool) joins the others but cannot wait for itself: it puts its
    /// own handle back, for a later shutdown (the pool's drop) to join.
    pub(crate) fn shutdown(&self, how: Shutdown) {
        self.lock().sender = None;
        if how.cancel_futures {
            // Dropping a job unrun resolves its futures as cancelled. It
            // also drops a thread-pool task's argument: user code, caught.
            for job in self.queue.try_iter() {
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
                    // Workers catch every task panic, so a join error cannot
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

impl<J> fmt::Debug for Workers<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Workers")
            .field("max_workers", &self.max_workers)
            .field("threads", &state.threads.len())
            .field("queued", &self.queue.len())
            .field("shut_down", &state.sender.is_none())
            .field("broken", &state.broken)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A job that panics its worker thread (outside any task's catch) or
    /// reports that it ran.
    enum Test {
        Panic,
        Report(mpsc::Sender<()>),
    }

    impl Job for Test {
        fn fail(self, _: Error) {}
    }

    #[test]
    fn a_worker_thread_that_panics_is_replaced() {
        let body: Body<Test> = Arc::new(|workers: &Arc<Workers<Test>>| {
            workers.mark_idle();
            while let Some(job) = workers.next_job() {
                match job {
                    Test::Panic => panic!("a bug outside every catch"),
                    Test::Report(done) => drop(done.send(())),
                }
                workers.mark_idle();
            }
        });
        let workers = Arc::new(Workers::new(1, "test".into(), None, body));
        workers.enqueue(Test::Panic);
        let (done, ran) = mpsc::channel();
        workers.enqueue(Test::Report(done));
        // Before, the dead thread still counted toward max_workers: the
        // second job waited forever.
        ran.recv_timeout(Duration::from_secs(10))
            .expect("a replacement thread ran the next job");
        workers.shutdown(Shutdown::default());
    }
}
