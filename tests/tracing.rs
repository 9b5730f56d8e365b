//! Tracing across processes (feature `tracing`): a process task's own
//! events reach the caller's subscriber, under the task's span, itself a
//! child of the span that was current at `submit`; the span's fields say
//! how long the task waited and ran, the bytes moved and the worker. Built
//! only with `--features tracing`.

// The process pool's platforms.
#![cfg(any(target_os = "linux", target_os = "macos", windows))]

use std::sync::{Arc, Mutex, PoisonError};

use concurrent_futures::{Error, ProcessPoolExecutor};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber, info, info_span};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

/// One event as the caller's subscriber saw it.
#[derive(Debug, Clone)]
struct Seen {
    level: Level,
    message: String,
    /// The names of the spans it was in, innermost first.
    spans: Vec<String>,
    /// The fields of its innermost span, as `name=value`.
    span_fields: Vec<String>,
}

/// A layer that keeps every event with its spans.
#[derive(Clone, Default)]
struct Keep(Arc<Mutex<Vec<Seen>>>);

impl Keep {
    fn seen(&self) -> Vec<Seen> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A span's fields, kept in its extensions.
struct Fields(Vec<String>);

#[derive(Default)]
struct Text(Vec<String>, String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.1 = format!("{value:?}"),
            name => self.0.push(format!("{name}={value:?}")),
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Keep {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut text = Text::default();
        attrs.record(&mut text);
        ctx.span(id)
            .unwrap()
            .extensions_mut()
            .insert(Fields(text.0));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut text = Text::default();
        values.record(&mut text);
        let span = ctx.span(id).unwrap();
        span.extensions_mut()
            .get_mut::<Fields>()
            .unwrap()
            .0
            .extend(text.0);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut text = Text::default();
        event.record(&mut text);
        let scope = ctx.event_scope(event);
        let spans: Vec<_> = scope
            .into_iter()
            .flatten()
            .map(|s| s.name().to_owned())
            .collect();
        let span_fields = ctx
            .event_span(event)
            .and_then(|s| s.extensions().get::<Fields>().map(|f| f.0.clone()))
            .unwrap_or_default();
        self.0.lock().unwrap().push(Seen {
            level: *event.metadata().level(),
            message: text.1,
            spans,
            span_fields,
        });
    }
}

fn greet(name: String) -> usize {
    info!(
        len = name.len(),
        "hello from process {}",
        std::process::id()
    );
    tracing::trace!("too fine to be sent");
    name.len()
}

fn fails(_: ()) -> u8 {
    tracing::warn!("about to fail");
    panic!("on purpose");
}

/// Says which item it is; slow every 50th, where the pool may cut a
/// chunk and give its rest to another worker.
fn item_slowly_now_and_then(n: u64) -> u64 {
    info!("item {n}");
    if n % 50 == 49 {
        std::thread::sleep(std::time::Duration::from_millis(4));
    }
    n * n
}

fn field<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    seen.span_fields
        .iter()
        .find_map(|f| f.strip_prefix(&prefix))
}

