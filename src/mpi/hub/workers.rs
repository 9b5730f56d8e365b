//! Layer: mpi. May use: `error`, `mpi::ffi`, `mpi::hub::handshake`,
//! `mpi::liveness`, `mpi::role`, `mpi::settings`, `mpi::tags`,
//! `remote::message`, std and the mpi crate.
//! The hub's workers ([`Workers`]): the static world's serving ranks,
//! which every pool shares, and the groups of spawned ranks, each used by
//! one pool at a time and kept, once that pool is retired, for a later one
//! of the same size and settings. Here is whether each still serves; which
//! pool runs work on a worker is the pool's record alone (its `busy`
//! ranks, and the communicator it runs on), so the hub asks the pools.

use ::mpi::Rank;
use ::mpi::point_to_point::Destination;
use ::mpi::topology::{Communicator, InterCommunicator, SimpleCommunicator};

use super::handshake::{handshake, stop};
use crate::Error;
use crate::mpi::liveness::{self, CommId};
use crate::mpi::role::WORKER_ARG;
use crate::mpi::settings::MpiSettings;
use crate::mpi::{ffi, tags};
use crate::remote::message::Welcome;

/// A serving rank of the static world (or of the comm form's
/// communicator).
struct WorldWorker {
    rank: Rank,
    /// The host it runs on, as it said at the handshake.
    host: String,
    state: WorldState,
}

/// Whether a serving rank of the static world still serves:
///
/// ```text
/// Serving ──silent while running a call──▶ Dead
/// Refused(why)            (the handshake failed)
/// ```
///
/// `Refused` and `Dead` are final: such a rank is never used again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WorldState {
    Serving,
    /// The handshake failed, for this reason: one worker of another build
    /// makes the whole world unusable.
    Refused(String),
    /// It fell silent while running a call (see
    /// [`liveness`](crate::mpi::liveness)): never spoken to again, as a
    /// send to it could hang.
    Dead,
}

/// Ranks started together by one `MPI_Comm_spawn`.
struct Group {
    /// The intercommunicator whose remote group they are.
    comm: InterCommunicator,
    state: GroupState,
    /// The host each rank runs on, as it said at the handshake.
    hosts: Vec<String>,
    /// How it was spawned: a later pool reuses it only if asked for the
    /// same.
    spawn: MpiSettings,
}

/// Whether a spawned group still serves:
///
/// ```text
/// Live ──one of its ranks silent while running a call──▶ Dead(rank)
///   └───a rank of another group died───────────────────▶ Aborted
/// ```
///
/// Both ends are final. Open MPI aborts a dead rank's whole spawned job
/// (unless `mpiexec` runs with `--enable-recovery`, every spawned job:
/// [`liveness::aborts_every_spawned_job`]): the group's ranks are gone,
/// and a send to them could hang. At exit its other ranks are told to stop
/// without waiting, and its communicator is never freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupState {
    Live,
    /// This rank of the group fell silent.
    Dead(Rank),
    Aborted,
}

/// The hub's workers: the static world's and the spawned groups.
#[derive(Default)]
pub(super) struct Workers {
    world: Vec<WorldWorker>,
    /// Kept for later pools until the program exits.
    groups: Vec<Group>,
}

impl Workers {
    /// Greets `ranks`, the serving ranks of the static world (or of the
    /// comm form's communicator `world`).
    pub(super) fn greet_world(
        &mut self,
        world: &SimpleCommunicator,
        ranks: Vec<Rank>,
        welcome: &Welcome,
    ) {
        let (hosts, refused) = match handshake(world, &ranks, welcome) {
            Ok(hosts) => (hosts, None),
            Err(refused) => {
                // One rank of another build makes the whole world unusable,
                // but the others serve until told to stop.
                stop(world, &refused.serving);
                (refused.hosts, Some(refused.reason))
            }
        };
        self.world = ranks
            .into_iter()
            .zip(hosts)
            .map(|(rank, host)| WorldWorker {
                rank,
                host,
                state: match &refused {
                    None => WorldState::Serving,
                    Some(reason) => WorldState::Refused(reason.clone()),
                },
            })
            .collect();
    }

    /// Whether there is a static world: then every pool runs on it.
    pub(super) fn has_world(&self) -> bool {
        !self.world.is_empty()
    }

    /// How many of the static world's serving ranks a new pool of up to
    /// `max_workers` may use at once: every pool shares the live ones.
    pub(super) fn world_share(&self, max_workers: usize) -> Result<usize, Error> {
        let live = self.serving_world().count();
        if live > 0 {
            return Ok(max_workers.min(live));
        }
        let reason = self.world.iter().find_map(|worker| match &worker.state {
            WorldState::Refused(reason) => Some(reason.clone()),
            _ => None,
        });
        Err(Error::BrokenExecutor {
            reason: reason.unwrap_or_else(|| {
                format!(
                    "all {} serving ranks of this MPI world have died; start the program again",
                    self.world.len()
                )
            }),
        })
    }

