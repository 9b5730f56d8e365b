//! Layer: core. May use: `error`, `map::sizing`, `panic` and
//! crossbeam-channel. [`Feed`]: the thread that pulls a `map`'s inputs,
//! for [`Map`](super::Map), which asks it for them.
//!
//! The input iterator is user code, and may block: on a channel, a socket,
//! a slow computation. Pulled on the caller's thread, a blocked input would
//! hold up the results already finished and the map's deadline. So a
//! feeder thread pulls it, and the caller's thread only waits, for a
//! finished chunk, for more input, or for the deadline, whichever comes
//! first.
//!
//! The map asks for inputs in *grants* of whole chunks, within its
//! look-ahead, and in bulk: once half of it is free, so that the feeder
//! wakes once for many chunks. The feeder pulls each chunk's inputs and
//! sends them back together, as one [`Batch`]. So what is pulled stays
//! within the look-ahead, and a chunk's inputs cross between the threads
//! in one message, not one each: a `map` of tiny tasks pays a channel
//! message per chunk. A chunk whose inputs are not all there yet waits for
//! them on the feeder, as it waited in the map before.
//!
//! The feeder exits once the input ends (or panics) and its last batch is
//! sent, or once the map is gone: at its next grant, or after the pull
//! under way returns, if it ever does. Everything of the input (`next`,
//! `size_hint`, the `Drop` of the iterator and of inputs nobody will take)
//! runs on the feeder, under a catch.

use std::thread;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::sizing::MAX_AUTO_CHUNKSIZE;
use crate::{Error, panic};

/// A request for `chunks` batches of up to `size` inputs each.
#[derive(Clone, Copy)]
struct Grant {
    chunks: usize,
    size: usize,
}

/// The inputs pulled for one chunk of a grant.
pub(super) struct Batch<T> {
    /// How many inputs were asked for.
    asked: usize,
    /// The inputs, in order: fewer than asked only if the input ended.
    pub(super) items: Vec<T>,
    /// The iterator's size hint after these inputs.
    pub(super) hint: (usize, Option<usize>),
    /// What came after these inputs.
    pub(super) after: After,
}

/// What came after a batch's inputs.
pub(super) enum After {
    /// More may follow.
    More,
    /// The input ended.
    Ended,
    /// The input failed (its `next` panicked): the map's last item.
    Failed(Error),
}

/// The map's end of the feeder thread.
pub(super) struct Feed<T> {
    grants: Sender<Grant>,
    batches: Receiver<Batch<T>>,
    /// Inputs granted whose batch has not been received.
    granted: usize,
}

impl<T: Send + 'static> Feed<T> {
    /// Starts a feeder thread pulling `inputs`; it pulls nothing before the
    /// first grant.
    ///
    /// # Errors
    ///
    /// [`Error::SpawnFailed`] if the operating system refuses the thread.
    pub(super) fn start<I>(inputs: I) -> Result<Self, Error>
    where
        I: Iterator<Item = T> + Send + 'static,
    {
        let (grants, asked) = crossbeam_channel::unbounded();
        let (sent, batches) = crossbeam_channel::unbounded();
        thread::Builder::new()
            .name("concurrent-futures-map-input".into())
            .spawn(move || pull(inputs, &asked, &sent))
            .map_err(|error| Error::SpawnFailed {
                reason: format!("no thread to pull the map's inputs on: {error}"),
            })?;
        Ok(Feed {
            grants,
            batches,
            granted: 0,
        })
    }
}

impl<T> Feed<T> {
    /// Asks for `chunks` more batches of up to `size` inputs each.
    pub(super) fn grant(&mut self, chunks: usize, size: usize) {
        if chunks == 0 {
            return;
        }
        // A feeder gone already has sent its last batch (or, failing
        // outside its catch, closed the channel): the map sees that there.
        let _ = self.grants.send(Grant { chunks, size });
        self.granted += chunks * size;
    }

    /// Inputs granted whose batch has not been received.
    pub(super) fn granted(&self) -> usize {
        self.granted
    }

    /// Where the batches arrive, to wait on beside other channels; what
    /// arrives goes through [`received`](Self::received).
    pub(super) fn batches(&self) -> &Receiver<Batch<T>> {
        &self.batches
    }

    /// The next batch, if one is there now.
    pub(super) fn try_batch(&mut self) -> Option<Batch<T>> {
        match self.batches.try_recv() {
            Ok(batch) => Some(self.received(Some(batch))),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(self.received(None)),
        }
    }

    /// The next batch, waiting for it until `deadline` (for ever if
    /// `None`); `Err(Error::Timeout)` when the deadline passes first.
    pub(super) fn wait_batch(&mut self, deadline: Option<Instant>) -> Result<Batch<T>, Error> {
        let batch = match deadline {
            None => self.batches.recv().ok(),
            Some(deadline) => match self.batches.recv_deadline(deadline) {
                Ok(batch) => Some(batch),
                Err(RecvTimeoutError::Timeout) => return Err(Error::Timeout),
                Err(RecvTimeoutError::Disconnected) => None,
            },
        };
        Ok(self.received(batch))
    }

    /// Accounts for a batch received, which ends its grant. `None` is the
    /// channel closed without a last batch, which the feeder sends unless it
    /// failed outside its catch: a last batch with that error.
    pub(super) fn received(&mut self, batch: Option<Batch<T>>) -> Batch<T> {
        let batch = batch.unwrap_or_else(|| Batch {
            asked: 0,
            items: Vec::new(),
            hint: (0, Some(0)),
            after: After::Failed(Error::BrokenExecutor {
                reason: "the thread that pulled the map's inputs stopped".into(),
            }),
        });
        self.granted -= batch.asked;
        batch
    }
}

/// The feeder thread: pulls what each grant asks for and sends it back,
/// until the input ends or the map is gone.
fn pull<I: Iterator>(mut inputs: I, asked: &Receiver<Grant>, sent: &Sender<Batch<I::Item>>) {
    let wanted = asked
        .iter()
        .flat_map(|grant| std::iter::repeat_n(grant.size, grant.chunks));
    for wanted in wanted {
        // A grant may be a huge fixed chunk size: memory grows with the
        // inputs, past what an automatic chunk holds.
        let mut items = Vec::with_capacity(wanted.min(MAX_AUTO_CHUNKSIZE));
        let pulled = panic::catch(|| items.extend(inputs.by_ref().take(wanted)));
        let after = match pulled {
            Err(error) => After::Failed(input_panicked(error)),
            Ok(()) if items.len() < wanted => After::Ended,
            Ok(()) => After::More,
        };
        let hint = match after {
            After::More => panic::catch(|| inputs.size_hint()).unwrap_or((0, None)),
            After::Ended | After::Failed(_) => (0, Some(0)),
        };
        let last = !matches!(after, After::More);
        let batch = Batch {
            asked: wanted,
            items,
            hint,
            after,
        };
        if let Err(unwanted) = sent.send(batch) {
            panic::drop_caught(unwanted.into_inner());
            break;
        }
        if last {
            break;
        }
    }
    panic::drop_caught(inputs);
}

/// The map's error for a panic of its input iterator.
fn input_panicked(error: Error) -> Error {
    match error {
        Error::Panicked {
            message,
            location,
            backtrace,
        } => Error::Panicked {
            message: format!("the map's input iterator panicked, so the map ends: {message}"),
            location,
            backtrace,
        },
        other => other,
    }
}
