//! Layer: process transport. May use `spawn`, `arena`'s threshold, the
//! remote layer's work, `crew` and the crate's futures. The manager: the
//! crew thread that feeds one child process.
//!
//! Each manager takes work off the pool's queue, starts its child when it
//! first needs one (and again after the last one died), sends the work and
//! reads the outcomes. Without a per-task timeout, while its calls are
//! quick (each answered within [`QUICK`]), it takes whatever else is
//! queued too, a window that doubles with each quick answer up to
//! [`IN_FLIGHT`] calls, and writes their frames in one system call; the
//! child reads them in one go, answers each in order, and the manager reads
//! the answers as they come, several at once. A slow answer shrinks the
//! window back to one call, so that work does not queue behind a slow task
//! while another worker could take it (at most the window's worth, taken
//! while calls were quick, waits behind a task that turns out slow). With a
//! timeout, one call is in flight, so that its deadline is its own.
//!
//! The child runs its calls in order, answering each before it reads the
//! next, so when it dies, the oldest call without an answer is the one it
//! was running: that work alone fails, with [`Error::WorkerDied`]; the
//! calls behind it never started, and go to a fresh child. A call that
//! may have started is never sent again, so no task runs twice: a child
//! killed between two calls (from outside, or by a cancel of the call it
//! had just answered) fails the next one, which may not have run. A cancel
//! of a running lone task kills the child when the task is the oldest in
//! flight, at once or as soon as it becomes so.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::arena;
use super::spawn::{ChildLink, Fault, Process};
use super::sys;
use super::{Queued, Shared};
use crate::Error;
use crate::crew::{Crew, Turn};
use crate::future::Canceller;
use crate::remote::work::Work;

/// Numbers calls, so a late cancel cannot kill a child's next call.
static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// The most calls in flight on one child (without a per-task timeout):
/// enough that a child of tiny tasks never waits for the manager, few
/// enough that a slow child does not hoard the queue from its siblings.
const IN_FLIGHT: usize = 32;

/// The most bytes of calls in flight on one child. The channel's buffer
/// must hold every call the child has not read yet: a child that answers
/// while the manager still writes would otherwise block on its answer, and
/// the manager on its write, for good. So it is what the channel is sure
/// to hold ([`sys::UNREAD_BYTES`]). A call alone may be any size, as the
/// manager reads its answer only after writing it.
const IN_FLIGHT_BYTES: usize = sys::UNREAD_BYTES;

/// An answer within this long of its call's turn keeps the window growing.
const QUICK: Duration = Duration::from_millis(1);

/// Work claimed by a manager, and where a cancel finds it.
struct Job {
    work: Work,
    target: Option<Arc<Mutex<Target>>>,
    /// Whether it was sent to a child already, which died before reading it.
    resent: bool,
}

/// A job sent to the child, waiting for its outcomes.
struct Flying {
    job: Job,
    call: u64,
    /// Until when its outcomes may take (a per-task timeout).
    deadline: Option<Instant>,
    /// Whether its frame went out whole: if not, the child never saw it.
    delivered: bool,
    /// Whether its frame waits in the link's staged frames.
    staged: bool,
    /// When it was sent.
    sent: Instant,
}

impl Flying {
    /// The bytes of its frame, near enough.
    fn bytes(&self) -> usize {
        self.job.work.args.len() + self.job.work.tail.len()
    }
}

/// The body of a manager thread.
pub(super) fn manage(crew: &Arc<Crew<Queued>>, shared: &Shared) {
    let mut window = Window {
        now: 1,
        max: if shared.timeout.is_some() {
            1
        } else {
            IN_FLIGHT
        },
    };
    let mut link: Option<ChildLink> = None;
    let mut seat = crew.seat();
    while let Some((queued, turn)) = seat.next_job() {
        let Some(job) = claim(queued, shared) else {
            // Dropped unrun, its futures resolve as cancelled.
            continue;
        };
        let mut feed = Feed {
            shared,
            crew,
            link: &mut link,
            waiting: VecDeque::from([job]),
            flight: VecDeque::new(),
        };
        if feed.run(turn, &mut window).is_err() {
            return; // no room for a child: the work went back to the queue
        }
    }
    if let Some(link) = link {
        link.retire();
    }
}

