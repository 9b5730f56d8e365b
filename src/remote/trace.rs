//! Layer: remote. May use: `error`, `future` (its `Canceller` and `Hook`),
//! `remote::codec`, `remote::work` (the [`Results`] a task completes) and
//! `trace` (the task's span). Built only with the cargo feature `tracing`.
//! Tracing across processes: each task message gets a `tracing` span in
//! the caller, and the task's own events, captured where it runs, are
//! replayed there, under that span.
//!
//! The task header carries one byte of it, the answer a section:
//!
//! ```text
//! front end                                         serving side
//!   span "task" (a child of the caller's current span), submitted
//!   ── Task: header (trace: the caller's level, 0: none), arguments ──▶
//!                                  captures the task's events (at that
//!                                  level and above) while it runs
//!   ◀── Outcomes: [len: u32, Captured (postcard)], outcomes ──
//!   records the span's fields, replays the events in it
//! ```
//!
//! The header's byte is there with the feature (both sides run the same
//! executable, checked at the handshake); it is not 0, and the answer has
//! its section, only when the caller's subscriber wants the span. So with
//! no subscriber listening a task message costs one byte more; without the
//! feature, nothing. A chunk that the pool cuts in two keeps the header's
//! byte in both parts (they share the span), and each part answers with
//! its own section.
//!
//! A replayed event keeps its level and message; its worker-side target,
//! fields and spans are fields of the replayed event (`tracing` callsites
//! are static, so the target of the replay is `concurrent_futures::task`).
//! The span's fields: `items` (inputs in the message), `bytes_sent`,
//! `bytes_received`, `queue_wait_us` (from `submit` until a worker took the
//! message), `run_us` (from then until its outcomes arrived) and
//! `worker_pid`, or `error` when the pool failed the message. Events of
//! threads that the task itself starts are not captured.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Span, Subscriber};

use super::codec::Bulk;
use super::work::{Deferred, Results};
use crate::Error;
use crate::future::{Canceller, Hook};
use crate::trace::{in_scope, micros, task_span};

/// The header's `trace` byte of a task that is not traced.
const NOT_TRACED: u8 = 0;

// ---- Front end --------------------------------------------------------------

/// Opens the span of a task message of `items` inputs and `bytes_sent`
/// bytes of arguments: returns the header's `trace` byte, and `results`,
/// wrapped to finish the span if the caller's subscriber wants it.
pub(crate) fn begin(
    items: usize,
    bytes_sent: usize,
    results: Box<dyn Results>,
) -> (u8, Box<dyn Results>) {
    let span = task_span();
    span.record("items", items);
    span.record("bytes_sent", bytes_sent);
    if span.is_disabled() {
        return (NOT_TRACED, results);
    }
    // An enabled span means a level of INFO or finer: never NOT_TRACED.
    let trace = level_byte(LevelFilter::current()).max(1);
    let traced = Traced {
        inner: results,
        span,
        submitted: Instant::now(),
        started: None,
        received: Arc::new(Mutex::new(0)),
    };
    (trace, Box::new(traced))
}

/// A task message's results inside its span.
struct Traced {
    inner: Box<dyn Results>,
    span: Span,
    submitted: Instant,
    /// When a worker took the message.
    started: Option<Instant>,
    /// The bytes received so far by the parts of a chunk that the pool
    /// cut, which share the span.
    received: Arc<Mutex<usize>>,
}

impl Results for Traced {
    fn cancellable_while_running(&self) -> bool {
        self.inner.cancellable_while_running()
    }

    fn hold(&mut self, hook: Hook) -> bool {
        self.inner.hold(hook)
    }

    fn release(&mut self) {
        self.inner.release();
    }

    fn rehome(&mut self, canceller: Option<Canceller>) -> bool {
        self.inner.rehome(canceller)
    }

    fn claim(&mut self, canceller: Option<Canceller>) -> bool {
        // A later part of a cut chunk was claimed with the first.
        if self.started.is_none() {
            let now = Instant::now();
            self.span
                .record("queue_wait_us", micros(now - self.submitted));
            self.started = Some(now);
        }
        self.inner.claim(canceller)
    }

