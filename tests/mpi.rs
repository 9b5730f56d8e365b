//! The MPI executor (feature `mpi`), in whichever mode this binary was
//! launched in:
//!
//! - `cargo test --features mpi --test mpi` runs it alone (an MPI
//!   singleton): every executor spawns its workers with `MPI_Comm_spawn`;
//! - `mpiexec -n 3 <this test binary>` runs it as a static world: rank 0
//!   runs these cases, ranks 1 and 2 serve from inside `init()`.
//!
//! `.ci/run` does both, oversubscribed on two cores. Running as root needs
//! `OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`, and more
//! processes than cores `OMPI_MCA_rmaps_base_oversubscribe=1`.
//!
//! Across hosts: `.ci/mpi-hosts-check` runs it with rank 0 on one simulated
//! host and the serving ranks on two others (`.ci/mpi-hosts`), which sets
//! `MPI_HOSTS_AGENT` (the command that runs a command on a host, like ssh).
//! Then every task must run on another host, and two cases that need the
//! hosts run when asked for:
//!
//! - `MPI_TEST_KILL_ON=HOST`: a serving rank on HOST is killed mid-task
//!   (under `mpiexec --enable-recovery`, or `mpiexec` kills rank 0 too);
//! - `MPI_TEST_OTHER_BUILD_ON=HOST`: HOST runs another build of this test,
//!   and must be refused (run this case alone: no pool can be built).
//!
//! Spawn mode across hosts runs under `mpiexec -n 1` (the spawned ranks go
//! to the hostfile's free slots, on the other hosts). Run alone, as an MPI
//! singleton, the program's own Open MPI daemon places them on its host
//! only. A dead spawned rank makes `mpiexec` kill rank 0 too unless it runs
//! with `--enable-recovery`, so `.ci/mpi-hosts-check` passes it there.

#[path = "common/process_fixtures.rs"]
mod fixtures;
#[path = "common/harness.rs"]
mod harness;
#[path = "common/shared_forms.rs"]
mod shared_forms;

use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{
    Error, Executor, LOOK_AHEAD_PER_WORKER, MpiPoolExecutor, Shared, Shutdown, ThreadPoolExecutor,
    as_completed,
};
use fixtures::{PATIENCE, settle};

fn main() {
    concurrent_futures::init(); // first line: in a worker rank it never returns
    std::hint::black_box(BUILD); // so that another build has other bytes
    harness::run(harness::cases![
        a_result_comes_back_from_another_rank,
        the_mode_follows_the_launch,
        map_yields_results_in_input_order,
        results_do_not_depend_on_the_chunk_size,
        quick_tasks_grow_the_default_chunks,
        a_panic_fails_only_its_own_task,
        a_rank_survives_an_argument_whose_deserialize_panics,
        starmap_and_map_unordered_work,
        generic_executor_code_runs_on_mpi,
        shared_values_work_on_mpi,
        a_shared_value_goes_to_each_rank_once,
        the_rest_of_a_cut_chunk_takes_its_shared_value_along,
        futures_work_with_as_completed,
        a_closed_pool_refuses_new_tasks,
        shutdown_waits_for_every_submitted_task,
        map_gives_up_at_its_timeout,
        results_do_not_depend_on_the_buffer_size,
        pools_come_and_go,
        two_executors_busy_at_once_keep_to_their_own,
        three_executors_busy_at_once_keep_to_their_own,
        a_second_shutdown_waits_and_cancels,
        a_queued_task_is_pending_and_cancels_without_a_rank,
        cancel_futures_cancels_every_task_not_started,
        short_tasks_pass_a_held_one,
        a_chunk_with_a_held_input_gives_its_rest_to_the_other_rank,
        cuts_racing_the_items_lose_none_and_run_none_twice,
        the_default_size_follows_mpi,
        spawn_settings_reach_the_workers,
        bad_settings_are_errors,
        initargs_set_a_global_that_every_task_reads,
        a_failing_initializer_breaks_its_pool,
        // Last: they kill ranks.
        a_dead_rank_breaks_its_pool_without_hanging,
        a_killed_rank_on_another_host_breaks_its_pool,
        a_rank_of_another_build_is_refused,
    ]);
}

/// A different build of this test, for `MPI_TEST_OTHER_BUILD_ON`: the
/// same code, other bytes.
const BUILD: Option<&str> = option_env!("CF_MPI_TEST_BUILD");

/// The static world's size, if this binary runs under `mpiexec -n N > 1`
/// (or `srun -n N > 1`, with Slurm's PMIx).
fn world_size() -> Option<usize> {
    let size = std::env::var("OMPI_COMM_WORLD_SIZE").or_else(|_| {
        std::env::var("PMIX_RANK").and_then(|_| std::env::var("SLURM_STEP_NUM_TASKS"))
    });
    let size: usize = size.ok()?.parse().ok()?;
    (size > 1).then_some(size)
}

/// This process's rank in its own `MPI_COMM_WORLD`, as its launcher says.
fn world_rank() -> Option<String> {
    std::env::var("OMPI_COMM_WORLD_RANK")
        .or_else(|_| std::env::var("PMIX_RANK"))
        .ok()
}

/// Where a task ran: its pid, whether it was spawned as a worker, its
/// rank in its own `MPI_COMM_WORLD`, and its host.
fn where_am_i(_: ()) -> (u32, bool, Option<String>, String) {
    let spawned = std::env::args()
        .nth(1)
        .is_some_and(|a| a.contains("mpi-worker"));
    (std::process::id(), spawned, world_rank(), hostname())
}

fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("a hostname");
    name.trim().to_owned()
}

/// On the simulated hosts of `.ci/mpi-hosts`: the command that runs a
/// command on another host.
fn agent() -> Option<String> {
    std::env::var("MPI_HOSTS_AGENT").ok()
}

fn describe(n: u64) -> (u64, String) {
    (n * n, format!("tugas {n}"))
}