/// One test: `tracing` caches each callsite's interest across threads, so a
/// test without a subscriber running beside one with a scoped subscriber
/// could race it (a callsite registered while the other's subscriber is
/// made). In order, the first part's callsites are rebuilt for the second.
#[test]
fn a_process_tasks_events_come_back_under_its_span_in_the_callers() {
    // No subscriber: nothing is captured, and the tasks run as before.
    let executor = ProcessPoolExecutor::new(1);
    assert_eq!(executor.submit(greet, "web12".into()).result(), Ok(5));
    let lengths: Vec<_> = executor.map(greet, ["a".into(), "bb".into()]).collect();
    assert_eq!(lengths, [Ok(1), Ok(2)]);
    drop(executor);

    let keep = Keep::default();
    // At INFO, so the task's trace! is not wanted, nor sent.
    let subscriber = Registry::default()
        .with(keep.clone())
        .with(tracing_subscriber::filter::LevelFilter::INFO);
    let me = std::process::id();
    tracing::subscriber::with_default(subscriber, || {
        let executor = ProcessPoolExecutor::new(1);
        let future =
            info_span!("request", id = 1).in_scope(|| executor.submit(greet, "web1".into()));
        assert_eq!(future.result(), Ok(4));
        let failing = info_span!("request", id = 2).in_scope(|| executor.submit(fails, ()));
        assert!(matches!(failing.result(), Err(Error::Panicked { .. })));

        // Chunks on two workers, which the pool may cut and share out:
        // every part's events come back, each once, under the chunk's span.
        let executor = ProcessPoolExecutor::new(2);
        let _batch = info_span!("batch").entered();
        let squares: Vec<u64> = executor
            .map(item_slowly_now_and_then, 0..600)
            .chunksize(100)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(squares, (0..600).map(|n| n * n).collect::<Vec<_>>());
    });

    // The thread pool: the task's events are in its span, on a pool thread.
    tracing::subscriber::with_default(Registry::default().with(keep.clone()), || {
        let executor = concurrent_futures::ThreadPoolExecutor::new(1);
        let future = info_span!("request", id = 3).in_scope(|| {
            executor.submit(
                |n: u32| info!(n, "on thread {:?}", std::thread::current().name()),
                1,
            )
        });
        assert_eq!(future.result(), Ok(()));
    });

    let seen = keep.seen();
    let threaded = (seen.iter())
        .find(|s| s.message.starts_with("on thread "))
        .unwrap_or_else(|| panic!("the thread task's event is missing: {seen:#?}"));
    assert_eq!(threaded.spans, ["task", "request"], "{threaded:#?}");
    assert!(field(threaded, "queue_wait_us").is_some(), "{threaded:#?}");
    let hello = (seen.iter())
        .find(|s| s.message.starts_with("hello from process "))
        .unwrap_or_else(|| panic!("the task's event did not come back: {seen:#?}"));
    assert_eq!(hello.level, Level::INFO);
    assert_eq!(hello.spans, ["task", "request"], "{hello:#?}");
    // The worker's fields follow the message: `hello from process 123 len=4`.
    let words: Vec<_> = hello.message.split(' ').collect();
    assert_eq!(words[4], "len=4", "{hello:#?}");
    let worker: u32 = words[3].parse().unwrap();
    assert_ne!(worker, me, "it ran in another process");
    assert_eq!(field(hello, "worker_pid"), Some(&*worker.to_string()));
    assert_eq!(field(hello, "items"), Some("1"));
    for name in ["queue_wait_us", "run_us", "bytes_sent", "bytes_received"] {
        let value: u64 = field(hello, name)
            .unwrap_or_else(|| panic!("no {name}: {hello:#?}"))
            .parse()
            .unwrap();
        if name.starts_with("bytes") {
            assert!(value > 0, "{name}={value}");
        }
    }
    assert!(
        !seen.iter().any(|s| s.message.contains("too fine")),
        "a TRACE event was sent though the caller wants INFO: {seen:#?}"
    );

    let mut items: Vec<u64> = (seen.iter())
        .filter_map(|s| s.message.strip_prefix("item "))
        .map(|n| n.parse().unwrap())
        .collect();
    items.sort_unstable();
    assert_eq!(
        items,
        (0..600).collect::<Vec<_>>(),
        "each item's event, once"
    );
    assert!(
        (seen.iter())
            .filter(|s| s.message.starts_with("item "))
            .all(|s| s.spans == ["task", "batch"] && field(s, "items").is_some()),
        "every item's event under its chunk's span"
    );

    // A task that panics: what it said before is still delivered.
    let warned = (seen.iter())
        .find(|s| s.message == "about to fail")
        .unwrap_or_else(|| panic!("the failing task's event did not come back: {seen:#?}"));
    assert_eq!(warned.level, Level::WARN);
    assert_eq!(warned.spans, ["task", "request"]);
}