/// Claims queued work for a call; `None` if it was cancelled (or the pool
/// is stopping), and then it is dropped unrun.
fn claim(Queued { mut work, claim }: Queued, shared: &Shared) -> Option<Job> {
    let target = match claim {
        // Work claimed by a manager that could not start a child comes
        // back claimed, with where a cancel finds it.
        Claim::Claimed(target) => target,
        Claim::Unclaimed => {
            // Only a lone task can be cancelled while it runs, by killing
            // its child: only it needs a target for the cancel to find.
            let target = (work.results.cancellable_while_running())
                .then(|| Arc::new(Mutex::new(Target::Unsent)));
            let canceller = target.as_ref().map(Target::canceller);
            if shared.is_stopping() || !work.results.claim(canceller) {
                return None;
            }
            target
        }
    };
    Some(Job {
        work,
        target,
        resent: false,
    })
}

/// How many calls a manager may have in flight on its child now.
struct Window {
    now: usize,
    max: usize,
}

impl Window {
    /// Grows after an answer that came within [`QUICK`] of its call's turn
    /// (its sending, or the previous answer), and shrinks to one call
    /// after a slower one.
    fn answered(&mut self, took: Duration) {
        self.now = if took <= QUICK {
            (self.now * 2).min(self.max)
        } else {
            1
        };
    }
}

/// One turn of a manager: the jobs it took, sent or to send.
struct Feed<'a> {
    shared: &'a Shared,
    crew: &'a Arc<Crew<Queued>>,
    link: &'a mut Option<ChildLink>,
    /// Claimed, not sent yet (or to send again), in order.
    waiting: VecDeque<Job>,
    /// Sent, oldest first: the oldest is the one the child runs.
    flight: VecDeque<Flying>,
}

/// The manager could start no child, and put its work back on the queue.
struct Exit;