fn square(n: u64) -> u64 {
    n * n
}

/// Mirrors mpi4py's `test_submit`.
fn a_result_comes_back_from_another_rank() {
    let executor = MpiPoolExecutor::new(2).unwrap();
    assert_eq!(
        settle(&executor.submit(describe, 12)),
        Ok((144, "tugas 12".to_owned()))
    );
    let (pid, _, _, _) = settle(&executor.submit(where_am_i, ())).unwrap();
    assert_ne!(pid, std::process::id(), "the task ran in this process");
}

fn the_mode_follows_the_launch() {
    let executor = MpiPoolExecutor::new(2).unwrap();
    let places: Vec<_> = executor
        .map(where_am_i, vec![(); 8])
        .timeout(PATIENCE)
        .map(Result::unwrap)
        .collect();
    for (pid, spawned, rank, host) in places {
        assert_ne!(pid, std::process::id());
        if agent().is_some() {
            assert_ne!(
                host,
                hostname(),
                "on the simulated hosts, a task ran on rank 0's"
            );
        }
        match world_size() {
            Some(size) => {
                assert!(!spawned, "static-world mode must not spawn");
                let rank: usize = rank.expect("a world rank").parse().unwrap();
                assert!((1..size).contains(&rank), "served by world rank {rank}");
            }
            None => assert!(spawned, "spawn mode runs tasks on spawned workers"),
        }
    }
    match world_size() {
        Some(size) => assert_eq!(executor.max_workers(), 2.min(size - 1)),
        None => assert_eq!(executor.max_workers(), 2),
    }
}

/// Sleeps less for later inputs, so they tend to finish first.
fn later_is_faster(n: u64) -> u64 {
    thread::sleep(Duration::from_millis(5 * (8 - n)));
    n
}

/// Mirrors mpi4py's `test_map`.
fn map_yields_results_in_input_order() {
    let executor = MpiPoolExecutor::new(2).unwrap();
    let results: Vec<_> = executor
        .map(later_is_faster, 0..8)
        .timeout(PATIENCE)
        .collect();
    assert_eq!(results, (0..8).map(Ok).collect::<Vec<_>>());
}

/// Mirrors mpi4py's `test_map_chunksize`.
fn results_do_not_depend_on_the_chunk_size() {
    let executor = MpiPoolExecutor::new(2).unwrap();
    let expected: Vec<u64> = (0..1000).map(square).collect();
    for chunksize in [1, 7, 100, 1000] {
        let results: Vec<u64> = executor
            .map(square, 0..1000)
            .chunksize(chunksize)
            .timeout(PATIENCE)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(results, expected, "chunksize {chunksize}");
    }
}

fn quick_tasks_grow_the_default_chunks() {
    // The default `map` sizes its chunks from how long the ranks take
    // (`map/sizing.rs`), which the hub reports for each task. Untimed,
    // every chunk stayed one input.
    let executor = MpiPoolExecutor::new(2).unwrap();
    let ahead = fixtures::pulled_ahead(&executor, 5_000);
    assert!(
        ahead > LOOK_AHEAD_PER_WORKER * 2,
        "{ahead} inputs pulled ahead: the chunks did not grow"
    );
}

fn no_twos(n: u32) -> u32 {
    assert_ne!(n, 2, "two is not allowed");
    n
}

/// Mirrors mpi4py's `test_map_exception` and `test_map_unordered_exception`
/// (a panic is the task's error), and `test_exc_pickle`: the error and its
/// message come back.
fn a_panic_fails_only_its_own_task() {
    let executor = MpiPoolExecutor::new(2).unwrap();
    for chunksize in [1, 3] {
        let results: Vec<_> = executor
            .map(no_twos, [1, 2, 3])
            .chunksize(chunksize)
            .timeout(PATIENCE)
            .collect();
        assert_eq!(results[0], Ok(1));
        match &results[1] {
            Err(Error::Panicked {
                message, location, ..
            }) => {
                assert!(message.contains("two is not allowed"), "{message}");
                assert!(location.as_deref().is_some_and(|l| l.contains("mpi.rs")));
            }
            other => panic!("expected a panic, got {other:?}"),
        }
        assert_eq!(results[2], Ok(3));
    }
    // The rank that caught the panic goes on serving.
    assert_eq!(settle(&executor.submit(square, 9)), Ok(81));
}

/// A number whose `Deserialize` panics on 13: in the rank, for an argument.
#[derive(Debug, serde::Serialize)]
struct Unlucky(u32);

impl<'de> serde::Deserialize<'de> for Unlucky {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(deserializer)?;
        if n == 13 {
            fixtures::quiet_expected_panics();
            panic!("{}Unlucky's Deserialize panics on 13", fixtures::EXPECTED);
        }
        Ok(Unlucky(n))
    }
}

fn number(n: Unlucky) -> u32 {
    n.0
}

/// The panic is that task's error; the same rank (a rank's death would
/// abort the job, or break the pool) serves the next task.
fn a_rank_survives_an_argument_whose_deserialize_panics() {
    let executor = MpiPoolExecutor::new(1).unwrap();
    let (rank, ..) = settle(&executor.submit(where_am_i, ())).unwrap();
    match settle(&executor.submit(number, Unlucky(13))) {
        Err(Error::Serialization(message)) => {
            assert!(message.contains("Deserialize impl panicked"), "{message}");
        }
        other => panic!("expected Error::Serialization, got {other:?}"),
    }
    assert_eq!(settle(&executor.submit(number, Unlucky(12))), Ok(12));
    let (again, ..) = settle(&executor.submit(where_am_i, ())).unwrap();
    assert_eq!(again, rank, "the same rank serves on");
}

fn pangkat(basis: u64, eksponen: u32) -> u64 {
    basis.pow(eksponen)
}

