// Layer: docs. No code. (A plain comment: the `//!` lines below are this
// public module's docs.)
//! Coming from Python: every part of `concurrent.futures`, and its Rust form.
//!
//! This page walks through Python's `concurrent.futures` module (as of
//! Python 3.14) in the order of its documentation: the executors and their
//! parameters, the `Future` methods, the module functions and constants, and
//! the exceptions. Each row names the Rust form; each section ends with a
//! runnable example. Then come where the behaviour differs and why, and
//! mpi4py's `MPIPoolExecutor`, on one machine or a cluster.
//!
//! The one-line summary: the names are the same, a task's failure is a value
//! (`Result<R, Error>`) instead of an exception, and a pool is closed by
//! dropping it instead of by leaving a `with` block.
//!
//! # Executors
//!
//! | Python | Rust |
//! |---|---|
//! | `ThreadPoolExecutor()` | [`ThreadPoolExecutor::default()`](crate::ThreadPoolExecutor), with Python's `min(32, cpus + 4)` threads |
//! | `ThreadPoolExecutor(max_workers=3)` | [`ThreadPoolExecutor::new(3)`](crate::ThreadPoolExecutor::new); 0 panics with a clear message, [`builder().max_workers(0).build()`](crate::ThreadPoolBuilder::build) returns [`Error::InvalidArgument`](crate::Error::InvalidArgument) |
//! | `thread_name_prefix="download"` | [`.thread_name_prefix("download")`](crate::ThreadPoolBuilder::thread_name_prefix): threads `download_0`, `download_1`, ... |
//! | `initializer=f, initargs=(a, b)` | [`.initializer(move \|\| f(a, b))`](crate::ThreadPoolBuilder::initializer): a closure carries its arguments |
//! | (none) | [`.stack_size(bytes)`](crate::ThreadPoolBuilder::stack_size) |
//! | `ProcessPoolExecutor()` | [`ProcessPoolExecutor::default()`](crate::ProcessPoolExecutor), one worker per CPU, with no set-up in `main` (see "No `__main__` guard" below); [`builder().build()?`](crate::ProcessPoolBuilder) returns an error instead of panicking |
//! | `ProcessPoolExecutor(max_workers=2)` | [`ProcessPoolExecutor::new(2)`](crate::ProcessPoolExecutor::new) |
//! | `mp_context=` | no counterpart: a worker is always a fresh run of the same executable (Python's `"spawn"`), never a `fork()` of a threaded parent |
//! | `initializer=f` | [`.initializer(f)`](crate::ProcessPoolBuilder::initializer) with `f: fn()` |
//! | `initializer=f, initargs=(a,)` | [`.initializer_with(f, a)`](crate::ProcessPoolBuilder::initializer_with) with `f: fn(A)`: `a` is serialized once, at the call, and each worker (a replacement too) runs `f(a)` before its first task; `initargs=(a, b)` is `.initializer_with(f, (a, b))` with `fn f((a, b): (A, B))`. See [sharing data with workers](#sharing-data-with-workers) |
//! | `max_tasks_per_child=n` | [`.max_tasks_per_child(n)`](crate::ProcessPoolBuilder::max_tasks_per_child) |
//! | (none) | [`.timeout(t)`](crate::ProcessPoolBuilder::timeout): a task running longer has its worker killed and fails with [`Error::TaskTimedOut`](crate::Error::TaskTimedOut) |
//! | (none) | [`.chunksize(c)`](crate::ProcessPoolBuilder::chunksize): a fixed size for every `map`, instead of the automatic one |
//! | `InterpreterPoolExecutor` (3.14) | no counterpart needed: Rust has no GIL, so [`ThreadPoolExecutor`](crate::ThreadPoolExecutor)'s threads already run Rust code on every core |
//! | `if __name__ == "__main__":` | nothing: a worker serves before `main`, so no part of `main` runs twice. [`concurrent_futures::init();`](crate::init) is the explicit, optional form (the MPI executor needs it) |
//! | `with ThreadPoolExecutor() as executor:` | a block or `let`: dropping the executor is `shutdown(wait=True)` |
//! | subclassing `Executor` | the [`Executor`](crate::Executor) trait, written against by generic code that runs on either pool |
//! | `pool = ProcessPoolExecutor if args.processes else ThreadPoolExecutor` | [`AnyExecutor`](crate::AnyExecutor): `let executor: AnyExecutor = if processes { ProcessPoolExecutor::new(4).into() } else { ThreadPoolExecutor::new(4).into() };` (`Box<dyn Executor>` does not compile: the trait's methods are generic) |
//!
//! ```
//! use concurrent_futures::{Error, ProcessPoolExecutor, ThreadPoolExecutor};
//!
//! fn main() -> Result<(), Error> {
//!     // ThreadPoolExecutor(max_workers=3, thread_name_prefix="download",
//!     //                    initializer=print, initargs=("ready",))
//!     let greeting = String::from("ready");
//!     let threads = ThreadPoolExecutor::builder()
//!         .max_workers(3)
//!         .thread_name_prefix("download")
//!         .initializer(move || println!("{greeting}"))
//!         .build()?;
//!     let name = threads.submit(|()| std::thread::current().name().map(String::from), ());
//!     assert_eq!(name.result()?.as_deref(), Some("download_0"));
//!
//!     // ProcessPoolExecutor(max_workers=2, max_tasks_per_child=100)
//!     let processes = ProcessPoolExecutor::builder()
//!         .max_workers(2)
//!         .max_tasks_per_child(100)
//!         .build()?;
//!     assert_eq!(processes.max_workers(), 2);
//!     Ok(()) // leaving the `with` block: both pools are dropped, which waits
//! }
//! ```
//!
//! ## Threads or processes from a flag
//!
//! Python programs often pick the pool class from the command line:
//!
//! ```python
//! pool = ProcessPoolExecutor if "--processes" in sys.argv else ThreadPoolExecutor
//! with pool(max_workers=4) as executor:
//!     for n, prime in zip(NUMBERS, executor.map(is_prime, NUMBERS)):
//!         print(f"{n} is prime: {prime}")
//! ```
//!
//! In Rust the two pools are two types, so the choice is a value of one
//! enum, [`AnyExecutor`](crate::AnyExecutor), which implements
//! [`Executor`](crate::Executor) by handing each call to the pool it holds:
//!
//! ```
//! use concurrent_futures::{AnyExecutor, Error, Executor, ProcessPoolExecutor, ThreadPoolExecutor};
//!
//! fn is_prime(n: u64) -> bool {
//!     n > 1 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
//! }
//!
//! /// pool = ProcessPoolExecutor if "--processes" in sys.argv else ThreadPoolExecutor
//! fn pool_from(args: impl IntoIterator<Item = String>) -> AnyExecutor {
//!     if args.into_iter().any(|arg| arg == "--processes") {
//!         ProcessPoolExecutor::new(4).into()
//!     } else {
//!         ThreadPoolExecutor::new(4).into()
//!     }
//! }
//!
//! fn main() -> Result<(), Error> {
//!     // A program passes `std::env::args()`; this page tries both flags.
//!     for args in [vec![], vec![String::from("--processes")]] {
//!         let executor = pool_from(args);
//!         let numbers = [2, 15, 97, 1_000_003];
//!         let mut primes = Vec::new();
//!         for (n, prime) in numbers.iter().zip(executor.map(is_prime, numbers)) {
//!             let prime = prime?; // a task's panic would be this Err
//!             println!("{n} is prime: {prime}");
//!             primes.push(prime);
//!         }
//!         assert_eq!(primes, [true, false, true, true]);
//!     } // each pool is dropped here: leaving the `with` block
//!     Ok(())
//! }
//! ```
//!
//! `examples/concurrent_futures.rs` does the same with `-- process` on its
//! command line.
//!
//! # Executor methods
//!
//! | Python | Rust |
//! |---|---|
//! | `submit(fn, arg)` | `submit(fn, arg)`, returning a [`Future<R>`](crate::Future) |
//! | `submit(fn, a, b)` (several arguments) | one tuple: `submit(f, (a, b))`, with `fn f((a, b): (u32, u32))`; rustc's "takes 2 arguments but 3 arguments were supplied" means this ([`submit`](crate::Executor::submit)) |
//! | `map(len, words)` with `words` a list of `str` | on a process pool, owned values: `map(len, words.iter().cloned())` with `fn len(word: String)`; a `&str` input makes rustc say "`Deserialize` is not general enough" ([`Payload`](crate::Payload) explains) |
//! | `submit(fn, x, key=v)` (keyword arguments) | a struct with named fields as the argument |
//! | `map(fn, xs)` | [`map(fn, xs)`](crate::Executor::map): a lazy iterator of `Result<R, Error>`, in input order |
//! | `map(fn, xs, ys)` (several iterables) | `map(f, xs.into_iter().zip(ys))` with a tuple argument |
//! | `map(..., timeout=t)` | [`.timeout(t)`](crate::Map::timeout): one deadline from the call, as in Python |
//! | `map(..., chunksize=c)` | [`.chunksize(c)`](crate::Map::chunksize), on both pools; without it, chunks are sized from measured task durations (joblib's `batch_size='auto'`), not one input each |
//! | `map(..., buffersize=b)` (3.14) | [`.buffer_size(b)`](crate::Map::buffer_size); bounded by default, see below |
//! | `shutdown()` | [`shutdown()`](crate::Executor::shutdown), or drop the executor |
//! | `shutdown(wait=False, cancel_futures=True)` | [`shutdown_with(Shutdown { wait: false, cancel_futures: true })`](crate::Executor::shutdown_with) |
//! | `terminate_workers()`, `kill_workers()` (3.14) | [`terminate_workers()`](crate::ProcessPoolExecutor::terminate_workers), [`kill_workers()`](crate::ProcessPoolExecutor::kill_workers): every open future gets an error |
//!
//! On the [`Executor`](crate::Executor) trait, a task is a plain
//! `fn(A) -> R` with serde arguments and results, so that the same code runs
//! on a process pool. [`ThreadPoolExecutor`](crate::ThreadPoolExecutor)'s own
//! `submit` and `map` take any closure and any `Send` data, as Python's do.
//!
//! ```
//! use concurrent_futures::{Executor, Shutdown, ThreadPoolExecutor};
//! use std::time::Duration;
//!
//! fn power((base, exponent): (u64, u32)) -> u64 {
//!     base.pow(exponent)
//! }
//!
//! let executor = ThreadPoolExecutor::new(2);
//!
//! // executor.submit(pow, 2, 10)
//! assert_eq!(executor.submit(power, (2, 10)).result(), Ok(1024));
//!
//! // executor.map(pow, [2, 3], [5, 2], timeout=60, chunksize=2)
//! let powers: Vec<_> = executor
//!     .map(power, [2, 3].into_iter().zip([5, 2]))
//!     .timeout(Duration::from_secs(60))
//!     .chunksize(2)
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(powers, [32, 9]);
//!
//! // executor.shutdown(wait=True, cancel_futures=True)
//! executor.shutdown_with(Shutdown { wait: true, cancel_futures: true });
//! # Ok::<(), concurrent_futures::Error>(())
//! ```
//!
//! # `Future` methods
//!
//! | Python | Rust |
//! |---|---|
//! | `cancel()` | [`cancel()`](crate::Future::cancel); on a process pool it also stops a *running* task |
//! | `cancelled()`, `running()`, `done()` | [`cancelled()`](crate::Future::cancelled), [`running()`](crate::Future::running), [`done()`](crate::Future::done) |
//! | `result()` | [`result()`](crate::Future::result): blocks, then `Ok(value)` or `Err(error)` |
//! | `result(timeout=t)` | [`result_timeout(t)`](crate::Future::result_timeout): `Err(Error::Timeout)` leaves the future usable |
//! | `exception()`, `exception(timeout=t)` | the `Err` of `result()` or `result_timeout(t)` |
//! | `try: data = future.result()` / `except Exception as exc:`, for a task that returns `Result<T, E>` | [`match future.flat_result() { Ok(data) => .., Err(exc) => .. }`](crate::Future::flat_result): the task's error and the pool's in one `Err` (`E: From<Error>`, as `String` is) |
//! | `add_done_callback(fn)` | [`add_done_callback(fn)`](crate::Future::add_done_callback): the callback gets `&Future<R>`; one added to a done future runs at once |
//! | `asyncio.wrap_future(f)`, `await` | `f.await`: [`Future`](crate::Future) implements [`std::future::Future`] |
//! | `set_running_or_notify_cancel()`, `set_result()`, `set_exception()` | not public: only executors make and complete futures |
//!
//! ```
//! use concurrent_futures::{Error, ThreadPoolExecutor};
//! use std::sync::mpsc;
//! use std::time::Duration;
//!
//! let executor = ThreadPoolExecutor::new(1);
//! let (open, gate) = mpsc::channel::<()>();
//! let running = executor.submit(move |()| gate.recv().is_ok(), ()); // held until `open`
//! let queued = executor.submit(|()| "never runs", ());              // queued behind it
//!
//! assert_eq!(queued.result_timeout(Duration::ZERO), Err(Error::Timeout)); // result(timeout=0)
//! assert!(queued.cancel());                                   // pending: cancelled
//! assert!(queued.cancelled() && queued.done());
//! assert_eq!(queued.result(), Err(Error::Cancelled));        // CancelledError
//!
//! let (notify, notes) = mpsc::channel();
//! running.add_done_callback(move |f| notify.send(f.done()).unwrap());
//! open.send(()).unwrap();
//! assert_eq!(running.result(), Ok(true));
//! assert_eq!(notes.recv(), Ok(true)); // the callback saw a done future
//! ```
//!
//! # Module functions and constants
//!
//! | Python | Rust |
//! |---|---|
//! | `wait(fs)` | [`wait(&fs, ReturnWhen::AllCompleted, None)`](crate::wait), returning `(done, not_done)` |
//! | `wait(fs, timeout=t, return_when=FIRST_COMPLETED)` | `wait(&fs, ReturnWhen::FirstCompleted, Some(t))` |
//! | `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED` | [`ReturnWhen::FirstCompleted`](crate::ReturnWhen), `FirstException`, `AllCompleted` |
//! | `as_completed(fs)` | [`as_completed(&fs)`](crate::as_completed): an iterator of `&Future<R>` |
//! | `as_completed(fs, timeout=t)` | [`as_completed(&fs).timeout(t)`](crate::AsCompleted::timeout): items are `Result`s, and the deadline yields `Err(Error::Timeout)` once instead of raising |
//! | `future_to_url = {executor.submit(load_url, url): url for url in urls}`, then `for future in as_completed(future_to_url)` and `future_to_url[future]` | `(url, future)` pairs: `as_completed(&future_to_url)` hands each pair back ([`AsFuture`](crate::AsFuture)), so `for (url, future) in as_completed(&future_to_url)`; a future is also `Eq` and `Hash` by identity, for a `HashMap` |
//!
//! ```
//! use concurrent_futures::{as_completed, wait, ReturnWhen, ThreadPoolExecutor};
//! use std::time::Duration;
//!
//! let executor = ThreadPoolExecutor::new(3);
//! let futures: Vec<_> = (1..=3).map(|n| executor.submit(|n: u32| n * n, n)).collect();
//!
//! let (done, not_done) = wait(&futures, ReturnWhen::AllCompleted, Some(Duration::from_secs(60)));
//! assert_eq!((done.len(), not_done.len()), (3, 0));
//!
//! let mut total = 0;
//! for future in as_completed(&futures).timeout(Duration::from_secs(60)) {
//!     total += future?.result()?;
//! }
//! assert_eq!(total, 1 + 4 + 9);
//! # Ok::<(), concurrent_futures::Error>(())
//! ```
//!
//! Python's most copied example keys a dict by futures, to know which input
//! each completed future was for. Here the futures travel with their keys:
//! `as_completed` and `wait` take `(key, future)` pairs and hand them back.
//! With a timeout, `?` on each item is Python's `TimeoutError` leaving the
//! loop; a task that returns a `Result` is read with
//! [`flat_result`](crate::Future::flat_result), so that its own error and
//! the pool's (a panic, a dead worker) take one `match`, as one `except`
//! takes both in Python:
//!
//! ```python
//! with ThreadPoolExecutor(max_workers=5) as executor:
//!     future_to_url = {executor.submit(load_url, url, 60): url for url in URLS}
//!     for future in as_completed(future_to_url, timeout=60):
//!         url = future_to_url[future]
//!         try:
//!             data = future.result()
//!         except Exception as exc:
//!             print('%r generated an exception: %s' % (url, exc))
//!         else:
//!             print('%r page is %d bytes' % (url, len(data)))
//! ```
//!
//! ```
//! use concurrent_futures::{as_completed, Error, ThreadPoolExecutor};
//! use std::time::Duration;
//!
//! /// Fetches a page (here its length stands for it); `timeout` as in Python.
//! fn load_url((url, timeout): (&str, u64)) -> Result<usize, String> {
//!     assert!(timeout > 0);
//!     url.strip_prefix("https://").map(str::len).ok_or(format!("cannot fetch {url}"))
//! }
//!
//! fn main() -> Result<(), Error> {
//!     let urls = ["https://a.example/", "https://bb.example/", "gopher://c.example/"];
//!     let executor = ThreadPoolExecutor::new(5);
//!     // future_to_url = {executor.submit(load_url, url, 60): url for url in URLS}
//!     let future_to_url: Vec<_> = urls
//!         .into_iter()
//!         .map(|url| (url, executor.submit(load_url, (url, 60))))
//!         .collect();
//!     // for future in as_completed(future_to_url, timeout=60): url = future_to_url[future]
//!     for done in as_completed(&future_to_url).timeout(Duration::from_secs(60)) {
//!         let (url, future) = done?; // TimeoutError
//!         match future.flat_result() {
//!             Ok(bytes) => println!("{url} page is {bytes} bytes"),
//!             Err(exc) => println!("{url} generated an exception: {exc}"),
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Exceptions
//!
//! Every failure is a variant of one [`Error`](crate::Error), returned where Python raises.
//!
//! | Python | Rust |
//! |---|---|
//! | an exception raised by the task | [`Error::Panicked { message, location, backtrace }`](crate::Error::Panicked): the panic is caught, and the worker carries on, printing nothing: the message, the location and, under `RUST_BACKTRACE`, the backtrace travel in the error |
//! | `CancelledError` | [`Error::Cancelled`](crate::Error::Cancelled); for a process pool's task cancelled while it ran, [`Error::CancelledWhileRunning`](crate::Error::CancelledWhileRunning) |
//! | `TimeoutError` | [`Error::Timeout`](crate::Error::Timeout) |
//! | `BrokenExecutor`, `BrokenThreadPool` (an initializer failed) | [`Error::BrokenExecutor { reason }`](crate::Error::BrokenExecutor), naming the cause |
//! | `BrokenProcessPool` (a worker died) | [`Error::WorkerDied { exit_code, signal }`](crate::Error::WorkerDied) on the one task that worker ran; the pool replaces the worker and goes on |
//! | `BrokenProcessPool` (a worker could not start) | [`Error::SpawnFailed { reason }`](crate::Error::SpawnFailed) on that task |
//! | `RuntimeError: cannot schedule new futures after shutdown` | [`Error::Shutdown`](crate::Error::Shutdown) on the future |
//! | `PicklingError` | [`Error::Serialization`](crate::Error::Serialization), on the one future whose argument or result would not serialize |
//! | `InvalidStateError` | no counterpart: futures cannot be completed from outside |
//! | (none) | [`Error::ResultTaken`](crate::Error::ResultTaken): `result()` hands the value over once |
//! | (none) | [`Error::Protocol`](crate::Error::Protocol): a worker's channel carried garbage; that worker was replaced |
//! | `RuntimeError` from a missing `__main__` guard | no counterpart for a process pool, which needs no guard; [`Error::InitMissing`](crate::Error::InitMissing) for the MPI executor without [`init()`](crate::init), naming the fix |
//! | `ValueError` (`max_workers <= 0`, `chunksize < 1`) | [`Error::InvalidArgument`](crate::Error::InvalidArgument) |
//!
//! ```
//! use concurrent_futures::{Error, ThreadPoolExecutor};
//!
//! let executor = ThreadPoolExecutor::new(1);
//! let failing = executor.submit(|n: u32| if n > 2 { panic!("too big: {n}") } else { n }, 3);
//! match failing.result() {
//!     Err(Error::Panicked { message, .. }) => assert_eq!(message, "too big: 3"),
//!     other => panic!("expected a panic, got {other:?}"),
//! }
//! assert_eq!(executor.submit(|n: u32| n, 2).result(), Ok(2)); // the pool goes on
//! ```
//!
//! # Beyond `concurrent.futures`
//!
//! A few calls Python users reach for in neighbouring modules have a form
//! here too.
//!
//! | Python | Rust |
//! |---|---|
//! | `multiprocessing.Pool.imap_unordered(f, xs)`, mpi4py's `map(f, xs, unordered=True)` | [`executor.map_unordered(f, xs)`](crate::Executor::map_unordered): results as they finish, with `map`'s settings |
//! | `multiprocessing.Pool.imap(f, xs)` over an input that may stall (Python pulls `xs` on a thread of its own) | [`executor.map(f, xs).pull_on_thread()`](crate::Map::pull_on_thread): results and the timeout go on while `xs` waits |
//! | `multiprocessing.Pool.starmap(f, pairs)`, `itertools.starmap` | [`executor.starmap(f, pairs)`](crate::Executor::starmap); the thread pool's takes one to six arguments |
//! | `loop.run_in_executor(executor, f, x)`, `asyncio.wrap_future(f)` | `executor.submit(f, x).await` |
//! | `asyncio.as_completed(fs)` | [`as_completed(&fs).into_stream()`](crate::AsCompleted::into_stream), a `futures_core::Stream` |
//! | a task that reads the caller's local data (threads share it freely) | [`executor.scope(..)`](crate::ThreadPoolExecutor::scope) and [`executor.map_scoped(f, &slice)`](crate::ThreadPoolExecutor::map_scoped): borrows, no `Arc`, no `'static` |
//!
//! ```
//! use concurrent_futures::ThreadPoolExecutor;
//!
//! fn power(base: u64, exponent: u32) -> u64 {
//!     base.pow(exponent)
//! }
//!
//! let executor = ThreadPoolExecutor::new(2);
//!
//! // Pool.starmap(pow, [(2, 5), (3, 2)])
//! let powers: Vec<u64> = executor.starmap(power, [(2, 5), (3, 2)]).collect::<Result<_, _>>()?;
//! assert_eq!(powers, [32, 9]);
//!
//! // Pool.imap_unordered(len, words): in whatever order they finish
//! let mut lengths: Vec<usize> = executor
//!     .map_unordered(|word: &str| word.len(), ["one", "two", "three"])
//!     .collect::<Result<_, _>>()?;
//! lengths.sort_unstable();
//! assert_eq!(lengths, [3, 3, 5]);
//!
//! // Borrowed data, no Arc: the caller's slice and prefix stay on its stack.
//! let pages = vec![String::from("web1"), String::from("web2")];
//! let prefix = String::from("https://");
//! let urls = executor.map_scoped(|page| format!("{prefix}{page}"), &pages);
//! assert_eq!(urls, [Ok("https://web1".to_owned()), Ok("https://web2".to_owned())]);
//! # Ok::<(), concurrent_futures::Error>(())
//! ```
//!
//! # Sharing data with workers
//!
//! Most CPU-bound tasks read some context: a lookup table, a model, a
//! config. A thread pool's task simply captures it (an `Arc`, or a borrow
//! in a [scope](crate::ThreadPoolExecutor::scope)). A process pool's task
//! is a plain `fn` that cannot capture (rustc says "closures can only be
//! coerced to `fn` types if they do not capture any variables"; see
//! [`submit`](crate::ProcessPoolExecutor::submit)), and the context must
//! cross to the worker processes. Python has the same three ways, and they
//! port line for line:
//!
//! | Python | Rust (process pool, MPI executor) | Each worker gets the context |
//! |---|---|---|
//! | `ProcessPoolExecutor(initializer=init, initargs=(table,))`, `init` setting a global that tasks read | [`.initializer_with(init, table)`](crate::ProcessPoolBuilder::initializer_with), `init` setting a `static` (a `OnceLock`) that tasks read | once, when it starts |
//! | `executor.map(functools.partial(lookup, table), xs)` | `executor.starmap(lookup, xs.map(\|x\| (table.clone(), x)))` with `fn lookup(table: Table, x: X)` | with every task |
//! | `executor.submit(lookup, table, x)` | `executor.submit(lookup, (table.clone(), x))` with `fn lookup((table, x): (Table, X))` | with every task |
//! | a closure over the data (threads share memory) | [`ThreadPoolExecutor`](crate::ThreadPoolExecutor)'s `submit`/`map` with a closure that captures an `Arc` | never copied |
//! | Ray's `ref = ray.put(table)`, Dask's `client.scatter(table)`, then the reference in every task | `let table = Shared::new(table)` ([`Shared`](crate::Shared); `Shared::from_vec` for plain numbers), then `table.clone()` in every task's argument | at most once, before its first task that uses it; plain numbers are mapped, not copied |
//!
//! Which to use:
//!
//! - **Small context** (a few numbers, a short config): pass it with each
//!   task, as an argument. It is the simplest, it may differ from task to
//!   task, and a few hundred bytes cost nothing beside a round trip. This
//!   is `functools.partial`'s job: a two-argument `fn` and
//!   [`starmap`](crate::Executor::starmap) over `(context, input)` pairs,
//!   or a tuple with [`map`](crate::Executor::map). (Python pickles a
//!   `partial` once per chunk; here the context is encoded once per input,
//!   so keep it small.)
//! - **Big context, fixed for the pool's life** (a table, a model):
//!   `initializer_with`, Python's best practice. It crosses once per
//!   worker, however many tasks read it, and a worker that replaces one
//!   that died gets it again. A 32 MiB table read by 200 tasks on 2
//!   workers took 0.18 s this way, the pool's start included, and 9.7 s
//!   sent with every task (`benches/context.rs`, on 2 busy cores).
//! - **Big context made after the pool, or several, or one that changes**:
//!   the put-once handle, [`Shared`](crate::Shared). It crosses to each
//!   worker at most once however many tasks carry it (a replaced worker
//!   gets it again), the workers drop it when your last handle is gone,
//!   and it works on all three executors (on threads it is an `Arc`).
//!   Plain numbers (`Shared<[u64]>`, any `bytemuck::Pod` slice) live in one
//!   piece of shared memory on Unix that every worker maps: the same
//!   32 MiB table over 200 tasks took 28 ms, a new handle made each time
//!   (`benches/shared.rs`); a handle already in the workers costs its
//!   tasks 1.7 us each.
//!
//! On the MPI executor a rank serves every executor of the program (and
//! spawned ranks are reused by the next executor of their size), so an
//! initializer there should replace its global's value (a `RwLock`), not
//! expect a fresh process.
//!
//! ```
//! use std::sync::{Arc, OnceLock};
//! use concurrent_futures::{Error, ProcessPoolExecutor, Shared, ThreadPoolExecutor};
//!
//! // PRICES = None
//! static PRICES: OnceLock<Vec<u64>> = OnceLock::new();
//!
//! // def init(prices): global PRICES; PRICES = prices
//! fn init(prices: Vec<u64>) {
//!     PRICES.set(prices).expect("each worker runs its initializer once");
//! }
//!
//! // def total(order): return sum(PRICES[i] for i in order)
//! fn total(order: Vec<usize>) -> u64 {
//!     let prices = PRICES.get().expect("set by init");
//!     order.iter().map(|&i| prices[i]).sum()
//! }
//!
//! // def total_with(prices, order): return sum(prices[i] for i in order)
//! fn total_with(prices: Vec<u64>, order: Vec<usize>) -> u64 {
//!     order.iter().map(|&i| prices[i]).sum()
//! }
//!
//! // The same with a handle: Shared<[u64]> derefs to &[u64].
//! fn total_put((prices, order): (Shared<[u64]>, Vec<usize>)) -> u64 {
//!     order.iter().map(|&i| prices[i]).sum()
//! }
//!
//! fn main() -> Result<(), Error> {
//!     let prices: Vec<u64> = vec![250, 400, 1200];
//!     let orders = vec![vec![0, 1], vec![2], vec![0, 0, 2]];
//!
//!     // with ProcessPoolExecutor(2, initializer=init, initargs=(prices,)) as executor:
//!     //     once = list(executor.map(total, orders))
//!     let executor = ProcessPoolExecutor::builder()
//!         .max_workers(2)
//!         .initializer_with(init, prices.clone())
//!         .build()?;
//!     let once: Vec<u64> = executor.map(total, orders.clone()).collect::<Result<_, _>>()?;
//!
//!     // with ProcessPoolExecutor(2) as executor:
//!     //     per_task = list(executor.map(functools.partial(total_with, prices), orders))
//!     let executor = ProcessPoolExecutor::new(2);
//!     let pairs = orders.iter().map(|order| (prices.clone(), order.clone()));
//!     let per_task: Vec<u64> = executor.starmap(total_with, pairs).collect::<Result<_, _>>()?;
//!
//!     // ref = ray.put(prices); each worker gets it once, before its first
//!     // task that uses it (plain numbers: mapped, not copied).
//!     let handle = Shared::from_slice(&prices);
//!     let pairs = orders.iter().map(|order| (handle.clone(), order.clone()));
//!     let put: Vec<u64> = executor.map(total_put, pairs).collect::<Result<_, _>>()?;
//!
//!     // Threads share memory: a closure captures the Arc, nothing is copied.
//!     let prices = Arc::new(prices);
//!     let threads = ThreadPoolExecutor::new(2);
//!     let shared: Vec<u64> = threads
//!         .map(move |order: Vec<usize>| order.iter().map(|&i| prices[i]).sum::<u64>(), orders)
//!         .collect::<Result<_, _>>()?;
//!
//!     assert_eq!(once, [650, 1200, 1700]);
//!     assert_eq!(per_task, once);
//!     assert_eq!(put, once);
//!     assert_eq!(shared, once);
//!     Ok(())
//! }
//! ```
//!
//! # What differs from Python, and why
//!
//! - **A dead worker fails one task, not the pool.** Python marks the whole
//!   `ProcessPoolExecutor` broken when one worker dies (`BrokenProcessPool`
//!   on every pending future, and the pool is unusable). Here the task that
//!   worker ran gets [`Error::WorkerDied`](crate::Error::WorkerDied), the worker is replaced, and every
//!   other task completes: one segfault in a million tasks costs one result.
//! - **A running task can be cancelled.** Python's `cancel()` returns `False`
//!   once a task runs. On a process pool, [`cancel()`](crate::Future::cancel)
//!   kills the running task's worker, replaces it and returns `true`; the
//!   pool's per-task [`timeout`](crate::ProcessPoolBuilder::timeout) does the
//!   same for a task that runs too long. (Threads cannot be killed safely, so
//!   on the thread pool `cancel()` behaves as in Python.)
//! - **`map` is lazy and bounded.** Python's `map` submits every input at
//!   the call, unless `buffersize` is given. Here nothing is submitted until
//!   the first `next()`, and at most [`LOOK_AHEAD_PER_WORKER`](crate::LOOK_AHEAD_PER_WORKER)
//!   chunks per worker are in flight by default, so an endless or huge input
//!   uses constant memory. As in Python, dropping the iterator cancels what
//!   has not started.
//! - **Each item is its own `Result`.** Python's `map` raises the first
//!   exception and loses the results after it. Here a failing item is that
//!   item's `Err`, and iteration goes on; in a chunk, a failure fails only
//!   that item (Python's newest behaviour, gh-108518).
//! - **`map` needs no `chunksize`.** Python sends one input per task unless
//!   told otherwise, and tiny tasks then cost a round trip each. Here chunks
//!   grow while the tasks measure fast, aim at about a millisecond of work
//!   each, and shrink again for the last inputs so every worker finishes
//!   together.
//! - **Failures are values, with a location.** A panic becomes
//!   [`Error::Panicked`](crate::Error::Panicked) with its message and `file:line`, instead of a
//!   traceback re-raised in another thread.
//! - **A result is moved out once.** `result()` hands the value over, so it
//!   need not be `Clone`; a second call is [`Error::ResultTaken`](crate::Error::ResultTaken). Python
//!   keeps a reference and returns it every time.
//! - **No fork.** Workers are fresh runs of the same executable, checked at a
//!   handshake to be the same binary, so a multi-threaded parent cannot
//!   deadlock a child the way `fork()` can.
//! - **No `__main__` guard.** Python's spawned worker re-imports the main
//!   module, so module-level code runs again in every worker unless it sits
//!   under `if __name__ == "__main__":`, and forgetting the guard is a
//!   `RuntimeError` (on Windows and macOS, where spawn is the default). Here
//!   a worker is entered before `main`, from a constructor: nothing of
//!   `main`, of libtest or of criterion runs in it, so a program, a
//!   `#[test]` (even ten of them in parallel, each with its own pool), a
//!   doctest, a bench or a library function that builds a pool needs no
//!   line at all. procspawn, the nearest Rust crate, asks for
//!   `procspawn::init()` at the top of `main`, and in each test binary for
//!   its `enable_test_support!()` macro, which adds a helper `#[test]`: a
//!   worker is the test binary run again, libtest and all, selecting only
//!   that helper, which serves from inside the test (libtest's own output
//!   silenced); doctests and benches get nothing. Here libtest never runs in
//!   a worker. What a worker does without because it never reaches `main`
//!   (std's stack-overflow message, the `main` thread name) is listed at
//!   the top of `src/process/constructor.rs`; [`init()`](crate::init) stays as the
//!   explicit form and for the MPI executor's ranks.
//!   Python's tutorials warn Windows users in particular about the guard:
//!   there, and on macOS since Python 3.8, a worker imports the main module
//!   again (the `"spawn"` start method), while Linux's default `fork` hides
//!   the mistake until the code moves. Here the answer is the same on every
//!   platform; where the process pool itself is built is the crate's
//!   [platform table](crate#platforms).
//! - **Futures are awaitable without a wrapper.** `.await` a
//!   [`Future`](crate::Future) from any async runtime; Python needs
//!   `asyncio.wrap_future`.
//!
//! # MPI: beyond one machine
//!
//! With the cargo feature `mpi`, `MpiPoolExecutor` is Python's `mpi4py.futures.MPIPoolExecutor`: the
//! same `Executor`, `Future`, `map`, `wait` and `as_completed`, with tasks on MPI ranks. Default
//! builds need no MPI library.
//!
//! ```toml
//! concurrent-futures = { version = "0.1", features = ["mpi"] }
//! ```
//!
//! ```ignore
//! concurrent_futures::init();                        // first line of main: worker ranks serve here
//! let executor = MpiPoolExecutor::new(2)?;           // spawned ranks, or those of `mpiexec -n N`
//! for r in executor.map(hitung_kuadrat_berat, (1..=8).map(|n| (n, 10_u64.pow(7)))) { println!("{:?}", r?); }
//! ```
//!
//! - **Spawn mode.** Run alone (or as `mpiexec -n 1`), the executor starts copies of the program with
//!   `MPI_Comm_spawn`. They serve the next executor of the same size too, and exit with the program.
//! - **Static-world mode.** Under `mpiexec -n N ./program` (or `srun -n N`), rank 0 runs `main` and
//!   ranks 1 to N-1 serve tasks from inside `init()`, like `python -m mpi4py.futures`; every
//!   executor of the program shares them, as mpi4py's do.
//! - **Inside an existing MPI program** (mpi4py's `MPICommExecutor`): `MpiPoolBuilder::with_comm`
//!   over a communicator of the `mpi` crate and a root rank, or `with_world`.
//!
//! Building needs an MPI library and libclang (the `mpi` crate generates its bindings); on Debian
//! or Ubuntu: `apt-get install -y --no-install-recommends libopenmpi-dev openmpi-bin libclang-dev`.
//! The example `examples/square_sum_mpi.rs` runs the tutorial's heavy
//! sum on the ranks and checks each result against the same sum computed locally
//! (333333283333335000000). The exact commands, as root, with 3 processes on a 2-core machine (drop the
//! first two variables when not root, the third when there are enough cores):
//!
//! ```sh
//! cargo build --release --features mpi --example square_sum_mpi
//! OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
//!     mpiexec -n 3 target/release/examples/square_sum_mpi          # static world: ranks 1 and 2 serve
//! OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
//!     target/release/examples/square_sum_mpi                        # alone: spawns 2 workers
//! ```
//!
//! Tasks travel as in the process pool (function offsets, a keyed tag, serde arguments); every rank
//! proves at startup that it runs the same executable (a fingerprint of its contents), so offsets
//! are trusted only between identical binaries. A panic is that task's `Error::Panicked`; a failing
//! spawn (say, too few slots without oversubscription) is `Error::SpawnFailed`, not an abort. One
//! thread per process owns MPI, since Open MPI's communicators cannot move between threads. **A
//! rank that dies**, on any host, falls silent: a rank running a task sends a heartbeat every 200 ms,
//! and one silent for 5 s makes its executor broken (`Error::BrokenExecutor` for its pending and
//! later tasks, as mpi4py does), never a hang. Open MPI 4 then aborts the dead rank's job unless
//! `mpiexec` runs with `--enable-recovery`: under plain `mpiexec` that takes rank 0 down too. With
//! it, a static world's other ranks serve the next executor, and in spawn mode the next executor
//! spawns afresh. Without it, a program run alone loses every spawned rank, not only the dead one's
//! group: its other executors on spawned ranks break too, rather than wait on ranks that are gone. Keep crash-prone tasks on a `ProcessPoolExecutor`, which fails just the one task.
//! Tested with Open MPI 4.1.4 (Debian 12), on one host and across simulated hosts.
//!
//! ## On a cluster
//!
//! The same program runs across machines, in either mode. Every node needs:
//!
//! - **the same binary**, byte for byte: each rank proves it at startup, and a node that runs
//!   another build is refused (`Error::BrokenExecutor`: "MPI rank 2 on host node3 runs a different
//!   build of the program than rank 0 on host node1 ...");
//! - **at the same path**: `mpiexec`, `srun` and `MPI_Comm_spawn` start it by its path on each node
//!   (a shared filesystem, or a copy in the same place);
//! - **the same Open MPI version**: the ranks' MPI libraries and the launcher's daemons talk to each
//!   other.
//!
//! The commands, with `mpiexec` and a hostfile and under Slurm (`srun` for a static world,
//! `sbatch` with `mpiexec -n 1` inside for spawn mode), are in `MpiPoolExecutor`'s documentation
//! (feature `mpi`), section *On a cluster, and under Slurm*: exactly the ones CI runs, on three
//! simulated hosts (network namespaces on a bridge, `.ci/mpi-hosts`) and on a real Slurm over them
//! (`.ci/slurm-cluster`), with what CI saw when a rank or a whole node died mid-task.
//!
//! - Tasks run on a thread of their own while the rank's serving thread sends the heartbeats, so a
//!   long task is never taken for a dead rank; only a machine frozen for 5 s is.
