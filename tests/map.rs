//! `map`: results in input order, lazy with a bounded look-ahead, one
//! deadline for the whole run, per-item errors, cancelling what has not
//! started, and chunking. Ported in spirit from Python's `test_map` and
//! `test_executor`'s buffersize tests.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, LOOK_AHEAD_PER_WORKER, MAX_AUTO_CHUNKSIZE, ThreadPoolExecutor};

mod common;
use common::{Gates, Order, PATIENCE, assert_never_ran, counted, held_task, pass};

#[test]
fn results_come_in_input_order_even_when_later_tasks_finish_first() {
    let executor = ThreadPoolExecutor::new(3);
    let gates = Gates::new(3);
    let (finished, finishes) = mpsc::channel();
    let receivers = Arc::clone(&gates.receivers);
    let finished = Mutex::new(finished);
    let task = move |n: usize| {
        if n < 2 {
            assert!(pass(&receivers, n), "gate {n} dropped");
        }
        finished.lock().unwrap().send(n).unwrap();
        n * 10
    };
    thread::scope(|s| {
        let consumer = s.spawn(|| executor.map(task, 0..3).collect::<Vec<_>>());
        // Task 2 finishes on its own; then open 1, then 0.
        assert_eq!(finishes.recv_timeout(PATIENCE), Ok(2));
        gates.open(1);
        assert_eq!(finishes.recv_timeout(PATIENCE), Ok(1));
        gates.open(0);
        assert_eq!(finishes.recv_timeout(PATIENCE), Ok(0));
        assert_eq!(consumer.join().unwrap(), [Ok(0), Ok(10), Ok(20)]);
    });
}

