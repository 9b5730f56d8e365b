//! What a worker thread runs: the jobs it takes off the queue, and its loop.

use std::sync::Arc;

use crate::future::Promise;
use crate::workers::{self, Workers};
use crate::{Error, panic};

/// The thread pool's queue item: one task, or one chunk of a `map`.
pub(super) type ThreadJob = Box<dyn Run>;

/// A job a worker thread can run.
pub(super) trait Run: Send {
    /// Runs the work and completes its futures, calling `workers.mark_idle()`
    /// just before completing the last one.
    fn run(self: Box<Self>, workers: &Workers<ThreadJob>);

    /// Resolves the futures with `error` without running anything.
    fn fail_unrun(self: Box<Self>, error: Error);
}

impl workers::Job for ThreadJob {
    fn fail(self, error: Error) {
        self.fail_unrun(error);
    }
}

/// One submitted task.
pub(super) struct Task<F, A, R> {
    pub(super) task: F,
    pub(super) arg: A,
    pub(super) promise: Promise<R>,
}

impl<F, A, R> Run for Task<F, A, R>
where
    F: FnOnce(A) -> R + Send,
    A: Send,
    R: Send,
{
    fn run(self: Box<Self>, workers: &Workers<ThreadJob>) {
        let Task { task, arg, promise } = *self;
        let outcome = promise.claim().then(|| panic::catch(|| task(arg)));
        workers.mark_idle();
        if let Some(outcome) = outcome {
            promise.complete(outcome);
        }
    }

    fn fail_unrun(self: Box<Self>, error: Error) {
        self.promise.complete(Err(error));
    }
}

/// Several inputs of one `map`, run one after another by one worker; each
/// keeps its own future, so a failure fails only its own item.
pub(super) struct Chunk<F, A, R> {
    pub(super) task: Arc<F>,
    pub(super) items: Vec<(A, Promise<R>)>,
}

impl<F, A, R> Run for Chunk<F, A, R>
where
    F: Fn(A) -> R + Send + Sync,
    A: Send,
    R: Send,
{
    fn run(self: Box<Self>, workers: &Workers<ThreadJob>) {
        let mut items = self.items.into_iter().peekable();
        while let Some((arg, promise)) = items.next() {
            let outcome = promise.claim().then(|| panic::catch(|| (self.task)(arg)));
            if items.peek().is_none() {
                workers.mark_idle();
            }
            if let Some(outcome) = outcome {
                promise.complete(outcome);
            }
        }
    }

    fn fail_unrun(self: Box<Self>, error: Error) {
        for (_, promise) in self.items {
            promise.complete(Err(error.clone()));
        }
    }
}

/// The body of a worker thread: run the initializer, then jobs until the
/// queue is closed and empty.
pub(super) fn work(
    workers: &Arc<Workers<ThreadJob>>,
    initializer: Option<&(dyn Fn() + Send + Sync)>,
) {
    if let Some(initializer) = initializer
        && let Err(error) = panic::catch(initializer)
    {
        workers.break_pool(format!("a worker's initializer failed: {error}"));
        return;
    }
    workers.mark_idle();
    while let Some(job) = workers.next_job() {
        job.run(workers);
    }
}
