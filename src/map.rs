//! Layer: core. May use: `error`, `future`, `future::watch`, `map::feed`,
//! `map::outcomes`, `map::sizing` and `sync`. [`Map`]: the lazy, bounded
//! iterator behind every executor's
//! `map`, `map_unordered` and `starmap`.
//!
//! In input order, the next chunk to yield is the oldest one submitted.
//! Unordered, each submitted chunk's future has a watcher (the mechanism of
//! [`wait`](crate::wait)) that sends the chunk's number down one channel as
//! it finishes, and the next chunk to yield is the next number received.
//! Unless the caller sets a chunk size, [`sizing`] picks each chunk's size from
//! the durations the pool measures. The caller's thread pulls the inputs,
//! unless [`Map::pull_on_thread`] gives them to a thread of the map's own
//! ([`feed`]): then the caller waits for whichever comes first, a finished
//! chunk, more input, or the deadline.

mod feed;
mod outcomes;
mod sizing;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select};

use crate::future::watch::{Notify, watch_key};
use crate::sync::Arc;
use crate::{Error, Future};
use feed::{After, Batch, Feed};
pub(crate) use outcomes::Outcomes;
pub use sizing::MAX_AUTO_CHUNKSIZE;
pub(crate) use sizing::Meter;
use sizing::Sizing;

/// The default look-ahead of `map`, in chunks per worker. Enough that
/// workers never wait for the caller to hand out the next input, even when
/// the caller shares a core with them; small enough to be a few KiB.
pub const LOOK_AHEAD_PER_WORKER: usize = 16;

/// How an executor submits one chunk of inputs: it drains `chunk` (one or
/// more inputs) and returns its future. Given a [`Meter`], it sends even a
/// lone input as a chunk, and records how long the chunk ran there.
pub(crate) type SubmitChunk<'e, A, R> =
    Box<dyn FnMut(&mut Vec<A>, Option<&std::sync::Arc<Meter>>) -> Pending<R> + Send + 'e>;

/// How a map cuts its inputs into chunks.
#[derive(Debug)]
enum Chunking {
    /// The caller's chunk size.
    Fixed(usize),
    /// Sizes from measured task durations.
    Auto(Sizing),
}

/// The future of one submitted chunk.
#[derive(Debug)]
pub(crate) enum Pending<R> {
    /// A lone input's future.
    One(Future<R>),
    /// A chunk's future: one result per input, in order. If the whole chunk
    /// fails (say its worker process died), each of its `len` items gets
    /// that error.
    Chunk {
        future: Future<Outcomes<R>>,
        len: usize,
    },
}

impl<R> Pending<R> {
    fn len(&self) -> usize {
        match self {
            Pending::One(_) => 1,
            Pending::Chunk { len, .. } => *len,
        }
    }

    fn cancel_pending(&self) {
        match self {
            Pending::One(future) => future.cancel_pending(),
            Pending::Chunk { future, .. } => future.cancel_pending(),
        };
    }

    /// Waits for the outcome until `deadline` (spinning briefly first,
    /// unless `sleep`) and takes it; `None` if the deadline passed first,
    /// and then the outcome stays. (A pool's future never holds
    /// `Error::Timeout`: that is a wait's.)
    fn take(&self, deadline: Option<Instant>, sleep: bool) -> Option<Taken<R>> {
        let taken = match self {
            Pending::One(future) => Taken::One(future.wait_and_take(deadline)),
            Pending::Chunk { future, len } if sleep => {
                Taken::Chunk(future.sleep_and_take(deadline), *len)
            }
            Pending::Chunk { future, len } => Taken::Chunk(future.wait_and_take(deadline), *len),
        };
        match taken {
            Taken::One(Err(Error::Timeout)) | Taken::Chunk(Err(Error::Timeout), _) => None,
            taken => Some(taken),
        }
    }

    /// Has `number` sent to `completions` once this chunk is done.
    fn watch(&self, completions: &Completions, number: usize) {
        let Completions { key, notify, .. } = completions;
        match self {
            Pending::One(future) => future.watch(*key, number, notify),
            Pending::Chunk { future, .. } => future.watch(*key, number, notify),
        };
    }

    /// Withdraws [`watch`](Self::watch).
    fn unwatch(&self, completions: &Completions) {
        match self {
            Pending::One(future) => future.unwatch(completions.key),
            Pending::Chunk { future, .. } => future.unwatch(completions.key),
        }
    }
}

