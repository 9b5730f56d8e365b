//! Thread-pool tasks whose results, arguments or panics misbehave outside
//! the task itself (issue 10, case 2): a `Drop` that panics on a pool
//! thread, after nobody holds the future, or in a panic's payload. None of
//! it may kill a pool thread: the next task still runs.

use std::panic::panic_any;
use std::sync::mpsc;
use std::time::Duration;

use concurrent_futures::{Error, ThreadPoolExecutor};

/// How long a test waits for the pool before it calls it hung.
const PATIENCE: Duration = Duration::from_secs(10);

/// Panics when dropped.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("Bomb's drop panics");
    }
}

/// Fails unless a one-thread pool still runs a task.
fn assert_still_serves(executor: &ThreadPoolExecutor) {
    let next = executor.submit(|n: u32| n + 1, 4);
    // Before, the pool's only thread had died and was still counted: hung.
    assert_eq!(next.result_timeout(PATIENCE), Ok(5), "the pool goes on");
}

#[test]
fn a_result_whose_drop_panics_after_its_future_is_dropped() {
    let executor = ThreadPoolExecutor::new(1);
    let (release, wait) = mpsc::channel::<()>();
    let future = executor.submit(
        move |()| {
            let _ = wait.recv();
            Bomb
        },
        (),
    );
    drop(future); // the pool thread drops the result
    release.send(()).unwrap();
    assert_still_serves(&executor);
}

#[test]
fn a_panic_whose_payload_drop_panics() {
    let executor = ThreadPoolExecutor::new(1);
    let future = executor.submit(|()| -> u32 { panic_any(Bomb) }, ());
    assert!(
        matches!(future.result_timeout(PATIENCE), Err(Error::Panicked { .. })),
        "the task's panic is its error"
    );
    assert_still_serves(&executor);
}

#[test]
fn a_cancelled_tasks_argument_whose_drop_panics() {
    let executor = ThreadPoolExecutor::new(1);
    let (release, wait) = mpsc::channel::<()>();
    let busy = executor.submit(move |()| wait.recv().is_ok(), ());
    let doomed = executor.submit(|bomb: Bomb| drop(bomb), Bomb);
    assert!(doomed.cancel(), "queued behind the busy task");
    release.send(()).unwrap(); // the pool thread then drops the bomb unrun
    assert_eq!(busy.result_timeout(PATIENCE), Ok(true));
    assert_still_serves(&executor);
}
