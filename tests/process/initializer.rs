//! The builder's `initializer` runs once in each worker process, before its
//! first task; one that panics breaks the pool with `Error::BrokenExecutor`,
//! whose reason carries the panic message, for that task and later ones.
//! `initializer_with` gives it an argument, encoded once at build, which a
//! replaced worker gets again.

use crate::fixtures;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, ProcessPoolExecutor};
use fixtures::{Scratch, assert_no_children, settle};

const COUNTED: &str = "counted-init";

/// Appends a line to `init-PID` in the test's directory, per run.
fn count_runs() {
    let dir = fixtures::parents_scratch(COUNTED);
    let path = dir.join(format!("init-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(file, "ran").unwrap();
}

/// Returns the worker's pid and whether its initializer ran before it. With
/// `meet_another`, also waits (at most 10 s) until two workers have started
/// such a task, to be sure that both workers are up.
fn checks_init((dir, meet_another): (String, bool)) -> (u32, bool) {
    let me = std::process::id();
    let initialized = Path::new(&dir).join(format!("init-{me}")).exists();
    if meet_another {
        std::fs::write(Path::new(&dir).join(format!("met-{me}")), "").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("met-"))
            .count()
            < 2
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    (me, initialized)
}

#[test]
fn the_initializer_runs_once_in_each_worker() {
    let _alone = fixtures::alone();
    let scratch = Scratch::for_workers(COUNTED);
    let executor = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(count_runs)
        .build()
        .unwrap();
    let meeting: Vec<_> = (0..2)
        .map(|_| executor.submit(checks_init, (scratch.arg(), true)))
        .collect();
    let mut workers: Vec<u32> = meeting.iter().map(|f| settle(f).unwrap().0).collect();
    workers.sort_unstable();
    workers.dedup();
    assert_eq!(workers.len(), 2, "two workers met");
    for _ in 0..20 {
        let (worker, initialized) =
            settle(&executor.submit(checks_init, (scratch.arg(), false))).unwrap();
        assert!(initialized, "the initializer ran before the task");
        assert!(workers.contains(&worker));
    }
    let expected: Vec<String> = workers.iter().map(|pid| format!("init-{pid}")).collect();
    assert_eq!(scratch.files("init-"), expected, "one file per worker");
    for name in &expected {
        let runs = std::fs::read_to_string(scratch.path(name)).unwrap();
        assert_eq!(runs, "ran\n", "{name}: once, not per task");
    }
}

fn fails_to_start() {
    fixtures::quiet_expected_panics();
    panic!("{}no database today", fixtures::EXPECTED);
}

#[test]
fn a_panicking_initializer_breaks_the_pool() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(fails_to_start)
        .build()
        .unwrap();
    let first = executor.submit(fixtures::pid, ());
    let Err(Error::BrokenExecutor { reason }) = settle(&first) else {
        panic!("expected BrokenExecutor");
    };
    assert!(reason.contains("no database today"), "{reason}");
    for n in 0..3 {
        let later = settle(&executor.submit(fixtures::pid, ()));
        assert!(
            matches!(&later, Err(Error::BrokenExecutor { reason }) if reason.contains("no database today")),
            "submission {n} after the break: {later:?}"
        );
    }
    let mapped: Vec<_> = executor.map(fixtures::pid, [(), ()]).collect();
    assert!(
        mapped
            .iter()
            .all(|r| matches!(r, Err(Error::BrokenExecutor { .. }))),
        "{mapped:?}"
    );
    assert_no_children();
}

const DIES_ONCE: &str = "dies-once";

/// The first worker to start dies in its initializer (as if killed while
/// starting); later workers start normally.
fn die_in_the_first_worker() {
    let first = fixtures::parents_scratch(DIES_ONCE).join("died");
    if OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(first)
        .is_ok()
    {
        std::process::abort();
    }
}

#[test]
fn a_worker_that_dies_while_starting_fails_only_its_task() {
    let _alone = fixtures::alone();
    let _scratch = Scratch::for_workers(DIES_ONCE);
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .initializer(die_in_the_first_worker)
        .build()
        .unwrap();
    let first = settle(&executor.submit(fixtures::pid, ()));
    assert!(
        matches!(&first, Err(Error::SpawnFailed { reason }) if reason.contains(fixtures::ABORTED)),
        "the task the dying worker was started for fails: {first:?}"
    );
    // Not broken: the next task gets a fresh worker.
    let second = settle(&executor.submit(fixtures::pid, ()));
    assert!(second.is_ok(), "the pool goes on: {second:?}");
    drop(executor);
    assert_no_children();
}

// `initializer_with`: Python's `initializer=f, initargs=(a,)`.

/// The table every task reads: Python's module-level `table = None`.
static TABLE: OnceLock<Vec<u64>> = OnceLock::new();

/// `def init(t): global table; table = t`.
fn init_table(table: Vec<u64>) {
    TABLE
        .set(table)
        .expect("a worker runs its initializer once");
}

/// `def lookup(i): return os.getpid(), table[i]`.
fn lookup(i: usize) -> (u32, u64) {
    (
        std::process::id(),
        TABLE.get().expect("set by init_table")[i],
    )
}

fn squares(len: u64) -> Vec<u64> {
    (0..len).map(|i| i * i).collect()
}

#[test]
fn initargs_set_a_global_that_every_task_reads() {
    let _alone = fixtures::alone();
    // ProcessPoolExecutor(2, initializer=init, initargs=(table,))
    let executor = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer_with(init_table, squares(10_000))
        .build()
        .unwrap();
    let indices: Vec<usize> = (0..10_000).step_by(37).collect();
    let found: Vec<(u32, u64)> = executor
        .map(lookup, indices.clone())
        .chunksize(4)
        .collect::<Result<_, _>>()
        .unwrap();
    let values: Vec<u64> = found.iter().map(|&(_, value)| value).collect();
    let expected: Vec<u64> = indices.iter().map(|&i| (i * i) as u64).collect();
    assert_eq!(values, expected);
    assert!(found.iter().all(|&(pid, _)| pid != std::process::id()));
}

fn exits(_: ()) -> u32 {
    std::process::exit(3)
}

#[test]
fn a_replaced_worker_runs_the_initializer_again_with_the_same_argument() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .initializer_with(init_table, squares(100))
        .build()
        .unwrap();
    let (first, value) = settle(&executor.submit(lookup, 7)).unwrap();
    assert_eq!(value, 49);
    let crashed = settle(&executor.submit(exits, ()));
    assert!(
        matches!(
            crashed,
            Err(Error::WorkerDied {
                exit_code: Some(3),
                ..
            })
        ),
        "{crashed:?}"
    );
    let (second, value) = settle(&executor.submit(lookup, 9)).unwrap();
    assert_ne!(second, first, "a new worker took the dead one's place");
    assert_eq!(value, 81, "and it ran the initializer with the same table");
}

