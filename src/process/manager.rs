//! Layer: process transport. May use `spawn`, the remote layer's work,
//! `crew` and the crate's futures. The manager: the crew thread that feeds
//! one child process.
//!
//! Each manager takes work off the pool's queue, starts its child when it
//! first needs one (and again after the last one died), sends the work and
//! waits for the outcomes. One call is in flight per child, so when a child
//! dies the manager knows exactly which work it was running: that work
//! alone fails, with [`Error::WorkerDied`], and the next work gets a fresh
//! child.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use super::spawn::{ChildLink, Fault, Process};
use super::{Queued, Shared};
use crate::Error;
use crate::crew::{Crew, Turn};
use crate::future::Canceller;
use crate::remote::work::Work;

/// Numbers calls, so a late cancel cannot kill a child's next call.
static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// The body of a manager thread.
pub(super) fn manage(crew: &Arc<Crew<Queued>>, shared: &Shared) {
    let mut link: Option<ChildLink> = None;
    let mut seat = crew.seat();
    while let Some((Queued { mut work, claim }, turn)) = seat.next_job() {
        let target = match claim {
            // Work claimed by a manager that could not start a child comes
            // back claimed, with where a cancel finds it.
            Claim::Claimed(target) => target,
            Claim::Unclaimed => {
                // Only a lone task can be cancelled while it runs, by
                // killing its child: only it needs a target for the cancel
                // to find.
                let target = (work.results.cancellable_while_running())
                    .then(|| Arc::new(Mutex::new(Target::Unsent)));
                let canceller = target.as_ref().map(Target::canceller);
                if shared.is_stopping() || !work.results.claim(canceller) {
                    // Dropped unrun, its futures resolve as cancelled.
                    drop(turn);
                    continue;
                }
                target
            }
        };
        let failed = match call(&mut link, &mut work, shared, target.as_deref()) {
            Ok(()) => {
                deliver(turn, work, &mut link, shared);
                continue;
            }
            // No room for a new child (out of descriptors, processes or
            // memory) while other children of the pool live: the work goes
            // back to the queue for one of them, and this manager ends.
            // Only when no child lives does the work fail, with the reason.
            Err(Failed::Start(error @ Error::SpawnFailed { .. })) if shared.any_alive() => {
                let claim = Claim::Claimed(target);
                crew.requeue_and_exit(Queued { work, claim }, error);
                return;
            }
            Err(failed) => failed,
        };
        drop(turn);
        fail(crew, work, failed);
    }
    if let Some(link) = link {
        link.retire();
    }
}

/// Whether queued work was claimed yet: work that a manager claimed, but
/// could not start a child for, goes back on the queue claimed.
pub(super) enum Claim {
    Unclaimed,
    /// Claimed, with where a cancel finds it (a lone task's target).
    Claimed(Option<Arc<Mutex<Target>>>),
}

/// Resolves `work` that got no outcomes, as `failed` says.
fn fail(crew: &Crew<Queued>, work: Work, failed: Failed) {
    match failed {
        // Dropped unrun, its futures resolve as cancelled (or already are).
        Failed::Stopping | Failed::Cancelled => drop(work),
        Failed::Start(error) => {
            if let Error::BrokenExecutor { reason } = &error {
                crew.break_pool(reason.clone());
            }
            work.results.fail(error);
        }
        Failed::Call(error) => work.results.fail(error),
    }
}

/// Where a cancel finds the child running its lone task. The task is
/// claimed (and so can be cancelled) before its child is known: maybe
/// before one is even started.
///
/// ```text
/// Unsent ──manager sends──▶ Sent(child, call) ──cancel: kill──▶ Cancelled
///    └───────────────cancel: nothing to kill─────────────────────▶┘
/// ```
///
/// A cancel of an unsent task leaves `Cancelled` for the manager, which
/// then sends nothing.
pub(super) enum Target {
    Unsent,
    /// The child and the number of the call it runs for this task.
    Sent(Weak<Process>, u64),
    Cancelled,
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
            let sent = std::mem::replace(&mut *Target::lock(&target), Target::Cancelled);
            if let Target::Sent(process, call) = sent
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
    /// No child could be started.
    Start(Error),
    /// The call failed: the child died, timed out or broke the protocol.
    Call(Error),
}

/// Sends `work` to the manager's child (starting one if there is none) and
/// waits for its outcomes. A child that died while idle shows up as a task
/// that cannot even be sent; that task goes to a fresh child, once.
fn call(
    slot: &mut Option<ChildLink>,
    work: &mut Work,
    shared: &Shared,
    target: Option<&Mutex<Target>>,
) -> Result<(), Failed> {
    let mut resent = false;
    loop {
        // A child killed by a cancel between calls must be replaced first.
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
        if let Some(target) = target {
            let mut target = Target::lock(target);
            if let Target::Cancelled = *target {
                live.process.set_running(0);
                return Err(Failed::Cancelled);
            }
            *target = Target::Sent(Arc::downgrade(&live.process), call);
        }
        let deadline = shared.timeout.and_then(|t| Instant::now().checked_add(t));
        let called = live.call(&work.header, [&work.args, &work.tail], deadline);
        live.process.set_running(0);
        let fault = match called {
            Ok(Ok(())) => return Ok(()),
            // The child is fine: only this task fails.
            Ok(Err(error)) => return Err(Failed::Call(error)),
            Err(fault) => fault,
        };
        let bad = slot.take().expect("a call was made, so a child exists");
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

/// Starts a child, registered with the pool from the moment it exists, so
/// that `terminate_workers`/`kill_workers` can stop it even mid-handshake.
fn start(shared: &Shared) -> Result<ChildLink, Failed> {
    let started = ChildLink::start(&shared.recipe, |process| shared.register(process));
    if shared.is_stopping() {
        if let Ok(link) = started {
            link.process.kill(libc::SIGKILL);
            link.retire();
        }
        return Err(Failed::Stopping);
    }
    started.map_err(Failed::Start)
}

/// Completes `work` from the outcomes the child in `slot` sent back, ending
/// the manager's `turn` just before, and retires the child if it broke the
/// protocol or has served its `max_tasks_per_child`.
fn deliver(turn: Turn<'_, Queued>, work: Work, slot: &mut Option<ChildLink>, shared: &Shared) {
    let live = slot.as_mut().expect("the child just answered");
    let idle = turn.end();
    // Decoding runs the result's Deserialize, and completing may run its
    // Drop: user code, each caught where it runs (see `Results::deliver`).
    let delivered = work
        .results
        .deliver(&live.body, std::mem::take(&mut live.tail));
    let garbled = delivered.is_err();
    if let Some(callbacks) = delivered.unwrap_or_else(|callbacks| callbacks) {
        idle.busy_while(callbacks);
    }
    if garbled {
        // The outcomes did not decode (the future got the protocol error):
        // the child is not to be trusted any more.
        live.process.kill(libc::SIGKILL);
    }
    if garbled
        || shared
            .max_tasks_per_child
            .is_some_and(|max| live.calls >= max)
    {
        slot.take().expect("the child just answered").retire();
    }
}
