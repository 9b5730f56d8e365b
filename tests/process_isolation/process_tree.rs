//! However the program that owns a process pool ends, nothing its tasks
//! started outlives it: it exits with the pool still running
//! (`std::process::exit`, as returning from `main` with a pool in a
//! `static` does), panics, is interrupted (SIGINT, as Ctrl-C sends), is
//! terminated (SIGTERM), or is killed (SIGKILL; on Windows
//! `TerminateProcess`), with no chance to shut the pool down.
//!
//! Each case runs this binary again as the pool's owner (the helper, see
//! `HELPER`). It starts two workers, each of which starts a long-lived
//! process of its own (a run of this binary that sleeps, see `SLEEPER`):
//! one task returns at once, leaving its worker idle; the other blocks.
//! The helper prints both pids, waits for a line on its standard input,
//! and ends its way; the test then checks that both processes are gone
//! within [`PATIENCE`]. A worker dies with its pool by its own means
//! (`PR_SET_PDEATHSIG` on Linux, the channel's watchdog on the portable
//! Unix path; the kill-on-close Job object on Windows), and takes its
//! process group with it.

use crate::fixtures;
use crate::harness;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use concurrent_futures::ProcessPoolExecutor;
use fixtures::{PATIENCE, Scratch, alive};

/// Set to `WAY:DIR`, this variable makes a run the helper that ends `WAY`.
const HELPER: &str = "CONCURRENT_FUTURES_TEST_PROCESS_TREE_HELPER";

/// Set, this variable makes a run sleep for [`SLEEP`] and exit: the
/// process a task starts.
const SLEEPER: &str = "CONCURRENT_FUTURES_TEST_PROCESS_TREE_SLEEPER";

/// How long a task's process lives unless killed: far beyond the wait.
const SLEEP: Duration = Duration::from_secs(60);

/// The cases of this file, run by `main.rs`; the signals are Unix's.
#[cfg(unix)]
pub(crate) const CASES: &[harness::Case] = harness::cases![
    nothing_outlives_a_program_that_exits,
    nothing_outlives_a_program_that_panics,
    nothing_outlives_a_killed_program,
    nothing_outlives_an_interrupted_program,
    nothing_outlives_a_terminated_program,
];
#[cfg(windows)]
pub(crate) const CASES: &[harness::Case] = harness::cases![
    nothing_outlives_a_program_that_exits,
    nothing_outlives_a_program_that_panics,
    nothing_outlives_a_killed_program,
];

/// In a helper or sleeper run, does its part, which never returns;
/// otherwise returns.
pub(crate) fn helper_mode() {
    if std::env::var_os(SLEEPER).is_some() {
        thread::sleep(SLEEP);
        std::process::exit(0);
    }
    if let Ok(value) = std::env::var(HELPER) {
        let (way, dir) = value.split_once(':').expect("WAY:DIR");
        helper(way, dir);
    }
}

/// Starts a process that sleeps, in the worker's process group, as a task
/// might (`sleep 30`); its pid.
// Never waited for: it is the test's to see die.
#[allow(clippy::zombie_processes)]
fn start_sleeper() -> u32 {
    let child = Command::new(std::env::current_exe().unwrap())
        .env(SLEEPER, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start a sleeper");
    child.id()
}

/// A task: starts a sleeper and returns its pid.
fn start_sleeper_and_return(_: ()) -> u32 {
    start_sleeper()
}

/// A task: starts a sleeper, writes its pid to `DIR/busy`, and blocks.
fn start_sleeper_and_block(dir: String) -> u32 {
    let pid = start_sleeper();
    fixtures::write_atomically(&Path::new(&dir).join("busy"), &pid.to_string());
    thread::sleep(SLEEP);
    pid
}

/// The pool's owner: prints `sleepers PID PID`, waits for a line on
/// standard input, and ends `way`, with its pool still running.
fn helper(way: &str, dir: &str) -> ! {
    let executor = ProcessPoolExecutor::new(2);
    let idle = executor
        .submit(start_sleeper_and_return, ())
        .result()
        .expect("the first task");
    let _busy = executor.submit(start_sleeper_and_block, dir.to_owned());
    let busy = fixtures::wait_until("the blocking task's sleeper", || {
        Path::new(dir)
            .join("busy")
            .exists()
            .then(|| fixtures::read_pid(&Path::new(dir).join("busy")))
    });
    println!("sleepers {idle} {busy}");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    // Not shut down: the pool is still running when the program ends.
    std::mem::forget(executor);
    match way {
        "exit" => std::process::exit(0),
        "panic" => {
            fixtures::quiet_expected_panics();
            panic!("{}the program panics", fixtures::EXPECTED)
        }
        _ => {
            // Waits for the signal the test sends.
            thread::sleep(SLEEP);
            std::process::exit(1)
        }
    }
}

/// How the test ends the helper.
enum End {
    /// A line on its standard input: it ends its own way.
    Line,
    /// A signal from outside (on Windows only SIGKILL, as `TerminateProcess`).
    #[cfg(unix)]
    Signal(libc::c_int),
    /// SIGKILL, or `TerminateProcess` on Windows.
    Kill,
}

fn nothing_outlives_a_program_that_exits() {
    nothing_outlives("exit", End::Line);
}

fn nothing_outlives_a_program_that_panics() {
    nothing_outlives("panic", End::Line);
}

fn nothing_outlives_a_killed_program() {
    nothing_outlives("signal", End::Kill);
}

#[cfg(unix)]
fn nothing_outlives_an_interrupted_program() {
    nothing_outlives("signal", End::Signal(libc::SIGINT));
}

#[cfg(unix)]
fn nothing_outlives_a_terminated_program() {
    nothing_outlives("signal", End::Signal(libc::SIGTERM));
}

fn nothing_outlives(way: &str, end: End) {
    let scratch = Scratch::new("process-tree");
    let mut program = Command::new(std::env::current_exe().unwrap())
        .env(HELPER, format!("{way}:{}", scratch.arg()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the helper");
    let sleepers = fixtures::reported_pids(&mut program, "sleepers");
    assert!(
        sleepers.iter().all(|&pid| alive(pid)),
        "sleepers {sleepers:?} run"
    );
    match end {
        End::Line => {
            let mut stdin = program.stdin.take().unwrap();
            stdin.write_all(b"end\n").unwrap();
        }
        #[cfg(unix)]
        End::Signal(signal) => {
            // SAFETY: kill(2) touches no memory; the helper is our child,
            // not yet reaped.
            unsafe { libc::kill(program.id() as libc::pid_t, signal) };
        }
        End::Kill => program.kill().unwrap(),
    }
    let status = program.wait().unwrap();
    match way {
        "exit" => assert!(status.success(), "{status}"),
        "panic" => assert_eq!(status.code(), Some(101), "{status}"),
        _ => assert!(!status.success(), "{status}"),
    }
    let survivors = fixtures::survivors(&sleepers, PATIENCE);
    assert!(
        survivors.is_empty(),
        "the tasks' processes {survivors:?} outlived the program ({way}, {status}) by {PATIENCE:?}"
    );
}
