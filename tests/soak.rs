//! Soak and stress: many tasks on each pool, mixing every way a future can
//! end, then a check that nothing was lost and nothing leaked.
//!
//! Each pool runs `SOAK_TASKS` task indices (default 1,000,000), in batches
//! of [`BATCH`]. Index `i` does, by `i % 10`:
//!
//! - 0..=5: a value (`value(i)`), checked;
//! - 6: a panic, checked to be `Panicked` with its message;
//! - 7: a cancel right after the submit: `true` must mean `Cancelled`,
//!   `false` that it ran, with its value;
//! - 8: an input of a `map` (even batches) or `map_unordered` (odd ones)
//!   over the batch's such indices, dropped after half of its results;
//! - 9: a value read through `add_done_callback`, which takes it.
//!
//! Besides, each batch cancels one running task (on threads `cancel` says
//! `false` and the task finishes; on processes it says `true` and kills the
//! worker), every [`TIMEOUT_EVERY`]th batch of the process pool runs a task
//! past the per-task timeout of a second pool, and every few batches a
//! short-lived pool is shut down (or, for processes, has its workers
//! terminated or killed) while another thread submits to it.
//!
//! Every future must resolve exactly once, within a bounded wait: its
//! outcome is checked and a second `result` must say `ResultTaken` (or, for
//! a cancelled one, `Cancelled` again). At the end this process's threads,
//! child processes and open descriptors must be back where they started,
//! with no zombie, and resident memory after the run must be within
//! [`LEAK_BOUND`] of what it was after a warm-up.
//!
//! Plain `cargo test` runs a smoke count ([`SMOKE_TASKS`]) so it stays fast;
//! the full soak is the "ignored" run: `cargo test --release --test soak --
//! --ignored`, with `SOAK_TASKS` to choose the count (which also applies
//! without `--ignored`). A filter argument picks `thread_pool_soak` or
//! `process_pool_soak`; `--list` lists them.

// Runs on Linux (natively, and on the portable Unix path that macOS takes):
// its checks (threads, children, descriptors, resident memory) read /proc.
// Elsewhere this binary is empty; `no_main` only until these tests use the
// default harness, where `#![cfg]` alone would do.
#![cfg_attr(not(target_os = "linux"), no_main)]
#![cfg(target_os = "linux")]

#[path = "common/process_fixtures.rs"]
mod fixtures;
#[path = "common/harness.rs"]
mod harness;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{
    Error, Executor, Future, ProcessPoolExecutor, Shutdown, ThreadPoolExecutor,
};
use fixtures::{EXPECTED, PATIENCE, Scratch, block_until_released, wait_until};

/// Task indices per batch; futures of one batch are live at once.
const BATCH: u64 = 1_000;
/// The full soak's task count per pool, unless `SOAK_TASKS` says otherwise.
const FULL_TASKS: u64 = 1_000_000;
/// Plain `cargo test`'s count per pool: enough to exercise every path.
const SMOKE_TASKS: u64 = 3_000;
/// Batches run before the memory baseline is taken.
const WARM_UP_BATCHES: u64 = 20;
/// How much resident memory may grow between the warm-up and the end. A
/// leak of 100 bytes per task exceeds it once more than 170,000 tasks run
/// after the warm-up; below that the check is reported, not enforced.
const LEAK_BOUND: u64 = 16 << 20;
/// Every this many batches of the process pool, a task times out.
const TIMEOUT_EVERY: u64 = 5;
/// The per-task timeout of the process pool that tests timeouts.
const TASK_TIMEOUT: Duration = Duration::from_millis(100);
/// Every this many batches, a short-lived pool is shut down mid-submit.
const RACE_EVERY_THREADS: u64 = 2;
const RACE_EVERY_PROCESSES: u64 = 10;

