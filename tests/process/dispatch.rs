//! Work-conserving dispatch: work a manager sends ahead to its worker stays
//! pending (not running, cancellable for free) until the worker starts it,
//! and goes to another worker when its own turns out to be busy. Every case
//! first warms the workers up with quick tasks, so that their managers send
//! several tasks ahead (the window grows with quick answers): that is where
//! a task used to be claimed, and held, long before its worker could start
//! it.

use crate::fixtures;

use std::path::Path;

use concurrent_futures::{Error, ProcessPoolExecutor, Shutdown};
use fixtures::{Scratch, block_until_released, leave_a_mark, pid, settle};

/// Quick tasks, so that every worker of `executor` is started and its
/// manager's window is wide open.
fn warm_up(executor: &ProcessPoolExecutor) {
    let futures: Vec<_> = (0..2000).map(|_| executor.submit(pid, ())).collect();
    for future in &futures {
        settle(future).expect("a quick task");
    }
}

/// Submits a task that blocks until `scratch`'s `release`, and `queued`
/// tasks that leave a mark, back to back, as a user would; returns them
/// once the blocking one runs, with its worker's pid.
fn blocked_and_queued(
    executor: &ProcessPoolExecutor,
    scratch: &Scratch,
    queued: usize,
) -> (
    concurrent_futures::Future<u32>,
    Vec<concurrent_futures::Future<u32>>,
    u32,
) {
    let blocked = executor.submit(block_until_released, scratch.arg());
    let queued = (0..queued)
        .map(|_| executor.submit(leave_a_mark, scratch.arg()))
        .collect();
    let [started] = &scratch.wait_for_files("started-", 1)[..] else {
        unreachable!()
    };
    let worker = fixtures::read_pid(&scratch.path(started));
    (blocked, queued, worker)
}

/// Before: a task queued behind a running one on a one-worker pool said
/// `running() == true`: its manager had claimed it and sent it ahead.
#[test]
fn a_task_queued_behind_a_running_one_is_pending() {
    let _alone = fixtures::alone();
    let scratch = Scratch::new("dispatch-pending");
    let executor = ProcessPoolExecutor::new(1);
    warm_up(&executor);
    let (blocked, queued, _) = blocked_and_queued(&executor, &scratch, 2);
    assert!(blocked.running());
    for task in &queued {
        assert!(!task.running(), "queued behind a running task");
        assert!(!task.done());
    }
    scratch.touch("release");
    for task in &queued {
        settle(task).expect("it runs once the worker is free");
    }
}

/// Before: cancelling such a task killed the worker once the running task
/// had finished (the next task paid for a new process), and in some runs
/// the cancelled task's body had started.
#[test]
fn cancelling_a_queued_task_costs_no_process_and_it_never_starts() {
    let _alone = fixtures::alone();
    let scratch = Scratch::new("dispatch-cancel");
    let executor = ProcessPoolExecutor::new(1);
    warm_up(&executor);
    let task = |n| executor.submit(held_or_quick, (scratch.arg(), n, 0));
    let (blocked, queued) = (task(0), [task(1), task(2), task(3)]);
    let worker = scratch.wait_for_pid(&scratch.wait_for_files("started-", 1)[0]);
    assert!(queued[0].cancel(), "a pending task can be cancelled");
    assert_eq!(settle(&queued[0]), Err(Error::Cancelled));
    scratch.touch("release");
    assert_eq!(settle(&blocked), Ok(worker));
    for task in &queued[1..] {
        assert_eq!(settle(task), Ok(worker), "the same worker serves the rest");
    }
    assert_eq!(
        settle(&executor.submit(pid, ())),
        Ok(worker),
        "no process was replaced"
    );
    assert_eq!(scratch.files("done-"), ["done-0", "done-2", "done-3"]);
}