/// Mirrors mpi4py's `test_starmap` and `test_map_unordered`.
fn starmap_and_map_unordered_work() {
    let executor = MpiPoolExecutor::new(2).unwrap();
    let powers: Vec<_> = executor
        .starmap(pangkat, [(2, 10), (3, 3)])
        .timeout(PATIENCE)
        .collect();
    assert_eq!(powers, [Ok(1024), Ok(27)]);
    let mut squares: Vec<u64> = executor
        .map_unordered(square, 1..=5)
        .timeout(PATIENCE)
        .collect::<Result<_, _>>()
        .unwrap();
    squares.sort_unstable();
    assert_eq!(squares, [1, 4, 9, 16, 25]);
}

/// Code written for any executor: the thread and MPI pools run it alike.
fn run_all(executor: &impl Executor) -> Vec<(u64, String)> {
    executor
        .map(describe, [1, 2, 3])
        .timeout(PATIENCE)
        .map(Result::unwrap)
        .collect()
}

fn generic_executor_code_runs_on_mpi() {
    let on_threads = run_all(&ThreadPoolExecutor::new(2));
    let on_mpi = run_all(&MpiPoolExecutor::new(2).unwrap());
    assert_eq!(on_threads, on_mpi);
    assert_eq!(on_mpi[2], (9, "tugas 3".to_owned()));
}

/// `Shared` in `submit`, `map`, `starmap`, tuples and structs, as on the
/// other executors (tests/shared.rs).
fn shared_values_work_on_mpi() {
    shared_forms::every_form(&MpiPoolExecutor::new(2).unwrap());
}

/// However many tasks use it, a value is decoded once in each rank (a
/// second `Put` there would decode it again).
fn a_shared_value_goes_to_each_rank_once() {
    let value = Shared::new(shared_forms::Counted(
        (0..100_000).map(|n| n as u8).collect(),
    ));
    let executor = MpiPoolExecutor::new(2).unwrap();
    let inputs = (0..100).map(|n| (value.clone(), n * 999));
    let seen: Vec<_> = (executor.map(shared_forms::look, inputs).timeout(PATIENCE))
        .map(Result::unwrap)
        .collect();
    for (n, &(_, decoded, byte)) in seen.iter().enumerate() {
        assert_eq!(byte, (n * 999) as u8);
        assert_eq!(decoded, 1, "decoded once in each rank: {seen:?}");
    }
}

/// A chunk whose first input is held is cut, and its rest runs on the
/// other rank while it is held: that rank is put the value the rest uses.
fn the_rest_of_a_cut_chunk_takes_its_shared_value_along() {
    /// Holds input 0 until `DIR/release`; leaves `DIR/done-N` for the others.
    fn held_first((value, dir, n): (Shared<Vec<u32>>, String, usize)) -> (u32, u32) {
        if n == 0 {
            fixtures::block_until_released(dir);
        } else {
            fixtures::write_atomically(&std::path::Path::new(&dir).join(format!("done-{n}")), "");
        }
        (value[n], std::process::id())
    }
    let executor = MpiPoolExecutor::new(2).unwrap();
    let value = Shared::new((0..64).collect::<Vec<u32>>());
    let scratch = fixtures::Scratch::new("mpi-cut-shared");
    let dir = scratch.arg();
    let got = thread::scope(|scope| {
        let got = scope.spawn(|| {
            (executor.map(held_first, (0..64).map(|n| (value.clone(), dir.clone(), n))))
                .chunksize(64)
                .timeout(PATIENCE)
                .collect::<Result<Vec<_>, _>>()
        });
        // The rest of the held input's chunk finishes while it is held.
        scratch.wait_for_files("done-", 63);
        scratch.touch("release");
        got.join().expect("the map's thread")
    })
    .unwrap();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (0..64).collect::<Vec<_>>()
    );
    let ranks: std::collections::BTreeSet<_> = got.iter().map(|g| g.1).collect();
    assert_eq!(
        ranks.len(),
        2,
        "the chunk was cut, its rest run on the other rank"
    );
}

/// Mirrors mpi4py's `test_no_timeout` (`as_completed`, `AsCompletedTestMixin`).
fn futures_work_with_as_completed() {
    let executor = MpiPoolExecutor::new(2).unwrap();
    let futures: Vec<_> = (1..=6).map(|n| executor.submit(square, n)).collect();
    let mut total = 0;
    for future in as_completed(&futures).timeout(PATIENCE) {
        total += future.unwrap().result().unwrap();
    }
    assert_eq!(total, 91);
}

/// Mirrors mpi4py's `test_run_after_shutdown` and `test_shutdown_cancel`
/// (repeated shutdowns are harmless).
fn a_closed_pool_refuses_new_tasks() {
    let executor = MpiPoolExecutor::new(1).unwrap();
    let before = executor.submit(square, 4);
    executor.shutdown();
    assert!(before.done(), "shutdown waits for the submitted tasks");
    assert_eq!(before.result(), Ok(16));
    assert_eq!(executor.submit(square, 5).result(), Err(Error::Shutdown));
    executor.shutdown_with(Shutdown {
        wait: false,
        cancel_futures: true,
    }); // again: harmless
}

/// Mirrors mpi4py's `test_hang_issue12364`: fifty short tasks, then
/// `shutdown()`: it returns once every one is done, each with its result.
fn shutdown_waits_for_every_submitted_task() {
    let executor = MpiPoolExecutor::new(2).unwrap();
    let futures: Vec<_> = (0..50)
        .map(|n| executor.submit(echo_after, (n, 10)))
        .collect();
    executor.shutdown();
    for (n, future) in (0..50).zip(&futures) {
        assert!(future.done(), "shutdown returned before task {n} was done");
        assert_eq!(future.result(), Ok(n));
    }
}

/// Holds its rank until `DIR/release` exists if `hold`; else returns at
/// once. Either way, the rank's pid.
fn hold_if((hold, dir): (bool, String)) -> u32 {
    match hold {
        true => fixtures::block_until_released(dir),
        false => std::process::id(),
    }
}