#[test]
fn nothing_is_submitted_before_the_first_next() {
    let executor = ThreadPoolExecutor::new(2);
    let (ran, runs) = mpsc::channel();
    let ran = Mutex::new(ran);
    let (inputs, pulled) = counted(0..10);
    let mut results = executor.map(move |n: i32| ran.lock().unwrap().send(n).unwrap(), inputs);
    assert_eq!(pulled.load(Ordering::SeqCst), 0, "no input pulled yet");
    executor.shutdown();
    // The pool is shut down, and nothing had been submitted to it.
    assert_eq!(runs.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(results.next(), Some(Err(Error::Shutdown)));
}

#[test]
fn buffer_size_bounds_how_far_ahead_inputs_are_pulled() {
    let executor = ThreadPoolExecutor::new(2);
    for on_thread in [false, true] {
        let (inputs, pulled) = counted(0..1000);
        let mut results = executor.map(|n: u32| n, inputs).buffer_size(3);
        if on_thread {
            results = results.pull_on_thread();
        }
        for consumed in 1..=50 {
            assert_eq!(results.next(), Some(Ok(consumed - 1)));
            let pulled = pulled.load(Ordering::SeqCst);
            assert!(
                pulled <= consumed as usize + 3,
                "pulled {pulled} inputs after consuming {consumed}, look-ahead 3, on a thread: {on_thread}"
            );
        }
    }
}

#[test]
fn an_endless_input_works_with_take() {
    let executor = ThreadPoolExecutor::new(4);
    let (inputs, pulled) = counted(1_u64..);
    let squares: Vec<_> = executor
        .map(|n: u64| n * n, inputs)
        .buffer_size(5)
        .take(6)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(squares, [1, 4, 9, 16, 25, 36]);
    assert!(pulled.load(Ordering::SeqCst) <= 6 + 5);
}

#[test]
fn the_default_look_ahead_is_bounded_too() {
    let executor = ThreadPoolExecutor::new(2);
    // Long but finite, so an unbounded look-ahead fails instead of hanging;
    // consumed far enough that the automatic chunks have grown.
    let (inputs, pulled) = counted(0_u32..10_000_000);
    let mut results = executor.map(|n: u32| n, inputs);
    // Documented default: LOOK_AHEAD_PER_WORKER chunks per worker, each of
    // at most MAX_AUTO_CHUNKSIZE inputs.
    let bound = LOOK_AHEAD_PER_WORKER * 2 * MAX_AUTO_CHUNKSIZE;
    for consumed in 1..=300_000 {
        assert_eq!(results.next(), Some(Ok(consumed - 1)));
        let pulled = pulled.load(Ordering::SeqCst);
        assert!(
            pulled <= consumed as usize + bound,
            "pulled {pulled} after consuming {consumed}"
        );
    }

    let (inputs, pulled) = counted(0_u32..100_000);
    let mut chunked = executor.map(|n: u32| n, inputs).chunksize(3);
    assert_eq!(chunked.next(), Some(Ok(0)));
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(
        pulled <= 1 + LOOK_AHEAD_PER_WORKER * 2 * 3,
        "pulled {pulled} with chunksize 3"
    );
}

#[test]
fn the_timeout_yields_timeout_once_then_ends() {
    common::check_the_timeout_yields_timeout_once_then_ends(Order::Input);
}

#[test]
fn the_timeout_is_one_deadline_measured_from_the_call() {
    let executor = ThreadPoolExecutor::new(1);
    let gates = Gates::new(1);
    let receivers = Arc::clone(&gates.receivers);
    let timeout = Duration::from_millis(400);
    let mut results = executor
        .map(move |n: usize| pass(&receivers, n), [0])
        .timeout(timeout);
    // Time is the behaviour here: let the whole budget pass before iterating.
    thread::sleep(timeout);
    let start = Instant::now();
    assert_eq!(results.next(), Some(Err(Error::Timeout)));
    let waited = start.elapsed();
    assert!(
        waited < timeout / 2,
        "the deadline had passed, yet next() waited {waited:?}"
    );
    gates.open(0);
}

#[test]
fn a_timeout_that_does_not_pass_changes_nothing() {
    let executor = ThreadPoolExecutor::new(3);
    let results: Vec<_> = executor
        .map(|n: u32| n + 1, 0..20)
        .timeout(PATIENCE)
        .collect();
    assert_eq!(results, (1..=20).map(Ok).collect::<Vec<_>>());
}

#[test]
fn a_timeout_cancels_the_tasks_not_started() {
    let executor = ThreadPoolExecutor::new(1);
    let gates = Gates::new(1);
    // Item 0 is held (if it starts in time at all); 1..6 queue behind it.
    let (task, _started, ran) = held_task(&gates, 0);
    let (inputs, pulled) = counted(0..6);
    let mut results = executor
        .map(task, inputs)
        .buffer_size(6)
        .timeout(Duration::from_millis(100));
    assert_eq!(results.next(), Some(Err(Error::Timeout)));
    assert_eq!(results.next(), None);
    assert_eq!(pulled.load(Ordering::SeqCst), 6, "all six were submitted");
    gates.open(0);
    executor.shutdown();
    drop(results); // drops the task, and with it the senders
    assert_never_ran(&ran, "the queued tasks were cancelled, never run");
}

#[test]
fn dropping_the_iterator_cancels_the_tasks_not_started() {
    common::check_dropping_the_iterator_cancels_the_tasks_not_started(Order::Input);
}

#[test]
fn errors_anywhere_in_a_chunk_keep_their_places() {
    // Chunks of five: failures first, last, in a row and in a chunk of
    // nothing else, among chunks without any.
    let fails = |n: u32| matches!(n % 5, 0 | 4) || (7..9).contains(&n) || (10..15).contains(&n);
    let executor = ThreadPoolExecutor::new(2);
    let results: Vec<_> = executor
        .map(
            move |n: u32| {
                assert!(!fails(n), "item {n} fails");
                n
            },
            0..23,
        )
        .chunksize(5)
        .collect();
    assert_eq!(results.len(), 23);
    for (n, result) in (0..).zip(&results) {
        if fails(n) {
            assert!(
                matches!(result, Err(Error::Panicked { message, .. }) if *message == format!("item {n} fails")),
                "item {n}: {result:?}"
            );
        } else {
            assert_eq!(*result, Ok(n), "item {n}");
        }
    }
}

#[test]
fn a_failing_item_is_its_own_error_and_iteration_goes_on() {
    // gh-108518: an exception in one item must not end the iteration.
    let executor = ThreadPoolExecutor::new(2);
    let mut results = executor.map(
        |n: u32| {
            assert!(n % 3 != 1, "item {n} fails");
            n
        },
        0..7,
    );
    for n in 0..7 {
        let result = results.next().expect("one item per input");
        if n % 3 == 1 {
            assert!(
                matches!(&result, Err(Error::Panicked { message, .. }) if *message == format!("item {n} fails")),
                "item {n}: {result:?}"
            );
        } else {
            assert_eq!(result, Ok(n));
        }
    }
    assert_eq!(results.next(), None);
}

/// A `map` whose `setting` (`buffer_size` or `chunksize`) is zero yields
/// one `InvalidArgument` naming it, then ends, having submitted nothing.
fn zero_is_an_invalid_argument_then_the_end(setting: &str) {
    let executor = ThreadPoolExecutor::new(2);
    let (inputs, pulled) = counted(0..5);
    let map = executor.map(|n: u8| n, inputs);
    let mut results = match setting {
        "buffer_size" => map.buffer_size(0),
        "chunksize" => map.chunksize(0),
        other => panic!("no such setting: {other}"),
    };
    assert!(matches!(results.next(), Some(Err(Error::InvalidArgument(m))) if m.contains(setting)));
    assert_eq!(results.next(), None);
    assert_eq!(pulled.load(Ordering::SeqCst), 0, "nothing was submitted");
}

#[test]
fn buffer_size_zero_is_an_invalid_argument_then_the_end() {
    zero_is_an_invalid_argument_then_the_end("buffer_size");
}

#[test]
fn chunksize_zero_is_an_invalid_argument_then_the_end() {
    zero_is_an_invalid_argument_then_the_end("chunksize");
}

fn sometimes_fails(n: u32) -> u32 {
    assert!(n % 17 != 5, "item {n} fails");
    n * n
}

#[test]
fn chunksize_gives_the_same_results_as_one_at_a_time() {
    let executor = ThreadPoolExecutor::new(3);
    let one_by_one: Vec<_> = executor.map(sometimes_fails, 0..103).collect();
    assert_eq!(one_by_one.len(), 103);
    assert_eq!(one_by_one.iter().filter(|r| r.is_err()).count(), 6);
    for chunksize in [2, 7, 10, 103, 500] {
        let chunked: Vec<_> = executor
            .map(sometimes_fails, 0..103)
            .chunksize(chunksize)
            .collect();
        assert_eq!(chunked, one_by_one, "chunksize {chunksize}");
    }
}

#[test]
fn a_panic_inside_a_chunk_fails_only_that_item() {
    let executor = ThreadPoolExecutor::new(1);
    let results: Vec<_> = executor
        .map(
            |n: u32| {
                if n == 2 {
                    panic!("the middle of the chunk");
                }
                n
            },
            0..5,
        )
        .chunksize(5)
        .collect();
    assert_eq!(results[..2], [Ok(0), Ok(1)]);
    assert!(
        matches!(&results[2], Err(Error::Panicked { message, .. }) if message == "the middle of the chunk")
    );
    assert_eq!(results[3..], [Ok(3), Ok(4)]);
}

/// A task that returns its input at once, except for the inputs from
/// `first_met`: each of those waits until all of them have started, and
/// panics if they have not within [`PATIENCE`].
fn meet_at_the_end(first_met: u32) -> impl Fn(u32) -> u32 + Send + Sync + 'static {
    let met = Arc::new((Mutex::new(0), Condvar::new()));
    move |n| {
        if n >= first_met {
            let (count, arrived) = &*met;
            let mut count = count.lock().unwrap();
            *count += 1;
            arrived.notify_all();
            let (count, waited) = arrived
                .wait_timeout_while(count, PATIENCE, |count| *count < 2)
                .unwrap();
            assert!(
                !waited.timed_out(),
                "only {} of the last two started",
                *count
            );
        }
        n
    }
}

