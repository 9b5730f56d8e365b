//! `ThreadPoolExecutor::scope` and `map_scoped`: tasks that borrow from the
//! caller's stack, a scope that returns only once every task is done (run,
//! or dropped unrun), panics that stay with their task or go on after the
//! tasks, and no deadlock when one of the pool's own tasks opens a scope.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, mpsc};
use std::thread;

use concurrent_futures::{Error, Shutdown, ThreadPoolExecutor};

mod common;
use common::{GRACE, PATIENCE, hold};

/// Counts its drops in a counter it borrows, as only a scoped task can.
struct DropSpy<'a>(&'a AtomicUsize);

impl Drop for DropSpy<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Runs `f` on a thread of its own and returns what it returns, so that a
/// deadlock fails the test after `PATIENCE` instead of hanging it.
fn within_patience<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    thread::spawn(move || done.send(f()).unwrap());
    result
        .recv_timeout(PATIENCE)
        .expect("should finish, neither deadlocked nor panicked")
}

/// Starts a thread that waits for `started`, gives a buggy scope `GRACE` to
/// return too early, then notes the release in `released` and releases.
fn release_later<'t>(
    t: &'t thread::Scope<'t, '_>,
    started: mpsc::Receiver<()>,
    released: &'t AtomicBool,
    release: mpsc::Sender<()>,
) {
    t.spawn(move || {
        started
            .recv_timeout(PATIENCE)
            .expect("the held task should start");
        thread::sleep(GRACE);
        released.store(true, SeqCst);
        release.send(()).unwrap();
    });
}

/// The task [`release_later`] releases: it reports on `started`, waits
/// for `gate` (at most [`PATIENCE`]), then counts itself in `ran`.
fn held_task(
    started: mpsc::Sender<()>,
    gate: mpsc::Receiver<()>,
    ran: &AtomicUsize,
) -> impl FnOnce(()) + Send + '_ {
    move |()| {
        started.send(()).unwrap();
        let _ = gate.recv_timeout(PATIENCE);
        ran.fetch_add(1, SeqCst);
    }
}

#[test]
fn tasks_borrow_and_mutate_disjoint_chunks() {
    let executor = ThreadPoolExecutor::new(3);
    let mut data = vec![0_usize; 100];
    let base = 1000;
    executor.scope(|s| {
        for (i, chunk) in data.chunks_mut(7).enumerate() {
            let base = &base;
            drop(s.submit(move |()| chunk.iter_mut().for_each(|x| *x = base + i), ()));
        }
    });
    let expected: Vec<_> = (0..100).map(|n| 1000 + n / 7).collect();
    assert_eq!(data, expected);
}

#[test]
fn the_scope_returns_only_after_every_task_ran() {
    let executor = ThreadPoolExecutor::new(2);
    let ran = AtomicUsize::new(0);
    let released = AtomicBool::new(false);
    let (started, wait_started) = mpsc::channel();
    let (release, gate) = mpsc::channel();
    thread::scope(|t| {
        release_later(t, wait_started, &released, release);
        executor.scope(|s| {
            let ran = &ran;
            drop(s.submit(held_task(started, gate, ran), ()));
            for _ in 0..5 {
                drop(s.submit(|()| ran.fetch_add(1, SeqCst), ()));
            }
        });
        assert!(
            released.load(SeqCst),
            "returned before the held task was released"
        );
        assert_eq!(ran.load(SeqCst), 6);
    });
}

#[test]
fn a_panicking_task_fails_only_its_own_future() {
    let executor = ThreadPoolExecutor::new(2);
    let numbers = [1, 2, 3];
    let futures = executor.scope(|s| {
        numbers
            .iter()
            .map(|n| {
                s.submit(
                    move |()| {
                        assert_ne!(*n, 2, "task {n} fails");
                        n * 10
                    },
                    (),
                )
            })
            .collect::<Vec<_>>()
    });
    let results: Vec<_> = futures.iter().map(|future| future.result()).collect();
    assert_eq!(results[0], Ok(10));
    assert!(
        matches!(&results[1], Err(Error::Panicked { message, .. }) if message.contains("task 2 fails")),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2], Ok(30));
}

#[test]
fn a_panic_in_the_closure_goes_on_once_the_tasks_are_done() {
    let executor = ThreadPoolExecutor::new(2);
    let ran = AtomicUsize::new(0);
    let released = AtomicBool::new(false);
    let (started, wait_started) = mpsc::channel();
    let (release, gate) = mpsc::channel();
    let outcome = thread::scope(|t| {
        release_later(t, wait_started, &released, release);
        panic::catch_unwind(AssertUnwindSafe(|| {
            executor.scope(|s| {
                let ran = &ran;
                drop(s.submit(held_task(started, gate, ran), ()));
                panic!("the closure fails");
            })
        }))
    });
    let payload = outcome.expect_err("the closure's panic goes on");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"the closure fails"));
    assert!(
        released.load(SeqCst),
        "went on before the held task was released"
    );
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn a_cancelled_tasks_closure_is_dropped_before_the_scope_returns() {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, release) = hold(&executor);
    let drops = AtomicUsize::new(0);
    let ran = AtomicBool::new(false);
    let future = executor.scope(|s| {
        let spy = DropSpy(&drops);
        let future = s.submit(
            |()| {
                let _spy = spy;
                ran.store(true, SeqCst);
            },
            (),
        );
        assert!(future.cancel(), "queued behind the held task");
        // The worker may now drop the task, or the scope's thread may.
        release.send(()).unwrap();
        future
    });
    assert_eq!(drops.load(SeqCst), 1);
    assert!(!ran.load(SeqCst));
    assert_eq!(future.result(), Err(Error::Cancelled));
    assert_eq!(busy.result(), Ok(true));
}

