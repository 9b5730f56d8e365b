//! `Shared`: a value put once and read by many tasks. Written once against
//! the `Executor` trait and run on the thread pool and the process pool
//! (tests/mpi.rs runs it on MPI ranks): in `submit`, `map` and `starmap`,
//! alone, in tuples and in structs. On the process pool: the value crosses
//! to each worker once however many tasks use it (counted in the worker:
//! its decodings), a replaced worker gets it again, and (Unix) plain data
//! is one piece of shared memory mapped by every process, unmapped
//! everywhere once the caller's last handle is gone (checked on Linux).

#[path = "common/shared_forms.rs"]
mod forms;

use std::sync::atomic::Ordering;

use concurrent_futures::{Executor, ProcessPoolExecutor, Shared, ThreadPoolExecutor};
use forms::{Counted, DECODED, every_form, look};
use serde::{Deserialize, Serialize, Serializer};

#[test]
fn every_form_on_the_thread_pool() {
    every_form(&ThreadPoolExecutor::new(2));
}

#[test]
fn every_form_on_the_process_pool() {
    every_form(&ProcessPoolExecutor::new(2));
}

/// The thread pool's handle is an `Arc`: the task reads the caller's value.
#[test]
fn the_thread_pool_reads_the_callers_value() {
    fn address(table: Shared<Vec<u64>>) -> usize {
        table.as_ptr() as usize
    }
    let table = Shared::new(vec![1_u64, 2, 3]);
    let executor = ThreadPoolExecutor::new(1);
    let seen = Executor::submit(&executor, address, table.clone()).result();
    assert_eq!(seen, Ok(table.as_ptr() as usize));
}

const BIG: usize = 4 << 20;

#[test]
fn a_value_crosses_to_each_worker_once() {
    let value = Shared::new(Counted((0..BIG).map(|n| n as u8).collect()));
    let executor = ProcessPoolExecutor::new(2);
    let inputs = (0..200).map(|n| (value.clone(), n * 1000));
    let seen: Vec<_> = executor
        .map(look, inputs)
        .collect::<Result<_, _>>()
        .expect("every task ran");
    for (n, &(_, decoded, byte)) in seen.iter().enumerate() {
        assert_eq!(byte, (n * 1000) as u8);
        assert_eq!(decoded, 1, "decoded once in each worker");
    }
    assert_eq!(
        DECODED.load(Ordering::SeqCst),
        0,
        "the caller decodes nothing"
    );
}

/// With one task per worker, every task has a fresh worker, which must be
/// put the value again.
#[test]
fn a_replaced_worker_gets_it_again() {
    let value = Shared::new(Counted(vec![7; 1000]));
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let seen: Vec<_> = executor
        .map(look, (0..6).map(|n| (value.clone(), n)))
        .collect::<Result<_, _>>()
        .expect("every task ran");
    let pids: std::collections::BTreeSet<_> = seen.iter().map(|s| s.0).collect();
    assert_eq!(pids.len(), 3, "three workers, two tasks each: {seen:?}");
    assert!(seen.iter().all(|s| s.1 == 1 && s.2 == 7), "{seen:?}");
}

/// A value that holds handles takes their values along, to every worker
/// it goes to (here each task has a fresh worker).
#[test]
fn a_handle_inside_a_shared_value_goes_along() {
    fn inner_sum(outer: Shared<(String, Shared<[u32]>)>) -> (String, u32) {
        (outer.0.clone(), outer.1.iter().sum())
    }
    let inner = Shared::from_vec(vec![1_u32, 2, 3, 4]);
    let outer = Shared::new((String::from("outer"), inner));
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    for _ in 0..2 {
        let got = executor.submit(inner_sum, outer.clone()).result();
        assert_eq!(got, Ok((String::from("outer"), 10)));
    }
}

/// A value put in a worker that is busy with a call whose answer fills
/// the channel back: the value waits for the answer rather than fill the
/// channel to a worker that is not reading it (both would wait for ever).
#[test]
fn a_value_waits_for_a_busy_worker() {
    fn big_answer(n: u32) -> Vec<u32> {
        vec![n; 1 << 20]
    }
    fn first(value: Shared<Vec<u32>>) -> u32 {
        value[0]
    }
    let executor = ProcessPoolExecutor::new(1);
    // Quick answers open the window of calls sent ahead.
    executor.map(|n: u32| n, 0..1000).for_each(drop);
    for round in 0..5 {
        let answer = executor.submit(big_answer, round);
        let value = Shared::new(vec![round; 1 << 20]);
        let used = executor.submit(first, value);
        let patience = std::time::Duration::from_secs(30);
        assert_eq!(used.result_timeout(patience), Ok(round));
        assert_eq!(
            answer.result_timeout(patience).map(|v| v.len()),
            Ok(1 << 20)
        );
    }
}

