//! Pools from async code: thousands of `.await`s and `as_completed` as a
//! stream on a tokio current-thread runtime, whose one thread must stay free
//! while the futures are pending; and the stream's order and wake-ups, polled
//! by hand.
//!
//! The runtime tests hold every task at a [`Gate`] that only a tokio task can
//! open, after its timer has fired again and again: if waiting blocked the
//! runtime's thread, the timer could not fire, the gate would time out and
//! the tasks would say so. A lost wake-up fails at [`within`]'s deadline.

use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use concurrent_futures::{Error, Future, ReturnWhen, ThreadPoolExecutor, as_completed, wait};
use futures_core::Stream;
use futures_util::StreamExt;
use tokio::runtime::{self, Runtime};
use tokio::task::JoinHandle;
use tokio::time;

mod common;
use common::{PATIENCE, Unpark};

/// How many futures the runtime tests await at once.
const TASKS: u32 = 5_000;

/// How many times the ticker's timer fires before it opens the gate.
const TICKS: u32 = 10;

/// Holds pool threads until it is opened, or until `PATIENCE` has passed.
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    deadline: Instant,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Gate {
            open: Mutex::new(false),
            opened: Condvar::new(),
            deadline: Instant::now() + PATIENCE,
        })
    }

    /// Waits at the gate; `true` if it was opened, `false` if it timed out.
    fn pass(&self) -> bool {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let open = self.open.lock().unwrap();
        *self
            .opened
            .wait_timeout_while(open, left, |open| !*open)
            .unwrap()
            .0
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// A task that waits at `gate`, then returns `n`, or `None` if the gate
/// timed out.
fn gated(executor: &ThreadPoolExecutor, gate: &Arc<Gate>, n: u32) -> Future<Option<u32>> {
    let gate = Arc::clone(gate);
    executor.submit(move |n| gate.pass().then_some(n), n)
}

/// `TASKS` tasks, numbered from 0, that all wait at `gate`.
fn held_at(executor: &ThreadPoolExecutor, gate: &Arc<Gate>) -> Vec<Future<Option<u32>>> {
    (0..TASKS).map(|n| gated(executor, gate, n)).collect()
}

fn current_thread() -> Runtime {
    runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// `future`'s output; panics with `lost` if it is not ready within
/// `PATIENCE`. Unlike `time::timeout` this looks at the deadline first: the
/// deadline's own wake-up polls `future` once more, which would hide a lost
/// wake-up if `future` were polled first.
async fn within<T>(future: impl std::future::Future<Output = T>, lost: &str) -> T {
    let mut deadline = pin!(time::sleep(PATIENCE));
    let mut future = pin!(future);
    poll_fn(|cx| {
        assert!(deadline.as_mut().poll(cx).is_pending(), "{lost}");
        future.as_mut().poll(cx)
    })
    .await
}

/// Spawns a task whose timer fires every millisecond; after `TICKS` of them,
/// as soon as `ready()`, it opens `gate`.
fn open_after_ticks(gate: Arc<Gate>, ready: impl Fn() -> bool + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = time::interval(Duration::from_millis(1));
        let mut ticks = 0;
        while ticks < TICKS || !ready() {
            interval.tick().await;
            ticks += 1;
        }
        gate.open();
    })
}

#[test]
fn thousands_of_awaits_leave_a_current_thread_runtime_free() {
    let executor = ThreadPoolExecutor::new(4);
    let gate = Gate::new();
    let futures = held_at(&executor, &gate);
    let polled = Arc::new(AtomicU32::new(0));
    let results = current_thread().block_on(async {
        let awaits: Vec<_> = futures
            .into_iter()
            .map(|future| {
                let polled = Arc::clone(&polled);
                tokio::spawn(async move {
                    polled.fetch_add(1, Ordering::SeqCst);
                    future.await
                })
            })
            .collect();
        // Opens the gate only once every await is pending (none can finish
        // before) and the timer has kept firing.
        let ticker = open_after_ticks(Arc::clone(&gate), {
            let polled = Arc::clone(&polled);
            move || polled.load(Ordering::SeqCst) == TASKS
        });
        let all = async {
            let mut results = Vec::new();
            for awaited in awaits {
                results.push(awaited.await.unwrap());
            }
            results
        };
        let results = within(all, "an await was never woken").await;
        ticker.await.unwrap();
        results
    });
    let expected: Vec<Result<_, Error>> = (0..TASKS).map(|n| Ok(Some(n))).collect();
    assert!(
        results == expected,
        "every task passes the gate the ticker opened"
    );
}

#[test]
fn the_stream_yields_thousands_on_a_current_thread_runtime_left_free() {
    let executor = ThreadPoolExecutor::new(4);
    let gate = Gate::new();
    let futures = held_at(&executor, &gate);
    let mut seen = current_thread().block_on(async {
        let mut completed = as_completed(&futures).into_stream();
        let ticker = open_after_ticks(Arc::clone(&gate), || true);
        let all = async {
            let mut seen = Vec::new();
            while let Some(future) = completed.next().await {
                assert!(future.done(), "only done futures are yielded");
                let n = future.result().unwrap();
                seen.push(n.expect("the ticker opened the gate"));
            }
            seen
        };
        let seen = within(all, "the stream was never woken").await;
        ticker.await.unwrap();
        seen
    });
    seen.sort_unstable();
    assert!(seen.into_iter().eq(0..TASKS), "each future is yielded once");
}

/// Polls `stream` once with `waker`, and takes the result of what it yields.
fn poll_next<'a, S, T: 'a>(stream: &mut S, waker: &Arc<Unpark>) -> Poll<Option<Result<T, Error>>>
where
    S: Stream<Item = &'a Future<T>> + Unpin,
{
    let waker = Waker::from(Arc::clone(waker));
    Pin::new(stream)
        .poll_next(&mut Context::from_waker(&waker))
        .map(|future| future.map(Future::result))
}

#[test]
fn the_stream_yields_in_completion_order_woken_once_per_completion() {
    let executor = ThreadPoolExecutor::new(4);
    let opened = Gate::new();
    opened.open();
    let done = gated(&executor, &opened, 9);
    wait([&done], ReturnWhen::AllCompleted, Some(PATIENCE));
    // Gates rather than channels: if a poll blocked this thread, nothing
    // could release the tasks, and they must still end, at the deadline.
    let gates: Vec<_> = (0..3).map(|_| Gate::new()).collect();
    let held: Vec<_> = (0..3)
        .map(|n| gated(&executor, &gates[n], n as u32))
        .collect();
    let mut completed = as_completed([&held[0], &done, &held[1], &held[2], &held[1]]).into_stream();
    assert_eq!(
        completed.size_hint(),
        (0, Some(4)),
        "the repeat counts once"
    );

    let waker = Unpark::here();
    let ready = |n| Poll::Ready(Some(Ok(Some(n))));
    assert_eq!(poll_next(&mut completed, &waker), ready(9), "done first");
    for (wakes, n) in [2, 0, 1].into_iter().enumerate() {
        assert_eq!(poll_next(&mut completed, &waker), Poll::Pending);
        gates[n].open();
        waker.park_until(wakes + 1);
        assert_eq!(poll_next(&mut completed, &waker), ready(n as u32));
    }
    assert_eq!(poll_next(&mut completed, &waker), Poll::Ready(None));
    assert_eq!(
        waker.wakes(),
        3,
        "one wake-up per completion, none while ready"
    );
}
