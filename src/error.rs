//! Layer: core. May use: std and thiserror only.
//! The one error type of the crate.

use std::fmt;
use std::time::Duration;

/// Everything that can go wrong with a task, a future or an executor.
///
/// Every variant says what happened and, where there is one, what you can do
/// about it. A task's own failure (a panic) is an `Error` on *that* task's
/// future only: other tasks and the executor carry on.
///
/// ```
/// use concurrent_futures::{Error, ThreadPoolExecutor};
///
/// let executor = ThreadPoolExecutor::new(1);
/// let future = executor.submit(|n: u32| -> u32 { panic!("no {n} today") }, 7);
/// match future.result() {
///     Err(Error::Panicked { message, .. }) => assert_eq!(message, "no 7 today"),
///     other => panic!("expected a panic, got {other:?}"),
/// }
/// ```
///
/// `Debug` prints the variant's name and then the same explanation as
/// `Display`, so that a `.unwrap()` or a `main` returning `Result` shows
/// what to do, not just a bare name:
///
/// ```
/// use concurrent_futures::Error;
///
/// let debug = format!("{:?}", Error::InitMissing);
/// assert!(debug.starts_with("InitMissing: concurrent_futures::init() was not called"), "{debug}");
/// ```
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The task panicked. The worker caught the panic and goes on serving other tasks.
    ///
    /// A worker process or MPI rank prints nothing for it: the report is
    /// all here, and `Display` shows the backtrace after the first line.
    #[error(
        "the task panicked{}: {message}{}",
        Location(location),
        Trace(backtrace)
    )]
    Panicked {
        /// The panic's message, or a placeholder when the payload was not a string.
        message: String,
        /// `file:line:column` of the panic, when it could be captured.
        location: Option<String>,
        /// For a task that ran in another process (a process pool's worker,
        /// an MPI rank), the backtrace of its panic there, when the
        /// `RUST_BACKTRACE` it inherited asks for one. A thread pool's task
        /// panics in this process, where the panic hook prints it as usual.
        backtrace: Option<String>,
    },

    /// The future was cancelled before its task ran, so it has no result.
    #[error("the future was cancelled before its task ran, so there is no result")]
    Cancelled,

    /// The future was cancelled while its task ran: the process pool
    /// stopped the worker process running it (and starts another for the
    /// next task), so it has no result. Only a process pool's lone task can
    /// be cancelled while it runs; [`Future::cancelled`](crate::Future::cancelled)
    /// is true, as after [`Cancelled`](Error::Cancelled).
    #[error(
        "the future was cancelled while its task ran: the worker process running it was stopped, \
         so there is no result"
    )]
    CancelledWhileRunning,

    /// A wait gave up: its deadline passed before the result was ready.
    ///
    /// This is about the *wait*, not the task: for
    /// [`Future::result_timeout`](crate::Future::result_timeout) the future
    /// stays usable: ask again later, or [`cancel`](crate::Future::cancel) it.
    /// A [`Map`](crate::Map) or [`as_completed`](crate::as_completed) with a
    /// timeout yields it once and ends (the map cancels its tasks that have
    /// not started). A task stopped by a process pool's per-task limit gets
    /// [`Error::TaskTimedOut`] instead.
    #[error(
        "the deadline passed before the result was ready; a future's task may still finish, so \
         wait again or cancel it; a map or as_completed with a timeout ends here, and the map \
         cancelled its tasks that had not started"
    )]
    Timeout,

    /// The task ran longer than the pool's per-task limit
    /// ([`ProcessPoolBuilder::timeout`](crate::ProcessPoolBuilder::timeout)),
    /// so its worker process (and everything it started) was killed. This
    /// is the task's final outcome; the pool replaced the worker.
    #[error(
        "the task was killed after running longer than its per-task timeout of {limit:?}; \
         raise the pool's timeout or split the work; the pool replaced the worker"
    )]
    TaskTimedOut {
        /// The pool's per-task limit that the task exceeded.
        limit: Duration,
    },

    /// The executor was shut down before this task was submitted.
    #[error(
        "the executor has been shut down and takes no new tasks; create a new executor to run more work"
    )]
    Shutdown,

    /// The executor can no longer run tasks, for the reason given.
    ///
    /// For example a worker's `initializer` panicked. Every pending task and
    /// every later submission fails with this error; create a new executor.
    #[error(
        "the executor is broken and runs no more tasks ({reason}); fix the cause and create a new executor"
    )]
    BrokenExecutor {
        /// Why the executor broke.
        reason: String,
    },

    /// The result was already taken out of this future by an earlier call.
    ///
    /// A future hands its value over once, so that results need not be `Clone`.
    #[error(
        "the result was already taken by an earlier call to result(); a future hands its value over once"
    )]
    ResultTaken,

    /// A worker could not be started for this task; the reason says why.
    ///
    /// Either the operating system refused (out of threads, processes,
    /// descriptors or memory: try a smaller `max_workers`, or retry later),
    /// or a new worker process died or stalled before it was ready. While
    /// another worker of the process pool lives, a task that cannot get a
    /// new one waits for it instead; only when none lives does the task
    /// fail with this. Only this task fails; the pool tries again for the
    /// next one.
    #[error("could not start a worker for this task: {reason}")]
    SpawnFailed {
        /// What went wrong, in words.
        reason: String,
    },

    /// A task's argument or result could not be serialized or deserialized
    /// for the trip to or from a worker process.
    ///
    /// Process and MPI pools send data with serde. The message says which
    /// side failed and why; an argument that fails to serialize is reported
    /// before anything is sent.
    #[error(
        "{0} (a process or MPI pool sends a task's arguments and result with serde; a thread pool does not)"
    )]
    Serialization(String),

    /// The worker process running this task died before it finished.
    ///
    /// Only this task fails: the pool starts a new worker and every other
    /// task carries on. (Python's `BrokenProcessPool` would fail them all.)
    ///
    /// When the program sets `SIGCHLD` to be ignored, the kernel discards
    /// every child's exit status: then only a signal the pool sent itself
    /// (cancel, `terminate_workers`, `kill_workers`) can be reported, and a
    /// worker that died on its own shows neither code nor signal.
    #[error(
        "the worker process died while running this task ({}); the pool replaced it and other tasks are unaffected",
        Death(exit_code, signal)
    )]
    WorkerDied {
        /// The worker's exit code, if it exited.
        exit_code: Option<i32>,
        /// The signal that killed the worker, if one did.
        signal: Option<i32>,
    },

    /// A worker process or MPI rank sent something that breaks the wire
    /// protocol.
    ///
    /// The task fails; a process pool replaces the worker. This points to a
    /// bug, or to something else writing to the worker's private channel.
    #[error(
        "a worker process or MPI rank broke the wire protocol: {0}; this task failed, and a \
         process pool replaced the worker"
    )]
    Protocol(String),

    /// A pool needs [`init`](crate::init) in `main`, and it was not called.
    ///
    /// The MPI executor's ranks always serve from `init()`. A process pool
    /// needs it only where its workers cannot serve before `main`: on a
    /// platform without constructors, or when the linker left this crate's
    /// out. Make `init()` the first line of `main`.
    #[error(
        "concurrent_futures::init() was not called: make it the first line of main(). An MPI executor's ranks serve from there, and so do a process pool's workers where nothing of this crate can run before main"
    )]
    InitMissing,

    /// A setting or argument is out of range; the message names it and the valid range.
    #[error("{0}")]
    InvalidArgument(String),
}

