//! The thread pool itself: the builder's settings (max_workers, names,
//! initializer, stack size), threads that start lazily, are reused when
//! idle and never exceed `max_workers`, and tasks that really overlap.
//! Ported in spirit from Python's `test_thread_pool.py` and the executor
//! tests it shares with the process pool.
//!
//! Threads are counted by the names the tasks see, and by the pool's
//! `Debug` output, never by sleeping.

use std::cell::Cell;
use std::collections::HashSet;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, Future, ThreadPoolExecutor};

mod common;
use common::{GRACE, PATIENCE, current_name, named};

/// Tasks that report their thread's name when they start, then block until
/// released (or until the sender is dropped).
struct Held {
    futures: Vec<Future<String>>,
    releases: Vec<Sender<()>>,
    started: Receiver<String>,
}

fn submit_held(executor: &ThreadPoolExecutor, count: usize) -> Held {
    let (started_tx, started) = mpsc::channel();
    let mut futures = Vec::new();
    let mut releases = Vec::new();
    for _ in 0..count {
        let (release, gate) = mpsc::channel::<()>();
        let started_tx = started_tx.clone();
        futures.push(executor.submit(
            move |()| {
                started_tx.send(current_name()).unwrap();
                let _ = gate.recv();
                current_name()
            },
            (),
        ));
        releases.push(release);
    }
    Held {
        futures,
        releases,
        started,
    }
}

#[test]
#[should_panic(expected = "max_workers must be at least 1")]
fn new_with_zero_workers_panics_with_a_clear_message() {
    let _ = ThreadPoolExecutor::new(0);
}

#[test]
fn building_with_zero_workers_is_an_invalid_argument() {
    let error = ThreadPoolExecutor::builder()
        .max_workers(0)
        .build()
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(message) if message.contains("max_workers")),
        "{error:?}"
    );
}

#[test]
fn a_prefix_with_a_nul_byte_is_an_invalid_argument() {
    let error = ThreadPoolExecutor::builder()
        .thread_name_prefix("bad\0name")
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
}

#[test]
fn the_default_size_is_pythons_min_32_cpus_plus_4() {
    let expected = 32.min(num_cpus::get() + 4);
    assert_eq!(ThreadPoolExecutor::default().max_workers(), expected);
    let built = ThreadPoolExecutor::builder().build().unwrap();
    assert_eq!(built.max_workers(), expected);
    assert_eq!(ThreadPoolExecutor::new(7).max_workers(), 7);
}

#[test]
fn threads_are_named_prefix_0_prefix_1_and_so_on() {
    let executor = named("unduh", 3);
    let held = submit_held(&executor, 3);
    let started: HashSet<String> = (0..3)
        .map(|_| held.started.recv_timeout(PATIENCE).unwrap())
        .collect();
    let expected: HashSet<String> = ["unduh_0", "unduh_1", "unduh_2"].map(String::from).into();
    assert_eq!(started, expected);
}

#[test]
fn the_default_names_count_pools_and_threads() {
    let executor = ThreadPoolExecutor::new(1);
    let name = executor
        .submit(|()| current_name(), ())
        .result_timeout(PATIENCE)
        .unwrap();
    let number = name
        .strip_prefix("ThreadPoolExecutor-")
        .and_then(|rest| rest.strip_suffix("_0"))
        .unwrap_or_else(|| panic!("unexpected default name {name:?}"));
    assert!(number.parse::<usize>().is_ok(), "{name:?}");
}

#[test]
fn threads_start_lazily() {
    let executor = named("lazy", 4);
    assert!(
        format!("{executor:?}").contains("threads: 0"),
        "no thread before the first task: {executor:?}"
    );
    let held = submit_held(&executor, 1);
    held.started.recv_timeout(PATIENCE).unwrap();
    assert!(
        format!("{executor:?}").contains("threads: 1"),
        "one task, one thread: {executor:?}"
    );
}

#[test]
fn an_idle_thread_is_reused_before_a_new_one_starts() {
    let executor = named("p", 4);
    for round in 0..20 {
        let name = executor
            .submit(|()| current_name(), ())
            .result_timeout(PATIENCE)
            .unwrap();
        assert_eq!(name, "p_0", "round {round}: the idle p_0 should serve");
    }
    assert!(
        format!("{executor:?}").contains("threads: 1"),
        "{executor:?}"
    );
}

#[test]
fn threads_never_exceed_max_workers() {
    let executor = named("capped", 3);
    let held = submit_held(&executor, 10);
    let mut started: Vec<String> = (0..3)
        .map(|_| held.started.recv_timeout(PATIENCE).unwrap())
        .collect();
    // Three threads are busy; no fourth may start for the seven queued tasks.
    if let Ok(fourth) = held.started.recv_timeout(GRACE) {
        panic!("a fourth task started, on {fourth}, with three held on a pool of three");
    }
    assert!(
        format!("{executor:?}").contains("threads: 3"),
        "{executor:?}"
    );
    for release in &held.releases {
        release.send(()).unwrap();
    }
    for future in &held.futures {
        future.result_timeout(PATIENCE).unwrap();
    }
    started.extend(held.started.try_iter());
    assert_eq!(started.len(), 10, "every task ran");
    let names: HashSet<_> = started.into_iter().collect();
    let expected: HashSet<String> = ["capped_0", "capped_1", "capped_2"]
        .map(String::from)
        .into();
    assert_eq!(names, expected);
    assert!(
        format!("{executor:?}").contains("threads: 3"),
        "{executor:?}"
    );
}

