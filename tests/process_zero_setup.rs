//! Plain `#[test]`s, default harness, no `init()`: each builds its own
//! `ProcessPoolExecutor`, and libtest runs them in parallel. A worker is a
//! run of this very test binary, so it must serve before libtest's `main`:
//! if it ran libtest instead, it would run these tests again (and start
//! pools of its own), and print libtest's lines among ours.
//!
//! - `pool_in_test_0` .. `pool_in_test_9`: ten pools, each checking that
//!   its tasks run in other processes in which no test ever started.
//! - `a_worker_ignores_sigpipe_as_main_would`: the one setting of std's
//!   `main` prologue a worker makes itself.
//! - `ten_pools_in_parallel_print_only_libtests_lines`: runs this binary
//!   again with the ten tests on ten threads, each waiting (boundedly) until
//!   all ten hold a live pool at once, and checks that the whole output is
//!   libtest's own ten results, in whatever order.

// Runs on Linux and on Windows (under Wine in CI): the two platforms CI can
// run the process pool on. (On Windows the SIGPIPE case checks only that a
// broken pipe is an error a task can handle: there is no signal.)
#![cfg(any(target_os = "linux", windows))]

#[path = "common/process_fixtures.rs"]
mod fixtures;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use concurrent_futures::ProcessPoolExecutor;
use fixtures::PATIENCE;

/// Tests started in this process. In a worker it must stay 0.
static TESTS_STARTED: AtomicUsize = AtomicUsize::new(0);

/// Set by the outer test: how many tests must hold a live pool at once.
const OVERLAP: &str = "PROCESS_ZERO_SETUP_OVERLAP";

/// What a task reports about the process it ran in.
fn report(n: u64) -> (u64, u32, usize) {
    (
        n * n,
        std::process::id(),
        TESTS_STARTED.load(Ordering::SeqCst),
    )
}

/// One test's body: its own pool, tasks in other processes, none of which
/// ran a test.
fn pool_in_a_test() {
    TESTS_STARTED.fetch_add(1, Ordering::SeqCst);
    let executor = ProcessPoolExecutor::new(2);
    let reports: Vec<_> = executor
        .map(report, 1..=8)
        .timeout(PATIENCE)
        .collect::<Result<_, _>>()
        .expect("every task runs");
    for (n, &(square, pid, tests)) in (1..=8).zip(&reports) {
        assert_eq!(square, n * n);
        assert_ne!(pid, std::process::id(), "task {n} ran in the test process");
        assert_eq!(tests, 0, "worker {pid} had started {tests} tests");
    }
    if let Some(count) = std::env::var(OVERLAP).ok().and_then(|n| n.parse().ok()) {
        // The pool's workers are alive (a pool keeps them until dropped):
        // wait until every other test holds one too.
        all_arrive(count);
        assert_eq!(
            executor
                .submit(report, 3)
                .result_timeout(PATIENCE)
                .unwrap()
                .0,
            9
        );
    }
}

/// Blocks until `count` tests have called it, or fails after [`PATIENCE`].
fn all_arrive(count: usize) {
    static ARRIVED: Mutex<usize> = Mutex::new(0);
    static ALL_IN: Condvar = Condvar::new();
    let deadline = Instant::now() + PATIENCE;
    let mut arrived = ARRIVED.lock().unwrap();
    *arrived += 1;
    ALL_IN.notify_all();
    while *arrived < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {arrived} of {count} tests ran at once"
        );
        arrived = ALL_IN.wait_timeout(arrived, left).unwrap().0;
    }
}

macro_rules! ten_tests {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            pool_in_a_test();
        }
    )*};
}

ten_tests!(
    pool_in_test_0,
    pool_in_test_1,
    pool_in_test_2,
    pool_in_test_3,
    pool_in_test_4,
    pool_in_test_5,
    pool_in_test_6,
    pool_in_test_7,
    pool_in_test_8,
    pool_in_test_9
);

#[test]
fn ten_pools_in_parallel_print_only_libtests_lines() {
    TESTS_STARTED.fetch_add(1, Ordering::SeqCst);
    let mut again = Command::new(std::env::current_exe().unwrap());
    again
        .args(["pool_in_test_", "--test-threads=10", "--color=never"])
        .env(OVERLAP, "10");
    let (stdout, stderr) = fixtures::output_of(&mut again, "this test binary, run again");
    let mut lines: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    let summary = lines.pop().unwrap_or_default();
    assert!(
        summary.starts_with("test result: ok. 10 passed; 0 failed; 0 ignored; 0 measured; "),
        "{stdout}"
    );
    lines.sort_unstable();
    let mut expected = vec!["running 10 tests".to_owned()];
    expected.extend((0..10).map(|n| format!("test pool_in_test_{n} ... ok")));
    expected.sort_unstable();
    assert_eq!(lines, expected, "the whole output:\n{stdout}");
    assert_eq!(stderr, "", "nothing on standard error");
}

/// In a worker: writes to a pipe whose reading end is closed, and says
/// how that went. With SIGPIPE at its default the worker dies of it.
fn write_to_a_closed_pipe(_: ()) -> String {
    use std::io::Write;
    let (reader, mut writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    match writer.write_all(b"lost") {
        Ok(()) => "written".to_owned(),
        Err(error) => format!("{:?}", error.kind()),
    }
}

/// std ignores SIGPIPE before `main`; a worker that serves before `main`
/// does the same, so a broken pipe is an error a task can handle.
#[test]
fn a_worker_ignores_sigpipe_as_main_would() {
    TESTS_STARTED.fetch_add(1, Ordering::SeqCst);
    let executor = ProcessPoolExecutor::new(1);
    let outcome = executor
        .submit(write_to_a_closed_pipe, ())
        .result_timeout(PATIENCE);
    assert_eq!(outcome.as_deref(), Ok("BrokenPipe"));
}

/// The worker's own set-up, run by the pool's initializer: a panic hook
/// that keeps this file's panics off standard error.
fn quiet_worker() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.location().is_none_or(|l| l.file() != file!()) {
            previous(info);
        }
    }));
}

const PANIC_LINE: u32 = line!() + 2;
fn panics(_: ()) {
    panic!("on purpose");
}

/// Nothing of `main` runs in a worker, so its set-up goes in the
/// initializer; a panic hook set there is wrapped by the pool's, and a
/// task's panic still says where it happened.
#[test]
fn a_hook_set_by_the_initializer_keeps_panic_locations() {
    TESTS_STARTED.fetch_add(1, Ordering::SeqCst);
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .initializer(quiet_worker)
        .build()
        .unwrap();
    let outcome = executor.submit(panics, ()).result_timeout(PATIENCE);
    let Err(concurrent_futures::Error::Panicked {
        message, location, ..
    }) = outcome
    else {
        panic!("expected Panicked, got {outcome:?}");
    };
    assert_eq!(message, "on purpose");
    let location = location.expect("the pool's hook still records the location");
    assert!(
        location.starts_with(&format!("{}:{PANIC_LINE}:", file!())),
        "{location}"
    );
}
