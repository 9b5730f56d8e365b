//! Layer: mpi. May use: std only.
//! Polling MPI without burning a shared core: Open MPI's blocking calls
//! spin, so the hub and the workers poll, with a [`Backoff`] between polls.

use std::thread;
use std::time::Duration;

/// Polling without burning a shared core: a few yields, then sleeps that
/// double from 10 µs up to 1 ms. Reset whenever something arrives.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    polls: u32,
}

impl Backoff {
    const YIELDS: u32 = 64;
    const LONGEST: Duration = Duration::from_millis(1);

    /// How long to wait before the next poll: `None` means just yield.
    pub(crate) fn delay(&mut self) -> Option<Duration> {
        self.polls = self.polls.saturating_add(1);
        let sleeps = self.polls.checked_sub(Self::YIELDS)?;
        Some((Duration::from_micros(10) * 2_u32.saturating_pow(sleeps.min(16))).min(Self::LONGEST))
    }

    /// Waits before the next poll.
    pub(crate) fn pause(&mut self) {
        match self.delay() {
            None => thread::yield_now(),
            Some(delay) => thread::sleep(delay),
        }
    }

    /// Something arrived: the next polls start from yields again.
    pub(crate) fn reset(&mut self) {
        self.polls = 0;
    }
}