    /// The static world's ranks that still serve, in order.
    pub(super) fn serving_world(&self) -> impl Iterator<Item = Rank> + '_ {
        (self.world.iter())
            .filter(|worker| worker.state == WorldState::Serving)
            .map(|worker| worker.rank)
    }

    /// A live group of `size` ranks spawned as `spawn` says that
    /// `in_use` says no pool uses: one left by an earlier pool, or a new
    /// one. Reusing them saves a spawn (tenths of a second) per executor,
    /// and Open MPI's spawn and disconnect are its least robust paths.
    pub(super) fn group_for(
        &mut self,
        size: usize,
        spawn: MpiSettings,
        welcome: &Welcome,
        in_use: impl Fn(usize) -> bool,
    ) -> Result<usize, Error> {
        let free = self.groups.iter().enumerate().position(|(index, group)| {
            group.state == GroupState::Live
                && group.spawn == spawn
                && usize::try_from(group.comm.remote_size()).ok() == Some(size)
                && !in_use(index)
        });
        if let Some(index) = free {
            return Ok(index);
        }
        let (program, pairs) = spawn.spawn_args()?;
        let comm = ffi::spawn(&program, WORKER_ARG, size, &pairs)?;
        let ranks: Vec<Rank> = (0..comm.remote_size()).collect();
        let hosts = handshake(&comm, &ranks, welcome).map_err(|refused| {
            stop(&comm, &refused.serving);
            Error::BrokenExecutor {
                reason: refused.reason,
            }
        })?;
        self.groups.push(Group {
            comm,
            state: GroupState::Live,
            hosts,
            spawn,
        });
        Ok(self.groups.len() - 1)
    }

    /// The number of ranks in spawned group `index`.
    pub(super) fn group_size(&self, index: usize) -> usize {
        usize::try_from(self.groups[index].comm.remote_size()).unwrap_or(0)
    }

    /// The intercommunicator of spawned group `index`.
    pub(super) fn group_comm(&self, index: usize) -> &InterCommunicator {
        &self.groups[index].comm
    }

    /// Marks `rank` of `comm`, silent while running a call, dead (for a
    /// spawned group: the whole group); returns the host it ran on.
    pub(super) fn mark_dead(&mut self, comm: CommId, rank: Rank) -> String {
        let host = match comm {
            CommId::World => (self.world.iter_mut())
                .find(|worker| worker.rank == rank)
                .map(|worker| {
                    worker.state = WorldState::Dead;
                    worker.host.clone()
                }),
            CommId::Group(index) => {
                let group = &mut self.groups[index];
                group.state = GroupState::Dead(rank);
                usize::try_from(rank)
                    .ok()
                    .and_then(|i| group.hosts.get(i).cloned())
            }
        };
        host.unwrap_or_else(|| "?".into())
    }

    /// Marks every spawned group still live [`GroupState::Aborted`];
    /// returns their indices.
    pub(super) fn abort_groups(&mut self) -> Vec<usize> {
        (self.groups.iter_mut().enumerate())
            .filter(|(_, group)| group.state == GroupState::Live)
            .map(|(index, group)| {
                group.state = GroupState::Aborted;
                index
            })
            .collect()
    }

    /// At exit, once no pool runs anything: tells every worker to stop.
    /// `false` if MPI must not be finalized, as a rank of the static world
    /// (`world`) has died.
    pub(super) fn stop_all(&mut self, world: &SimpleCommunicator) -> bool {
        // A message to a dead rank or a disconnect could block for ever,
        // and the other ranks of its group, or of an aborted one, may be
        // gone too: those are told to stop without waiting, and their
        // communicators are never freed.
        let (lost, live): (Vec<Group>, Vec<Group>) =
            (self.groups.drain(..)).partition(|group| group.state != GroupState::Live);
        for group in live {
            let ranks: Vec<Rank> = (0..group.comm.remote_size()).collect();
            stop(&group.comm, &ranks);
            drop(group.comm); // MPI_Comm_disconnect: the ranks disconnect too
        }
        liveness::stop_survivors(lost.iter().flat_map(|group| {
            let dead = match group.state {
                GroupState::Dead(rank) => Some(rank),
                GroupState::Live | GroupState::Aborted => None,
            };
            (0..group.comm.remote_size())
                .filter(move |&rank| Some(rank) != dead)
                .map(|rank| (&group.comm, rank))
        }));
        lost.into_iter()
            .for_each(|group| std::mem::forget(group.comm));
        let serving: Vec<Rank> = (self.world.iter())
            .filter(|worker| !matches!(worker.state, WorldState::Refused(_) | WorldState::Dead))
            .map(|worker| worker.rank)
            .collect();
        let dead = (self.world.iter()).any(|worker| worker.state == WorldState::Dead);
        if dead {
            // Every rank, this one too, leaves without MPI_Finalize, which
            // would wait for the dead rank.
            for &rank in &serving {
                world
                    .process_at_rank(rank)
                    .send_with_tag(liveness::ABANDON, tags::STOP);
            }
        } else {
            stop(world, &serving);
        }
        !dead
    }
}