    fn deliver(
        self: Box<Self>,
        outcomes: &[u8],
        tail: &[u8],
        reuse: &mut Bulk,
    ) -> Result<Deferred, Deferred> {
        let Traced {
            inner,
            span,
            started,
            received,
            ..
        } = *self;
        if let Some(started) = started {
            span.record("run_us", micros(started.elapsed()));
        }
        let received = {
            let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
            *received += outcomes.len() + tail.len();
            *received
        };
        span.record("bytes_received", received);
        // The section leads the outcomes, wherever they came: outcomes that
        // came whole apart from the answer (big ones) hold it too.
        let (sectioned, tail) = match outcomes.is_empty() {
            true => (tail, &[][..]),
            false => (outcomes, tail),
        };
        match split(sectioned) {
            Ok((captured, outcomes)) => {
                span.record("worker_pid", captured.pid);
                // To the subscriber that holds the span, in it.
                in_scope(&span, || captured.events.iter().for_each(emit));
                inner.deliver(outcomes, tail, reuse)
            }
            Err(reason) => {
                let error = Error::Protocol(reason);
                span.record("error", tracing::field::display(&error));
                inner.fail(error);
                Err(None)
            }
        }
    }

    fn fail(self: Box<Self>, error: Error) {
        self.span.record("error", tracing::field::display(&error));
        self.inner.fail(error);
    }

    fn ran_for(&mut self, took: Duration) {
        self.inner.ran_for(took);
    }

    fn split(&mut self, at: usize) -> Option<Box<dyn Results>> {
        let rest = self.inner.split(at)?;
        Some(Box::new(Traced {
            inner: rest,
            span: self.span.clone(),
            submitted: self.submitted,
            started: self.started,
            received: Arc::clone(&self.received),
        }))
    }
}

/// Splits the answer's section off the outcomes.
fn split(outcomes: &[u8]) -> Result<(Captured, &[u8]), String> {
    let bad = || "a traced task's answer lacks its trace section".to_owned();
    let (len, rest) = outcomes.split_first_chunk::<4>().ok_or_else(bad)?;
    let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| bad())?;
    if rest.len() < len {
        return Err(bad());
    }
    let (section, rest) = rest.split_at(len);
    if section.is_empty() {
        return Ok((Captured::default(), rest));
    }
    let captured = postcard::from_bytes(section)
        .map_err(|e| format!("a traced task's trace section does not decode: {e}"))?;
    Ok((captured, rest))
}

fn emit(event: &CapturedEvent) {
    macro_rules! at {
        ($level:expr) => {
            tracing::event!(
                target: "concurrent_futures::task",
                $level,
                worker_target = %event.target,
                worker_spans = (!event.spans.is_empty()).then_some(event.spans.as_str()),
                "{}",
                event.text
            )
        };
    }
    match event.level {
        1 => at!(Level::ERROR),
        2 => at!(Level::WARN),
        3 => at!(Level::INFO),
        4 => at!(Level::DEBUG),
        _ => at!(Level::TRACE),
    }
}

fn level_byte(filter: LevelFilter) -> u8 {
    match filter.into_level() {
        None => 0,
        Some(Level::ERROR) => 1,
        Some(Level::WARN) => 2,
        Some(Level::INFO) => 3,
        Some(Level::DEBUG) => 4,
        Some(_) => 5,
    }
}

fn level_filter(byte: u8) -> LevelFilter {
    match byte {
        0 => LevelFilter::OFF,
        1 => LevelFilter::ERROR,
        2 => LevelFilter::WARN,
        3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

// ---- Serving side -----------------------------------------------------------

/// What a traced task's events were, for the answer's section.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Captured {
    /// The serving process.
    pid: u32,
    events: Vec<CapturedEvent>,
}

/// One captured event.
#[derive(Debug, Serialize, Deserialize)]
struct CapturedEvent {
    level: u8,
    target: String,
    /// The message, then the other fields as `name=value`.
    text: String,
    /// The worker-side spans the event was in, outermost first, `a:b`.
    spans: String,
}

/// Capture for one task message, from [`Capture::start`] to
/// [`Capture::finish`].
pub(crate) struct Capture(Option<tracing::dispatcher::DefaultGuard>);

impl Capture {
    /// Starts capturing this thread's events if the header's `trace` byte
    /// asks for it, at the level it names.
    pub(crate) fn start(trace: u8) -> Capture {
        if trace == NOT_TRACED {
            return Capture(None);
        }
        recorder().reset(level_filter(trace));
        Capture(Some(tracing::dispatcher::set_default(dispatch())))
    }

    /// Stops capturing, and puts the answer's section in front of
    /// `outcomes` if the task was traced.
    pub(crate) fn finish(self, outcomes: &mut Vec<u8>) {
        let Some(guard) = self.0 else { return };
        drop(guard);
        let captured = Captured {
            pid: std::process::id(),
            events: recorder().take(),
        };
        // Strings and integers always serialize; a section too long for
        // its length field goes empty (the front end reads no events).
        let section = postcard::to_allocvec(&captured).unwrap_or_default();
        let (len, section) = match u32::try_from(section.len()) {
            Ok(len) => (len, section),
            Err(_) => (0, Vec::new()),
        };
        outcomes.splice(0..0, len.to_le_bytes().into_iter().chain(section));
    }
}

/// The serving process's one recorder, and its dispatcher, kept for the
/// process's life so that callsites stay registered with it.
fn dispatch() -> &'static Dispatch {
    static DISPATCH: OnceLock<Dispatch> = OnceLock::new();
    DISPATCH.get_or_init(|| Dispatch::new(Arc::clone(recorder())))
}

