//! From an async program: blocking downloads on a thread pool and a heavy
//! sum on a process pool, awaited from tokio without blocking it.
//!
//! A `Future` from either pool is a `std::future::Future`, so `.await` works
//! on it, and `as_completed(..).into_stream()` is a `Stream` of futures as
//! they finish. While the program waits, a tokio task keeps ticking on the
//! same single runtime thread: the waits never block it.
//!
//! Run it with `cargo run --release --example async_bridge`.

// Needs the process pool, which is built on Linux, macOS and Windows (see
// "Platforms" in src/lib.rs): elsewhere this binary is empty.
#![cfg_attr(not(any(target_os = "linux", target_os = "macos", windows)), no_main)]
#![cfg(any(target_os = "linux", target_os = "macos", windows))]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{ProcessPoolExecutor, ThreadPoolExecutor, as_completed};
use futures_util::StreamExt;

/// Pretends to download a page: the sleep stands for the network, a
/// blocking wait that would stall an async runtime if run on it.
fn unduh_halaman((url, ms): (&str, u64)) -> String {
    println!("Mulai mengunduh {url}...");
    thread::sleep(Duration::from_millis(ms)); // Simulasi delay jaringan
    format!("Selesai mengunduh {url}")
}

/// The sum of i*i for i in 0..n: CPU work for a worker process.
fn hitung_kuadrat_berat(n: u64) -> u128 {
    (0..n).map(|i| u128::from(i) * u128::from(i)).sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    runtime.block_on(utama())
}

async fn utama() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let threads = ThreadPoolExecutor::new(3);
    let processes = ProcessPoolExecutor::new(1);

    // A tokio task on the runtime's one thread: it only ticks if nothing
    // blocks that thread.
    let ticks = Arc::new(AtomicU32::new(0));
    let ticker = tokio::spawn({
        let ticks = Arc::clone(&ticks);
        async move {
            let mut interval = tokio::time::interval(Duration::from_millis(50));
            loop {
                interval.tick().await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let kuadrat = processes.submit(hitung_kuadrat_berat, 10_u64.pow(7));
    // Different delays, so that they finish in a known order: web3 first.
    let unduhan: Vec<_> = [("web1", 600), ("web2", 400), ("web3", 200)]
        .into_iter()
        .map(|job| threads.submit(unduh_halaman, job))
        .collect();

    // Each download as it finishes; a yielded future is done, so result()
    // returns at once.
    let ticks_before = ticks.load(Ordering::Relaxed);
    let mut selesai = as_completed(&unduhan).into_stream();
    while let Some(future) = selesai.next().await {
        println!("{}", future.result()?);
    }
    let ticked = ticks.load(Ordering::Relaxed) - ticks_before;

    // One future, awaited.
    println!("Hasil hitung_kuadrat_berat(10^7): {}", kuadrat.await?);

    ticker.abort();
    println!("Runtime tetap berdetak selama menunggu: {ticked} kali");
    // About 600 ms of waiting at one tick per 50 ms; a blocked runtime would
    // not have ticked at all.
    assert!(ticked >= 3, "the runtime was blocked while waiting");
    println!("Total waktu: {:.2} detik", start.elapsed().as_secs_f64());
    Ok(())
}