fn main() {
    let args = harness::arguments();
    // The full soak is the "ignored" run; plain `cargo test` runs the smoke
    // count. Either way both cases are listed and picked by name.
    let full = args.ignored || args.include_ignored;
    let tasks = match std::env::var("SOAK_TASKS") {
        Ok(n) => n.parse().expect("SOAK_TASKS is a number of tasks"),
        Err(_) if full => FULL_TASKS,
        Err(_) => SMOKE_TASKS,
    };
    // No time limit: the count sets how long a case runs (CI bounds it).
    let trials = vec![
        harness::trial("thread_pool_soak", None, move || soak_threads(tasks)),
        harness::trial("process_pool_soak", None, move || soak_processes(tasks)),
    ];
    let trials = (trials.into_iter())
        .map(|trial| trial.with_ignored_flag(full))
        .collect();
    let before = Resources::now();
    let conclusion = harness::conclude(&args, trials);
    if conclusion.num_passed > 0 && !conclusion.has_failed() {
        let after = Resources::settled(&before);
        println!("soak totals: resources {}", before.compare(&after));
        before.assert_back(&after, "after every pool was dropped");
    }
    conclusion.exit()
}

// ---- Tasks -----------------------------------------------------------------

fn value(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED
}

fn panics(n: u64) -> u64 {
    fixtures::quiet_expected_panics(); // in a worker process, on its first panic
    panic!("{EXPECTED}soak {n}")
}

/// Sleeps `millis`, far past [`TASK_TIMEOUT`].
fn sleeps(millis: u64) -> u64 {
    thread::sleep(Duration::from_millis(millis));
    millis
}

// ---- Outcomes --------------------------------------------------------------

/// Outcome counts of one pool, by name.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<&'static str, u64>,
    /// Futures created (each must resolve to one counted outcome).
    futures: u64,
    /// Futures resolved and checked.
    resolved: u64,
}

impl Tally {
    fn add(&mut self, outcome: &'static str) {
        *self.counts.entry(outcome).or_default() += 1;
    }

    /// Counts a future that resolved, once, to an outcome already checked.
    fn resolved(&mut self, outcome: &'static str) {
        self.resolved += 1;
        self.add(outcome);
    }

    fn summary(&self) -> String {
        let counts: Vec<String> = self
            .counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "futures={} resolved={} lost={} [{}]",
            self.futures,
            self.resolved,
            self.futures - self.resolved,
            counts.join(" ")
        )
    }
}

/// The future's result, failing (not hanging) if it does not resolve within
/// [`PATIENCE`]; then checks that it hands its result over only once.
fn settle<R: Debug>(future: &Future<R>) -> Result<R, Error> {
    let outcome = fixtures::settle(future);
    assert!(future.done(), "resolved but not done: {outcome:?}");
    let again = future.result_timeout(Duration::ZERO);
    match &outcome {
        Err(error @ (Error::Cancelled | Error::CancelledWhileRunning)) => assert!(
            again.as_ref().err() == Some(error),
            "a cancelled future changed: {again:?}"
        ),
        _ => assert!(
            matches!(again, Err(Error::ResultTaken)),
            "a second result() gave {again:?} after {outcome:?}"
        ),
    }
    outcome
}

fn check_panicked(outcome: Result<u64, Error>, n: u64) {
    match outcome {
        Err(Error::Panicked { message, .. }) => assert_eq!(message, format!("{EXPECTED}soak {n}")),
        other => panic!("task {n} should have panicked, got {other:?}"),
    }
}

// ---- One batch, on any executor --------------------------------------------

/// How a pool's `map` is asked for in a batch.
struct MapStyle {
    unordered: bool,
    chunksize: usize,
}

