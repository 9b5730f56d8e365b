//! What must not get past a worker process, in one test binary: a worker's
//! death fails only its task (`worker_death`), workers die with a killed
//! parent (`parent_death`), and so does whatever their tasks
//! started, however the program ends (`process_tree`), a task's terminal
//! I/O works as the program's (`terminal`), garbage on the channel is refused
//! (`corrupt_channel`), a stranger cannot become or feed a worker
//! (`security`), descriptors stay flat (`fds`), the limits only a
//! helper run can reach (`limits`), and what unusual tasks return, raise
//! or leave behind (`adversarial`, some of whose cases need helper runs).
//!
//! `harness = false` (see Cargo.toml): some cases start this binary again
//! as a helper (a parent to be killed, a process under a memory cap, a copy
//! to be replaced on disk) or a probe, and those runs take their turn as
//! `main` starts. The cases run one at a time (see
//! `common/harness.rs`), each named `file::case`. Workers need
//! nothing here: they serve before `main`.

// Runs on Linux (natively, and on the portable Unix path that macOS takes)
// and on Windows (under Wine in CI), whose checks read /proc or a Toolhelp
// snapshot. On Windows the files whose cases are about Unix alone are left
// out: `limits` (resource limits with setrlimit, a replaced executable on
// the portable path) and `corrupt_channel` (writes into the worker's
// socket, found in /proc); `adversarial` and `security` keep the cases that
// apply (see there). macOS has no /proc: there this binary is empty, and
// `harness = false` wants a `main`, so `no_main` stands in for it.
#![cfg_attr(not(any(target_os = "linux", windows)), no_main)]
#![cfg(any(target_os = "linux", windows))]

#[path = "../common/process_fixtures.rs"]
mod fixtures;
#[path = "../common/harness.rs"]
mod harness;

mod adversarial;
#[cfg(unix)]
mod corrupt_channel;
mod fds;
#[cfg(unix)]
mod limits;
mod parent_death;
mod process_tree;
mod security;
#[cfg(unix)]
mod terminal;
mod worker_death;

fn main() {
    security::probe_mode();
    adversarial::helper_mode();
    parent_death::helper_mode();
    process_tree::helper_mode();
    #[cfg(unix)]
    terminal::helper_mode();
    #[cfg(unix)]
    limits::helper_mode();
    harness::run(&harness::by_file(&[
        ("adversarial", adversarial::CASES),
        #[cfg(unix)]
        ("corrupt_channel", corrupt_channel::CASES),
        ("fds", fds::CASES),
        #[cfg(unix)]
        ("limits", limits::CASES),
        ("parent_death", parent_death::CASES),
        ("process_tree", process_tree::CASES),
        ("security", security::CASES),
        #[cfg(unix)]
        ("terminal", terminal::CASES),
        ("worker_death", worker_death::CASES),
    ]));
}
