//! Layer: mpi. May use: `error`, `future`, `mpi::liveness`,
//! `remote::function`, `remote::codec`, `remote::message`, `remote::work`,
//! std, crossbeam-channel and the mpi crate.
//! One executor's share of the hub ([`Pool`]): its queue, the calls its
//! workers run ([`Busy`], with whether a chunk may be cut: [`Cut`]), its
//! initializer, and its life ([`Life`]). The pool's `busy` map is the one
//! record of which worker runs its work.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use ::mpi::Rank;
use crossbeam_channel::Sender;

use crate::mpi::liveness::{CommId, Heard};
use crate::remote::codec::Bulk;
use crate::remote::function::{Initializer, Secret};
use crate::remote::message::{Answer, TaskHeader};
use crate::remote::work::{One, Work};
use crate::{Error, Future, future};

/// A call a worker runs: the work, when it was sent, and whether the hub
/// may ask for its chunk to be cut.
struct Busy {
    work: Work,
    /// When it was sent.
    sent: Instant,
    cut: Cut,
}

/// Whether the hub may ask a worker to cut the chunk it runs:
///
/// ```text
/// Later(t) ──held PATIENCE since t, a worker free──▶ Asked ──all started──▶ Never
///    ▲                                                 │
///    └─────────cut, or nothing started yet─────────────┘
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Once it has been held the hub's patience from this instant.
    Later(Instant),
    /// Asked: the worker's answer is awaited.
    Asked,
    /// It has nothing to give away: a lone task, or every item has
    /// started.
    Never,
}

/// Whether a pool takes work, and whether it can run it:
///
/// ```text
///            Close                                drained
///   Open ─────────────▶ Closing ──────────────────────────▶ retired
///    │                     │                                   ▲
///    │ a worker dies, or   │ a worker dies, or                 │
///    │ the initializer     │ the initializer fails             │ drained
///    ▼ fails               ▼                                   │
///  Broken ───Close───▶ BrokenClosing ──────────────────────────┘
/// ```
///
/// A retired pool is removed from the hub (its `Close`s answered); its
/// spawned group, if it had one, is then free for a later pool.
#[derive(Debug)]
enum Life {
    /// It takes work.
    Open,
    /// `Close`d: it takes no more; once drained it is retired and each of
    /// `replies` answered. `cancelled`: a `Close` cancelled the queued
    /// work, so the rest of a chunk cut later is dropped too.
    Closing {
        cancelled: bool,
        replies: Vec<Sender<()>>,
    },
    /// It can run nothing more, for `reason`: its work fails with
    /// [`Error::BrokenExecutor`].
    Broken { reason: String },
    /// Broken, and `Close`d: retired once its running calls are over.
    BrokenClosing {
        reason: String,
        replies: Vec<Sender<()>>,
    },
}

/// One executor's workers and work.
pub(super) struct Pool {
    /// The communicator its workers are on.
    comm_id: CommId,
    /// The most workers that run its work at once.
    max_workers: usize,
    /// The call each busy worker runs.
    busy: HashMap<Rank, Busy>,
    queue: VecDeque<Work>,
    life: Life,
    /// What each worker runs before its first task of this pool, as a task
    /// of its own: a rank of the static world or of a reused group may
    /// have served other pools, whose initializers do not count.
    initializer: Option<Initializer>,
    /// The workers the initializer was sent to.
    initialized: HashSet<Rank>,
    /// The outcome of the initializer on each worker still running it.
    initializing: HashMap<Rank, Future<()>>,
}

impl Pool {
    /// An open pool of up to `max_workers` workers on `comm_id`.
    pub(super) fn new(
        comm_id: CommId,
        max_workers: usize,
        initializer: Option<Initializer>,
    ) -> Pool {
        Pool {
            comm_id,
            max_workers,
            busy: HashMap::new(),
            queue: VecDeque::new(),
            life: Life::Open,
            initializer,
            initialized: HashSet::new(),
            initializing: HashMap::new(),
        }
    }

    /// The communicator its workers are on.
    pub(super) fn comm_id(&self) -> CommId {
        self.comm_id
    }

