//! A process pool under criterion's own `criterion_main!`, with no `main`
//! of ours and no `concurrent_futures::init()`: the pool's workers are runs
//! of this bench binary that serve before `main`, so criterion never runs
//! in them. (`harness = false` in Cargo.toml is criterion's requirement, as
//! for every criterion bench.)
//!
//! - `process_no_setup/round_trip`: one tiny task on a warm pool of two,
//!   submitted and waited for; one iteration is one round trip.
//! - `process_no_setup/map_1000`: `map` over 1,000 items in chunks of 100.

// The process pool is built on Linux, macOS and Windows; elsewhere this
// bench is empty.
#![cfg_attr(not(any(target_os = "linux", target_os = "macos", windows)), no_main)]
#![cfg(any(target_os = "linux", target_os = "macos", windows))]

mod common;

use std::hint::black_box;

use common::{ident, pid};
use concurrent_futures::ProcessPoolExecutor;
use criterion::{Criterion, criterion_group, criterion_main};

fn process_no_setup(c: &mut Criterion) {
    let executor = ProcessPoolExecutor::new(2);
    let worker = executor.submit(pid, 0).result().expect("a worker answers");
    assert_ne!(
        worker,
        std::process::id(),
        "the task ran in the bench process"
    );
    let mut group = c.benchmark_group("process_no_setup");
    group.bench_function("round_trip", |b| {
        b.iter(|| {
            executor
                .submit(ident, black_box(7))
                .result()
                .expect("ident")
        });
    });
    group.bench_function("map_1000", |b| {
        b.iter(|| {
            let sum: u64 = executor
                .map(ident, 0..1000)
                .chunksize(100)
                .map(|r| r.expect("ident"))
                .sum();
            assert_eq!(sum, 499_500);
        });
    });
    group.finish();
}

criterion_group!(benches, process_no_setup);
criterion_main!(benches);
