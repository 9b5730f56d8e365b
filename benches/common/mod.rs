//! What the `map` benchmarks of both pools share: a task of a chosen CPU
//! cost, from rounds of a 64-bit mix the optimizer cannot drop.

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