/// Submits and checks the indices `range` on `executor`, as the module
/// docs say.
fn run_batch<E: Executor>(
    executor: &E,
    range: std::ops::Range<u64>,
    style: &MapStyle,
    tally: &mut Tally,
) {
    enum Kind {
        Value,
        Panic,
        CancelPending(bool),
        Callback(mpsc::Receiver<Result<u64, Error>>),
    }
    let mut futures = Vec::with_capacity(BATCH as usize);
    let mut mapped = Vec::new();
    for i in range {
        let kind = match i % 10 {
            0..=5 => Kind::Value,
            6 => Kind::Panic,
            7 => Kind::CancelPending(false),
            8 => {
                mapped.push(i);
                continue;
            }
            _ => Kind::Callback(mpsc::channel().1),
        };
        let task = if matches!(kind, Kind::Panic) {
            panics
        } else {
            value
        };
        let future = executor.submit(task, i);
        tally.futures += 1;
        let kind = match kind {
            Kind::CancelPending(_) => Kind::CancelPending(future.cancel()),
            Kind::Callback(_) => {
                let (tx, rx) = mpsc::channel();
                future.add_done_callback(move |f| {
                    let _ = tx.send(f.result());
                });
                Kind::Callback(rx)
            }
            kind => kind,
        };
        futures.push((i, future, kind));
    }

    // The map, dropped after half of its results, while the batch runs.
    let half = mapped.len() / 2;
    let inputs = mapped.clone();
    let yielded: Vec<Result<u64, Error>> = if style.unordered {
        executor
            .map_unordered(value, inputs)
            .chunksize(style.chunksize)
            .timeout(PATIENCE)
            .take(half)
            .collect()
    } else {
        executor
            .map(value, inputs)
            .chunksize(style.chunksize)
            .timeout(PATIENCE)
            .take(half)
            .collect()
    };
    assert_eq!(yielded.len(), half);
    let expected: HashSet<u64> = mapped.iter().map(|&i| value(i)).collect();
    let mut seen = HashSet::new();
    for (k, result) in yielded.into_iter().enumerate() {
        let got = result.unwrap_or_else(|e| panic!("map item {k} failed: {e:?}"));
        if style.unordered {
            assert!(expected.contains(&got), "map_unordered yielded a stranger");
            assert!(seen.insert(got), "map_unordered yielded {got} twice");
        } else {
            assert_eq!(got, value(mapped[k]), "map item {k} out of order or wrong");
        }
    }
    tally
        .counts
        .entry("map_yielded")
        .and_modify(|n| *n += half as u64)
        .or_insert(half as u64);
    let dropped = (mapped.len() - half) as u64;
    *tally.counts.entry("map_dropped").or_default() += dropped;

    for (i, future, kind) in futures {
        match kind {
            Kind::Value => {
                assert_eq!(settle(&future), Ok(value(i)), "task {i}");
                tally.resolved("value");
            }
            Kind::Panic => {
                check_panicked(settle(&future), i);
                tally.resolved("panicked");
            }
            Kind::CancelPending(cancelled) => {
                let outcome = settle(&future);
                if cancelled {
                    // A process task may have been sent to its worker by then.
                    assert!(
                        matches!(
                            outcome,
                            Err(Error::Cancelled | Error::CancelledWhileRunning)
                        ),
                        "cancel() said true, then {outcome:?}"
                    );
                    tally.resolved("cancelled_pending");
                } else {
                    assert_eq!(outcome, Ok(value(i)), "cancel() said false, so it ran");
                    tally.resolved("cancel_too_late");
                }
            }
            Kind::Callback(taken) => {
                let outcome = taken.recv_timeout(PATIENCE).expect("the done callback ran");
                assert_eq!(outcome, Ok(value(i)), "task {i}, via its callback");
                assert!(future.done());
                assert_eq!(
                    future.result_timeout(Duration::ZERO),
                    Err(Error::ResultTaken),
                    "the callback took the result"
                );
                tally.resolved("value_via_callback");
            }
        }
    }
}

