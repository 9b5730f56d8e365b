//! The process pool's basics: a round trip through another process, `map`
//! in input order whatever the chunk size, `map_unordered` in completion
//! order, `starmap` over pairs, and the `Executor` trait, so that switching
//! from threads to processes is one identifier.

use crate::fixtures;

use std::thread;
use std::time::Duration;

use concurrent_futures::{
    AnyExecutor, Executor, LOOK_AHEAD_PER_WORKER, ProcessPoolExecutor, ThreadPoolExecutor,
};
use fixtures::{PATIENCE, Scratch, block_until_released, pid, settle};

fn describe(n: u64) -> (u64, String) {
    (n * n, format!("tugas {n}"))
}

#[test]
fn a_result_comes_back_from_another_process() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(2);
    assert_eq!(
        settle(&executor.submit(describe, 12)),
        Ok((144, "tugas 12".to_owned()))
    );
    let worker = settle(&executor.submit(pid, ())).unwrap();
    assert_ne!(worker, std::process::id(), "the task ran in this process");
    assert!(
        fixtures::children().contains(&worker),
        "the worker is our child"
    );
}

/// Sleeps less for later inputs, so they tend to finish first.
fn later_is_faster(n: u64) -> u64 {
    thread::sleep(Duration::from_millis(5 * (8 - n)));
    n
}

#[test]
fn map_yields_results_in_input_order() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(4);
    let results: Vec<_> = executor
        .map(later_is_faster, 0..8)
        .timeout(PATIENCE)
        .collect();
    assert_eq!(results, (0..8).map(Ok).collect::<Vec<_>>());
}

#[test]
fn results_do_not_depend_on_the_chunk_size() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(2);
    let expected: Vec<_> = (0..2000).map(|n| Ok(describe(n))).collect();
    for chunksize in [1, 7, 1000] {
        let results: Vec<_> = executor
            .map(describe, 0..2000)
            .chunksize(chunksize)
            .timeout(PATIENCE)
            .collect();
        assert!(
            results == expected,
            "chunksize {chunksize} changed the results"
        );
    }
}

/// Item 0 waits for the test's release file; the others return at once.
fn first_waits((dir, n): (String, u32)) -> u32 {
    if n == 0 {
        block_until_released(dir);
    }
    n
}

#[test]
fn map_unordered_does_not_wait_for_a_held_task() {
    let _alone = fixtures::alone();
    let scratch = Scratch::new("unordered");
    let executor = ProcessPoolExecutor::new(2);
    let inputs = (0..6).map(|n| (scratch.arg(), n));
    let mut results = executor
        .map_unordered(first_waits, inputs)
        .timeout(PATIENCE);
    // One worker holds item 0; the other runs the rest, in order.
    let rest: Vec<_> = results.by_ref().take(5).collect();
    assert_eq!(rest, (1..6).map(Ok).collect::<Vec<_>>());
    scratch.touch("release");
    assert_eq!(results.next(), Some(Ok(0)));
    assert_eq!(results.next(), None);
}

#[test]
fn quick_tasks_grow_the_default_chunks() {
    // The default `map` sizes its chunks from how long the workers take
    // (`map/sizing.rs`), which each manager reports per call. Untimed,
    // every chunk stayed one input.
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(2);
    let ahead = fixtures::pulled_ahead(&executor, 5_000);
    assert!(
        ahead > LOOK_AHEAD_PER_WORKER * 2,
        "{ahead} inputs pulled ahead: the chunks did not grow"
    );
}

fn harga(barang: String, jumlah: u32) -> (String, u32) {
    (format!("{jumlah} {barang}"), jumlah * 2500)
}

#[test]
fn starmap_spreads_pairs_over_two_arguments() {
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(2);
    let orders = || (1..=50).map(|n| (format!("kopi-{n}"), n));
    let expected: Vec<_> = orders().map(|(b, j)| Ok(harga(b, j))).collect();
    for chunksize in [1, 8] {
        let results: Vec<_> = executor
            .starmap(harga, orders())
            .chunksize(chunksize)
            .timeout(PATIENCE)
            .collect();
        assert!(results == expected, "chunksize {chunksize}");
    }
}

fn tugas(n: u32) -> (String, u32) {
    (format!("Tugas {n} selesai"), std::process::id())
}

fn tugas_ke(n: u32, dari: u32) -> (String, u32) {
    tugas(n * 100 + dari)
}

/// Code written once against the trait.
fn run_all(executor: &impl Executor) -> Vec<(String, u32)> {
    let results = executor.map(tugas, [1, 2, 3]).map(Result::unwrap).collect();
    let last = settle(&executor.submit(tugas, 4)).unwrap();
    let mut unordered: Vec<_> = executor
        .map_unordered(tugas, [5, 6])
        .map(Result::unwrap)
        .collect();
    unordered.sort();
    let spread = executor
        .starmap(tugas_ke, [(7, 1), (8, 2)])
        .map(Result::unwrap)
        .collect();
    [results, vec![last], unordered, spread].concat()
}

#[test]
fn generic_executor_code_runs_on_processes() {
    let _alone = fixtures::alone();
    let on_threads = run_all(&ThreadPoolExecutor::new(2));
    let on_processes = run_all(&ProcessPoolExecutor::new(2));
    let lines = |results: &[(String, u32)]| results.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    assert_eq!(lines(&on_threads), lines(&on_processes));
    let me = std::process::id();
    assert!(on_threads.iter().all(|(_, pid)| *pid == me));
    assert!(on_processes.iter().all(|(_, pid)| *pid != me));
}