/// Panics when dropped.
struct DropBomb;

impl Drop for DropBomb {
    fn drop(&mut self) {
        panic!("dropping fails");
    }
}

#[test]
fn a_panic_dropping_a_task_goes_on_once_the_other_tasks_are_done() {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, release) = hold(&executor);
    let ran = AtomicBool::new(false);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        executor.scope(|s| {
            let bomb = DropBomb;
            let doomed = s.submit(move |()| drop(bomb), ());
            assert!(doomed.cancel(), "queued behind the held task");
            // Queued after it: the scope's thread drops the bomb, then runs this.
            drop(s.submit(|()| ran.store(true, SeqCst), ()));
        });
    }));
    let payload = outcome.expect_err("the drop's panic goes on");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"dropping fails"));
    assert!(ran.load(SeqCst), "the scope waited for the other task");
    release.send(()).unwrap();
    assert_eq!(busy.result(), Ok(true));
}

#[test]
fn a_shutdown_drops_queued_scoped_tasks_and_refuses_new_ones() {
    let executor = ThreadPoolExecutor::new(1);
    let (busy, release) = hold(&executor);
    let drops = AtomicUsize::new(0);
    executor.scope(|s| {
        let spy = DropSpy(&drops);
        let queued = s.submit(move |()| drop(spy), ());
        executor.shutdown_with(Shutdown {
            wait: false,
            cancel_futures: true,
        });
        assert!(queued.cancelled());
        assert_eq!(drops.load(SeqCst), 1, "the shutdown dropped the task");
        assert_eq!(s.submit(|()| 1, ()).result(), Err(Error::Shutdown));
        release.send(()).unwrap();
    });
    assert_eq!(busy.result(), Ok(true));
}

#[test]
fn tasks_may_submit_more_tasks_to_their_scope() {
    let executor = ThreadPoolExecutor::new(2);
    let ran = AtomicUsize::new(0);
    executor.scope(|s| {
        let ran = &ran;
        drop(s.submit(
            move |()| {
                for _ in 0..3 {
                    drop(s.submit(|()| ran.fetch_add(1, SeqCst), ()));
                }
            },
            (),
        ));
    });
    assert_eq!(ran.load(SeqCst), 3);
}

#[test]
fn a_scope_in_a_task_of_a_one_worker_pool_does_not_deadlock() {
    let results = within_patience(|| {
        let executor = Arc::new(ThreadPoolExecutor::new(1));
        let pool = Arc::clone(&executor);
        let outer = executor.submit(
            move |()| {
                let data = [1, 2, 3];
                let futures = pool.scope(|s| {
                    data.iter()
                        .map(|n| s.submit(move |()| n * 2, ()))
                        .collect::<Vec<_>>()
                });
                futures.iter().map(|f| f.result()).collect::<Vec<_>>()
            },
            (),
        );
        outer.result()
    });
    assert_eq!(results, Ok(vec![Ok(2), Ok(4), Ok(6)]));
}

#[test]
fn map_scoped_keeps_input_order() {
    let executor = ThreadPoolExecutor::new(3);
    let items: Vec<u64> = (0..1000).collect();
    let factor = 3;
    let results = executor.map_scoped(|n| n * factor, &items);
    let expected: Vec<_> = items.iter().map(|n| Ok(n * 3)).collect();
    assert_eq!(results, expected);
}

#[test]
fn map_scoped_fails_only_the_panicking_item() {
    // One worker: four chunks of two, so item 3 shares its chunk with 4.
    let executor = ThreadPoolExecutor::new(1);
    let results = executor.map_scoped(
        |n: &u32| {
            assert_ne!(*n, 3, "item {n} fails");
            n + 1
        },
        &[1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert!(
        matches!(&results[2], Err(Error::Panicked { message, .. }) if message.contains("item 3 fails")),
        "{:?}",
        results[2]
    );
    assert_eq!(results[..2], [Ok(2), Ok(3)]);
    assert_eq!(results[3..], [Ok(5), Ok(6), Ok(7), Ok(8), Ok(9)]);
}

#[test]
fn map_scoped_over_an_empty_slice_is_empty() {
    let executor = ThreadPoolExecutor::new(2);
    let none: [u8; 0] = [];
    assert!(executor.map_scoped(|n| *n, &none).is_empty());
}

#[test]
fn map_scoped_after_shutdown_fails_every_item() {
    let executor = ThreadPoolExecutor::new(2);
    executor.shutdown();
    let results = executor.map_scoped(|n| *n, &[1, 2, 3]);
    assert_eq!(results, vec![Err(Error::Shutdown); 3]);
}
