//! Stopping process tasks: `cancel()` on a running task kills its worker
//! (which is replaced), `cancel()` on a queued task means it never runs,
//! and the builder's per-task `timeout` kills a task that runs too long.

use crate::fixtures;

use std::time::{Duration, Instant};

use concurrent_futures::{Error, ProcessPoolExecutor};
use fixtures::{Scratch, block_until_released, leave_a_mark, pid, settle};

#[test]
fn cancelling_a_running_task_kills_its_worker() {
    let _alone = fixtures::alone();
    let scratch = Scratch::new("cancel-running");
    let executor = ProcessPoolExecutor::new(1);
    let running = executor.submit(block_until_released, scratch.arg());
    let [started] = &scratch.wait_for_files("started-", 1)[..] else {
        unreachable!()
    };
    let worker = fixtures::read_pid(&scratch.path(started));
    assert!(running.running());

    assert!(running.cancel(), "a running process task can be cancelled");
    assert!(running.cancelled());
    assert_eq!(settle(&running), Err(Error::Cancelled));

    let next = settle(&executor.submit(pid, ())).expect("the pool goes on");
    assert_ne!(next, worker, "a replacement worker serves the next task");
    assert!(
        !fixtures::exists(worker),
        "the cancelled task's worker {worker} was killed and reaped ({:?})",
        fixtures::state(worker)
    );
}

#[test]
fn a_cancelled_queued_task_never_runs() {
    let _alone = fixtures::alone();
    let scratch = Scratch::new("cancel-queued");
    let executor = ProcessPoolExecutor::new(1);
    let running = executor.submit(block_until_released, scratch.arg());
    scratch.wait_for_files("started-", 1);
    let queued = executor.submit(leave_a_mark, scratch.arg());
    assert!(!queued.running());

    assert!(queued.cancel(), "a queued task can be cancelled");
    assert_eq!(settle(&queued), Err(Error::Cancelled));
    scratch.touch("release");
    let worker = settle(&running).unwrap();
    // One worker serves the queue in order: once a later task has run, the
    // cancelled one had its turn, and must have been skipped.
    assert_eq!(settle(&executor.submit(pid, ())), Ok(worker));
    assert_eq!(scratch.files("ran-"), Vec::<String>::new(), "it ran");
}

/// Sleeps for `millis`, far longer than the pool's timeout.
fn sleeps(millis: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(millis));
    std::process::id()
}

#[test]
fn a_task_past_its_timeout_is_killed() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let worker = settle(&executor.submit(sleeps, 0)).expect("a quick task is fine");

    let start = Instant::now();
    let slow = executor.submit(sleeps, 30_000);
    assert_eq!(
        settle(&slow),
        Err(Error::TaskTimedOut {
            limit: Duration::from_millis(200)
        })
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(5),
        "the timeout fired after {took:?}, not at 200 ms"
    );

    let next = settle(&executor.submit(sleeps, 10)).expect("the next task works");
    assert_ne!(next, worker, "the timed-out worker was replaced");
    assert!(!fixtures::exists(worker), "and killed and reaped");
}

/// Sleeps far past the pool's timeout on input 1500; quick on the others.
fn sleeps_on_1500(n: u32) -> u32 {
    if n == 1500 {
        std::thread::sleep(Duration::from_secs(30));
    }
    n
}

#[test]
fn a_pool_timeout_keeps_map_inputs_one_per_task() {
    let _alone = fixtures::alone();
    // Quick inputs grow automatic chunks, and a chunk times out as a whole:
    // under a per-task timeout, only the slow input may fail.
    let executor = ProcessPoolExecutor::builder()
        .max_workers(2)
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let results: Vec<_> = executor
        .map(sleeps_on_1500, 0..2000)
        .timeout(fixtures::PATIENCE)
        .collect();
    assert_eq!(results.len(), 2000);
    for (n, result) in (0..2000).zip(results) {
        match n {
            1500 => assert_eq!(
                result,
                Err(Error::TaskTimedOut {
                    limit: Duration::from_millis(200)
                }),
                "input {n}"
            ),
            _ => assert_eq!(result, Ok(n), "input {n}"),
        }
    }
}

/// An initializer that holds a new worker in its start-up until the test
/// creates `release-start` in the pool's scratch directory.
fn wait_for_release_start() {
    let scratch = fixtures::parents_scratch("cancel-starting");
    fixtures::write_atomically(&scratch.join("starting"), "");
    let release = scratch.join("release-start");
    let deadline = Instant::now() + fixtures::BLOCK_AT_MOST;
    while !release.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Found by the soak test: a task counted as running from the moment its
/// manager took it, which may be before its worker process has started;
/// `cancel()` then said `false` (there was nothing to kill yet) and the
/// task ran to the end anyway. Now a task whose worker is still starting
/// is pending, as it is: a cancel stops it for free, and it never runs.
#[test]
fn a_task_whose_worker_is_still_starting_is_pending_and_cancels() {
    let _alone = fixtures::alone();
    let scratch = Scratch::for_workers("cancel-starting");
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .initializer(wait_for_release_start)
        .build()
        .unwrap();
    let task = executor.submit(leave_a_mark, scratch.arg());
    scratch.wait_for_files("starting", 1);
    assert!(!task.running(), "its worker has not started it");

    assert!(task.cancel(), "a pending process task can be cancelled");
    assert_eq!(settle(&task), Err(Error::Cancelled));
    scratch.touch("release-start");
    // One worker serves tasks in order: once the next has run, the
    // cancelled one has had every chance to.
    settle(&executor.submit(pid, ())).expect("the pool goes on");
    assert_eq!(scratch.files("ran-"), Vec::<String>::new(), "it ran");
}
