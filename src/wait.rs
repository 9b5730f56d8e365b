//! Layer: core. May use `future`, `sync` and `Error`; no pool, no transport.
//! [`wait`] and [`as_completed`]: waiting on many futures at once.
//!
//! Both register a watcher on each future: a completing future sends its
//! index down one channel, and the caller blocks on that channel, so there
//! is no polling. [`AsCompletedStream`] reads the same channel without
//! blocking and leaves a waker, woken by the next completion. Watchers are
//! withdrawn before returning, so waiting again and again on a long-running
//! future does not pile them up.

use std::collections::HashSet;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use futures_core::Stream;

use crate::future::{Notify, watch_key};
use crate::sync::Arc;
use crate::{Error, Future};

/// When [`wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any future is done (or at once, if one already is).
    FirstCompleted,
    /// As soon as any future fails with an error. A cancelled future is not a
    /// failure. With no failure this waits like `AllCompleted`.
    FirstException,
    /// When every future is done.
    AllCompleted,
}

/// Waits on `futures` until `return_when` holds or `timeout` passes.
///
/// Returns `(done, not_done)`, each in input order; a future that appears
/// twice counts once. A timeout is not an error: the unfinished futures come
/// back in `not_done`, so none is lost.
///
/// ```
/// use concurrent_futures::{wait, ReturnWhen, ThreadPoolExecutor};
/// use std::{sync::mpsc, time::Duration};
///
/// let executor = ThreadPoolExecutor::new(2);
/// let (_hold, gate) = mpsc::channel::<()>();
/// let slow = executor.submit(move |()| gate.recv().is_ok(), ());
/// let fast = executor.submit(|()| true, ());
/// let (done, not_done) = wait([&slow, &fast], ReturnWhen::FirstCompleted, Some(Duration::from_secs(60)));
/// assert_eq!((done.len(), not_done.len()), (1, 1));
/// assert_eq!(done[0].result(), Ok(true));
/// # drop(_hold);
/// ```
pub fn wait<'a, R>(
    futures: impl IntoIterator<Item = &'a Future<R>>,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> (Vec<&'a Future<R>>, Vec<&'a Future<R>>)
where
    R: 'a,
{
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut watch = Watch::new(distinct(futures));
    while let Some(index) = watch.next_before(deadline) {
        let stop = match return_when {
            ReturnWhen::FirstCompleted => true,
            ReturnWhen::FirstException => watch.futures[index].failed_with_error(),
            ReturnWhen::AllCompleted => false,
        };
        if stop {
            break;
        }
    }
    watch.into_futures().into_iter().partition(|f| f.done())
}

/// Yields `futures` as they complete: those already done first, then the
/// rest in completion order. A future that appears twice is yielded once.
///
/// Use [`AsCompleted::timeout`] for one deadline over the whole iteration,
/// and [`AsCompleted::into_stream`] to `.await` the futures in async code.
///
/// ```
/// use concurrent_futures::{as_completed, ThreadPoolExecutor};
///
/// let executor = ThreadPoolExecutor::new(4);
/// let futures: Vec<_> = (1..=4).map(|n| executor.submit(|n: u32| n * 10, n)).collect();
/// let mut total = 0;
/// for future in as_completed(&futures) {
///     total += future.result().unwrap();
/// }
/// assert_eq!(total, 100);
/// ```
pub fn as_completed<'a, R: 'a>(
    futures: impl IntoIterator<Item = &'a Future<R>>,
) -> AsCompleted<'a, R> {
    AsCompleted {
        watch: Watch::new(distinct(futures)),
    }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<'a, R> {
    watch: Watch<'a, R>,
}

impl<'a, R> AsCompleted<'a, R> {
    /// Gives the iteration one deadline, `timeout` from now. Each item is then
    /// a `Result`: when the deadline passes the iterator yields
    /// [`Error::Timeout`] once and ends.
    ///
    /// ```
    /// use concurrent_futures::{as_completed, Error, ThreadPoolExecutor};
    /// use std::{sync::mpsc, time::Duration};
    ///
    /// let executor = ThreadPoolExecutor::new(1);
    /// let (_hold, gate) = mpsc::channel::<()>();
    /// let stuck = executor.submit(move |()| gate.recv().is_ok(), ());
    /// let mut iter = as_completed([&stuck]).timeout(Duration::from_millis(10));
    /// assert!(matches!(iter.next(), Some(Err(Error::Timeout))));
    /// assert!(iter.next().is_none());
    /// # drop(_hold);
    /// ```
    pub fn timeout(self, timeout: Duration) -> AsCompletedTimeout<'a, R> {
        AsCompletedTimeout {
            deadline: Instant::now().checked_add(timeout),
            inner: Some(self),
        }
    }

    /// The same futures as a [`Stream`], for async code: the stream yields
    /// what the iterator would, but where the iterator blocks, the stream
    /// returns `Pending` and is woken by the next completion. It never blocks
    /// the executor's thread and never polls in a loop; each completion
    /// costs one channel message and at most one wake-up, however many
    /// futures are watched. A yielded future is done, so its
    /// [`result`](Future::result) returns at once.
    ///
    /// For a deadline, wrap each `next()` in your runtime's timeout.
    ///
    /// ```
    /// use concurrent_futures::{as_completed, ThreadPoolExecutor};
    /// use futures_util::StreamExt;
    ///
    /// let executor = ThreadPoolExecutor::new(4);
    /// let futures: Vec<_> = (1..=4).map(|n| executor.submit(|n: u32| n * 10, n)).collect();
    /// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let total = runtime.block_on(async {
    ///     let mut completed = as_completed(&futures).into_stream();
    ///     let mut total = 0;
    ///     while let Some(future) = completed.next().await {
    ///         total += future.result().unwrap();
    ///     }
    ///     total
    /// });
    /// assert_eq!(total, 100);
    /// ```
    pub fn into_stream(self) -> AsCompletedStream<'a, R> {
        AsCompletedStream { watch: self.watch }
    }
}

