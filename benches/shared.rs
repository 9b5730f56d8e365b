//! `Shared`: context put once and read by many tasks, on
//! `ProcessPoolExecutor` (issue 23). The per-task form and the peers
//! (`initializer` + `initargs`, Python) are `context.rs`'s rows; these sit
//! beside them.
//!
//! Group `process_shared` (criterion IDs are `group/function`), 2 workers:
//!
//! - `table_32mib_200_tasks_plain`: a 32 MiB table of `u64` made into a
//!   `Shared<[u64]>` (one copy into shared memory), then a `map` of 200
//!   small tasks that each read 8 entries of it (`context.rs`'s task);
//!   the handle dropped. Each
//!   iteration makes a new handle, so every iteration puts it in both
//!   workers again. Target: at most 50 ms.
//! - `table_32mib_200_tasks_plain_kept`: the same, with one handle made
//!   before the clock starts and kept: the tasks alone, the value already
//!   in both workers.
//! - `table_32mib_200_tasks_typed`: the same with a `Shared<Vec<u64>>`
//!   (serialized once, sent to each worker once, decoded there once).
//! - `table_32mib_200_tasks_threads`: the same `Shared<[u64]>` on a
//!   `ThreadPoolExecutor` of 2 threads, where it is an `Arc`.
//!
//! Then, outside criterion, one line each (compare.py reads them):
//!
//! - `shared 1GiB make: ... GiB/s`: `Shared::from_slice` of 1 GiB (the
//!   copy into shared memory), best of three; target at least 5 GiB/s;
//!   beside the same copy into fresh memory and into memory in use.
//! - `shared 1GiB pages: ...`: 1,000 tasks on 2 workers each read one
//!   4 KiB page of the 1 GiB value; each worker's growth of resident
//!   shared memory (`RssShmem` of `/proc/PID/status`) and of its own memory
//!   (`RssAnon`), beside the pages its tasks read. Target: the bytes
//!   copied (its own memory's growth) at most the pages read. The shared
//!   growth is the kernel's fault-around (16 pages mapped per page read,
//!   pages already in memory): mapped, not copied, and no new memory.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use concurrent_futures::{Executor, ProcessPoolExecutor, Shared, ThreadPoolExecutor};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

const TABLE: usize = 32 << 20;
const TASKS: usize = 200;

/// A small task: eight entries of the table, spread over it (the task of
/// `context.rs`'s rows).
fn lookup_in(table: &[u64], i: usize) -> u64 {
    (0..8)
        .map(|k| table[(i * 20_011 + k * 500_009) % table.len()])
        .sum()
}

fn lookup_plain((table, key): (Shared<[u64]>, usize)) -> u64 {
    lookup_in(&table, key)
}

fn lookup_typed((table, key): (Shared<Vec<u64>>, usize)) -> u64 {
    lookup_in(&table, key)
}

fn table() -> Vec<u64> {
    (0..(TABLE / 8) as u64).collect()
}

/// One round of the plain rows: a new handle, 200 tasks, the handle dropped.
fn plain_round(executor: &impl Executor, values: &[u64]) -> u64 {
    let table = Shared::from_slice(values);
    let sum = executor
        .map(lookup_plain, (0..TASKS).map(|key| (table.clone(), key)))
        .map(|r| r.expect("a task"))
        .sum();
    drop(table);
    sum
}

fn tables(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_shared");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    let values = table();
    let executor = ProcessPoolExecutor::new(2);
    // The workers start before the clock does.
    executor.map(|n: u32| n, 0..8).for_each(drop);
    group.bench_function("table_32mib_200_tasks_plain", |b| {
        b.iter(|| plain_round(&executor, &values));
    });
    // The same handle every time: once in both workers, each iteration
    // is the 200 tasks alone.
    let kept = Shared::from_slice(&values);
    group.bench_function("table_32mib_200_tasks_plain_kept", |b| {
        b.iter(|| {
            executor
                .map(lookup_plain, (0..TASKS).map(|key| (kept.clone(), key)))
                .map(|r| r.expect("a task"))
                .sum::<u64>()
        });
    });
    drop(kept);
    group.bench_function("table_32mib_200_tasks_typed", |b| {
        b.iter_custom(|iters| {
            let mut took = Duration::ZERO;
            for _ in 0..iters {
                let copy = values.clone(); // the caller's own value, not timed
                let start = Instant::now();
                let table = Shared::new(copy);
                let sum: u64 = executor
                    .map(lookup_typed, (0..TASKS).map(|key| (table.clone(), key)))
                    .map(|r| r.expect("a task"))
                    .sum();
                drop(table);
                took += start.elapsed();
                std::hint::black_box(sum);
            }
            took
        });
    });
    let threads = ThreadPoolExecutor::new(2);
    group.bench_function("table_32mib_200_tasks_threads", |b| {
        b.iter(|| plain_round(&threads, &values));
    });
    group.finish();
}

