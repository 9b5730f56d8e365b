//! The manager: the pool-side thread that feeds one worker process.
//!
//! Each manager takes work off the pool's queue, starts its worker process
//! when it first needs one (and again after the last one died), sends the
//! work and waits for the outcomes. One call is in flight per worker, so
//! when a worker dies the manager knows exactly which work it was running:
//! that work alone fails, with [`Error::WorkerDied`], and the next work
//! gets a fresh worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::spawn::{Fault, Worker, died};
use super::{Shared, Work};
use crate::Error;
use crate::workers::{Job, Workers};

/// Numbers calls, so a late cancel cannot kill a worker's next call.
static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// The body of a manager thread.
pub(super) fn manage(workers: &Arc<Workers<Work>>, shared: &Shared) {
    let mut worker: Option<Worker> = None;
    workers.mark_idle();
    while let Some(mut work) = workers.next_job() {
        if shared.is_stopping() || !work.results.claim() {
            // Dropped unrun, its futures resolve as cancelled.
            workers.mark_idle();
            continue;
        }
        // A worker killed by a cancel between calls must be replaced first.
        if let Some(old) = worker.take_if(|w| w.process.was_killed()) {
            old.retire();
        }
        let live = match &mut worker {
            Some(live) => live,
            None => match Worker::start(&shared.recipe) {
                Ok(started) => {
                    shared.register(&started);
                    worker.insert(started)
                }
                Err(error) => {
                    workers.mark_idle();
                    if let Error::BrokenExecutor { reason } | Error::SpawnFailed { reason } = &error
                    {
                        workers.break_pool(reason.clone());
                    }
                    work.fail(error);
                    continue;
                }
            },
        };

        // ORDERING: only uniqueness matters.
        let call = NEXT_CALL.fetch_add(1, Ordering::Relaxed);
        live.process.set_running(call);
        let process = Arc::downgrade(&live.process);
        work.results.set_canceller(Box::new(move || {
            if let Some(process) = Weak::upgrade(&process) {
                process.kill_if_running(call);
            }
        }));
        let deadline = shared.timeout.and_then(|t| Instant::now().checked_add(t));
        let fault = live
            .call(&work.header, [&work.args, &work.tail], deadline)
            .err();
        live.process.set_running(0);

        let Some(fault) = fault else {
            workers.mark_idle();
            let delivered = work.results.deliver(&live.body);
            let garbled = delivered.is_err();
            if let Some(callbacks) = delivered.unwrap_or_else(|callbacks| callbacks) {
                // A done callback may block, or submit work and wait for it:
                // meanwhile this manager is not idle, so such work gets
                // another worker (up to max_workers).
                workers.mark_busy();
                callbacks();
                workers.mark_idle();
            }
            if garbled {
                // The outcomes did not decode (the futures got the protocol
                // error): the worker is not to be trusted any more.
                live.process.kill(libc::SIGKILL);
            }
            if garbled
                || shared
                    .max_tasks_per_child
                    .is_some_and(|max| live.calls >= max)
            {
                worker.take().expect("the worker just answered").retire();
            }
            continue;
        };
        let bad = worker.take().expect("a call was made, so a worker exists");
        if !matches!(fault, Fault::Died) {
            bad.process.kill(libc::SIGKILL);
        }
        let status = bad.process.reap();
        bad.retire();
        workers.mark_idle();
        work.fail(match fault {
            Fault::TimedOut => Error::Timeout,
            Fault::Died => died(status),
            Fault::Protocol(error) => error,
        });
    }
    if let Some(worker) = worker {
        worker.retire();
    }
}