impl<'a, R> Iterator for AsCompleted<'a, R> {
    type Item = &'a Future<R>;

    fn next(&mut self) -> Option<Self::Item> {
        self.watch.next_before(None).map(|i| self.watch.futures[i])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.watch.left))
    }
}

/// The iterator of [`AsCompleted::timeout`]: futures as they complete, until
/// the deadline.
pub struct AsCompletedTimeout<'a, R> {
    inner: Option<AsCompleted<'a, R>>,
    deadline: Option<Instant>,
}

impl<'a, R> Iterator for AsCompletedTimeout<'a, R> {
    type Item = Result<&'a Future<R>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let inner = self.inner.as_mut()?;
        if inner.watch.left == 0 {
            return None;
        }
        match inner.watch.next_before(self.deadline) {
            Some(i) => Some(Ok(inner.watch.futures[i])),
            None => {
                self.inner = None;
                Some(Err(Error::Timeout))
            }
        }
    }
}

/// The stream of [`AsCompleted::into_stream`]: futures as they complete.
pub struct AsCompletedStream<'a, R> {
    watch: Watch<'a, R>,
}

impl<'a, R> Stream for AsCompletedStream<'a, R> {
    type Item = &'a Future<R>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let watch = &mut self.get_mut().watch;
        watch.poll_next(cx).map(|i| i.map(|i| watch.futures[i]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.watch.left))
    }
}

/// The futures in input order, each once.
fn distinct<'a, R>(futures: impl IntoIterator<Item = &'a Future<R>>) -> Vec<&'a Future<R>> {
    let mut seen = HashSet::new();
    futures
        .into_iter()
        .filter(|f| seen.insert(f.identity()))
        .collect()
}

/// Watchers on a list of futures, all reporting to one channel.
struct Watch<'a, R> {
    futures: Vec<&'a Future<R>>,
    key: u64,
    notify: Arc<Notify>,
    completions: Receiver<usize>,
    /// How many completions have not been received yet.
    left: usize,
}

impl<'a, R> Watch<'a, R> {
    fn new(futures: Vec<&'a Future<R>>) -> Self {
        let key = watch_key();
        let (notify, completions) = Notify::channel();
        for (index, future) in futures.iter().enumerate() {
            future.watch(key, index, &notify);
        }
        Self {
            left: futures.len(),
            futures,
            key,
            notify,
            completions,
        }
    }

    /// Withdraws the watchers and hands the futures back.
    fn into_futures(mut self) -> Vec<&'a Future<R>> {
        self.unwatch();
        std::mem::take(&mut self.futures)
    }

    fn unwatch(&mut self) {
        if self.left > 0 {
            for future in &self.futures {
                future.unwatch(self.key);
            }
            self.left = 0;
        }
    }

    /// The index of the next future to complete, or `None` if the deadline
    /// passed first or none is left.
    fn next_before(&mut self, deadline: Option<Instant>) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        let index = match deadline {
            None => self.completions.recv().ok(),
            Some(deadline) => self.completions.recv_deadline(deadline).ok(),
        }?;
        self.left -= 1;
        Some(index)
    }

    /// The index of the next future to complete, `Ready(None)` if none is
    /// left, or `Pending` with the waker left to be woken by the next one.
    fn poll_next(&mut self, cx: &Context<'_>) -> Poll<Option<usize>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        // Leave the waker only when the channel is empty, then look again: a
        // completion sent in between would not have woken it.
        let index = self.completions.try_recv().or_else(|_| {
            self.notify.set_waker(cx.waker());
            self.completions.try_recv()
        });
        match index {
            Ok(index) => {
                self.left -= 1;
                Poll::Ready(Some(index))
            }
            Err(_) => Poll::Pending,
        }
    }
}

impl<R> Drop for Watch<'_, R> {
    fn drop(&mut self) {
        self.unwatch();
    }
}

impl<R> fmt::Debug for AsCompleted<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("left", &self.watch.left)
            .finish_non_exhaustive()
    }
}

impl<R> fmt::Debug for AsCompletedStream<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompletedStream")
            .field("left", &self.watch.left)
            .finish_non_exhaustive()
    }
}

impl<R> fmt::Debug for AsCompletedTimeout<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompletedTimeout")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}
