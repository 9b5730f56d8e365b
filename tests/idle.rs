//! An idle pool spins no CPU: its workers block until there is work.
//!
//! One test in its own binary, so that no other test burns CPU in this
//! process while it measures. Time is the behaviour here: the process's CPU
//! time over a stretch of idle wall time.

#![cfg(unix)] // getrusage; Windows would need GetProcessTimes

use std::thread;
use std::time::Duration;

use concurrent_futures::ThreadPoolExecutor;

/// The CPU time, user and system, that every thread of this process has used.
fn cpu_time() -> Duration {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed value it is
    // given and reads nothing else; RUSAGE_SELF is a valid `who`.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

#[test]
fn an_idle_pool_spins_no_cpu() {
    let executor = ThreadPoolExecutor::new(4);
    // Start all four workers and let them go idle, as after a burst of work.
    let results: Vec<_> = executor
        .map(|n: u64| (0..n).sum::<u64>(), [1_000_000; 64])
        .collect();
    assert!(results.iter().all(Result::is_ok));

    let idle = Duration::from_millis(500);
    let before = cpu_time();
    thread::sleep(idle);
    let used = cpu_time() - before;
    // A pool whose four workers spun, or polled every millisecond, would
    // use hundreds of milliseconds here; blocked workers use next to none.
    assert!(
        used < idle / 20,
        "an idle pool of 4 workers used {used:?} of CPU in {idle:?}"
    );
}