/// Where chunks report, by number, that they are done: every chunk of a
/// `map_unordered`, and the oldest chunk of a `map` while the caller waits
/// for it and for input at once.
struct Completions {
    key: u64,
    notify: Arc<Notify>,
    finished: Receiver<usize>,
}

impl Completions {
    fn new() -> Self {
        let (notify, finished) = Notify::channel();
        Completions {
            key: watch_key(),
            notify,
            finished,
        }
    }
}

/// Where a map's inputs are, in its lifecycle:
///
/// ```text
/// Here ----------------- the input ends --------------------------> Ended
///   |                                                                 ^
///   +--pull_on_thread--> Feeding --last batch received (or panic)-----+
///   |                                                                 |
///   +--pull_on_thread, no thread to pull on (SpawnFailed)-------------+
/// ```
///
/// The map is dropped, or its deadline passes, in any state: then it drops
/// the input (`Ended`), and a feeder thread exits.
enum Input<I: Iterator> {
    /// The caller's thread pulls it, within the look-ahead, as `next` needs.
    Here(I),
    /// A feeder thread pulls it, a grant at a time.
    Feeding {
        feed: Feed<I::Item>,
        /// The iterator's size hint after the last batch received.
        hint: (usize, Option<usize>),
    },
    /// Every input has been received. An error to yield after every
    /// result: the input panicked, or could not be pulled at all.
    Ended(Option<Error>),
}

impl<I: Iterator> Input<I> {
    /// The size hint of the inputs not received yet.
    fn hint(&self) -> (usize, Option<usize>) {
        match self {
            Input::Here(inputs) => inputs.size_hint(),
            Input::Feeding { hint, .. } => *hint,
            Input::Ended(_) => (0, Some(0)),
        }
    }
}

/// Whether `pending` is a chunk measured to run for longer than a wait
/// would spin for it: then the wait sleeps at once.
fn runs_long<R>(chunking: &Chunking, pending: &Pending<R>) -> bool {
    match (chunking, pending) {
        (Chunking::Auto(sizing), Pending::Chunk { len, .. }) => sizing.runs_long(*len),
        _ => false,
    }
}

/// The outcome of a chunk, taken from its future.
enum Taken<R> {
    One(Result<R, Error>),
    /// The chunk's outcomes, or its error, and how many inputs it had.
    Chunk(Result<Outcomes<R>, Error>, usize),
}

/// What the caller's thread waited for, and got.
enum Event<R> {
    /// The next chunk to yield, to wait for in full, up to the deadline.
    Chunk(Pending<R>),
    /// The next chunk's outcome, already taken.
    Taken(Taken<R>),
    /// A batch of inputs arrived (and is in `chunk`): refill.
    Input,
    /// The deadline passed.
    Timeout,
    /// Nothing is in flight, and no input will come.
    End,
}

/// What woke the caller waiting for a chunk and for input at once.
enum Woke<T> {
    Timeout,
    /// A batch, or `None` if the feeder's channel closed.
    Input(Option<Batch<T>>),
    /// A chunk's number, from `Completions`.
    Finished(Option<usize>),
}

