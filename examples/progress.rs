//! A live progress bar over 100 tasks of different lengths: the Rust form of
//! Python's `tqdm` + `as_completed` pattern.
//!
//! In Python:
//!
//! ```python
//! with ThreadPoolExecutor() as executor:
//!     futures = [executor.submit(kerja, ms) for ms in durasi]
//!     for future in tqdm(as_completed(futures), total=len(futures)):
//!         future.result()
//! ```
//!
//! Here `indicatif` plays `tqdm`: `.progress_with(bar)` wraps any iterator,
//! and the bar moves each time a task finishes, whichever it is. Run it with
//! `cargo run --example progress`. (When stderr is not a terminal, as in CI,
//! indicatif hides the bar and only the summary line is printed.)

use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, ThreadPoolExecutor, as_completed};
use indicatif::{ProgressBar, ProgressIterator, ProgressStyle};

/// How many tasks to run.
const TUGAS: usize = 100;

/// A task that takes `ms` milliseconds and reports how long it took.
fn kerja(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    ms
}

/// `count` task lengths between 10 and 60 ms, the same on every run.
///
/// A tiny linear congruential generator stands in for
/// `random.seed(42); random.randint(10, 60)`, so no extra crate is needed.
fn durasi(count: usize) -> Vec<u64> {
    let mut state: u64 = 42;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            10 + (state >> 33) % 51
        })
        .collect()
}

fn main() -> Result<(), Error> {
    let start = Instant::now();

    // Python's `ThreadPoolExecutor()`: min(32, cpus + 4) threads.
    let executor = ThreadPoolExecutor::default();
    let futures: Vec<_> = durasi(TUGAS)
        .into_iter()
        .map(|ms| executor.submit(kerja, ms))
        .collect();

    // `tqdm(as_completed(futures), total=len(futures))`
    let bar = ProgressBar::new(futures.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tugas [{elapsed_precise}]")
            .expect("the template is valid"),
    );
    let mut total_ms = 0;
    for future in as_completed(&futures).progress_with(bar) {
        total_ms += future.result()?;
    }

    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{TUGAS} tugas selesai dalam {elapsed:.2} detik ({:.2} detik kerja, {:.1}x lebih cepat dengan {} thread)",
        total_ms as f64 / 1000.0,
        total_ms as f64 / 1000.0 / elapsed,
        executor.max_workers(),
    );
    Ok(())
}