/// Mirrors mpi4py's `test_map_timeout`: the inputs that finish in time
/// give their results, then the one still running gives `Timeout` and the
/// map ends. (Its task is held by a gate, released afterwards.)
fn map_gives_up_at_its_timeout() {
    let scratch = fixtures::Scratch::new("mpi-map-timeout");
    let executor = MpiPoolExecutor::new(2).unwrap();
    let inputs = [false, false, true].map(|hold| (hold, scratch.arg()));
    let results: Vec<_> = executor
        .map(hold_if, inputs)
        .chunksize(1)
        .timeout(Duration::from_secs(3))
        .collect();
    scratch.touch("release");
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(results[..2].iter().all(Result::is_ok), "{results:?}");
    assert_eq!(results[2], Err(Error::Timeout));
}

/// Mirrors mpi4py's `test_map_buffersize` and `test_starmap_chunksize`:
/// every buffer size and chunk size around the input's length gives the
/// same results, in order.
fn results_do_not_depend_on_the_buffer_size() {
    let executor = MpiPoolExecutor::new(2).unwrap();
    let pairs = || (0..10_u64).map(|n| (n, n as u32));
    let expected: Vec<u64> = pairs().map(|(b, e)| pangkat(b, e)).collect();
    for buffer in [1, 2, 9, 10, 11] {
        for chunk in [1, 2, 9, 10, 11] {
            let results: Vec<u64> = executor
                .starmap(pangkat, pairs())
                .chunksize(chunk)
                .buffer_size(buffer)
                .timeout(PATIENCE)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(results, expected, "buffer {buffer}, chunk {chunk}");
        }
    }
}

/// Mirrors mpi4py's `test_context_manager_shutdown` and
/// `test_del_shutdown` (a dropped executor shuts down and frees its
/// ranks), and in a static world `test_shared_executors`.
fn pools_come_and_go() {
    for round in 0..3_u64 {
        let executor = MpiPoolExecutor::new(1).unwrap();
        assert_eq!(settle(&executor.submit(square, round)), Ok(round * round));
    }
    if let Some(size) = world_size() {
        // Mirrors mpi4py's `test_shared_executors`: in a static world every
        // executor shares the serving ranks, so one more pool beside one
        // that uses them all still runs its tasks.
        let all = MpiPoolExecutor::new(size).unwrap();
        assert_eq!(all.max_workers(), size - 1);
        let executors: Vec<_> = (0..4)
            .map(|_| MpiPoolExecutor::new(size).unwrap())
            .collect();
        let futures: Vec<_> = (0..32_u64)
            .map(|n| executors[n as usize % 4].submit(square, n))
            .chain((32..40).map(|n| all.submit(square, n)))
            .collect();
        let squares: Vec<u64> = futures.iter().map(|f| settle(f).unwrap()).collect();
        assert_eq!(squares, (0..40).map(square).collect::<Vec<_>>());
        assert!(executors.iter().all(|e| e.max_workers() == size - 1));
    }
}

/// How long the busy-executor cases keep their executors busy: longer than
/// the hub's 5 s of silence that makes a rank dead, or
/// `MPI_TEST_BUSY_SECS` seconds (the issue asks for a 60 s run).
fn busy_for() -> Duration {
    let secs = std::env::var("MPI_TEST_BUSY_SECS").map_or(7, |s| s.parse().expect("seconds"));
    Duration::from_secs(secs)
}

/// Returns `n` after `ms` milliseconds.
fn echo_after((n, ms): (u64, u64)) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    n
}