    /// Whether any of its workers runs a call.
    pub(super) fn is_busy(&self) -> bool {
        !self.busy.is_empty()
    }

    /// Whether `rank` runs a call of this pool.
    pub(super) fn runs_on(&self, rank: Rank) -> bool {
        self.busy.contains_key(&rank)
    }

    /// Whether it may run one more call at once.
    pub(super) fn has_room(&self) -> bool {
        self.busy.len() < self.max_workers
    }

    /// `work` was just sent to `rank`. A chunk keeps its arguments, and the
    /// shared values they use, for a cut; other work lets them go now.
    pub(super) fn sent(&mut self, rank: Rank, mut work: Work) {
        let now = Instant::now();
        let count = work.header.count as usize;
        let cut = if count > 1 && work.ends.len() == count {
            Cut::Later(now)
        } else {
            (work.args, work.bulk, work.shared) = (Vec::new(), Bulk::default(), Vec::new());
            Cut::Never
        };
        let busy = Busy {
            work,
            sent: now,
            cut,
        };
        self.busy.insert(rank, busy);
    }

    /// The workers to ask to cut the chunk they run, with its number: those
    /// that have held theirs longer than `patience`, longest first, as many
    /// as the pool has workers free (`free_world` bounds them on the shared
    /// static world) less those already asked. Marks them asked. None for
    /// a broken pool.
    pub(super) fn cuts_to_ask(
        &mut self,
        free_world: usize,
        patience: Duration,
    ) -> Vec<(Rank, u32)> {
        if self.broken().is_some() {
            return Vec::new();
        }
        let room = self.max_workers.saturating_sub(self.busy.len());
        let free = match self.comm_id {
            CommId::World => free_world.min(room),
            CommId::Group(_) => room,
        };
        let asked = (self.busy.values())
            .filter(|busy| busy.cut == Cut::Asked)
            .count();
        let Some(wanted) = free.checked_sub(asked).filter(|&wanted| wanted > 0) else {
            return Vec::new();
        };
        let mut held: Vec<(Instant, Rank)> = (self.busy.iter())
            .filter_map(|(&rank, busy)| match busy.cut {
                Cut::Later(since) if since.elapsed() > patience => Some((since, rank)),
                _ => None,
            })
            .collect();
        held.sort_unstable();
        (held.into_iter().take(wanted))
            .map(|(_, rank)| {
                let busy = self.busy.get_mut(&rank).expect("listed above");
                busy.cut = Cut::Asked;
                (rank, busy.work.header.first)
            })
            .collect()
    }

    /// A worker of this pool that has been silent too long while running a
    /// call, if any (see [`Heard::silent`]); none for a broken pool.
    pub(super) fn silent(&self, heard: &Heard) -> Option<Rank> {
        if self.broken().is_some() {
            return None;
        }
        (self.busy.keys().copied()).find(|&rank| heard.silent(self.comm_id, rank))
    }

    /// Takes back the call `rank` ran: the worker is gone.
    pub(super) fn lose(&mut self, rank: Rank) -> Option<Work> {
        self.busy.remove(&rank).map(|busy| busy.work)
    }

    /// Why it can run nothing more, if it cannot.
    pub(super) fn broken(&self) -> Option<&str> {
        match &self.life {
            Life::Broken { reason } | Life::BrokenClosing { reason, .. } => Some(reason),
            Life::Open | Life::Closing { .. } => None,
        }
    }

    /// Takes `work` from the executor: queued if open, else failed.
    pub(super) fn accept(&mut self, work: Work) {
        match &self.life {
            Life::Open => self.queue.push_back(work),
            Life::Broken { reason } | Life::BrokenClosing { reason, .. } => {
                work.results.fail(Error::BrokenExecutor {
                    reason: reason.clone(),
                });
            }
            Life::Closing { .. } => work.results.fail(Error::Shutdown),
        }
    }

