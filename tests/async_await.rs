//! `Future` implements `std::future::Future`: `.await` works, the waker is
//! stored and woken on completion (or cancel), and nothing polls in a loop.
//!
//! No async runtime: a tiny `block_on` built from `std::task::Wake` over a
//! thread unpark ([`common::Unpark`]), which counts its polls and its
//! wake-ups.

use std::future::Future as _;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::task::{Context, Poll, Waker};
use std::thread;

use concurrent_futures::{Error, Future, Shutdown, ThreadPoolExecutor};

mod common;
use common::{PATIENCE, Unpark, hold_with};

/// What `block_on` saw.
#[derive(Debug)]
struct Run<T> {
    output: T,
    polls: usize,
    wakes: usize,
}

/// Polls `future` to completion on this thread, parking between polls and
/// polling again only after a wake-up. Panics after `PATIENCE` without one,
/// so a lost wake-up fails the test instead of hanging it.
fn block_on<F: std::future::Future>(future: F) -> Run<F::Output> {
    let unpark = Unpark::here();
    let waker = Waker::from(Arc::clone(&unpark));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut polls = 0;
    loop {
        let wakes_before = unpark.wakes();
        polls += 1;
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Run {
                output,
                polls,
                wakes: unpark.wakes(),
            };
        }
        unpark.park_until(wakes_before + 1);
    }
}

/// [`common::hold`], with a task that says whether it was `"released"` or
/// its sender `"dropped"`.
fn hold(executor: &ThreadPoolExecutor) -> (Future<&'static str>, Sender<()>) {
    hold_with(
        executor,
        |released| {
            if released { "released" } else { "dropped" }
        },
    )
}

#[test]
fn await_gives_the_value() {
    let executor = ThreadPoolExecutor::new(2);
    let a = executor.submit(|n: u32| n * 2, 20);
    let b = executor.submit(|n: u32| n + 2, 0);
    let run = block_on(async { Ok::<_, Error>(a.await? + b.await?) });
    assert_eq!(run.output, Ok(42));
}

/// Forwards to `future`, and reports on `first_poll` whether its first poll
/// was pending.
async fn reporting<F>(mut future: F, first_poll: Sender<bool>) -> F::Output
where
    F: std::future::Future + Unpin,
{
    let mut first_poll = Some(first_poll);
    std::future::poll_fn(move |cx| {
        let poll = Pin::new(&mut future).poll(cx);
        if let Some(tx) = first_poll.take() {
            tx.send(poll.is_pending()).unwrap();
        }
        poll
    })
    .await
}

#[test]
fn a_pending_future_is_woken_by_completion_not_polled_in_a_loop() {
    let executor = ThreadPoolExecutor::new(1);
    let (future, release) = hold(&executor);
    let (first_poll, was_pending) = mpsc::channel();
    thread::scope(|s| {
        let awaiting = s.spawn(|| block_on(reporting(future, first_poll)));
        assert_eq!(was_pending.recv_timeout(PATIENCE), Ok(true));
        release.send(()).unwrap();
        let run = awaiting.join().unwrap();
        assert_eq!(run.output, Ok("released"));
        assert_eq!(run.polls, 2, "polled once, woken, polled once more");
        assert_eq!(run.wakes, 1, "woken exactly once, by the completion");
    });
}

#[test]
fn a_pending_future_is_woken_when_the_pool_cancels_it() {
    let executor = ThreadPoolExecutor::new(1);
    let (_busy, _release) = hold(&executor);
    let queued = executor.submit(|()| "never runs", ());
    let (first_poll, was_pending) = mpsc::channel();
    thread::scope(|s| {
        // The awaiting thread owns the future; the pool cancels it.
        let awaiting = s.spawn(|| block_on(reporting(queued, first_poll)));
        assert_eq!(was_pending.recv_timeout(PATIENCE), Ok(true));
        executor.shutdown_with(Shutdown {
            wait: false,
            cancel_futures: true,
        });
        let run = awaiting.join().unwrap();
        assert_eq!(run.output, Err(Error::Cancelled));
        assert_eq!((run.polls, run.wakes), (2, 1));
    });
}

/// Polls `future` once with a waker that counts its wake-ups.
fn poll_once<R>(future: &mut Future<R>, wakes: &Arc<Unpark>) -> Poll<Result<R, Error>> {
    let waker = Waker::from(Arc::clone(wakes));
    Pin::new(future).poll(&mut Context::from_waker(&waker))
}

#[test]
fn only_the_waker_of_the_latest_poll_is_woken() {
    let executor = ThreadPoolExecutor::new(1);
    let (mut future, release) = hold(&executor);
    let (old, new) = (Unpark::here(), Unpark::here());
    assert!(poll_once(&mut future, &old).is_pending());
    assert!(poll_once(&mut future, &new).is_pending());
    // Polling again with the same waker keeps it registered.
    assert!(poll_once(&mut future, &new).is_pending());
    release.send(()).unwrap();
    new.park_until(1);
    assert_eq!(new.wakes(), 1);
    assert_eq!(old.wakes(), 0, "a replaced waker stays quiet");
    assert_eq!(poll_once(&mut future, &new), Poll::Ready(Ok("released")));
}

#[test]
fn a_done_future_is_ready_at_the_first_poll() {
    let executor = ThreadPoolExecutor::new(1);
    let value = executor.submit(|n: u8| n, 4);
    assert_eq!(value.result_timeout(PATIENCE), Ok(4));
    // `value`'s result was taken above: awaiting it says so.
    let run = block_on(value);
    assert_eq!(
        (run.output, run.polls, run.wakes),
        (Err(Error::ResultTaken), 1, 0)
    );

    let fresh = executor.submit(|n: u8| n, 5);
    executor.shutdown(); // fresh is done now
    let run = block_on(fresh);
    assert_eq!((run.output, run.polls, run.wakes), (Ok(5), 1, 0));
}

#[test]
fn await_hands_the_value_over_once() {
    let executor = ThreadPoolExecutor::new(1);
    let mut future = executor.submit(|s: &str| s.to_uppercase(), "sekali");
    let run = block_on(&mut future);
    assert_eq!(run.output.as_deref(), Ok("SEKALI"));
    assert_eq!(future.result(), Err(Error::ResultTaken));
}

#[test]
fn await_on_a_panicked_task_gives_the_panic() {
    let executor = ThreadPoolExecutor::new(1);
    let future = executor.submit(|()| -> u8 { panic!("async boom") }, ());
    let run = block_on(future);
    assert!(
        matches!(&run.output, Err(Error::Panicked { message, .. }) if message == "async boom"),
        "{:?}",
        run.output
    );
}
