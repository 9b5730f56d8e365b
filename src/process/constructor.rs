//! Layer: process. May use: `process::worker_side`. The crate's
//! constructor: how a process pool's child starts serving before `main`
//! ([`BEFORE_MAIN`]), and whether a child of this program will serve
//! ([`can_serve`], which the pool asks before it starts one). The
//! crate's [`init`](crate::init) comes here too, through this file's
//! [`init`].
//!
//! # Serving before `main`
//!
//! A process pool's child is a fresh run of the program. If it reached
//! `main`, a program would have to call [`init`](crate::init) first, and a test binary,
//! a doctest, a bench or a library that does not own `main` could not. So
//! the child's side is entered from a constructor: [`BEFORE_MAIN`], a
//! function pointer in the platform's table of functions that run before
//! `main` (`.init_array` on ELF systems such as Linux, `__mod_init_func` on
//! macOS, `.CRT$XCU` on Windows). It looks at one environment variable and,
//! in a run that the child's checks prove to be a worker (the variable
//! names its parent *and* standard input is that parent's private channel),
//! serves until the pool is done and exits the process. Neither the
//! program's `main` nor libtest's ever runs there, so a worker runs no test
//! and prints nothing of its own. Every other run pays one environment look
//! up and goes on to `main`.
//!
//! ## What this relies on
//!
//! std documents its use before `main` as best effort, not guaranteed; so
//! here is what a worker uses and what it does without, checked by the
//! process-pool tests on each platform CI runs.
//!
//! - **The loader is done:** on Linux (glibc) the program's constructors run
//!   from `__libc_start_main`, on Windows from the C runtime's
//!   `mainCRTStartup`, not under the loader's lock, so tasks may start
//!   threads and load libraries. (Checked for Windows under Wine: a thread
//!   spawned and joined, `catch_unwind`, the environment and `print!` all
//!   work from a `.CRT$XCU` entry of a `windows-gnu` program.) On macOS dyld
//!   runs it; CI cannot run macOS programs, so a task there that loads a
//!   library while dyld initialises the program is unchecked.
//!
//! - **Initialised before `main`:** the C runtime and the loader are done
//!   with this executable's libraries (constructors run after those of the
//!   libraries it links); std's allocator, environment, files, sockets,
//!   threads, thread-locals, `catch_unwind` and panic hooks need no set-up
//!   of std's own, and `std::env::args` is filled on Linux (glibc, by
//!   std's own earlier constructor), macOS and Windows.
//! - **Not initialised, because std does it in `main`'s prologue
//!   (`lang_start`):**
//!   - SIGPIPE is not yet ignored: the child ignores it when it proves
//!     itself a worker, as `lang_start` would, so a task writing to a
//!     closed pipe gets an error, not a signal.
//!   - std's stack-overflow handler is not installed: a task that overflows
//!     its stack kills its worker with SIGSEGV (Windows: status
//!     `0xC00000FD`, or, as seen under Wine, `0xC0000409` when std aborts
//!     as the exception leaves the worker's thread), which its future
//!     reports as [`Error::WorkerDied`](crate::Error::WorkerDied), without
//!     std's "has overflowed its stack" line.
//!   - The thread has no name: on Unix tasks run on the process's first
//!     thread (as they did from `init()` in `main`, with the same stack);
//!     on Windows, whose first thread has only the 1 or 2 MiB that the
//!     executable's header reserves, on a thread of 16 MiB that the first
//!     one waits for (`process/sys/windows.rs`). A panic message names it
//!     `<unnamed>` rather than `main`.
//!   - Constructors of other crates (`ctor`, `inventory`) in the program may
//!     or may not have run: their order is the link order. A task that
//!     needs one must not rely on it in a worker.
//! - **Panics:** every task, initializer and serde call runs under the
//!   crate's catch, as in any worker. A panic that escaped anyway would
//!   stop at the `extern "C"` boundary and abort the worker (a crash its
//!   pool reports), never unwind into the C runtime.
//! - **Output:** a task's `print!` goes to the worker's standard output,
//!   the pool's own terminal or pipe, line-buffered as in `main`; leaving
//!   through `std::process::exit` flushes it.
//! - **Linking:** a linker keeps an object file of a library only if
//!   something in it is used, and the constructor table alone is not a
//!   use. [`can_serve`], which the process pool calls before it starts a
//!   child, names [`BEFORE_MAIN`], so every program that can start a worker
//!   contains it.
//!
//! Where no constructor runs (a platform without such a table, a linker
//! that dropped it anyway), [`can_serve`] says so and the pool fails with
//! [`Error::InitMissing`](crate::Error::InitMissing) instead of starting
//! children that would run `main` again.