/// Runs `tasks` indices on `executor` in batches, calling `extra` before each
/// batch (with the batch number) for what only that pool can do. Returns the
/// resident memory after the warm-up and at the end, in bytes, and how many
/// task indices ran after the warm-up.
fn run_batches<E: Executor>(
    executor: &E,
    tasks: u64,
    tally: &mut Tally,
    mut extra: impl FnMut(u64, &mut Tally),
) -> (u64, u64, u64) {
    let mut warm_rss = None;
    let mut after_warm_up = 0;
    for (batch, start) in (0..tasks).step_by(BATCH as usize).enumerate() {
        let batch = batch as u64;
        if batch == WARM_UP_BATCHES {
            warm_rss = Some(rss());
        }
        let end = (start + BATCH).min(tasks);
        if batch >= WARM_UP_BATCHES {
            after_warm_up += end - start;
        }
        extra(batch, tally);
        let style = MapStyle {
            unordered: batch % 2 == 1,
            chunksize: [1, 1, 4, 7][(batch % 4) as usize],
        };
        run_batch(executor, start..end, &style, tally);
    }
    let end_rss = rss();
    (warm_rss.unwrap_or(end_rss), end_rss, after_warm_up)
}

fn check_memory(pool: &str, (warm, end, measured): (u64, u64, u64)) -> String {
    let growth = end.saturating_sub(warm);
    let enforced = measured * 100 > LEAK_BOUND;
    if enforced {
        assert!(
            growth <= LEAK_BOUND,
            "{pool}: resident memory grew by {growth} bytes over {measured} tasks \
             (from {warm} after the warm-up to {end}); the bound is {LEAK_BOUND}"
        );
    }
    format!(
        "rss after warm-up {} KiB, at end {} KiB, growth {} KiB over {measured} tasks ({})",
        warm >> 10,
        end >> 10,
        growth >> 10,
        if enforced {
            "checked"
        } else {
            "too few tasks to check"
        }
    )
}

/// The end of one pool's soak, its pools dropped: prints the summary line
/// `soak POOL: tasks=N ... lost=0 ...` (CI greps it), then fails if a
/// future was lost, memory grew, or the resources are not back to
/// `before`.
fn report(pool: &str, tasks: u64, tally: &Tally, memory: (u64, u64, u64), before: &Resources) {
    let memory = check_memory(pool, memory);
    let after = Resources::settled(before);
    println!(
        "\nsoak {pool}: tasks={tasks} {} | {} | {memory}",
        tally.summary(),
        before.compare(&after)
    );
    assert_eq!(tally.futures, tally.resolved, "futures lost");
    before.assert_back(&after, &format!("after every {pool} was dropped"));
}

// ---- The thread pool -------------------------------------------------------

fn soak_threads(tasks: u64) {
    let before = Resources::now();
    let mut tally = Tally::default();
    let executor = ThreadPoolExecutor::new(4);
    let memory = run_batches(&executor, tasks, &mut tally, |batch, tally| {
        cancel_running_thread_task(&executor, batch, tally);
        if batch % RACE_EVERY_THREADS == 0 {
            race_shutdown(
                || ThreadPoolExecutor::new(2),
                |pool: &ThreadPoolExecutor, how| pool.shutdown_with(shutdown_of(how)),
                batch,
                tally,
            );
        }
    });
    drop(executor);
    report("thread pool", tasks, &tally, memory, &before);
}

/// On threads, a running task cannot be stopped: `cancel` says `false` and
/// the task finishes with its value.
fn cancel_running_thread_task(executor: &ThreadPoolExecutor, batch: u64, tally: &mut Tally) {
    let (release, gate) = mpsc::channel::<()>();
    let future = executor.submit(
        move |n: u64| {
            gate.recv_timeout(PATIENCE).expect("released");
            value(n)
        },
        batch,
    );
    tally.futures += 1;
    wait_until("the held task to run", || future.running().then_some(()));
    assert!(
        !future.cancel(),
        "a running thread task cannot be cancelled"
    );
    assert!(!future.cancelled());
    release.send(()).unwrap();
    assert_eq!(settle(&future), Ok(value(batch)));
    tally.resolved("cancel_running_refused");
}

// ---- The process pool ------------------------------------------------------

