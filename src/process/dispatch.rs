//! Layer: process. May use: `work_queue`, `error`, `future`, `process::arena`,
//! `process::gate`, `process::pool_side`, `process::sys`, `remote::codec`,
//! `remote::message`, `remote::work`. The dispatcher: the queue thread that
//! sends work to one worker (a child process) and completes it from the
//! answers; and what the dispatchers share ([`PoolState`]) and queue
//! ([`QueuedWork`]).
//!
//! # Dispatch: who owns a task, and when it is claimed
//!
//! Submitted work waits in the pool's one queue (its [`WorkQueue`]), where any
//! dispatcher may take it. A dispatcher whose child answers quickly (each answer
//! within [`QUICK`]) sends it more calls ahead, a window that doubles with
//! each quick answer up to [`IN_FLIGHT`] calls, written in one system call,
//! so that a child of tiny tasks never waits for its dispatcher. Work sent
//! ahead still belongs to nobody until the child starts it: the child's
//! start [`Gate`] decides, item by item, whether the child starts an item
//! or the pool takes it back, and exactly one of the two happens.
//!
//! ```text
//!            take               send ahead            the child starts it
//!  queue ──────────▶ dispatcher ──────────────▶ in flight ────────────────────▶ running
//!    ▲   (pending)              (pending, the          (claimed: running(),
//!    │                           future holds           a cancel of a lone
//!    │                           a hook)                task kills the child)
//!    │                            │
//!    └──── given back ◀───────────┘ taken back on the gate: by the dispatcher,
//!          (pending again)          when an item has run PATIENCE with work
//!                                   behind it; or by a cancel (then dropped)
//! ```
//!
//! - A task in flight is pending: `running()` is false and a cancel takes it
//!   back from the gate (it never starts, and no process is killed); the
//!   dispatcher claims it only when it is the oldest in flight, the one the
//!   child runs.
//! - When the item that the child runs takes longer than [`PATIENCE`] and
//!   work waits behind it on the same child, the dispatcher takes that work
//!   back and gives it to the queue of work given back, which every dispatcher
//!   serves first. A `map` chunk is cut after its running item: the items
//!   after it go back the same way, as work of their own, and their
//!   outcomes complete the same future.
//! - With a per-task timeout, one call is in flight at a time, claimed as
//!   it is sent, so that its deadline is its own; so too without a gate
//!   (shared memory that could not be made) and on Windows, whose pipes
//!   hold no call the child has not read.
//!
//! The child runs its calls in order and answers each, saying which of its
//! items ran (an [`Answer`](crate::remote::message::Answer)), checked
//! against the call it is for: an answer can never complete another call's
//! future. When the child dies, the gate tells which items it had started:
//! a call it started fails ([`Error::WorkerDied`]); the calls it had not
//! started go back to the queue, so no task runs twice, and no task that
//! never started fails (a call sent again once and lost again fails).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::arena;
use super::gate::{Gate, before};
use super::pool_side::Recipe;
use super::pool_side::{Fault, Process, Worker};
use super::sys;
use crate::Error;
use crate::future::Canceller;
use crate::remote::codec::Bulk;
use crate::remote::message::Answer;
use crate::remote::work::Work;
use crate::work_queue::{self, Busy, WorkQueue};

/// The most calls in flight on one child (with a gate, without a per-task
/// timeout): enough that a child of tiny tasks never waits for the
/// dispatcher; work behind a slow item is taken back after [`PATIENCE`].
const IN_FLIGHT: usize = 32;

/// The most bytes of calls in flight on one child. The channel's buffer
/// must hold every call the child has not read yet: a child that answers
/// while the dispatcher still writes would otherwise block on its answer, and
/// the dispatcher on its write, for good. So it is what the channel is sure
/// to hold ([`sys::UNREAD_BYTES`]). A call alone may be any size, as the
/// dispatcher reads its answer only after writing it.
const IN_FLIGHT_BYTES: usize = sys::UNREAD_BYTES;

