//! Layer: remote. May use: `error`, `executor`, `future`, `map`,
//! `remote::function`, `remote::codec`, `remote::message`, `remote::trace`,
//! `remote::work` and `shared`. A transport implements [`Transport`]
//! instead of importing it. The one front end of every remote pool:
//! [`RemoteExecutor`], whose `submit`, `map`, `starmap`, `map_unordered`
//! and shutdown are written once, with [`Executor`] implemented once, for
//! the process pool and the MPI executor alike.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::codec::{self, Bulk};
use super::function::{FunctionRef, Initializer, Secret, TaskFn};
use super::message::TaskHeader;
use super::work::{Chunk, One, Results, Work};
use crate::executor::forward_executor;
use crate::future;
use crate::map::{Map, Meter, Pending};
use crate::{Error, Future, Payload, Shutdown, shared};

/// How a [`RemoteExecutor`] reaches the processes that run its tasks: the
/// process pool's children ([`ProcessTransport`](crate::ProcessTransport))
/// or MPI ranks (`MpiTransport`, feature `mpi`). Sealed: it names the
/// transports of this crate, and no other type can be one.
pub trait Transport: sealed::Transport + Send + Sync + fmt::Debug + 'static {}

pub(crate) mod sealed {
    // The lint sees `Transport` below reachable as the public trait's
    // supertrait. It is not nameable outside this crate, and a user holds
    // no transport to call it on (`RemoteExecutor::transport` is private).
    #![allow(private_interfaces)]

    use super::{Secret, Shutdown, Work};

    /// What a transport does for the front end. In a module of its own, so
    /// that only this crate can implement it (the sealed-trait pattern).
    pub trait Transport {
        /// The public name of the pool on this transport, for `Debug`.
        const POOL: &'static str;
        /// The settings only this transport has, for its builder.
        type Settings: Default + Clone + std::fmt::Debug;
        /// The most processes that serve this pool at once.
        fn max_workers(&self) -> usize;
        /// The key of this pool's task tags.
        fn secret(&self) -> &Secret;
        /// Runs `work`, or fails its results with the reason it cannot.
        fn send(&self, work: Work);
        /// Takes no more work, as `how` says; see [`Shutdown`].
        fn shutdown(&self, how: Shutdown);
        /// Whether a `map` without a fixed chunk size must send one input
        /// per task (a per-task timeout stays per task).
        fn one_input_per_task(&self) -> bool {
            false
        }
        /// Whether this transport encodes a lone task's big argument where
        /// it sends it from (see `codec::Deferred`), rather than taking it
        /// encoded.
        fn encodes_in_place(&self) -> bool {
            false
        }
    }
}

/// A pool whose tasks run in other processes, reached through a
/// [`Transport`]: [`ProcessPoolExecutor`](crate::ProcessPoolExecutor), or
/// `MpiPoolExecutor` (feature `mpi`). Build one through those names; each
/// adds its own constructors and settings, and all share the methods here.
///
/// Tasks are plain functions `fn(A) -> R` of this program, named by their
/// offset in the executable, with [serde](https://serde.rs) arguments and
/// results ([`Payload`]). A task function must live in the program itself,
/// not in a dynamic library (`-C prefer-dynamic`, a `dylib` crate, a
/// plugin): there, its offset would differ in another process, so such a
/// task fails with [`Error::InvalidArgument`] at once.
pub struct RemoteExecutor<T: Transport> {
    pub(crate) transport: T,
    /// The builder's fixed `map` chunk size, if it set one.
    chunksize: Option<usize>,
}

/// How long each automatic chunk of a `map` should run: far above the tens
/// of microseconds of a call's round trip to a worker process or rank.
const CHUNK_TARGET: Duration = Duration::from_millis(1);

impl<T: Transport> RemoteExecutor<T> {
    /// A front end over `transport`. FunctionRef `panic::install_hook` before, as
    /// every pool's build does.
    pub(crate) fn over(transport: T, chunksize: Option<usize>) -> Self {
        RemoteExecutor {
            transport,
            chunksize,
        }
    }

    /// The most worker processes this pool will run.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// assert_eq!(ProcessPoolExecutor::new(3).max_workers(), 3);
    /// ```
    pub fn max_workers(&self) -> usize {
        self.transport.max_workers()
    }