#[test]
fn the_last_inputs_go_one_per_chunk_so_every_worker_works_to_the_end() {
    // Fast tasks grow the chunks; the last two inputs can only finish if
    // they run at once, on the two workers, so they must be in two chunks.
    let executor = ThreadPoolExecutor::new(2);
    const N: u32 = 200_000;
    for unordered in [false, true] {
        let task = meet_at_the_end(N - 2);
        let mut results: Vec<_> = match unordered {
            false => executor.map(task, 0..N).collect::<Result<_, _>>(),
            true => executor.map_unordered(task, 0..N).collect::<Result<_, _>>(),
        }
        .unwrap();
        results.sort_unstable();
        assert_eq!(
            results,
            (0..N).collect::<Vec<_>>(),
            "unordered: {unordered}"
        );
    }
}

/// An input of `0..before`, then one more input, `before`, once `gate`
/// gives (or is dropped): until then it blocks, as a socket or a channel
/// may.
fn stalls_after(before: u32, gate: mpsc::Receiver<()>) -> impl Iterator<Item = u32> + Send {
    (0..before).chain(std::iter::once_with(move || {
        let _ = gate.recv();
        before
    }))
}

#[test]
fn finished_results_come_out_while_the_input_stalls() {
    // Before (and without `pull_on_thread`): the first `next` pulled inputs up to the look-ahead, on the
    // caller's thread, and blocked in the stalled input: no result came
    // out until the gate opened.
    for (unordered, chunksize) in [(false, 1), (false, 2), (true, 1)] {
        let (open, gate) = mpsc::channel();
        let (yielded, results) = mpsc::channel();
        // The map runs on a thread of the test's, so that a map that blocks
        // fails the test instead of hanging it.
        let consumer = thread::spawn(move || {
            let executor = ThreadPoolExecutor::new(2);
            let inputs = stalls_after(4, gate);
            let map = match unordered {
                true => executor.map_unordered(|n: u32| n * 10, inputs),
                false => executor.map(|n: u32| n * 10, inputs),
            };
            for result in map.pull_on_thread().chunksize(chunksize) {
                yielded.send(result).unwrap();
            }
        });
        let mut first = (0..4)
            .map(|_| {
                results
                    .recv_timeout(PATIENCE)
                    .expect("a result while the input stalls")
            })
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        first.sort_unstable();
        assert_eq!(first, [0, 10, 20, 30], "chunksize {chunksize}");
        open.send(()).unwrap();
        assert_eq!(results.recv_timeout(PATIENCE), Ok(Ok(40)));
        consumer.join().unwrap();
        assert_eq!(results.try_recv(), Err(TryRecvError::Disconnected));
    }
}

