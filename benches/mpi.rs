//! Per-task overhead of `MpiPoolExecutor` (feature `mpi`) on one machine,
//! with 2 worker ranks, in whichever mode the binary was launched:
//!
//! ```text
//! cargo bench --features mpi --target-dir target/mpi --bench mpi        # spawn mode
//! mpiexec -n 3 target/mpi/release/deps/mpi-<hash> --bench               # static world
//! ```
//!
//! (as root with `OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`,
//! and `OMPI_MCA_rmaps_base_oversubscribe=1` for 3 processes on 2 cores).
//!
//! Across the simulated hosts of `.ci/mpi-hosts` (rank 0 on one host, the
//! serving ranks on two others, over TCP), with the raw MPI round trip
//! of 8 bytes between two hosts measured the same way beside it:
//!
//! ```text
//! .ci/mpi-hosts run sh -c '$MPIEXEC_HOSTS -n 3 target/mpi/release/deps/mpi-<hash> --bench --raw;
//!                          $MPIEXEC_HOSTS -n 3 target/mpi/release/deps/mpi-<hash> --bench'
//! ```
//!
//! Rows, each the best of [`RUNS`] runs (a shared machine's noise only ever
//! adds time):
//!
//! - `start`: build the first pool and take one tiny result (spawn mode:
//!   includes `MPI_Comm_spawn` and the handshake; static world: the ranks
//!   were greeted in `init()`).
//! - `round trip`: one `submit(..).result()` at a time, per task.
//! - `submit + result`: [`PENDING`] tasks submitted, then every result
//!   taken, per task.
//! - `map chunksize 1`: `map` over [`MAP_SMALL`] items, per item.
//! - `map chunksize 1000`: `map` over [`MAP_ITEMS`] items, per item.
//! - `map default`: the same with the automatic chunk size.
//! - `ranks busy`: `map` with chunks of [`BUSY_CHUNK`] over [`BUSY_ITEMS`]
//!   tasks that each sleep [`BUSY_TASK`]: the share of the wall time each
//!   rank spent inside tasks (100% = never waiting for work).
//! - `map skew start|middle|end` (issue 21): on a pool of up to
//!   [`SKEW_WORKERS`] ranks, the default `map` over [`SKEW_TOTAL`] inputs,
//!   [`SKEW_SLOW`] of them sleeping [`common::SLOW_MILLIS`] at the start, in the
//!   middle or at the end, the rest quick: the median of [`SKEW_RUNS`]
//!   runs, beside the ideal schedule (the slow work spread evenly over the
//!   ranks). Slow inputs sleep, like I/O, so that more ranks than cores
//!   overlap.
//! - with `--raw`, instead: `raw round trip`, 8 bytes from rank 0 to rank 1
//!   and back with blocking `MPI_Send`/`MPI_Recv`, no executor.
//!
//! Plain timing, not criterion: the figures sit beside the process pool's
//! criterion figures in BENCHMARKS.md, measured the same way (per task).

mod common;

use std::time::{Duration, Instant};

use common::{SLOW_MILLIS, ident, skewed_inputs, sleep_ms};
use concurrent_futures::MpiPoolExecutor;

const WORKERS: usize = 2;
const RUNS: usize = 5;
const ROUND_TRIPS: u32 = 2_000;
const PENDING: u64 = 10_000;
const MAP_SMALL: u64 = 10_000;
const MAP_ITEMS: u64 = 1_000_000;
const BUSY_ITEMS: u64 = 4_000;
const BUSY_CHUNK: usize = 100;
const BUSY_TASK: Duration = Duration::from_micros(250);
const SKEW_WORKERS: usize = 4;
const SKEW_RUNS: usize = 3;
const SKEW_TOTAL: usize = 40_008;
const SKEW_SLOW: usize = 8;

/// The best of `RUNS` runs of `f`, divided by `per`.
fn best(per: u64, mut f: impl FnMut()) -> Duration {
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed() / u32::try_from(per).expect("small")
        })
        .min()
        .expect("RUNS > 0")
}

/// Sleeps [`BUSY_TASK`]; returns where it ran (host and rank) and how
/// long it took.
fn nap(_: u64) -> (String, Duration) {
    let start = Instant::now();
    std::thread::sleep(BUSY_TASK);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let rank = (std::env::var("OMPI_COMM_WORLD_RANK").or_else(|_| std::env::var("PMIX_RANK")))
        .unwrap_or_default();
    (format!("{} rank {rank}", host.trim()), start.elapsed())
}

