//! Layer: remote. May use `codec`, `message` and the crate's futures; no
//! transport. What a transport carries for the front end: a [`Work`] (one
//! task message: a lone task, or a chunk of a `map`) and the [`Results`]
//! its answer completes.

use std::sync::Arc;
use std::time::Duration;

use crate::future::{self, Canceller, Promise};
use crate::map::{Meter, Outcomes};
use crate::{Error, Future, Payload};

use super::codec;
use super::message::TaskHeader;

/// One message's worth of work: a lone task, or a chunk of a `map`.
pub(crate) struct Work {
    pub(crate) header: TaskHeader,
    /// The encoded arguments, sent after the header, then `tail`.
    pub(crate) args: Vec<u8>,
    /// A lone `Vec<u8>` argument's bytes, sent as they are: no copy.
    pub(crate) tail: Vec<u8>,
    pub(crate) results: Box<dyn Results>,
}

/// The future of one [`Work`], typed by the task's result.
pub(crate) trait Results: Send {
    /// Whether a cancel may stop this work while it runs (by killing what
    /// runs it). Only a lone task can: the items of a chunk share their
    /// serving process, and killing it would take them all down. A
    /// transport makes a canceller for such work alone.
    fn cancellable_while_running(&self) -> bool;
    /// Moves the future to running; `false` if it was cancelled. With a
    /// `canceller` (only if [`Self::cancellable_while_running`]), the work
    /// can then be cancelled
    /// while it runs; without one, only before.
    fn claim(&mut self, canceller: Option<Canceller>) -> bool;
    /// Completes the future from the serving side's outcomes, whose last
    /// bytes may have come apart in `tail` (`Err` if they did not decode:
    /// the future then holds the protocol error). Either way, hands back
    /// its done callbacks to run, so that the caller can count itself busy
    /// meanwhile.
    fn deliver(self: Box<Self>, outcomes: &[u8], tail: Vec<u8>) -> Result<Deferred, Deferred>;
    /// Fails the future with `error`.
    fn fail(self: Box<Self>, error: Error);
    /// Notes how long the serving side ran this work: from when it could
    /// start it (a serving process free for it, started and greeted) to its
    /// outcomes. A `map` chunk with an automatic size reports it to its
    /// meter; other work has no use for it.
    fn ran_for(&mut self, took: Duration) {
        let _ = took;
    }
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

    fn claim(&mut self, canceller: Option<Canceller>) -> bool {
        match canceller {
            Some(canceller) => self.0.claim_cancellable(canceller),
            None => self.0.claim(),
        }
    }

    fn deliver(self: Box<Self>, outcomes: &[u8], tail: Vec<u8>) -> Result<Deferred, Deferred> {
        match codec::decode_outcomes_with_tail::<R>(outcomes, tail, 1) {
            Ok(mut outcomes) => Ok(complete(self.0, outcomes.pop().expect("one outcome"))),
            Err(error) => Err(complete(self.0, Err(error))),
        }
    }

    fn fail(self: Box<Self>, error: Error) {
        self.0.complete(Err(error));
    }
}

/// A `map` chunk's future. Inputs that failed to serialize were not sent;
/// their errors go back in at their positions.
pub(crate) struct Chunk<R> {
    promise: Promise<Outcomes<R>>,
    sent: usize,
    refused: Vec<(usize, Error)>,
    /// For an automatic chunk size: where to report how long the chunk
    /// ran (see [`Results::ran_for`]).
    meter: Option<Arc<Meter>>,
}

/// A `map` chunk ready to send: its encoded arguments, how many, and the
/// results to complete from the answer.
pub(crate) struct ChunkMessage {
    pub(crate) args: Vec<u8>,
    pub(crate) sent: usize,
    pub(crate) results: Box<dyn Results>,
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
        let (mut args, mut refused) = (Vec::new(), Vec::new());
        for (index, arg) in inputs.drain(..).enumerate() {
            if let Err(error) = codec::encode_arg(&arg, &mut args) {
                refused.push((index, error));
            }
        }
        let sent = len - refused.len();
        if sent == 0 {
            promise.complete(Ok(refused.into_iter().map(|(_, e)| Err(e)).collect()));
            return (future, None);
        }
        let results = Box::new(Chunk {
            promise,
            sent,
            refused,
            meter: meter.cloned(),
        });
        (
            future,
            Some(ChunkMessage {
                args,
                sent,
                results,
            }),
        )
    }
}

impl<R: Payload> Results for Chunk<R> {
    fn cancellable_while_running(&self) -> bool {
        false
    }

    fn claim(&mut self, canceller: Option<Canceller>) -> bool {
        debug_assert!(
            canceller.is_none(),
            "a chunk cannot be cancelled while it runs"
        );
        self.promise.claim()
    }

    fn deliver(self: Box<Self>, outcomes: &[u8], tail: Vec<u8>) -> Result<Deferred, Deferred> {
        match codec::decode_outcomes_with_tail::<R>(outcomes, tail, self.sent) {
            Ok(mut results) => {
                for (index, error) in self.refused {
                    results.insert(index, Err(error));
                }
                Ok(complete(self.promise, Ok(results.into_iter().collect())))
            }
            Err(error) => Err(complete(self.promise, Err(error))),
        }
    }

    fn fail(self: Box<Self>, error: Error) {
        self.promise.complete(Err(error));
    }

    fn ran_for(&mut self, took: Duration) {
        if let Some(meter) = &self.meter {
            meter.record(self.sent, took);
        }
    }
}