/// An answer within this long of its call's turn keeps the window growing.
const QUICK: Duration = Duration::from_millis(1);

/// How long one item may run while work waits behind it on the same child,
/// before that work is taken back for the other workers.
const PATIENCE: Duration = Duration::from_millis(2);

/// What the transport and its dispatcher threads share.
pub(super) struct PoolState {
    /// How to start a child, or why children cannot be started at all.
    pub(super) recipe: Recipe,
    /// The per-task timeout, if any.
    pub(super) timeout: Option<Duration>,
    pub(super) max_tasks_per_child: Option<usize>,
    /// The live child processes, for `terminate_workers`/`kill_workers`.
    processes: Mutex<Vec<Weak<Process>>>,
}

impl PoolState {
    pub(super) fn new(
        recipe: Recipe,
        timeout: Option<Duration>,
        max_tasks_per_child: Option<usize>,
    ) -> Self {
        PoolState {
            recipe,
            timeout,
            max_tasks_per_child,
            processes: Mutex::new(Vec::new()),
        }
    }

    /// The live child processes, forgotten here: the caller stops them.
    pub(super) fn take_processes(&self) -> Vec<Arc<Process>> {
        let processes = std::mem::take(
            &mut *self
                .processes
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        processes.iter().filter_map(Weak::upgrade).collect()
    }

    /// Whether any child process of the pool is still there to run work.
    fn any_alive(&self) -> bool {
        let processes = self
            .processes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        processes.iter().any(|p| p.strong_count() > 0)
    }

    /// Remembers a new child's process, forgetting dead ones.
    fn register(&self, process: &Arc<Process>) {
        let mut processes = self
            .processes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        processes.retain(|p| p.strong_count() > 0);
        processes.push(Arc::downgrade(process));
    }
}

/// Work in the pool's queue, or taken off it by a dispatcher: what the front
/// end sent, whether its future was claimed already (a later part of a
/// `map` chunk, or work that came back from a dispatcher that could start no
/// child), and how far it got toward a child.
pub(crate) struct QueuedWork {
    work: Work,
    claimed: bool,
    delivery: Delivery,
}

impl QueuedWork {
    /// Work the front end just sent: pending, never sent to a child.
    pub(super) fn new(work: Work) -> Self {
        QueuedWork {
            work,
            claimed: false,
            delivery: Delivery::New,
        }
    }
}

impl work_queue::Entry for QueuedWork {
    fn fail(self, error: Error) {
        self.work.results.fail(error);
    }
}

/// How far work got toward a child: what happens to it when its child
/// dies before answering.
///
/// ```text
///          its frame went out whole, alone (the oldest call)
///   New ─────────────────────────────────────────────▶ Delivered
///    │                                                     │
///    │ its child died before starting it (the gate says so; │ its child died: without a
///    │ without a gate, only a call not Delivered)           │ gate it may have started,
///    ▼                                  ◀───────────────────┘ so it fails; with one, as New
///  Resent ──its child died before starting it again──▶ fails
/// ```
///
/// Work cut off a chunk, and work given back, keep or start at `New`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Not known to have reached a child whole.
    New,
    /// Sent whole, alone, to the current child: without a gate, it may
    /// have started there.
    Delivered,
    /// Sent to a child that died before starting it: if it is lost again,
    /// it fails.
    Resent,
}

/// A call sent to the child, waiting for its answer.
struct Call {
    /// `None` once taken back and given away: the child still owes an
    /// answer, which must say that nothing ran.
    queued: Option<QueuedWork>,
    /// The number of its first item on the gate, and how many items the
    /// child should answer for.
    first: u32,
    count: u32,
    /// Until when its outcomes may take (a per-task timeout).
    deadline: Option<Instant>,
    /// When it was sent.
    sent: Instant,
}

