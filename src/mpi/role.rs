//! Layer: mpi. May use: `remote::function` and std.
//! How this run of the program takes part in MPI ([`Role`]), as far as the
//! launcher's environment and arguments tell before MPI is initialized,
//! and the fingerprint by which the hub and its workers prove they run the
//! same build.
//!
//! A run of the program is an MPI worker in one of two ways:
//!
//! - **spawned**: an `MpiPoolExecutor` started it
//!   with `MPI_Comm_spawn`, passing [`WORKER_ARG`] as its only argument. It
//!   serves the parent over the parent intercommunicator.
//! - **a rank ≥ 1 of a static world**: the program runs under
//!   `mpiexec -n N` with N > 1 (Open MPI's `OMPI_COMM_WORLD_SIZE`/`_RANK`,
//!   or the `PMI_SIZE`/`PMI_RANK` of MPICH's Hydra), or `srun --mpi=pmix`
//!   (`SLURM_STEP_NUM_TASKS` and `PMIX_RANK`). It serves rank 0 over
//!   `MPI_COMM_WORLD`. Rank 0 returns from `init` to run `main`, with the
//!   hub thread already started, so that the serving ranks are told to
//!   stop when rank 0's program ends, whether or not it used them.

use std::env;

use crate::remote::function::Fingerprint;

/// The argument a spawned worker is started with.
pub(crate) const WORKER_ARG: &str = "--concurrent-futures-mpi-worker";

/// How this run of the program takes part in MPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Spawned by an `MpiPoolExecutor`: serve the parent.
    Spawned,
    /// Rank `rank` of a static world of `size > 1` processes.
    World { rank: usize, size: usize },
    /// Not launched as part of a larger MPI job.
    Alone,
}

impl Role {
    /// This process's role, from its arguments and environment.
    pub(crate) fn of_this_process() -> Role {
        if env::args_os().nth(1).is_some_and(|arg| arg == WORKER_ARG) {
            return Role::Spawned;
        }
        let number = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|name| env::var(name).ok()?.parse::<usize>().ok())
        };
        // Slurm's `srun --mpi=pmix` sets no Open MPI variable: its PMIx
        // rank, and the step's size. (A batch script's own run has no
        // PMIx rank: it is alone.)
        let srun = |name: &str| env::var_os("PMIX_RANK").and(number([name, name]));
        let size =
            number(["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]).or_else(|| srun("SLURM_STEP_NUM_TASKS"));
        let rank = number(["OMPI_COMM_WORLD_RANK", "PMI_RANK"]).or_else(|| srun("PMIX_RANK"));
        match (size, rank) {
            (Some(size), Some(rank)) if size > 1 && rank < size => Role::World { rank, size },
            _ => Role::Alone,
        }
    }
}

/// This executable's fingerprint as the MPI transport measures it: its
/// contents, equal for equal files wherever they lie, for workers on other
/// machines, which see another device and inode for the same program.
/// Reads the whole file once (a few milliseconds for a typical binary).
pub(crate) fn fingerprint() -> std::io::Result<Fingerprint> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let bytes = std::fs::read("/proc/self/exe")?;
    // Two independent 64-bit hashes (SipHash with two fixed keys, the
    // same in every run of this binary) make a 128-bit digest.
    let mut hashes = [DefaultHasher::new(), DefaultHasher::new()];
    hashes[1].write_u64(0x6d70_6920_7261_6e6b);
    for hasher in &mut hashes {
        bytes.hash(hasher);
    }
    Ok(Fingerprint::new([
        bytes.len() as u64,
        hashes[0].finish(),
        hashes[1].finish(),
        u64::from_le_bytes(*b"contents"),
    ]))
}