use std::sync::atomic::{AtomicBool, Ordering};

use super::worker_side;

/// Set by [`init`]: the program called [`crate::init`].
static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// Set by [`before_main`]: the constructor ran in this process.
static BEFORE_MAIN_RAN: AtomicBool = AtomicBool::new(false);

/// The constructor, in the platform's table of functions to run before
/// `main`. The C runtime passes ELF and Mach-O constructors `argc`, `argv`
/// and `envp`; a C function that takes no arguments may ignore them, as C
/// constructors do.
#[used]
#[cfg_attr(
    all(unix, not(target_vendor = "apple")),
    // SAFETY: `.init_array` holds pointers to `extern "C" fn()`s that the
    // C runtime calls once, before `main`: this static is one such pointer,
    // and `before_main` is sound to call then (see the module docs).
    unsafe(link_section = ".init_array")
)]
#[cfg_attr(
    target_vendor = "apple",
    // SAFETY: as for `.init_array`; dyld calls `__mod_init_func` entries.
    unsafe(link_section = "__DATA,__mod_init_func")
)]
#[cfg_attr(
    windows,
    // SAFETY: as for `.init_array`; the C runtime (MSVC's and mingw's)
    // calls the `.CRT$XCU` entries, between `__xc_a` and `__xc_z`, before
    // `main`, from `mainCRTStartup`, after the loader is done.
    unsafe(link_section = ".CRT$XCU")
)]
// Built where the process pool is (Linux, macOS, Windows).
static BEFORE_MAIN: extern "C" fn() = before_main;

/// Runs before `main` in every run of the program: serves if this run is a
/// process pool's child, which never returns; otherwise returns at once.
extern "C" fn before_main() {
    // ORDERING: read later by this thread, or by threads started after this
    // point, which synchronise with their start.
    BEFORE_MAIN_RAN.store(true, Ordering::Relaxed);
    worker_side::serve_if_child(true);
}

/// [`crate::init`]'s part for the process pool: records the call, and
/// serves if this run is a child (one on a platform where the constructor
/// did not run), which never returns.
pub(crate) fn init() {
    // ORDERING: only this thread's later pool creation reads it, or threads
    // started after it, which synchronise with this one.
    INIT_CALLED.store(true, Ordering::Relaxed);
    worker_side::serve_if_child(false);
}

/// Whether a run of this program, started as a process pool's child, will
/// serve: the constructor ran here (so it runs in the child, the same
/// executable), or [`init`](crate::init) was called.
pub(crate) fn can_serve() -> bool {
    // Naming the constructor's table entry keeps its object file in every
    // program that can start a worker (see "Linking" in the module docs).
    std::hint::black_box(&BEFORE_MAIN);
    // ORDERING: see `before_main`.
    BEFORE_MAIN_RAN.load(Ordering::Relaxed) || INIT_CALLED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This unit-test binary has libtest's `main`, which calls no `init()`:
    /// only the constructor can have set the flag, before `main`.
    #[test]
    fn the_constructor_ran_before_main() {
        assert!(BEFORE_MAIN_RAN.load(Ordering::Relaxed));
        assert!(can_serve());
    }
}
