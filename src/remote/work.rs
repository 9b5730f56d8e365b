//! Layer: remote. May use: `error`, `executor`, `future`, `map`, `panic`,
//! `remote::codec`, `remote::message` and `shared`. What a transport carries for the front end: a [`Work`] (one
//! task message: a lone task, or a chunk of a `map`) and the [`Results`]
//! its answer completes.
//!
//! A transport that sends work ahead of the worker that will run it keeps
//! its futures pending ([`Results::hold`]) until the worker starts it, and
//! may take work back, whole or (a chunk) from an item on, to give it to
//! another worker ([`Work::split_off`]). A chunk's future completes once
//! every part of it has answered.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::future::{self, Canceller, Hook, Promise};
use crate::map::{Meter, Outcomes};
use crate::{Error, Future, Payload, panic, shared};

use super::codec::{self, Bulk};
use super::message::TaskHeader;

/// One message's worth of work: a lone task, or a chunk of a `map`.
pub(crate) struct Work {
    pub(crate) header: TaskHeader,
    /// The encoded arguments, sent after the header, then `bulk`.
    pub(crate) args: Vec<u8>,
    /// Where each item's encoded argument ends in `args` (a chunk's; empty
    /// for a lone task), so that a chunk can be cut between two items.
    pub(crate) ends: Vec<usize>,
    /// A lone plain-vector argument's memory, sent as it is: no copy.
    pub(crate) bulk: Bulk,
    pub(crate) results: Box<dyn Results>,
    /// The values of the [`Shared`](crate::Shared) handles its arguments
    /// hold: the transport puts each in the worker before the task, if the
    /// worker does not have it yet (see `shared`).
    pub(crate) shared: Vec<Arc<shared::Inner>>,
}

impl Work {
    /// Numbers its items from `first` on, as the transport sends them (a
    /// transport that numbers the items it sends does; see `TaskHeader`).
    pub(crate) fn number_from(&mut self, first: u32) {
        self.header.first = first;
    }

    /// Takes its argument encoded by the transport rather than at
    /// `submit` (a big lone argument whose encoding was deferred): the
    /// bytes replace the deferred bulk.
    pub(crate) fn set_encoded_arg(&mut self, args: Vec<u8>) {
        self.args = args;
        self.bulk = Bulk::default();
    }

    /// Cuts a chunk after its first `at` items (0 < `at` < its count): the
    /// items from `at` on become work of their own, already claimed,
    /// whose outcomes complete the same future. `None` for a lone task.
    pub(crate) fn split_off(&mut self, at: usize) -> Option<Work> {
        let count = self.header.count as usize;
        if !(1..count).contains(&at) || self.ends.len() != count {
            return None;
        }
        let results = self.results.split(at)?;
        let cut = self.ends[at - 1];
        let args = self.args.split_off(cut);
        let ends = self
            .ends
            .split_off(at)
            .into_iter()
            .map(|end| end - cut)
            .collect();
        self.header.count = at as u32;
        let header = TaskHeader {
            count: (count - at) as u32,
            ..self.header
        };
        Some(Work {
            header,
            args,
            ends,
            bulk: Bulk::default(),
            results,
            shared: self.shared.clone(),
        })
    }
}

/// The future of one [`Work`], typed by the task's result.
pub(crate) trait Results: Send {
    /// Whether a cancel may stop this work while it runs (by killing what
    /// runs it). Only a lone task can: the items of a chunk share their
    /// serving process, and killing it would take them all down. A
    /// transport makes a canceller for such work alone.
    fn cancellable_while_running(&self) -> bool;
    /// The work was sent ahead and may not have started: it stays pending,
    /// and a cancel first asks `hook` to take it back (see
    /// [`Promise::hold`]). `false` if it was cancelled already. Work
    /// already claimed (a chunk's later part) ignores the hook.
    fn hold(&mut self, hook: Hook) -> bool;
    /// The work came back unstarted, to wait for another worker: the hook
    /// given to [`hold`](Self::hold) no longer applies.
    fn release(&mut self);
    /// Moves the future to running; `false` if it was cancelled. With a
    /// `canceller` (only if [`Self::cancellable_while_running`]), the work
    /// can then be cancelled while it runs; without one, only before.
    /// Work already claimed (a chunk's later part) stays so: `true`.
    fn claim(&mut self, canceller: Option<Canceller>) -> bool;
    /// Completes the future from the serving side's outcomes, whose last
    /// bytes may have come apart in `tail` (`Err` if they did not decode:
    /// the future then holds the protocol error); a plain-vector result may
    /// take `reuse`'s memory (the work's own bulk, sent already). Either
    /// way, hands back its done callbacks to run, so that the caller can
    /// count itself busy meanwhile.
    fn deliver(
        self: Box<Self>,
        outcomes: &[u8],
        tail: &[u8],
        reuse: &mut Bulk,
    ) -> Result<Deferred, Deferred>;
    /// Fails the future with `error`.
    fn fail(self: Box<Self>, error: Error);
    /// Notes how long the serving side ran this work: from when it could
    /// start it (a serving process free for it, started and greeted) to its
    /// outcomes. A `map` chunk with an automatic size reports it to its
    /// meter; other work has no use for it.
    fn ran_for(&mut self, took: Duration) {
        let _ = took;
    }
    /// Work claimed for one serving process goes to another, unstarted:
    /// a lone task's `canceller` now stops it there. `false` if it was
    /// cancelled meanwhile (then it must not be sent). Chunks have no
    /// canceller: `true`.
    fn rehome(&mut self, canceller: Option<Canceller>) -> bool;
    /// The results of this work's items from `at` on, which become work of
    /// their own (see [`Work::split_off`]); `None` for a lone task.
    fn split(&mut self, at: usize) -> Option<Box<dyn Results>>;
}

