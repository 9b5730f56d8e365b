//! Tasks that are unusual but legal, and what they return, raise or leave
//! behind (issue 10): none of it may crash the program, hang the pool or
//! outlive its task. One case per row of RELIABILITY.md's "adversarial
//! inputs" table.
//!
//! Cases that need a resource limit, or a process-wide setting (SIGCHLD
//! ignored), run this binary again as a child (see `HELPER`) and set it
//! there, never in the test process itself.

use crate::fixtures;
use crate::harness;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use concurrent_futures::{Error, ProcessPoolExecutor, Shutdown};
use fixtures::{PATIENCE, Scratch, alive, block_until_released, pid, settle, wait_until};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// Set to a scenario's name, this variable makes a run that scenario's
/// helper: it prints one line of findings and exits.
const HELPER: &str = "CONCURRENT_FUTURES_TEST_ADVERSARIAL_HELPER";

/// The cases of this file, run by `main.rs`.
#[cfg(unix)]
pub(crate) const CASES: &[harness::Case] = harness::cases![
    a_deeply_nested_result_is_an_error_not_an_abort,
    a_result_too_big_to_copy_is_an_error_not_an_abort,
    a_result_whose_deserialize_panics_fails_only_its_task,
    a_result_whose_drop_panics_kills_no_manager,
    a_result_that_does_not_deserialize_fails_alone_with_its_message,
    touching_the_executable_breaks_nothing,
    a_spawn_failure_waits_for_a_live_worker,
    a_tasks_own_processes_die_with_it,
    the_timeout_covers_sending_the_argument,
    worker_deaths_are_reported_with_sigchld_ignored,
    a_caught_panic_is_reported_to_the_caller_not_printed_by_the_worker,
];

/// The cases that apply on Windows. Left out: the address-space and
/// descriptor limits (`setrlimit`, which Windows has no form of), a worker
/// stopped by SIGSTOP, and SIGCHLD.
#[cfg(windows)]
pub(crate) const CASES: &[harness::Case] = harness::cases![
    a_deeply_nested_result_is_an_error_not_an_abort,
    a_result_whose_deserialize_panics_fails_only_its_task,
    a_result_whose_drop_panics_kills_no_manager,
    a_result_that_does_not_deserialize_fails_alone_with_its_message,
    touching_the_executable_breaks_nothing,
    a_tasks_own_processes_die_with_it,
    a_caught_panic_is_reported_to_the_caller_not_printed_by_the_worker,
];

/// In a helper run (started by a case below), runs that helper, which
/// never returns; otherwise returns.
pub(crate) fn helper_mode() {
    if let Ok(scenario) = std::env::var(HELPER) {
        helper(&scenario);
    }
}

#[cfg(unix)] // its scenarios are about Unix limits and signals
/// Runs this binary as the helper for `scenario` and returns its stdout,
/// failing with its stderr if it did not exit cleanly.
fn run_helper(scenario: &str) -> String {
    run_helper_with(scenario, |_| {}).0
}

/// [`run_helper`] with the helper's command set up by `set_up` (its
/// environment, say); returns its stdout and its stderr.
fn run_helper_with(scenario: &str, set_up: impl FnOnce(&mut Command)) -> (String, String) {
    let mut helper = Command::new(std::env::current_exe().unwrap());
    set_up(helper.env(HELPER, scenario));
    let output = helper.output().expect("start the helper");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "the {scenario} helper failed ({}): {stdout}\n{stderr}",
        output.status
    );
    (stdout.into_owned(), stderr.into_owned())
}

fn helper(scenario: &str) -> ! {
    match scenario {
        #[cfg(unix)]
        "big-result" => big_result_helper(),
        #[cfg(unix)]
        "spawn-failure" => spawn_failure_helper(),
        #[cfg(unix)]
        "sigchld-ignored" => sigchld_ignored_helper(),
        "sleep" => std::thread::sleep(Duration::from_secs(30)),
        "panic-report" => panic_report_helper(),
        other => panic!("no helper {other}"),
    }
    std::process::exit(0);
}

// ---- 1. A result can abort the program -------------------------------------

