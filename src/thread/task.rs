//! Layer: pools (the thread pool). May use: `error`, `future`, `panic` and
//! `work_queue`.
//! What a queue thread of the thread pool runs: the jobs it takes off the
//! queue, and its loop ([`run_tasks`]).

use std::sync::Arc;

use crate::future::Promise;
use crate::work_queue::{self, Busy, WorkQueue};
use crate::{Error, panic};

/// The thread pool's queue item: one task (a `map` chunk is one task too).
pub(super) type ThreadTask = Box<dyn Run>;

/// A job a queue thread can run.
pub(super) trait Run: Send {
    /// Runs the task and completes its future. A queue thread passes its
    /// busy and ends it just before the future completes; a scope's waiting
    /// thread, which runs its own tasks and is never idle in the pool's
    /// count, passes `None`.
    fn run(self: Box<Self>, busy: Option<Busy<'_, ThreadTask>>);

    /// Resolves the future with `error` without running the task.
    fn fail_unrun(self: Box<Self>, error: Error);
}

impl work_queue::Entry for ThreadTask {
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
    fn run(self: Box<Self>, busy: Option<Busy<'_, ThreadTask>>) {
        let Task { task, arg, promise } = *self;
        let outcome = if promise.claim() {
            Some(panic::catch(|| task(arg)))
        } else {
            // Cancelled: the task and its argument are dropped unrun, and
            // their Drop is user code. A pool thread must not die of its
            // panic; a scope's own thread lets it go on to the scope's
            // caller, as `std::thread::scope` does.
            let unrun = move || drop((task, arg));
            match busy {
                Some(_) => drop(panic::catch(unrun)),
                None => unrun(),
            }
            None
        };
        let idle = busy.map(Busy::end);
        if let Some(outcome) = outcome {
            let callbacks = promise.complete_deferring_callbacks(outcome);
            match idle {
                Some(idle) if !callbacks.is_empty() => idle.busy_while(|| callbacks.run()),
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

/// The body of a queue thread: run the initializer, then jobs until the
/// queue is closed and empty.
pub(super) fn run_tasks(
    queue: &Arc<WorkQueue<ThreadTask>>,
    initializer: Option<&(dyn Fn() + Send + Sync)>,
) {
    if let Some(initializer) = initializer
        && let Err(error) = panic::catch(initializer)
    {
        queue.break_pool(format!("a worker's initializer failed: {error}"));
        return;
    }
    let mut taker = queue.taker();
    while let Some((job, busy)) = taker.take() {
        job.run(Some(busy));
    }
}
