//! A process task sees the caller's command-line arguments in
//! `std::env::args()`, as a thread task does (Python's spawned workers get
//! the parent's `sys.argv`), and none of them reaches a `main`: a worker
//! serves before it.
//!
//! `cargo test` runs this binary with few arguments, maybe none; so the
//! test runs this binary again, with libtest arguments that select this
//! test alone and one more (a `--skip` of a name with spaces, which skips
//! nothing), and the check is made in that run (marked by [`PROBE`]).

use std::process::Command;

use concurrent_futures::ProcessPoolExecutor;

use crate::fixtures::{self, settle};

/// Set, this variable makes a run the probe that checks.
const PROBE: &str = "CONCURRENT_FUTURES_TEST_ARGUMENTS_PROBE";

/// The worker's arguments.
fn arguments(_: ()) -> Vec<String> {
    std::env::args().collect()
}

#[test]
fn a_task_sees_the_callers_arguments() {
    let _alone = fixtures::alone();
    if std::env::var_os(PROBE).is_some() {
        let ours: Vec<String> = std::env::args().collect();
        assert!(ours.len() > 2, "the probe's arguments: {ours:?}");
        let executor = ProcessPoolExecutor::new(1);
        assert_eq!(settle(&executor.submit(arguments, ())), Ok(ours));
        return;
    }
    let mut probe = Command::new(std::env::current_exe().unwrap());
    probe
        .args([
            "arguments::a_task_sees_the_callers_arguments",
            "--exact",
            "--test-threads=1",
            "--skip",
            "no test, with spaces",
        ])
        .env(PROBE, "1");
    let (stdout, _) = fixtures::output_of(&mut probe, "the probe");
    // The probe ran the test, once: no worker ran libtest's main.
    assert_eq!(
        stdout
            .matches("test arguments::a_task_sees_the_callers_arguments ... ok")
            .count(),
        1,
        "{stdout}"
    );
}