#[test]
fn tasks_on_separate_threads_overlap_in_time() {
    // Time is the behaviour here: three 300 ms waits on three threads take
    // about 300 ms, far from the 900 ms they would take one after another.
    let executor = named("overlap", 3);
    let start = Instant::now();
    let names: Vec<String> = executor
        .map(
            |()| {
                thread::sleep(Duration::from_millis(300));
                current_name()
            },
            [(), (), ()],
        )
        .collect::<Result<_, _>>()
        .unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_millis(800), "took {took:?}");
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), 3, "{names:?}");
}

thread_local! {
    /// How often the initializer ran on this thread.
    static INITIALIZED: Cell<usize> = const { Cell::new(0) };
}

#[test]
fn the_initializer_runs_once_in_each_worker_before_its_tasks() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let executor = ThreadPoolExecutor::builder()
        .max_workers(3)
        .thread_name_prefix("init")
        .initializer(move || {
            INITIALIZED.set(INITIALIZED.get() + 1);
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "no thread, no initializer yet"
    );
    // Hold three tasks, so three threads run; then run more on them.
    let held = submit_held(&executor, 3);
    for _ in 0..3 {
        held.started.recv_timeout(PATIENCE).unwrap();
    }
    let later: Vec<_> = (0..20)
        .map(|_| executor.submit(|()| (current_name(), INITIALIZED.get()), ()))
        .collect();
    for release in &held.releases {
        release.send(()).unwrap();
    }
    let mut names = HashSet::new();
    for future in &later {
        let (name, initialized) = future.result_timeout(PATIENCE).unwrap();
        assert_eq!(
            initialized, 1,
            "{name}: initializer ran once before the task"
        );
        names.insert(name);
    }
    assert!(names.len() <= 3);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "once per worker, three workers"
    );
}

#[test]
fn a_panicking_initializer_breaks_the_pool() {
    let (go, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let executor = ThreadPoolExecutor::builder()
        .max_workers(1)
        .initializer(move || {
            // Wait until the test has queued work, then fail.
            let _ = gate.lock().unwrap().recv();
            panic!("no database");
        })
        .build()
        .unwrap();
    let (ran, runs) = mpsc::channel();
    let pending: Vec<_> = (0..5)
        .map(|n| {
            let ran = ran.clone();
            executor.submit(move |n: u32| ran.send(n).unwrap(), n)
        })
        .collect();
    drop(ran);
    go.send(()).unwrap();
    for future in &pending {
        match future.result_timeout(PATIENCE) {
            Err(Error::BrokenExecutor { reason }) => {
                assert!(reason.contains("no database"), "{reason}");
            }
            other => panic!("expected BrokenExecutor, got {other:?}"),
        }
    }
    let later = executor.submit(|()| 1, ());
    assert!(later.done(), "refused at once");
    assert!(matches!(
        later.result(),
        Err(Error::BrokenExecutor { reason }) if reason.contains("no database")
    ));
    let mapped: Vec<_> = executor.map(|n: u8| n, [1, 2]).collect();
    assert!(
        mapped
            .iter()
            .all(|r| matches!(r, Err(Error::BrokenExecutor { .. }))),
        "{mapped:?}"
    );
    executor.shutdown();
    assert_eq!(
        runs.try_recv(),
        Err(TryRecvError::Disconnected),
        "no task ran on the broken pool"
    );
}

/// Recurses `depth` times with a 4 KiB frame each: about `depth * 4 KiB` of
/// stack, which `black_box` keeps the optimizer from folding away.
fn deep(depth: u32) -> u64 {
    let frame = black_box([depth as u8; 4096]);
    if depth == 0 {
        return 0;
    }
    deep(depth - 1) + u64::from(frame[black_box(100)])
}

#[test]
fn stack_size_is_applied() {
    // About 32 MiB of stack: far past Rust's 2 MiB default for new threads,
    // so this only succeeds if the pool applied the size asked for.
    let executor = ThreadPoolExecutor::builder()
        .max_workers(1)
        .stack_size(256 << 20)
        .build()
        .unwrap();
    let depth = 8 * 1024;
    let expected: u64 = (1..=depth).map(|d| u64::from(d as u8)).sum();
    assert_eq!(
        executor.submit(deep, depth).result_timeout(PATIENCE),
        Ok(expected)
    );
}

#[test]
fn a_done_callback_that_submits_and_waits_gets_another_thread() {
    // The worker running a done callback is busy, not idle: work the
    // callback submits must start another thread (the pool has room for
    // one), or the callback waits for work only its own thread could run.
    let executor = Arc::new(named("callback", 2));
    let held = submit_held(&executor, 1);
    held.started.recv_timeout(PATIENCE).unwrap();
    let pool = Arc::clone(&executor);
    let (answer, got_answer) = mpsc::channel();
    held.futures[0].add_done_callback(move |_| {
        let inner = pool.submit(|()| current_name(), ());
        answer.send(inner.result_timeout(PATIENCE)).unwrap();
    });
    held.releases[0].send(()).unwrap();
    assert_eq!(
        got_answer.recv_timeout(2 * PATIENCE).unwrap().as_deref(),
        Ok("callback_1")
    );
}