/// Done callbacks still to run, if there are any.
pub(crate) type Deferred = Option<Box<dyn FnOnce() + Send>>;

/// Completes `promise` with `outcome`, deferring its done callbacks.
fn complete<T: Send + 'static>(promise: Promise<T>, outcome: Result<T, Error>) -> Deferred {
    let callbacks = promise.complete_deferring_callbacks(outcome);
    (!callbacks.is_empty()).then(|| Box::new(move || callbacks.run()) as Box<dyn FnOnce() + Send>)
}

/// A lone task's future.
pub(crate) struct One<R>(pub(crate) Promise<R>);

impl<R: Payload> Results for One<R> {
    fn cancellable_while_running(&self) -> bool {
        true
    }

    fn hold(&mut self, hook: Hook) -> bool {
        self.0.hold(hook)
    }

    fn release(&mut self) {
        self.0.release();
    }

    fn claim(&mut self, canceller: Option<Canceller>) -> bool {
        self.0.claim_held(canceller)
    }

    fn deliver(
        self: Box<Self>,
        outcomes: &[u8],
        tail: &[u8],
        reuse: &mut Bulk,
    ) -> Result<Deferred, Deferred> {
        match codec::decode_outcomes_with_tail::<R>(outcomes, tail, 1, reuse) {
            Ok(mut outcomes) => Ok(complete(self.0, outcomes.pop().expect("one outcome"))),
            Err(error) => Err(complete(self.0, Err(error))),
        }
    }

    fn fail(self: Box<Self>, error: Error) {
        self.0.complete(Err(error));
    }

    fn rehome(&mut self, canceller: Option<Canceller>) -> bool {
        canceller.is_none_or(|canceller| self.0.rehome(canceller))
    }

    fn split(&mut self, _: usize) -> Option<Box<dyn Results>> {
        None
    }
}

/// A `map` chunk's future, or a part of it: the items `from..from + len`
/// of those sent. Inputs that failed to serialize were not sent; their
/// errors go back in at their positions once every part has answered.
pub(crate) struct Chunk<R> {
    whole: Arc<Mutex<Whole<R>>>,
    from: usize,
    len: usize,
    /// Whether this part was claimed: a later part of a chunk always is.
    claimed: bool,
    /// For an automatic chunk size: where to report how long the chunk
    /// ran (see [`Results::ran_for`]).
    meter: Option<Arc<Meter>>,
}

/// What the parts of one chunk share: its future, until it completes.
struct Whole<R> {
    promise: Option<Promise<Outcomes<R>>>,
    /// The outcomes of the parts that answered, by their first item.
    parts: Vec<(usize, Vec<Result<R, Error>>)>,
    /// How many sent items have no outcome yet.
    missing: usize,
    refused: Vec<(usize, Error)>,
}

/// A `map` chunk ready to send: its encoded arguments, where each ends,
/// how many, and the results to complete from the answer.
pub(crate) struct ChunkMessage {
    pub(crate) args: Vec<u8>,
    pub(crate) ends: Vec<usize>,
    pub(crate) sent: usize,
    pub(crate) results: Box<dyn Results>,
    pub(crate) shared: Vec<Arc<shared::Inner>>,
}