impl fmt::Debug for Error {
    /// The variant's name, then the explanation `Display` gives.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Error::Panicked { .. } => "Panicked",
            Error::Cancelled => "Cancelled",
            Error::CancelledWhileRunning => "CancelledWhileRunning",
            Error::Timeout => "Timeout",
            Error::TaskTimedOut { .. } => "TaskTimedOut",
            Error::Shutdown => "Shutdown",
            Error::BrokenExecutor { .. } => "BrokenExecutor",
            Error::ResultTaken => "ResultTaken",
            Error::SpawnFailed { .. } => "SpawnFailed",
            Error::Serialization(_) => "Serialization",
            Error::WorkerDied { .. } => "WorkerDied",
            Error::Protocol(_) => "Protocol",
            Error::InitMissing => "InitMissing",
            Error::InvalidArgument(_) => "InvalidArgument",
        };
        write!(f, "{name}: {self}")
    }
}

/// The error's text, for tasks whose own error type is `String`: so that
/// [`Future::flat_result`](crate::Future::flat_result) can put the pool's
/// error in the same `Err`, and `?` can pass it up a function that returns
/// `Result<_, String>`.
///
/// ```
/// let text = String::from(concurrent_futures::Error::Cancelled);
/// assert!(text.starts_with("the future was cancelled"));
/// ```
impl From<Error> for String {
    fn from(error: Error) -> String {
        error.to_string()
    }
}