/// A linked list, as deep as it is long.
#[derive(Serialize, Deserialize)]
struct Node {
    value: u32,
    next: Option<Box<Node>>,
}

impl Drop for Node {
    /// Unlinks iteratively: a deep list must not overflow the stack of
    /// whoever drops it, here or in the worker.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(mut node) = next {
            next = node.next.take();
        }
    }
}

/// A list `depth` links long.
fn list(depth: u32) -> Option<Box<Node>> {
    let mut head = None;
    for value in 0..depth {
        head = Some(Box::new(Node { value, next: head }));
    }
    head
}

fn a_deeply_nested_result_is_an_error_not_an_abort() {
    let executor = ProcessPoolExecutor::new(1);
    // 20,000 links: before, the parent's manager thread overflowed its
    // stack decoding it, and the whole test process died.
    match settle(&executor.submit(list, 20_000)) {
        Err(Error::Serialization(message)) => {
            assert!(message.contains("deeper than"), "{message}")
        }
        other => panic!(
            "expected Error::Serialization, got {:?}",
            other.map(|_| "a list")
        ),
    }
    // The pool goes on, and a list of a reasonable depth comes back whole.
    let back = settle(&executor.submit(list, 1000)).expect("1,000 links decode");
    assert_eq!(back.map(|head| head.value), Some(999));
}

#[cfg(unix)]
/// A result of `mib` MiB of bytes.
fn bytes(mib: usize) -> Vec<u8> {
    vec![7; mib << 20]
}

#[cfg(unix)]
/// How much address space this process maps now, from /proc.
fn address_space() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

#[cfg(unix)]
/// In the helper: a warm pool, whose frame buffer already holds a 64 MiB
/// result, then an address-space limit with room for half of another: the
/// result arrives in the buffer, and no copy of it fits.
fn big_result_helper() {
    const MIB: usize = 64;
    let executor = ProcessPoolExecutor::new(1);
    // Warm everything up with a result of the same size (frame buffer,
    // allocator arenas), before the limit.
    settle(&executor.submit(bytes, MIB)).expect("a 64 MiB result without a limit");
    let limit = address_space() + ((MIB as u64 / 2) << 20);
    let rlimit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass; this is the helper
    // process, not the test binary's own run.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rlimit) }, 0);
    let outcome = settle(&executor.submit(bytes, MIB)).map(|b| b.len());
    println!("outcome: {outcome:?}");
    let after = settle(&executor.submit(pid, ()));
    println!("after: {}", after.is_ok());
}

#[cfg(unix)]
fn a_result_too_big_to_copy_is_an_error_not_an_abort() {
    // Before, the helper aborted ("memory allocation of 67108864 bytes
    // failed") copying the result out of the frame it had just read.
    let out = run_helper("big-result");
    assert!(
        out.contains("outcome: Err(Serialization: ")
            && out.contains("no memory left for its 67108864 bytes"),
        "{out}"
    );
    assert!(out.contains("after: true"), "the pool goes on: {out}");
}

// ---- 2. A panic outside the task kills a pool thread ---------------------------

/// A result whose `Deserialize` panics (in the parent, the only place
/// that decodes it).
#[derive(Debug, Serialize)]
struct PanicsWhenDecoded(u8);

impl<'de> Deserialize<'de> for PanicsWhenDecoded {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("{}PanicsWhenDecoded panics", fixtures::EXPECTED)
    }
}

fn panics_when_decoded(n: u8) -> PanicsWhenDecoded {
    PanicsWhenDecoded(n)
}

fn a_result_whose_deserialize_panics_fails_only_its_task() {
    let executor = ProcessPoolExecutor::new(1);
    let worker = settle(&executor.submit(pid, ())).unwrap();
    match settle(&executor.submit(panics_when_decoded, 1)) {
        Err(Error::Serialization(message)) => {
            assert!(message.contains("PanicsWhenDecoded panics"), "{message}")
        }
        other => panic!("expected Error::Serialization, got {other:?}"),
    }
    // Before, the manager thread died: the next task never ran.
    assert_eq!(settle(&executor.submit(pid, ())), Ok(worker), "same worker");
    let all: Vec<_> = executor.map(pid, [(), (), ()]).collect();
    assert_eq!(all, [Ok(worker), Ok(worker), Ok(worker)]);
}

