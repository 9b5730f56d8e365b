//! The process pool's behaviour, one file per area, in one test binary
//! under libtest's own harness: results and `map` (`basics`), the arguments a task sees, panics,
//! serialization, big payloads of any type, bad input, the initializer,
//! `max_tasks_per_child`, cancel and the per-task timeout, shutdown,
//! signals, and where queued work runs (`dispatch`). Plain `#[test]`s, named
//! `file::case`, so that `cargo test --test process shutdown::` selects a
//! file: the pools' workers are runs of this binary that serve before
//! libtest's `main`. Each test holds `fixtures::alone()`.

// Runs on Linux (natively, and on the portable Unix path that macOS takes)
// and on Windows (under Wine in CI): its checks read /proc, or a Toolhelp
// snapshot. macOS has neither; there this binary has no tests.
#![cfg(any(target_os = "linux", windows))]

#[path = "../common/process_fixtures.rs"]
mod fixtures;

mod arguments;
mod bad_input;
mod basics;
mod cancel;
mod dispatch;
mod initializer;
mod max_tasks_per_child;
mod panics;
mod payloads;
mod serialization;
mod shutdown;
#[cfg(unix)]
mod signals;
