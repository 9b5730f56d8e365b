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
//! Each case runs on its own thread (named after it), one case at a time; a
//! case passes unless it panics. Output and exit status are libtest's:
//! `test NAME ... ok|FAILED` lines, a `test result:` line, exit code 101 on
//! failure. `cargo test NAME` filters by substring (`--exact` by whole name),
//! `--list` lists, and the other flags cargo or libtest pass are ignored. A
//! case still running after [`CASE_TIMEOUT`] fails the run at once rather
//! than hang it; its worker processes die with the test process.

use std::sync::mpsc;
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

/// Runs the cases selected by the command line, prints a report, and exits.
pub fn run(cases: &[(&'static str, fn())]) -> ! {
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
