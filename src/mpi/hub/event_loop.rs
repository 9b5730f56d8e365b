//! Layer: mpi. May use: `error`, `mpi::backoff`, `mpi::hub::pool`,
//! `mpi::hub::workers`, `mpi::liveness`, `mpi::role`, `mpi::settings`,
//! `mpi::tags`, `remote::function`, `remote::message`, `remote::work`,
//! `shared`, std, crossbeam-channel and the mpi crate.
//! The hub's event loop ([`Hub::serve`]): the executors' [`Command`]s in,
//! work out to free workers, outcomes, heartbeats and answers to cuts back,
//! silent workers found. See [`hub`](super) for the whole.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ::mpi::environment::Universe;
use ::mpi::point_to_point::{Destination, Source};
use ::mpi::topology::{Communicator, SimpleCommunicator};
use ::mpi::{Rank, Tag};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::pool::Pool;
use super::workers::Workers;
use crate::mpi::backoff::Backoff;
use crate::mpi::liveness::{self, CommId, Heard};
use crate::mpi::role;
use crate::mpi::settings::MpiSettings;
use crate::mpi::tags;
use crate::remote::function::{Initializer, Secret};
use crate::remote::message::{Kind, Welcome};
use crate::remote::work::Work;
use crate::{Error, shared};

/// How often the busy workers are checked for silence.
const LIVENESS_CHECK: Duration = Duration::from_millis(200);

/// How long a worker may hold a chunk while a worker its pool could use is
/// free, before it is asked to cut it. Automatic chunks aim at a
/// millisecond, so uniform work is rarely cut.
const PATIENCE: Duration = Duration::from_millis(2);

/// What an executor asks of the hub.
pub(crate) enum Command {
    /// Make a pool of up to `max_workers` workers (`None`: MPI's default,
    /// as `MpiPoolBuilder` says), spawned as `spawn`
    /// says if spawned, each of which runs `initializer` before its first
    /// task of the pool.
    Open {
        max_workers: Option<usize>,
        spawn: MpiSettings,
        initializer: Option<Initializer>,
        reply: Sender<Result<Opened, Error>>,
    },
    /// Run `work` (a task or a chunk) on pool `pool`.
    Run { pool: u64, work: Work },
    /// Take no more tasks for `pool`; cancel its queued ones if `cancel`;
    /// answer on `reply` once its tasks are done and its workers released.
    Close {
        pool: u64,
        cancel: bool,
        reply: Option<Sender<()>>,
    },
    /// The process is exiting: stop every worker and finalize MPI.
    Finalize { reply: Sender<()> },
}

/// A new pool, as the hub made it.
pub(crate) struct Opened {
    /// Its number, which the executor's commands name.
    pub(crate) pool: u64,
    /// How many workers run its work at once.
    pub(crate) max_workers: usize,
    /// The key of its task tags.
    pub(crate) secret: Secret,
}

/// The state of the hub thread.
pub(super) struct Hub {
    /// The communicator of the serving ranks that every pool shares:
    /// `MPI_COMM_WORLD` (static-world mode), or the comm form's duplicate
    /// of the user's communicator. Before `universe`, so that it is freed
    /// before MPI is finalized.
    comm: SimpleCommunicator,
    /// MPI itself, when the hub initialized it: finalized when dropped.
    /// `None` in the comm form, whose MPI is the program's.
    universe: Option<Universe>,
    welcome: Welcome,
    workers: Workers,
    /// By id: the order in which they take turns at shared workers.
    pools: BTreeMap<u64, Pool>,
    /// The pool that was given a worker last, once one was.
    served_last: Option<u64>,
    /// The number of the last task message sent (its header's `first`).
    numbered: u32,
    next_pool: u64,
    callbacks: Sender<Box<dyn FnOnce() + Send>>,
    heard: Heard,
    /// The ids of the shared values put in each worker, so that each
    /// crosses once a worker.
    known: HashMap<(CommId, Rank), HashSet<u64>>,
}

