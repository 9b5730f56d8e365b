//! Running the tests of programs that use a `ProcessPoolExecutor`.
//!
//! Why it exists: a process pool's workers are fresh runs of the same
//! executable, and a run turns into a worker inside
//! `concurrent_futures::init()`, which must be the first line of `main`.
//! libtest's generated `main` cannot call it, so tests that start a process
//! pool go in a test target with `harness = false` in Cargo.toml, whose own
//! `main` calls `init()` and then this runner:
//!
//! ```ignore
//! #[path = "common/process_harness.rs"]
//! mod harness;
//!
//! fn main() {
//!     concurrent_futures::init(); // first line: in a worker it never returns
//!     harness::run(&[("squares_in_another_process", squares_in_another_process)]);
//!     // or, naming each case once: harness::run(harness::cases![squares_in_another_process]);
//! }
//! ```
//!
//! A panic a test provokes on purpose stays off stderr (see
//! [`quiet_expected_panics`]); any other panic prints as usual. A binary
//! whose worker processes panic on purpose installs the hook before
//! `init()`, so that its workers have it too:
//!
//! ```ignore
//! fn main() {
//!     harness::quiet_expected_panics(); // before init(), so workers have it too
//!     concurrent_futures::init(); // in a worker it never returns
//!     harness::run(harness::cases![a_panic_fails_only_its_task]);
//! }
//! ```
//!
//! Each case runs on its own thread (named after it), one case at a time; a
//! case passes unless it panics. The runner is the `libtest-mimic` crate:
//! output, exit status and flags are libtest's (`cargo test NAME` filters
//! by substring, `--exact` by whole name, `--list` lists). A case still
//! running after [`CASE_TIMEOUT`] fails the run at once rather than hang
//! it; its worker processes die with the test process.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Once, mpsc};
use std::time::Duration;
use std::{process, thread};

use libtest_mimic::{Arguments, Failed, Trial};

/// How long one case may run before the whole binary fails.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// `cases![a, b]` is `&[("a", a as fn()), ("b", b as fn())]`.
macro_rules! cases {
    ($($case:ident),* $(,)?) => { &[$((stringify!($case), $case as fn())),*] };
}
#[allow(unused_imports)] // for binaries that list their cases by hand
pub(crate) use cases;

/// Starts the message of a panic that a test provokes on purpose, e.g.
/// `panic!("{EXPECTED}no {n} today")`: [`quiet_expected_panics`] prints
/// nothing for it.
#[allow(dead_code)] // for binaries that provoke no panic
pub const EXPECTED: &str = "expected panic: ";

thread_local! {
    /// Whether this thread is inside [`expect_panic`].
    static EXPECTING: Cell<bool> = const { Cell::new(false) };
    /// Where the panic inside [`expect_panic`] happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keeps the panics a test provokes on purpose off stderr: those whose
/// message starts with [`EXPECTED`], and those inside [`expect_panic`].
/// Every other panic reaches the hook that was there before, with its
/// backtrace under `RUST_BACKTRACE=1`. Installed once per process, before
/// any pool: a pool's own hook then wraps this one and still records where a
/// task panicked. [`run`] installs it in the test process; a binary whose
/// workers panic on purpose calls it before `init()` as well.
pub fn quiet_expected_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if EXPECTING.get() {
                LOCATION.set(info.location().map(ToString::to_string));
                return;
            }
            let payload = info.payload();
            let message = (payload.downcast_ref::<String>().map(String::as_str))
                .or_else(|| payload.downcast_ref::<&str>().copied());
            if !message.is_some_and(|m| m.starts_with(EXPECTED)) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, which must panic, without printing the panic; returns its
/// payload and where it happened (`file:line:column`).
#[allow(dead_code)] // for binaries that provoke no panic
pub fn expect_panic<T>(f: impl FnOnce() -> T) -> (Box<dyn Any + Send>, Option<String>) {
    quiet_expected_panics();
    EXPECTING.set(true);
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    EXPECTING.set(false);
    match outcome {
        Ok(_) => panic!("expect_panic: the closure returned instead of panicking"),
        Err(payload) => (payload, LOCATION.take()),
    }
}

/// A named test case, as [`cases!`] lists them.
pub type Case = (&'static str, fn());

/// The cases of several files in one list, each named `file::case`.
#[allow(dead_code)] // for binaries of one file
pub fn by_file(files: &[(&str, &[Case])]) -> Vec<Case> {
    let mut cases = Vec::new();
    for &(file, file_cases) in files {
        for &(case, run) in file_cases {
            // Leaked once per case, for the life of the test binary.
            let name: &'static str = Box::leak(format!("{file}::{case}").into_boxed_str());
            cases.push((name, run));
        }
    }
    cases
}

/// Runs the cases selected by the command line, one at a time, and exits
/// with libtest's report and status (through `libtest-mimic`, which reads
/// libtest's flags: filters, `--exact`, `--skip`, `--list`...).
pub fn run(cases: &[Case]) -> ! {
    quiet_expected_panics();
    let mut args = Arguments::from_args();
    // One at a time: the cases share this process, whose children,
    // descriptors and sockets some of them count.
    args.test_threads = Some(1);
    let trials = (cases.iter())
        .map(|&(name, case)| Trial::test(name, move || within_timeout(name, case)))
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// Runs `case` on a thread named after it; a case still running after
/// [`CASE_TIMEOUT`] fails the whole run at once rather than hang it (its
/// worker processes die with the test process).
fn within_timeout(name: &'static str, case: fn()) -> Result<(), Failed> {
    let (done, finished) = mpsc::channel();
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            case();
            let _ = done.send(()); // a panicking case drops `done` unsent
        })
        .expect("the runner could not start a thread");
    match finished.recv_timeout(CASE_TIMEOUT) {
        Ok(()) => Ok(()),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err("the case panicked; its message is above".into())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            println!("test {name} ... FAILED (still running after {CASE_TIMEOUT:?})");
            process::exit(101);
        }
    }
}