#[test]
fn the_timeout_holds_while_the_input_stalls() {
    // Before (and without `pull_on_thread`): the map blocked in the stalled input, and its deadline never
    // came. Time is the behaviour: a short timeout, and a gate that stays
    // shut until the timeout has been seen.
    let (open, gate) = mpsc::channel();
    let (yielded, results) = mpsc::channel();
    let start = Instant::now();
    let consumer = thread::spawn(move || {
        let executor = ThreadPoolExecutor::new(2);
        let map = executor
            .map(|n: u32| n * 10, stalls_after(2, gate))
            .pull_on_thread()
            .chunksize(1)
            .timeout(Duration::from_millis(300));
        for result in map {
            yielded.send(result).unwrap();
        }
    });
    for expected in [Ok(0), Ok(10), Err(Error::Timeout)] {
        assert_eq!(results.recv_timeout(PATIENCE), Ok(expected));
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < PATIENCE, "{took:?}");
    consumer.join().unwrap();
    assert_eq!(
        results.try_recv(),
        Err(TryRecvError::Disconnected),
        "the map ended"
    );
    drop(open); // only now: the input was stalled throughout
}

#[test]
fn a_panicking_input_is_the_maps_last_item() {
    // Before (and without `pull_on_thread`): the panic unwound out of
    // `next`, on the caller's thread.
    let executor = ThreadPoolExecutor::new(2);
    let inputs = (0..5_u32).inspect(|&n| assert!(n < 3, "input {n} cannot be made"));
    let results: Vec<_> = executor
        .map(|n: u32| n * 10, inputs)
        .pull_on_thread()
        .chunksize(1)
        .collect();
    assert_eq!(results[..3], [Ok(0), Ok(10), Ok(20)]);
    assert!(
        matches!(&results[3], Err(Error::Panicked { message, .. })
            if message.contains("input iterator panicked") && message.contains("input 3 cannot be made")),
        "{results:?}"
    );
    assert_eq!(results.len(), 4, "the map ends there");
}
