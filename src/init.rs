//! Layer: the crate's entry, above the transports. May use each transport's
//! serving side; nothing uses it but the transports, which ask
//! [`init_called`]. [`init`]: where a run of the program learns whether it
//! was started to serve tasks, for any transport.

use std::sync::atomic::{AtomicBool, Ordering};

static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// Turns this run of the program into a worker, if it was started as one;
/// otherwise returns at once. Make it the first line of `main`.
///
/// This is the Rust form of Python's `if __name__ == "__main__":` guard. A
/// [`ProcessPoolExecutor`](crate::ProcessPoolExecutor) starts its workers
/// by running your program again; in such a run `init()` serves tasks and
/// exits the process when the pool is done with it, so the rest of `main`
/// never runs there. The MPI executor's worker ranks (feature `mpi`) serve
/// from here too. In your own run it only notes that it was called: a
/// pool refuses to start workers otherwise, with
/// [`Error::InitMissing`](crate::Error::InitMissing), instead of running
/// `main` again and again.
///
/// Tests need a `main` of their own for this: a test target with
/// `harness = false` whose `main` calls `init()` first.
///
/// ```
/// fn main() {
///     concurrent_futures::init();
///     // ... the program, which may use a ProcessPoolExecutor
/// }
/// ```
// The example is about `main` itself. (A top-level `main();` would silence
// this lint but make rustdoc warn that the doctest's main is not run.)
#[allow(clippy::needless_doctest_main)]
pub fn init() {
    // ORDERING: only this thread's later pool creation reads it, or threads
    // started after it, which synchronise with this one.
    INIT_CALLED.store(true, Ordering::Relaxed);
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    crate::process::child::serve_if_child();
    #[cfg(all(feature = "mpi", target_os = "linux"))]
    crate::mpi::rank::serve_if_rank();
}

/// Whether [`init`] was called in this process.
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub(crate) fn init_called() -> bool {
    INIT_CALLED.load(Ordering::Relaxed)
}
