//! [`Map`]: the lazy, bounded iterator behind every executor's `map`,
//! `map_unordered` and `starmap`.
//!
//! In input order, the next chunk to yield is the oldest one submitted.
//! Unordered, each submitted chunk's future has a watcher (the mechanism of
//! [`wait`](crate::wait)) that sends the chunk's number down one channel as
//! it finishes, and the next chunk to yield is the next number received.

use std::collections::BTreeMap;
use std::fmt;
use std::iter::Fuse;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::future::{Notify, watch_key};
use crate::sync::Arc;
use crate::{Error, Future};

/// The default look-ahead of `map`, in chunks per worker. Enough that
/// workers never wait for the caller to hand out the next input, even when
/// the caller shares a core with them; small enough to be a few KiB.
pub const LOOK_AHEAD_PER_WORKER: usize = 16;

/// How an executor submits one chunk of inputs: it drains `chunk` (one or
/// more inputs) and returns its future.
pub(crate) type SubmitChunk<'e, A, R> = Box<dyn FnMut(&mut Vec<A>) -> Pending<R> + Send + 'e>;

/// The future of one submitted chunk.
#[derive(Debug)]
pub(crate) enum Pending<R> {
    /// A lone input's future.
    One(Future<R>),
    /// A chunk's future: one result per input, in order. If the whole chunk
    /// fails (say its worker process died), each of its `len` items gets
    /// that error.
    Chunk {
        future: Future<Vec<Result<R, Error>>>,
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

    /// Has `number` sent to `completions` once this chunk is done.
    fn watch(&self, completions: &Completions, number: usize) {
        let Completions { key, notify, .. } = completions;
        match self {
            Pending::One(future) => future.watch(*key, number, notify),
            Pending::Chunk { future, .. } => future.watch(*key, number, notify),
        };
    }
}

/// Where the chunks of a `map_unordered` report, by number, that they are done.
struct Completions {
    key: u64,
    notify: Arc<Notify>,
    finished: Receiver<usize>,
}

/// The iterator returned by `map`, `map_unordered` and `starmap`: each
/// task's result, in input order or as the tasks finish.
///
/// - **Lazy and bounded.** Nothing is submitted until the first
///   [`next`](Iterator::next). After that at most
///   [`buffer_size`](Map::buffer_size) inputs are in flight (Python's
///   `buffersize`): a million-item or endless input never sits in memory.
///   The default is [`LOOK_AHEAD_PER_WORKER`] times the pool's workers
///   times the chunk size.
/// - **Ordered, or as they finish.** `map` and `starmap` yield in input
///   order even when later tasks finish first. `map_unordered` yields each
///   result as soon as its task finishes (with chunks, each chunk's results
///   together, as soon as the chunk finishes).
/// - **Per-item errors.** A failing task is that item's `Err`; iteration goes
///   on to the next item.
/// - **One deadline.** With [`timeout`](Map::timeout), the whole iteration
///   must finish within that time from the `map` call. When it passes, the
///   iterator yields [`Error::Timeout`] once and ends.
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
    inputs: Fuse<I>,
    submit: SubmitChunk<'e, I::Item, R>,
    /// The chunks submitted and not yet yielded, by number.
    in_flight: BTreeMap<usize, Pending<R>>,
    /// How many chunks have been submitted: the next one's number.
    submitted: usize,
    /// `Some` for `map_unordered`: yield chunks as they finish.
    completions: Option<Completions>,
    /// How many inputs `in_flight` holds.
    in_flight_items: usize,
    /// The rest of the chunk being yielded.
    ready: std::vec::IntoIter<Result<R, Error>>,
    chunk: Vec<I::Item>,
    workers: usize,
    buffer_size: Option<usize>,
    chunksize: usize,
    started: Instant,
    deadline: Option<Instant>,
    /// A bad setting, reported by the first `next`.
    invalid: Option<Error>,
    /// Set once the deadline has passed: nothing more is yielded.
    ended: bool,
}