/// Python's `executor_class = ProcessPoolExecutor if flag else ThreadPoolExecutor`.
fn chosen(processes: bool) -> AnyExecutor {
    if processes {
        ProcessPoolExecutor::new(2).into()
    } else {
        ThreadPoolExecutor::new(2).into()
    }
}

#[test]
fn a_pool_chosen_at_run_time_runs_tasks_where_it_says() {
    let _alone = fixtures::alone();
    let me = std::process::id();
    for processes in [false, true] {
        let executor = chosen(processes);
        let results = run_all(&executor);
        assert_eq!(results.len(), 8);
        assert!(
            results.iter().all(|(_, pid)| (*pid != me) == processes),
            "processes: {processes}, pids {results:?}"
        );
        executor.shutdown();
        assert_eq!(
            executor.submit(tugas, 1).result(),
            Err(concurrent_futures::Error::Shutdown),
            "shutdown reaches the pool inside"
        );
    }
}

fn same(text: String) -> String {
    text
}

#[test]
fn big_calls_in_flight_keep_flowing() {
    // Caught: with several calls in flight, a manager wrote more of them
    // than the channel holds while its child blocked writing answers that
    // nobody read: both waited for good. Quick calls of 64 KiB each (not
    // byte vectors, so they take the channel) let the manager put several
    // in flight at once.
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(1);
    let text = |n: usize| format!("{n}{}", "x".repeat(64 << 10));
    for round in 0..8 {
        let futures: Vec<_> = (0..64)
            .map(|n| executor.submit(same, text(round * 64 + n)))
            .collect();
        for (n, future) in futures.iter().enumerate() {
            assert_eq!(settle(future), Ok(text(round * 64 + n)));
        }
    }
}

/// Drops `bytes`, and says how many bytes this worker's allocator then
/// holds free for its next blocks (glibc's `fordblks`).
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(concurrent_futures_portable_unix)
))]
fn held_free_after_dropping(bytes: Vec<u8>) -> usize {
    drop(bytes);
    // SAFETY: mallinfo2(3) only reads the allocator's counters.
    unsafe { libc::mallinfo2() }.fordblks
}

#[test]
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(concurrent_futures_portable_unix)
))]
fn a_worker_keeps_a_big_arguments_memory_for_the_next_one() {
    // A 64 MiB argument comes through the worker's arena into a fresh
    // vector. glibc used to unmap such a block when the task dropped it,
    // so the next argument's vector was fresh memory again, every page
    // faulted in and zeroed before the copy. From the second call on, the
    // worker's allocator keeps it (`arena::keep_freed`).
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(1);
    let size = 64 << 20;
    let held: Vec<usize> = (0..3)
        .map(|_| settle(&executor.submit(held_free_after_dropping, vec![1; size])).unwrap())
        .collect();
    assert!(
        held[1] >= size && held[2] >= size,
        "bytes held free after each call: {held:?}"
    );
}

/// Reverses the bytes, keeping as many eighths of them as the first byte
/// says.
#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
fn reversed(mut bytes: Vec<u8>) -> Vec<u8> {
    let keep = bytes.len() / 8 * usize::from(bytes[0]);
    bytes.reverse();
    bytes.truncate(keep);
    bytes
}

#[test]
#[cfg(all(target_os = "linux", not(concurrent_futures_portable_unix)))]
fn a_big_result_comes_back_in_its_arguments_memory_when_it_fits() {
    // Fresh memory for a big result costs the caller a page fault and the
    // kernel's zeroing per page; the argument's vector, done with once
    // its bytes were sent, is copied into instead when the result fits it
    // snugly, at most an eighth smaller (`codec::plain_vector`). A result
    // smaller than that gets a vector of its own size.
    let _alone = fixtures::alone();
    let executor = ProcessPoolExecutor::new(1);
    let size = 4 << 20;
    for eighths in [8, 7, 4] {
        let argument = || {
            let mut bytes: Vec<u8> = (0..size).map(|n| (n % 251) as u8).collect();
            bytes[0] = eighths;
            bytes
        };
        let (bytes, expected) = (argument(), reversed(argument()));
        let memory = bytes.as_ptr();
        let got = settle(&executor.submit(reversed, bytes)).unwrap();
        assert!(
            got == expected,
            "the bytes of a result of {eighths} eighths"
        );
        if eighths >= 7 {
            assert_eq!(got.as_ptr(), memory, "{eighths} eighths reuse the argument");
        } else {
            assert_eq!(
                got.capacity(),
                got.len(),
                "{eighths} eighths get their own vector"
            );
        }
    }
}

fn tenfold(n: u32) -> u32 {
    n * 10
}

#[test]
fn pull_on_thread_lets_results_out_while_the_input_stalls() {
    // The same on the process pool as on threads (tests/map.rs): the map's
    // own thread pulls the input, so the results of the first inputs come
    // out while it is stalled. The map runs on a thread of the test's, so
    // that a map stuck in its input fails the test instead of hanging it.
    let _alone = fixtures::alone();
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let (yielded, results) = std::sync::mpsc::channel();
    let consumer = thread::spawn(move || {
        let executor = ProcessPoolExecutor::new(2);
        let inputs = (0..3_u32).chain(std::iter::once_with(move || {
            let _ = gate.recv();
            3
        }));
        for result in executor.map(tenfold, inputs).pull_on_thread().chunksize(1) {
            yielded.send(result).unwrap();
        }
    });
    for expected in [0, 10, 20] {
        assert_eq!(
            results.recv_timeout(PATIENCE),
            Ok(Ok(expected)),
            "a result while the input stalls"
        );
    }
    open.send(()).unwrap();
    assert_eq!(results.recv_timeout(PATIENCE), Ok(Ok(30)));
    consumer.join().unwrap();
    assert!(results.try_recv().is_err(), "the map ended");
}