/// The iterator returned by `map`, `map_unordered` and `starmap`: each
/// task's result, in input order or as the tasks finish.
///
/// - **Lazy and bounded.** Nothing is submitted until the first
///   [`next`](Iterator::next). After that at most
///   [`buffer_size`](Map::buffer_size) inputs are in flight (Python's
///   `buffersize`): a million-item or endless input never sits in memory.
///   The default is [`LOOK_AHEAD_PER_WORKER`] chunks per worker: at most
///   that times the pool's workers times the chunk size, or times
///   [`MAX_AUTO_CHUNKSIZE`] with the automatic chunk size.
/// - **No tuning.** By default inputs go to the workers in chunks sized from
///   how long the tasks take: one input per chunk at first, then chunks that
///   each run for about a millisecond (of at most [`MAX_AUTO_CHUNKSIZE`]
///   inputs), so tiny tasks do not pay a round trip each; near the end the
///   chunks shrink again, so that every worker keeps busy to the last input.
///   [`chunksize`](Map::chunksize) sets a fixed size instead. A chunk runs
///   on one worker: on a process pool, a worker that dies fails its whole
///   chunk, so set `chunksize(1)` where one input may crash its process.
/// - **Ordered, or as they finish.** `map` and `starmap` yield in input
///   order even when later tasks finish first. `map_unordered` yields each
///   result as soon as its task finishes (with chunks, each chunk's results
///   together, as soon as the chunk finishes).
/// - **Per-item errors.** A failing task is that item's `Err`; iteration goes
///   on to the next item.
/// - **One deadline.** With [`timeout`](Map::timeout), the whole iteration
///   must finish within that time from the `map` call. When it passes, the
///   iterator yields [`Error::Timeout`] once and ends.
/// - **The input where you choose.** By default the caller's thread pulls
///   the inputs, inside `next`, within the look-ahead: any iterator will do,
///   borrowing ones too, and nothing crosses threads. An input that may stall
///   (a channel, a socket) would hold up the results already finished and
///   the deadline there; [`pull_on_thread`](Map::pull_on_thread) gives it to
///   a thread of the map's own.
/// - **Clean stop.** When the deadline passes or the iterator is dropped, the
///   tasks that have not started are cancelled.
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
/// use std::time::Duration;
///
/// let executor = ThreadPoolExecutor::new(4);
/// let squares = executor
///     .map(|n: u64| n * n, 1..)            // an endless input is fine
///     .buffer_size(8)                      // at most 8 tasks in flight
///     .timeout(Duration::from_secs(60))    // one deadline for the whole run
///     .take(5)
///     .collect::<Result<Vec<_>, _>>();
/// assert_eq!(squares, Ok(vec![1, 4, 9, 16, 25]));
/// ```
///
/// # Tasks run for their effects
///
/// Unlike Python's, this `map` submits nothing until it is iterated, so a
/// bare `executor.map(f, xs);` runs no task, and neither does
/// `let _ = executor.map(f, xs);`. Iterate it, and look at each result:
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
/// use std::sync::atomic::{AtomicU32, Ordering};
///
/// static SENT: AtomicU32 = AtomicU32::new(0);
/// // ORDERING: a count read after every task is done; the map's results
/// // already order the reads after the writes.
/// fn send(n: u32) { SENT.fetch_add(n, Ordering::Relaxed); }
///
/// let executor = ThreadPoolExecutor::new(2);
/// for result in executor.map(send, [1, 2, 3]) {
///     result?; // a task's panic is its item's Err
/// }
/// assert_eq!(SENT.load(Ordering::Relaxed), 6);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[must_use = "map is lazy and runs no task until iterated, so `let _ =` would run nothing: \
              iterate it, e.g. `for result in executor.map(..) { result?; }`"]
pub struct Map<'e, I: Iterator, R> {
    input: Input<I>,
    submit: SubmitChunk<'e, I::Item, R>,
    /// The chunks submitted and not yet yielded, by number.
    in_flight: BTreeMap<usize, Pending<R>>,
    /// How many chunks have been submitted: the next one's number.
    submitted: usize,
    /// Whether to yield in input order; if not (`map_unordered`), every
    /// chunk reports to `completions`, and chunks are yielded as they finish.
    ordered: bool,
    completions: Completions,
    /// How many inputs `in_flight` holds.
    in_flight_items: usize,
    /// The rest of the chunk being yielded.
    ready: outcomes::IntoIter<R>,
    /// Inputs received and not yet submitted: whole batches, and at the end
    /// of the inputs, the last ones, which go out in shares.
    chunk: Vec<I::Item>,
    workers: usize,
    buffer_size: Option<usize>,
    chunking: Chunking,
    started: Instant,
    deadline: Option<Instant>,
    /// A bad setting, reported by the first `next`.
    invalid: Option<Error>,
    /// Set once the deadline has passed: nothing more is yielded.
    ended: bool,
}

impl<'e, I: Iterator, R> Map<'e, I, R> {
    /// A map over `inputs` for a pool of `workers`, submitting through
    /// `submit`, whose automatic chunks aim to run for `chunk_target` each.
    pub(crate) fn new(
        inputs: I,
        workers: usize,
        chunk_target: Duration,
        submit: SubmitChunk<'e, I::Item, R>,
    ) -> Self {
        Self {
            input: Input::Here(inputs),
            submit,
            in_flight: BTreeMap::new(),
            submitted: 0,
            ordered: true,
            completions: Completions::new(),
            in_flight_items: 0,
            ready: outcomes::IntoIter::default(),
            chunk: Vec::new(),
            workers,
            buffer_size: None,
            chunking: Chunking::Auto(Sizing::new(workers, chunk_target)),
            started: Instant::now(),
            deadline: None,
            invalid: None,
            ended: false,
        }
    }

