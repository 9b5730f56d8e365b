//! Running the cases of the process-test binaries that need a `main` of
//! their own: `process_isolation`, which starts itself again as a helper
//! or a probe chosen in `main`, and `mpi`, whose ranks serve from
//! `concurrent_futures::init()`. Every other process test is a plain
//! `#[test]` under libtest: a process pool's workers serve before `main`.
//!
//! ```ignore
//! #[path = "common/process_fixtures.rs"]
//! mod fixtures;
//! #[path = "common/process_harness.rs"]
//! mod harness;
//!
//! fn main() {
//!     parent_death::helper_mode(); // a helper run does its part and exits
//!     harness::run(harness::cases![workers_die_with_a_killed_parent]);
//! }
//! ```
//!
//! Each case runs on its own thread (named after it), one case at a time; a
//! case passes unless it panics. The runner is the `libtest-mimic` crate:
//! output, exit status and flags are libtest's (`cargo test NAME` filters
//! by substring, `--exact` by whole name, `--list` lists). A case still
//! running after [`CASE_TIMEOUT`] fails the run at once rather than hang
//! it; its worker processes die with the test process. Panics a test
//! provokes on purpose stay off stderr (`fixtures::quiet_expected_panics`).

use std::sync::mpsc;
use std::time::Duration;
use std::{process, thread};

use libtest_mimic::{Arguments, Failed, Trial};

/// How long one case may run before the whole binary fails, unless
/// `CF_TEST_CASE_SECS` says more (for a case asked to run long, such as the
/// MPI suite's busy executors for 60 s).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);

fn case_timeout() -> Duration {
    std::env::var("CF_TEST_CASE_SECS").map_or(CASE_TIMEOUT, |secs| {
        Duration::from_secs(secs.parse().expect("CF_TEST_CASE_SECS: whole seconds"))
    })
}

/// `cases![a, b]` is `&[("a", a as fn()), ("b", b as fn())]`.
macro_rules! cases {
    ($($case:ident),* $(,)?) => { &[$((stringify!($case), $case as fn())),*] };
}
#[allow(unused_imports)] // for binaries that list their cases by hand
pub(crate) use cases;

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
    crate::fixtures::quiet_expected_panics();
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
/// [`case_timeout`] fails the whole run at once rather than hang it (its
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
    let timeout = case_timeout();
    match finished.recv_timeout(timeout) {
        Ok(()) => Ok(()),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err("the case panicked; its message is above".into())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            println!("test {name} ... FAILED (still running after {timeout:?})");
            process::exit(101);
        }
    }
}
