//! Memory of `map` over 10 million inputs stays flat: not a timing, a check.
//!
//! The inputs come from a counting iterator, so the check sees how far `map`
//! has pulled ahead of what it has yielded; that must never exceed the
//! look-ahead ([`LOOK_AHEAD_PER_WORKER`] times the workers times the chunk
//! size by default, [`MAX_AUTO_CHUNKSIZE`] for the automatic size). The
//! process's peak RSS (`VmHWM` in `/proc/self/status`) is read before and
//! after: it must not grow with the input. For scale, the same is read around
//! an eager batch of futures (the `submit`-everything-first pattern), which
//! does grow with the input.
//!
//! Run with `cargo bench --bench map_memory`; exits non-zero if a bound is
//! broken. `ITEMS` may be overridden by the first argument that is a number.

mod common;

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Instant;

use concurrent_futures::{LOOK_AHEAD_PER_WORKER, MAX_AUTO_CHUNKSIZE, ThreadPoolExecutor};

const WORKERS: usize = 2;
const ITEMS: u64 = 10_000_000;
/// Futures in the eager comparison; kept small, the per-future cost scales.
const EAGER: u64 = 200_000;

/// A `/proc/self/status` field in KiB (0 where there is no procfs).
fn status_kib(field: &str) -> u64 {
    common::status_kib(field).unwrap_or(0)
}

/// Runs `map` over `items` inputs, in chunks of `chunksize` (`None`: the
/// automatic size), and returns the most inputs ever pulled from the
/// iterator but not yet yielded as results.
fn max_pulled_ahead(executor: &ThreadPoolExecutor, items: u64, chunksize: Option<usize>) -> u64 {
    let pulled = Rc::new(Cell::new(0u64));
    let counter = Rc::clone(&pulled);
    let inputs = (0..items).inspect(move |_| counter.set(counter.get() + 1));
    let results = executor.map(|x: u64| black_box(x), inputs);
    let results = match chunksize {
        Some(chunksize) => results.chunksize(chunksize),
        None => results,
    };
    let (mut yielded, mut max_ahead, mut total) = (0u64, 0u64, 0u64);
    for result in results {
        total += result.expect("identity never fails");
        yielded += 1;
        max_ahead = max_ahead.max(pulled.get() - yielded + 1);
    }
    assert_eq!(yielded, items, "every input yields one result");
    assert_eq!(
        total,
        items * (items - 1) / 2,
        "results in order and complete"
    );
    max_ahead
}

fn main() {
    let items = std::env::args()
        .skip(1)
        .find_map(|arg| arg.replace('_', "").parse().ok())
        .unwrap_or(ITEMS);
    let executor = ThreadPoolExecutor::new(WORKERS);
    let mut broken = false;
    println!("map memory: {items} identity items, {WORKERS} workers");
    for chunksize in [None, Some(1), Some(64)] {
        let bound =
            (LOOK_AHEAD_PER_WORKER * WORKERS * chunksize.unwrap_or(MAX_AUTO_CHUNKSIZE)) as u64;
        // Warm the pool and the allocator first, over a few full look-aheads,
        // so the reading is what grows with the input, not the look-ahead.
        max_pulled_ahead(&executor, (4 * bound).max(10_000), chunksize);
        let (rss0, hwm0) = (status_kib("VmRSS"), status_kib("VmHWM"));
        let start = Instant::now();
        let ahead = max_pulled_ahead(&executor, items, chunksize);
        let secs = start.elapsed().as_secs_f64();
        let (rss1, hwm1) = (status_kib("VmRSS"), status_kib("VmHWM"));
        let chunksize = chunksize.map_or("auto".to_owned(), |size| size.to_string());
        let ok = ahead <= bound && hwm1.saturating_sub(hwm0) < 4 * 1024;
        broken |= !ok;
        println!(
            "map_memory chunksize={chunksize}: max pulled ahead {ahead} (look-ahead {bound}); \
             VmHWM {hwm0} -> {hwm1} KiB (+{} KiB); VmRSS {rss0} -> {rss1} KiB; \
             {secs:.1} s = {:.3} us/item; {}",
            hwm1.saturating_sub(hwm0),
            secs * 1e6 / items as f64,
            if ok { "flat" } else { "NOT FLAT" },
        );
    }
    // For scale: what holding every future at once costs.
    let hwm0 = status_kib("VmHWM");
    let futures: Vec<_> = (0..EAGER).map(|i| executor.submit(|x: u64| x, i)).collect();
    for future in &futures {
        black_box(future.result().expect("identity never fails"));
    }
    let hwm1 = status_kib("VmHWM");
    drop(futures);
    let per_future = hwm1.saturating_sub(hwm0) as f64 * 1024.0 / EAGER as f64;
    println!(
        "map_memory eager: {EAGER} futures held at once raise VmHWM by {} KiB \
         = ~{per_future:.0} B/future, ~{:.0} MiB for {items} items",
        hwm1.saturating_sub(hwm0),
        per_future * items as f64 / (1024.0 * 1024.0),
    );
    if broken {
        eprintln!("map_memory: a bound was broken");
        std::process::exit(1);
    }
}
