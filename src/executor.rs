//! Layer: core. May use `future` and `map` (the types in its signatures);
//! no pool, no transport.
//! The [`Executor`] trait: the contract every pool keeps.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Future, Map};

/// What a task's argument and result must be to run on any executor.
///
/// Process pools send both over a pipe, so they must serialize; every
/// `serde` type that is `Send + 'static` qualifies automatically. The
/// [`ThreadPoolExecutor`](crate::ThreadPoolExecutor)'s own methods need only
/// `Send`.
///
/// ```
/// fn runs_anywhere<T: concurrent_futures::Payload>() {}
/// runs_anywhere::<(u32, String, Vec<f64>)>();
/// ```
pub trait Payload: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Payload for T {}

/// How [`Executor::shutdown_with`] stops a pool.
///
/// The default matches Python's `shutdown()`: wait for every submitted task,
/// cancel nothing.
///
/// ```
/// use concurrent_futures::{Executor, Shutdown, ThreadPoolExecutor};
///
/// let executor = ThreadPoolExecutor::new(2);
/// executor.shutdown_with(Shutdown { cancel_futures: true, ..Shutdown::default() });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// Block until every task that will run has run, and the workers are gone.
    pub wait: bool,
    /// Cancel the tasks still queued; running tasks finish.
    pub cancel_futures: bool,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            wait: true,
            cancel_futures: false,
        }
    }
}

/// A pool that runs tasks and hands back [`Future`]s: the portable contract.
///
/// Code written against this trait runs unchanged on a thread pool or a
/// process pool; switching is one identifier, as in Python ("Ganti
/// `ThreadPoolExecutor` dengan `ProcessPoolExecutor`"). Tasks are plain
/// functions `fn(A) -> R` (a closure that captures nothing coerces to one),
/// and arguments and results are [`Payload`]s, because a process pool has to
/// name the function and ship the data to another process.
///
/// ```
/// use concurrent_futures::{Executor, ThreadPoolExecutor};
///
/// fn tugas(n: u32) -> String {
///     format!("Tugas {n} selesai")
/// }
///
/// fn run_all(executor: &impl Executor) -> Vec<String> {
///     executor.map(tugas, [1, 2, 3]).map(Result::unwrap).collect()
/// }
///
/// let lines = run_all(&ThreadPoolExecutor::new(3));
/// assert_eq!(lines, ["Tugas 1 selesai", "Tugas 2 selesai", "Tugas 3 selesai"]);
/// ```
pub trait Executor {
    /// Schedules `task(arg)` and returns a future for its result.
    ///
    /// Never blocks and never panics: if the executor cannot take the task
    /// (it was shut down, or is broken), the future holds that error.
    ///
    /// ```
    /// use concurrent_futures::{Executor, ThreadPoolExecutor};
    ///
    /// fn square(n: u64) -> u64 { n * n }
    /// let executor = ThreadPoolExecutor::new(1);
    /// assert_eq!(Executor::submit(&executor, square, 9).result(), Ok(81));
    /// ```
    fn submit<A: Payload, R: Payload>(&self, task: fn(A) -> R, arg: A) -> Future<R>;

