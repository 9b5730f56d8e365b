//! What a worker thread runs: the jobs it takes off the queue, and its loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::Receiver;

use super::Shared;
use crate::future::Promise;
use crate::{Error, panic};

/// A unit of work on the queue: one task, or one chunk of a `map`.
pub(super) trait Job: Send {
    /// Runs the work and completes its futures. Adds one to `idle` just
    /// before completing the last future, so that a caller who sees the
    /// result and submits again finds this worker counted as idle.
    fn run(self: Box<Self>, idle: &AtomicUsize);

    /// Resolves the futures with `error` without running anything.
    fn fail(self: Box<Self>, error: Error);
}

/// One submitted task.
pub(super) struct Task<F, A, R> {
    pub(super) task: F,
    pub(super) arg: A,
    pub(super) promise: Promise<R>,
}

impl<F, A, R> Job for Task<F, A, R>
where
    F: FnOnce(A) -> R + Send,
    A: Send,
    R: Send,
{
    fn run(self: Box<Self>, idle: &AtomicUsize) {
        let Task { task, arg, promise } = *self;
        let outcome = promise.claim().then(|| panic::catch(|| task(arg)));
        mark_idle(idle);
        if let Some(outcome) = outcome {
            promise.complete(outcome);
        }
    }

    fn fail(self: Box<Self>, error: Error) {
        self.promise.complete(Err(error));
    }
}

/// Several inputs of one `map`, run one after another by one worker; each
/// keeps its own future, so a failure fails only its own item.
pub(super) struct Chunk<F, A, R> {
    pub(super) task: Arc<F>,
    pub(super) items: Vec<(A, Promise<R>)>,
}

impl<F, A, R> Job for Chunk<F, A, R>
where
    F: Fn(A) -> R + Send + Sync,
    A: Send,
    R: Send,
{
    fn run(self: Box<Self>, idle: &AtomicUsize) {
        let mut items = self.items.into_iter().peekable();
        while let Some((arg, promise)) = items.next() {
            let outcome = promise.claim().then(|| panic::catch(|| (self.task)(arg)));
            if items.peek().is_none() {
                mark_idle(idle);
            }
            if let Some(outcome) = outcome {
                promise.complete(outcome);
            }
        }
    }

    fn fail(self: Box<Self>, error: Error) {
        for (_, promise) in self.items {
            promise.complete(Err(error.clone()));
        }
    }
}

fn mark_idle(idle: &AtomicUsize) {
    // ORDERING: `idle` only steers whether submit starts another thread; a
    // stale value costs a thread or a short wait, never correctness. The
    // caller who sees the result still sees this count, because completing
    // the future (a Release) comes after it.
    idle.fetch_add(1, Ordering::Relaxed);
}

/// The body of a worker thread: run the initializer, then jobs until the
/// queue is closed and empty.
pub(super) fn work(shared: Arc<Shared>, jobs: Receiver<Box<dyn Job>>) {
    if let Some(initializer) = &shared.initializer
        && let Err(error) = panic::catch(|| initializer())
    {
        shared.break_pool(format!("a worker's initializer failed: {error}"));
        return;
    }
    mark_idle(&shared.idle);
    while let Ok(job) = jobs.recv() {
        // ORDERING: as in `mark_idle`.
        shared.idle.fetch_sub(1, Ordering::Relaxed);
        job.run(&shared.idle);
    }
}
