//! Layer: core. May use: `error`, `future`, `future::watch` and `sync`.
//! [`wait`] and [`as_completed`]: waiting on many futures at once.
//!
//! Both register a watcher on each future: a completing future sends its
//! index down one channel, and the caller blocks on that channel, so there
//! is no polling. [`AsCompletedStream`] reads the same channel without
//! blocking and leaves a waker, woken by the next completion. Watchers are
//! withdrawn before returning, so waiting again and again on a long-running
//! future does not pile them up.
//!
//! Both take futures or `(key, future)` pairs ([`AsFuture`]) and hand back
//! what they were given, so a completed future comes with its key.

use std::collections::HashSet;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use futures_core::Stream;

use crate::future::watch::{Notify, watch_key};
use crate::sync::Arc;
use crate::{Error, Future};

/// What [`wait`] and [`as_completed`] watch: a [`Future`], or a pair of a
/// key and a future, which they hand back whole, so that each completed
/// future comes with the key it was submitted under.
///
/// That is the Rust form of Python's `future_to_url` idiom, whose dict maps
/// each future to its URL:
///
/// ```
/// use concurrent_futures::{as_completed, ThreadPoolExecutor};
///
/// fn load_url(url: &str) -> Result<usize, String> {
///     // A real program would fetch the page; its length stands for it here.
///     url.strip_prefix("https://").map(str::len).ok_or(format!("not https: {url}"))
/// }
///
/// let urls = ["https://www.python.org/", "https://docs.rs/", "ftp://example.com/"];
/// let executor = ThreadPoolExecutor::new(5);
/// // future_to_url = {executor.submit(load_url, url): url for url in URLS}
/// let future_to_url: Vec<_> = urls.iter().map(|&url| (url, executor.submit(load_url, url))).collect();
/// let mut report = Vec::new();
/// // for future in concurrent.futures.as_completed(future_to_url):
/// //     url = future_to_url[future]
/// for (url, future) in as_completed(&future_to_url) {
///     match future.result() {
///         Ok(Ok(bytes)) => report.push(format!("{url} page is {bytes} bytes")),
///         Ok(Err(exc)) => report.push(format!("{url} generated an exception: {exc}")),
///         Err(error) => report.push(format!("{url} failed: {error}")), // a panic, a cancel
///     }
/// }
/// report.sort(); // they complete in any order
/// assert_eq!(report, [
///     "ftp://example.com/ generated an exception: not https: ftp://example.com/",
///     "https://docs.rs/ page is 8 bytes",
///     "https://www.python.org/ page is 15 bytes",
/// ]);
/// ```
pub trait AsFuture {
    /// The result type of the future.
    type Output;

    /// The future to watch.
    fn as_future(&self) -> &Future<Self::Output>;
}

impl<R> AsFuture for Future<R> {
    type Output = R;

    fn as_future(&self) -> &Future<R> {
        self
    }
}

/// A key and its future, as in `(url, executor.submit(load_url, url))`.
impl<K, R> AsFuture for (K, Future<R>) {
    type Output = R;

    fn as_future(&self) -> &Future<R> {
        &self.1
    }
}

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
/// twice counts once. Give it futures or `(key, future)` pairs
/// ([`AsFuture`]): it returns what it was given. A timeout is not an error: the unfinished futures come
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
pub fn wait<'a, T>(
    futures: impl IntoIterator<Item = &'a T>,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> (Vec<&'a T>, Vec<&'a T>)
where
    T: AsFuture + 'a,
{
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut watch = Watch::new(distinct(futures));
    while let Some(index) = watch.next_before(deadline) {
        let stop = match return_when {
            ReturnWhen::FirstCompleted => true,
            ReturnWhen::FirstException => watch.futures[index].as_future().failed_with_error(),
            ReturnWhen::AllCompleted => false,
        };
        if stop {
            break;
        }
    }
    (watch.into_futures().into_iter()).partition(|f| f.as_future().done())
}

/// Yields `futures` as they complete: those already done first, then the
/// rest in completion order. A future that appears twice is yielded once.
/// Give it futures or `(key, future)` pairs ([`AsFuture`], which shows
/// Python's `future_to_url`): it yields what it was given.
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
pub fn as_completed<'a, T: AsFuture + 'a>(
    futures: impl IntoIterator<Item = &'a T>,
) -> AsCompleted<'a, T> {
    AsCompleted {
        watch: Watch::new(distinct(futures)),
    }
}