    /// Schedules `task(arg)` in a worker process; see [`Executor::submit`](crate::Executor::submit).
    ///
    /// The argument is serialized here, before anything is sent: if that
    /// fails, the future holds [`Error::Serialization`]. On a process pool,
    /// an argument whose encoding is big (256 KiB or more) is only measured
    /// here, and encoded when it is sent, straight into the memory the pool
    /// shares with the worker (so its `Serialize` runs three times, and a
    /// failure then is the future's [`Error::Serialization`] too); a
    /// `Vec<u8>`, `Vec<f32>` or `Vec<f64>` is not encoded at all, but
    /// copied there as it is. Cancelling the future while the task runs on
    /// a process pool kills its worker (which is replaced); an MPI rank
    /// cannot be interrupted, so there a task can be cancelled only before
    /// it starts.
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// fn pid(_: ()) -> u32 { std::process::id() }
    ///
    /// let executor = ProcessPoolExecutor::new(1);
    /// let worker = executor.submit(pid, ()).result().unwrap();
    /// assert_ne!(worker, std::process::id(), "it ran in another process");
    /// ```
    ///
    /// # A task cannot capture
    ///
    /// A task is a function of the program, which a worker finds by its
    /// offset in the executable; a closure's captured values live only in
    /// this process. So `task` is a `fn(A) -> R`: a function, or a closure
    /// that captures nothing. A capturing closure does not compile, and
    /// rustc says "expected fn pointer, found closure" with its own note,
    /// "closures can only be coerced to `fn` types if they do not capture
    /// any variables", pointing at what the closure captured:
    ///
    /// ```compile_fail,E0308
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// let table: Vec<u64> = (0..1000).map(|i| i * i).collect();
    /// let executor = ProcessPoolExecutor::new(2);
    /// let future = executor.submit(move |i: usize| table[i], 7);
    /// ```
    ///
    /// Pass the context instead, in the argument, in a
    /// [`Shared`](crate::Shared) handle that each worker gets once, or once
    /// per worker with an initializer; the guide's
    /// [sharing data with workers](crate::guide#sharing-data-with-workers)
    /// compares the ways:
    ///
    /// ```
    /// # use concurrent_futures::{ProcessPoolExecutor, Shared};
    /// fn lookup((table, i): (Shared<[u64]>, usize)) -> u64 { table[i] }
    ///
    /// let table = Shared::from_vec((0..1000).map(|i| i * i).collect());
    /// let executor = ProcessPoolExecutor::new(2);
    /// assert_eq!(executor.submit(lookup, (table.clone(), 7)).result(), Ok(49));
    /// assert_eq!(executor.submit(lookup, (table, 9)).result(), Ok(81));
    /// ```
    ///
    /// (This crate cannot add a note of its own there: a closure given for
    /// a `fn` pointer is a type mismatch, E0308, and
    /// `#[diagnostic::on_unimplemented]` attaches only to an unmet trait
    /// bound. Taking any `F: Fn(A) -> R` instead would not help: stable
    /// Rust has no bound that tells a capturing closure from one that
    /// captures nothing, so the capture could only be refused after
    /// monomorphisation, which `cargo check` and editors never reach.)
    pub fn submit<A: Payload, R: Payload>(&self, task: fn(A) -> R, arg: A) -> Future<R> {
        self.submit_task(task, arg)
    }

    /// [`submit`](Self::submit), for a task of any [`TaskFn`] type.
    fn submit_task<F: TaskFn>(&self, task: F, arg: F::Args) -> Future<F::Output> {
        let (promise, future) = future::pair();
        let defer = self.transport.encodes_in_place();
        let encoded = FunctionRef::of(task).and_then(|function| {
            let (encoded, shared) = shared::collect(|| codec::encode_lone(arg, defer));
            Ok((function, encoded?, shared?))
        });
        match encoded {
            Ok((function, (args, bulk), shared)) => self.send(
                function,
                1,
                (args, Vec::new(), bulk),
                shared,
                Box::new(One(promise)),
            ),
            Err(error) => promise.complete(Err(error)),
        }
        future
    }