/// A result whose `Drop` panics in process `bomb` only (the parent: the
/// worker drops its copy after sending it, and must not die either).
#[derive(Debug, Serialize, Deserialize)]
struct PanicsWhenDropped {
    bomb: u32,
}

impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        if self.bomb == std::process::id() {
            panic!("{}PanicsWhenDropped panics", fixtures::EXPECTED);
        }
    }
}

/// Waits for `DIR/release`, then returns a result that panics when the
/// parent (whose pid is in DIR/parent) drops it.
fn slow_bomb(dir: String) -> PanicsWhenDropped {
    block_until_released(dir.clone());
    let bomb = std::fs::read_to_string(format!("{dir}/parent")).unwrap();
    PanicsWhenDropped {
        bomb: bomb.parse().unwrap(),
    }
}

fn a_result_whose_drop_panics_kills_no_manager() {
    let scratch = Scratch::new("drop-bomb");
    std::fs::write(scratch.path("parent"), std::process::id().to_string()).unwrap();
    let executor = ProcessPoolExecutor::new(1);
    let worker = settle(&executor.submit(pid, ())).unwrap();
    // Nobody holds its future when the result arrives: the manager drops it.
    drop(executor.submit(slow_bomb, scratch.arg()));
    scratch.wait_for_files("started-", 1);
    scratch.touch("release");
    // Before, the manager died in that drop, and this never ran.
    assert_eq!(settle(&executor.submit(pid, ())), Ok(worker), "same worker");
}

// ---- 3. A result that does not deserialize is not a protocol breach -----------

/// A result that serializes in the worker and refuses to deserialize in
/// the parent, with a message of its own, when it is odd.
#[derive(Debug, PartialEq, Serialize)]
struct Picky(u32);

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(deserializer)?;
        if n % 2 == 1 {
            return Err(de::Error::custom(format!("Picky refuses the odd {n}")));
        }
        Ok(Picky(n))
    }
}

fn picky(n: u32) -> (u32, Picky) {
    (std::process::id(), Picky(n))
}

fn a_result_that_does_not_deserialize_fails_alone_with_its_message() {
    let executor = ProcessPoolExecutor::new(1);
    let worker = settle(&executor.submit(pid, ())).unwrap();
    // One chunk of four: before, all four failed with Error::Protocol, and
    // the worker was killed.
    let results: Vec<_> = executor.map(picky, [2, 3, 4, 6]).chunksize(4).collect();
    assert_eq!(results[0], Ok((worker, Picky(2))));
    match &results[1] {
        Err(Error::Serialization(message)) => assert!(
            message.contains("Picky refuses the odd 3"),
            "serde's own text: {message}"
        ),
        other => panic!("expected Error::Serialization, got {other:?}"),
    }
    assert_eq!(
        results[2..],
        [Ok((worker, Picky(4))), Ok((worker, Picky(6)))]
    );
    assert_eq!(settle(&executor.submit(pid, ())), Ok(worker), "it lives");
}

// ---- 4. `touch` on the executable ------------------------------------------------

fn touching_the_executable_breaks_nothing() {
    // A new worker for every task, so that one starts after the touch.
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let first = settle(&executor.submit(pid, ())).unwrap();
    #[cfg(unix)]
    let exe = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    // Windows wants the right to write attributes (and no more: a running
    // executable cannot be opened for writing).
    #[cfg(windows)]
    let exe = std::os::windows::fs::OpenOptionsExt::access_mode(
        &mut std::fs::OpenOptions::new(),
        0x100, // FILE_WRITE_ATTRIBUTES
    )
    .open(std::env::current_exe().unwrap())
    .unwrap();
    exe.set_modified(SystemTime::now() + Duration::from_secs(60))
        .expect("touch the test binary");
    // Before, every new worker was refused: Error::BrokenExecutor.
    let second = settle(&executor.submit(pid, ())).expect("a worker after the touch");
    assert_ne!(first, second, "a new worker ran it");
}

// ---- 5. A spawn failure while live workers idle ------------------------------------

