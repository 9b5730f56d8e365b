//! The tutorial's multiprocessing program: two heavy sums, one per core.
//!
//! In Python:
//!
//! ```python
//! def hitung_kuadrat_berat(angka):
//!     print(f"Proses {angka} mulai...")
//!     hasil = sum(i * i for i in range(10**7))
//!     print(f"Proses {angka} selesai.")
//!     return hasil
//!
//! if __name__ == "__main__":
//!     p1 = multiprocessing.Process(target=hitung_kuadrat_berat, args=(1,))
//!     p2 = multiprocessing.Process(target=hitung_kuadrat_berat, args=(2,))
//!     ...
//! ```
//!
//! Run it with `cargo run --release --example square_sum [TASKS] [N]`
//! (defaults: 2 tasks, N = 10^7). Each task sums i*i for i in 0..N in its own
//! worker process; with two cores, two tasks take about as long as one.
//! Python's `if __name__ == "__main__":` has no line here: the workers serve
//! before `main`, so `main` runs once, in this process.

// Needs the process pool, which is built on Linux, macOS and Windows (see
// "Platforms" in src/lib.rs): elsewhere this binary is empty.
#![cfg_attr(not(any(target_os = "linux", target_os = "macos", windows)), no_main)]
#![cfg(any(target_os = "linux", target_os = "macos", windows))]

use std::hint::black_box;
use std::time::Instant;

use concurrent_futures::{Error, ProcessPoolExecutor};

/// A task's argument: which task it is, and how far to sum.
type Tugas = (u32, u64);

/// The sum of i*i for i in 0..n; too big for a u64, so u128 (Python's
/// integers grow as needed). `black_box` on each term keeps the compiler
/// from replacing the loop with the closed-form formula.
fn hitung_kuadrat_berat((angka, n): Tugas) -> u128 {
    println!("Proses {angka} mulai...");
    let hasil = (0..n)
        .map(|i| black_box(u128::from(i) * u128::from(i)))
        .sum();
    println!("Proses {angka} selesai.");
    hasil
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let tasks: u32 = parse(args.next(), 2)?;
    let n: u64 = parse(args.next(), 10_u64.pow(7))?;

    let start = Instant::now();
    let executor = ProcessPoolExecutor::new(tasks.max(1) as usize);
    let inputs = (1..=tasks).map(|angka| (angka, n));
    for (angka, hasil) in (1..).zip(executor.map(hitung_kuadrat_berat, inputs)) {
        println!("Hasil proses {angka}: {}", hasil?);
    }
    drop(executor);
    println!("Total waktu: {:.2} detik", start.elapsed().as_secs_f64());
    Ok(())
}

/// Parses an optional argument, or gives `default`.
fn parse<T: std::str::FromStr>(arg: Option<String>, default: T) -> Result<T, Error> {
    match arg {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            Error::InvalidArgument(format!(
                "expected a number, got {text:?}: square_sum [TASKS] [N]"
            ))
        }),
    }
}
