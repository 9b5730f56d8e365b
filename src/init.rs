//! Layer: entry. May use: `mpi` and `process::constructor` (each
//! transport's serving side). [`init`]: where a run of the program learns
//! whether it was started to serve tasks, explicitly. A process pool's
//! child learns it on its own, before `main`
//! (`src/process/constructor.rs`); an MPI executor's ranks learn it here.

/// Turns this run of the program into a worker, if it was started as one;
/// otherwise returns at once. A process pool needs no call to it; the MPI
/// executor's ranks serve from here.
///
/// This is the explicit form of Python's `if __name__ == "__main__":`
/// guard. A worker of a [`ProcessPoolExecutor`](crate::ProcessPoolExecutor)
/// is a fresh run of your program that starts serving before `main` (the
/// top of `src/process/constructor.rs` says what it relies on), so plain programs,
/// `#[test]`s, doctests, benches and libraries need nothing. Calling
/// `init()` there is harmless: in your own run it returns at once.
///
/// Code before `init()` in `main` runs only in your own run: no process
/// pool worker ever reaches `main`, so a worker's own set-up (a panic hook,
/// logging) goes in the pool's
/// [`initializer`](crate::ProcessPoolBuilder::initializer). Under
/// `mpiexec` every rank runs it, as every rank runs `main` up to `init()`.
///
/// With the cargo feature `mpi`, `init()` must be the first line of `main`:
/// an MPI worker rank serves from here and exits the process when its
/// executor is done with it; an executor built without it fails with
/// [`Error::InitMissing`](crate::Error::InitMissing). The same holds for a
/// process pool on a platform where nothing runs before `main`.
///
/// ```
/// fn main() {
///     concurrent_futures::init(); // optional unless you use the MPI executor
///     // ... the program, which may use a ProcessPoolExecutor
/// }
/// ```
// The example is about `main` itself. (A top-level `main();` would silence
// this lint but make rustdoc warn that the doctest's main is not run.)
#[allow(clippy::needless_doctest_main)]
pub fn init() {
    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    crate::process::constructor::init();
    #[cfg(all(feature = "mpi", target_os = "linux"))]
    crate::mpi::serve_if_rank();
}
