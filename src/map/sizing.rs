//! Layer: core. May use: `future` (how long a spin is). The automatic
//! chunk size of `map`: chunks sized from how long the tasks measurably
//! take, as joblib's `batch_size='auto'` does, for [`Map`](super::Map),
//! which asks it for each chunk's size; the pools time the chunks they run
//! and report to its [`Meter`].
//!
//! A chunk should run long enough that its fixed cost (the queue, the
//! future, the wake-up; for a process, the pipe) is small beside its work,
//! and short enough that the work stays spread over the workers to the end.
//! The sizing aims every chunk at the pool's *target* duration:
//!
//! ```text
//!            a chunk reports               the inputs left fit in
//!            its time                      TAIL_CHUNKS chunks per worker
//!  Probing ────────────────▶ Timed ───────────────────────────────▶ Tail
//!  one input per chunk       target / time per input,               inputs left / (TAIL_CHUNKS
//!                            at most GROWTH times the largest       × workers), rounded up: the
//!                            chunk measured, at most MAX_AUTO_CHUNKSIZE      last ones go one per chunk
//!                            (re-measured with every report)
//! ```
//!
//! Growth is bounded by what was measured: one fast first input cannot send
//! a thousand slow ones into a single chunk. Shrinking is not: slow reports
//! make the next chunks small at once. Whether inputs are left is known from
//! an exact `size_hint` or once the input has run out (the map then holds
//! the rest); an input of unknown length enters `Tail` at its end. (If that
//! end falls exactly on a full chunk, the map learns it one chunk late, and
//! that last chunk, of about the target's duration, goes out whole.)

use std::fmt;
// std's, not crate::sync's: the pools' threads share the meter, outside
// the future's model-checked state machine.
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::future::SPIN_FOR;

/// The most inputs in an automatic chunk. Past a few thousand, a chunk's
/// fixed cost is already small beside its inputs' own, and larger chunks
/// only cost memory: the look-ahead holds up to
/// [`LOOK_AHEAD_PER_WORKER`](super::LOOK_AHEAD_PER_WORKER) chunks per worker.
pub const MAX_AUTO_CHUNKSIZE: usize = 4096;

/// How much larger than the largest chunk measured so far the next may be.
const GROWTH: usize = 16;

/// Chunks per worker that the inputs left are cut into at the end.
const TAIL_CHUNKS: usize = 2;

/// Where a map's chunks report how long they ran. A pool records each
/// chunk it runs, before the chunk's future completes, so a report is there
/// by the time the map sees the results.
#[derive(Debug, Default)]
pub(crate) struct Meter(Mutex<Reports>);

/// The reports not yet taken by the sizing.
#[derive(Debug, Default, Clone, Copy)]
struct Reports {
    inputs: usize,
    nanos: u128,
    /// The most inputs in one reported chunk.
    largest: usize,
}

impl Meter {
    /// Records that a chunk of `inputs` ran for `took`.
    pub(crate) fn record(&self, inputs: usize, took: Duration) {
        // Nothing that can panic runs under this lock.
        let mut reports = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        reports.inputs += inputs;
        reports.nanos += took.as_nanos();
        reports.largest = reports.largest.max(inputs);
    }

    /// The reports since the last call, if there are any.
    fn take(&self) -> Option<Reports> {
        let mut reports = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (reports.inputs > 0).then(|| std::mem::take(&mut *reports))
    }
}

/// Where the sizing is in its lifecycle; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// No chunk has reported yet: one input per chunk.
    Probing,
    /// Sized from the last reports: `nanos_per_input`, and `largest`, the
    /// most inputs in one measured chunk.
    Timed {
        nanos_per_input: f64,
        largest: usize,
    },
    /// Few inputs are left: each chunk takes a share of them. The time per
    /// input is still measured, for [`Sizing::runs_long`].
    Tail { nanos_per_input: f64 },
}

/// The automatic chunk size of one map.
pub(crate) struct Sizing {
    phase: Phase,
    meter: Arc<Meter>,
    target: Duration,
    workers: usize,
}

impl Sizing {
    /// Sizing for a pool of `workers` whose chunks should each run for
    /// about `target`.
    pub(crate) fn new(workers: usize, target: Duration) -> Self {
        Self {
            phase: Phase::Probing,
            meter: Arc::new(Meter::default()),
            target,
            workers: workers.max(1),
        }
    }

