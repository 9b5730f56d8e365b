//! Per-task overhead of `ThreadPoolExecutor` next to its peers, all with the
//! same worker count (2, the cores of the reference machine and what
//! `shared/peers/overhead_python.py` uses on it).
//!
//! Groups (criterion IDs are `group/function`):
//!
//! - `submit_result`: submit a batch of [`BATCH`] identity tasks, then take
//!   every result. One iteration is one batch; the throughput is set, so
//!   criterion also reports elements/s. Peers: rayon `spawn` and threadpool
//!   `execute`, each with a channel per task (the same contract as a
//!   `Future`: one handle per task, results in any order of waiting) and with
//!   one shared channel (cheaper, results unordered).
//! - `round_trip`: submit one task, wait for its result, repeat. One
//!   iteration is one round trip.
//! - `map`: `map` over [`BATCH`] identity items, default settings, with
//!   `chunksize`, and with a longer look-ahead (`buffer_size`). The rayon `par_iter` row is context only: it is not lazy,
//!   not bounded and has no per-item error, so it is not the same contract.
//! - `map_million`: the default `map` over [`MILLION`] items, collected,
//!   beside rayon's `par_iter().map().collect()`, for a ~50 ns task (rounds
//!   of [`common::mix`]) and for the identity.
//! - `map_duration`: the default `map` beside fixed chunk sizes, for tasks
//!   of 10 ns, 1 us, 100 us and 10 ms ([`DURATIONS`]); each row's id says
//!   the task's duration and the chunk size (`default` for none).
//!
//! `benches/compare.sh` runs this, the memory check (`benches/map_memory.rs`)
//! and the Python peer, and prints one table of medians and ratios.

mod common;

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use common::ident;
use concurrent_futures::ThreadPoolExecutor;
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use crossbeam_channel::{bounded, unbounded};
use rayon::prelude::*;

/// Worker threads in every pool measured here.
const WORKERS: usize = 2;
/// Tasks per iteration of the batch benchmarks (Python's script uses 100k too).
const BATCH: u64 = 100_000;

/// Items of the `map_million` rows.
const MILLION: u64 = 1_000_000;

/// The `map_duration` cases: a task's duration, its label, how many items
/// (so that a run is short) and the fixed chunk sizes it is compared with.
const DURATIONS: [(Duration, &str, u64, &[usize]); 4] = [
    (
        Duration::from_nanos(10),
        "10ns",
        1_000_000,
        &[64, 512, 4096, 32768],
    ),
    (
        Duration::from_micros(1),
        "1us",
        100_000,
        &[1, 16, 128, 1024],
    ),
    (Duration::from_micros(100), "100us", 2_000, &[1, 4, 16]),
    (Duration::from_millis(10), "10ms", 40, &[1, 2]),
];

/// This machine's time for one round of [`common::mix`], measured once.
fn round_nanos() -> f64 {
    static ROUND: OnceLock<f64> = OnceLock::new();
    *ROUND.get_or_init(|| {
        let round = common::round_nanos();
        println!("map tasks: one round of mix takes {round:.2} ns here");
        round
    })
}

/// A task that takes about `duration`, as rounds of [`common::mix`].
fn task_of(duration: Duration) -> impl Fn(u64) -> u64 + Copy + Send + Sync + 'static {
    let rounds = common::rounds_for(duration, round_nanos());
    move |x| common::mix(x, rounds)
}

/// The peers that start a closure and hand nothing back: rayon's `spawn`
/// and threadpool's `execute`, so that one row serves both (generic, so
/// each pool's own call is measured, with nothing in between).
trait Spawn {
    fn start(&self, task: impl FnOnce() + Send + 'static);
}

impl Spawn for rayon::ThreadPool {
    fn start(&self, task: impl FnOnce() + Send + 'static) {
        self.spawn(task);
    }
}

impl Spawn for threadpool::ThreadPool {
    fn start(&self, task: impl FnOnce() + Send + 'static) {
        self.execute(task);
    }
}

fn rayon_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(WORKERS)
        .build()
        .expect("a rayon pool")
}