    /// Runs `task` over `inputs` in the worker processes, yielding the
    /// results in input order; see [`Map`].
    ///
    /// Set [`Map::chunksize`] (or the builder's default) to send inputs in
    /// chunks: far less overhead for tiny tasks. A panic inside a chunk still
    /// fails only its own item; a worker that dies fails its whole chunk.
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// fn square(n: u64) -> u64 { n * n }
    ///
    /// let executor = ProcessPoolExecutor::new(2);
    /// let sum: u64 = executor.map(square, 0..1000).chunksize(100).map(Result::unwrap).sum();
    /// assert_eq!(sum, 332_833_500);
    /// ```
    pub fn map<A, R, I>(&self, task: fn(A) -> R, inputs: I) -> Map<'_, I::IntoIter, R>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        self.map_task(task, inputs)
    }

    /// Runs a function of two arguments over pairs of them in the worker
    /// processes, yielding the results in input order: Python's
    /// `Pool.starmap`. See [`Executor::starmap`](crate::Executor::starmap).
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// fn power(base: u64, exponent: u32) -> u64 {
    ///     base.pow(exponent)
    /// }
    ///
    /// let executor = ProcessPoolExecutor::new(2);
    /// let powers: Vec<_> = executor.starmap(power, [(2, 3), (3, 2)]).map(Result::unwrap).collect();
    /// assert_eq!(powers, [8, 9]);
    /// ```
    pub fn starmap<A, B, R, I>(&self, task: fn(A, B) -> R, inputs: I) -> Map<'_, I::IntoIter, R>
    where
        A: Payload,
        B: Payload,
        R: Payload,
        I: IntoIterator<Item = (A, B)>,
    {
        self.map_task(task, inputs)
    }

    /// Like [`map`](Self::map), but yields each result as soon as its task
    /// (or its chunk) finishes; see [`Executor::map_unordered`](crate::Executor::map_unordered).
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// fn square(n: u64) -> (u64, u64) {
    ///     (n, n * n) // the input travels with its result
    /// }
    ///
    /// let executor = ProcessPoolExecutor::new(2);
    /// let mut pairs: Vec<_> = executor.map_unordered(square, 1..=4).map(Result::unwrap).collect();
    /// pairs.sort();
    /// assert_eq!(pairs, [(1, 1), (2, 4), (3, 9), (4, 16)]);
    /// ```
    pub fn map_unordered<A, R, I>(&self, task: fn(A) -> R, inputs: I) -> Map<'_, I::IntoIter, R>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        self.map(task, inputs).unordered()
    }

    /// [`map`](Self::map), for a task of any [`TaskFn`] type. A chunk of one
    /// input goes as a lone task, which a cancel can stop while it runs.
    fn map_task<F: TaskFn, I>(&self, task: F, inputs: I) -> Map<'_, I::IntoIter, F::Output>
    where
        I: IntoIterator<Item = F::Args>,
    {
        let function = FunctionRef::of(task);
        let submit = move |chunk: &mut Vec<F::Args>, meter: Option<&Arc<Meter>>| {
            if chunk.len() == 1 && meter.is_none() {
                let arg = chunk.pop().expect("one item");
                return Pending::One(self.submit_task(task, arg));
            }
            let len = chunk.len();
            let (future, encoded) = Chunk::encode(chunk, meter);
            if let Some(chunk) = encoded {
                match &function {
                    Ok(function) => self.send(
                        *function,
                        chunk.sent,
                        (chunk.args, chunk.ends, Bulk::default()),
                        chunk.shared,
                        chunk.results,
                    ),
                    Err(error) => chunk.results.fail(error.clone()),
                }
            }
            Pending::Chunk { future, len }
        };
        let map = Map::new(
            inputs.into_iter(),
            self.max_workers(),
            CHUNK_TARGET,
            Box::new(submit),
        );
        match self.chunksize {
            Some(items_per_chunk) => map.chunksize(items_per_chunk),
            None if self.transport.one_input_per_task() => map.chunksize(1),
            None => map,
        }
    }

    /// Hands one task message to the transport.
    fn send(
        &self,
        function: FunctionRef,
        count: usize,
        (args, ends, bulk): (Vec<u8>, Vec<usize>, Bulk),
        shared: Vec<Arc<shared::Inner>>,
        results: Box<dyn Results>,
    ) {
        #[cfg(feature = "tracing")]
        let (trace, results) = super::trace::begin(count, args.len() + bulk.bytes().len(), results);
        let header = TaskHeader {
            function,
            tag: function.tag(self.transport.secret()),
            count: u32::try_from(count).unwrap_or(u32::MAX),
            // The transport numbers the items as it sends them, if it does.
            first: 0,
            #[cfg(feature = "tracing")]
            trace,
        };
        self.transport.send(Work {
            header,
            args,
            ends,
            bulk,
            results,
            shared,
        });
    }

    /// Stops taking tasks and waits for the queued ones; see
    /// [`Executor::shutdown`](crate::Executor::shutdown). A process pool's workers are gone
    /// afterwards; MPI ranks are free for the next executor.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// let executor = ProcessPoolExecutor::new(1);
    /// executor.shutdown();
    /// ```
    pub fn shutdown(&self) {
        self.shutdown_with(Shutdown::default());
    }

    /// Shuts down as `how` says; see [`Shutdown`]. Running tasks finish.
    ///
    /// ```
    /// # use concurrent_futures::{ProcessPoolExecutor, Shutdown};
    /// let executor = ProcessPoolExecutor::new(1);
    /// executor.shutdown_with(Shutdown { cancel_futures: true, ..Shutdown::default() });
    /// ```
    pub fn shutdown_with(&self, how: Shutdown) {
        self.transport.shutdown(how);
    }
}

