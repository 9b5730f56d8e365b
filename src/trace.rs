//! Layer: core. May use: std and the tracing crate (feature `tracing`) only. The one
//! `tracing` span every pool gives a task ([`task_span`]),
//! and the thread pool's use of it ([`in_span`]). The remote pools' use,
//! across processes, is `remote/trace.rs`.

use std::time::{Duration, Instant};

use tracing::Span;
use tracing::field::Empty;

/// A new span for a task, a child of the current span. Its fields are
/// recorded as the task goes: `queue_wait_us` (from `submit` until a
/// worker took it), `run_us`, and for the remote pools `items` (inputs in
/// the message), `bytes_sent`, `bytes_received`, `worker_pid` and `error`.
pub(crate) fn task_span() -> Span {
    tracing::info_span!(
        target: "concurrent_futures",
        "task",
        items = Empty,
        bytes_sent = Empty,
        bytes_received = Empty,
        queue_wait_us = Empty,
        run_us = Empty,
        worker_pid = Empty,
        error = Empty,
    )
}

/// Whole microseconds, for the span's fields.
pub(crate) fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// `task`, run inside a [`task_span`] made now (at `submit`), which
/// records how long it waited and ran. The task's own events go to the
/// subscriber of that span (the caller's, even a scoped one), in it, on
/// whichever thread runs it.
pub(crate) fn in_span<A, R>(task: impl FnOnce(A) -> R) -> impl FnOnce(A) -> R {
    let span = task_span();
    let submitted = Instant::now();
    move |arg| {
        let started = Instant::now();
        span.record("queue_wait_us", micros(started - submitted));
        let result = in_scope(&span, || task(arg));
        span.record("run_us", micros(started.elapsed()));
        result
    }
}

/// Runs `f` in `span`, with the span's subscriber as this thread's.
pub(crate) fn in_scope<T>(span: &Span, f: impl FnOnce() -> T) -> T {
    match span.with_subscriber(|(_, dispatch)| dispatch.clone()) {
        Some(dispatch) => tracing::dispatcher::with_default(&dispatch, || span.in_scope(f)),
        None => f(),
    }
}