fn submit_result(c: &mut Criterion) {
    let mut group = c.benchmark_group("submit_result");
    group.throughput(Throughput::Elements(BATCH));
    group.sampling_mode(SamplingMode::Flat);

    let executor = ThreadPoolExecutor::new(WORKERS);
    group.bench_function("ours", |b| {
        b.iter(|| {
            let futures: Vec<_> = (0..BATCH).map(|i| executor.submit(ident, i)).collect();
            for future in futures {
                black_box(future.result().expect("identity never fails"));
            }
        });
    });
    drop(executor);

    let pool = rayon_pool();
    peer_submit_result(&mut group, "rayon_spawn", &pool);
    drop(pool);

    let pool = threadpool::ThreadPool::new(WORKERS);
    peer_submit_result(&mut group, "threadpool_execute", &pool);
    pool.join();
    group.finish();
}

/// The rows of `submit_result` for a peer: `BATCH` tasks started on
/// `pool`, each sending its result back on a channel of its own
/// (`{name}_channel_per_task`) or on one channel for all
/// (`{name}_shared_channel`), then every result received.
fn peer_submit_result(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, pool: &impl Spawn) {
    group.bench_function(format!("{name}_channel_per_task"), |b| {
        b.iter(|| {
            let receivers: Vec<_> = (0..BATCH)
                .map(|i| {
                    let (tx, rx) = bounded(1);
                    pool.start(move || {
                        let _ = tx.send(ident(i));
                    });
                    rx
                })
                .collect();
            for rx in receivers {
                black_box(rx.recv().expect("the task sends"));
            }
        });
    });
    group.bench_function(format!("{name}_shared_channel"), |b| {
        b.iter(|| {
            let (tx, rx) = unbounded();
            for i in 0..BATCH {
                let tx = tx.clone();
                pool.start(move || {
                    let _ = tx.send(ident(i));
                });
            }
            for _ in 0..BATCH {
                black_box(rx.recv().expect("the task sends"));
            }
        });
    });
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");

    let executor = ThreadPoolExecutor::new(WORKERS);
    let mut i = 0u64;
    group.bench_function("ours", |b| {
        b.iter(|| {
            i += 1;
            executor
                .submit(ident, i)
                .result()
                .expect("identity never fails")
        });
    });
    drop(executor);

    let pool = rayon_pool();
    peer_round_trip(&mut group, "rayon_spawn_channel", &pool, &mut i);
    drop(pool);

    let pool = threadpool::ThreadPool::new(WORKERS);
    peer_round_trip(&mut group, "threadpool_execute_channel", &pool, &mut i);
    pool.join();
    group.finish();
}

/// The `round_trip` row `name` for a peer: one task started on `pool`,
/// its result received on a channel of its own.
fn peer_round_trip(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    pool: &impl Spawn,
    i: &mut u64,
) {
    group.bench_function(name, |b| {
        b.iter(|| {
            *i += 1;
            let x = *i;
            let (tx, rx) = bounded(1);
            pool.start(move || {
                let _ = tx.send(ident(x));
            });
            rx.recv().expect("the task sends")
        });
    });
}

