//! The process pool's behaviour, one file per area, in one test binary:
//! results and `map` (`basics`), panics, serialization, bad input, what a
//! task returns, raises or leaves behind (`adversarial`), the
//! initializer, `max_tasks_per_child`, cancel and the per-task timeout,
//! shutdown.
//!
//! `harness = false` (see Cargo.toml): workers are fresh runs of this
//! binary, so `main` calls `concurrent_futures::init()` first, then runs
//! the cases one at a time (see `common/process_harness.rs`), each named
//! `file::case`, so that `cargo test --test process shutdown::` selects a
//! file.

// Runs on Linux (natively, and on the portable Unix path that macOS takes):
// its checks read /proc, and the process pool is not built on Windows yet.
// Elsewhere this binary is empty; `no_main` only until these tests use the
// default harness, where `#![cfg]` alone would do.
#![cfg_attr(not(target_os = "linux"), no_main)]
#![cfg(target_os = "linux")]

#[path = "../common/process_fixtures.rs"]
mod fixtures;
#[path = "../common/process_harness.rs"]
mod harness;

mod adversarial;
mod bad_input;
mod basics;
mod cancel;
mod initializer;
mod max_tasks_per_child;
mod panics;
mod serialization;
mod shutdown;

fn main() {
    harness::quiet_expected_panics(); // before init(), so workers have it too
    concurrent_futures::init(); // in a worker it never returns
    adversarial::helper_mode();
    bad_input::helper_mode();
    harness::run(&harness::by_file(&[
        ("adversarial", adversarial::CASES),
        ("bad_input", bad_input::CASES),
        ("basics", basics::CASES),
        ("cancel", cancel::CASES),
        ("initializer", initializer::CASES),
        ("max_tasks_per_child", max_tasks_per_child::CASES),
        ("panics", panics::CASES),
        ("serialization", serialization::CASES),
        ("shutdown", shutdown::CASES),
    ]));
}
