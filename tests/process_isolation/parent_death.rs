//! When the program that owns a process pool dies, even by SIGKILL (on
//! Windows `TerminateProcess`), with no chance to shut the pool down, its
//! worker processes die with it: by `PR_SET_PDEATHSIG` on Linux, the
//! channel watchdog on the portable Unix path, the kill-on-close Job object
//! on Windows.
//!
//! The test runs this same binary again as the pool's owner (the helper:
//! see `HELPER`), which starts two workers busy on long tasks and prints
//! their pids. The test then SIGKILLs the helper and checks that both
//! workers are gone within a second.

use crate::fixtures;
use crate::harness;

use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use concurrent_futures::ProcessPoolExecutor;
use fixtures::{Scratch, alive, block_until_released};

/// Set to a scratch directory, this variable makes a run the helper.
const HELPER: &str = "CONCURRENT_FUTURES_TEST_PARENT_DEATH_HELPER";

/// The cases of this file, run by `main.rs`.
pub(crate) const CASES: &[harness::Case] = harness::cases![workers_die_with_a_killed_parent,];

/// In a helper run (started by the case below), runs the helper, which
/// never returns; otherwise returns.
pub(crate) fn helper_mode() {
    if let Ok(dir) = std::env::var(HELPER) {
        helper(dir);
    }
}

/// Starts two workers on tasks that block, prints `workers PID PID`, and
/// waits to be killed.
fn helper(dir: String) -> ! {
    let executor = ProcessPoolExecutor::new(2);
    let _running: Vec<_> = (0..2)
        .map(|_| executor.submit(block_until_released, dir.clone()))
        .collect();
    let scratch_files = || {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            // Not a write_atomically temp file (started-PID.tmpPID).
            .filter(|name| !name.contains('.'))
            .filter_map(|name| Some(name.strip_prefix("started-")?.to_owned()))
            // A file still being written is `started-PID.tmpPID`.
            .filter(|pid| pid.parse::<u32>().is_ok())
            .collect();
        (names.len() == 2).then_some(names)
    };
    let pids = fixtures::wait_until("both workers", scratch_files);
    println!("workers {}", pids.join(" "));
    thread::sleep(Duration::from_secs(60));
    std::process::exit(1); // not reached in a passing test: it is killed
}

fn workers_die_with_a_killed_parent() {
    let scratch = Scratch::new("parent-death");
    let mut parent = Command::new(std::env::current_exe().unwrap())
        .env(HELPER, scratch.arg())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the helper");
    let workers = fixtures::reported_pids(&mut parent, "workers");
    assert_eq!(workers.len(), 2);
    assert!(
        workers.iter().all(|&pid| alive(pid)),
        "workers {workers:?} run"
    );

    // SIGKILL (on Windows TerminateProcess): the pool gets no chance to
    // clean up.
    parent.kill().unwrap();
    let status = parent.wait().unwrap();
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    #[cfg(windows)]
    assert!(!status.success(), "{status}");
    // Orphaned workers that this test started (through the helper) are
    // killed.
    let survivors = fixtures::survivors(&workers, Duration::from_secs(1));
    assert!(
        survivors.is_empty(),
        "workers {survivors:?} outlived their parent by 1 s"
    );
}