#[cfg(unix)]
/// In the helper: two live idle workers, then a descriptor limit that
/// leaves no room for a third, then 20 tasks on a pool of 4.
fn spawn_failure_helper() {
    let scratch = Scratch::new("spawn-failure");
    let executor = ProcessPoolExecutor::new(4);
    let warm: Vec<_> = (0..2)
        .map(|_| executor.submit(block_until_released, scratch.arg()))
        .collect();
    scratch.wait_for_files("started-", 2);
    scratch.touch("release");
    for future in &warm {
        settle(future).expect("a warm-up task");
    }
    // No descriptor above the highest one open now.
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    let mut rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass, and setrlimit reads it;
    // this is the helper process, not the test binary's own run.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlimit), 0);
        rlimit.rlim_cur = highest + 1;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit), 0);
    }
    // And fill the holes below it.
    let filler: Vec<_> = std::iter::from_fn(|| std::fs::File::open("/dev/null").ok()).collect();
    let futures: Vec<_> = (0..20).map(|_| executor.submit(pid, ())).collect();
    let (mut ok, mut failed) = (0, Vec::new());
    for future in &futures {
        match settle(future) {
            Ok(_) => ok += 1,
            Err(error) => failed.push(error),
        }
    }
    println!("with live workers: ok={ok} failed={failed:?}");
    // With no live worker at all, the task fails, naming the OS error.
    let fresh = ProcessPoolExecutor::new(2);
    println!("with none: {:?}", settle(&fresh.submit(pid, ())));
    drop(filler);
}

#[cfg(unix)]
fn a_spawn_failure_waits_for_a_live_worker() {
    // Before: "ok=3 failed=[SpawnFailed ..." (17 of 20 failed).
    let out = run_helper("spawn-failure");
    assert!(out.contains("with live workers: ok=20 failed=[]"), "{out}");
    assert!(
        out.contains("with none: Err(SpawnFailed: ") && out.contains("Too many open files"),
        "{out}"
    );
}

// ---- 6. A task's own processes outlive it -------------------------------------------

/// Starts a process that sleeps 30 s (this binary as the `sleep` helper)
/// in the background, writes its pid to DIR/sleep, then blocks until
/// DIR/release (if `block`) and returns.
fn start_a_sleep((dir, block): (String, bool)) -> u32 {
    let sleep = Command::new(std::env::current_exe().unwrap())
        .env(HELPER, "sleep")
        .spawn()
        .unwrap();
    fixtures::write_atomically(
        &std::path::Path::new(&dir).join("sleep"),
        &sleep.id().to_string(),
    );
    std::mem::forget(sleep); // left behind, on purpose
    if block {
        block_until_released(dir);
    }
    std::process::id()
}

/// Kills the `sleep` on drop, if a failing test left it.
struct Reap(u32);

impl Drop for Reap {
    fn drop(&mut self) {
        // The pid is a `sleep` started by this test's task, or gone.
        fixtures::try_kill(self.0);
    }
}

fn a_tasks_own_processes_die_with_it() {
    type Stop = fn(&ProcessPoolExecutor, concurrent_futures::Future<u32>);
    let ways: [(&str, bool, Stop); 5] = [
        ("cancel", true, |_, future| assert!(future.cancel())),
        ("timeout", true, |_, future| {
            assert!(matches!(settle(&future), Err(Error::TaskTimedOut { .. })))
        }),
        ("terminate", true, |executor, _| {
            executor.terminate_workers()
        }),
        ("kill", true, |executor, _| executor.kill_workers()),
        ("drop", false, |_, future| drop(future.result())),
    ];
    for (how, block, stop) in ways {
        let scratch = Scratch::new("orphans");
        let executor = ProcessPoolExecutor::builder()
            .max_workers(1)
            .timeout(Duration::from_millis(if how == "timeout" {
                500
            } else {
                60_000
            }))
            .build()
            .unwrap();
        let future = executor.submit(start_a_sleep, (scratch.arg(), block));
        let sleep = Reap(scratch.wait_for_pid("sleep"));
        assert!(alive(sleep.0));
        stop(&executor, future);
        if how == "drop" {
            drop(executor);
        } else {
            executor.shutdown_with(Shutdown::default());
        }
        // Before, the `sleep` ran its 30 s.
        let start = Instant::now();
        wait_until(&format!("the task's sleep to end after {how}"), || {
            (!alive(sleep.0)).then_some(())
        });
        assert!(start.elapsed() < PATIENCE);
    }
}

