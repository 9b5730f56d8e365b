//! What a worker thread runs: the tasks it takes off the queue, and its loop.

use std::sync::Arc;

use crate::future::Promise;
use crate::workers::{self, Workers};
use crate::{Error, panic};

/// The thread pool's queue item: one task (a `map` chunk is one task too).
pub(super) type ThreadJob = Box<dyn Run>;

/// A job a worker thread can run.
pub(super) trait Run: Send {
    /// Runs the task and completes its future. A pool worker passes its
    /// `workers` and is marked idle just before the future completes; a
    /// scope's waiting thread, which runs its own tasks and is never idle in
    /// the pool's count, passes `None`.
    fn run(self: Box<Self>, workers: Option<&Workers<ThreadJob>>);

    /// Resolves the future with `error` without running the task.
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
    fn run(self: Box<Self>, workers: Option<&Workers<ThreadJob>>) {
        let Task { task, arg, promise } = *self;
        let outcome = if promise.claim() {
            Some(panic::catch(|| task(arg)))
        } else {
            // Cancelled: the task and its argument are dropped unrun, and
            // their Drop is user code. A pool thread must not die of its
            // panic; a scope's own thread lets it go on to the scope's
            // caller, as `std::thread::scope` does.
            let unrun = move || drop((task, arg));
            match workers {
                Some(_) => drop(panic::catch(unrun)),
                None => unrun(),
            }
            None
        };
        if let Some(workers) = workers {
            workers.mark_idle();
        }
        if let Some(outcome) = outcome {
            let callbacks = promise.complete_deferring_callbacks(outcome);
            match workers {
                Some(workers) if !callbacks.is_empty() => {
                    // A done callback may block, or submit more work and wait
                    // for it: while callbacks run, this worker is not idle, so
                    // such a submit starts another thread (up to max_workers).
                    workers.mark_busy();
                    callbacks.run();
                    workers.mark_idle();
                }
                _ => callbacks.run(),
            }
        }
    }

    fn fail_unrun(self: Box<Self>, error: Error) {
        let Task { task, arg, promise } = *self;
        promise.complete(Err(error));
        let _ = panic::catch(move || drop((task, arg)));
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
        job.run(Some(workers));
    }
}