impl<T: Transport> Drop for RemoteExecutor<T> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

forward_executor!([T: Transport] RemoteExecutor<T>);

impl<T: Transport> fmt::Debug for RemoteExecutor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(T::POOL)
            .field("transport", &self.transport)
            .field("chunksize", &self.chunksize)
            .finish()
    }
}

/// Settings for a [`RemoteExecutor`]:
/// [`ProcessPoolBuilder`](crate::ProcessPoolBuilder), or `MpiPoolBuilder`
/// (feature `mpi`). Start
/// from the pool's `builder()`. The settings every remote pool has are
/// here; each transport adds its own, and its `build`.
///
/// ```
/// use concurrent_futures::ProcessPoolExecutor;
///
/// fn connect() { /* open a per-process resource */ }
///
/// let executor = ProcessPoolExecutor::builder()
///     .max_workers(2)
///     .initializer(connect)
///     .chunksize(64)
///     .build()?;
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct RemoteBuilder<T: Transport> {
    pub(crate) max_workers: usize,
    /// Whether `max_workers` was set, not left at its default: an MPI
    /// pool's default comes from MPI.
    pub(crate) max_workers_set: bool,
    pub(crate) chunksize: Option<usize>,
    /// The initializer, or why its argument could not be encoded (`build`
    /// says it).
    pub(crate) initializer: Option<Result<Initializer, Error>>,
    pub(crate) settings: T::Settings,
}

impl<T: Transport> Default for RemoteBuilder<T> {
    fn default() -> Self {
        RemoteBuilder {
            max_workers: num_cpus::get(),
            max_workers_set: false,
            chunksize: None,
            initializer: None,
            settings: T::Settings::default(),
        }
    }
}

impl<T: Transport> Clone for RemoteBuilder<T> {
    fn clone(&self) -> Self {
        RemoteBuilder {
            max_workers: self.max_workers,
            max_workers_set: self.max_workers_set,
            chunksize: self.chunksize,
            initializer: self.initializer.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<T: Transport> fmt::Debug for RemoteBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteBuilder")
            .field("pool", &T::POOL)
            .field("max_workers", &self.max_workers)
            .field("chunksize", &self.chunksize)
            .field("initializer", &self.initializer.is_some())
            .field("settings", &self.settings)
            .finish()
    }
}

impl<T: Transport> RemoteBuilder<T> {
    /// The most worker processes. Default: the number of CPUs (an MPI pool
    /// has its own default, from MPI: see `MpiPoolBuilder::build`). Zero
    /// makes `build` fail.
    ///
    /// ```
    /// # use concurrent_futures::{Error, ProcessPoolExecutor};
    /// assert!(matches!(ProcessPoolExecutor::builder().max_workers(0).build(), Err(Error::InvalidArgument(_))));
    /// ```
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = max_workers;
        self.max_workers_set = true;
        self
    }