// ---- 7. The per-task timeout and the argument ----------------------------------------

#[cfg(unix)]
fn length(bytes: Vec<u8>) -> usize {
    bytes.len()
}

#[cfg(unix)]
fn the_timeout_covers_sending_the_argument() {
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let worker = settle(&executor.submit(pid, ())).unwrap();
    // A stopped worker reads nothing: the 16 MiB argument cannot all go out.
    // SAFETY: kill(2) touches no memory; `worker` is our live worker.
    unsafe { libc::kill(worker as libc::pid_t, libc::SIGSTOP) };
    let start = Instant::now();
    let outcome = settle(&executor.submit(length, vec![0_u8; 16 << 20]));
    // Before, the send blocked forever (settle gave up after PATIENCE).
    assert_eq!(
        outcome,
        Err(Error::TaskTimedOut {
            limit: Duration::from_millis(500)
        })
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(settle(&executor.submit(length, vec![1; 10])), Ok(10));
}

// ---- Errors say what happened ---------------------------------------------------------

#[cfg(unix)]
/// In the helper, with SIGCHLD ignored: a worker the pool kills.
fn sigchld_ignored_helper() {
    // SAFETY: setting a signal's disposition to SIG_IGN runs no code of
    // ours; this is the helper process, not the test binary's own run.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let scratch = Scratch::new("sigchld");
    let executor = ProcessPoolExecutor::new(1);
    let running = executor.submit(block_until_released, scratch.arg());
    scratch.wait_for_files("started-", 1);
    executor.kill_workers();
    println!("killed: {:?}", settle(&running));
}

#[cfg(unix)]
fn worker_deaths_are_reported_with_sigchld_ignored() {
    // Before: WorkerDied { exit_code: None, signal: None }.
    let out = run_helper("sigchld-ignored");
    assert!(
        out.contains("killed: Err(WorkerDied: ") && out.contains("signal 9 (SIGKILL)"),
        "{out}"
    );
}

/// The line of the panic in [`panics_loudly`].
const LOUD_LINE: u32 = line!() + 3;
/// A task that panics, with no quiet hook anywhere.
fn panics_loudly(_: ()) -> u32 {
    panic!("a loud panic, for the caller's eyes only");
}

/// In the helper: a process task that panics; prints what its error carries.
fn panic_report_helper() {
    let executor = ProcessPoolExecutor::new(1);
    match settle(&executor.submit(panics_loudly, ())) {
        Err(Error::Panicked {
            message,
            location,
            backtrace,
        }) => {
            println!("message: {message}");
            println!("location: {}", location.unwrap_or_default());
            let names_the_task = backtrace.is_some_and(|trace| trace.contains("panics_loudly"));
            println!("backtrace naming the task: {names_the_task}");
        }
        other => println!("not a panic: {other:?}"),
    }
}

fn a_caught_panic_is_reported_to_the_caller_not_printed_by_the_worker() {
    // Before: the worker printed the panic (and its backtrace) on the
    // stderr it shares with the caller, past libtest's capture, and the
    // error carried no backtrace.
    for backtrace in [None, Some("1")] {
        let (stdout, stderr) = run_helper_with("panic-report", |helper| {
            match backtrace {
                Some(style) => helper.env("RUST_BACKTRACE", style),
                None => helper.env_remove("RUST_BACKTRACE"),
            };
        });
        assert!(
            !stderr.contains("a loud panic"),
            "RUST_BACKTRACE={backtrace:?}: printed on stderr: {stderr}"
        );
        let location = format!("location: {}:{LOUD_LINE}:", file!());
        for line in [
            "message: a loud panic, for the caller's eyes only",
            &location,
            &format!("backtrace naming the task: {}", backtrace.is_some()),
        ] {
            assert!(
                stdout.contains(line),
                "RUST_BACKTRACE={backtrace:?}: no {line:?} in {stdout}"
            );
        }
    }
}
