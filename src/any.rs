//! Layer: root (above the pools, as the crate root is). May use:
//! `executor`, `future`, `map`, `mpi`, `process` and `thread`. It names each
//! pool's public type and the [`Executor`] trait, no transport's internals.
//! [`AnyExecutor`]: a pool chosen at run time.

use crate::{Executor, Future, Map, Payload, Shutdown, ThreadPoolExecutor};

#[cfg(all(feature = "mpi", target_os = "linux"))]
use crate::MpiPoolExecutor;
#[cfg(any(target_os = "linux", target_os = "macos", windows))]
use crate::ProcessPoolExecutor;

/// One of the crate's pools, chosen at run time: Python's
/// `executor_class = ProcessPoolExecutor if args.processes else ThreadPoolExecutor`.
///
/// [`Executor`] cannot be a trait object (`Box<dyn Executor>` fails with
/// E0038): its methods are generic over the task's argument and result
/// types. This enum is the run-time choice instead. It implements
/// [`Executor`] by handing each call to the pool it holds, so code written
/// against `&impl Executor` takes it too, and it can live in a variable or
/// a struct field. Build it with `.into()` from any pool.
///
/// ```
/// use concurrent_futures::{AnyExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor};
///
/// fn is_prime(n: u64) -> bool {
///     n > 1 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
/// }
///
/// // A command-line flag in a real program: `--processes`.
/// fn pool(processes: bool) -> AnyExecutor {
///     if processes {
///         ProcessPoolExecutor::new(2).into()
///     } else {
///         ThreadPoolExecutor::new(2).into()
///     }
/// }
///
/// for processes in [false, true] {
///     let executor = pool(processes);
///     let primes: Vec<bool> = executor.map(is_prime, [2, 15, 97]).collect::<Result<_, _>>()?;
///     assert_eq!(primes, [true, false, true]);
///     assert_eq!(executor.max_workers(), 2);
/// }
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
///
/// Which pool a variant holds depends on the platform and the features
/// (the process pool exists on Linux, macOS and Windows, the MPI executor
/// with the feature `mpi` on Linux), so the enum is `#[non_exhaustive]`.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyExecutor {
    /// A [`ThreadPoolExecutor`].
    Threads(ThreadPoolExecutor),
    /// A [`ProcessPoolExecutor`].
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    #[cfg_attr(
        docsrs,
        doc(cfg(any(target_os = "linux", target_os = "macos", windows)))
    )]
    Processes(ProcessPoolExecutor),
    /// An [`MpiPoolExecutor`].
    #[cfg(all(feature = "mpi", target_os = "linux"))]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "mpi", target_os = "linux"))))]
    Mpi(MpiPoolExecutor),
}

/// `match` on the pool an [`AnyExecutor`] holds, binding it to `$pool`.
macro_rules! on_pool {
    ($executor:expr, $pool:ident => $call:expr) => {
        match $executor {
            AnyExecutor::Threads($pool) => $call,
            #[cfg(any(target_os = "linux", target_os = "macos", windows))]
            AnyExecutor::Processes($pool) => $call,
            #[cfg(all(feature = "mpi", target_os = "linux"))]
            AnyExecutor::Mpi($pool) => $call,
        }
    };
}

impl AnyExecutor {
    /// The most workers (threads, processes or ranks) the pool will run.
    ///
    /// ```
    /// use concurrent_futures::{AnyExecutor, ThreadPoolExecutor};
    ///
    /// let executor = AnyExecutor::from(ThreadPoolExecutor::new(3));
    /// assert_eq!(executor.max_workers(), 3);
    /// ```
    pub fn max_workers(&self) -> usize {
        on_pool!(self, pool => pool.max_workers())
    }
}

impl Executor for AnyExecutor {
    fn submit<A: Payload, R: Payload>(&self, task: fn(A) -> R, arg: A) -> Future<R> {
        on_pool!(self, pool => Executor::submit(pool, task, arg))
    }

    fn map<'e, A, R, I>(&'e self, task: fn(A) -> R, inputs: I) -> Map<'e, I::IntoIter, R>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
    {
        on_pool!(self, pool => Executor::map(pool, task, inputs))
    }

    fn starmap<'e, A, B, R, I>(&'e self, task: fn(A, B) -> R, inputs: I) -> Map<'e, I::IntoIter, R>
    where
        A: Payload,
        B: Payload,
        R: Payload,
        I: IntoIterator<Item = (A, B)>,
    {
        on_pool!(self, pool => Executor::starmap(pool, task, inputs))
    }

    fn shutdown_with(&self, how: Shutdown) {
        on_pool!(self, pool => Executor::shutdown_with(pool, how));
    }
}

impl From<ThreadPoolExecutor> for AnyExecutor {
    fn from(pool: ThreadPoolExecutor) -> Self {
        AnyExecutor::Threads(pool)
    }
}

#[cfg(any(target_os = "linux", target_os = "macos", windows))]
impl From<ProcessPoolExecutor> for AnyExecutor {
    fn from(pool: ProcessPoolExecutor) -> Self {
        AnyExecutor::Processes(pool)
    }
}

#[cfg(all(feature = "mpi", target_os = "linux"))]
impl From<MpiPoolExecutor> for AnyExecutor {
    fn from(pool: MpiPoolExecutor) -> Self {
        AnyExecutor::Mpi(pool)
    }
}