/// The messages that ready a worker which has the shared values of `known`
/// for a task that uses `shared`: a `Release` of the values whose last
/// handle is gone, and a `Put` of each one the worker lacks (see `shared`).
fn share(known: &mut HashSet<u64>, shared: &[Arc<shared::Inner>]) -> Vec<(Tag, Vec<u8>)> {
    let mut messages = Vec::new();
    let gone = shared::gone(known);
    if !gone.is_empty() {
        messages.push((tags::of(Kind::Release), shared::release_body(&gone)));
    }
    for inner in shared {
        // A value that cannot be sent failed its task at `submit`.
        let Ok(wire) = inner.wire().map(shared::Wire::inline) else {
            continue;
        };
        if known.insert(inner.id()) {
            let put = [&shared::put_header(inner, &wire)[..], wire.bytes()].concat();
            messages.push((tags::of(Kind::Put), put));
        }
    }
    messages
}

impl Hub {
    /// A hub over `comm`, with no pool and no serving rank yet (see
    /// [`greet_world`](Self::greet_world)); starts the thread that runs
    /// done callbacks.
    pub(super) fn new(universe: Option<Universe>, comm: SimpleCommunicator) -> Result<Hub, String> {
        let fingerprint = role::fingerprint()
            .map_err(|error| format!("cannot identify this executable: {error}"))?;
        let (callbacks, deferred) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
        let _ = thread::Builder::new()
            .name("concurrent-futures-mpi-callbacks".into())
            .spawn(move || deferred.iter().for_each(|callback| callback()));
        Ok(Hub {
            comm,
            universe,
            welcome: Welcome {
                fingerprint,
                secret: Secret::random(),
                initializer: None,
            },
            workers: Workers::default(),
            pools: BTreeMap::new(),
            served_last: None,
            numbered: 0,
            next_pool: 1,
            callbacks,
            heard: Heard::default(),
            known: HashMap::new(),
        })
    }

    /// The size of the hub's communicator.
    pub(super) fn size(&self) -> Rank {
        self.comm.size()
    }

    /// Greets `ranks`, the serving ranks of the static world (or of the
    /// comm form's communicator).
    pub(super) fn greet_world(&mut self, ranks: Vec<Rank>) {
        self.workers.greet_world(&self.comm, ranks, &self.welcome);
    }

    /// Stops every worker ([`finish`](Self::finish)), then finalizes MPI if
    /// the hub initialized it, unless a rank died: `MPI_Finalize` (and
    /// freeing the communicator) would wait for the dead rank for ever.
    pub(super) fn end(mut self) {
        if self.finish() {
            drop(self);
        } else {
            std::mem::forget(self);
        }
    }

    /// Serves commands until `Finalize`, or until every executor handle is
    /// gone; returns the finalize reply, if any.
    pub(super) fn serve(&mut self, inbox: &Receiver<Command>) -> Option<Sender<()>> {
        let mut backoff = Backoff::default();
        let mut checked = Instant::now();
        loop {
            let out = self.pools.values().any(Pool::is_busy);
            let command = if out {
                match backoff.delay() {
                    None => inbox.try_recv().ok(),
                    Some(delay) => match inbox.recv_timeout(delay) {
                        Ok(command) => Some(command),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return None,
                    },
                }
            } else {
                match inbox.recv() {
                    Ok(command) => Some(command),
                    Err(_) => return None,
                }
            };
            let mut progressed = command.is_some();
            if let Some(command) = command {
                match command {
                    Command::Open {
                        max_workers,
                        spawn,
                        initializer,
                        reply,
                    } => {
                        let _ = reply.send(self.open(max_workers, spawn, initializer));
                    }
                    Command::Run { pool, work } => match self.pools.get_mut(&pool) {
                        Some(pool) => pool.accept(work),
                        None => work.results.fail(Error::Shutdown),
                    },
                    Command::Close {
                        pool,
                        cancel,
                        reply,
                    } => match self.pools.get_mut(&pool) {
                        Some(pool) => pool.close(cancel, reply),
                        None => {
                            if let Some(reply) = reply {
                                let _ = reply.send(());
                            }
                        }
                    },
                    Command::Finalize { reply } => return Some(reply),
                }
            }
            self.dispatch();
            if self.receive() {
                progressed = true;
                // The workers that answered are free: give them the queued
                // work now, or the loop would block on the channel with
                // work queued and nothing out.
                self.dispatch();
            }
            self.ask_cuts();
            // After the receive: what has arrived is heard.
            if out && checked.elapsed() > LIVENESS_CHECK {
                checked = Instant::now();
                self.check_silent();
            }
            self.retire_drained();
            if progressed {
                backoff.reset();
            }
        }
    }

