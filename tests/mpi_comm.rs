//! The comm form of the MPI executor (feature `mpi`): an MPI program that
//! runs tasks over a communicator of its own, like mpi4py's
//! `MPICommExecutor`. Every rank runs every step, in order, as MPI programs
//! do (the steps are collective); a failed step panics, and the rank exits
//! with an error. Run under `mpiexec -n 3`:
//!
//! - `mpiexec -n 3 <this test binary> user`: the program initializes MPI
//!   itself with the `mpi` crate, as any MPI code does;
//! - `mpiexec -n 3 <this test binary> crate`: it does not, and the comm
//!   form over the world initializes MPI (and finalizes it).
//!
//! `.ci/run` does both. This program calls no `concurrent_futures::init()`:
//! the comm form needs none (under `mpiexec`, `init()` would make the ranks
//! a static world's instead). The two are cases of the tests' one runner
//! (`common/harness.rs`; the argument is its name filter), run on the main
//! thread; run without `mpiexec`, as `cargo test` does, both are ignored.

#[path = "common/process_fixtures.rs"]
mod fixtures;
#[path = "common/harness.rs"]
mod harness;

use concurrent_futures::{Error, MpiPoolExecutor};
use mpi::collective::SystemOperation;
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Color, SimpleCommunicator};
use mpi::traits::{Communicator, CommunicatorCollectives};

/// A task's answer: its input squared, and where it ran (pid, rank in
/// `MPI_COMM_WORLD`).
fn square_where(n: u64) -> (u64, u32, i32) {
    (
        n * n,
        std::process::id(),
        SimpleCommunicator::world().rank(),
    )
}

fn main() {
    // Alone, as `cargo test` runs it, there are no other ranks: both cases
    // are listed, as ignored.
    let alone = std::env::var("OMPI_COMM_WORLD_SIZE").is_err();
    let cases: [(&'static str, fn()); 2] = [
        ("user", initialized_by_the_program),
        ("crate", initialized_by_the_comm_form),
    ];
    let trials = (cases.into_iter())
        .map(|(name, case)| harness::trial(name, None, case).with_ignored_flag(alone))
        .collect();
    harness::conclude(&harness::arguments(), trials).exit()
}

/// Prints a passed step, with the rank, so that the output shows each.
fn passed(rank: i32, step: &str) {
    println!("rank {rank}: ok: {step}");
}

fn initialized_by_the_program() {
    let universe = mpi::initialize().expect("MPI initializes");
    let world = universe.world();
    let (rank, size) = (world.rank(), world.size());
    assert!(size >= 3, "run under mpiexec -n 3 or more");

    // Mirrors mpi4py's test_arg_bad_root: every rank gets the error.
    for root in [-1, size] {
        match MpiPoolExecutor::with_comm(&world, root, |_| ()) {
            Err(Error::InvalidArgument(what)) => assert!(what.contains("root"), "{what}"),
            other => panic!("root {root}: expected InvalidArgument, got {other:?}"),
        }
    }
    passed(
        rank,
        "a root outside the communicator is InvalidArgument on every rank",
    );

    // Where mpi4py's test_self spawns workers, a one-rank communicator is
    // an error here (the guide says why).
    match MpiPoolExecutor::with_comm(&SimpleCommunicator::self_comm(), 0, |_| ()) {
        Err(Error::InvalidArgument(what)) => assert!(what.contains("single rank"), "{what}"),
        other => panic!("MPI_COMM_SELF: expected InvalidArgument, got {other:?}"),
    }
    passed(rank, "a one-rank communicator is InvalidArgument");

    // Mirrors mpi4py's test_arg_root: each rank in turn is the root; it
    // gets the executor, the others serve and get None.
    for root in 0..size {
        let ran = MpiPoolExecutor::with_comm(&world, root, |executor| {
            assert_eq!(executor.max_workers(), usize::try_from(size - 1).unwrap());
            executor
                .map(square_where, 0..40)
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .unwrap();
        match ran {
            Some(results) => {
                assert_eq!(rank, root);
                for (n, &(square, pid, ran_on)) in (0..40).zip(&results) {
                    assert_eq!(square, n * n);
                    assert_ne!(pid, std::process::id(), "a task ran on the root");
                    assert_ne!(ran_on, root);
                }
            }
            None => assert_ne!(rank, root),
        }
    }
    passed(
        rank,
        "every rank in turn as the root: tasks run on the others",
    );

    // mpi4py's test_get_comm_workers in spirit: a split communicator and a
    // root other than 0. Ranks 0 and 1 form one communicator, rooted at 1;
    // rank 2 is alone in another, where the comm form is refused.
    let pair = world
        .split_by_color(Color::with_value(i32::from(rank >= 2)))
        .expect("every rank has a color");
    let on_pair =
        MpiPoolExecutor::builder()
            .max_workers(1)
            .with_comm(&pair, pair.size() - 1, |executor| {
                assert_eq!(executor.max_workers(), 1);
                executor.submit(square_where, 7).result().unwrap()
            });
    match (rank, on_pair) {
        (1, Ok(Some((49, _, ran_on)))) => assert_eq!(ran_on, 0),
        (0, Ok(None)) => {}
        (2.., Err(Error::InvalidArgument(_))) => {}
        (rank, other) => panic!("rank {rank}: unexpected {other:?}"),
    }
    drop(pair);
    passed(rank, "a split communicator, rooted at its last rank");

    // The program's communicator is left alone: nothing of the executor's
    // is waiting on it, and it carries the program's own messages, tag 6
    // (the executor's stop tag) included.
    // The barriers: no rank probes after another has sent its own message.
    world.barrier();
    assert!(
        world.any_process().immediate_probe().is_none(),
        "a message of the executor is waiting on the program's communicator"
    );
    world.barrier();
    let next = world.process_at_rank((rank + 1) % size);
    let previous = world.process_at_rank((rank + size - 1) % size);
    mpi::request::scope(|scope| {
        let sent = next.immediate_send_with_tag(scope, &rank, 6);
        let (got, _) = previous.receive_with_tag::<i32>(6);
        assert_eq!(got, (rank + size - 1) % size);
        sent.wait();
    });
    let mut sum = 0;
    world.all_reduce_into(&rank, &mut sum, SystemOperation::sum());
    assert_eq!(sum, size * (size - 1) / 2);
    passed(rank, "the program's communicator works as before");
}

fn initialized_by_the_comm_form() {
    assert!(!mpi::environment::is_initialized());
    let nine = MpiPoolExecutor::builder()
        .with_world(0, |executor| executor.submit(square_where, 3).result())
        .unwrap();
    let rank: i32 = std::env::var("OMPI_COMM_WORLD_RANK")
        .unwrap()
        .parse()
        .unwrap();
    match nine {
        Some(Ok((9, pid, ran_on))) => {
            assert_eq!(rank, 0);
            assert_ne!(pid, std::process::id());
            assert_ne!(ran_on, 0);
        }
        None => assert_ne!(rank, 0),
        other => panic!("rank {rank}: unexpected {other:?}"),
    }
    passed(
        rank,
        "the comm form initialized MPI, ran a task and finalized",
    );
}