    /// Yields results as their chunks finish instead of in input order.
    /// Called before the first `next`, so every chunk is watched.
    pub(crate) fn unordered(mut self) -> Self {
        self.ordered = false;
        self
    }

    /// Sets one deadline for the whole iteration, measured from the `map`
    /// call. When it passes the iterator yields [`Error::Timeout`] once,
    /// cancels what has not started, and ends. The deadline holds while the
    /// map waits for its tasks; while the caller's thread is inside the
    /// input's own `next` (the default way of pulling), it cannot: for an
    /// input that may stall, add [`pull_on_thread`](Map::pull_on_thread).
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use std::{sync::mpsc, time::Duration};
    ///
    /// let executor = ThreadPoolExecutor::new(1);
    /// let (_keep_open, gate) = mpsc::channel::<()>();
    /// let gate = std::sync::Mutex::new(gate);
    /// let blocked = move |_: u8| gate.lock().unwrap().recv_timeout(Duration::from_secs(5)).ok();
    /// let mut results = executor.map(blocked, [1, 2]).timeout(Duration::from_millis(20));
    /// assert_eq!(results.next(), Some(Err(Error::Timeout)));
    /// assert_eq!(results.next(), None);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.deadline = self.started.checked_add(timeout);
        self
    }

    /// Sets how many inputs may be in flight at once (Python's `buffersize`).
    ///
    /// Zero is an error, reported as the first item. The default is
    /// [`LOOK_AHEAD_PER_WORKER`] chunks per worker. Automatic chunks are
    /// never larger than this; a larger fixed [`chunksize`](Map::chunksize)
    /// raises it to one chunk.
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let mut bad = executor.map(|n: u8| n, [1]).buffer_size(0);
    /// assert!(matches!(bad.next(), Some(Err(Error::InvalidArgument(_)))));
    /// assert_eq!(bad.next(), None);
    /// ```
    pub fn buffer_size(mut self, inputs_in_flight: usize) -> Self {
        if inputs_in_flight == 0 {
            self.invalid = Some(Error::InvalidArgument(
                "map's buffer_size must be at least 1 input in flight".into(),
            ));
        }
        self.buffer_size = Some(inputs_in_flight);
        self
    }

    /// Sends inputs to workers in chunks of this many (Python's
    /// `chunksize`), instead of the automatic size.
    ///
    /// Each item still has its own result and its own error: a failure inside
    /// a chunk fails only that item. Chunks cut the per-task overhead of tiny
    /// tasks, above all on a process pool. Zero is an error, reported as the
    /// first item.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let total: u64 = executor.map(|n: u64| n, 0..1000).chunksize(100).map(Result::unwrap).sum();
    /// assert_eq!(total, 499_500);
    /// ```
    pub fn chunksize(mut self, items_per_chunk: usize) -> Self {
        if items_per_chunk == 0 {
            self.invalid = Some(Error::InvalidArgument(
                "map's chunksize must be at least 1 item per chunk".into(),
            ));
        }
        self.chunking = Chunking::Fixed(items_per_chunk.max(1));
        self
    }

    /// Takes the batches of inputs there now, asks for more within the
    /// look-ahead (first what the next chunk lacks, then whole chunks), and
    /// submits whole chunks, or at the end of the input what is left.
    fn refill(&mut self) {
        loop {
            let (size, look_ahead) = self.next_chunk();
            let held = self.in_flight_items + self.ready.len();
            if let Input::Feeding { feed, .. } = &mut self.input {
                let held = held + self.chunk.len();
                // In bulk, once half the look-ahead is free (the feeder wakes
                // once for all of it), or when the pool has nothing of this
                // map to run: first what the next chunk lacks, then whole
                // chunks.
                let room = look_ahead.saturating_sub(held + feed.granted());
                if room >= look_ahead.div_ceil(2) || self.in_flight.is_empty() {
                    let lacking = size - (self.chunk.len() + feed.granted()) % size;
                    if lacking <= room {
                        feed.grant(1, lacking);
                        feed.grant((room - lacking) / size, size);
                    }
                }
                // A batch at a time: one that makes a whole chunk is sent as
                // it is, with no copy.
                if self.chunk.len() < size
                    && let Some(batch) = feed.try_batch()
                {
                    self.receive(batch);
                    continue;
                }
            } else {
                // Pulled here, a chunk at a time, within the look-ahead.
                if held + size > look_ahead {
                    return;
                }
                if let Input::Here(inputs) = &mut self.input
                    && self.chunk.len() < size
                {
                    let wanted = size - self.chunk.len();
                    self.chunk.extend(inputs.by_ref().take(wanted));
                    if self.chunk.len() < size {
                        // These are the last inputs: size them as such.
                        self.input = Input::Ended(None);
                        continue;
                    }
                }
            }
            let ended = matches!(self.input, Input::Ended(_));
            if self.chunk.is_empty() || (self.chunk.len() < size && !ended) {
                return;
            }
            let mut chunk = match size < self.chunk.len() {
                true => self.chunk.drain(..size).collect(),
                false => std::mem::take(&mut self.chunk),
            };
            let meter = match &self.chunking {
                Chunking::Fixed(_) => None,
                Chunking::Auto(sizing) => Some(sizing.meter()),
            };
            let pending = (self.submit)(&mut chunk, meter);
            if !self.ordered {
                pending.watch(&self.completions, self.submitted);
            }
            self.in_flight_items += pending.len();
            self.in_flight.insert(self.submitted, pending);
            self.submitted += 1;
        }
    }

    /// Takes in a batch of inputs.
    fn receive(&mut self, batch: Batch<I::Item>) {
        if self.chunk.is_empty() {
            self.chunk = batch.items;
        } else {
            self.chunk.extend(batch.items);
        }
        match batch.after {
            After::More => {
                if let Input::Feeding { hint, .. } = &mut self.input {
                    *hint = batch.hint;
                }
            }
            After::Ended => self.input = Input::Ended(None),
            After::Failed(error) => self.input = Input::Ended(Some(error)),
        }
    }

    /// The size of the next chunk, and the look-ahead that it must fit in
    /// with the inputs in flight.
    fn next_chunk(&mut self) -> (usize, usize) {
        match &mut self.chunking {
            Chunking::Fixed(size) => {
                let per_chunk = LOOK_AHEAD_PER_WORKER * self.workers * *size;
                (*size, self.buffer_size.unwrap_or(per_chunk).max(*size))
            }
            Chunking::Auto(sizing) => {
                // Inputs left, if known exactly: the ones received, and the
                // rest by an exact size hint.
                let left = match self.input.hint() {
                    (lower, Some(upper)) if lower == upper => Some(lower + self.chunk.len()),
                    _ => None,
                };
                let size = sizing.next_size(left);
                let per_chunk = LOOK_AHEAD_PER_WORKER * self.workers * size;
                let look_ahead = self.buffer_size.unwrap_or(per_chunk);
                (size.min(look_ahead), look_ahead)
            }
        }
    }

    /// Waits for the next thing to do: a chunk to yield (the oldest, or for
    /// `map_unordered` the next to finish), or a batch of inputs to submit
    /// while no chunk is done, or the deadline.
    fn next_event(&mut self) -> Event<R> {
        loop {
            let feed = match &mut self.input {
                Input::Feeding { feed, .. } if feed.granted() > 0 => feed,
                // No input is coming: wait for the next chunk in full.
                _ => return self.next_pending().map_or(Event::End, Event::Chunk),
            };
            if self.in_flight.is_empty() {
                return match feed.wait_batch(self.deadline) {
                    Ok(batch) => {
                        self.receive(batch);
                        Event::Input
                    }
                    Err(_) => Event::Timeout,
                };
            }
            // In order, the oldest chunk reports here while the caller waits.
            let oldest = self.in_flight.first_key_value().filter(|_| self.ordered);
            if let Some((&number, oldest)) = oldest {
                // As a wait would: spin briefly first (a tiny chunk is done
                // by then, and nobody has to be woken), unless it runs long.
                let sleep = runs_long(&self.chunking, oldest);
                if let Some(taken) = oldest.take(Some(Instant::now()), sleep) {
                    if let Some((_, pending)) = self.in_flight.pop_first() {
                        self.in_flight_items -= pending.len();
                    }
                    return Event::Taken(taken);
                }
                oldest.watch(&self.completions, number);
            }
            let woke = {
                let mut select = Select::new();
                let input = select.recv(feed.batches());
                select.recv(&self.completions.finished);
                let selected = match self.deadline {
                    Some(deadline) => select.select_deadline(deadline).ok(),
                    None => Some(select.select()),
                };
                match selected {
                    None => Woke::Timeout,
                    Some(op) if op.index() == input => Woke::Input(op.recv(feed.batches()).ok()),
                    Some(op) => Woke::Finished(op.recv(&self.completions.finished).ok()),
                }
            };
            if let Some((_, oldest)) = oldest {
                oldest.unwatch(&self.completions);
            }
            match woke {
                Woke::Timeout => return Event::Timeout,
                Woke::Input(batch) => {
                    let batch = feed.received(batch);
                    self.receive(batch);
                    return Event::Input;
                }
                // In order, a number is only a wake-up: the loop looks again.
                Woke::Finished(Some(number)) if !self.ordered => {
                    if let Some(pending) = self.in_flight.remove(&number) {
                        return Event::Chunk(pending);
                    }
                }
                Woke::Finished(_) => {}
            }
        }
    }

    /// Takes the next chunk to yield: the oldest, or for `map_unordered` the
    /// next to finish. Once the deadline has passed, the oldest, whose wait
    /// then reports the timeout.
    fn next_pending(&mut self) -> Option<Pending<R>> {
        if !self.ordered {
            while !self.in_flight.is_empty() {
                let finished = match self.deadline {
                    None => self.completions.finished.recv().ok(),
                    Some(deadline) => self.completions.finished.recv_deadline(deadline).ok(),
                };
                let Some(number) = finished else { break };
                // A number not in flight was taken as the oldest after the
                // deadline, and finished just in time: skip it.
                if let Some(pending) = self.in_flight.remove(&number) {
                    return Some(pending);
                }
            }
        }
        self.in_flight.pop_first().map(|(_, pending)| pending)
    }

    /// Cancels every task that has not started, lets the input go (a feeder
    /// thread exits), and ends the iteration.
    fn stop(&mut self) {
        for pending in std::mem::take(&mut self.in_flight).into_values() {
            pending.cancel_pending();
        }
        self.in_flight_items = 0;
        self.ready = outcomes::IntoIter::default();
        self.input = Input::Ended(None);
        self.ended = true;
    }
}