fn soak_processes(tasks: u64) {
    let before = Resources::now();
    let scratch = Scratch::new("soak");
    let mut tally = Tally::default();
    let executor = ProcessPoolExecutor::new(3);
    let timeouts = ProcessPoolExecutor::builder()
        .max_workers(1)
        .timeout(TASK_TIMEOUT)
        .build()
        .unwrap();
    let memory = run_batches(&executor, tasks, &mut tally, |batch, tally| {
        cancel_running_process_task(&executor, &scratch, tally);
        if batch % TIMEOUT_EVERY == 0 {
            time_out_a_task(&timeouts, batch, tally);
        }
        if batch % RACE_EVERY_PROCESSES == 0 {
            race_shutdown(
                || ProcessPoolExecutor::new(2),
                |pool: &ProcessPoolExecutor, how| match how % 5 {
                    3 => pool.terminate_workers(),
                    4 => pool.kill_workers(),
                    _ => pool.shutdown_with(shutdown_of(how)),
                },
                batch / RACE_EVERY_PROCESSES,
                tally,
            );
        }
    });
    let during = fixtures::children();
    assert!(
        during.iter().all(|&pid| fixtures::alive(pid)),
        "zombies among the workers: {:?}",
        during
            .iter()
            .map(|&p| (p, fixtures::state(p)))
            .collect::<Vec<_>>()
    );
    drop(executor);
    drop(timeouts);
    drop(scratch);
    report("process pool", tasks, &tally, memory, &before);
}

/// On processes, cancelling a running task kills its worker: `cancel` says
/// `true` and the future is `Cancelled`.
fn cancel_running_process_task(
    executor: &ProcessPoolExecutor,
    scratch: &Scratch,
    tally: &mut Tally,
) {
    let future = executor.submit(block_until_released, scratch.arg());
    tally.futures += 1;
    wait_until("the blocking task to run", || {
        future.running().then_some(())
    });
    let cancelled = future.cancel();
    if !cancelled {
        // Let it finish, so the failure below is reported, not a hang.
        scratch.touch("release");
    }
    let outcome = settle(&future);
    assert!(
        cancelled,
        "cancel() of a running process task said false (then {outcome:?})"
    );
    assert_eq!(outcome, Err(Error::CancelledWhileRunning));
    tally.resolved("cancelled_running");
}

/// A task past the pool's per-task timeout fails with `TaskTimedOut`, and the
/// next task on that pool runs.
fn time_out_a_task(timeouts: &ProcessPoolExecutor, batch: u64, tally: &mut Tally) {
    let slow = timeouts.submit(sleeps, 60_000);
    let next = timeouts.submit(value, batch);
    tally.futures += 2;
    assert!(
        matches!(settle(&slow), Err(Error::TaskTimedOut { .. })),
        "the slow task is killed by its per-task timeout"
    );
    tally.resolved("timed_out");
    assert_eq!(settle(&next), Ok(value(batch)), "the task after a timeout");
    tally.resolved("value_after_timeout");
}

// ---- Shutdown racing submits -----------------------------------------------

fn shutdown_of(how: u64) -> Shutdown {
    Shutdown {
        wait: how.is_multiple_of(2),
        cancel_futures: !how.is_multiple_of(3),
    }
}

