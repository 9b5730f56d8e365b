//! A task's panic is caught and becomes that task's `Error::Panicked`, with
//! its message and location; the worker goes on serving; and no future is
//! ever left unresolved, whatever the tasks do.

use std::collections::HashSet;
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use concurrent_futures::{Error, Future, ReturnWhen, Shutdown, ThreadPoolExecutor, wait};

mod common;
use common::{PATIENCE, current_name, named};

#[test]
fn a_panic_becomes_panicked_with_its_message_and_location() {
    let executor = ThreadPoolExecutor::new(1);
    let line = line!() + 1;
    let future = executor.submit(|n: u32| -> u32 { panic!("task {n} failed") }, 7);
    let Err(Error::Panicked {
        message, location, ..
    }) = future.result_timeout(PATIENCE)
    else {
        panic!("expected Error::Panicked");
    };
    assert_eq!(message, "task 7 failed");
    let location = location.expect("the location of the panic is captured");
    let expected = format!("{}:{line}:", file!());
    assert!(
        location.starts_with(&expected),
        "location {location:?} should start with {expected:?}"
    );
}

#[test]
fn the_error_message_names_the_panic() {
    let executor = ThreadPoolExecutor::new(1);
    let future = executor.submit(|()| -> u8 { panic!("disk on fire") }, ());
    let error = future.result_timeout(PATIENCE).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("disk on fire"), "{text}");
    assert!(text.contains(file!()), "{text}");
}

#[test]
fn a_panic_with_a_non_string_payload_still_fails_the_future() {
    let executor = ThreadPoolExecutor::new(1);
    let future = executor.submit(|()| -> u8 { std::panic::panic_any(42_i32) }, ());
    assert!(matches!(
        future.result_timeout(PATIENCE),
        Err(Error::Panicked { .. })
    ));
}

#[test]
fn the_worker_survives_a_panic_and_serves_the_next_task() {
    let executor = named("survivor", 1);
    let failing = executor.submit(
        |()| -> String {
            let _ = current_name();
            panic!("first task panics")
        },
        (),
    );
    let next = executor.submit(|()| current_name(), ());
    assert!(matches!(
        failing.result_timeout(PATIENCE),
        Err(Error::Panicked { .. })
    ));
    assert_eq!(
        next.result_timeout(PATIENCE).as_deref(),
        Ok("survivor_0"),
        "the same thread, not a replacement, serves the next task"
    );
}

#[test]
fn many_panics_in_a_row_do_not_wear_the_pool_out() {
    let executor = named("sturdy", 1);
    let futures: Vec<_> = (0..50)
        .map(|n| {
            executor.submit(
                move |()| {
                    assert!(n % 2 == 0, "odd task {n}");
                    (n, current_name())
                },
                (),
            )
        })
        .collect();
    for (n, future) in (0..50).zip(&futures) {
        match future.result_timeout(PATIENCE) {
            Ok((got, name)) => {
                assert!(n % 2 == 0);
                assert_eq!((got, name.as_str()), (n, "sturdy_0"));
            }
            Err(Error::Panicked { message, .. }) => {
                assert!(n % 2 == 1);
                assert_eq!(message, format!("odd task {n}"));
            }
            Err(other) => panic!("task {n}: unexpected {other:?}"),
        }
    }
}

#[test]
fn a_panic_in_map_is_that_items_error_only() {
    let executor = ThreadPoolExecutor::new(2);
    let results: Vec<_> = executor
        .map(
            |n: u32| {
                assert_ne!(n, 2, "two is bad");
                n * 10
            },
            0..5,
        )
        .collect();
    assert_eq!(results.len(), 5);
    assert_eq!(results[..2], [Ok(0), Ok(10)]);
    assert!(
        matches!(&results[2], Err(Error::Panicked { message, .. }) if message.contains("two is bad"))
    );
    assert_eq!(results[3..], [Ok(30), Ok(40)]);
}

/// What each task does, chosen by its index.
fn chaos(n: u32, started: &Sender<u32>) -> u32 {
    started.send(n).unwrap();
    match n % 3 {
        0 => n,
        1 => panic!("chaos {n}"),
        _ => n * 2,
    }
}

/// Submits [`chaos`] for inputs `0..count`, each reporting its start on
/// `started`.
fn submit_chaos(
    executor: &ThreadPoolExecutor,
    count: u32,
    started: &mpsc::Sender<u32>,
) -> Vec<Future<u32>> {
    (0..count)
        .map(|n| {
            let started = started.clone();
            executor.submit(move |n| chaos(n, &started), n)
        })
        .collect()
}

#[test]
fn no_future_is_left_unresolved_whatever_the_tasks_do() {
    let executor = ThreadPoolExecutor::new(3);
    let (started, _starts) = mpsc::channel();
    let futures = submit_chaos(&executor, 300, &started);
    // Cancel every fifth: each cancel either wins (pending) or loses (running
    // or done); both are fine, but the answer must match the outcome.
    let cancelled: Vec<bool> = futures
        .iter()
        .enumerate()
        .map(|(n, f)| n % 5 == 4 && f.cancel())
        .collect();
    // Some callbacks panic too.
    for future in futures.iter().step_by(7) {
        future.add_done_callback(|f| assert!(!f.done(), "a callback that panics"));
    }
    executor.shutdown();

    let (done, not_done) = wait(&futures, ReturnWhen::AllCompleted, Some(Duration::ZERO));
    assert_eq!((done.len(), not_done.len()), (300, 0));
    for ((n, future), was_cancelled) in (0..).zip(&futures).zip(cancelled) {
        assert!(future.done(), "future {n} unresolved after shutdown");
        let result = future.result_timeout(Duration::ZERO);
        if was_cancelled {
            assert_eq!(result, Err(Error::Cancelled), "future {n}");
            continue;
        }
        match n % 3 {
            0 => assert_eq!(result, Ok(n)),
            1 => assert!(
                matches!(&result, Err(Error::Panicked { message, .. }) if *message == format!("chaos {n}")),
                "future {n}: {result:?}"
            ),
            _ => assert_eq!(result, Ok(n * 2)),
        }
    }
}

#[test]
fn no_future_is_left_unresolved_when_shutdown_cancels_the_queue() {
    let executor = ThreadPoolExecutor::new(2);
    let (started, starts) = mpsc::channel();
    let futures = submit_chaos(&executor, 200, &started);
    drop(started);
    executor.shutdown_with(Shutdown {
        wait: true,
        cancel_futures: true,
    });
    let ran: HashSet<u32> = starts.try_iter().collect();
    for (n, future) in (0..).zip(&futures) {
        assert!(future.done(), "future {n} unresolved after shutdown");
        let result = future.result_timeout(Duration::ZERO);
        if ran.contains(&n) {
            assert_ne!(result, Err(Error::Cancelled), "task {n} ran");
        } else {
            assert_eq!(result, Err(Error::Cancelled), "task {n} never ran");
        }
    }
}
