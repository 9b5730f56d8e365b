//! A tiny test runner for programs that use a `ProcessPoolExecutor`.
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
//! case passes unless it panics. Output and exit status are libtest's:
//! `test NAME ... ok|FAILED` lines, a `test result:` line, exit code 101 on
//! failure. `cargo test NAME` filters by substring (`--exact` by whole name),
//! `--list` lists, and the other flags cargo or libtest pass are ignored. A
//! case still running after [`CASE_TIMEOUT`] fails the run at once rather
//! than hang it; its worker processes die with the test process.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Once, mpsc};
use std::time::{Duration, Instant};
use std::{env, process, thread};

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

/// Runs the cases selected by the command line, prints a report, and exits.
pub fn run(cases: &[Case]) -> ! {
    quiet_expected_panics();
    let (mut filters, mut skips, mut exact, mut list, mut ignored) =
        (vec![], vec![], false, false, false);
    let mut args = env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--exact" => exact = true,
            "--list" => list = true,
            "--ignored" => ignored = true, // only #[ignore]d cases, and there are none
            "--skip" => skips.extend(args.next()),
            "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => drop(args.next()),
            flag if flag.starts_with('-') => {} // --quiet, --nocapture, --show-output...
            filter => filters.push(filter.to_owned()),
        }
    }
    let matches = |name: &str, f: &String| name == f || !exact && name.contains(f.as_str());
    let selected: Vec<_> = (cases.iter())
        .filter(|(name, _)| !ignored && !skips.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .collect();
    if list {
        selected
            .iter()
            .for_each(|(name, _)| println!("{name}: test"));
        process::exit(0);
    }
    let plural = if selected.len() == 1 { "" } else { "s" };
    println!("\nrunning {} test{plural}", selected.len());
    let (start, mut failed) = (Instant::now(), Vec::new());
    for &&(name, case) in &selected {
        let (done, finished) = mpsc::channel();
        thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                case();
                let _ = done.send(()); // a panicking case drops `done` unsent
            })
            .expect("the runner could not start a thread");
        match finished.recv_timeout(CASE_TIMEOUT) {
            Ok(()) => println!("test {name} ... ok"),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                println!("test {name} ... FAILED (still running after {CASE_TIMEOUT:?})");
                process::exit(101);
            }
        }
    }
    if !failed.is_empty() {
        println!("\nfailures:\n    {}", failed.join("\n    "));
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len(),
        cases.len() - selected.len(),
        start.elapsed().as_secs_f64(),
    );
    process::exit(if failed.is_empty() { 0 } else { 101 });
}
