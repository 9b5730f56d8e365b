//! Uneven work on `ProcessPoolExecutor`: a few slow tasks among many quick
//! ones, where a pool that hands work to a worker before it is free makes
//! the slow ones queue behind each other while other workers idle. Each row
//! sits beside its ideal schedule (the slow work spread evenly over the
//! workers) and beside Python's `ProcessPoolExecutor` with its default
//! `chunksize=1` on the same inputs (`skew_python.py`, run by
//! `benches/compare.sh`). Slow tasks sleep, like I/O, so that 4 workers
//! overlap on 2 cores.
//!
//! Group `process_skew` (criterion IDs are `group/function`):
//!
//! - `slow_after_quick`: 4 workers; 2,000 quick tasks, then 8 tasks of
//!   400 ms, each `submit`ted; every result taken. Ideal: 8 × 400 ms / 4.
//! - `map_slow_{start,middle,end}`: 4 workers; the default `map` over
//!   40,008 inputs, 8 of them 400 ms at the start, in the middle or at the
//!   end, the rest quick. Ideal: the same 0.8 s.
//! - `long_then_short`: 2 workers; one 3 s task, then 100 tasks of 20 ms.
//!   Ideal: 3 s, with every short task done before the long one; a line
//!   `skew order: ...` says how many were.

// The process pool runs on Linux, macOS and Windows; this bench needs no
// peer crate, but compare.sh runs on Linux.
mod common;

use std::time::{Duration, Instant};

use common::{SLOW_MILLIS, skewed_inputs, sleep_ms};
use concurrent_futures::ProcessPoolExecutor;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

fn skew(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_skew");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(1));

    let four = ProcessPoolExecutor::new(4);
    group.bench_function("slow_after_quick", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let quick: Vec<_> = (0..2000).map(|_| four.submit(sleep_ms, 0)).collect();
                let slow: Vec<_> = (0..8).map(|_| four.submit(sleep_ms, SLOW_MILLIS)).collect();
                for future in quick.iter().chain(&slow) {
                    future.result().expect("a task");
                }
            }
            start.elapsed()
        });
    });
    let total = 40_008;
    for (name, at) in [("start", 0), ("middle", 20_000), ("end", total - 8)] {
        let inputs = skewed_inputs(total, 8, at);
        group.bench_function(format!("map_slow_{name}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let sum: u64 = four.map(sleep_ms, inputs.clone()).map(Result::unwrap).sum();
                    assert_eq!(sum, 8 * SLOW_MILLIS);
                }
                start.elapsed()
            });
        });
    }
    drop(four);

    let two = ProcessPoolExecutor::new(2);
    let mut short_first = Vec::new();
    group.bench_function("long_then_short", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let long = two.submit(sleep_ms, 3000);
                let short: Vec<_> = (0..100).map(|_| two.submit(sleep_ms, 20)).collect();
                let mut before = 0;
                for future in &short {
                    future.result().expect("a short task");
                    before += usize::from(!long.done());
                }
                short_first.push(before);
                long.result().expect("the long task");
            }
            start.elapsed()
        });
    });
    group.finish();
    if let Some(fewest) = short_first.iter().min() {
        println!(
            "skew order: at least {fewest} of 100 short tasks done before the long one, in each of {} runs",
            short_first.len()
        );
    }
}

criterion_group!(benches, skew);
criterion_main!(benches);