/// The iterator of [`as_completed`]: yields the futures (or pairs) it was
/// given, as they complete.
pub struct AsCompleted<'a, T: AsFuture> {
    watch: Watch<'a, T>,
}

impl<'a, T: AsFuture> AsCompleted<'a, T> {
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
    pub fn timeout(self, timeout: Duration) -> AsCompletedTimeout<'a, T> {
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
    pub fn into_stream(self) -> AsCompletedStream<'a, T> {
        AsCompletedStream { watch: self.watch }
    }
}

impl<'a, T: AsFuture> Iterator for AsCompleted<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<Self::Item> {
        self.watch.next_before(None).map(|i| self.watch.futures[i])
    }

    /// Exact: with no deadline, every future not yet yielded will be.
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.watch.left, Some(self.watch.left))
    }
}

/// Its length is the number of futures not yet yielded: with no deadline,
/// each of them will be, once it completes. So `len()` works, and so do
/// adapters that need it, such as indicatif's `.progress()`:
///
/// ```
/// use concurrent_futures::{as_completed, ThreadPoolExecutor};
/// use indicatif::ProgressIterator;
///
/// let executor = ThreadPoolExecutor::new(4);
/// let futures: Vec<_> = (1..=4).map(|n| executor.submit(|n: u32| n * 10, n)).collect();
/// let completed = as_completed(&futures);
/// assert_eq!(completed.len(), 4);
/// // for future in tqdm(as_completed(futures), total=len(futures)):
/// let mut total = 0;
/// for future in completed.progress() {
///     total += future.result()?;
/// }
/// assert_eq!(total, 100);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
///
/// [`AsCompleted::timeout`] has no such length: the deadline may end it
/// early.
impl<T: AsFuture> ExactSizeIterator for AsCompleted<'_, T> {}

/// The iterator of [`AsCompleted::timeout`]: futures as they complete, until
/// the deadline.
pub struct AsCompletedTimeout<'a, T: AsFuture> {
    inner: Option<AsCompleted<'a, T>>,
    deadline: Option<Instant>,
}

impl<'a, T: AsFuture> Iterator for AsCompletedTimeout<'a, T> {
    type Item = Result<&'a T, Error>;

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
pub struct AsCompletedStream<'a, T: AsFuture> {
    watch: Watch<'a, T>,
}

impl<'a, T: AsFuture> Stream for AsCompletedStream<'a, T> {
    type Item = &'a T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let watch = &mut self.get_mut().watch;
        watch.poll_next(cx).map(|i| i.map(|i| watch.futures[i]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.watch.left))
    }
}

/// The futures in input order, each once.
fn distinct<'a, T: AsFuture>(futures: impl IntoIterator<Item = &'a T>) -> Vec<&'a T> {
    let mut seen = HashSet::new();
    futures
        .into_iter()
        .filter(|f| seen.insert(f.as_future().identity()))
        .collect()
}

/// Watchers on a list of futures, all reporting to one channel.
struct Watch<'a, T: AsFuture> {
    futures: Vec<&'a T>,
    key: u64,
    notify: Arc<Notify>,
    completions: Receiver<usize>,
    /// How many completions have not been received yet.
    left: usize,
}

impl<'a, T: AsFuture> Watch<'a, T> {
    fn new(futures: Vec<&'a T>) -> Self {
        let key = watch_key();
        let (notify, completions) = Notify::channel();
        for (index, future) in futures.iter().enumerate() {
            future.as_future().watch(key, index, &notify);
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
    fn into_futures(mut self) -> Vec<&'a T> {
        self.unwatch();
        std::mem::take(&mut self.futures)
    }

    fn unwatch(&mut self) {
        if self.left > 0 {
            for future in &self.futures {
                future.as_future().unwatch(self.key);
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

impl<T: AsFuture> Drop for Watch<'_, T> {
    fn drop(&mut self) {
        self.unwatch();
    }
}

impl<T: AsFuture> fmt::Debug for AsCompleted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("left", &self.watch.left)
            .finish_non_exhaustive()
    }
}

impl<T: AsFuture> fmt::Debug for AsCompletedStream<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompletedStream")
            .field("left", &self.watch.left)
            .finish_non_exhaustive()
    }
}

impl<T: AsFuture> fmt::Debug for AsCompletedTimeout<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompletedTimeout")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}
