//! The tutorial's heavy sum, on MPI ranks: `mpi4py.futures` for Rust.
//!
//! In Python:
//!
//! ```python
//! from mpi4py.futures import MPIPoolExecutor
//!
//! def hitung_kuadrat_berat(angka):
//!     return sum(i * i for i in range(10**7))
//!
//! if __name__ == "__main__":
//!     with MPIPoolExecutor() as executor:
//!         for hasil in executor.map(hitung_kuadrat_berat, range(TASKS)):
//!             print(hasil)
//! ```
//!
//! Needs the `mpi` feature and an MPI library (Debian:
//! `apt-get install libopenmpi-dev openmpi-bin libclang-dev`). Build it, then
//! run it either way (as root, also set `OMPI_ALLOW_RUN_AS_ROOT=1
//! OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`; with more processes than cores,
//! `OMPI_MCA_rmaps_base_oversubscribe=1`):
//!
//! ```text
//! cargo build --release --features mpi --example square_sum_mpi
//! mpiexec -n 3 target/release/examples/square_sum_mpi   # static world: ranks 1, 2 serve
//! target/release/examples/square_sum_mpi                # alone: spawns 2 workers
//! ```
//!
//! Arguments: `[TASKS] [N]` (defaults: 8 tasks, N = 10^7). Every task sums
//! i*i for i in 0..N on some rank; rank 0 computes the same sum itself and
//! checks that the distributed results equal it.

use std::hint::black_box;
use std::time::Instant;

use concurrent_futures::{Error, MpiPoolExecutor};

/// The sum of i*i for i in 0..n, as u128 (Python's integers grow as needed).
/// `black_box` keeps the compiler from using the closed-form formula.
fn hitung_kuadrat_berat((angka, n): (u32, u64)) -> (u32, u128, String) {
    let hasil = (0..n)
        .map(|i| black_box(u128::from(i) * u128::from(i)))
        .sum();
    // Open MPI's mpiexec names the rank; so does Slurm's srun, through PMIx.
    let rank = (std::env::var("OMPI_COMM_WORLD_RANK").or_else(|_| std::env::var("PMIX_RANK")))
        .unwrap_or_else(|_| "?".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    (
        angka,
        hasil,
        format!("pid {} rank {rank} di {}", std::process::id(), host.trim()),
    )
}

fn main() -> Result<(), Error> {
    concurrent_futures::init(); // in a worker rank, this serves and never returns
    let mut args = std::env::args().skip(1);
    let tasks: u32 = args
        .next()
        .map_or(8, |a| a.parse().expect("TASKS is a number"));
    let n: u64 = args
        .next()
        .map_or(10_u64.pow(7), |a| a.parse().expect("N is a number"));

    let start = Instant::now();
    let local = hitung_kuadrat_berat((0, n)).1;
    println!("Hasil lokal: {local}");

    let executor = MpiPoolExecutor::new(2)?;
    println!("{} rank melayani tugas", executor.max_workers());
    let mut total = 0_u128;
    for hasil in executor.map(hitung_kuadrat_berat, (1..=tasks).map(|angka| (angka, n))) {
        let (angka, hasil, tempat) = hasil?;
        println!("Hasil tugas {angka} ({tempat}): {hasil}");
        assert_eq!(
            hasil, local,
            "the distributed result differs from the local one"
        );
        total += hasil;
    }
    assert_eq!(total, local * u128::from(tasks));
    println!("Semua {tasks} hasil sama dengan hasil lokal.");
    println!("Total waktu: {:.2} detik", start.elapsed().as_secs_f64());
    Ok(())
}