fn map(c: &mut Criterion) {
    let mut group = c.benchmark_group("map");
    group.throughput(Throughput::Elements(BATCH));
    group.sampling_mode(SamplingMode::Flat);

    let executor = ThreadPoolExecutor::new(WORKERS);
    for chunksize in [1, 64, 1024] {
        let name = if chunksize == 1 {
            "ours_default".to_owned()
        } else {
            format!("ours_chunksize_{chunksize}")
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let results = executor.map(ident, 0..BATCH);
                // The default row uses the default, not an explicit 1.
                let results = if chunksize == 1 {
                    results
                } else {
                    results.chunksize(chunksize)
                };
                let mut total = 0u64;
                for result in results {
                    total += result.expect("identity never fails");
                }
                black_box(total)
            });
        });
    }
    // The default look-ahead is 2 x workers = 4 inputs; a longer one lets
    // the caller submit ahead instead of waiting on every other result.
    group.bench_function("ours_buffer_size_32", |b| {
        b.iter(|| {
            let mut total = 0u64;
            for result in executor.map(ident, 0..BATCH).buffer_size(32) {
                total += result.expect("identity never fails");
            }
            black_box(total)
        });
    });
    // The same with the input on the map's own thread: what a stalling
    // input's safety costs on tiny tasks.
    group.bench_function("ours_buffer_size_32_pull_on_thread", |b| {
        b.iter(|| {
            let mut total = 0u64;
            let results = executor.map(ident, 0..BATCH).buffer_size(32);
            for result in results.pull_on_thread() {
                total += result.expect("identity never fails");
            }
            black_box(total)
        });
    });
    drop(executor);

    let pool = rayon_pool();
    group.bench_function("rayon_par_iter_collect_context", |b| {
        b.iter(|| {
            let all: Vec<u64> = pool.install(|| (0..BATCH).into_par_iter().map(ident).collect());
            black_box(all)
        });
    });
    group.finish();
}

/// Runs the default `map` of `task` over `items` inputs, or with
/// `chunksize`, and collects the results.
fn collect_map(
    executor: &ThreadPoolExecutor,
    task: impl Fn(u64) -> u64 + Send + Sync + 'static,
    items: u64,
    chunksize: Option<usize>,
) -> Vec<u64> {
    let results = executor.map(task, 0..items);
    let results = match chunksize {
        Some(chunksize) => results.chunksize(chunksize),
        None => results,
    };
    results
        .collect::<Result<_, _>>()
        .expect("the tasks never fail")
}

fn map_million(c: &mut Criterion) {
    let mut group = c.benchmark_group("map_million");
    group.throughput(Throughput::Elements(MILLION));
    group.sampling_mode(SamplingMode::Flat);
    let hash = task_of(Duration::from_nanos(50));
    let executor = ThreadPoolExecutor::new(WORKERS);
    let pool = rayon_pool();
    million_rows(&mut group, (&executor, &pool), "hash50", hash);
    million_rows(&mut group, (&executor, &pool), "identity", ident);
    group.finish();
}

/// The `map_million` rows of `task` (named `what`): our default `map`, and
/// rayon's `par_iter` on its own pool, each collecting every result.
fn million_rows(
    group: &mut BenchmarkGroup<'_, WallTime>,
    (executor, pool): (&ThreadPoolExecutor, &rayon::ThreadPool),
    what: &str,
    task: impl Fn(u64) -> u64 + Copy + Send + Sync + 'static,
) {
    group.bench_function(format!("ours_default_{what}"), |b| {
        b.iter(|| black_box(collect_map(executor, task, MILLION, None)));
    });
    group.bench_function(format!("rayon_{what}"), |b| {
        b.iter(|| {
            let all: Vec<u64> = pool.install(|| (0..MILLION).into_par_iter().map(task).collect());
            black_box(all)
        });
    });
}

fn map_duration(c: &mut Criterion) {
    let mut group = c.benchmark_group("map_duration");
    group.sampling_mode(SamplingMode::Flat);
    let executor = ThreadPoolExecutor::new(WORKERS);
    for (duration, label, items, chunksizes) in DURATIONS {
        group.throughput(Throughput::Elements(items));
        let task = task_of(duration);
        let sizes = std::iter::once(None).chain(chunksizes.iter().copied().map(Some));
        for chunksize in sizes {
            let name = match chunksize {
                None => format!("{label}_default"),
                Some(chunksize) => format!("{label}_chunksize_{chunksize}"),
            };
            group.bench_function(name, |b| {
                b.iter(|| black_box(collect_map(&executor, task, items, chunksize)));
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots();
    targets = submit_result, round_trip, map, map_million, map_duration
}
criterion_main!(benches);
