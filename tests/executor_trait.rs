//! Generic code over `impl Executor`, with plain `fn` tasks and `Payload`
//! data: submit, map (with its settings), map_unordered, starmap, errors,
//! and shutdown. Everything
//! here is written once against the trait and run on a thread pool.

use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use concurrent_futures::{Error, Executor, Shutdown, ThreadPoolExecutor};
use serde::{Deserialize, Serialize};

mod common;
use common::PATIENCE;

fn tugas(n: u32) -> String {
    format!("Tugas {n} selesai")
}

fn square(n: u64) -> u64 {
    n * n
}

fn fails_on_three(n: u32) -> u32 {
    assert_ne!(n, 3, "three is unlucky");
    n
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    item: String,
    quantity: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Invoice {
    line: String,
    total_cents: u64,
}

fn bill(order: Order) -> Invoice {
    Invoice {
        line: format!("{} x {}", order.quantity, order.item),
        total_cents: u64::from(order.quantity) * 250,
    }
}

fn submit_all(executor: &impl Executor) -> Vec<Result<String, Error>> {
    let futures: Vec<_> = (1..=3).map(|n| executor.submit(tugas, n)).collect();
    futures.iter().map(|f| f.result_timeout(PATIENCE)).collect()
}

fn map_all<E: Executor>(executor: &E) -> Vec<Result<u64, Error>> {
    executor.map(square, 1..=5).collect()
}

#[test]
fn generic_submit_runs_plain_functions() {
    let executor = ThreadPoolExecutor::new(2);
    assert_eq!(
        submit_all(&executor),
        [
            Ok("Tugas 1 selesai".to_owned()),
            Ok("Tugas 2 selesai".to_owned()),
            Ok("Tugas 3 selesai".to_owned()),
        ]
    );
}

#[test]
fn generic_map_keeps_input_order() {
    let executor = ThreadPoolExecutor::new(3);
    assert_eq!(map_all(&executor), [Ok(1), Ok(4), Ok(9), Ok(16), Ok(25)]);
}

#[test]
fn generic_map_settings_work_through_the_trait() {
    fn chunked<E: Executor>(executor: &E) -> Vec<Result<u64, Error>> {
        executor
            .map(square, 0..100)
            .chunksize(7)
            .buffer_size(14)
            .timeout(PATIENCE)
            .collect()
    }
    let executor = ThreadPoolExecutor::new(2);
    let expected: Vec<_> = (0..100).map(|n| Ok(n * n)).collect();
    assert_eq!(chunked(&executor), expected);
}

#[test]
fn generic_map_unordered_yields_every_result_once() {
    fn squares_as_they_finish<E: Executor>(executor: &E) -> Vec<u64> {
        let mut squares: Vec<_> = executor
            .map_unordered(square, 0..100)
            .chunksize(3)
            .timeout(PATIENCE)
            .collect::<Result<_, _>>()
            .unwrap();
        squares.sort_unstable();
        squares
    }
    let executor = ThreadPoolExecutor::new(3);
    assert_eq!(
        squares_as_they_finish(&executor),
        (0..100).map(|n| n * n).collect::<Vec<_>>()
    );
}

fn pangkat(basis: u64, eksponen: u32) -> u64 {
    basis.pow(eksponen)
}

#[test]
fn generic_starmap_spreads_pairs_in_input_order() {
    fn powers<E: Executor>(executor: &E) -> Vec<Result<u64, Error>> {
        executor
            .starmap(pangkat, (0..30).map(|n| (2, n)))
            .chunksize(4)
            .timeout(PATIENCE)
            .collect()
    }
    let executor = ThreadPoolExecutor::new(3);
    assert_eq!(
        powers(&executor),
        (0..30).map(|n| Ok(2_u64.pow(n))).collect::<Vec<_>>()
    );
}

#[test]
fn generic_starmap_takes_a_closure_that_captures_nothing() {
    fn sums(executor: &impl Executor) -> Vec<Result<i64, Error>> {
        executor
            .starmap(|a: i64, b: i64| a + b, [(1, 2), (-5, 5)])
            .collect()
    }
    assert_eq!(sums(&ThreadPoolExecutor::new(1)), [Ok(3), Ok(0)]);
}

#[test]
fn closures_that_capture_nothing_coerce_to_fn() {
    fn double_all(executor: &impl Executor) -> Vec<Result<i32, Error>> {
        executor.map(|n: i32| n * 2, [1, 2, 3]).collect()
    }
    let executor = ThreadPoolExecutor::new(1);
    assert_eq!(double_all(&executor), [Ok(2), Ok(4), Ok(6)]);
}

#[test]
fn structured_payloads_go_through() {
    fn bill_all(executor: &impl Executor, orders: Vec<Order>) -> Vec<Result<Invoice, Error>> {
        executor.map(bill, orders).collect()
    }
    let executor = ThreadPoolExecutor::new(2);
    let orders = vec![
        Order {
            item: "kopi".into(),
            quantity: 2,
        },
        Order {
            item: "teh".into(),
            quantity: 3,
        },
    ];
    assert_eq!(
        bill_all(&executor, orders),
        [
            Ok(Invoice {
                line: "2 x kopi".into(),
                total_cents: 500
            }),
            Ok(Invoice {
                line: "3 x teh".into(),
                total_cents: 750
            }),
        ]
    );
}

#[test]
fn a_panicking_task_is_its_items_error_through_the_trait() {
    fn run(executor: &impl Executor) -> (Vec<Result<u32, Error>>, Result<u32, Error>) {
        let mapped = executor.map(fails_on_three, 1..=5).collect();
        let submitted = executor.submit(fails_on_three, 3).result_timeout(PATIENCE);
        (mapped, submitted)
    }
    let executor = ThreadPoolExecutor::new(2);
    let (mapped, submitted) = run(&executor);
    assert_eq!(mapped.len(), 5);
    assert_eq!(mapped[..2], [Ok(1), Ok(2)]);
    assert!(
        matches!(&mapped[2], Err(Error::Panicked { message, .. }) if message.contains("three is unlucky"))
    );
    assert_eq!(mapped[3..], [Ok(4), Ok(5)]);
    assert!(matches!(submitted, Err(Error::Panicked { .. })));
}

#[test]
fn generic_shutdown_waits_and_then_refuses() {
    fn run(executor: &impl Executor) -> (bool, Result<u64, Error>) {
        let futures: Vec<_> = (0..20).map(|n| executor.submit(square, n)).collect();
        executor.shutdown();
        let all_done = futures.iter().all(|f| f.done());
        (
            all_done,
            executor.submit(square, 2).result_timeout(PATIENCE),
        )
    }
    let executor = ThreadPoolExecutor::new(2);
    assert_eq!(run(&executor), (true, Err(Error::Shutdown)));
}

/// The gate the held task of `generic_shutdown_with_cancels_queued_work`
/// blocks on, and the channel it reports its start on. Plain functions
/// cannot capture, so they live in statics; only that test uses them.
static HELD_STARTED: Mutex<Option<Sender<()>>> = Mutex::new(None);
static HELD_GATE: Mutex<Option<Receiver<()>>> = Mutex::new(None);

fn held(_: ()) -> bool {
    let started = HELD_STARTED.lock().unwrap().take().expect("one held task");
    started.send(()).unwrap();
    let gate = HELD_GATE.lock().unwrap().take().expect("one held task");
    gate.recv().is_ok()
}

#[test]
fn generic_shutdown_with_cancels_queued_work() {
    type Outcomes = (Vec<Result<String, Error>>, Result<bool, Error>);
    fn run(executor: &impl Executor, started: &Receiver<()>, release: &Sender<()>) -> Outcomes {
        let running = executor.submit(held, ());
        started
            .recv_timeout(PATIENCE)
            .expect("the held task starts");
        let queued: Vec<_> = (0..5).map(|n| executor.submit(tugas, n)).collect();
        executor.shutdown_with(Shutdown {
            wait: false,
            cancel_futures: true,
        });
        let queued = queued
            .iter()
            .map(|f| f.result_timeout(Duration::ZERO))
            .collect();
        release.send(()).unwrap();
        (queued, running.result_timeout(PATIENCE))
    }
    let (started_tx, started) = mpsc::channel();
    let (release, gate) = mpsc::channel();
    *HELD_STARTED.lock().unwrap() = Some(started_tx);
    *HELD_GATE.lock().unwrap() = Some(gate);
    let executor = ThreadPoolExecutor::new(1);
    let (queued, running) = run(&executor, &started, &release);
    assert_eq!(
        queued,
        vec![Err(Error::Cancelled); 5],
        "queued work cancelled at once"
    );
    assert_eq!(running, Ok(true), "the running task finished");
}