/// Before: `cancel_futures` cancelled only the tasks still in the pool's
/// queue; those sent ahead to a busy worker ran, and returned `Ok`.
#[test]
fn cancel_futures_cancels_every_task_not_started() {
    let _alone = fixtures::alone();
    let scratch = Scratch::new("dispatch-shutdown");
    let executor = ProcessPoolExecutor::new(1);
    warm_up(&executor);
    let (blocked, queued, worker) = blocked_and_queued(&executor, &scratch, 3);
    executor.shutdown_with(Shutdown {
        wait: false,
        cancel_futures: true,
    });
    for task in &queued {
        assert_eq!(settle(task), Err(Error::Cancelled));
    }
    scratch.touch("release");
    assert_eq!(settle(&blocked), Ok(worker), "the running task finishes");
    assert_eq!(
        scratch.files("ran-"),
        Vec::<String>::new(),
        "none of them ran"
    );
}

/// Leaves `DIR/done-N` and returns the worker's pid; for `N` = `held`,
/// first blocks until `DIR/release`, like [`block_until_released`].
fn held_or_quick((dir, n, held): (String, u32, u32)) -> u32 {
    if n == held {
        block_until_released(dir.clone());
    }
    fixtures::write_atomically(&Path::new(&dir).join(format!("done-{n}")), "");
    std::process::id()
}

/// Before: quick tasks sent ahead to a worker behind one that blocks waited
/// for it, while the other worker idled.
#[test]
fn tasks_behind_a_blocked_one_run_on_the_other_worker_meanwhile() {
    let _alone = fixtures::alone();
    let scratch = Scratch::new("dispatch-spread");
    let executor = ProcessPoolExecutor::new(2);
    warm_up(&executor);
    let held = executor.submit(held_or_quick, (scratch.arg(), 0, 0));
    let quick: Vec<_> = (1..=40)
        .map(|n| executor.submit(held_or_quick, (scratch.arg(), n, 0)))
        .collect();
    let worker = scratch.wait_for_pid(&scratch.wait_for_files("started-", 1)[0]);
    // All of them, while the first is still held.
    scratch.wait_for_files("done-", 40);
    assert!(!held.done() && held.running());
    for task in &quick {
        let ran_on = settle(task).expect("a quick task");
        assert_ne!(ran_on, worker, "ran beside the held task, not after it");
    }
    scratch.touch("release");
    assert_eq!(settle(&held), Ok(worker));
}

/// Before: the default `map` grew its chunks on quick inputs, and a chunk
/// that held a slow one ran whole on one worker, its quick inputs waiting
/// behind the slow one. Now the rest of that chunk goes to the other
/// worker while the slow input runs, and the results still come in order.
#[test]
fn a_chunk_with_a_slow_input_gives_its_rest_to_another_worker() {
    let _alone = fixtures::alone();
    let scratch = Scratch::new("dispatch-chunk");
    let executor = ProcessPoolExecutor::new(2);
    warm_up(&executor);
    let dir = scratch.arg();
    let inputs = (0..400).map(move |n| (dir.clone(), n, 201));
    let map = executor.map(held_or_quick, inputs).chunksize(100);
    let results = std::thread::scope(|scope| {
        let results = scope.spawn(|| map.collect::<Result<Vec<_>, _>>());
        let worker = scratch.wait_for_pid(&scratch.wait_for_files("started-", 1)[0]);
        // Every other input finishes while input 201 is still held: the
        // 98 after it in its chunk too.
        scratch.wait_for_files("done-", 399);
        assert!(!scratch.path("done-201").exists());
        scratch.touch("release");
        (results.join().expect("the map's thread"), worker)
    });
    let (results, worker) = results;
    let results = results.expect("every input ran");
    assert_eq!(results.len(), 400, "in input order, each once");
    assert_eq!(results[201], worker);
    assert!(
        results[202..300].iter().any(|&pid| pid != worker),
        "some of the held input's chunk ran on the other worker"
    );
}

/// Returns its input, after forking: both processes return from `fork()`.
#[cfg(unix)]
fn fork_and_return(n: u64) -> u64 {
    // SAFETY: fork(2) in a single-threaded worker process; both copies
    // only return.
    unsafe { libc::fork() };
    n
}

#[cfg(unix)]
fn ident(n: u64) -> u64 {
    n
}

