//! The manager: the pool-side thread that feeds one worker process.
//!
//! Each manager takes work off the pool's queue, starts its worker process
//! when it first needs one (and again after the last one died), sends the
//! work and waits for the outcomes. One call is in flight per worker, so
//! when a worker dies the manager knows exactly which work it was running:
//! that work alone fails, with [`Error::WorkerDied`], and the next work
//! gets a fresh worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use super::spawn::{Fault, Process, Worker};
use super::{Shared, Work};
use crate::Error;
use crate::future::Canceller;
use crate::workers::{Job, Workers};

/// Numbers calls, so a late cancel cannot kill a worker's next call.
static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// The body of a manager thread.
pub(super) fn manage(workers: &Arc<Workers<Work>>, shared: &Shared) {
    let mut worker: Option<Worker> = None;
    workers.mark_idle();
    while let Some(mut work) = workers.next_job() {
        // Work claimed by a manager that could not start a worker comes
        // back claimed, with where a cancel finds it.
        let target = match work.target.take() {
            Some(target) => target,
            None => {
                let target = Arc::new(Mutex::new(Target::default()));
                if shared.is_stopping() || !work.results.claim(Some(Target::canceller(&target))) {
                    // Dropped unrun, its futures resolve as cancelled.
                    workers.mark_idle();
                    continue;
                }
                target
            }
        };
        let failed = match call(&mut worker, &mut work, shared, &target) {
            Ok(()) => {
                deliver(workers, work, &mut worker, shared);
                continue;
            }
            // No room for a new worker (out of descriptors, processes or
            // memory) while other workers of the pool live: the work goes
            // back to the queue for one of them, and this manager ends.
            // Only when no worker lives does the work fail, with the reason.
            Err(Failed::Start(error @ Error::SpawnFailed { .. })) if shared.any_alive() => {
                work.target = Some(target);
                workers.requeue_and_exit(work, error);
                return;
            }
            Err(failed) => failed,
        };
        workers.mark_idle();
        fail(workers, work, failed);
    }
    if let Some(worker) = worker {
        worker.retire();
    }
}

/// Resolves `work` that got no outcomes, as `failed` says.
fn fail(workers: &Workers<Work>, work: Work, failed: Failed) {
    match failed {
        // Dropped unrun, its futures resolve as cancelled (or already are).
        Failed::Stopping | Failed::Cancelled => drop(work),
        Failed::Start(error) => {
            if let Error::BrokenExecutor { reason } = &error {
                workers.break_pool(reason.clone());
            }
            work.fail(error);
        }
        Failed::Call(error) => work.fail(error),
    }
}

/// Where a cancel finds the worker running its task. The task is claimed
/// (and so can be cancelled) before its worker is known: maybe before one is
/// even started. A cancel then leaves `cancelled` for the manager, which
/// sends nothing; once the manager has set `process`, a cancel kills it.
#[derive(Default)]
pub(super) struct Target {
    cancelled: bool,
    /// The worker and the number of the call it is running for this task.
    process: Option<(Weak<Process>, u64)>,
}

impl Target {
    fn lock(target: &Mutex<Target>) -> std::sync::MutexGuard<'_, Target> {
        // Nothing that can panic runs under this lock.
        target.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What cancelling the running task does.
    fn canceller(target: &Arc<Mutex<Target>>) -> Canceller {
        let target = Arc::clone(target);
        Box::new(move || {
            let process = {
                let mut target = Target::lock(&target);
                target.cancelled = true;
                target.process.take()
            };
            if let Some((process, call)) = process
                && let Some(process) = Weak::upgrade(&process)
            {
                process.kill_if_running(call);
            }
        })
    }
}

/// Why work got no outcomes.
enum Failed {
    /// `terminate_workers`/`kill_workers` is stopping the pool.
    Stopping,
    /// The task was cancelled before it was sent.
    Cancelled,
    /// No worker could be started.
    Start(Error),
    /// The call failed: the worker died, timed out or broke the protocol.
    Call(Error),
}

/// Sends `work` to the manager's worker (starting one if there is none) and
/// waits for its outcomes. A worker that died while idle shows up as a task
/// that cannot even be sent; that task goes to a fresh worker, once.
fn call(
    slot: &mut Option<Worker>,
    work: &mut Work,
    shared: &Shared,
    target: &Mutex<Target>,
) -> Result<(), Failed> {
    let mut resent = false;
    loop {
        // A worker killed by a cancel between calls must be replaced first.
        if let Some(old) = slot.take_if(|w| w.process.was_killed()) {
            old.retire();
        }
        if slot.is_none() {
            *slot = Some(start(shared)?);
        }
        let live = slot.as_mut().expect("started above");
        // ORDERING: only uniqueness matters.
        let call = NEXT_CALL.fetch_add(1, Ordering::Relaxed);
        live.process.set_running(call);
        {
            let mut target = Target::lock(target);
            if target.cancelled {
                live.process.set_running(0);
                return Err(Failed::Cancelled);
            }
            target.process = Some((Arc::downgrade(&live.process), call));
        }
        let deadline = shared.timeout.and_then(|t| Instant::now().checked_add(t));
        let fault = live
            .call(&work.header, [&work.args, &work.tail], deadline)
            .err();
        live.process.set_running(0);
        let Some(fault) = fault else {
            return Ok(());
        };
        let bad = slot.take().expect("a call was made, so a worker exists");
        if matches!(fault, Fault::TimedOut | Fault::Protocol(_)) {
            bad.process.kill(libc::SIGKILL);
        }
        let death = bad.process.death();
        bad.retire();
        return Err(Failed::Call(match fault {
            Fault::Undelivered if !resent => {
                resent = true;
                continue;
            }
            Fault::Undelivered | Fault::Died => death,
            Fault::TimedOut => Error::TaskTimedOut {
                limit: shared.timeout.unwrap_or_default(),
            },
            Fault::Protocol(error) => error,
        }));
    }
}

/// Starts a worker, registered with the pool from the moment it exists, so
/// that `terminate_workers`/`kill_workers` can stop it even mid-handshake.
fn start(shared: &Shared) -> Result<Worker, Failed> {
    let started = Worker::start(&shared.recipe, |process| shared.register(process));
    if shared.is_stopping() {
        if let Ok(worker) = started {
            worker.process.kill(libc::SIGKILL);
            worker.retire();
        }
        return Err(Failed::Stopping);
    }
    started.map_err(Failed::Start)
}

/// Completes `work` from the outcomes the worker in `slot` sent back, and
/// retires the worker if it broke the protocol or has served its
/// `max_tasks_per_child`.
fn deliver(workers: &Workers<Work>, work: Work, slot: &mut Option<Worker>, shared: &Shared) {
    let live = slot.as_mut().expect("the worker just answered");
    workers.mark_idle();
    // Decoding runs the result's Deserialize, and completing may run its
    // Drop: user code, each caught where it runs (see `Results::deliver`).
    let delivered = work.results.deliver(&live.body);
    let garbled = delivered.is_err();
    if let Some(callbacks) = delivered.unwrap_or_else(|callbacks| callbacks) {
        // A done callback may block, or submit work and wait for it:
        // meanwhile this manager is not idle, so such work gets another
        // worker (up to max_workers).
        workers.mark_busy();
        callbacks();
        workers.mark_idle();
    }
    if garbled {
        // The outcomes did not decode (the future got the protocol error):
        // the worker is not to be trusted any more.
        live.process.kill(libc::SIGKILL);
    }
    if garbled
        || shared
            .max_tasks_per_child
            .is_some_and(|max| live.calls >= max)
    {
        slot.take().expect("the worker just answered").retire();
    }
}
