//! What must not get past a worker process, in one test binary: a worker's
//! death fails only its task (`worker_death`), workers die with a killed
//! parent (`parent_death`), garbage on the channel is refused
//! (`corrupt_channel`), a stranger cannot become or feed a worker
//! (`security`), and descriptors stay flat (`fds`).
//!
//! `harness = false` (see Cargo.toml): workers are fresh runs of this
//! binary, so `main` calls `concurrent_futures::init()` first, then runs
//! the cases one at a time (see `common/process_harness.rs`), each named
//! `file::case`. Some cases start this binary again as a helper or a
//! probe; those runs take their turn right after `init()`.

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

mod corrupt_channel;
mod fds;
mod parent_death;
mod security;
mod worker_death;

fn main() {
    harness::quiet_expected_panics(); // before init(), so workers have it too
    concurrent_futures::init(); // in a worker it never returns
    security::probe_mode();
    parent_death::helper_mode();
    harness::run(&harness::by_file(&[
        ("corrupt_channel", corrupt_channel::CASES),
        ("fds", fds::CASES),
        ("parent_death", parent_death::CASES),
        ("security", security::CASES),
        ("worker_death", worker_death::CASES),
    ]));
}