impl<I, R> Map<'_, I, R>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
    /// Pulls the inputs on a thread of the map's own (Python's `Pool.imap`
    /// does so), for an input that may stall: a channel, a socket, a slow
    /// parser. Finished results then come out while the input is stalled,
    /// and the [`timeout`](Map::timeout) holds whatever the input does. A
    /// panic in the input iterator becomes the map's last item, its
    /// [`Error::Panicked`], after the results of the inputs pulled before
    /// it.
    ///
    /// The input must own its data (`Send + 'static`: `words`, or
    /// `words.clone()`, not `words.iter()`). What is pulled stays within the
    /// look-ahead, a chunk at a time. Without this, the caller's thread
    /// pulls each input inside `next`, which costs nothing extra and takes
    /// any iterator; with it, each chunk's inputs cross between two threads,
    /// which matters only for tiny tasks in small chunks. A map dropped
    /// while its input blocks lets the thread go; it exits once the input
    /// returns.
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use std::{sync::mpsc, time::Duration};
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let (send, lines) = mpsc::channel();
    /// send.send(3).unwrap();
    /// // `send` is still open: the input stalls after its first line.
    /// let mut lengths = executor
    ///     .map(|n: u32| n * 2, lines.into_iter())
    ///     .pull_on_thread()
    ///     .timeout(Duration::from_millis(200));
    /// assert_eq!(lengths.next(), Some(Ok(6)));              // out while the input stalls
    /// assert_eq!(lengths.next(), Some(Err(Error::Timeout))); // the deadline holds
    /// # drop(send);
    /// ```
    pub fn pull_on_thread(mut self) -> Self {
        self.input = match std::mem::replace(&mut self.input, Input::Ended(None)) {
            Input::Here(inputs) => {
                let hint = inputs.size_hint();
                match Feed::start(inputs) {
                    Ok(feed) => Input::Feeding { feed, hint },
                    Err(error) => Input::Ended(Some(error)),
                }
            }
            // Called twice, or after the input ended: nothing changes.
            input => input,
        };
        self
    }
}