/// Formats how a worker died: its exit code or its signal, by name.
struct Death<'a>(&'a Option<i32>, &'a Option<i32>);

impl fmt::Display for Death<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (_, Some(signal)) => {
                write!(f, "killed by signal {signal}{}", signal_name(*signal))
            }
            (Some(code), None) => write!(f, "exited with code {code}{}", status_name(*code)),
            (None, None) => f.write_str(
                "its exit status is unknown: SIGCHLD is ignored in this program, which discards it",
            ),
        }
    }
}

/// ` (SIGSEGV)` for a signal worth naming, else nothing. Only Unix has
/// signals; elsewhere no worker dies of one.
fn signal_name(signal: i32) -> &'static str {
    #[cfg(unix)]
    match signal {
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGBUS => " (SIGBUS)",
        libc::SIGFPE => " (SIGFPE)",
        libc::SIGILL => " (SIGILL)",
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGTERM => " (SIGTERM)",
        _ => "",
    }
    #[cfg(not(unix))]
    {
        let _ = signal;
        ""
    }
}

/// On Windows, the exit code of a worker that the pool killed (a cancel, a
/// timeout, `kill_workers`): there are no signals, so the pool ends a
/// worker's Job object with a code of its own. Codes with the top three
/// bits set are an application's own NTSTATUS values (the "customer"
/// bit), so no crash and no `std::process::exit` of a task is mistaken
/// for it.
#[cfg(windows)]
pub(crate) const KILLED_BY_POOL: u32 = 0xE0CF_0009;
/// On Windows, the exit code of a worker that `terminate_workers` stopped.
#[cfg(windows)]
pub(crate) const TERMINATED_BY_POOL: u32 = 0xE0CF_000F;

/// On Windows, an exit code that is an NTSTATUS the pool can explain (a
/// crash, or its own kill), in hexadecimal with its meaning, such as
/// ` (0xC0000005, STATUS_ACCESS_VIOLATION: ...)`; elsewhere nothing.
fn status_name(code: i32) -> String {
    #[cfg(windows)]
    {
        let status = code as u32;
        let meaning = match status {
            0xC000_0005 => "STATUS_ACCESS_VIOLATION: an access violation, such as a bad pointer",
            0xC000_00FD => "STATUS_STACK_OVERFLOW: the task overflowed its stack",
            0xC000_0409 => {
                "STATUS_STACK_BUFFER_OVERRUN: a fast fail, as std::process::abort and a panic \
                 while panicking end"
            }
            0xC000_001D => "STATUS_ILLEGAL_INSTRUCTION: an illegal instruction",
            0xC000_0094 => "STATUS_INTEGER_DIVIDE_BY_ZERO: an integer division by zero",
            0xC000_0017 => "STATUS_NO_MEMORY: out of memory",
            0xC000_013A => "STATUS_CONTROL_C_EXIT: interrupted by Ctrl+C",
            0xC000_0135 => "STATUS_DLL_NOT_FOUND: a DLL it needs is missing",
            KILLED_BY_POOL => "killed by the pool: a cancel, a timeout or kill_workers",
            TERMINATED_BY_POOL => "terminated by the pool: terminate_workers",
            _ if status >= 0xC000_0000 => "an NTSTATUS error",
            _ => return String::new(),
        };
        format!(" ({status:#010X}, {meaning})")
    }
    #[cfg(not(windows))]
    {
        let _ = code;
        String::new()
    }
}