impl Call {
    /// The bytes of its frame, near enough.
    fn bytes(&self) -> usize {
        self.queued
            .as_ref()
            .map_or(0, |queued| queued.work.args.len() + queued.work.bulk.len())
    }

    /// Whether item `item` is one of this call's.
    fn holds(&self, item: u32) -> bool {
        !before(item, self.first) && before(item, self.first.wrapping_add(self.count))
    }
}

/// The body of a dispatcher thread.
pub(super) fn run(queue: &Arc<WorkQueue<QueuedWork>>, shared: &PoolState) {
    let mut limit = CallLimit { now: 1 };
    let mut worker: Option<Worker> = None;
    let mut taker = queue.taker();
    while let Some((queued, busy)) = taker.take() {
        let mut batch = Batch {
            shared,
            queue,
            worker: &mut worker,
            waiting: VecDeque::from([queued]),
            in_flight: VecDeque::new(),
            paused: false,
            seen: None,
        };
        if batch.run(busy, &mut limit).is_err() {
            return; // no room for a child: the work went back to the queue
        }
    }
    if let Some(worker) = worker {
        worker.retire();
    }
}

/// How many calls a dispatcher may have in flight on its child now.
struct CallLimit {
    now: usize,
}

impl CallLimit {
    /// Grows after an answer that came within [`QUICK`] of its call's turn
    /// (its sending, or the previous answer), up to `max`, and shrinks to
    /// one call after a slower one.
    fn answered(&mut self, took: Duration, max: usize) {
        self.now = if took <= QUICK {
            (self.now * 2).min(max)
        } else {
            1
        };
    }
}

/// One turn of a dispatcher: the work it took, sent or to send.
struct Batch<'a> {
    shared: &'a PoolState,
    queue: &'a Arc<WorkQueue<QueuedWork>>,
    worker: &'a mut Option<Worker>,
    /// Taken, not sent yet (or to send again), in order.
    waiting: VecDeque<QueuedWork>,
    /// Sent, oldest first: the oldest is the one the child runs.
    in_flight: VecDeque<Call>,
    /// Whether items in flight were taken back: nothing more is sent until
    /// the child has answered them all.
    paused: bool,
    /// The item the child was seen running at the last look, for
    /// [`PATIENCE`].
    seen: Option<u32>,
}

/// The dispatcher could start no child, and put its work back on the queue.
struct Exit;