    /// A `Close`: no more work; the queued work dropped unrun (its futures
    /// resolve as cancelled) if `cancel`; `reply` answered once retired.
    pub(super) fn close(&mut self, cancel: bool, reply: Option<Sender<()>>) {
        if cancel {
            self.queue.clear();
        }
        self.life = match std::mem::replace(&mut self.life, Life::Open) {
            Life::Open => Life::Closing {
                cancelled: cancel,
                replies: reply.into_iter().collect(),
            },
            Life::Closing {
                cancelled,
                mut replies,
            } => {
                replies.extend(reply);
                Life::Closing {
                    cancelled: cancelled || cancel,
                    replies,
                }
            }
            Life::Broken { reason } => Life::BrokenClosing {
                reason,
                replies: reply.into_iter().collect(),
            },
            Life::BrokenClosing {
                reason,
                mut replies,
            } => {
                replies.extend(reply);
                Life::BrokenClosing { reason, replies }
            }
        };
    }

    /// Whether it is closed and has nothing left to run: time to retire.
    pub(super) fn drained(&self) -> bool {
        matches!(self.life, Life::Closing { .. } | Life::BrokenClosing { .. })
            && self.queue.is_empty()
            && self.busy.is_empty()
    }

    /// At exit: the work it still holds, queued or running, fails with
    /// `reason`; the outcomes of running calls are not waited for.
    pub(super) fn abandon(&mut self, reason: &str) {
        for work in (self.queue.drain(..)).chain(self.busy.drain().map(|(_, busy)| busy.work)) {
            work.results.fail(Error::BrokenExecutor {
                reason: reason.to_owned(),
            });
        }
    }

    /// Retires it, drained or abandoned: answers its `Close`s.
    pub(super) fn retire(self) {
        let replies = match self.life {
            Life::Closing { replies, .. } | Life::BrokenClosing { replies, .. } => replies,
            Life::Open | Life::Broken { .. } => Vec::new(),
        };
        for reply in replies {
            let _ = reply.send(());
        }
    }

    /// Breaks the pool for `reason`: `lost` and the queued work fail with
    /// [`Error::BrokenExecutor`], as will later work, and none of its
    /// workers is given more. A pool already broken keeps its first reason.
    pub(super) fn fail(&mut self, lost: Vec<Work>, reason: &str) {
        for work in self.queue.drain(..).chain(lost) {
            work.results.fail(Error::BrokenExecutor {
                reason: reason.to_owned(),
            });
        }
        let reason = reason.to_owned();
        self.life = match std::mem::replace(&mut self.life, Life::Open) {
            Life::Open => Life::Broken { reason },
            Life::Closing { replies, .. } => Life::BrokenClosing { reason, replies },
            broken @ (Life::Broken { .. } | Life::BrokenClosing { .. }) => broken,
        };
    }

    /// [`fail`](Self::fail) with every busy worker's call lost: the pool's
    /// workers are all gone.
    pub(super) fn fail_all(&mut self, reason: &str) {
        let lost = self.busy.drain().map(|(_, busy)| busy.work).collect();
        self.fail(lost, reason);
    }

    /// The next work for `rank`, now free: the initializer, tagged with
    /// `secret`, if it is the rank's first of this pool and work is queued;
    /// else the first queued work still wanted (cancelled work is dropped
    /// unrun, and takes no worker), its futures marked running.
    pub(super) fn next_work(&mut self, rank: Rank, secret: &Secret) -> Option<Work> {
        match &self.initializer {
            Some(initializer) if !self.queue.is_empty() && self.initialized.insert(rank) => {
                let (work, outcome) = initializer_work(initializer, secret);
                self.initializing.insert(rank, outcome);
                Some(work)
            }
            _ => std::iter::from_fn(|| self.queue.pop_front())
                .find_map(|mut work| work.results.claim(None).then_some(work)),
        }
    }