/// A value made in a worker cannot come back: the caller cannot find it.
#[test]
fn a_handle_made_in_a_worker_cannot_be_returned() {
    fn make(n: u32) -> Shared<u32> {
        Shared::new(n)
    }
    fn give_back(value: Shared<String>) -> Shared<String> {
        value
    }
    let executor = ProcessPoolExecutor::new(1);
    let error = executor.submit(make, 3).result().unwrap_err().to_string();
    assert!(error.contains("no shared value"), "{error}");
    let value = Shared::new(String::from("round trip"));
    let back = executor.submit(give_back, value.clone()).result().unwrap();
    assert_eq!(*back, "round trip");
    assert_eq!(back.id(), value.id());
}

/// A value that cannot be serialized fails the task that uses it, at
/// `submit`, and only that one.
#[test]
fn an_unserializable_value_fails_its_task() {
    #[derive(Debug, Deserialize)]
    struct Refuses;
    impl Serialize for Refuses {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("Refuses refuses"))
        }
    }
    fn touch(_: Shared<Refuses>) -> u8 {
        1
    }
    let executor = ProcessPoolExecutor::new(1);
    let error = executor.submit(touch, Shared::new(Refuses)).result();
    let error = error.unwrap_err().to_string();
    assert!(
        error.contains("the shared value could not be serialized"),
        "{error}"
    );
    assert_eq!(executor.submit(|n: u8| n + 1, 1).result(), Ok(2));
}

/// Plain data in shared memory (Linux: a `memfd`; on the portable Unix
/// path a POSIX shared memory object): mapped once in each process, and
/// unmapped everywhere once the caller's last handle is gone.
#[cfg(target_os = "linux")]
mod mapped {
    /// How the mapping is named in `/proc/PID/maps`.
    const NAMES: [&str; 2] = ["memfd:concurrent-futures-shared", "/dev/shm/cf-shared-"];

    fn is_shared(line: &str) -> bool {
        NAMES.iter().any(|name| line.contains(name))
    }

    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use concurrent_futures::{ProcessPoolExecutor, Shared};

    /// The inode of the shared memory mapped at `address` in this process.
    fn inode_at(address: usize) -> u64 {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        let line = maps
            .lines()
            .find(|line| line.starts_with(&format!("{address:x}-")))
            .expect("a mapping at the value's address");
        assert!(is_shared(line), "{line}");
        line.split_whitespace().nth(4).unwrap().parse().unwrap()
    }

    /// How many mappings of the shared memory with `inode` process `pid` has.
    fn mappings(pid: u32, inode: u64) -> usize {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
        maps.lines()
            .filter(|line| is_shared(line))
            .filter(|line| line.split_whitespace().nth(4) == Some(&inode.to_string()))
            .count()
    }

    /// Runs in a worker until both workers of the pool run one (each writes
    /// its pid into `dir`, and waits for the other's): so each worker of the
    /// pool has run one task. Reads the value if it is given one; returns its
    /// pid and how many mappings of the memory with `inode` it has.
    fn meet((dir, value, inode): (PathBuf, Option<Shared<[f64]>>, u64)) -> (u32, usize) {
        let pid = std::process::id();
        std::fs::write(dir.join(pid.to_string()), b"").expect("a file in the test's folder");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read_dir(&dir).expect("the folder").count() < 2 {
            assert!(Instant::now() < deadline, "the other worker never came");
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Some(value) = value {
            assert_eq!(value[1000], 1000.0);
        }
        (pid, mappings(pid, inode))
    }

    fn both_workers(
        executor: &ProcessPoolExecutor,
        dir: &Path,
        value: Option<&Shared<[f64]>>,
        inode: u64,
    ) -> Vec<(u32, usize)> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let futures: Vec<_> = (0..2)
            .map(|_| executor.submit(meet, (dir.to_owned(), value.cloned(), inode)))
            .collect();
        let seen: Vec<_> = futures.iter().map(|f| f.result().unwrap()).collect();
        assert_ne!(seen[0].0, seen[1].0, "one task on each worker");
        seen
    }

    #[test]
    fn dropping_the_last_handle_unmaps_it_everywhere() {
        let me = std::process::id();
        let dir = std::env::temp_dir().join(format!("concurrent-futures-shared-{me}"));
        let value = Shared::from_vec((0..1_000_000).map(f64::from).collect());
        let inode = inode_at(value.as_ptr() as usize);
        assert_eq!(mappings(me, inode), 1, "one mapping in the caller");
        let executor = ProcessPoolExecutor::new(2);
        for (pid, mappings) in both_workers(&executor, &dir, Some(&value), inode) {
            assert_eq!(mappings, 1, "worker {pid} maps it once");
        }
        drop(value);
        assert_eq!(mappings(me, inode), 0, "unmapped in the caller");
        for (pid, mappings) in both_workers(&executor, &dir, None, inode) {
            assert_eq!(mappings, 0, "worker {pid} still maps it");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