    /// A new pool of up to `max_workers` workers, or of the default size (as
    /// `MpiPoolBuilder` says); spawned as `spawn`
    /// says in spawn mode; each worker runs `initializer` before its first
    /// task of the pool.
    fn open(
        &mut self,
        max_workers: Option<usize>,
        spawn: MpiSettings,
        initializer: Option<Initializer>,
    ) -> Result<Opened, Error> {
        let id = self.next_pool;
        self.next_pool += 1;
        let (comm_id, max_workers) = if self.workers.has_world() {
            let share = self
                .workers
                .world_share(max_workers.unwrap_or(usize::MAX))?;
            (CommId::World, share)
        } else {
            let size = max_workers.unwrap_or_else(|| self.universe_share());
            let pools = &self.pools;
            let in_use =
                |index| (pools.values()).any(|pool| pool.comm_id() == CommId::Group(index));
            let group = (self.workers).group_for(size, spawn, &self.welcome, in_use)?;
            (CommId::Group(group), self.workers.group_size(group))
        };
        self.pools
            .insert(id, Pool::new(comm_id, max_workers, initializer));
        Ok(Opened {
            pool: id,
            max_workers,
            secret: self.welcome.secret,
        })
    }

    /// The default size of a spawned pool: the MPI universe's size less
    /// this program's world, or 1 if MPI knows no universe size.
    fn universe_share(&self) -> usize {
        let world = usize::try_from(self.comm.size()).unwrap_or(1);
        (self.universe.as_ref().and_then(Universe::size))
            .map_or(1, |universe| universe.saturating_sub(world))
            .max(1)
    }

