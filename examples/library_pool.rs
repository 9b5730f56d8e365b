//! A program that never calls `concurrent_futures::init()` and uses a
//! library (`tests/fixtures/squares`) that starts a process pool inside one
//! of its functions. The library's workers are runs of this program; they
//! serve before `main`, so this `main` runs once, here.
//!
//! Run with `cargo run --example library_pool`.

fn main() -> Result<(), concurrent_futures::Error> {
    println!("main runs once, in process {}", std::process::id());
    for (square, worker) in squares::squares(&[1, 2, 3, 4])? {
        assert_ne!(worker, std::process::id());
        println!("{square} (computed by worker {worker})");
    }
    Ok(())
}
