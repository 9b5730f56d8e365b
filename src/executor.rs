//! Layer: core. May use: `future` and `map` (the types in its signatures).
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
///
/// Your own types qualify once they derive serde's two traits:
///
/// ```
/// use concurrent_futures::{Executor, ThreadPoolExecutor};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Point { x: i32, y: i32 }
///
/// fn norm1(p: Point) -> i32 { p.x.abs() + p.y.abs() }
/// let executor = ThreadPoolExecutor::new(1);
/// assert_eq!(Executor::submit(&executor, norm1, Point { x: 3, y: -4 }).result(), Ok(7));
/// ```
///
/// Without them, the compiler says what to do: "`Point` is not a
/// `Payload`", with a note to derive `Serialize` and `Deserialize`, and one
/// that a reference is not a payload.
///
/// ```compile_fail,E0277
/// use concurrent_futures::{Executor, ThreadPoolExecutor};
///
/// struct Point { x: i32, y: i32 }
///
/// fn norm1(p: Point) -> i32 { p.x.abs() + p.y.abs() }
/// let executor = ThreadPoolExecutor::new(1);
/// let future = Executor::submit(&executor, norm1, Point { x: 3, y: -4 });
/// ```
///
/// A borrowed argument cannot cross to another process either; pass an owned
/// value (`String` for `&str`, `Vec<T>` for `&[T]`):
///
/// ```compile_fail,E0277
/// use concurrent_futures::{Executor, ThreadPoolExecutor};
///
/// fn total(xs: &'static Vec<u32>) -> u32 { xs.iter().sum() }
/// static XS: Vec<u32> = Vec::new();
/// let executor = ThreadPoolExecutor::new(1);
/// let future = Executor::submit(&executor, total, &XS);
/// ```
///
/// # A borrowed input: what rustc says
///
/// A `&String` from `words.iter()` gets the note above, that a reference is
/// not a payload:
///
/// ```compile_fail,E0277
/// use concurrent_futures::ProcessPoolExecutor;
///
/// fn len(word: &String) -> usize { word.len() }
/// let words = vec![String::from("one"), String::from("three")];
/// let executor = ProcessPoolExecutor::new(2);
/// let lengths: Vec<_> = executor.map(len, words.iter()).collect();
/// ```
///
/// A `&str` (or a `&[u8]`) cannot get it: serde can deserialize those by
/// borrowing from the bytes, so rustc finds the traits implemented and fails
/// later, on the lifetimes, where a crate's note cannot be attached. rustc
/// then says "implementation of `Deserialize` is not general enough: `&str`
/// must implement `Deserialize<'0>`, for any lifetime `'0`", and, for a
/// borrow of a local, "`words` does not live long enough ... borrowed for
/// `'static`". Both mean the same: pass owned values, `String` for `&str`
/// (`words.iter().cloned()`, or `words` itself), `Vec<u8>` for `&[u8]`.
///
/// ```compile_fail,E0597
/// use concurrent_futures::ProcessPoolExecutor;
///
/// fn len(word: &str) -> usize { word.len() }
/// let words = vec![String::from("one"), String::from("three")];
/// let executor = ProcessPoolExecutor::new(2);
/// let lengths: Vec<_> = executor.map(len, words.iter().map(|s| s.as_str())).collect();
/// ```
///
/// ```
/// use concurrent_futures::ProcessPoolExecutor;
///
/// fn len(word: String) -> usize { word.len() }
/// let words = vec![String::from("one"), String::from("three")];
/// let executor = ProcessPoolExecutor::new(2);
/// let lengths: Vec<_> = executor.map(len, words.clone()).collect();
/// assert_eq!(lengths, [Ok(3), Ok(5)]);
/// ```
///
/// # What postcard cannot carry
///
/// The process pool and the MPI executor send payloads with
/// [postcard](https://docs.rs/postcard), a compact format that is not
/// self-describing: the receiver must know each value's shape from its type.
/// Serde features that decide the shape from the data itself do not work
/// there, though they do on the thread pool, which moves values without
/// serializing them:
///
/// - `#[serde(untagged)]` enums, internally tagged enums
///   (`#[serde(tag = "...")]`), `serde_json::Value` and other types that
///   deserialize "any" value;
/// - `#[serde(flatten)]` fields, which serialize a map of unknown length.
///
/// Such a task fails with [`Error::Serialization`](crate::Error::Serialization)
/// on its own future (a flattened argument at `submit`, the others when the
/// worker or the pool decodes them), and the message names the serde
/// feature and the fix: an externally tagged enum (serde's default), the
/// fields written out instead of flattened, or JSON sent as a `String`.
///
/// One serde attribute fails silently instead, so avoid it on payloads:
/// `#[serde(skip_serializing_if = "...")]` leaves out a field that the
/// receiver still reads, so the value arrives wrong or does not decode.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `Payload`: a task's argument and result must be `Serialize + DeserializeOwned + Send + 'static`",
    label = "not a `Payload`",
    note = "derive both traits on your type: `#[derive(serde::Serialize, serde::Deserialize)]`",
    note = "a reference such as `&T` or `&str` is not a payload: pass an owned `T` or `String`, since a process pool copies it to another process",
    note = "to pass several arguments, pass one tuple: `submit(task, (a, b))` with `fn task((a, b): (A, B))`"
)]
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
/// process pool; switching is one identifier, as in Python, where
/// `ThreadPoolExecutor` becomes `ProcessPoolExecutor`. Tasks are plain
/// functions `fn(A) -> R` (a closure that captures nothing coerces to one),
/// and arguments and results are [`Payload`]s, because a process pool has to
/// name the function and ship the data to another process.
///
/// ```
/// use concurrent_futures::{Executor, ThreadPoolExecutor};
///
/// fn task(n: u32) -> String {
///     format!("Task {n} done")
/// }
///
/// fn run_all(executor: &impl Executor) -> Vec<String> {
///     executor.map(task, [1, 2, 3]).map(Result::unwrap).collect()
/// }
///
/// let lines = run_all(&ThreadPoolExecutor::new(3));
/// assert_eq!(lines, ["Task 1 done", "Task 2 done", "Task 3 done"]);
/// ```
///
/// The methods are generic over the task's types, so the trait cannot be a
/// trait object (`Box<dyn Executor>` is error E0038). To choose the pool at
/// run time, hold an [`AnyExecutor`](crate::AnyExecutor), which implements
/// this trait for whichever pool it holds.
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
    ///
    /// # Several arguments: one tuple
    ///
    /// Python's `submit(fn, a, b)` is `submit(task, (a, b))` here, with a
    /// task that takes one tuple and destructures it (or see
    /// [`starmap`](Executor::starmap) for a function of two arguments):
    ///
    /// ```
    /// use concurrent_futures::{Executor, ThreadPoolExecutor};
    ///
    /// fn power((base, exponent): (u64, u32)) -> u64 { base.pow(exponent) }
    /// let executor = ThreadPoolExecutor::new(1);
    /// assert_eq!(Executor::submit(&executor, power, (2, 10)).result(), Ok(1024));
    /// ```
    ///
    /// Passing the arguments one by one does not compile, and rustc suggests
    /// the tuple: "wrap these arguments in parentheses to construct a tuple".
    ///
    /// ```compile_fail,E0061
    /// # use concurrent_futures::{Executor, ThreadPoolExecutor};
    /// fn power((base, exponent): (u64, u32)) -> u64 { base.pow(exponent) }
    /// let executor = ThreadPoolExecutor::new(1);
    /// let future = Executor::submit(&executor, power, 2, 10); // submit(pow, 2, 10)
    /// ```
    ///
    /// A task written as in Python, with two parameters, cannot get that
    /// suggestion, nor a note of this crate: rustc checks the number of
    /// arguments before any trait, and says "this method takes 2 arguments
    /// but 3 arguments were supplied", "expected fn pointer
    /// `fn(String) -> _`, found fn item `fn(String, u64) -> usize`" and
    /// "remove the extra argument". The fix is the one above: one tuple,
    /// `fn load_url((url, timeout): (String, u64))` and
    /// `submit(load_url, (url, 60))`.
    ///
    /// ```compile_fail,E0061
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// fn load_url(url: String, timeout: u64) -> usize { url.len() + timeout as usize }
    /// let executor = ProcessPoolExecutor::new(1);
    /// let url = String::from("https://www.python.org/");
    /// let future = executor.submit(load_url, url, 60); // submit(load_url, url, 60)
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
    /// fn power(base: u64, exponent: u32) -> u64 {
    ///     base.pow(exponent)
    /// }
    ///
    /// fn volume((length, width, height): (u32, u32, u32)) -> u32 {
    ///     length * width * height
    /// }
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let powers: Vec<_> = Executor::starmap(&executor, power, [(2, 3), (3, 2)]).collect();
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
    /// fn char_count(word: String) -> (String, usize) {
    ///     let n = word.chars().count();
    ///     (word, n)
    /// }
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let words = ["one", "two", "three"].map(String::from);
    /// let mut lengths: Vec<_> = Executor::map_unordered(&executor, char_count, words)
    ///     .collect::<Result<_, _>>()?;
    /// lengths.sort(); // in whatever order they finished
    /// assert_eq!(lengths, [("one".into(), 3), ("three".into(), 5), ("two".into(), 3)]);
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