    /// Where the pool reports the chunks of this map.
    pub(crate) fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }

    /// The size of the next chunk, given how many inputs are left if that
    /// is known exactly.
    pub(crate) fn next_size(&mut self, left: Option<usize>) -> usize {
        if let Some(reports) = self.meter.take() {
            self.measured(reports);
        }
        let timed = match self.phase {
            Phase::Probing => 1,
            Phase::Timed {
                nanos_per_input,
                largest,
            } => {
                let fits = self.target.as_nanos() as f64 / nanos_per_input.max(1.0);
                let cap = largest.saturating_mul(GROWTH).min(MAX_AUTO_CHUNKSIZE);
                (fits as usize).clamp(1, cap)
            }
            Phase::Tail { .. } => usize::MAX,
        };
        match left.map(|left| left.div_ceil(TAIL_CHUNKS * self.workers)) {
            Some(share) if share < timed => {
                if let Phase::Timed {
                    nanos_per_input, ..
                } = self.phase
                {
                    self.phase = Phase::Tail { nanos_per_input };
                }
                share.max(1)
            }
            _ if matches!(self.phase, Phase::Tail { .. }) => 1,
            _ => timed,
        }
    }

    /// Whether a chunk of `inputs` is measured to run for longer than the
    /// caller would spin waiting for it ([`SPIN_FOR`]): then it should
    /// sleep at once. Not while probing: nothing is measured yet.
    pub(crate) fn runs_long(&self, inputs: usize) -> bool {
        match self.phase {
            Phase::Probing => false,
            Phase::Timed {
                nanos_per_input, ..
            }
            | Phase::Tail { nanos_per_input } => {
                nanos_per_input * inputs as f64 > SPIN_FOR.as_nanos() as f64
            }
        }
    }

    /// Takes new reports into account: the time per input is that of the
    /// inputs reported since the last time.
    fn measured(&mut self, reports: Reports) {
        let nanos_per_input = reports.nanos as f64 / reports.inputs as f64;
        self.phase = match self.phase {
            Phase::Probing => Phase::Timed {
                nanos_per_input,
                largest: reports.largest,
            },
            Phase::Timed { largest, .. } => Phase::Timed {
                nanos_per_input,
                largest: largest.max(reports.largest),
            },
            Phase::Tail { .. } => Phase::Tail { nanos_per_input },
        };
    }
}

impl fmt::Debug for Sizing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sizing")
            .field("phase", &self.phase)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Duration = Duration::from_micros(100);

    fn report(sizing: &Sizing, inputs: usize, each: Duration) {
        sizing.meter().record(inputs, each * inputs as u32);
    }

    #[test]
    fn probes_one_input_at_a_time_until_a_chunk_reports() {
        let mut sizing = Sizing::new(2, TARGET);
        for _ in 0..100 {
            assert_eq!(sizing.next_size(None), 1);
        }
    }

    #[test]
    fn fast_tasks_grow_the_chunks_by_at_most_growth_per_measurement() {
        let mut sizing = Sizing::new(2, TARGET);
        let nanosecond = Duration::from_nanos(1);
        let mut size = sizing.next_size(None);
        let mut sizes = vec![size];
        while size < MAX_AUTO_CHUNKSIZE {
            report(&sizing, size, nanosecond);
            size = sizing.next_size(None);
            sizes.push(size);
        }
        assert_eq!(sizes, [1, 16, 256, MAX_AUTO_CHUNKSIZE]);
        // With nothing new reported, the size holds.
        assert_eq!(sizing.next_size(None), MAX_AUTO_CHUNKSIZE);
    }

    #[test]
    fn slow_tasks_shrink_the_chunks_at_once() {
        let mut sizing = Sizing::new(2, TARGET);
        report(&sizing, 1, Duration::from_nanos(10));
        report(&sizing, 16, Duration::from_nanos(10));
        report(&sizing, 256, Duration::from_nanos(10));
        assert_eq!(sizing.next_size(None), MAX_AUTO_CHUNKSIZE);
        report(&sizing, MAX_AUTO_CHUNKSIZE, Duration::from_millis(1));
        assert_eq!(sizing.next_size(None), 1);
    }

    #[test]
    fn the_tail_is_cut_into_shares_down_to_one_input() {
        let mut sizing = Sizing::new(2, TARGET);
        report(&sizing, 1, Duration::from_nanos(10));
        report(&sizing, 16, Duration::from_nanos(10));
        report(&sizing, 256, Duration::from_nanos(10));
        assert_eq!(sizing.next_size(Some(1_000_000)), MAX_AUTO_CHUNKSIZE);
        let mut left = 10_000;
        let mut sizes = Vec::new();
        while left > 0 {
            let size = sizing.next_size(Some(left));
            sizes.push(size);
            left -= size;
        }
        assert_eq!(sizes[0], 2500, "a quarter of 10000 for 2 workers");
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
        assert_eq!(sizes[sizes.len() - 4..], [1, 1, 1, 1], "{sizes:?}");
        // And the tail stays the tail when the count is lost.
        assert_eq!(sizing.next_size(None), 1);
    }

    #[test]
    fn a_chunk_runs_long_once_it_is_measured_to_outlast_the_spin() {
        let mut sizing = Sizing::new(2, TARGET);
        assert!(!sizing.runs_long(1_000_000), "nothing measured yet");
        report(&sizing, 100, Duration::from_micros(1));
        sizing.next_size(None);
        assert!(sizing.runs_long(100), "100 us");
        assert!(!sizing.runs_long(10), "10 us");
        sizing.next_size(Some(3));
        assert!(matches!(sizing.phase, Phase::Tail { .. }));
        assert!(sizing.runs_long(100), "still measured in the tail");
    }

    #[test]
    fn slow_probes_enter_the_tail_only_when_shares_are_smaller() {
        let mut sizing = Sizing::new(2, TARGET);
        report(&sizing, 1, Duration::from_millis(10));
        assert_eq!(sizing.next_size(Some(3)), 1);
        assert_eq!(
            sizing.phase,
            Phase::Timed {
                nanos_per_input: 1e7,
                largest: 1
            }
        );
    }
}
