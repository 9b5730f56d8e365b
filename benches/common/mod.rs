//! What the benchmarks share: a task of a chosen CPU cost, from rounds of a
//! 64-bit mix the optimizer cannot drop; the tiny tasks (`ident`, `pid`);
//! the skew rows' sleeping task and inputs; a median; and a look at this
//! process's memory in `/proc/self/status`.

// Each bench binary uses part of this module.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

/// `rounds` rounds of splitmix64's finalizer over `x`: CPU work whose cost
/// grows with `rounds`, and a result that depends on every round.
pub fn mix(mut x: u64, rounds: u32) -> u64 {
    for _ in 0..rounds {
        x ^= x >> 30;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
    }
    x
}

/// This machine's time for one round of [`mix`], in nanoseconds, measured
/// over a few million rounds (the fastest of three tries, so a busy machine
/// overstates it less).
pub fn round_nanos() -> f64 {
    const ROUNDS: u32 = 4_000_000;
    (0..3)
        .map(|_| {
            let start = Instant::now();
            black_box(mix(black_box(1), ROUNDS));
            start.elapsed().as_secs_f64() * 1e9 / f64::from(ROUNDS)
        })
        .fold(f64::INFINITY, f64::min)
}

/// How many rounds of [`mix`] take about `duration`, one round taking
/// `round_nanos`.
pub fn rounds_for(duration: Duration, round_nanos: f64) -> u32 {
    ((duration.as_secs_f64() * 1e9 / round_nanos).round() as u32).max(1)
}

/// The tiny task: the identity, opaque to the optimizer.
pub fn ident(x: u64) -> u64 {
    black_box(x)
}

/// The task that says where it ran: its process's id.
pub fn pid(_: u64) -> u32 {
    std::process::id()
}

/// The median of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A `/proc/self/status` field in KiB (`VmRSS`, `RssShmem`...), or `None`
/// where there is no procfs or no such field.
pub fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// How long a slow input of the skew rows takes.
pub const SLOW_MILLIS: u64 = 400;

/// The skew rows' task: sleeps `millis` (0: a quick input), like I/O, and
/// returns it.
pub fn sleep_ms(millis: u64) -> u64 {
    if millis > 0 {
        std::thread::sleep(Duration::from_millis(millis));
    }
    millis
}

/// `total` inputs of [`sleep_ms`], all quick but `slow` of [`SLOW_MILLIS`]
/// from index `at`.
pub fn skewed_inputs(total: usize, slow: usize, at: usize) -> Vec<u64> {
    (0..total)
        .map(|i| match (at..at + slow).contains(&i) {
            true => SLOW_MILLIS,
            false => 0,
        })
        .collect()
}