impl<I: Iterator, R> Iterator for Map<'_, I, R> {
    type Item = Result<R, Error>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        // The rest of a chunk first: a chunk's worth of results frees a
        // chunk's worth of look-ahead, so the refill waits for that.
        match self.ready.next_value() {
            Some(value) => Some(Ok(value)),
            None => self.next_slow(),
        }
    }

    /// Every input yields one result, unless the deadline passes.
    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.ended {
            return (0, Some(0));
        }
        if self.invalid.is_some() {
            return (1, Some(1));
        }
        let pulled = self.ready.len() + self.in_flight_items + self.chunk.len();
        let (lower, upper) = match &self.input {
            // The input's error is one more item.
            Input::Ended(failure) => {
                let left = usize::from(failure.is_some());
                (left, Some(left))
            }
            input => input.hint(),
        };
        let upper = upper.and_then(|upper| upper.checked_add(pulled));
        match self.deadline {
            Some(_) => (0, upper),
            None => (lower.saturating_add(pulled), upper),
        }
    }
}

impl<I: Iterator, R> Map<'_, I, R> {
    /// [`next`](Iterator::next) past the current chunk's run of values: the
    /// rest of a chunk with errors, or else the first result of the next
    /// chunk to yield (or the bad setting, or the input's error, or the end).
    #[inline(never)]
    fn next_slow(&mut self) -> Option<Result<R, Error>> {
        if let Some(result) = self.ready.next() {
            return Some(result);
        }
        if let Some(error) = self.invalid.take() {
            self.ended = true;
            return Some(Err(error));
        }
        if self.ended {
            return None;
        }
        loop {
            self.refill();
            match self.next_event() {
                Event::Chunk(pending) => {
                    self.in_flight_items -= pending.len();
                    let sleep = runs_long(&self.chunking, &pending);
                    let Some(taken) = pending.take(self.deadline, sleep) else {
                        // A task's own `TaskTimedOut`, from a process
                        // pool's per-task limit, is just that item's error.
                        pending.cancel_pending();
                        self.stop();
                        return Some(Err(Error::Timeout));
                    };
                    return self.yield_taken(taken);
                }
                Event::Taken(taken) => return self.yield_taken(taken),
                Event::Input => {}
                Event::Timeout => {
                    self.stop();
                    return Some(Err(Error::Timeout));
                }
                Event::End => {
                    // Nothing in flight and no input awaited: the input has
                    // ended (one still feeding is always awaited then, and
                    // one pulled here has filled the look-ahead).
                    self.ended = true;
                    return match &mut self.input {
                        Input::Ended(failure) => failure.take().map(Err),
                        Input::Here(_) | Input::Feeding { .. } => None,
                    };
                }
            }
        }
    }
}