impl<'e, I: Iterator, R> Map<'e, I, R> {
    /// A map over `inputs` for a pool of `workers`, submitting through `submit`.
    pub(crate) fn new(inputs: I, workers: usize, submit: SubmitChunk<'e, I::Item, R>) -> Self {
        Self {
            inputs: inputs.fuse(),
            submit,
            in_flight: BTreeMap::new(),
            submitted: 0,
            completions: None,
            in_flight_items: 0,
            ready: Vec::new().into_iter(),
            chunk: Vec::new(),
            workers,
            buffer_size: None,
            chunksize: 1,
            started: Instant::now(),
            deadline: None,
            invalid: None,
            ended: false,
        }
    }

    /// Yields results as their chunks finish instead of in input order.
    /// Called before the first `next`, so every chunk is watched.
    pub(crate) fn unordered(mut self) -> Self {
        let (notify, finished) = Notify::channel();
        self.completions = Some(Completions {
            key: watch_key(),
            notify,
            finished,
        });
        self
    }

    /// Sets one deadline for the whole iteration, measured from the `map`
    /// call. When it passes the iterator yields [`Error::Timeout`] once,
    /// cancels what has not started, and ends.
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
    /// [`LOOK_AHEAD_PER_WORKER`] times the pool's workers times the chunk size.
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

    /// Sends inputs to workers in chunks of this many (Python's `chunksize`).
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
        self.chunksize = items_per_chunk.max(1);
        self
    }

    /// Tops the in-flight queue up with whole chunks, within the look-ahead.
    fn refill(&mut self) {
        let look_ahead = self
            .buffer_size
            .unwrap_or(LOOK_AHEAD_PER_WORKER * self.workers * self.chunksize)
            .max(self.chunksize);
        while self.in_flight_items + self.ready.len() + self.chunksize <= look_ahead {
            self.chunk.extend(self.inputs.by_ref().take(self.chunksize));
            if self.chunk.is_empty() {
                return;
            }
            let pending = (self.submit)(&mut self.chunk);
            if let Some(completions) = &self.completions {
                pending.watch(completions, self.submitted);
            }
            self.in_flight_items += pending.len();
            self.in_flight.insert(self.submitted, pending);
            self.submitted += 1;
        }
    }

    /// Takes the next chunk to yield: the oldest, or for `map_unordered` the
    /// next to finish. Once the deadline has passed, the oldest, whose wait
    /// then reports the timeout.
    fn next_pending(&mut self) -> Option<Pending<R>> {
        if let Some(completions) = &self.completions {
            while !self.in_flight.is_empty() {
                let finished = match self.deadline {
                    None => completions.finished.recv().ok(),
                    Some(deadline) => completions.finished.recv_deadline(deadline).ok(),
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

    /// Cancels every task that has not started and ends the iteration.
    fn stop(&mut self) {
        for pending in std::mem::take(&mut self.in_flight).into_values() {
            pending.cancel_pending();
        }
        self.in_flight_items = 0;
        self.ready = Vec::new().into_iter();
        self.ended = true;
    }

    /// Ends the iteration if `result` is a timeout and the map's deadline
    /// has passed. (A task's own `TaskTimedOut`, from a process pool's
    /// per-task limit, is just that item's error.)
    fn timed_out<T>(&mut self, result: &Result<T, Error>, future: &Future<T>) -> bool {
        let timed_out = matches!(result, Err(Error::Timeout))
            && self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline);
        if timed_out {
            future.cancel_pending();
            self.stop();
        }
        timed_out
    }
}

impl<I: Iterator, R> Iterator for Map<'_, I, R> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.invalid.take() {
            self.ended = true;
            return Some(Err(error));
        }
        if self.ended {
            return None;
        }
        self.refill();
        if let Some(result) = self.ready.next() {
            return Some(result);
        }
        let pending = self.next_pending()?;
        self.in_flight_items -= pending.len();
        match pending {
            Pending::One(future) => {
                let result = future.wait_and_take(self.deadline);
                self.timed_out(&result, &future);
                Some(result)
            }
            Pending::Chunk { future, len } => {
                let results = future.wait_and_take(self.deadline);
                if self.timed_out(&results, &future) {
                    return Some(Err(Error::Timeout));
                }
                self.ready = chunk_results(results, len).into_iter();
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
            .field("ordered", &self.completions.is_none())
            .field("buffer_size", &self.buffer_size)
            .field("chunksize", &self.chunksize)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}
