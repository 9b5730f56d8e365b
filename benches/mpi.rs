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
//!
//! Plain timing, not criterion: the figures sit beside the process pool's
//! criterion figures in BENCHMARKS.md, measured the same way (per task).

use std::hint::black_box;
use std::time::{Duration, Instant};

use concurrent_futures::MpiPoolExecutor;

const WORKERS: usize = 2;
const RUNS: usize = 5;
const ROUND_TRIPS: u32 = 2_000;
const PENDING: u64 = 10_000;
const MAP_SMALL: u64 = 10_000;
const MAP_ITEMS: u64 = 1_000_000;

fn ident(x: u64) -> u64 {
    black_box(x)
}

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

fn main() {
    concurrent_futures::init(); // in a worker rank, this serves and never returns
    let mode = match std::env::var("OMPI_COMM_WORLD_SIZE") {
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

    let map_small = best(MAP_SMALL, || {
        let n = executor
            .map(ident, 0..MAP_SMALL)
            .filter(Result::is_ok)
            .count();
        assert_eq!(n as u64, MAP_SMALL);
    });
    println!("  map chunksize 1:     {:>10.2} us/item", micros(map_small));

    let map_chunked = best(MAP_ITEMS, || {
        let n = executor
            .map(ident, 0..MAP_ITEMS)
            .chunksize(1000)
            .filter(Result::is_ok)
            .count();
        assert_eq!(n as u64, MAP_ITEMS);
    });
    println!(
        "  map chunksize 1000:  {:>10.4} us/item",
        micros(map_chunked)
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
