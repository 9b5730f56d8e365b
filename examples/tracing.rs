//! Tracing across processes (cargo feature `tracing`): a task's own
//! `tracing` events, emitted in a worker process, show up in this
//! program's subscriber, under the span of the code that submitted it.
//!
//! Run it with `cargo run --example tracing --features tracing`. Each task
//! gets a span named `task`, a child of the caller's current span
//! (`batch` here), whose fields say how many inputs its message carried,
//! the bytes sent and received, how long it waited in the queue and ran,
//! and which worker process ran it; the task's events are replayed in it,
//! at their own level, with their worker-side target and spans as fields.
//! The subscriber prints each span's fields when it closes.

use concurrent_futures::{Error, ProcessPoolExecutor};
use tracing::{info, info_span, warn};
use tracing_subscriber::fmt::format::FmtSpan;

/// Runs in a worker process, which has no subscriber of its own.
fn sum_of_squares(n: u64) -> u128 {
    info!(n, "summing squares in process {}", std::process::id());
    let sum = (0..n).map(|i| u128::from(i) * u128::from(i)).sum();
    if n > 1_500 {
        warn!(n, "a long one");
    }
    sum
}

fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .without_time()
        .with_ansi(false)
        .with_span_events(FmtSpan::CLOSE)
        .init();
    info!("caller is process {}", std::process::id());

    let executor = ProcessPoolExecutor::new(2);
    let batch = info_span!("batch", id = 7);
    let _entered = batch.enter();
    for sum in executor.map(sum_of_squares, [1_000, 2_000]) {
        info!("sum: {}", sum?);
    }
    Ok(())
}