impl Batch<'_> {
    /// Sends and completes work until none is waiting or in flight, taking
    /// more off the queue while there is room; ends `busy` just before
    /// completing the last.
    fn run(&mut self, busy: Busy<'_, QueuedWork>, limit: &mut CallLimit) -> Result<(), Exit> {
        let mut last_answer = None;
        loop {
            if self.in_flight.is_empty() {
                self.resume();
            }
            self.send_some(&busy, limit.now)?;
            if self.in_flight.is_empty() {
                if self.waiting.is_empty() {
                    return Ok(());
                }
                continue;
            }
            let patience = self.waits_behind().then(|| Instant::now() + PATIENCE);
            let live = self.worker.as_mut().expect("calls in flight, so a child");
            // The calls staged since may start, unless a cancel took back
            // calls meanwhile (then the child skips them, and they go).
            if !live.allow_sent() {
                self.pause();
            }
            let live = self.worker.as_mut().expect("calls in flight, so a child");
            // A failed write is not the end yet: the child may have answered
            // calls before it died, and those answers are still to read.
            let _ = live.flush(self.in_flight.back().and_then(|f| f.deadline));
            // Patience runs only without a per-task timeout.
            if let Some(patience) = patience
                && !live.answer_by(patience)
            {
                self.look_behind();
                continue;
            }
            let deadline = self.in_flight[0].deadline;
            match live.receive(deadline) {
                Ok(answer) => {
                    let Some(done) = self.answered(answer) else {
                        continue;
                    };
                    let now = Instant::now();
                    // It ran from its sending (its child started and
                    // greeted by then) or the answer before it, if later.
                    let busy_since = last_answer.map_or(done.sent, |last| done.sent.max(last));
                    limit.answered(now - busy_since, self.max_in_flight());
                    last_answer = Some(now);
                    self.next_runs();
                    if self.in_flight.is_empty() && self.waiting.is_empty() {
                        // The thread counts as idle just before the last completion.
                        self.complete(done, now - busy_since, Some(busy));
                        return Ok(());
                    }
                    self.complete(done, now - busy_since, None);
                }
                Err(fault) => self.lost(fault),
            }
        }
    }

    /// How many calls may be in flight on this child: one at a time without
    /// a gate or with a per-task timeout.
    fn max_in_flight(&self) -> usize {
        let gate = self.worker.as_ref().is_none_or(|live| live.gate.is_some());
        match gate && self.shared.timeout.is_none() {
            true => IN_FLIGHT,
            false => 1,
        }
    }

    fn gate(&self) -> Option<&Arc<Gate>> {
        self.worker.as_ref().and_then(|live| live.gate.as_ref())
    }

    /// Whether work waits behind the item this child runs: other calls,
    /// later items of the chunk it runs, or work taken off the queue that
    /// did not fit beside them.
    fn waits_behind(&self) -> bool {
        let Some(gate) = self.gate() else {
            return false;
        };
        self.shared.timeout.is_none()
            && (!self.waiting.is_empty()
                || self.in_flight.len() > 1
                || self.in_flight[0].count > 1 && self.unstarted_behind(gate.started()))
    }

    /// Sends waiting work, and takes more off the queue, while there is
    /// room in flight. Work with big bytes goes alone (it needs the arena
    /// lent), and so does all work once the child needs replacing (asked
    /// once per work, and passed to `send` as `replace`).
    fn send_some(&mut self, busy: &Busy<'_, QueuedWork>, limit: usize) -> Result<(), Exit> {
        // Top up only once half the window is answered: several frames
        // per write, not one write per answer.
        if self.paused || self.in_flight.len() > limit / 2 {
            return Ok(());
        }
        while self.in_flight.len() < limit && !self.paused {
            let queued = match self.waiting.pop_front() {
                Some(queued) => queued,
                None => match busy.take_another() {
                    Some(queued) => queued,
                    None => return Ok(()),
                },
            };
            // The shared values the child lacks go before the call, written
            // at once: with calls in flight they could fill the channel
            // while the child, busy, does not read it.
            let puts = (self.worker.as_ref()).map_or(0, |live| live.put_bytes(&queued.work.shared));
            let payload = queued.work.args.len() + queued.work.bulk.len();
            let bytes = payload + puts;
            let replace = self.needs_new_child();
            let alone = payload >= arena::THRESHOLD || replace;
            let in_flight_bytes: usize = self.in_flight.iter().map(Call::bytes).sum();
            if !self.in_flight.is_empty() && (alone || in_flight_bytes + bytes > IN_FLIGHT_BYTES) {
                self.waiting.push_front(queued);
                return Ok(());
            }
            self.send(queued, replace)?;
            if alone {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Whether the child must be replaced before the next call (see
    /// `Worker::needs_replacing`).
    fn needs_new_child(&self) -> bool {
        (self.worker.as_ref())
            .is_some_and(|live| live.needs_replacing(self.shared.max_tasks_per_child))
    }

    /// Retires the child (killed first if it is not to be trusted).
    fn retire(&mut self) {
        self.worker.take().expect("a child to retire").retire();
    }

    /// Sends `queued` to the child (starting one if there is none, replacing
    /// one that must be, with nothing in flight), or fails it. The oldest
    /// call in flight is claimed as it is sent; one sent behind others
    /// stays pending, with a hook that takes it back on a cancel.
    fn send(&mut self, mut queued: QueuedWork, replace: bool) -> Result<(), Exit> {
        let lend = self.in_flight.is_empty();
        if lend && replace {
            self.retire();
        }
        if self.worker.is_none() {
            match start(self.queue, self.shared) {
                Ok(started) => *self.worker = Some(started),
                // No room for a new child (out of descriptors, processes or
                // memory) while other children of the pool live: the work
                // goes back to the queue for one of them, and this dispatcher
                // ends. Only when no child lives does the work fail.
                Err(Failed::Start(error @ Error::SpawnFailed { .. }))
                    if self.shared.any_alive() =>
                {
                    let all = std::iter::once(queued).chain(self.waiting.drain(..));
                    self.queue.requeue_and_exit(all.collect(), error);
                    return Err(Exit);
                }
                Err(failed) => {
                    fail(self.queue, queued.work, failed);
                    return Ok(());
                }
            }
        }
        let live = self.worker.as_mut().expect("started above");
        // A big argument left unencoded goes straight into the arena, which
        // is the pool's with nothing in flight; else into memory of its own.
        // Its Serialize failing fails the task, before anything is sent.
        let mut placed = None;
        if let Bulk::Deferred(deferred) = &queued.work.bulk {
            let encoded = match lend.then(|| live.place(deferred)).flatten() {
                Some(in_arena) => in_arena.map(|len| {
                    placed = Some(len);
                    None
                }),
                None => deferred.encode().map(Some),
            };
            match encoded {
                Ok(None) => {}
                Ok(Some(bytes)) => queued.work.set_encoded_arg(bytes),
                Err(error) => {
                    queued.work.results.fail(error);
                    return Ok(());
                }
            }
        }
        let count = queued.work.header.count;
        let first = live.number(count);
        // The oldest call goes now: the child may start it. (With nothing
        // in flight, nothing was taken back since the last resume.)
        if lend && !live.allow_sent() {
            self.waiting.push_front(queued);
            self.pause();
            return Ok(());
        }
        queued.work.number_from(first);
        let held = match (&queued.claimed, lend, &live.gate) {
            // Claimed on a child that died before starting it: its cancel
            // must now reach this child.
            (true, _, _) => {
                if lend {
                    live.process.set_running(Some(first));
                }
                let canceller = canceller(&queued.work, &live.process, first);
                queued.work.results.rehome(canceller)
            }
            (false, true, _) | (false, false, None) => {
                live.process.set_running(Some(first));
                let claimed = claim(&mut queued.work, &live.process, first);
                if !claimed {
                    live.process.set_running(None);
                }
                queued.claimed = claimed;
                claimed
            }
            (false, false, Some(gate)) => {
                let gate = Arc::clone(gate);
                (queued.work.results).hold(Box::new(move || gate.take_back(first)))
            }
        };
        if !held {
            // Cancelled already: dropped unrun, its future stays cancelled.
            return Ok(());
        }
        let deadline = (self.shared.timeout).and_then(|t| Instant::now().checked_add(t));
        let work = &queued.work;
        let parts = [&work.args[..], work.bulk.bytes()];
        let sent = live.send(&work.shared, &work.header, parts, placed, lend, deadline);
        if lend && sent.is_ok() && queued.delivery == Delivery::New {
            queued.delivery = Delivery::Delivered;
        }
        // A failed write shows when the answers are read (see `run`).
        self.in_flight.push_back(Call {
            queued: Some(queued),
            first,
            count,
            deadline,
            sent: Instant::now(),
        });
        Ok(())
    }

    /// Takes the child's answer for the oldest call in flight: `None` if
    /// the call had been given away (its answer says nothing ran), or if
    /// the answer broke the protocol (then the child was dropped).
    fn answered(&mut self, answer: Answer) -> Option<Answered> {
        let head = &self.in_flight[0];
        // A call still here was claimed as the oldest in flight, and runs
        // whole; one given away was taken back before it started.
        let expected = match &head.queued {
            Some(_) => head.count,
            None => 0,
        };
        if answer.first != head.first || answer.done != expected {
            let error = Error::Protocol(format!(
                "the worker answered for items {}..+{} where the pool expected {}..+{}",
                answer.first, answer.done, head.first, expected
            ));
            self.lost(Fault::Protocol(error));
            return None;
        }
        let call = self.in_flight.pop_front().expect("in flight");
        let Some(queued) = call.queued else {
            self.next_runs();
            return None;
        };
        Some(Answered {
            queued,
            sent: call.sent,
        })
    }

    /// The oldest call in flight is now the one the child runs: it is
    /// claimed, unless a cancel took it back (then it goes, at once).
    fn next_runs(&mut self) {
        let live = self.worker.as_ref().expect("a child answered");
        let Some(next) = self.in_flight.front_mut() else {
            live.process.set_running(None);
            return;
        };
        let first = next.first;
        let Some(queued) = &mut next.queued else {
            live.process.set_running(None);
            return;
        };
        live.process.set_running(Some(first));
        if queued.claimed {
            return;
        }
        let allowed = live.gate.as_ref().is_none_or(|gate| gate.allows(first));
        if allowed && claim(&mut queued.work, &live.process, first) {
            queued.claimed = true;
            return;
        }
        live.process.set_running(None);
        // Taken back: the child will skip it, and its answer is owed.
        let queued = next.queued.take().expect("checked above");
        self.worker.as_mut().expect("a child answered").took_back();
        self.give_away(queued);
    }

    /// Completes `done` from the outcomes the child sent back, ending
    /// `busy` just before if given, and retires the child, with nothing
    /// more in flight, if it is done.
    fn complete(&mut self, done: Answered, took: Duration, busy: Option<Busy<'_, QueuedWork>>) {
        let live = self.worker.as_mut().expect("the child just answered");
        let Answered { mut queued, .. } = done;
        queued.work.results.ran_for(took);
        // The shared values it used are let go before its future resolves:
        // a caller that drops its last handle then frees the value now.
        drop(std::mem::take(&mut queued.work.shared));
        let idle = busy.map(Busy::end);
        // Decoding runs the result's Deserialize, and completing may run
        // its Drop: user code, each caught where it runs (see
        // `Results::deliver`). The outcomes' tail is decoded in the arena,
        // before anything more is sent to this child (see `Worker::answer`);
        // a plain-vector result may take the memory of the work's own
        // argument, sent already and never sent again.
        let (outcomes, tail) = live.answer();
        let delivered = (queued.work.results).deliver(outcomes, tail, &mut queued.work.bulk);
        // Outcomes that did not decode (the future got the protocol
        // error): the child is not to be trusted with more calls; those in
        // flight are answered first.
        if delivered.is_err() {
            live.distrust();
        }
        if let Some(callbacks) = delivered.unwrap_or_else(|callbacks| callbacks) {
            match &idle {
                Some(idle) => idle.busy_while(callbacks),
                None => callbacks(),
            }
        }
        if self.in_flight.is_empty() && self.needs_new_child() {
            self.retire();
        }
    }

    /// Nothing more may start on the child until it answers every call in
    /// flight; what a cancel took back goes now.
    fn pause(&mut self) {
        self.paused = true;
        let Some(live) = self.worker.as_mut() else {
            return;
        };
        let Some(gate) = live.gate.clone() else {
            return;
        };
        for call in self.in_flight.iter_mut().skip(1) {
            if !gate.allows(call.first)
                && let Some(queued) = call.queued.take()
            {
                live.took_back();
                give_away(self.queue, queued);
            }
        }
    }

    /// Every call in flight was answered: items may start again.
    fn resume(&mut self) {
        if let Some(live) = self.worker.as_mut() {
            live.resume();
        }
        self.paused = false;
        self.seen = None;
    }

    /// The child ran one item for [`PATIENCE`] while work waited behind
    /// it: if it is still the same item, and another worker could take
    /// that work (one is idle, or the pool may start one), it is taken back
    /// and given to them (a chunk is cut after its running item). A
    /// shutdown that cancels the queued work takes it all back too.
    fn look_behind(&mut self) {
        let gate = Arc::clone(self.gate().expect("patience needs a gate"));
        let started = gate.started();
        let cancelling = self.queue.cancelled();
        let stuck = self.seen == Some(started);
        self.seen = Some(started);
        if !(cancelling || stuck && self.queue.could_take_more()) {
            self.pause_if_taken(&gate);
            return;
        }
        // What was taken off the queue but not sent (it did not fit in the
        // channel beside the calls in flight) goes first.
        for queued in self.waiting.drain(..) {
            give_away(self.queue, queued);
        }
        if !self.unstarted_behind(started) {
            return;
        }
        // The first item that may be taken back: after the one running, and
        // never the first of the oldest call (claimed), nor inside a later
        // call that started (it runs whole: only the oldest is cut). A
        // take-back that fails (the child moved on meanwhile) still holds
        // back what follows, so it is tried again from where the child is.
        let mut started = started;
        let from = loop {
            let head = &self.in_flight[0];
            let mut from = match before(started, head.first) {
                true => head.first.wrapping_add(1),
                false => started.wrapping_add(1),
            };
            if let Some(running) = self.in_flight.iter().skip(1).find(|f| f.holds(started)) {
                from = running.first.wrapping_add(running.count);
            }
            if gate.take_back(from) {
                break from;
            }
            started = gate.started();
        };
        // A chunk's unstarted rest goes as work of its own.
        let head = &mut self.in_flight[0];
        if head.holds(from)
            && let Some(queued) = &mut head.queued
            && let Some(rest) = queued
                .work
                .split_off(from.wrapping_sub(head.first) as usize)
        {
            head.count = queued.work.header.count;
            give_away(
                self.queue,
                QueuedWork {
                    work: rest,
                    claimed: true,
                    delivery: Delivery::New,
                },
            );
        }
        self.pause();
    }

    /// Whether calls in flight hold items after `started` that may not have
    /// started: later calls, or the rest of the oldest one.
    fn unstarted_behind(&self, started: u32) -> bool {
        let head = &self.in_flight[0];
        let last = head.first.wrapping_add(head.count.max(1) - 1);
        self.in_flight.len() > 1 || head.queued.is_some() && before(started, last)
    }

    /// Pauses if a cancel took back calls in flight.
    fn pause_if_taken(&mut self, gate: &Gate) {
        if self
            .in_flight
            .iter()
            .skip(1)
            .any(|f| f.queued.is_some() && !gate.allows(f.first))
        {
            self.pause();
        }
    }

    /// Gives `queued` away: see [`give_away`].
    fn give_away(&self, queued: QueuedWork) {
        give_away(self.queue, queued);
    }

    /// The child is lost (`fault` says how): it is killed if it may still
    /// run, and reaped. A call it started fails with the reason; the calls
    /// it had not started go back to the queue, to be sent again once (a
    /// child that died before reading a call cannot have started it).
    /// After a broken protocol, nothing the child said can be trusted:
    /// every call in flight fails.
    fn lost(&mut self, fault: Fault) {
        let bad = self
            .worker
            .take()
            .expect("a call was made, so a child exists");
        if matches!(fault, Fault::TimedOut | Fault::Protocol(_)) {
            bad.process.kill(sys::KILL);
        }
        let death = bad.process.death();
        // The dead child's last word; it is retired (its channel and
        // handles closed) before any future hears of its death.
        let last_started = bad.gate.as_ref().map(|gate| gate.started());
        bad.retire();
        for (index, call) in std::mem::take(&mut self.in_flight).into_iter().enumerate() {
            let Some(queued) = call.queued else {
                continue;
            };
            let ran = match last_started {
                Some(last) => !before(last, call.first),
                None => queued.delivery == Delivery::Delivered,
            };
            let error = match &fault {
                Fault::Protocol(error) => Some(error.clone()),
                Fault::TimedOut if index == 0 => Some(Error::TaskTimedOut {
                    limit: self.shared.timeout.unwrap_or_default(),
                }),
                _ if ran || queued.delivery == Delivery::Resent => Some(death.clone()),
                _ => None,
            };
            match error {
                // A cancelled future is resolved already; this is a no-op.
                Some(error) => fail(self.queue, queued.work, Failed::Call(error)),
                None => {
                    let mut queued = queued;
                    if !queued.claimed {
                        // Its hook was for the dead child's gate.
                        queued.work.results.release();
                    }
                    queued.delivery = Delivery::Resent;
                    self.waiting.push_back(queued);
                }
            }
        }
        self.paused = false;
        self.seen = None;
    }
}

/// The answer to one call, whose items all ran.
struct Answered {
    queued: QueuedWork,
    sent: Instant,
}

/// Claims `work`'s future for the call whose first item is `first` on
/// `process`: a lone task gets the canceller that kills the child while it
/// runs that call. `false` if it was cancelled.
fn claim(work: &mut Work, process: &Arc<Process>, first: u32) -> bool {
    let canceller = canceller(work, process, first);
    work.results.claim(canceller)
}

/// What stops `work` while it runs on `process` as the call whose first
/// item is `first`: a lone task's canceller, which kills the child.
fn canceller(work: &Work, process: &Arc<Process>, first: u32) -> Option<Canceller> {
    work.results.cancellable_while_running().then(|| {
        let process: Weak<Process> = Arc::downgrade(process);
        Box::new(move || {
            if let Some(process) = process.upgrade() {
                process.kill_if_running(first);
            }
        }) as Canceller
    })
}

/// Gives work taken back (or sent to a child that died before starting it)
/// to the queue of work given back, for the next dispatcher free: its future
/// is pending again (if it was not claimed), with no hook. When the pool
/// is stopping, it is dropped unrun instead (its future resolves as
/// cancelled).
fn give_away(queue: &Arc<WorkQueue<QueuedWork>>, mut queued: QueuedWork) {
    if queue.stopped() {
        return;
    }
    if !queued.claimed {
        queued.work.results.release();
    }
    queue.give_back([queued]);
}

/// Resolves `work` that got no outcomes, as `failed` says.
fn fail(queue: &WorkQueue<QueuedWork>, work: Work, failed: Failed) {
    match failed {
        // Dropped unrun, its futures resolve as cancelled (or already are).
        Failed::Stopping => drop(work),
        Failed::Start(error) => {
            if let Error::BrokenExecutor { reason } = &error {
                queue.break_pool(reason.clone());
            }
            work.results.fail(error);
        }
        Failed::Call(error) => work.results.fail(error),
    }
}

/// Why work got no outcomes.
enum Failed {
    /// `terminate_workers`/`kill_workers` is stopping the pool.
    Stopping,
    /// No child could be started.
    Start(Error),
    /// The call failed: the child died, timed out or broke the protocol.
    Call(Error),
}

/// Starts a child, registered with the pool from the moment it exists, so
/// that `terminate_workers`/`kill_workers` can stop it even mid-handshake:
/// either this check sees the queue stopped, or `stop_now`, which stops
/// the queue before it takes the registered processes, sees this child
/// (both under locks, so one of the two comes first).
fn start(queue: &WorkQueue<QueuedWork>, shared: &PoolState) -> Result<Worker, Failed> {
    let started = Worker::start(&shared.recipe, |process| shared.register(process));
    if queue.stopped() {
        if let Ok(worker) = started {
            worker.process.kill(sys::KILL);
            worker.retire();
        }
        return Err(Failed::Stopping);
    }
    started.map_err(Failed::Start)
}
