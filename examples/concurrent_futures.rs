//! The tutorial's `concurrent.futures` program: `map` over a pool of three.
//!
//! In Python:
//!
//! ```python
//! def tugas(n):
//!     time.sleep(1)
//!     return f"Tugas {n} selesai"
//!
//! start = time.time()
//! with ThreadPoolExecutor(max_workers=3) as executor:
//!     results = executor.map(tugas, [1, 2, 3])
//!     for result in results:
//!         print(result)
//! print(f"Waktu: {time.time() - start:.2f} detik")
//! ```
//!
//! The tutorial ends with "Ganti `ThreadPoolExecutor` dengan
//! `ProcessPoolExecutor` jika ingin beralih ke multiprocessing". Here the
//! work is written once, against the `Executor` trait, and `main` picks the
//! pool from the command line, as an `AnyExecutor`. Run it with `cargo run --example concurrent_futures`
//! for threads, or `cargo run --example concurrent_futures -- process` for
//! processes: the same lines, in about the same second.

use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{AnyExecutor, Error, Executor, ProcessPoolExecutor, ThreadPoolExecutor};

/// One second of "work", then a message.
fn tugas(n: u32) -> String {
    thread::sleep(Duration::from_secs(1));
    format!("Tugas {n} selesai")
}

/// The work, written once for any executor.
///
/// `Executor::map` takes a plain `fn` (not a capturing closure) with
/// serializable arguments and results, so a process pool can run it too.
/// Results come back in input order, each a `Result`.
fn jalankan(executor: &impl Executor) -> Result<(), Error> {
    for result in executor.map(tugas, [1, 2, 3]) {
        println!("{}", result?);
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let start = Instant::now();

    // `cargo run --example concurrent_futures -- thread` (the default).
    // Python's `pool = ProcessPoolExecutor if ... else ThreadPoolExecutor`:
    // the chosen pool is one value of `AnyExecutor`.
    let kind = std::env::args().nth(1).unwrap_or_else(|| "thread".into());
    let executor: AnyExecutor = match kind.as_str() {
        "thread" => ThreadPoolExecutor::new(3).into(),
        "process" => ProcessPoolExecutor::new(3).into(),
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown executor {other:?}: use `thread` or `process`"
            )));
        }
    };
    jalankan(&executor)?;
    // Dropping the pool waits for its tasks, like leaving Python's `with` block.
    drop(executor);

    println!("Waktu: {:.2} detik", start.elapsed().as_secs_f64());
    Ok(())
}