fn recorder() -> &'static Arc<Recorder> {
    static RECORDER: OnceLock<Arc<Recorder>> = OnceLock::new();
    RECORDER.get_or_init(|| {
        Arc::new(Recorder {
            state: Mutex::new(State {
                max: LevelFilter::OFF,
                events: Vec::new(),
                spans: Vec::new(),
                entered: Vec::new(),
            }),
        })
    })
}

/// A `tracing` subscriber that keeps the events of the task it serves.
struct Recorder {
    state: Mutex<State>,
}

struct State {
    max: LevelFilter,
    events: Vec<CapturedEvent>,
    /// The names of the spans made so far; a span's id is its index + 1.
    spans: Vec<&'static str>,
    /// The spans entered, innermost last.
    entered: Vec<u64>,
}

impl Recorder {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reset(&self, max: LevelFilter) {
        let mut state = self.state();
        state.max = max;
        state.events.clear();
        state.spans.clear();
        state.entered.clear();
    }

    fn take(&self) -> Vec<CapturedEvent> {
        std::mem::take(&mut self.state().events)
    }
}

impl Subscriber for Recorder {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Each task asks for its own level: decide per event.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= &self.state().max
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut state = self.state();
        state.spans.push(span.metadata().name());
        Id::from_u64(state.spans.len() as u64)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = Text::default();
        event.record(&mut text);
        let mut state = self.state();
        let spans = (state.entered.iter())
            .filter_map(|id| state.spans.get(usize::try_from(*id).ok()? - 1))
            .copied()
            .collect::<Vec<_>>()
            .join(":");
        let metadata = event.metadata();
        state.events.push(CapturedEvent {
            level: level_byte(LevelFilter::from_level(*metadata.level())),
            target: metadata.target().to_owned(),
            text: text.0,
            spans,
        });
    }

    fn enter(&self, span: &Id) {
        self.state().entered.push(span.into_u64());
    }

    fn exit(&self, span: &Id) {
        let mut state = self.state();
        if let Some(at) = state.entered.iter().rposition(|id| *id == span.into_u64()) {
            state.entered.remove(at);
        }
    }
}

/// An event's message, then its other fields as `name=value`.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = &mut self.0;
        if field.name() == "message" {
            let fields = std::mem::take(text);
            let _ = write!(text, "{value:?}");
            if !fields.is_empty() {
                text.push(' ');
                text.push_str(&fields);
            }
        } else {
            if !text.is_empty() {
                text.push(' ');
            }
            let _ = write!(text, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traced_tasks_events_travel_in_front_of_its_outcomes() {
        let capture = Capture::start(level_byte(LevelFilter::INFO));
        tracing::info_span!("inner").in_scope(|| {
            tracing::info!(n = 3, "wanted");
            tracing::debug!("below the caller's level");
        });
        let mut outcomes = b"outcomes".to_vec();
        capture.finish(&mut outcomes);
        let (captured, rest) = split(&outcomes).unwrap();
        assert_eq!(rest, b"outcomes");
        assert_eq!(captured.pid, std::process::id());
        let texts: Vec<_> = (captured.events.iter())
            .map(|e| (&*e.text, &*e.spans))
            .collect();
        assert_eq!(texts, [("wanted n=3", "inner")]);
    }

    #[test]
    fn an_untraced_task_has_no_answer_section() {
        let capture = Capture::start(NOT_TRACED);
        tracing::info!("not captured");
        let mut outcomes = b"outcomes".to_vec();
        capture.finish(&mut outcomes);
        assert_eq!(outcomes, b"outcomes");
    }

    #[test]
    fn a_cut_or_broken_answer_section_is_an_error_not_a_panic() {
        for outcomes in [
            &b""[..],
            b"\x01\0",
            b"\xff\xff\xff\xff",
            b"\x03\0\0\0\xff\xff\xff",
        ] {
            assert!(split(outcomes).is_err(), "{outcomes:?}");
        }
        assert_eq!(split(b"\0\0\0\0rest").unwrap().1, b"rest");
    }
}