/// On a fresh pool from `make`, another thread submits without pause while
/// this one stops the pool with `stop` (variant `how`). Every future must
/// resolve to its value, `Cancelled`, `Shutdown` or (for terminated or
/// killed workers) `WorkerDied`; once one is `Shutdown`, every later one is.
fn race_shutdown<E: Executor + Send + Sync + 'static>(
    make: impl FnOnce() -> E,
    stop: impl FnOnce(&E, u64),
    how: u64,
    tally: &mut Tally,
) {
    let pool = Arc::new(make());
    let submitted = Arc::new(AtomicU64::new(0));
    let submitter = {
        let pool = Arc::clone(&pool);
        let submitted = Arc::clone(&submitted);
        thread::spawn(move || {
            let mut futures = Vec::new();
            let mut refused_from = None;
            for n in 0..1_000_000_u64 {
                let future = pool.submit(value, n);
                submitted.store(n + 1, Ordering::Relaxed);
                let early = future.done().then(|| future.result_timeout(Duration::ZERO));
                if matches!(early, Some(Err(Error::Shutdown))) && refused_from.is_none() {
                    refused_from = Some(n);
                }
                futures.push((n, future, early));
                // A few more after the first refusal: all must be refused.
                if refused_from.is_some_and(|first| n >= first + 16) {
                    break;
                }
            }
            futures
        })
    };
    // Stop the pool right after the submitter's `target`th submit: yield,
    // not sleep, so that the stop lands while it is still submitting.
    let target = 1 + how % 7 * 20;
    let deadline = Instant::now() + PATIENCE;
    while submitted.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "the submitter never got going");
        thread::yield_now();
    }
    stop(&pool, how);
    let futures = submitter.join().expect("the submitter thread");
    let mut refused = false;
    for (n, future, early) in &futures {
        tally.futures += 1;
        let outcome = match early {
            Some(outcome) => outcome.clone(),
            None => settle(future),
        };
        let name = match outcome {
            Ok(v) if v == value(*n) && !refused => "race_value",
            Err(Error::Cancelled) if !refused => "race_cancelled",
            Err(Error::WorkerDied {
                signal: Some(s), ..
            }) if !refused && (s == libc::SIGTERM || s == libc::SIGKILL) => "race_worker_stopped",
            Err(Error::Shutdown) => {
                refused = true;
                "race_shutdown"
            }
            other => panic!(
                "race {how}: task {n} of {} got {other:?} (refused before: {refused})",
                futures.len()
            ),
        };
        tally.resolved(name);
    }
    assert!(
        refused,
        "the submitter stopped before the shutdown refused it"
    );
    drop(pool);
}

// ---- Resources ---------------------------------------------------------------

/// What this process holds that a pool could leak.
#[derive(Debug, Clone, PartialEq)]
struct Resources {
    threads: usize,
    fds: usize,
    children: usize,
    zombies: usize,
    rss: u64,
}

impl Resources {
    fn now() -> Self {
        let children = fixtures::children();
        Resources {
            threads: status_field("Threads:") as usize,
            fds: fixtures::open_fds(),
            zombies: children
                .iter()
                .filter(|&&pid| fixtures::state(pid) == Some('Z'))
                .count(),
            children: children.len(),
            rss: status_field("VmRSS:") << 10,
        }
    }

    /// The resources once threads, fds and children are back at `before`'s
    /// level, or after [`PATIENCE`]: a joined thread leaves /proc a moment
    /// after `join` returns.
    fn settled(before: &Resources) -> Self {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = Resources::now();
            if now.is_back(before) || Instant::now() > deadline {
                return now;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn is_back(&self, before: &Resources) -> bool {
        self.threads == before.threads
            && self.fds == before.fds
            && self.children == before.children
            && self.zombies == 0
    }

    fn assert_back(&self, after: &Resources, when: &str) {
        assert!(
            after.is_back(self),
            "{when}: not back to the starting level: {}",
            self.compare(after)
        );
    }

    fn compare(&self, after: &Resources) -> String {
        format!(
            "threads {}->{} fds {}->{} children {}->{} zombies {} rss {}->{} KiB (peak {} KiB)",
            self.threads,
            after.threads,
            self.fds,
            after.fds,
            self.children,
            after.children,
            after.zombies,
            self.rss >> 10,
            after.rss >> 10,
            status_field("VmHWM:"),
        )
    }
}

/// Resident memory now, in bytes.
fn rss() -> u64 {
    status_field("VmRSS:") << 10
}

/// A numeric field of /proc/self/status (memory fields are in KiB).
fn status_field(name: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with(name))
        .unwrap_or_else(|| panic!("/proc/self/status has no {name}"));
    line[name.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad {name} line: {line}"))
}