const GIB: usize = 1 << 30;
const PAGE: usize = 4096;

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    common::status_kib(field).expect(field)
}

/// Reads one byte of each of the `pages` 4 KiB pages from `first` on;
/// returns the worker's pid, its `RssShmem` and `RssAnon` in KiB.
fn touch((value, first, pages): (Shared<[u8]>, usize, usize)) -> (u32, u64, u64, u64) {
    let sum: u64 = (0..pages)
        .map(|p| u64::from(value[(first + p) * PAGE]))
        .sum();
    (
        std::process::id(),
        status_kib("RssShmem"),
        status_kib("RssAnon"),
        sum,
    )
}

/// The 1 GiB rows, printed (see the module docs).
fn gibibyte() {
    let bytes: Vec<u8> = (0..GIB).map(|i| (i / PAGE) as u8).collect();
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let value = Shared::from_slice(&bytes);
        best = best.min(start.elapsed());
        drop(value);
    }
    let rate = GIB as f64 / best.as_secs_f64() / f64::from(1 << 30);
    // The floor, in the same run: the same copy into fresh memory, and
    // into memory already in use (memcpy).
    let (mut fresh, mut reused) = (Duration::MAX, Duration::MAX);
    let mut target = vec![0_u8; GIB];
    for _ in 0..3 {
        let start = Instant::now();
        let copy = bytes.clone();
        fresh = fresh.min(start.elapsed());
        drop(std::hint::black_box(copy));
        let start = Instant::now();
        target.copy_from_slice(&bytes);
        reused = reused.min(start.elapsed());
        std::hint::black_box(&target);
    }
    drop(target);
    let gib_s = |took: Duration| GIB as f64 / took.as_secs_f64() / f64::from(1 << 30);
    println!(
        "shared 1GiB make: {rate:.2} GiB/s ({best:?}, best of 3; target 5 GiB/s); floor here: a copy \
         into fresh memory {:.2} GiB/s, into memory in use {:.2} GiB/s",
        gib_s(fresh),
        gib_s(reused)
    );
    let value = Shared::from_vec(bytes);
    let executor = ProcessPoolExecutor::new(2);
    // Each worker's resident memory before any task used the value.
    let base: HashMap<u32, (u64, u64)> = executor
        .map(
            |n: u32| {
                (
                    std::process::id(),
                    status_kib("RssShmem"),
                    status_kib("RssAnon"),
                    u64::from(n),
                )
            },
            0..64,
        )
        .map(|r| r.expect("a task"))
        .map(|(pid, shmem, anon, _)| (pid, (shmem, anon)))
        .collect();
    // 1,000 tasks, one page each, spread over the whole value.
    let stride = GIB / PAGE / 1000;
    let seen: Vec<_> = executor
        .map(touch, (0..1000).map(|t| (value.clone(), t * stride, 1)))
        .map(|r| r.expect("a task"))
        .collect();
    let mut per_worker: HashMap<u32, (usize, u64, u64)> = HashMap::new();
    for &(pid, shmem, anon, _) in &seen {
        let entry = per_worker.entry(pid).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(shmem);
        entry.2 = entry.2.max(anon);
    }
    let mut line = String::from("shared 1GiB pages:");
    for (pid, (tasks, shmem, anon)) in &per_worker {
        let (shmem0, anon0) = base.get(pid).copied().unwrap_or_default();
        line += &format!(
            " worker {pid}: {tasks} tasks read {} KiB, shared memory +{} KiB, own memory +{} KiB;",
            tasks * PAGE / 1024,
            shmem.saturating_sub(shmem0),
            anon.saturating_sub(anon0),
        );
    }
    println!(
        "{line} (target: bytes copied, the own memory's growth, at most the pages read; the \
         shared memory's growth is the kernel's fault-around, pages mapped, not copied)"
    );
}

fn all(c: &mut Criterion) {
    tables(c);
    gibibyte();
}

criterion_group!(benches, all);
criterion_main!(benches);
