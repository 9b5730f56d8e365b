//! Layer: mpi. May use: `mpi::backoff`, `mpi::tags`, `remote::message`,
//! std and the mpi crate.
//! The hub's talk with its workers outside tasks: the handshake that
//! greets new ones (each worker's `Hello` and where it runs, the hub's
//! `Welcome`, the worker's `Ready`), and the stop that ends their service.

use std::time::{Duration, Instant};

use ::mpi::Rank;
use ::mpi::point_to_point::{Destination, Source};
use ::mpi::topology::Communicator;

use crate::mpi::backoff::Backoff;
use crate::mpi::tags;
use crate::remote::message::{self, Hello, Welcome};

/// How long a new worker may take to greet and report ready.
const HANDSHAKE_PATIENCE: Duration = Duration::from_secs(30);

/// A failed handshake.
pub(super) struct Refused {
    /// Why, naming the first rank that failed.
    pub(super) reason: String,
    /// The host of each rank (as far as it got).
    pub(super) hosts: Vec<String>,
    /// The ranks that said they are ready: they serve until stopped.
    pub(super) serving: Vec<Rank>,
}

/// The greeting: each rank's `Hello` and where it runs, then our
/// `Welcome`, then its `Ready`. `Ok` holds the host each rank runs on.
pub(super) fn handshake<C: Communicator>(
    comm: &C,
    ranks: &[Rank],
    welcome: &Welcome,
) -> Result<Vec<String>, Refused> {
    let deadline = Instant::now() + HANDSHAKE_PATIENCE;
    let mut refusal = None;
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let here = here.trim();
    let mut hosts = Vec::new();
    let mut serving = Vec::new();
    let refused = |reason, hosts, serving| Refused {
        reason,
        hosts,
        serving,
    };
    for &rank in ranks {
        let greeting = receive_within(comm, rank, tags::HELLO, deadline)
            .and_then(|hello| Ok((hello, receive_within(comm, rank, tags::WHERE, deadline)?)));
        let (body, place) = match greeting {
            Ok(greeting) => greeting,
            Err(reason) => return Err(refused(reason, hosts, serving)),
        };
        let place = String::from_utf8_lossy(&place);
        let host = place.split_once(' ').map_or("?", |(_pid, host)| host);
        match Hello::decode(&body) {
            Ok(hello) if hello.fingerprint == welcome.fingerprint => {}
            Ok(_) => {
                refusal.get_or_insert(format!(
                    "MPI rank {rank} on host {host} runs a different build of the program than \
                     rank 0 on host {here} (their executables differ): every host must run the \
                     same build, at the same path, with the same MPI library"
                ));
            }
            Err(error) => {
                refusal.get_or_insert(format!(
                    "MPI rank {rank} on host {host} sent a bad greeting: {}",
                    error.into_error()
                ));
            }
        }
        hosts.push(host.to_owned());
    }
    let encoded = welcome.encode();
    for &rank in ranks {
        comm.process_at_rank(rank)
            .send_with_tag(&encoded[..], tags::WELCOME);
    }
    for &rank in ranks {
        let ready = receive_within(comm, rank, tags::READY, deadline)
            .and_then(|body| message::decode_ready(&body).map_err(|e| e.into_error().to_string()));
        match ready {
            Ok(Ok(())) => serving.push(rank),
            Ok(Err(reason)) => {
                refusal.get_or_insert(format!("MPI rank {rank} refused to serve: {reason}"));
            }
            Err(reason) => return Err(refused(reason, hosts, serving)),
        }
    }
    match refusal {
        None => Ok(hosts),
        Some(reason) => Err(refused(reason, hosts, serving)),
    }
}

/// Receives the message with `tag` from `rank`, polling until `deadline`.
fn receive_within<C: Communicator>(
    comm: &C,
    rank: Rank,
    tag: ::mpi::Tag,
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let process = comm.process_at_rank(rank);
    let mut backoff = Backoff::default();
    loop {
        if process.immediate_probe_with_tag(tag).is_some() {
            return Ok(process.receive_vec_with_tag::<u8>(tag).0);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "MPI rank {rank} did not finish the handshake within {HANDSHAKE_PATIENCE:?}"
            ));
        }
        backoff.pause();
    }
}

/// Tells each of `ranks` to stop serving.
pub(super) fn stop<C: Communicator>(comm: &C, ranks: &[Rank]) {
    for &rank in ranks {
        comm.process_at_rank(rank)
            .send_with_tag(&[][..] as &[u8], tags::STOP);
    }
}