impl<I: Iterator, R> Map<'_, I, R> {
    /// The first result of a chunk's outcome; the rest goes to `ready`.
    fn yield_taken(&mut self, taken: Taken<R>) -> Option<Result<R, Error>> {
        match taken {
            Taken::One(result) => Some(result),
            Taken::Chunk(results, len) => {
                let outcomes = results.unwrap_or_else(|error| Outcomes::failed(&error, len));
                self.ready = outcomes.into_iter();
                self.ready.next()
            }
        }
    }
}

/// The results of a chunk of `len` items: its own, or, if the whole chunk
/// failed, that error for each item.
pub(crate) fn chunk_results<R>(
    results: Result<Vec<Result<R, Error>>, Error>,
    len: usize,
) -> Vec<Result<R, Error>> {
    results.unwrap_or_else(|error| (0..len).map(|_| Err(error.clone())).collect())
}

impl<I: Iterator, R> Drop for Map<'_, I, R> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<I: Iterator, R> fmt::Debug for Map<'_, I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("in_flight", &self.in_flight.len())
            .field("ordered", &self.ordered)
            .field("buffer_size", &self.buffer_size)
            .field("chunking", &self.chunking)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::future;
    use std::sync::Mutex;

    const TARGET: Duration = Duration::from_micros(100);

    /// A map over `inputs` on `workers` whose chunks finish as they are
    /// submitted, each input reported as taking `each`. `sizes` gets each
    /// chunk's size.
    fn instant_map<I: Iterator<Item = u32>>(
        inputs: I,
        workers: usize,
        each: Duration,
        sizes: &std::sync::Arc<Mutex<Vec<usize>>>,
    ) -> Map<'static, I, u32> {
        let sizes = std::sync::Arc::clone(sizes);
        let submit = move |chunk: &mut Vec<u32>, meter: Option<&std::sync::Arc<Meter>>| {
            let len = chunk.len();
            sizes.lock().unwrap().push(len);
            if let Some(meter) = meter {
                meter.record(len, each * u32::try_from(len).unwrap());
            }
            let (promise, future) = future::pair();
            promise.complete(Ok(chunk.drain(..).map(Ok).collect()));
            Pending::Chunk { future, len }
        };
        Map::new(inputs, workers, TARGET, Box::new(submit))
    }

    fn sizes() -> std::sync::Arc<Mutex<Vec<usize>>> {
        std::sync::Arc::default()
    }

    /// Runs `map` to the end: its results must be `expected` in order.
    fn drain(
        map: Map<'static, impl Iterator<Item = u32> + Send + 'static, u32>,
        expected: std::ops::Range<u32>,
    ) {
        let results: Vec<_> = map.collect();
        assert_eq!(results, expected.map(Ok).collect::<Vec<_>>());
    }

    #[test]
    // Safe arithmetic over 10k-100k inputs: minutes under miri, which has
    // no unsafe code to check here.
    #[cfg_attr(miri, ignore)]
    fn fast_tasks_grow_the_chunks_up_to_the_most_then_the_tail_splits() {
        let sizes = sizes();
        let each = Duration::from_nanos(10);
        drain(instant_map(0..100_000, 2, each, &sizes), 0..100_000);
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes[..4], [1, 16, 256, MAX_AUTO_CHUNKSIZE], "{sizes:?}");
        assert_eq!(sizes.iter().max(), Some(&MAX_AUTO_CHUNKSIZE));
        // The last inputs are cut in shares: the last 2 per worker alone.
        let tail = &sizes[sizes.len() - 4..];
        assert_eq!(tail, [1, 1, 1, 1], "{sizes:?}");
        assert!(
            sizes.iter().skip(4).is_sorted_by(|a, b| a >= b),
            "never growing again: {sizes:?}"
        );
    }

    #[test]
    // Safe arithmetic over 10k-100k inputs: minutes under miri, which has
    // no unsafe code to check here.
    #[cfg_attr(miri, ignore)]
    fn chunks_aim_at_the_target_duration() {
        let sizes = sizes();
        drain(
            instant_map(0..10_000, 2, Duration::from_micros(1), &sizes),
            0..10_000,
        );
        // 100 us of 1 us inputs.
        assert_eq!(sizes.lock().unwrap()[..4], [1, 16, 100, 100]);
    }

    #[test]
    fn slow_tasks_go_one_per_chunk() {
        let sizes = sizes();
        drain(
            instant_map(0..50, 2, Duration::from_millis(10), &sizes),
            0..50,
        );
        assert_eq!(*sizes.lock().unwrap(), [1; 50]);
    }

    #[test]
    fn an_explicit_chunksize_wins() {
        let sizes = sizes();
        let each = Duration::from_nanos(10);
        drain(instant_map(0..100, 2, each, &sizes).chunksize(7), 0..100);
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes[..14], [7; 14]);
        assert_eq!(sizes[14..], [2]);
    }

    #[test]
    // Safe arithmetic over 10k-100k inputs: minutes under miri, which has
    // no unsafe code to check here.
    #[cfg_attr(miri, ignore)]
    fn an_input_of_unknown_length_is_cut_into_shares_at_its_end() {
        let sizes = sizes();
        let each = Duration::from_nanos(10);
        // A filter's size hint is not exact: the end shows when it comes.
        let inputs = (0..100_000).filter(|_| true);
        drain(instant_map(inputs, 2, each, &sizes), 0..100_000);
        let sizes = sizes.lock().unwrap();
        let tail = &sizes[sizes.len() - 4..];
        assert_eq!(tail, [1, 1, 1, 1], "{sizes:?}");
    }

    #[test]
    fn the_size_hint_counts_one_result_per_input_unless_a_deadline_may_end_it() {
        let sizes = sizes();
        let each = Duration::from_nanos(10);
        let mut map = instant_map(0..10, 2, each, &sizes);
        assert_eq!(map.size_hint(), (10, Some(10)));
        map.next();
        assert_eq!(map.size_hint(), (9, Some(9)));
        let map = instant_map(0..10, 2, each, &sizes).timeout(Duration::from_secs(60));
        assert_eq!(map.size_hint(), (0, Some(10)));
        let endless = instant_map(0.., 2, each, &sizes);
        assert_eq!(endless.size_hint(), (usize::MAX, None));
    }

    #[test]
    // Safe arithmetic over 10k-100k inputs: minutes under miri, which has
    // no unsafe code to check here.
    #[cfg_attr(miri, ignore)]
    fn automatic_chunks_fit_in_the_buffer_size() {
        let sizes = sizes();
        let each = Duration::from_nanos(10);
        drain(
            instant_map(0..10_000, 2, each, &sizes).buffer_size(10),
            0..10_000,
        );
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().max(), Some(&10), "{sizes:?}");
    }
}