    /// Completes the call `rank` held with its `outcomes` (which end with
    /// an [`Answer`]); its done callbacks go to `callbacks`. A chunk whose
    /// worker ran only its first items (it was cut) gives the rest to the
    /// queue, if the worker's answer to the cut has not already.
    pub(super) fn answered(
        &mut self,
        rank: Rank,
        outcomes: &[u8],
        heard: &mut Heard,
        callbacks: &Sender<Box<dyn FnOnce() + Send>>,
    ) {
        let Some(Busy { mut work, sent, .. }) = self.busy.remove(&rank) else {
            return; // a stray message, ignored
        };
        heard.answered(self.comm_id, rank);
        let (outcomes, answer) = outcomes.split_at(outcomes.len().saturating_sub(Answer::LEN));
        let (first, count) = (work.header.first, work.header.count);
        let answer = (Answer::decode(answer).ok())
            .and_then(|(answer, _)| Some(answer).filter(|a| a.first == first));
        let Some(done) = answer
            .map(|answer| answer.done)
            .filter(|done| (1..=count).contains(done))
        else {
            return work.results.fail(Error::Protocol(format!(
                "MPI rank {rank} answered {answer:?} for the task numbered {first}, of {count} items"
            )));
        };
        if done < count {
            match work.split_off(done as usize) {
                Some(rest) => self.queue_rest(rest),
                None => {
                    return work.results.fail(Error::Protocol(format!(
                        "MPI rank {rank} ran {done} of the {count} items of a task that cannot be cut"
                    )));
                }
            }
        }
        // A worker runs one call at a time, from when it is sent: what a
        // `map` with automatic chunks sizes them from (the items that ran
        // there).
        work.results.ran_for(sent.elapsed());
        // The shared values it used are let go before its future resolves.
        drop(std::mem::take(&mut work.shared));
        let deferred = match work.results.deliver(outcomes, &[], &mut Bulk::default()) {
            Ok(deferred) | Err(deferred) => deferred,
        };
        if let Some(deferred) = deferred {
            let _ = callbacks.send(deferred);
        }
        // An initializer that failed on one worker would fail on every
        // worker: the pool is broken, as a process pool is.
        if let Some(Err(error)) =
            (self.initializing.remove(&rank)).map(|outcome| outcome.result_timeout(Duration::ZERO))
            && self.broken().is_none()
        {
            let reason = Initializer::failure(error);
            self.fail(
                Vec::new(),
                &format!("the initializer failed on MPI rank {rank}: {reason}"),
            );
        }
    }

    /// Takes `rank`'s answer to a request to cut the chunk it runs: how
    /// many of its items run there. The rest goes to the queue; a chunk
    /// with items left that have not started (it was cut halfway through
    /// them, or none had started) may be asked again later. An answer for
    /// work the worker no longer runs (its outcomes came first) is dropped.
    pub(super) fn cut_answered(&mut self, rank: Rank, answer: &[u8]) {
        let Ok((answer, _)) = Answer::decode(answer) else {
            return; // a stray message, ignored
        };
        let Some(busy) = (self.busy.get_mut(&rank))
            .filter(|busy| busy.work.header.first == answer.first && busy.cut == Cut::Asked)
        else {
            return;
        };
        busy.cut = match answer.done >= busy.work.header.count {
            true => Cut::Never,
            false => Cut::Later(Instant::now()),
        };
        if let Some(rest) = busy.work.split_off(answer.done as usize) {
            self.queue_rest(rest);
        }
    }

    /// Queues the rest of a cut chunk first, to run on the next free
    /// worker; it fails at once if the pool is broken, and is dropped unrun
    /// (its future cancelled) if a shutdown cancelled the queued work.
    fn queue_rest(&mut self, rest: Work) {
        match &self.life {
            Life::Broken { reason } | Life::BrokenClosing { reason, .. } => {
                rest.results.fail(Error::BrokenExecutor {
                    reason: reason.clone(),
                });
            }
            Life::Closing {
                cancelled: true, ..
            } => drop(rest),
            Life::Open | Life::Closing { .. } => self.queue.push_front(rest),
        }
    }
}

/// A run of `initializer` as a task of its own, tagged with `secret`; the
/// future says how it went.
fn initializer_work(initializer: &Initializer, secret: &Secret) -> (Work, Future<()>) {
    let (promise, future) = future::pair();
    let header = TaskHeader {
        function: initializer.function,
        tag: initializer.function.tag(secret),
        count: 1,
        first: 0,
        #[cfg(feature = "tracing")]
        trace: 0,
    };
    let work = Work {
        header,
        args: initializer.arg.clone(),
        ends: Vec::new(),
        bulk: Bulk::default(),
        results: Box::new(One(promise)),
        shared: Vec::new(),
    };
    (work, future)
}