    /// The static world's serving ranks that run no call: the pools' own
    /// records say which run one.
    fn free_world(&self) -> impl Iterator<Item = Rank> + '_ {
        let world_pools = || (self.pools.values()).filter(|pool| pool.comm_id() == CommId::World);
        (self.workers.serving_world()).filter(move |&rank| !world_pools().any(|p| p.runs_on(rank)))
    }

    /// Sends `messages` to `rank` of the communicator `comm_id`.
    fn send(&self, comm_id: CommId, rank: Rank, messages: &[(Tag, Vec<u8>)]) {
        for (tag, message) in messages {
            match comm_id {
                CommId::World => {
                    (self.comm.process_at_rank(rank)).send_with_tag(&message[..], *tag)
                }
                CommId::Group(index) => (self.workers.group_comm(index).process_at_rank(rank))
                    .send_with_tag(&message[..], *tag),
            }
        }
    }

    /// Hands queued work to free workers: the pools take turns, one task
    /// each, starting after the one served last, so that pools sharing the
    /// static world's ranks share them fairly.
    fn dispatch(&mut self) {
        let mut sent = true;
        while sent {
            sent = false;
            let after = self.served_last.map_or(0, |id| id.saturating_add(1));
            let turns: Vec<u64> = (self.pools.range(after..).chain(self.pools.range(..after)))
                .map(|(&id, _)| id)
                .collect();
            for id in turns {
                let pool = &self.pools[&id];
                if !pool.has_room() {
                    continue;
                }
                let comm_id = pool.comm_id();
                let free = match comm_id {
                    CommId::World => self.free_world().next(),
                    CommId::Group(index) => (0..self.workers.group_comm(index).remote_size())
                        .find(|&rank| !pool.runs_on(rank)),
                };
                let Some(rank) = free else {
                    continue;
                };
                let pool = self.pools.get_mut(&id).expect("listed above");
                let Some(mut work) = pool.next_work(rank, &self.welcome.secret) else {
                    continue;
                };
                self.numbered = self.numbered.wrapping_add(1);
                work.number_from(self.numbered);
                // The shared values the worker lacks, each once per worker;
                // then one contiguous message: header, arguments, tail.
                let known = self.known.entry((comm_id, rank)).or_default();
                let mut messages = share(known, &work.shared);
                let task = [&work.header.encode()[..], &work.args, work.bulk.bytes()].concat();
                messages.push((tags::TASK, task));
                self.send(comm_id, rank, &messages);
                self.pools
                    .get_mut(&id)
                    .expect("listed above")
                    .sent(rank, work);
                self.heard.alive(comm_id, rank);
                self.served_last = Some(id);
                sent = true;
            }
        }
    }

    /// Asks workers that have held a chunk for [`PATIENCE`] to cut it, as
    /// many as their pool has workers free (after
    /// [`dispatch`](Self::dispatch), a pool with a worker free has nothing
    /// queued), those that have held theirs longest first.
    fn ask_cuts(&mut self) {
        let free_world = self.free_world().count();
        let asks: Vec<(CommId, Rank, u32)> = (self.pools.values_mut())
            .flat_map(|pool| {
                let comm_id = pool.comm_id();
                (pool.cuts_to_ask(free_world, PATIENCE).into_iter())
                    .map(move |(rank, first)| (comm_id, rank, first))
            })
            .collect();
        for (comm_id, rank, first) in asks {
            self.send(comm_id, rank, &[(tags::CUT, first.to_le_bytes().to_vec())]);
        }
    }

    /// Breaks the pools with a busy worker that has fallen silent (see
    /// [`liveness`]): its call, the queued ones and later ones fail with
    /// [`Error::BrokenExecutor`] rather than wait for ever. In spawn mode
    /// Open MPI aborts the whole spawned job when one of its ranks dies, so
    /// every task of the pool fails and its group is never spoken to
    /// again; unless it runs with `--enable-recovery`, it aborts every
    /// other spawned job too ([`liveness::aborts_every_spawned_job`]), so
    /// every other group is aborted and its pool, if any, broken. In a
    /// static world (run with `--enable-recovery`, or `mpiexec` kills this
    /// process too) the other ranks live: their running calls finish, and
    /// they serve later executors.
    fn check_silent(&mut self) {
        let silent: Vec<(u64, Rank)> = (self.pools.iter())
            .filter_map(|(&id, pool)| pool.silent(&self.heard).map(|rank| (id, rank)))
            .collect();
        for (id, rank) in silent {
            // A pool may have broken meanwhile, aborted with an earlier
            // death of this loop: it keeps that reason.
            let Some(pool) = (self.pools.get_mut(&id)).filter(|pool| pool.broken().is_none())
            else {
                continue;
            };
            let host = self.workers.mark_dead(pool.comm_id(), rank);
            let reason = format!(
                "MPI rank {rank} on host {host} sent no heartbeat for {:?} while running a task: \
                 it died, or its host is unreachable",
                liveness::SILENCE
            );
            if pool.comm_id() == CommId::World {
                let lost = pool.lose(rank);
                pool.fail(lost.into_iter().collect(), &reason);
                continue;
            }
            pool.fail_all(&format!(
                "{reason}; Open MPI aborts the whole spawned job, so this executor has no \
                 ranks left"
            ));
            if liveness::aborts_every_spawned_job() {
                self.abort_spawned(&format!(
                    "Open MPI aborted every spawned MPI job when rank {rank} on host {host}, \
                     of another executor, died (run under `mpiexec --enable-recovery` for \
                     other executors to survive it); create a new executor"
                ));
            }
        }
    }

    /// Marks every spawned group not already dead aborted, and breaks the
    /// pools that use them, for `reason`.
    fn abort_spawned(&mut self, reason: &str) {
        for index in self.workers.abort_groups() {
            let users = (self.pools.values_mut())
                .filter(|pool| pool.comm_id() == CommId::Group(index) && pool.broken().is_none());
            for pool in users {
                pool.fail_all(reason);
            }
        }
    }

    /// Receives every outcome and heartbeat that has arrived, from the
    /// world's serving ranks and from each busy spawned group, and gives
    /// each outcome to the pool whose work its worker holds; `true` if
    /// there was one.
    fn receive(&mut self) -> bool {
        let mut received = false;
        let world_busy = (self.pools.values()).any(|p| p.comm_id() == CommId::World && p.is_busy());
        if world_busy {
            let world = &self.comm;
            self.heard.receive(CommId::World, world);
            // Answers to cuts before outcomes: a worker sends its answer
            // first, and its outcomes say how many items ran either way.
            while let Some((rank, answer)) = receive_from_any(world, tags::CUT) {
                received = true;
                if let Some(pool) = world_pool_of(&mut self.pools, rank) {
                    pool.cut_answered(rank, &answer);
                }
            }
            while let Some((rank, outcomes)) = receive_from_any(world, tags::OUTCOMES) {
                received = true;
                // The worker is free again, whichever pool it served.
                if let Some(pool) = world_pool_of(&mut self.pools, rank) {
                    pool.answered(rank, &outcomes, &mut self.heard, &self.callbacks);
                }
            }
        }
        for pool in self.pools.values_mut() {
            let CommId::Group(index) = pool.comm_id() else {
                continue;
            };
            let comm = self.workers.group_comm(index);
            if pool.is_busy() {
                self.heard.receive(CommId::Group(index), comm);
                while let Some((rank, answer)) = receive_from_any(comm, tags::CUT) {
                    received = true;
                    pool.cut_answered(rank, &answer);
                }
            }
            while pool.is_busy() {
                let Some((rank, outcomes)) = receive_from_any(comm, tags::OUTCOMES) else {
                    break;
                };
                received = true;
                pool.answered(rank, &outcomes, &mut self.heard, &self.callbacks);
            }
        }
        received
    }

    /// Retires the closed pools that have nothing left to run: answers
    /// their `Close`s; a spawned group is then free for a later pool.
    fn retire_drained(&mut self) {
        let drained: Vec<u64> = (self.pools.iter())
            .filter(|(_, pool)| pool.drained())
            .map(|(&id, _)| id)
            .collect();
        for id in drained {
            let pool = self.pools.remove(&id).expect("listed above");
            pool.retire();
        }
    }

    /// At exit: stops every worker. Work still queued fails; the outcomes
    /// of work still running are not waited for. `false` if MPI must not
    /// be finalized, as a rank of the world has died.
    fn finish(&mut self) -> bool {
        let reason = "the program is exiting, and MPI with it";
        for mut pool in std::mem::take(&mut self.pools).into_values() {
            pool.abandon(reason);
            pool.retire();
        }
        self.workers.stop_all(&self.comm)
    }
}

/// The pool whose call the static world's `rank` runs, if any (a message
/// from a rank that runs none is stray, and ignored).
fn world_pool_of(pools: &mut BTreeMap<u64, Pool>, rank: Rank) -> Option<&mut Pool> {
    (pools.values_mut()).find(|pool| pool.comm_id() == CommId::World && pool.runs_on(rank))
}

/// One arrived message with `tag`, if any: its sender and bytes.
fn receive_from_any<C: Communicator>(comm: &C, tag: Tag) -> Option<(Rank, Vec<u8>)> {
    // A probe, then a receive from the rank it found: this thread alone
    // receives, so the message is still there. Not a matched probe
    // (`MPI_Mprobe`): Open MPI's has been unreliable (mpi4py turns it off),
    // and here it left spawned ranks crashing in `MPI_Comm_disconnect`.
    let status = comm.any_process().immediate_probe_with_tag(tag)?;
    let rank = status.source_rank();
    let (bytes, _) = comm.process_at_rank(rank).receive_vec_with_tag::<u8>(tag);
    Some((rank, bytes))
}