impl<R: Payload> Chunk<R> {
    /// Serializes a `map` chunk's inputs (draining `inputs`) for one task
    /// message, and returns the chunk's future with the message to send:
    /// `None` if no input serialized, and then the future already holds
    /// each input's error. With a `meter`, the chunk reports its time there.
    pub(crate) fn encode<A: Payload>(
        inputs: &mut Vec<A>,
        meter: Option<&Arc<Meter>>,
    ) -> (Future<Outcomes<R>>, Option<ChunkMessage>) {
        let (promise, future) = future::pair();
        let len = inputs.len();
        let (mut args, mut ends, mut refused) = (Vec::new(), Vec::with_capacity(len), Vec::new());
        let mut shared = Vec::new();
        for (index, arg) in inputs.drain(..).enumerate() {
            let start = args.len();
            let (encoded, used) = shared::collect(|| codec::encode_arg(&arg, &mut args));
            match encoded.and(used) {
                Ok(used) => {
                    ends.push(args.len());
                    shared.extend(used);
                }
                Err(error) => {
                    args.truncate(start);
                    refused.push((index, error));
                }
            }
        }
        shared.sort_unstable_by_key(|inner| inner.id());
        shared.dedup_by_key(|inner| inner.id());
        let sent = len - refused.len();
        if sent == 0 {
            promise.complete(Ok(refused.into_iter().map(|(_, e)| Err(e)).collect()));
            return (future, None);
        }
        let results = Box::new(Chunk {
            whole: Arc::new(Mutex::new(Whole {
                promise: Some(promise),
                parts: Vec::new(),
                missing: sent,
                refused,
            })),
            from: 0,
            len: sent,
            claimed: false,
            meter: meter.cloned(),
        });
        (
            future,
            Some(ChunkMessage {
                args,
                ends,
                sent,
                results,
                shared,
            }),
        )
    }
}

impl<R> Chunk<R> {
    fn whole(&self) -> std::sync::MutexGuard<'_, Whole<R>> {
        // No user code runs under this lock: outcomes are decoded before
        // it is taken and completed (or dropped) after.
        self.whole.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<R: Payload> Results for Chunk<R> {
    fn cancellable_while_running(&self) -> bool {
        false
    }

    fn hold(&mut self, hook: Hook) -> bool {
        if self.claimed {
            return true;
        }
        let whole = self.whole();
        whole.promise.as_ref().is_some_and(|p| p.hold(hook))
    }

    fn release(&mut self) {
        if let Some(promise) = &self.whole().promise {
            promise.release();
        }
    }

    fn claim(&mut self, canceller: Option<Canceller>) -> bool {
        debug_assert!(
            canceller.is_none(),
            "a chunk cannot be cancelled while it runs"
        );
        if !self.claimed {
            let claimed = self
                .whole()
                .promise
                .as_ref()
                .is_some_and(|p| p.claim_held(None));
            self.claimed = claimed;
        }
        self.claimed
    }

    fn deliver(
        self: Box<Self>,
        outcomes: &[u8],
        tail: &[u8],
        reuse: &mut Bulk,
    ) -> Result<Deferred, Deferred> {
        let decoded = codec::decode_outcomes_with_tail::<R>(outcomes, tail, self.len, reuse);
        let mut whole = self.whole();
        let Some(promise) = whole.promise.take() else {
            drop(whole);
            // Another part failed the chunk already; these values' Drop is
            // user code.
            let _ = panic::catch(move || drop(decoded));
            return Ok(None);
        };
        match decoded {
            Ok(results) => {
                whole.parts.push((self.from, results));
                whole.missing -= self.len;
                if whole.missing > 0 {
                    whole.promise = Some(promise);
                    return Ok(None);
                }
                let mut parts = std::mem::take(&mut whole.parts);
                let refused = std::mem::take(&mut whole.refused);
                drop(whole);
                parts.sort_unstable_by_key(|(from, _)| *from);
                let mut results = match parts.len() {
                    1 => parts.pop().expect("one part").1,
                    _ => parts.into_iter().flat_map(|(_, part)| part).collect(),
                };
                for (index, error) in refused {
                    results.insert(index, Err(error));
                }
                Ok(complete(promise, Ok(results.into_iter().collect())))
            }
            Err(error) => {
                drop(whole);
                Err(complete(promise, Err(error)))
            }
        }
    }

    fn fail(self: Box<Self>, error: Error) {
        let promise = self.whole().promise.take();
        if let Some(promise) = promise {
            promise.complete(Err(error));
        }
    }

    fn ran_for(&mut self, took: Duration) {
        if let Some(meter) = &self.meter {
            meter.record(self.len, took);
        }
    }

    fn rehome(&mut self, _: Option<Canceller>) -> bool {
        true
    }

    /// Only a claimed chunk is split (the transport splits the one it runs).
    fn split(&mut self, at: usize) -> Option<Box<dyn Results>> {
        debug_assert!(self.claimed, "only a running chunk is split");
        let rest = Chunk {
            whole: Arc::clone(&self.whole),
            from: self.from + at,
            len: self.len - at,
            claimed: true,
            meter: self.meter.clone(),
        };
        self.len = at;
        Some(Box::new(rest))
    }
}