/// An initializer that refuses a table too short for the tasks.
fn needs_a_long_table(table: Vec<u64>) {
    fixtures::quiet_expected_panics();
    assert!(
        table.len() >= 100,
        "{}a table of {} rows is too short",
        fixtures::EXPECTED,
        table.len()
    );
}

#[test]
fn a_panicking_initializer_with_an_argument_breaks_the_pool() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer_with(needs_a_long_table, squares(3))
        .build()
        .unwrap();
    for n in 0..3 {
        let outcome = settle(&executor.submit(fixtures::pid, ()));
        assert!(
            matches!(&outcome, Err(Error::BrokenExecutor { reason })
                if reason.contains("initializer failed") && reason.contains("a table of 3 rows is too short")),
            "submission {n}: {outcome:?}"
        );
    }
    drop(executor);
    assert_no_children();
}

/// A table whose `Serialize` fails, or panics, as it says.
#[derive(Debug, serde::Deserialize)]
enum Unsendable {
    Fails,
    Panics,
}

impl serde::Serialize for Unsendable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        match self {
            Unsendable::Fails => Err(serde::ser::Error::custom("this table stays home")),
            Unsendable::Panics => {
                fixtures::quiet_expected_panics();
                panic!("{}this table panics when sent", fixtures::EXPECTED)
            }
        }
    }
}

fn takes_unsendable(_: Unsendable) {}

#[test]
fn an_argument_that_does_not_serialize_fails_the_build() {
    // (postcard keeps no custom message: a failure says only that it failed)
    for (arg, says) in [
        (Unsendable::Fails, "Serde Serialization Error"),
        (Unsendable::Panics, "this table panics when sent"),
    ] {
        let built = ProcessPoolExecutor::builder()
            .initializer_with(takes_unsendable, arg)
            .build();
        assert!(
            matches!(&built, Err(Error::Serialization(m))
                if m.contains("initializer's argument could not be serialized") && m.contains(says)),
            "{built:?}"
        );
    }
}
