//! The one runner of the test binaries that have a `main` of their own
//! (`harness = false`): `process_isolation`, which starts itself again as a
//! helper or a probe chosen in `main`; `mpi`, whose ranks serve from
//! `concurrent_futures::init()`; `soak`, which checks the process's
//! resources around all its cases; `process_faults`; and `mpi_comm`, an
//! MPI program whose two cases run under `mpiexec` alone. Every other test
//! is a plain `#[test]` under libtest: a process pool's workers serve
//! before `main`.
//!
//! ```ignore
//! #[path = "common/process_fixtures.rs"]
//! mod fixtures;
//! #[path = "common/harness.rs"]
//! mod harness;
//!
//! fn main() {
//!     parent_death::helper_mode(); // a helper run does its part and exits
//!     harness::run(harness::cases![workers_die_with_a_killed_parent]);
//! }
//! ```
//!
//! The runner is the `libtest-mimic` crate: output, exit status and flags
//! are libtest's in every one of these binaries (`cargo test NAME` filters
//! by substring, `--exact` by whole name, `--skip`, `--list` lists,
//! `--ignored` runs the ignored cases alone and `--include-ignored` all;
//! `--nocapture` is accepted, and nothing is captured anyway). One case
//! runs at a time; a case passes unless it panics. A case with a time limit
//! ([`run`]'s cases) runs on a thread of its own, named after it, and one
//! still running after its limit fails the run at once rather than hang
//! it; its worker processes die with the test process. Panics a test provokes on purpose stay off stderr
//! (`fixtures::quiet_expected_panics`).
//!
//! A case's own output starts on the line of `test NAME ... ` (libtest
//! prints the outcome after it): a line a script greps for is printed with
//! a newline before it.

// Every binary that includes this module uses only part of it.
#![allow(dead_code, unused_macros)]

use std::sync::mpsc;
use std::time::Duration;
use std::{process, thread};

use libtest_mimic::{Arguments, Conclusion, Failed, Trial};

/// How long one case of [`run`] may run before the whole binary fails,
/// unless `CF_TEST_CASE_SECS` says more (for a case asked to run long, such
/// as the MPI suite's busy executors for 60 s).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// [`CASE_TIMEOUT`], or `CF_TEST_CASE_SECS`.
pub fn case_timeout() -> Duration {
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

/// libtest's flags from the command line, with the cases run one at a
/// time: they share this process, whose children, threads, descriptors and
/// sockets some of them count.
pub fn arguments() -> Arguments {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    args
}

/// Runs the cases selected by the command line, each within
/// [`case_timeout`], and exits with libtest's report and status.
pub fn run(cases: &[Case]) -> ! {
    let limit = case_timeout();
    let trials = (cases.iter())
        .map(|&(name, case)| trial(name, Some(limit), case))
        .collect();
    conclude(&arguments(), trials).exit()
}

/// A case named `name` that runs `case`. With a `limit`, it runs on a
/// thread named after it, and one still running after `limit` fails the
/// whole run at once rather than hang it. Without one, it runs on the
/// main thread (where MPI wants its calls), its count bounding how long.
pub fn trial(
    name: &'static str,
    limit: Option<Duration>,
    case: impl FnOnce() + Send + 'static,
) -> Trial {
    let Some(limit) = limit else {
        return Trial::test(name, move || {
            case();
            Ok(())
        });
    };
    Trial::test(name, move || {
        let (done, finished) = mpsc::channel();
        thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                case();
                let _ = done.send(()); // a panicking case drops `done` unsent
            })
            .expect("the runner could not start a thread");
        match finished.recv_timeout(limit) {
            Ok(()) => Ok(()),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(Failed::from("the case panicked; its message is above"))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                println!("test {name} ... FAILED (still running after {limit:?})");
                process::exit(101);
            }
        }
    })
}

/// Runs the `trials` that `args` selects, one at a time, with expected
/// panics kept quiet, and returns libtest's tally (its
/// [`exit`](Conclusion::exit) ends the process with libtest's status).
pub fn conclude(args: &Arguments, trials: Vec<Trial>) -> Conclusion {
    crate::fixtures::quiet_expected_panics();
    libtest_mimic::run(args, trials)
}