/// Before: a task that forked made both copies of the worker answer; the
/// pool paired each answer with the oldest call in flight, and from then
/// on every task got the previous task's result. Now an answer is matched
/// to its call by identity, and a forked copy never speaks.
#[cfg(unix)]
#[test]
fn a_task_that_forks_never_corrupts_a_result() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(1);
    warm_up(&executor);
    for round in 0..5 {
        let forked = executor.submit(fork_and_return, round);
        let after: Vec<_> = (0..200).map(|n| executor.submit(ident, n)).collect();
        assert_eq!(settle(&forked), Ok(round));
        for (n, future) in (0..).zip(&after) {
            assert_eq!(settle(future), Ok(n), "every result is its own task's");
        }
    }
    // And in a map's chunks.
    let results: Vec<_> = executor
        .map(fork_and_return, 0..2000)
        .chunksize(50)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(results, (0..2000).collect::<Vec<_>>());
}

/// Sleeps `millis` (0: a quick task), and returns it.
fn sleep_ms(millis: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(millis));
    millis
}

/// Found by the skew bench: the manager waited for an answer with a
/// deadline (its patience with the item running), and a deadline that fell
/// while a big answer was half read left the rest of that frame to be read
/// as the next one ("unknown frame kind 0"). A wait with patience now never
/// stops inside a frame.
#[test]
fn the_default_map_with_slow_inputs_among_quick_ones_comes_back_whole() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(4);
    let inputs: Vec<u64> = (0..40_008)
        .map(|i| if (20_000..20_008).contains(&i) { 30 } else { 0 })
        .collect();
    for _ in 0..3 {
        let results: Vec<u64> = executor
            .map(sleep_ms, inputs.clone())
            .collect::<Result<_, _>>()
            .expect("every input, no protocol error");
        assert_eq!(results, inputs);
    }
}

/// `(n², "tugas n")`, after a few milliseconds for every 50th input: the
/// manager runs out of patience there and cuts the chunk.
fn describe_slowly_now_and_then(n: u64) -> (u64, String) {
    if n % 50 == 49 {
        std::thread::sleep(std::time::Duration::from_millis(4));
    }
    (n * n, format!("tugas {n}"))
}

/// Chunks cut again and again (their rests given to whichever worker is
/// free, and cut again there) still yield every result once, in order.
#[test]
fn chunks_cut_many_times_keep_every_result_in_its_place() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(2);
    let expected: Vec<_> = (0..3000).map(|n| (n * n, format!("tugas {n}"))).collect();
    for chunksize in [7, 1000] {
        let results: Vec<_> = executor
            .map(describe_slowly_now_and_then, 0..3000)
            .chunksize(chunksize)
            .collect::<Result<_, _>>()
            .expect("every input");
        assert!(
            results == expected,
            "chunksize {chunksize} changed the results"
        );
    }
}

/// [`held_or_quick`] with the two halves of its argument apart, for
/// `starmap`.
fn held_or_quick_pair(dir: String, (n, held): (u32, u32)) -> u32 {
    held_or_quick((dir, n, held))
}

/// `map_unordered` and `starmap` cut a chunk as `map` does: the rest of the
/// held input's chunk runs on the other worker while it is held.
#[test]
fn map_unordered_and_starmap_give_a_chunks_rest_to_another_worker() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(2);
    warm_up(&executor);
    for how in ["unordered", "starmap"] {
        let scratch = Scratch::new("dispatch-chunk-kinds");
        let results = std::thread::scope(|scope| {
            let results = scope.spawn(|| match how {
                "unordered" => executor
                    .map_unordered(held_or_quick, (0..400).map(|n| (scratch.arg(), n, 201)))
                    .chunksize(100)
                    .collect::<Result<Vec<_>, _>>(),
                _ => executor
                    .starmap(
                        held_or_quick_pair,
                        (0..400).map(|n| (scratch.arg(), (n, 201))),
                    )
                    .chunksize(100)
                    .collect::<Result<Vec<_>, _>>(),
            });
            scratch.wait_for_files("started-", 1);
            // Every other input finishes while input 201 is still held.
            scratch.wait_for_files("done-", 399);
            assert!(!scratch.path("done-201").exists(), "{how}");
            scratch.touch("release");
            results.join().expect("the map's thread")
        });
        assert_eq!(results.expect("every input").len(), 400, "{how}");
    }
}