    /// A fixed [`Map::chunksize`] for this pool's `map`s, instead of the
    /// automatic size. Zero makes `build` fail.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// let executor = ProcessPoolExecutor::builder().chunksize(256).build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn chunksize(mut self, items_per_chunk: usize) -> Self {
        self.chunksize = Some(items_per_chunk);
        self
    }

    /// Runs `initializer` once in each worker before its first task:
    /// Python's `initializer=f`. If it panics, the pool is broken: tasks
    /// fail with [`Error::BrokenExecutor`], whose reason carries the panic
    /// message. To give it an argument, use
    /// [`initializer_with`](Self::initializer_with).
    ///
    /// It is the place for a worker's own set-up, such as a panic hook or
    /// logging: a worker serves from [`init`](crate::init) or before
    /// `main`, so nothing of `main` runs there. On a process pool, a panic
    /// hook it sets is wrapped by the pool's, so a task's [`Error::Panicked`]
    /// still says where it panicked; a panic the pool catches does not
    /// reach it, since the worker prints nothing for one (its report
    /// travels in the error). An MPI rank runs an executor's initializer as
    /// a task, after it began serving: a panic hook set there replaces the
    /// pool's, and that rank's task panics lose their location.
    ///
    /// ```
    /// # use concurrent_futures::ProcessPoolExecutor;
    /// fn warm_up() {}
    /// let executor = ProcessPoolExecutor::builder().initializer(warm_up).build()?;
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn initializer(mut self, initializer: fn()) -> Self {
        self.initializer = Some(Initializer::of(initializer, &()));
        self
    }

    /// Runs `initializer(arg)` once in each worker before its first task:
    /// Python's `initializer=f, initargs=(arg,)`. Several arguments go as a
    /// tuple, as with [`submit`](RemoteExecutor::submit): `initargs=(a, b)`
    /// is `.initializer_with(f, (a, b))` with `fn f((a, b): (A, B))`.
    ///
    /// `arg` is serialized here, once, and the same bytes go to every
    /// worker, including one started to replace a worker that died, which
    /// runs the initializer again. An argument that does not serialize
    /// makes `build` fail with
    /// [`Error::Serialization`]. A failing initializer breaks the pool, as
    /// with [`initializer`](Self::initializer).
    ///
    /// The usual use is Python's: context every task reads (a table, a
    /// model, settings) sent once per worker into a global, instead of with
    /// every task. The guide's [sharing data with workers](crate::guide#sharing-data-with-workers)
    /// compares the ways.
    ///
    /// ```
    /// use std::sync::OnceLock;
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// // table = None
    /// static TABLE: OnceLock<Vec<u64>> = OnceLock::new();
    ///
    /// // def init(t): global table; table = t
    /// fn init(table: Vec<u64>) {
    ///     TABLE.set(table).expect("a worker runs its initializer once");
    /// }
    ///
    /// // def lookup(i): return table[i]
    /// fn lookup(i: usize) -> u64 {
    ///     TABLE.get().expect("set by init")[i]
    /// }
    ///
    /// // ProcessPoolExecutor(2, initializer=init, initargs=(table,))
    /// let table: Vec<u64> = (0..1000).map(|i| i * i).collect();
    /// let executor = ProcessPoolExecutor::builder()
    ///     .max_workers(2)
    ///     .initializer_with(init, table)
    ///     .build()?;
    /// let squares: Vec<u64> = executor.map(lookup, [3, 30, 300]).collect::<Result<_, _>>()?;
    /// assert_eq!(squares, [9, 900, 90_000]);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn initializer_with<A: Payload>(mut self, initializer: fn(A), arg: A) -> Self {
        self.initializer = Some(Initializer::of(initializer, &arg));
        self
    }

    /// The checks of every remote pool's `build`: the counts that must be
    /// at least 1, and the initializer's argument.
    pub(crate) fn check(&self) -> Result<(), Error> {
        at_least_one("max_workers", self.max_workers)?;
        at_least_one("chunksize", self.chunksize.unwrap_or(1))?;
        match &self.initializer {
            Some(Err(error)) => Err(error.clone()),
            _ => Ok(()),
        }
    }
}

/// A builder's check of a count that must be at least 1.
pub(crate) fn at_least_one(what: &str, value: usize) -> Result<(), Error> {
    if value == 0 {
        return Err(Error::InvalidArgument(format!("{what} must be at least 1")));
    }
    Ok(())
}