/// The `map skew` rows: a pool of its own, of up to [`SKEW_WORKERS`] ranks.
fn skew() {
    let executor = MpiPoolExecutor::new(SKEW_WORKERS).expect("an MPI pool");
    let ranks = executor.max_workers();
    let ideal = Duration::from_millis(SLOW_MILLIS) * (SKEW_SLOW / ranks) as u32;
    for (name, at) in [
        ("start", 0),
        ("middle", SKEW_TOTAL / 2),
        ("end", SKEW_TOTAL - SKEW_SLOW),
    ] {
        let inputs = skewed_inputs(SKEW_TOTAL, SKEW_SLOW, at);
        let mut times: Vec<Duration> = (0..SKEW_RUNS)
            .map(|_| {
                let start = Instant::now();
                let sum: u64 = executor
                    .map(sleep_ms, inputs.clone())
                    .map(Result::unwrap)
                    .sum();
                assert_eq!(sum, SLOW_MILLIS * SKEW_SLOW as u64);
                start.elapsed()
            })
            .collect();
        times.sort_unstable();
        let median = times[SKEW_RUNS / 2];
        println!(
            "  map skew {name:<7}      {:>10.3} s ({ranks} ranks; ideal {:.3} s: {:.2}x; runs {times:.3?})",
            median.as_secs_f64(),
            ideal.as_secs_f64(),
            median.as_secs_f64() / ideal.as_secs_f64(),
        );
    }
}

/// The raw MPI round trip: 8 bytes from rank 0 to rank 1 and back.
fn raw_round_trip() {
    use mpi::point_to_point::{Destination, Source};
    use mpi::topology::Communicator;
    const STOP: mpi::Tag = 1;
    let universe = mpi::initialize().expect("MPI initializes");
    let world = universe.world();
    match world.rank() {
        0 => {
            let peer = world.process_at_rank(1);
            let round_trip = best(u64::from(ROUND_TRIPS), || {
                for i in 0..u64::from(ROUND_TRIPS) {
                    peer.send(&i);
                    let (back, _) = peer.receive::<u64>();
                    assert_eq!(back, i);
                }
            });
            peer.send_with_tag(&0_u64, STOP);
            println!("mpi raw ({} processes)", world.size());
            println!("  raw round trip:      {:>10.2} us", micros(round_trip));
        }
        1 => loop {
            let (n, status) = world.process_at_rank(0).receive::<u64>();
            if status.tag() == STOP {
                break;
            }
            world.process_at_rank(0).send(&n);
        },
        _ => {}
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--raw") {
        return raw_round_trip();
    }
    concurrent_futures::init(); // in a worker rank, this serves and never returns
    // mpiexec names the world's size; srun, through Slurm's PMIx, the step's.
    let size = std::env::var("OMPI_COMM_WORLD_SIZE").or_else(|_| {
        std::env::var("PMIX_RANK").and_then(|_| std::env::var("SLURM_STEP_NUM_TASKS"))
    });
    let mode = match size {
        Ok(size) if size != "1" => format!("static world of {size}"),
        _ => "spawn".to_owned(),
    };
    let start = Instant::now();
    let executor = MpiPoolExecutor::new(WORKERS).expect("an MPI pool");
    assert_eq!(executor.submit(ident, 1).result(), Ok(1));
    let started = start.elapsed();
    println!("mpi ({mode}, {} ranks)", executor.max_workers());
    println!(
        "  start:               {:>10.2} ms",
        started.as_secs_f64() * 1e3
    );

    let round_trip = best(u64::from(ROUND_TRIPS), || {
        for i in 0..ROUND_TRIPS {
            assert_eq!(
                executor.submit(ident, u64::from(i)).result(),
                Ok(u64::from(i))
            );
        }
    });
    println!("  round trip:          {:>10.2} us", micros(round_trip));

    let submit_result = best(PENDING, || {
        let futures: Vec<_> = (0..PENDING).map(|i| executor.submit(ident, i)).collect();
        for (i, future) in (0..).zip(&futures) {
            assert_eq!(future.result(), Ok(i));
        }
    });
    println!(
        "  submit + result:     {:>10.2} us/task",
        micros(submit_result)
    );

    // `map` over `items` inputs, per item, with a fixed chunk size or the
    // automatic one.
    let map = |items: u64, chunksize: Option<usize>| {
        best(items, || {
            let map = executor.map(ident, 0..items);
            let map = match chunksize {
                Some(size) => map.chunksize(size),
                None => map,
            };
            assert_eq!(map.filter(Result::is_ok).count() as u64, items);
        })
    };
    let map_small = map(MAP_SMALL, Some(1));
    println!("  map chunksize 1:     {:>10.2} us/item", micros(map_small));
    let map_chunked = map(MAP_ITEMS, Some(1000));
    println!(
        "  map chunksize 1000:  {:>10.4} us/item",
        micros(map_chunked)
    );
    let map_default = map(MAP_ITEMS, None);
    println!(
        "  map default:         {:>10.4} us/item",
        micros(map_default)
    );

    let start = Instant::now();
    let mut busy = std::collections::BTreeMap::<String, Duration>::new();
    for result in executor.map(nap, 0..BUSY_ITEMS).chunksize(BUSY_CHUNK) {
        let (place, took) = result.expect("a nap");
        *busy.entry(place).or_default() += took;
    }
    let wall = start.elapsed();
    for (place, time) in busy {
        println!(
            "  ranks busy:          {:>10.1} % ({place})",
            100.0 * time.as_secs_f64() / wall.as_secs_f64()
        );
    }
    drop(executor);
    skew();
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