/// `count` executors of one rank each, busy at the same time for
/// [`busy_for`]: each one's tasks come back to it with its own values,
/// and no rank is taken for dead. Batches of quick tasks with one longer
/// than a heartbeat's interval, so that answers and heartbeats of every
/// executor interleave. On the code before the hub routed each answer to
/// the pool of the rank that sent it, two executors in a static world
/// failed this within seconds with a false "sent no heartbeat; it died".
fn keep_busy_at_once(count: u64) {
    let executors: Vec<_> = (0..count)
        .map(|_| MpiPoolExecutor::new(1).unwrap())
        .collect();
    let until = Instant::now() + busy_for();
    let done: Vec<u64> = thread::scope(|scope| {
        let runs: Vec<_> = (executors.iter().zip(0_u64..))
            .map(|(executor, which)| {
                scope.spawn(move || {
                    let mut next = which << 40;
                    let mut tasks = 0;
                    while Instant::now() < until {
                        let inputs: Vec<(u64, u64)> = (0..20)
                            .map(|k| (next + k, if k == 0 { 300 } else { k % 3 }))
                            .collect();
                        let futures: Vec<_> = (inputs.iter())
                            .map(|&input| executor.submit(echo_after, input))
                            .collect();
                        for (future, &(want, _)) in futures.iter().zip(&inputs) {
                            assert_eq!(settle(future), Ok(want), "executor {which}");
                        }
                        next += 20;
                        tasks += 20;
                    }
                    tasks
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    println!(
        "{count} executors busy for {:?}: {done:?} tasks each",
        busy_for()
    );
    let (fewest, most) = (done.iter().min().unwrap(), done.iter().max().unwrap());
    assert!(
        fewest * 4 >= *most,
        "an executor was starved: {done:?} tasks"
    );
}

/// Mirrors mpi4py's `test_multiple_executors` (three executors of one
/// worker at once), kept busy for longer.
fn two_executors_busy_at_once_keep_to_their_own() {
    keep_busy_at_once(2);
}

/// As [`two_executors_busy_at_once_keep_to_their_own`], with three: in a
/// static world of two serving ranks, they share them.
fn three_executors_busy_at_once_keep_to_their_own() {
    keep_busy_at_once(3);
}

/// Mirrors mpi4py's `test_submit_shutdown_cancel`: after
/// `shutdown(wait: false)`, a later shutdown that waits and cancels does
/// both. Before, the second call returned at once and cancelled nothing.
fn a_second_shutdown_waits_and_cancels() {
    let pool = held_with_queued("mpi-shutdown", 3);
    pool.executor.shutdown_with(Shutdown {
        wait: false,
        cancel_futures: false,
    });
    assert!(pool.queued.iter().all(|future| !future.cancelled()));
    let (returned, second_returned) = std::sync::mpsc::channel();
    thread::scope(|scope| {
        scope.spawn(|| {
            pool.executor.shutdown_with(Shutdown {
                wait: true,
                cancel_futures: true,
            });
            returned.send(()).unwrap();
        });
        fixtures::wait_until("the second shutdown to cancel the queued tasks", || {
            pool.queued
                .iter()
                .all(|future| future.cancelled())
                .then_some(())
        });
        assert!(
            second_returned.try_recv().is_err(),
            "the second shutdown returned while a task still ran"
        );
        assert!(!pool.held.done());
        pool.scratch.touch("release");
        second_returned
            .recv_timeout(PATIENCE)
            .expect("the second shutdown returns once the running task is done");
    });
    assert!(pool.held.done(), "shutdown waited for the running task");
    assert!(pool.held.result().is_ok());
    assert!(
        pool.scratch.files("ran-").is_empty(),
        "a cancelled task ran"
    );
}

/// Mirrors mpi4py's `test_submit_cancel`: on a one-rank pool busy with a
/// held task, a task queued behind it is pending, not running; cancelling
/// it returns true, its body never runs, and the next task runs on the same
/// rank (a cancel costs no rank).
fn a_queued_task_is_pending_and_cancels_without_a_rank() {
    let pool = held_with_queued("mpi-cancel", 1);
    let queued = &pool.queued[0];
    let next = pool.executor.submit(fixtures::pid, ());
    assert!(pool.held.running());
    assert!(!queued.running(), "a task queued in the hub claims to run");
    assert!(queued.cancel());
    assert!(queued.cancelled());
    pool.scratch.touch("release");
    assert_eq!(settle(&pool.held), Ok(pool.rank));
    assert_eq!(settle(&next), Ok(pool.rank), "the cancel cost a rank");
    assert!(
        pool.scratch.files("ran-").is_empty(),
        "the cancelled task ran"
    );
}

/// A one-rank pool whose rank is held by a task, with tasks queued behind.
struct Held {
    scratch: fixtures::Scratch,
    executor: MpiPoolExecutor,
    /// The task that holds the rank until `scratch`'s `release` exists.
    held: concurrent_futures::Future<u32>,
    /// The held rank's pid.
    rank: u32,
    /// Tasks that would leave a `ran-` mark in `scratch` if they ran.
    queued: Vec<concurrent_futures::Future<u32>>,
}

/// A [`Held`] pool with `count` tasks queued once its rank is held.
fn held_with_queued(label: &str, count: usize) -> Held {
    let scratch = fixtures::Scratch::new(label);
    let executor = MpiPoolExecutor::new(1).unwrap();
    let held = executor.submit(fixtures::block_until_released, scratch.arg());
    let started = scratch.wait_for_files("started-", 1);
    let rank = fixtures::read_pid(&scratch.path(&started[0]));
    let queued = (0..count)
        .map(|_| executor.submit(fixtures::leave_a_mark, scratch.arg()))
        .collect();
    Held {
        scratch,
        executor,
        held,
        rank,
        queued,
    }
}

/// Mirrors mpi4py's `test_submit_shutdown_cancel_wait`: `cancel_futures`
/// cancels every task not yet started; the running one finishes.
fn cancel_futures_cancels_every_task_not_started() {
    let pool = held_with_queued("mpi-cancel-futures", 5);
    pool.executor.shutdown_with(Shutdown {
        wait: false,
        cancel_futures: true,
    });
    for future in &pool.queued {
        fixtures::wait_until("a queued task to be cancelled", || {
            future.cancelled().then_some(())
        });
    }
    pool.scratch.touch("release");
    assert_eq!(settle(&pool.held), Ok(pool.rank));
    pool.executor.shutdown();
    assert!(
        pool.scratch.files("ran-").is_empty(),
        "a cancelled task ran"
    );
}

/// Issue 21's dispatch on MPI: on a two-rank pool whose first task is
/// held, the short tasks queued behind it all complete on the other rank
/// while it is still held (the hub gives a task to a rank only when that
/// rank is free, so none waits behind the held one).
fn short_tasks_pass_a_held_one() {
    let scratch = fixtures::Scratch::new("mpi-pass-held");
    let executor = MpiPoolExecutor::new(2).unwrap();
    let held = executor.submit(fixtures::block_until_released, scratch.arg());
    let started = scratch.wait_for_files("started-", 1);
    let held_rank = fixtures::read_pid(&scratch.path(&started[0]));
    let short: Vec<_> = (0..20)
        .map(|_| executor.submit(fixtures::pid, ()))
        .collect();
    for future in &short {
        let rank = settle(future).unwrap();
        assert_ne!(rank, held_rank, "a short task ran on the held rank");
    }
    assert!(!held.done(), "the held task finished before its release");
    scratch.touch("release");
    assert_eq!(settle(&held), Ok(held_rank));
}

/// Leaves `DIR/done-N` and returns the rank's pid; for `N` = `held`,
/// first blocks until `DIR/release`, like `block_until_released`.
fn held_or_quick((dir, n, held): (String, u32, u32)) -> u32 {
    if n == held {
        fixtures::block_until_released(dir.clone());
    }
    fixtures::write_atomically(&std::path::Path::new(&dir).join(format!("done-{n}")), "");
    std::process::id()
}

/// [`held_or_quick`] with the two halves of its argument apart, for
/// `starmap`.
fn held_or_quick_pair(dir: String, (n, held): (u32, u32)) -> u32 {
    held_or_quick((dir, n, held))
}

/// Issue 21's skew on MPI: a chunk runs on one rank, but not whole there.
/// The default `map` (and `map_unordered`, `starmap`) over 400 inputs in
/// chunks of 100, one of them held: the inputs after it in its chunk
/// (at its start, in its middle, at its end) all complete on the other
/// rank while it is still held, and every result comes back in its place.
/// Before, they waited behind the held input.
fn a_chunk_with_a_held_input_gives_its_rest_to_the_other_rank() {
    let executor = MpiPoolExecutor::new(2).unwrap();
    for (how, held) in [("map", 100), ("unordered", 150), ("starmap", 198)] {
        let scratch = fixtures::Scratch::new("mpi-cut");
        let dir = scratch.arg();
        let (results, held_rank) = thread::scope(|scope| {
            let results = scope.spawn(|| match how {
                "map" => (executor.map(held_or_quick, (0..400).map(|n| (dir.clone(), n, held))))
                    .chunksize(100)
                    .collect::<Result<Vec<_>, _>>(),
                "unordered" => (executor
                    .map_unordered(held_or_quick, (0..400).map(|n| (dir.clone(), n, held))))
                .chunksize(100)
                .collect::<Result<Vec<_>, _>>(),
                _ => (executor.starmap(
                    held_or_quick_pair,
                    (0..400).map(|n| (dir.clone(), (n, held))),
                ))
                .chunksize(100)
                .collect::<Result<Vec<_>, _>>(),
            });
            let started = scratch.wait_for_files("started-", 1);
            let held_rank = fixtures::read_pid(&scratch.path(&started[0]));
            // Every other input finishes while the held one is held.
            scratch.wait_for_files("done-", 399);
            assert!(!scratch.path(&format!("done-{held}")).exists(), "{how}");
            scratch.touch("release");
            (results.join().expect("the map's thread"), held_rank)
        });
        let results = results.unwrap_or_else(|e| panic!("{how}: {e}"));
        assert_eq!(results.len(), 400, "{how}: each input once");
        if how != "unordered" {
            assert_eq!(results[held as usize], held_rank, "{how}");
            let rest = &results[held as usize + 1..200];
            assert!(
                rest.iter().all(|&rank| rank != held_rank),
                "{how}: the rest of the held input's chunk waited for it"
            );
        }
    }
}

/// Marks `DIR/ran-N` (or, if that is there already, `DIR/twice-N`), then
/// sleeps `micros`.
fn mark_once((dir, n, micros): (String, u32, u64)) -> u32 {
    let dir = std::path::Path::new(&dir);
    let first = (std::fs::OpenOptions::new().write(true).create_new(true))
        .open(dir.join(format!("ran-{n}")));
    if first.is_err() {
        fixtures::write_atomically(&dir.join(format!("twice-{n}")), "");
    }
    thread::sleep(Duration::from_micros(micros));
    n
}

/// A chunk cut again and again, each cut racing the items' ends (one
/// chunk of every input, on two ranks: the idle one takes the rest, until
/// it is cut in turn): no input is lost, none runs twice, every result
/// comes back in its place. Inputs of about the hub's patience, so that
/// cuts fall before, during and after items, right after the item running
/// or halfway through the rest: 150 of 4 ms, or 400 of 0 to 3 ms.
fn cuts_racing_the_items_lose_none_and_run_none_twice() {
    let executor = MpiPoolExecutor::new(2).unwrap();
    for round in 0..4 {
        let scratch = fixtures::Scratch::new("mpi-cut-race");
        let (count, micros): (u32, fn(u32) -> u64) = match round % 2 {
            0 => (150, |_| 4_000),
            _ => (400, |n| 500 * u64::from(n % 7)),
        };
        let inputs = (0..count).map(|n| (scratch.arg(), n, micros(n)));
        let results: Vec<u32> = (executor.map(mark_once, inputs))
            .chunksize(400)
            .timeout(PATIENCE)
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(results, (0..count).collect::<Vec<_>>(), "round {round}");
        assert_eq!(
            scratch.files("twice-"),
            Vec::<String>::new(),
            "round {round}"
        );
        assert_eq!(scratch.files("ran-").len(), count as usize, "round {round}");
    }
}

/// Mirrors mpi4py's `test_max_workers_environ` (and `test_max_workers`):
/// without `max_workers`, the size comes from `MPI_MAX_WORKERS_VAR` if set,
/// else from the MPI universe (`OMPI_UNIVERSE_SIZE` sets it for Open MPI)
/// less this program's world; in a static world, every serving rank.
/// `.ci/run` runs this case with each variable set.
fn the_default_size_follows_mpi() {
    let executor = MpiPoolExecutor::builder().build().unwrap();
    let asked: Option<usize> = std::env::var(concurrent_futures::MPI_MAX_WORKERS_VAR)
        .ok()
        .map(|v| v.parse().unwrap());
    let universe: Option<usize> = std::env::var("OMPI_UNIVERSE_SIZE")
        .ok()
        .map(|v| v.parse().unwrap());
    match (world_size(), asked, universe) {
        (Some(size), asked, _) => {
            assert_eq!(executor.max_workers(), asked.unwrap_or(size).min(size - 1));
        }
        (None, Some(asked), _) => assert_eq!(executor.max_workers(), asked),
        (None, None, Some(universe)) => {
            assert_eq!(executor.max_workers(), universe.saturating_sub(1).max(1));
        }
        (None, None, None) => assert!(executor.max_workers() >= 1),
    }
    let squares: Vec<_> = executor.map(square, 0..4).timeout(PATIENCE).collect();
    assert_eq!(squares, [Ok(0), Ok(1), Ok(4), Ok(9)]);
}

/// What a spawned worker sees: its executable, working directory, the
/// variable `CF_MPI_TEST_ENV`, and its host.
fn surroundings(_: ()) -> (String, String, Option<String>, String) {
    let exe = std::env::current_exe().unwrap();
    let cwd = std::env::current_dir().unwrap();
    (
        exe.to_string_lossy().into_owned(),
        cwd.to_string_lossy().into_owned(),
        std::env::var("CF_MPI_TEST_ENV").ok(),
        hostname(),
    )
}

/// mpi4py's spawn options (`python_exe`/`path`, `wdir`, `env`, `mpi_info`):
/// in spawn mode the workers run the program at the path given (a copy of
/// this test: the same bytes), in the working directory given, with the
/// variable given, on the host the `host` info key names (across the
/// simulated hosts, another host than this one). A static world's ranks
/// already run, so there the settings change nothing.
fn spawn_settings_reach_the_workers() {
    let scratch = fixtures::Scratch::new("mpi-spawn-settings");
    let copy = scratch.path("copy-of-the-test");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    let place = match agent() {
        Some(_) => "cfmpi-h3".to_owned(),
        None => hostname(),
    };
    let executor = MpiPoolExecutor::builder()
        .max_workers(1)
        .program(&copy)
        .working_dir(scratch.path(""))
        .env("CF_MPI_TEST_ENV", "tetangga")
        .info("host", &place)
        .build()
        .unwrap();
    let (exe, cwd, env, host) = settle(&executor.submit(surroundings, ())).unwrap();
    if world_size().is_some() {
        assert_ne!(
            env.as_deref(),
            Some("tetangga"),
            "a static world's rank changed"
        );
        return;
    }
    let canonical = |path: &str| std::fs::canonicalize(path).unwrap();
    assert_eq!(canonical(&exe), canonical(copy.to_str().unwrap()));
    assert_eq!(canonical(&cwd), canonical(scratch.arg().as_str()));
    assert_eq!(env.as_deref(), Some("tetangga"));
    assert_eq!(host, place);
}

/// Mirrors mpi4py's `test_max_workers_negative` and the `chunksize=-1`
/// cases (a `usize` cannot be negative: zero is the bad value).
fn bad_settings_are_errors() {
    assert!(matches!(
        MpiPoolExecutor::new(0),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        MpiPoolExecutor::builder().chunksize(0).build(),
        Err(Error::InvalidArgument(_))
    ));
}

/// The table every task reads: Python's module-level `table = None`. A
/// lock, not a `OnceLock`: ranks outlive an executor (spawned groups are
/// reused, the static world's ranks shared), and each executor's
/// initializer sets its own table, as Python's `global table` does.
static TABLE: std::sync::RwLock<Vec<u64>> = std::sync::RwLock::new(Vec::new());

/// `def init(t): global table; table = t`.
fn init_table(table: Vec<u64>) {
    *TABLE.write().unwrap() = table;
}

/// `def lookup(i): return table[i]`.
fn lookup(i: usize) -> u64 {
    TABLE.read().unwrap()[i]
}

/// mpi4py's `MPIPoolExecutor(initializer=init, initargs=(table,))`: each
/// rank runs the initializer before its first task of the executor, and
/// a later executor's ranks (the same ones, reused or shared) run its own.
fn initargs_set_a_global_that_every_task_reads() {
    let indices: Vec<usize> = (0..1000).step_by(7).collect();
    for power in [2, 3] {
        let table: Vec<u64> = (0..1000_u64).map(|i| i.pow(power)).collect();
        let expected: Vec<u64> = indices.iter().map(|&i| table[i]).collect();
        let executor = MpiPoolExecutor::builder()
            .max_workers(2)
            .initializer_with(init_table, table)
            .build()
            .unwrap();
        let found: Vec<u64> = executor
            .map(lookup, indices.clone())
            .chunksize(3)
            .timeout(PATIENCE)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(found, expected, "the table of power {power}");
    }
}

fn refuses_short_tables(table: Vec<u64>) {
    assert!(
        table.len() >= 100,
        "a table of {} rows is too short",
        table.len()
    );
}

/// As a process pool's: a failing initializer breaks its executor, whose
/// tasks fail with `BrokenExecutor` naming the failure; the ranks serve on.
fn a_failing_initializer_breaks_its_pool() {
    let executor = MpiPoolExecutor::builder()
        .max_workers(2)
        .initializer_with(refuses_short_tables, vec![1, 2, 3])
        .build()
        .unwrap();
    for n in 0..3 {
        let outcome = settle(&executor.submit(square, n));
        assert!(
            matches!(&outcome, Err(Error::BrokenExecutor { reason })
                if reason.contains("initializer failed")
                    && reason.contains("a table of 3 rows is too short")),
            "submission {n}: {outcome:?}"
        );
    }
    drop(executor);
    let healthy = MpiPoolExecutor::new(2).unwrap();
    assert_eq!(settle(&healthy.submit(square, 9)), Ok(81));
}

fn exit_with(code: i32) -> i32 {
    if code != 0 {
        std::process::exit(code);
    }
    code
}

/// Spawn mode: a rank that exits mid-task makes Open MPI abort the spawned
/// job, so the pool breaks: the task, and later ones, fail with
/// `BrokenExecutor` instead of hanging, and a new executor spawns afresh.
/// Run alone, Open MPI aborts every other spawned job too, so a pool on
/// another group breaks rather than hang on ranks that are gone, and a
/// group left free is not used again; under `mpiexec --enable-recovery`
/// (as `.ci/mpi-hosts-check` runs this) the other groups live and serve
/// on. One death per run: after a second, `mpiexec --enable-recovery`
/// (Open MPI 4.1) never exits. (In a static world Open MPI aborts the
/// whole job, this process included, so this case only runs alone.)
fn a_dead_rank_breaks_its_pool_without_hanging() {
    if world_size().is_some() {
        return;
    }
    let bystander = MpiPoolExecutor::new(1).unwrap();
    let left_free = MpiPoolExecutor::new(1).unwrap();
    assert_eq!(settle(&bystander.submit(square, 2)), Ok(4));
    assert_eq!(settle(&left_free.submit(square, 3)), Ok(9));
    drop(left_free);
    let executor = MpiPoolExecutor::new(2).unwrap();
    assert_eq!(settle(&executor.submit(exit_with, 0)), Ok(0));
    match settle(&executor.submit(exit_with, 3)) {
        Err(Error::BrokenExecutor { reason }) => assert!(reason.contains("died"), "{reason}"),
        other => panic!("expected BrokenExecutor, got {other:?}"),
    }
    assert!(matches!(
        settle(&executor.submit(exit_with, 0)),
        Err(Error::BrokenExecutor { .. })
    ));
    drop(executor);
    let recovery = std::env::var("OMPI_MCA_orte_enable_recovery").is_ok_and(|v| v == "1");
    match settle(&bystander.submit(square, 5)) {
        Ok(25) if recovery => {}
        Err(Error::BrokenExecutor { reason }) if !recovery => {
            assert!(reason.contains("aborted every spawned MPI job"), "{reason}");
        }
        other => panic!("with recovery {recovery}, the other pool gave {other:?}"),
    }
    let fresh = MpiPoolExecutor::new(2).unwrap();
    assert_eq!(settle(&fresh.submit(square, 7)), Ok(49));
    let fresh = MpiPoolExecutor::new(1).unwrap();
    assert_eq!(settle(&fresh.submit(square, 6)), Ok(36));
}

/// Holds the rank that runs it if that rank is on `victim` (writing its pid
/// to `dir/victim` for the test to kill it); elsewhere, returns its host.
fn hold_if_on((victim, dir): (String, String)) -> String {
    let host = hostname();
    if host == victim {
        let pid = std::process::id().to_string();
        std::fs::write(format!("{dir}/{victim}.tmp"), pid).unwrap();
        std::fs::rename(format!("{dir}/{victim}.tmp"), format!("{dir}/{victim}")).unwrap();
        thread::sleep(Duration::from_secs(120)); // until killed
    }
    host
}

/// Across hosts (`MPI_TEST_KILL_ON=HOST`): a serving rank on HOST is killed
/// with SIGKILL inside its host while it runs a task. Nothing on rank 0's
/// host can see that process: the manager learns it from the rank's
/// missing heartbeats. The task it ran, the queued ones and later ones fail
/// with `BrokenExecutor`, within a bound; tasks on the other host finish.
/// Then a new executor works: in a static world on the ranks left, in
/// spawn mode on freshly spawned ranks (Open MPI aborts the whole spawned
/// job with its dead rank).
fn a_killed_rank_on_another_host_breaks_its_pool() {
    let (Some(agent), Ok(victim)) = (agent(), std::env::var("MPI_TEST_KILL_ON")) else {
        return;
    };
    let scratch = fixtures::Scratch::new("mpi-kill");
    let dir = scratch.path("").to_string_lossy().into_owned();
    let executor = MpiPoolExecutor::new(2).unwrap();
    let workers = executor.max_workers();
    let futures: Vec<_> = (0..20)
        .map(|_| executor.submit(hold_if_on, (victim.clone(), dir.clone())))
        .collect();
    let pid = fixtures::wait_until("a task to run on the victim's host", || {
        std::fs::read_to_string(scratch.path(&victim)).ok()
    });
    let killed = std::process::Command::new(&agent)
        .args([victim.as_str(), "kill", "-KILL", pid.as_str()])
        .status()
        .unwrap();
    assert!(
        killed.success(),
        "{agent} {victim} kill -KILL {pid}: {killed}"
    );
    let start = std::time::Instant::now();
    let bound = Duration::from_secs(30);
    let mut broken = 0;
    for future in &futures {
        match future.result_timeout(bound) {
            Ok(host) => assert_ne!(host, victim, "the killed rank answered"),
            Err(Error::BrokenExecutor { reason }) => {
                assert!(reason.contains(&victim), "{reason}");
                assert!(reason.contains("heartbeat"), "{reason}");
                broken += 1;
            }
            Err(other) => panic!("expected a result or BrokenExecutor, got {other:?}"),
        }
    }
    assert!(broken >= 1, "the killed rank's task did not fail");
    assert!(start.elapsed() < bound, "took {:?}", start.elapsed());
    println!(
        "killed rank on {victim}: {broken} tasks broken within {:.1?}",
        start.elapsed()
    );
    assert!(matches!(
        executor.submit(square, 3).result_timeout(PATIENCE),
        Err(Error::BrokenExecutor { .. })
    ));
    drop(executor);
    let next = MpiPoolExecutor::new(2).unwrap();
    if world_size().is_some() {
        assert_eq!(
            next.max_workers(),
            workers - 1,
            "the dead rank is not reused"
        );
    }
    assert_eq!(settle(&next.submit(square, 7)), Ok(49));
}

/// Across hosts (`MPI_TEST_OTHER_BUILD_ON=HOST`, in a static world whose
/// rank on HOST runs a build of this test made with another
/// `CF_MPI_TEST_BUILD`): no executor can be built, and the error names the
/// rank, its host and what to do.
fn a_rank_of_another_build_is_refused() {
    let Ok(other) = std::env::var("MPI_TEST_OTHER_BUILD_ON") else {
        return;
    };
    assert!(BUILD.is_none(), "rank 0 must run the usual build");
    match MpiPoolExecutor::new(2) {
        Err(Error::BrokenExecutor { reason }) => {
            println!("refused: {reason}");
            assert!(
                reason.contains(&format!("on host {other} runs a different build")),
                "{reason}"
            );
            assert!(reason.contains("same build, at the same path"), "{reason}");
        }
        other => panic!("expected BrokenExecutor, got {other:?}"),
    }
}