impl Feed<'_> {
    /// Sends and completes jobs until none is waiting or in flight, taking
    /// more off the queue while there is room; ends the `turn` just before
    /// completing the last.
    fn run(&mut self, turn: Turn<'_, Queued>, window: &mut Window) -> Result<(), Exit> {
        let mut last_answer = None;
        loop {
            self.send_some(&turn, window.now)?;
            if self.flight.is_empty() {
                if self.waiting.is_empty() {
                    return Ok(());
                }
                continue;
            }
            let live = self.link.as_mut().expect("calls in flight, so a child");
            // A failed write is not the end yet: the child may have answered
            // calls before it died, and those answers are still to read.
            if live
                .flush(self.flight.back().and_then(|f| f.deadline))
                .is_ok()
            {
                for flying in &mut self.flight {
                    flying.delivered |= std::mem::take(&mut flying.staged);
                }
            }
            // A lone call's answer may come in the arena: its argument's
            // bytes, sent already and never sent again (it was delivered),
            // are memory to copy that into (see `Arena::take`). Unused,
            // they stay with the job, freed once its future is resolved.
            let (alone, deadline) = (self.flight.len() == 1, self.flight[0].deadline);
            let mut nothing = Vec::new();
            let reuse = match &mut self.flight[0] {
                lone if alone && lone.delivered => &mut lone.job.work.tail,
                _ => &mut nothing,
            };
            match live.receive(deadline, reuse) {
                Ok(outcome) => {
                    let mut done = self.flight.pop_front().expect("in flight");
                    let now = Instant::now();
                    // It ran from its sending (its child started and
                    // greeted by then) or the answer before it, if later.
                    let turn_began = last_answer.map_or(done.sent, |last| done.sent.max(last));
                    window.answered(now - turn_began);
                    done.job.work.results.ran_for(now - turn_began);
                    last_answer = Some(now);
                    self.next_runs();
                    if self.flight.is_empty() && self.waiting.is_empty() {
                        // The turn ends just before the last completion.
                        self.complete(done, outcome, Some(turn));
                        return Ok(());
                    }
                    self.complete(done, outcome, None);
                }
                Err(fault) => self.lost(fault),
            }
        }
    }

    /// Sends waiting jobs, and takes more off the queue, while there is
    /// room in flight. A job with big bytes goes alone (it needs the arena
    /// lent), and so does every job once the child needs replacing.
    fn send_some(&mut self, turn: &Turn<'_, Queued>, window: usize) -> Result<(), Exit> {
        // Top up only once half the window is answered: several frames
        // per write, not one write per answer.
        if self.flight.len() > window / 2 {
            return Ok(());
        }
        while self.flight.len() < window {
            let job = match self.waiting.pop_front() {
                Some(job) => job,
                None => match turn.another_job() {
                    Some(queued) => match claim(queued, self.shared) {
                        Some(job) => job,
                        None => continue,
                    },
                    None => return Ok(()),
                },
            };
            let bytes = job.work.args.len() + job.work.tail.len();
            let alone = job.work.tail.len() >= arena::THRESHOLD || self.needs_new_child();
            let flying_bytes: usize = self.flight.iter().map(Flying::bytes).sum();
            if !self.flight.is_empty() && (alone || flying_bytes + bytes > IN_FLIGHT_BYTES) {
                self.waiting.push_front(job);
                return Ok(());
            }
            self.send(job)?;
            if alone {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Whether the child must be replaced before the next call: a cancel
    /// killed it, it sent outcomes that did not decode, or it has served
    /// its `max_tasks_per_child`.
    fn needs_new_child(&self) -> bool {
        self.link.as_ref().is_some_and(|live| {
            live.process.was_killed()
                || live.distrusted
                || (self.shared.max_tasks_per_child).is_some_and(|max| live.calls >= max)
        })
    }

    /// Retires the child (killing it first if it is not to be trusted).
    fn retire(&mut self) {
        let old = self.link.take().expect("a child to retire");
        if old.distrusted {
            old.process.kill(sys::KILL);
        }
        old.retire();
    }

    /// Sends `job` to the child (starting one if there is none, replacing
    /// one that must be, with nothing in flight), or fails it.
    fn send(&mut self, job: Job) -> Result<(), Exit> {
        let lend = self.flight.is_empty();
        if lend && self.needs_new_child() {
            self.retire();
        }
        if self.link.is_none() {
            match start(self.shared) {
                Ok(started) => *self.link = Some(started),
                // No room for a new child (out of descriptors, processes or
                // memory) while other children of the pool live: the work
                // goes back to the queue for one of them, and this manager
                // ends. Only when no child lives does the work fail.
                Err(Failed::Start(error @ Error::SpawnFailed { .. }))
                    if self.shared.any_alive() =>
                {
                    let jobs = std::iter::once(job).chain(self.waiting.drain(..));
                    let queued = jobs
                        .map(|job| Queued {
                            work: job.work,
                            claim: Claim::Claimed(job.target),
                        })
                        .collect();
                    self.crew.requeue_and_exit(queued, error);
                    return Err(Exit);
                }
                Err(failed) => {
                    fail(self.crew, job.work, failed);
                    return Ok(());
                }
            }
        }
        let live = self.link.as_mut().expect("started above");
        // ORDERING: only uniqueness matters.
        let call = NEXT_CALL.fetch_add(1, Ordering::Relaxed);
        if lend {
            live.process.set_running(call);
        }
        if let Some(target) = &job.target {
            let mut target = Target::lock(target);
            if let Target::Cancelled = *target {
                if lend {
                    live.process.set_running(0);
                }
                drop(target);
                fail(self.crew, job.work, Failed::Cancelled);
                return Ok(());
            }
            *target = Target::Sent(Arc::downgrade(&live.process), call);
        }
        let deadline = (self.shared.timeout).and_then(|t| Instant::now().checked_add(t));
        let sent = live.send(
            &job.work.header,
            [&job.work.args, &job.work.tail],
            lend,
            deadline,
        );
        // A failed write shows when the answers are read (see `run`).
        self.flight.push_back(Flying {
            job,
            call,
            deadline,
            delivered: lend && sent.is_ok(),
            staged: !lend,
            sent: Instant::now(),
        });
        Ok(())
    }

    /// The oldest call in flight is now the one the child runs: a cancel
    /// that came while it waited kills the child now.
    fn next_runs(&mut self) {
        let live = self.link.as_ref().expect("a child answered");
        let Some(next) = self.flight.front() else {
            live.process.set_running(0);
            return;
        };
        live.process.set_running(next.call);
        if let Some(target) = &next.job.target
            && let Target::Cancelled = *Target::lock(target)
        {
            live.process.kill_if_running(next.call);
        }
    }

    /// Completes `done` from the outcomes the child sent back (or fails it
    /// with `outcome`'s error), ending `turn` just before if given, and
    /// retires the child, with nothing more in flight, if it is done.
    fn complete(
        &mut self,
        done: Flying,
        outcome: Result<(), Error>,
        turn: Option<Turn<'_, Queued>>,
    ) {
        let live = self.link.as_mut().expect("the child just answered");
        let idle = turn.map(Turn::end);
        let delivered = match outcome {
            // Decoding runs the result's Deserialize, and completing may
            // run its Drop: user code, each caught where it runs (see
            // `Results::deliver`).
            Ok(()) => (done.job.work.results).deliver(&live.body, std::mem::take(&mut live.tail)),
            Err(error) => {
                done.job.work.results.fail(error);
                Ok(None)
            }
        };
        // Outcomes that did not decode (the future got the protocol
        // error): the child is not to be trusted with more calls; those in
        // flight are answered first.
        live.distrusted |= delivered.is_err();
        if let Some(callbacks) = delivered.unwrap_or_else(|callbacks| callbacks) {
            match &idle {
                Some(idle) => idle.busy_while(callbacks),
                None => callbacks(),
            }
        }
        if self.flight.is_empty() && self.needs_new_child() {
            self.retire();
        }
    }

    /// The child is lost (`fault` says how): it is killed if it may still
    /// run, and reaped. The oldest call in flight, the one it ran, fails,
    /// unless the child never saw it (then it is sent again, once); the
    /// calls behind it never started, and wait to be sent again, first.
    /// A cancel's kill may have come as the child had moved on to the next
    /// call, which did not ask for it: that call fails as a death does, as
    /// it may have started (no task runs twice), and the calls behind it go
    /// to a fresh child. After a broken protocol, nothing the child said can
    /// be trusted: every call in flight fails.
    fn lost(&mut self, fault: Fault) {
        let bad = self
            .link
            .take()
            .expect("a call was made, so a child exists");
        if matches!(fault, Fault::TimedOut | Fault::Protocol(_)) {
            bad.process.kill(sys::KILL);
        }
        let death = bad.process.death();
        bad.retire();
        let mut again = VecDeque::new();
        for (index, flying) in std::mem::take(&mut self.flight).into_iter().enumerate() {
            let cancelled = (flying.job.target.as_deref())
                .is_some_and(|target| matches!(*Target::lock(target), Target::Cancelled));
            let error = match &fault {
                Fault::Protocol(error) => Some(error.clone()),
                _ if cancelled => Some(Error::Cancelled),
                _ if index > 0 => None,
                Fault::TimedOut => Some(Error::TaskTimedOut {
                    limit: self.shared.timeout.unwrap_or_default(),
                }),
                Fault::Undelivered | Fault::Died if !flying.delivered && !flying.job.resent => None,
                Fault::Undelivered | Fault::Died => Some(death.clone()),
            };
            match error {
                // A cancelled future is resolved already; this is a no-op.
                Some(error) => fail(self.crew, flying.job.work, Failed::Call(error)),
                None => again.push_back(Job {
                    resent: index == 0 || flying.job.resent,
                    ..flying.job
                }),
            }
        }
        again.append(&mut self.waiting);
        self.waiting = again;
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

/// Starts a child, registered with the pool from the moment it exists, so
/// that `terminate_workers`/`kill_workers` can stop it even mid-handshake.
fn start(shared: &Shared) -> Result<ChildLink, Failed> {
    let started = ChildLink::start(&shared.recipe, |process| shared.register(process));
    if shared.is_stopping() {
        if let Ok(link) = started {
            link.process.kill(sys::KILL);
            link.retire();
        }
        return Err(Failed::Stopping);
    }
    started.map_err(Failed::Start)
}