/// Implements [`Executor`] for a pool by its inherent methods of the same
/// names, which every pool has so that its users need not import the
/// trait: `forward_executor!([generics] Pool)`.
macro_rules! forward_executor {
    ([$($generics:tt)*] $pool:ty) => {
        impl<$($generics)*> $crate::Executor for $pool {
            fn submit<A: $crate::Payload, R: $crate::Payload>(
                &self,
                task: fn(A) -> R,
                arg: A,
            ) -> $crate::Future<R> {
                <$pool>::submit(self, task, arg)
            }

            fn map<'e, A, R, I>(
                &'e self,
                task: fn(A) -> R,
                inputs: I,
            ) -> $crate::Map<'e, I::IntoIter, R>
            where
                A: $crate::Payload,
                R: $crate::Payload,
                I: IntoIterator<Item = A>,
            {
                <$pool>::map(self, task, inputs)
            }

            fn starmap<'e, A, B, R, I>(
                &'e self,
                task: fn(A, B) -> R,
                inputs: I,
            ) -> $crate::Map<'e, I::IntoIter, R>
            where
                A: $crate::Payload,
                B: $crate::Payload,
                R: $crate::Payload,
                I: IntoIterator<Item = (A, B)>,
            {
                <$pool>::starmap(self, task, inputs)
            }

            fn shutdown_with(&self, how: $crate::Shutdown) {
                <$pool>::shutdown_with(self, how);
            }
        }
    };
}
pub(crate) use forward_executor;