/// Formats an optional panic location as ` at file:line:col`.
struct Location<'a>(&'a Option<String>);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(location) => write!(f, " at {location}"),
            None => Ok(()),
        }
    }
}

/// Formats an optional backtrace on the lines after the first.
struct Trace<'a>(&'a Option<String>);

impl fmt::Display for Trace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(backtrace) => write!(
                f,
                "\nstack backtrace of the panic, where the task ran:\n{backtrace}"
            ),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panicked_names_the_location_when_known() {
        let with = Error::Panicked {
            message: "boom".into(),
            location: Some("src/x.rs:1:2".into()),
            backtrace: None,
        };
        assert_eq!(with.to_string(), "the task panicked at src/x.rs:1:2: boom");
        let without = Error::Panicked {
            message: "boom".into(),
            location: None,
            backtrace: None,
        };
        assert_eq!(without.to_string(), "the task panicked: boom");
        let traced = Error::Panicked {
            message: "boom".into(),
            location: None,
            backtrace: Some("   0: f".into()),
        };
        assert_eq!(
            traced.to_string(),
            "the task panicked: boom\nstack backtrace of the panic, where the task ran:\n   0: f"
        );
    }

    #[test]
    fn debug_says_the_variant_once() {
        // Before: "InvalidArgument: invalid argument: max_workers ...".
        let invalid = Error::InvalidArgument("max_workers must be at least 1".into());
        assert_eq!(
            format!("{invalid:?}"),
            "InvalidArgument: max_workers must be at least 1"
        );
        let timeout = format!("{:?}", Error::Timeout);
        assert!(
            timeout.starts_with("Timeout: the deadline passed") && timeout.contains("a map"),
            "{timeout}"
        );
    }

    #[test]
    fn debug_names_the_variant_and_explains_it() {
        let debug = format!("{:?}", Error::InitMissing);
        assert!(
            debug.starts_with("InitMissing: ") && debug.contains("first line of main()"),
            "{debug}"
        );
        let timed_out = Error::TaskTimedOut {
            limit: Duration::from_secs(2),
        };
        assert!(format!("{timed_out:?}").starts_with("TaskTimedOut: "));
        assert!(timed_out.to_string().contains("2s"), "{timed_out}");
    }

    #[test]
    fn worker_died_names_the_signal_or_the_exit_code() {
        #[cfg(unix)]
        {
            let killed = Error::WorkerDied {
                exit_code: None,
                signal: Some(libc::SIGSEGV),
            };
            assert!(
                killed.to_string().contains("killed by signal 11 (SIGSEGV)"),
                "{killed}"
            );
        }
        let exited = Error::WorkerDied {
            exit_code: Some(3),
            signal: None,
        };
        assert!(
            exited.to_string().contains("exited with code 3"),
            "{exited}"
        );
        #[cfg(windows)]
        {
            let crashed = Error::WorkerDied {
                exit_code: Some(0xC000_0005_u32 as i32),
                signal: None,
            };
            assert!(
                crashed
                    .to_string()
                    .contains("(0xC0000005, STATUS_ACCESS_VIOLATION: an access violation"),
                "{crashed}"
            );
            let killed = Error::WorkerDied {
                exit_code: Some(KILLED_BY_POOL as i32),
                signal: None,
            };
            assert!(
                killed.to_string().contains("killed by the pool"),
                "{killed}"
            );
            assert!(!exited.to_string().contains("(0x"), "{exited}");
        }
    }
}
