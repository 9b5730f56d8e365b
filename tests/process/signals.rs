//! Signals and `terminate_workers`: it sends SIGTERM, and kills with
//! SIGKILL what is still there after its grace period (one second), so it
//! returns in bounded time whatever a task does with SIGTERM; and workers
//! start with default signal dispositions and nothing blocked, whatever
//! the program set, so a program that ignores SIGTERM does not make its
//! workers ignore it. Unix only: Windows has no signals (its
//! `terminate_workers` ends a Job object, which nothing can refuse).

use std::time::{Duration, Instant};

use concurrent_futures::ProcessPoolExecutor;

use crate::fixtures::{self, Scratch, assert_no_children, block_until_released, settle};

/// How long `terminate_workers` may take here: its one-second grace period,
/// with a wide margin, and far less than the blocking task's
/// `BLOCK_AT_MOST` (30 s), after which it would have returned anyway.
const BOUND: Duration = Duration::from_secs(8);

/// Ignores SIGTERM, then blocks as `block_until_released` does.
fn ignore_sigterm_and_block(dir: String) -> u32 {
    // SAFETY: SIG_IGN installs no handler, only a disposition, in this
    // worker process.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    block_until_released(dir)
}

#[test]
fn terminate_workers_kills_a_task_that_ignores_sigterm() {
    let _alone = fixtures::alone();
    let scratch = Scratch::new("ignores-sigterm");
    let executor = ProcessPoolExecutor::new(1);
    let running = executor.submit(ignore_sigterm_and_block, scratch.arg());
    scratch.wait_for_files("started-", 1);
    let start = Instant::now();
    executor.terminate_workers();
    let took = start.elapsed();
    assert!(took < BOUND, "terminate_workers took {took:?}");
    assert_eq!(settle(&running), Err(fixtures::killed_by_pool()));
    let start = Instant::now();
    drop(executor);
    assert!(
        start.elapsed() < BOUND,
        "the drop took {:?}",
        start.elapsed()
    );
    assert_no_children();
}

/// Whether SIGTERM and SIGINT have their default dispositions, and no
/// signal is blocked, in the worker.
fn signal_setup(_: ()) -> (bool, bool, bool) {
    let default = |signal| {
        // SAFETY: a zeroed `sigaction` is valid storage; the query (null
        // new action) changes nothing.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `action` is valid for writes.
        let queried = unsafe { libc::sigaction(signal, std::ptr::null(), &mut action) };
        queried == 0 && action.sa_sigaction == libc::SIG_DFL
    };
    // SAFETY: a zeroed `sigset_t` is valid storage for the mask to be
    // written into; a null new set changes nothing.
    let blocked = unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
        (1..32).any(|signal| libc::sigismember(&mask, signal) == 1)
    };
    (default(libc::SIGTERM), default(libc::SIGINT), !blocked)
}

/// While it lives, this process ignores SIGTERM and SIGINT and this thread
/// blocks SIGUSR1, as a program might; dropped, all is as before.
struct ProgramSignals;

impl ProgramSignals {
    fn set() -> Self {
        ProgramSignals::change(libc::SIG_IGN, libc::SIG_BLOCK);
        ProgramSignals
    }

    /// Gives SIGTERM and SIGINT the disposition `action`, and SIGUSR1 the
    /// mask change `how`, on this thread.
    fn change(action: libc::sighandler_t, how: libc::c_int) {
        // SAFETY: SIG_IGN and SIG_DFL install no handler; a zeroed
        // `sigset_t` is valid storage for sigemptyset, and the mask change
        // is this thread's.
        unsafe {
            libc::signal(libc::SIGTERM, action);
            libc::signal(libc::SIGINT, action);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::pthread_sigmask(how, &set, std::ptr::null_mut());
        }
    }
}

impl Drop for ProgramSignals {
    fn drop(&mut self) {
        ProgramSignals::change(libc::SIG_DFL, libc::SIG_UNBLOCK);
    }
}

#[test]
fn workers_start_with_default_signals_whatever_the_program_set() {
    let _alone = fixtures::alone();
    let scratch = Scratch::new("program-signals");
    let program = ProgramSignals::set();
    // Workers start on this thread's submits, with what it set.
    let executor = ProcessPoolExecutor::new(1);
    assert_eq!(
        settle(&executor.submit(signal_setup, ())),
        Ok((true, true, true))
    );
    let running = executor.submit(block_until_released, scratch.arg());
    scratch.wait_for_files("started-", 1);
    let start = Instant::now();
    executor.terminate_workers();
    let took = start.elapsed();
    drop(program);
    assert!(took < BOUND, "terminate_workers took {took:?}");
    // Ended by the SIGTERM itself, not by the kill after the grace period.
    assert_eq!(settle(&running), Err(fixtures::terminated_by_pool()));
    drop(executor);
    assert_no_children();
}