    /// Runs `task` over `inputs`, yielding each result in input order.
    ///
    /// The iterator is lazy and keeps a bounded number of tasks in flight, so
    /// endless inputs are fine. Each item is a `Result`: a failing task is
    /// that item's `Err`, and iteration goes on. See [`Map`] for the look-ahead,
    /// the timeout and chunking.
    ///
    /// ```
    /// use concurrent_futures::{Executor, ThreadPoolExecutor};
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let doubled: Vec<_> = Executor::map(&executor, |n: i32| n * 2, 1..=4).collect();
    /// assert_eq!(doubled, [Ok(2), Ok(4), Ok(6), Ok(8)]);
    /// ```
    fn map<'e, A, R, I>(&'e self, task: fn(A) -> R, inputs: I) -> Map<'e, I::IntoIter, R>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>;

    /// Runs a function of two arguments over pairs of them, yielding the
    /// results in input order: Python's `Pool.starmap` and
    /// `itertools.starmap`, which call `task(*args)`. The iterator is a
    /// [`Map`], with its settings.
    ///
    /// Pass the function itself; a closure that captures nothing coerces too.
    /// For three or more arguments, give [`map`](Executor::map) a function
    /// that takes one tuple and destructures it, as the second half of the
    /// example does. [`ThreadPoolExecutor::starmap`](crate::ThreadPoolExecutor::starmap)
    /// takes any closure of one to six arguments.
    ///
    /// ```
    /// use concurrent_futures::{Executor, ThreadPoolExecutor};
    ///
    /// fn pangkat(basis: u64, eksponen: u32) -> u64 {
    ///     basis.pow(eksponen)
    /// }
    ///
    /// fn volume((panjang, lebar, tinggi): (u32, u32, u32)) -> u32 {
    ///     panjang * lebar * tinggi
    /// }
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let powers: Vec<_> = Executor::starmap(&executor, pangkat, [(2, 3), (3, 2)]).collect();
    /// assert_eq!(powers, [Ok(8), Ok(9)]);
    /// let volumes: Vec<_> = Executor::map(&executor, volume, [(1, 2, 3), (2, 2, 2)]).collect();
    /// assert_eq!(volumes, [Ok(6), Ok(8)]);
    /// ```
    fn starmap<'e, A, B, R, I>(&'e self, task: fn(A, B) -> R, inputs: I) -> Map<'e, I::IntoIter, R>
    where
        A: Payload,
        B: Payload,
        R: Payload,
        I: IntoIterator<Item = (A, B)>;

    /// Like [`map`](Executor::map), but yields each result as soon as its
    /// task finishes (Python's `Pool.imap_unordered`, mpi4py's
    /// `map(..., unordered=True)`): for throughput, when order does not
    /// matter. The look-ahead refills as results are taken, so one slow task
    /// never holds back the others.
    ///
    /// To know which input a result belongs to, have the task return it.
    ///
    /// ```
    /// use concurrent_futures::{Executor, ThreadPoolExecutor};
    ///
    /// fn panjang(kata: String) -> (String, usize) {
    ///     let n = kata.chars().count();
    ///     (kata, n)
    /// }
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let words = ["satu", "dua", "tiga"].map(String::from);
    /// let mut lengths: Vec<_> = Executor::map_unordered(&executor, panjang, words)
    ///     .collect::<Result<_, _>>()?;
    /// lengths.sort(); // in whatever order they finished
    /// assert_eq!(lengths, [("dua".into(), 3), ("satu".into(), 4), ("tiga".into(), 4)]);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    fn map_unordered<'e, A, R, I>(&'e self, task: fn(A) -> R, inputs: I) -> Map<'e, I::IntoIter, R>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        self.map(task, inputs).unordered()
    }

    /// Stops taking tasks and waits for every submitted task to finish, like
    /// leaving Python's `with` block. Later submissions fail with
    /// [`Error::Shutdown`](crate::Error::Shutdown). Calling it again is harmless.
    ///
    /// ```
    /// use concurrent_futures::{Error, Executor, ThreadPoolExecutor};
    ///
    /// fn one(_: ()) -> u8 { 1 }
    /// let executor = ThreadPoolExecutor::new(1);
    /// let before = Executor::submit(&executor, one, ());
    /// Executor::shutdown(&executor);
    /// assert!(before.done());
    /// assert_eq!(Executor::submit(&executor, one, ()).result(), Err(Error::Shutdown));
    /// ```
    fn shutdown(&self) {
        self.shutdown_with(Shutdown::default());
    }

    /// Shuts down as `how` says: with or without waiting, with or without
    /// cancelling the queued tasks.
    ///
    /// ```
    /// use concurrent_futures::{Executor, Shutdown, ThreadPoolExecutor};
    ///
    /// let executor = ThreadPoolExecutor::new(1);
    /// Executor::shutdown_with(&executor, Shutdown { wait: false, cancel_futures: true });
    /// ```
    fn shutdown_with(&self, how: Shutdown);
}
