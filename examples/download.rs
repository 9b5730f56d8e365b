//! The tutorial's first program: three downloads at once, on threads.
//!
//! In Python:
//!
//! ```python
//! def unduh_halaman(url):
//!     print(f"Mulai mengunduh {url}...")
//!     time.sleep(2)  # Simulasi delay jaringan
//!     print(f"Selesai mengunduh {url}")
//!
//! start = time.time()
//! with ThreadPoolExecutor(max_workers=3) as executor:
//!     futures = [executor.submit(unduh_halaman, url) for url in ["web1", "web2", "web3"]]
//!     for future in futures:
//!         future.result()
//! print(f"Total waktu: {time.time() - start:.2f} detik")
//! ```
//!
//! Each download only waits, so the three waits overlap: about 2 seconds in
//! all, not 6. Run it with `cargo run --example download`.

use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, ThreadPoolExecutor};

/// Pretends to download a page: the two-second sleep stands for the network.
fn unduh_halaman(url: &str) {
    println!("Mulai mengunduh {url}...");
    thread::sleep(Duration::from_secs(2)); // Simulasi delay jaringan
    println!("Selesai mengunduh {url}");
}

fn main() -> Result<(), Error> {
    let start = Instant::now();
    let urls = ["web1", "web2", "web3"];

    // `with ThreadPoolExecutor(max_workers=3) as executor:` is a block that
    // owns the pool; leaving it drops the pool, which waits for every task.
    {
        let executor = ThreadPoolExecutor::new(3);
        let futures: Vec<_> = urls
            .into_iter()
            .map(|url| executor.submit(unduh_halaman, url))
            .collect();

        // Tunggu semua thread selesai. `result()` is Python's
        // `future.result()`; a task that panicked comes back as
        // `Err(Error::Panicked)`, and `?` passes it on.
        for future in &futures {
            future.result()?;
        }
    }

    println!("Total waktu: {:.2} detik", start.elapsed().as_secs_f64());
    // Output sekitar 2 detik, bukan 6 detik!
    Ok(())
}
