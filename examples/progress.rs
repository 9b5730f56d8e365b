//! A live progress bar over 100 tasks of different lengths: the Rust form of
//! Python's `tqdm` + `as_completed` pattern.
//!
//! In Python:
//!
//! ```python
//! with ThreadPoolExecutor() as executor:
//!     future_to_n = {executor.submit(kerja, ms): n for n, ms in enumerate(durasi, 1)}
//!     for future in tqdm(as_completed(future_to_n), total=len(future_to_n)):
//!         ms = future.result()
//!         n = future_to_n[future]
//! ```
//!
//! Here `indicatif` plays `tqdm`: `.progress()` wraps an iterator of known
//! length, as `as_completed` is (`total=` is not needed), and the bar moves
//! each time a task finishes, whichever it is. Python's
//! dict from each future to its task number is a list of `(number, future)`
//! pairs here: `as_completed` hands each pair back whole, so the number
//! comes with the future that just finished. Run
//! it with `cargo run --example progress` in a terminal: the bar is drawn on
//! stderr only when that is a terminal. Piped (as in CI), indicatif hides
//! the bar, and the summary line on stdout is the whole output.

use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, ThreadPoolExecutor, as_completed};
use indicatif::{ProgressIterator, ProgressStyle};

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
    // {executor.submit(kerja, ms): n for n, ms in enumerate(durasi, 1)}
    let future_to_n: Vec<_> = (1..)
        .zip(durasi(TUGAS))
        .map(|(n, ms)| (n, executor.submit(kerja, ms)))
        .collect();

    // `tqdm(as_completed(future_to_n), total=len(future_to_n))`: the bar's
    // length comes from `as_completed`, which knows how many are left.
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} tugas [{elapsed_precise}]")
        .expect("the template is valid");
    let mut total_ms = 0;
    let mut last = (0, 0);
    for (n, future) in as_completed(&future_to_n).progress().with_style(style) {
        let ms = future.result()?;
        total_ms += ms;
        last = (*n, ms); // which task this was: future_to_n[future]
    }

    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{TUGAS} tugas selesai dalam {elapsed:.2} detik ({:.2} detik kerja, {:.1}x lebih cepat dengan {} thread); terakhir: tugas {} ({} ms)",
        total_ms as f64 / 1000.0,
        total_ms as f64 / 1000.0 / elapsed,
        executor.max_workers(),
        last.0,
        last.1,
    );
    Ok(())
}
