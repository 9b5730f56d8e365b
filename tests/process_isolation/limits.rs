//! Limits of a process pool that only a helper run of this binary can
//! reach (see `HELPER`), so that a memory cap or a replaced executable
//! touches only the helper: a result larger than the pool can take in
//! fails only its task, and a pool goes on after its executable is
//! replaced on disk.

use crate::fixtures;
use crate::harness;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use concurrent_futures::ProcessPoolExecutor;
use fixtures::{Scratch, pid, settle};

/// Names the helper's scenario; in a run started by a test, the run is that
/// scenario's helper instead of the test runner.
const HELPER: &str = "CONCURRENT_FUTURES_TEST_BAD_INPUT_HELPER";

/// The cases of this file, run by `main.rs`.
pub(crate) const CASES: &[harness::Case] = harness::cases![
    a_result_larger_than_memory_allows_fails_only_its_task,
    a_pool_goes_on_after_its_executable_is_replaced_on_disk,
];

/// In a helper run (started by a case below), runs that helper, which
/// exits; otherwise returns.
pub(crate) fn helper_mode() {
    match std::env::var(HELPER).as_deref() {
        Ok("huge_result") => huge_result_helper(),
        Ok("replaced_executable") => replaced_executable_helper(),
        _ => {}
    }
}

/// Runs this binary as the helper for `scenario`, with piped stdin and
/// stdout, and returns it with a line reader over its stdout.
fn start_helper(
    executable: &std::path::Path,
    scenario: &str,
) -> (std::process::Child, impl Iterator<Item = String> + use<>) {
    let mut child = Command::new(executable)
        .env(HELPER, scenario)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the helper");
    let lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|line| line.expect("the helper's output"));
    (child, lines)
}

/// The helper's last words, and that it exited cleanly.
fn finish(mut child: std::process::Child, lines: impl Iterator<Item = String>) -> Vec<String> {
    let lines: Vec<String> = lines.collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "the helper failed ({status}): {lines:?}");
    lines
}

/// A task whose result is `mib` MiB of bytes.
fn big_result(mib: usize) -> Vec<u8> {
    vec![7; mib << 20]
}

/// This process's address space in bytes (VmSize).
fn address_space() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").parse().ok())
        .expect("VmSize in /proc/self/status");
    kib << 10
}

/// Warms a one-worker pool, then caps this process's address space 64 MiB
/// above what it uses (the worker, already running, keeps its own limit)
/// and asks for a 512 MiB result. Prints the outcome and the next task's.
fn huge_result_helper() -> ! {
    let executor = ProcessPoolExecutor::new(1);
    let first = settle(&executor.submit(pid, ())).expect("a warm worker");
    let cap = address_space() + (64 << 20);
    let limit = libc::rlimit {
        rlim_cur: cap,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the one `rlimit` it is given, valid for the
    // call; lowering the soft limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
    let huge = settle(&executor.submit(big_result, 512));
    println!("huge: {:?}", huge.as_ref().map(Vec::len));
    let next = settle(&executor.submit(pid, ()));
    println!("next: {}", matches!(next, Ok(worker) if worker != first));
    std::process::exit(0);
}

fn a_result_larger_than_memory_allows_fails_only_its_task() {
    let (child, lines) = start_helper(&std::env::current_exe().unwrap(), "huge_result");
    let lines = finish(child, lines);
    let huge = lines
        .iter()
        .find(|l| l.starts_with("huge: "))
        .expect("huge");
    assert!(
        huge.contains("Protocol") && huge.contains("larger than the memory"),
        "the result that did not fit is a clear error: {huge}"
    );
    assert!(
        lines.contains(&"next: true".to_owned()),
        "the next task ran on a new worker: {lines:?}"
    );
}

/// Runs one task, says `ready`, waits for a line on stdin (by then the
/// test has replaced this executable on disk), then needs a new worker for
/// every task (one task per child) and prints whether they all ran.
fn replaced_executable_helper() -> ! {
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let first = settle(&executor.submit(pid, ())).expect("a first worker");
    println!("ready");
    std::io::stdout().flush().unwrap();
    std::io::stdin().read_line(&mut String::new()).unwrap();
    let later: Vec<_> = (0..3).map(|_| settle(&executor.submit(pid, ()))).collect();
    let all_new = later.iter().all(|r| matches!(r, Ok(w) if *w != first));
    println!("after replacement: {all_new} {later:?}");
    std::process::exit(0);
}

fn a_pool_goes_on_after_its_executable_is_replaced_on_disk() {
    // Run a copy, so that replacing it leaves this test binary alone.
    let scratch = Scratch::new("replaced-executable");
    let copy = scratch.path("program");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    let (mut child, mut lines) = start_helper(&copy, "replaced_executable");
    assert_eq!(lines.next().as_deref(), Some("ready"));

    // A rebuild: a different program renamed over the old path, as cargo
    // and rustc do. New workers must still be the pool's own program.
    let rebuilt = scratch.path("program.new");
    std::fs::copy("/bin/true", &rebuilt).unwrap();
    std::fs::rename(&rebuilt, &copy).unwrap();
    writeln!(child.stdin.take().unwrap(), "go").unwrap();

    let lines = finish(child, lines);
    #[cfg(not(concurrent_futures_portable_unix))]
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("after replacement: true")),
        "every task after the replacement ran on a new worker: {lines:?}"
    );
    // The portable Unix path (macOS's) starts workers from the executable's
    // path, which now holds another program: no new worker can start, and
    // each task says so instead of running anywhere else.
    #[cfg(concurrent_futures_portable_unix)]
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("after replacement: false")
                && !l.contains("Ok(")
                && (l.contains("SpawnFailed") || l.contains("BrokenExecutor"))),
        "every task after the replacement failed to start a worker: {lines:?}"
    );
}
