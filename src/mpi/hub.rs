//! Layer: MPI transport. May use the remote layer's calls, messages, work
//! and codec's `Bulk`, `shared`'s values to put in a rank, the crate's
//! futures, `ffi`, `liveness` and `rank`; no other transport. The hub: the
//! one thread of a process that owns MPI, with its event loop and the
//! leasing of ranks.
//!
//! Open MPI's communicators are not `Send`, so a single thread initializes
//! MPI, owns the universe and every communicator, and makes every MPI call
//! of the parent side. Executors talk to it over a channel of [`Command`]s.
//! It starts with the first [`MpiPoolExecutor`](super::MpiPoolExecutor) (or
//! in [`init`](crate::init) on rank 0 of a static world) and lives until the
//! process exits, when an `atexit` hook has it stop the serving ranks and
//! finalize MPI. MPI cannot be initialized twice in one process, so every
//! executor of the process shares this thread; each executor is one *pool*
//! here: its queue and tasks in flight, on ranks of its own (a spawned
//! group) or on the static world's serving ranks, which every pool of the
//! process shares, as under `python -m mpi4py.futures`. Spawned ranks
//! outlive their executor, for the next one of the same size.
//!
//! The loop hands queued work to free ranks (one message each, so it knows
//! which work every rank holds; the pools take turns at a shared rank; a
//! pool with an initializer sends it, as a task, before a rank's first task
//! of the pool, and breaks if it fails), then receives outcomes from any
//! rank of each communicator and gives
//! each to the pool whose work that rank holds, polling with a [`Backoff`]
//! while work is out and blocking on the channel while none is. Done
//! callbacks run on a separate thread, so that a slow callback never
//! stalls MPI. Busy ranks are watched through their heartbeats
//! ([`liveness`]): one silent for too long is dead, on whatever host it
//! ran, and its pool is broken. Silence is judged after the messages that
//! arrived have been received, so a rank is never taken for dead because
//! the hub was slow to read it.
//!
//! A `map` chunk runs on one rank, but need not run there whole: when a
//! rank has held a chunk for [`PATIENCE`] while a rank its pool could use
//! idles, the hub asks it to cut the chunk (see [`gate`](super::gate)):
//! right after the item running, if that one has run for a while (a slow
//! input), else halfway through the items not started (a chunk of quick
//! ones, split with the idle rank). The rank answers how many items run
//! there; the rest becomes work of its own, already claimed, queued first
//! for the next free rank, and its outcomes complete the same future. So a
//! slow input holds up only itself, wherever it falls in the input.
//!
//! ```text
//!            a free rank              held PATIENCE, a rank idle
//!  queue ─────────────────▶ busy ──────────────────────────────▶ asked
//!    ▲  (pending; claimed            (claimed: running())           │
//!    │   as it is sent)                                             │
//!    └──── the rest, first in line ◀── the rank answers: the items ─┘
//!          (claimed)                   it had not started, or the
//!                                      later half of them, taken back
//! ```
//!
//! Every task message carries a number (its header's `first`), echoed in
//! the rank's answer to a cut and with its outcomes, which say how many of
//! its items ran: an answer is checked against the work its rank holds,
//! and never completes another's future.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use ::mpi::environment::{Threading, Universe};
use ::mpi::point_to_point::{Destination, Source};
use ::mpi::topology::{Communicator, InterCommunicator, SimpleCommunicator};
use ::mpi::{Rank, Tag};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::backoff::Backoff;
use super::liveness::{self, Heard};
use super::role::{self, Role, WORKER_ARG};
use super::settings::MpiSettings;
use super::{ffi, tags};
use crate::remote::call::{Initializer, Secret};
use crate::remote::codec::Bulk;
use crate::remote::message::{self, Answer, Hello, Kind, TaskHeader, Welcome};
use crate::remote::work::{One, Work};
use crate::{Error, Future, future, shared};

/// How long a new rank may take to greet and report ready.
const HANDSHAKE_PATIENCE: Duration = Duration::from_secs(30);

/// How often the busy ranks are checked for silence.
const LIVENESS_CHECK: Duration = Duration::from_millis(200);

/// How long the exit hook waits for the hub to stop the ranks.
const EXIT_PATIENCE: Duration = Duration::from_secs(30);

/// How long a rank may hold a chunk while a rank its pool could use idles,
/// before it is asked to cut it. Automatic chunks aim at a millisecond, so
/// uniform work is rarely cut.
const PATIENCE: Duration = Duration::from_millis(2);

/// What an executor asks of the hub.
pub(crate) enum Command {
    /// Make a pool of up to `workers` ranks (`None`: MPI's default, see
    /// [`MpiPoolBuilder`](super::MpiPoolBuilder)), spawned as `spawn` says
    /// if spawned, each of which runs `initializer` before its first task
    /// of the pool.
    Open {
        workers: Option<usize>,
        spawn: MpiSettings,
        initializer: Option<Initializer>,
        reply: Sender<Result<Opened, Error>>,
    },
    /// Run `work` on pool `pool`.
    Task { pool: u64, work: Work },
    /// Take no more tasks for `pool`; cancel its queued ones if `cancel`;
    /// answer on `reply` once its tasks are done and its ranks released.
    Close {
        pool: u64,
        cancel: bool,
        reply: Option<Sender<()>>,
    },
    /// The process is exiting: stop every rank and finalize MPI.
    Finalize { reply: Sender<()> },
}

/// A new pool, as the hub made it.
pub(crate) struct Opened {
    /// Its number, which the executor's commands name.
    pub(crate) pool: u64,
    /// How many ranks run its tasks at once.
    pub(crate) workers: usize,
    /// The key of its task tags.
    pub(crate) secret: Secret,
}

/// The hub's channel, or why it could not start.
static MANAGER: OnceLock<Result<Sender<Command>, String>> = OnceLock::new();

/// The channel to the hub, starting it on first use.
pub(crate) fn commands() -> Result<&'static Sender<Command>, Error> {
    MANAGER
        .get_or_init(|| start(Role::of_this_process()))
        .as_ref()
        .map_err(|reason| Error::BrokenExecutor {
            reason: reason.clone(),
        })
}

/// Whether this process's hub thread has started (and owns MPI).
pub(crate) fn started() -> bool {
    MANAGER.get().is_some()
}

/// Rank 0 of a static world: starts the hub at once, so that it
/// greets the serving ranks now and stops them when the program ends,
/// even if the program never builds an executor.
pub(crate) fn start_for_world() {
    if let Err(error) = commands() {
        eprintln!("concurrent-futures: {error}");
    }
}

fn start(role: Role) -> Result<Sender<Command>, String> {
    let (commands, inbox) = crossbeam_channel::unbounded();
    let (started, outcome) = crossbeam_channel::bounded(1);
    thread::Builder::new()
        .name("concurrent-futures-mpi-hub".into())
        // It decodes results: user code, as deep as the depth bound.
        .stack_size(crate::remote::decode::STACK_SIZE)
        .spawn(move || run(role, &started, &inbox))
        .map_err(|e| format!("cannot start the MPI hub thread: {e}"))?;
    outcome
        .recv()
        .unwrap_or_else(|_| Err("the MPI hub thread died while starting".into()))?;
    if !ffi::at_exit(finalize_at_exit) {
        eprintln!("concurrent-futures: cannot register the MPI exit hook; MPI is not finalized");
    }
    Ok(commands)
}

/// Runs at process exit: asks the hub to stop every rank and finalize.
extern "C" fn finalize_at_exit() {
    if let Some(Ok(commands)) = MANAGER.get() {
        let (reply, done) = crossbeam_channel::bounded(1);
        if commands.send(Command::Finalize { reply }).is_ok() {
            let _ = done.recv_timeout(EXIT_PATIENCE);
        }
    }
}

/// The body of the hub thread.
fn run(role: Role, started: &Sender<Result<(), String>>, inbox: &Receiver<Command>) {
    let Some((universe, _)) = ::mpi::initialize_with_threading(Threading::Funneled) else {
        let _ = started.send(Err(
            "MPI was already initialized in this process by other code; \
             the MPI executor must be the one to initialize it"
                .into(),
        ));
        return;
    };
    ffi::errors_return_on_self();
    let mut hub = match Hub::new(Some(universe), SimpleCommunicator::world()) {
        Ok(hub) => hub,
        Err(error) => {
            let _ = started.send(Err(error));
            return;
        }
    };
    if let Role::World { size, .. } = role {
        hub.greet_world((1..size).filter_map(|r| Rank::try_from(r).ok()).collect());
    }
    let _ = started.send(Ok(()));
    let reply = hub.serve(inbox);
    hub.end();
    if let Some(reply) = reply {
        let _ = reply.send(());
    }
}

/// The comm form's hub, on the calling thread of rank `root` of `comm` (a
/// duplicate of the user's communicator, whose other ranks serve): greets
/// them, serves `inbox` until every sender is gone, then stops them. MPI
/// is the program's: it stays initialized.
pub(super) fn serve_comm(
    comm: SimpleCommunicator,
    root: Rank,
    inbox: &Receiver<Command>,
) -> Result<(), Error> {
    let mut hub = Hub::new(None, comm).map_err(|reason| Error::BrokenExecutor { reason })?;
    hub.greet_world((0..hub.comm.size()).filter(|&rank| rank != root).collect());
    hub.serve(inbox);
    hub.end();
    Ok(())
}

/// A serving rank of the static world, and who uses it.
struct WorldRank {
    rank: Rank,
    /// The host it runs on, as it said at the handshake.
    host: String,
    state: Lease,
}

/// Who may use a group of spawned ranks, or a serving rank of the static
/// world. A group is leased to one pool for that executor's life; a rank of
/// the static world, shared by every pool, for one task at a time:
///
/// ```text
/// Free ──open (group) or task (world rank)──▶ Leased(pool)
///   ▲                                              │
///   └──retire (group) or its outcomes (world rank)─┤
///                                                  └──silent while busy──▶ Dead(rank)
/// Free ──handshake refused──▶ Refused(why)                     (world ranks)
///
/// Free or Leased(pool) ──a rank of another group dead──▶ Aborted
///                                                        (spawned groups)
/// ```
///
/// `Refused`, `Dead` and `Aborted` are final: such ranks are never used
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lease {
    Free,
    Leased(u64),
    /// It failed the handshake, for this reason.
    Refused(String),
    /// This rank (of a group: one of its ranks) fell silent while running
    /// a task (see [`liveness`]): never spoken to again, as a send to it
    /// could hang. Open MPI aborts a dead rank's whole spawned job (unless
    /// `mpiexec` runs with `--enable-recovery`): a group is never used
    /// again, and at exit only its other ranks are told to stop, without
    /// waiting.
    Dead(Rank),
    /// A spawned group whose job Open MPI aborted when a rank of another
    /// group died ([`liveness::aborts_every_spawned_job`]): its ranks are
    /// gone, and a send to them could hang. At exit they are told to stop
    /// as a dead rank's group is, without waiting.
    Aborted,
}

/// Ranks started together by one `MPI_Comm_spawn`, and who uses them.
struct Group {
    /// The intercommunicator whose remote group they are.
    comm: InterCommunicator,
    lease: Lease,
    /// The host each rank runs on, as it said at the handshake.
    hosts: Vec<String>,
    /// How it was spawned: a later executor reuses it only if asked for
    /// the same.
    spawn: MpiSettings,
}

/// Which communicator a pool's ranks are on.
enum Link {
    /// Ranks of `MPI_COMM_WORLD` (static-world mode).
    World,
    /// All the ranks of `groups[index]` (spawn mode).
    Spawned(usize),
}

impl Link {
    /// The communicator, as [`Heard`] tells them apart.
    fn comm(&self) -> liveness::Comm {
        match self {
            Link::World => None,
            Link::Spawned(group) => Some(*group),
        }
    }
}

/// Work a rank runs.
struct Busy {
    work: Work,
    /// When it was sent.
    sent: Instant,
    cut: Cut,
}

/// Whether the hub may ask a rank to cut the chunk it runs:
///
/// ```text
/// Later(t) ──held PATIENCE since t, a rank idle──▶ Asked ──all started──▶ Never
///    ▲                                               │
///    └────────cut, or nothing started yet────────────┘
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Once it has been held [`PATIENCE`] from this instant.
    Later(Instant),
    /// Asked: the rank's answer is awaited.
    Asked,
    /// It has nothing to give away: a lone task, or every item has
    /// started.
    Never,
}

/// One executor's ranks and work.
struct Pool {
    link: Link,
    /// The most ranks that run its work at once.
    workers: usize,
    /// The work each busy rank runs.
    busy: HashMap<Rank, Busy>,
    queue: VecDeque<Work>,
    /// Set by `Close`: the replies to send once the pool is drained.
    closing: Option<Vec<Sender<()>>>,
    /// Whether a `Close` cancelled the queued work: the rest of a chunk
    /// cut later is dropped too.
    cancelled: bool,
    /// Why the pool can run nothing more, if it cannot.
    broken: Option<String>,
    /// What each rank runs before its first task of this pool, as a task
    /// of its own: a rank of the static world or of a reused group may
    /// have served other pools, whose initializers do not count.
    initializer: Option<Initializer>,
    /// The ranks the initializer was sent to.
    initialized: HashSet<Rank>,
    /// The outcome of the initializer on each rank still running it.
    initializing: HashMap<Rank, Future<()>>,
}

impl Pool {
    /// Breaks the pool for `reason`: `lost` and the queued work fail with
    /// [`Error::BrokenExecutor`], as will later work, and none of its ranks
    /// is given more.
    fn fail(&mut self, lost: Vec<Work>, reason: &str) {
        for work in self.queue.drain(..).chain(lost) {
            work.results.fail(Error::BrokenExecutor {
                reason: reason.to_owned(),
            });
        }
        self.broken = Some(reason.to_owned());
    }

    /// [`fail`](Self::fail) with every busy rank's work lost: the pool's
    /// ranks are all gone.
    fn fail_all(&mut self, reason: &str) {
        let lost = self.busy.drain().map(|(_, busy)| busy.work).collect();
        self.fail(lost, reason);
    }
}

struct Hub {
    /// The communicator of the serving ranks that every pool shares:
    /// `MPI_COMM_WORLD` (static-world mode), or the comm form's duplicate
    /// of the user's communicator. Before `universe`, so that it is freed
    /// before MPI is finalized.
    comm: SimpleCommunicator,
    /// MPI itself, when the hub initialized it: finalized when dropped.
    /// `None` in the comm form, whose MPI is the program's.
    universe: Option<Universe>,
    welcome: Welcome,
    world: Vec<WorldRank>,
    /// The spawned ranks, kept for later executors until the program exits.
    groups: Vec<Group>,
    /// By id: the order in which they take turns at shared ranks.
    pools: BTreeMap<u64, Pool>,
    /// The pool that was given a rank last.
    served_last: u64,
    /// The number of the last task message sent (its header's `first`).
    numbered: u32,
    next_pool: u64,
    callbacks: Sender<Box<dyn FnOnce() + Send>>,
    heard: Heard,
    /// The ids of the shared values put in each rank (by spawned group, or
    /// `None` for the static world's), so that each crosses once a rank.
    known: HashMap<(Option<usize>, Rank), HashSet<u64>>,
}

/// The messages that ready a rank which has the shared values of `known`
/// for a task that uses `shared`: a `Release` of the values whose last
/// handle is gone, and a `Put` of each one the rank lacks (see `shared`).
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
    fn new(universe: Option<Universe>, comm: SimpleCommunicator) -> Result<Hub, String> {
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
            world: Vec::new(),
            groups: Vec::new(),
            pools: BTreeMap::new(),
            served_last: 0,
            numbered: 0,
            next_pool: 1,
            callbacks,
            heard: Heard::default(),
            known: HashMap::new(),
        })
    }

    /// Stops every rank ([`finish`](Self::finish)), then finalizes MPI if
    /// the hub initialized it, unless a rank died: `MPI_Finalize` (and
    /// freeing the communicator) would wait for the dead rank for ever.
    fn end(mut self) {
        if self.finish() {
            drop(self);
        } else {
            std::mem::forget(self);
        }
    }

    /// Serves commands until `Finalize`, or until every executor handle is
    /// gone; returns the finalize reply, if any.
    fn serve(&mut self, inbox: &Receiver<Command>) -> Option<Sender<()>> {
        let mut backoff = Backoff::default();
        let mut checked = Instant::now();
        loop {
            let out = self.pools.values().any(|pool| !pool.busy.is_empty());
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
                        workers,
                        spawn,
                        initializer,
                        reply,
                    } => {
                        let _ = reply.send(self.open(workers, spawn, initializer));
                    }
                    Command::Task { pool, work } => match self.pools.get_mut(&pool) {
                        Some(Pool {
                            broken: Some(reason),
                            ..
                        }) => work.results.fail(Error::BrokenExecutor {
                            reason: reason.clone(),
                        }),
                        Some(pool) if pool.closing.is_none() => pool.queue.push_back(work),
                        _ => work.results.fail(Error::Shutdown),
                    },
                    Command::Close {
                        pool,
                        cancel,
                        reply,
                    } => self.close(pool, cancel, reply),
                    Command::Finalize { reply } => return Some(reply),
                }
            }
            self.dispatch();
            if self.receive() {
                progressed = true;
                // The ranks that answered are idle: give them the queued
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

    /// A new pool of up to `workers` ranks, or of the default size (see
    /// [`MpiPoolBuilder`](super::MpiPoolBuilder)); spawned as `spawn` says
    /// in spawn mode; each rank runs `initializer` before its first task of
    /// the pool.
    fn open(
        &mut self,
        workers: Option<usize>,
        spawn: MpiSettings,
        initializer: Option<Initializer>,
    ) -> Result<Opened, Error> {
        let id = self.next_pool;
        self.next_pool += 1;
        let (link, workers) = if self.world.is_empty() {
            let workers = workers.unwrap_or_else(|| self.universe_share());
            let group = self.spawned_group(id, workers, spawn)?;
            (Link::Spawned(group), self.group_size(group))
        } else {
            (
                Link::World,
                self.world_share(workers.unwrap_or(usize::MAX))?,
            )
        };
        let opened = Opened {
            pool: id,
            workers,
            secret: self.welcome.secret,
        };
        self.pools.insert(
            id,
            Pool {
                link,
                workers,
                busy: HashMap::new(),
                queue: VecDeque::new(),
                closing: None,
                cancelled: false,
                broken: None,
                initializer,
                initialized: HashSet::new(),
                initializing: HashMap::new(),
            },
        );
        Ok(opened)
    }

    /// The default size of a spawned pool: the MPI universe's size less
    /// this program's world, or 1 if MPI knows no universe size.
    fn universe_share(&self) -> usize {
        let world = usize::try_from(self.comm.size()).unwrap_or(1);
        (self.universe.as_ref().and_then(Universe::size))
            .map_or(1, |universe| universe.saturating_sub(world))
            .max(1)
    }

    /// A free group of `workers` spawned ranks started as `spawn` says,
    /// leased to pool `id`: one left by an earlier executor, or a new one.
    /// Reusing them saves a spawn (tenths of a second) per executor, and
    /// Open MPI's spawn and disconnect are its least robust paths.
    fn spawned_group(
        &mut self,
        id: u64,
        workers: usize,
        spawn: MpiSettings,
    ) -> Result<usize, Error> {
        let free = self.groups.iter().position(|group| {
            group.lease == Lease::Free
                && group.spawn == spawn
                && usize::try_from(group.comm.remote_size()).ok() == Some(workers)
        });
        let index = match free {
            Some(index) => index,
            None => {
                let (program, pairs) = spawn.spawn_args()?;
                let comm = ffi::spawn(&program, WORKER_ARG, workers, &pairs)?;
                let ranks: Vec<Rank> = (0..comm.remote_size()).collect();
                let hosts = match handshake(&comm, &ranks, &self.welcome) {
                    Ok(hosts) => hosts,
                    Err(refused) => {
                        stop(&comm, &refused.serving);
                        return Err(Error::BrokenExecutor {
                            reason: refused.reason,
                        });
                    }
                };
                self.groups.push(Group {
                    comm,
                    lease: Lease::Free,
                    hosts,
                    spawn,
                });
                self.groups.len() - 1
            }
        };
        self.groups[index].lease = Lease::Leased(id);
        Ok(index)
    }

    /// Greets `ranks`, the serving ranks of the static world (or of the
    /// comm form's communicator).
    fn greet_world(&mut self, ranks: Vec<Rank>) {
        let world = &self.comm;
        let (hosts, refused) = match handshake(world, &ranks, &self.welcome) {
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
            .map(|(rank, host)| WorldRank {
                rank,
                host,
                state: match &refused {
                    None => Lease::Free,
                    Some(reason) => Lease::Refused(reason.clone()),
                },
            })
            .collect();
    }

    /// The number of ranks in spawned group `index`.
    fn group_size(&self, index: usize) -> usize {
        usize::try_from(self.groups[index].comm.remote_size()).unwrap_or(0)
    }

    /// How many of the static world's serving ranks a new pool of up to
    /// `workers` may use at once: every pool shares the live ones.
    fn world_share(&self, workers: usize) -> Result<usize, Error> {
        let live = (self.world.iter())
            .filter(|slot| matches!(slot.state, Lease::Free | Lease::Leased(_)))
            .count();
        if live > 0 {
            return Ok(workers.min(live));
        }
        Err(
            match self.world.iter().find_map(|slot| match &slot.state {
                Lease::Refused(reason) => Some(reason.clone()),
                _ => None,
            }) {
                Some(reason) => Error::BrokenExecutor { reason },
                None => Error::BrokenExecutor {
                    reason: format!(
                        "all {} serving ranks of this MPI world have died; start the \
                         program again",
                        self.world.len()
                    ),
                },
            },
        )
    }

    /// Stops a pool from taking tasks; it is retired once drained.
    fn close(&mut self, id: u64, cancel: bool, reply: Option<Sender<()>>) {
        let Some(pool) = self.pools.get_mut(&id) else {
            if let Some(reply) = reply {
                let _ = reply.send(());
            }
            return;
        };
        if cancel {
            // Dropped unrun, their futures resolve as cancelled.
            pool.queue.clear();
            pool.cancelled = true;
        }
        pool.closing.get_or_insert_with(Vec::new).extend(reply);
    }

    /// Hands queued work to free ranks: the pools take turns, one task
    /// each, starting after the one served last, so that pools sharing the
    /// static world's ranks share them fairly.
    fn dispatch(&mut self) {
        let world = &self.comm;
        let mut sent = true;
        while sent {
            sent = false;
            let after = self.served_last.saturating_add(1);
            let turns: Vec<u64> = (self.pools.range(after..).chain(self.pools.range(..after)))
                .map(|(&id, _)| id)
                .collect();
            for id in turns {
                let pool = self.pools.get_mut(&id).expect("listed above");
                if pool.busy.len() >= pool.workers {
                    continue;
                }
                let free = match pool.link {
                    Link::World => (self.world.iter()).position(|slot| slot.state == Lease::Free),
                    Link::Spawned(group) => (0..self.groups[group].comm.remote_size())
                        .find(|rank| !pool.busy.contains_key(rank))
                        .and_then(|rank| usize::try_from(rank).ok()),
                };
                let Some(free) = free else {
                    continue;
                };
                let rank = match pool.link {
                    Link::World => self.world[free].rank,
                    Link::Spawned(_) => Rank::try_from(free).expect("a rank of the group"),
                };
                let work = match &pool.initializer {
                    // The rank's first work for this pool: the initializer.
                    Some(initializer)
                        if !pool.queue.is_empty() && pool.initialized.insert(rank) =>
                    {
                        let (work, outcome) = initializer_work(initializer, &self.welcome.secret);
                        pool.initializing.insert(rank, outcome);
                        Some(work)
                    }
                    // Cancelled work is dropped unrun, and takes no rank.
                    _ => std::iter::from_fn(|| pool.queue.pop_front())
                        .find_map(|mut work| work.results.claim(None).then_some(work)),
                };
                let Some(mut work) = work else {
                    continue;
                };
                if let Link::World = pool.link {
                    self.world[free].state = Lease::Leased(id);
                }
                self.numbered = self.numbered.wrapping_add(1);
                work.header.first = self.numbered;
                // The shared values the rank lacks, each once per rank;
                // then one contiguous message: header, arguments, tail.
                let group = match pool.link {
                    Link::World => None,
                    Link::Spawned(group) => Some(group),
                };
                let known = self.known.entry((group, rank)).or_default();
                let mut messages = share(known, &work.shared);
                let task = [&work.header.encode()[..], &work.args, work.bulk.bytes()].concat();
                messages.push((tags::TASK, task));
                for (tag, message) in &messages {
                    match group {
                        None => world
                            .process_at_rank(rank)
                            .send_with_tag(&message[..], *tag),
                        Some(group) => self.groups[group]
                            .comm
                            .process_at_rank(rank)
                            .send_with_tag(&message[..], *tag),
                    }
                }
                // A chunk keeps its arguments, and the shared values they
                // use, for a cut; the rest is let go now.
                let now = Instant::now();
                let count = work.header.count as usize;
                let cut = if count > 1 && work.ends.len() == count {
                    Cut::Later(now)
                } else {
                    (work.args, work.bulk, work.shared) = (Vec::new(), Bulk::default(), Vec::new());
                    Cut::Never
                };
                let busy = Busy {
                    work,
                    sent: now,
                    cut,
                };
                pool.busy.insert(rank, busy);
                self.heard.alive(pool.link.comm(), rank);
                self.served_last = id;
                sent = true;
            }
        }
    }

    /// Asks ranks that have held a chunk for [`PATIENCE`] to cut it, as
    /// many as their pool has ranks idle (after
    /// [`dispatch`](Self::dispatch), a pool with a rank idle has nothing
    /// queued), those that have held theirs longest first.
    fn ask_cuts(&mut self) {
        let free_world = (self.world.iter())
            .filter(|slot| slot.state == Lease::Free)
            .count();
        for pool in self.pools.values_mut().filter(|pool| pool.broken.is_none()) {
            let room = pool.workers.saturating_sub(pool.busy.len());
            let idle = match pool.link {
                Link::World => free_world.min(room),
                Link::Spawned(_) => room,
            };
            let asked = (pool.busy.values())
                .filter(|busy| busy.cut == Cut::Asked)
                .count();
            let Some(wanted) = idle.checked_sub(asked).filter(|&wanted| wanted > 0) else {
                continue;
            };
            let mut held: Vec<(Instant, Rank)> = (pool.busy.iter())
                .filter_map(|(&rank, busy)| match busy.cut {
                    Cut::Later(since) if since.elapsed() > PATIENCE => Some((since, rank)),
                    _ => None,
                })
                .collect();
            held.sort_unstable();
            for (_, rank) in held.into_iter().take(wanted) {
                let busy = pool.busy.get_mut(&rank).expect("listed above");
                let first = busy.work.header.first.to_le_bytes();
                match pool.link {
                    Link::World => {
                        (self.comm.process_at_rank(rank)).send_with_tag(&first[..], tags::CUT)
                    }
                    Link::Spawned(group) => (self.groups[group].comm.process_at_rank(rank))
                        .send_with_tag(&first[..], tags::CUT),
                }
                busy.cut = Cut::Asked;
            }
        }
    }

    /// Breaks the pools with a busy rank that has fallen silent (see
    /// [`liveness`]): its task, the queued ones and later
    /// ones fail with [`Error::BrokenExecutor`] rather than wait for ever.
    /// In spawn mode Open MPI aborts the whole spawned job when one of its
    /// ranks dies, so every task of the pool fails and its group is never
    /// spoken to again; unless it runs with `--enable-recovery`, it aborts
    /// every other spawned job too ([`liveness::aborts_every_spawned_job`]),
    /// so every other group is [`Lease::Aborted`] and its pool, if any,
    /// broken. In a static world (run with `--enable-recovery`, or
    /// `mpiexec` kills this process too) the other ranks live: their
    /// running tasks finish, and they serve later executors.
    fn check_silent(&mut self) {
        let silent: Vec<(u64, Rank)> = (self.pools.iter())
            .filter(|(_, pool)| pool.broken.is_none())
            .filter_map(|(&id, pool)| {
                let comm = pool.link.comm();
                (pool.busy.keys().copied())
                    .find(|&rank| self.heard.silent(comm, rank))
                    .map(|rank| (id, rank))
            })
            .collect();
        for (id, rank) in silent {
            // A pool may have broken meanwhile, aborted with an earlier
            // death of this loop: it keeps that reason.
            let Some(pool) = (self.pools.get_mut(&id)).filter(|pool| pool.broken.is_none()) else {
                continue;
            };
            let host = match pool.link {
                Link::World => self
                    .world
                    .iter_mut()
                    .find(|slot| slot.rank == rank)
                    .map(|slot| {
                        slot.state = Lease::Dead(rank);
                        slot.host.clone()
                    }),
                Link::Spawned(index) => {
                    self.groups[index].lease = Lease::Dead(rank);
                    usize::try_from(rank)
                        .ok()
                        .and_then(|i| self.groups[index].hosts.get(i).cloned())
                }
            };
            let host = host.unwrap_or_else(|| "?".into());
            let reason = format!(
                "MPI rank {rank} on host {host} sent no heartbeat for {:?} while running a task: \
                 it died, or its host is unreachable",
                liveness::SILENCE
            );
            if let Link::World = pool.link {
                let lost = pool.busy.remove(&rank).map(|busy| busy.work);
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

    /// Marks every spawned group not already dead [`Lease::Aborted`], and
    /// breaks the pools that use them, for `reason`.
    fn abort_spawned(&mut self, reason: &str) {
        for (index, group) in self.groups.iter_mut().enumerate() {
            if matches!(group.lease, Lease::Dead(_) | Lease::Aborted) {
                continue;
            }
            group.lease = Lease::Aborted;
            let users = (self.pools.values_mut())
                .filter(|pool| matches!(pool.link, Link::Spawned(i) if i == index));
            for pool in users.filter(|pool| pool.broken.is_none()) {
                pool.fail_all(reason);
            }
        }
    }

    /// Receives every outcome and heartbeat that has arrived, from the
    /// world's serving ranks and from each busy spawned group, and gives
    /// each outcome to the pool whose work its rank holds; `true` if there
    /// was one.
    fn receive(&mut self) -> bool {
        let mut received = false;
        let busy = |link: fn(&Link) -> bool| {
            (self.pools.values()).any(|pool| link(&pool.link) && !pool.busy.is_empty())
        };
        if busy(|link| matches!(link, Link::World)) {
            let world = &self.comm;
            self.heard.receive(None, world);
            // Answers to cuts before outcomes: a rank sends its answer
            // first, and its outcomes say how many items ran either way.
            while let Some((rank, answer)) = receive_from_any(world, tags::CUT) {
                received = true;
                let slot = self.world.iter().find(|slot| slot.rank == rank);
                if let Some(Lease::Leased(id)) = slot.map(|slot| &slot.state)
                    && let Some(pool) = self.pools.get_mut(id)
                {
                    cut_answered(pool, rank, &answer);
                }
            }
            while let Some((rank, outcomes)) = receive_from_any(world, tags::OUTCOMES) {
                received = true;
                // The rank is free again, whichever pool it served.
                let slot = self.world.iter_mut().find(|slot| slot.rank == rank);
                let Some(slot) = slot.filter(|slot| matches!(slot.state, Lease::Leased(_))) else {
                    continue; // a stray message, ignored
                };
                let Lease::Leased(id) = std::mem::replace(&mut slot.state, Lease::Free) else {
                    unreachable!("matched above");
                };
                if let Some(pool) = self.pools.get_mut(&id) {
                    answered(pool, rank, &outcomes, &mut self.heard, &self.callbacks);
                }
            }
        }
        for pool in self.pools.values_mut() {
            let Link::Spawned(group) = pool.link else {
                continue;
            };
            let comm = &self.groups[group].comm;
            if !pool.busy.is_empty() {
                self.heard.receive(Some(group), comm);
                while let Some((rank, answer)) = receive_from_any(comm, tags::CUT) {
                    received = true;
                    cut_answered(pool, rank, &answer);
                }
            }
            while !pool.busy.is_empty() {
                let Some((rank, outcomes)) = receive_from_any(comm, tags::OUTCOMES) else {
                    break;
                };
                received = true;
                answered(pool, rank, &outcomes, &mut self.heard, &self.callbacks);
            }
        }
        received
    }

    /// Retires the closing pools that have nothing left to run.
    fn retire_drained(&mut self) {
        let drained: Vec<u64> = (self.pools.iter())
            .filter(|(_, p)| p.closing.is_some() && p.queue.is_empty() && p.busy.is_empty())
            .map(|(&id, _)| id)
            .collect();
        for id in drained {
            let pool = self.pools.remove(&id).expect("listed above");
            self.retire(id, pool);
        }
    }

    /// Frees a drained pool's group (its world ranks were freed as they
    /// answered) and answers its `Close`s.
    fn retire(&mut self, id: u64, pool: Pool) {
        if let Link::Spawned(group) = pool.link {
            let group = &mut self.groups[group];
            if group.lease == Lease::Leased(id) {
                group.lease = Lease::Free;
            }
        }
        for reply in pool.closing.into_iter().flatten() {
            let _ = reply.send(());
        }
    }

    /// At exit: stops every rank. Work still queued fails; the outcomes of
    /// work still running are not waited for. `false` if MPI must not be
    /// finalized, as a rank of the world has died.
    fn finish(&mut self) -> bool {
        let reason = "the program is exiting, and MPI with it".to_owned();
        for (id, mut pool) in std::mem::take(&mut self.pools) {
            for work in pool
                .queue
                .drain(..)
                .chain(pool.busy.drain().map(|(_, busy)| busy.work))
            {
                work.results.fail(Error::BrokenExecutor {
                    reason: reason.clone(),
                });
            }
            self.retire(id, pool);
        }
        // A message to a dead rank or a disconnect could block for ever,
        // and the other ranks of its group, or of an aborted one, may be
        // gone too: those are told to stop without waiting, and their
        // communicators are never freed.
        let (lost, live): (Vec<Group>, Vec<Group>) = (self.groups.drain(..))
            .partition(|group| matches!(group.lease, Lease::Dead(_) | Lease::Aborted));
        for group in live {
            let ranks: Vec<Rank> = (0..group.comm.remote_size()).collect();
            stop(&group.comm, &ranks);
            drop(group.comm); // MPI_Comm_disconnect: the ranks disconnect too
        }
        liveness::stop_survivors(lost.iter().flat_map(|group| {
            let dead = match group.lease {
                Lease::Dead(rank) => Some(rank),
                _ => None,
            };
            (0..group.comm.remote_size())
                .filter(move |&rank| Some(rank) != dead)
                .map(|rank| (&group.comm, rank))
        }));
        lost.into_iter()
            .for_each(|group| std::mem::forget(group.comm));
        let world = &self.comm;
        let serving: Vec<Rank> = (self.world.iter())
            .filter(|slot| !matches!(slot.state, Lease::Refused(_) | Lease::Dead(_)))
            .map(|slot| slot.rank)
            .collect();
        let dead = self
            .world
            .iter()
            .any(|slot| matches!(slot.state, Lease::Dead(_)));
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

/// A run of `initializer` as a task of its own, tagged with `secret`; the
/// future says how it went.
fn initializer_work(initializer: &Initializer, secret: &Secret) -> (Work, Future<()>) {
    let (promise, future) = future::pair();
    let header = TaskHeader {
        call: initializer.call,
        tag: initializer.call.tag(secret),
        count: 1,
        first: 0,
        #[cfg(feature = "tracing")]
        trace: 0,
    };
    let work = Work {
        header,
        args: initializer.arg.clone(),
        ends: Vec::new(),
        bulk: Bulk::default(),
        results: Box::new(One(promise)),
        shared: Vec::new(),
    };
    (work, future)
}

/// Completes the work `rank` of `pool`'s link held with its `outcomes`
/// (which end with an [`Answer`]); its done callbacks go to the callback
/// thread. A chunk whose rank ran only its first items (it was cut) gives
/// the rest to the queue, if the rank's answer to the cut has not already.
fn answered(
    pool: &mut Pool,
    rank: Rank,
    outcomes: &[u8],
    heard: &mut Heard,
    callbacks: &Sender<Box<dyn FnOnce() + Send>>,
) {
    let Some(Busy { mut work, sent, .. }) = pool.busy.remove(&rank) else {
        return; // a stray message, ignored
    };
    heard.answered(pool.link.comm(), rank);
    let (outcomes, answer) = outcomes.split_at(outcomes.len().saturating_sub(Answer::LEN));
    let (first, count) = (work.header.first, work.header.count);
    let answer = (Answer::decode(answer).ok())
        .and_then(|(answer, _)| Some(answer).filter(|a| a.first == first));
    let Some(done) = answer
        .map(|answer| answer.done)
        .filter(|done| (1..=count).contains(done))
    else {
        return work.results.fail(Error::Protocol(format!(
            "MPI rank {rank} answered {answer:?} for the task numbered {first}, of {count} items"
        )));
    };
    if done < count {
        match work.split_off(done as usize) {
            Some(rest) => queue_rest(pool, rest),
            None => {
                return work.results.fail(Error::Protocol(format!(
                    "MPI rank {rank} ran {done} of the {count} items of a task that cannot be cut"
                )));
            }
        }
    }
    // A rank runs one call at a time, from when it is sent: what a `map`
    // with automatic chunks sizes them from (the items that ran there).
    work.results.ran_for(sent.elapsed());
    // The shared values it used are let go before its future resolves.
    drop(std::mem::take(&mut work.shared));
    let deferred = match work.results.deliver(outcomes, &[], &mut Bulk::default()) {
        Ok(deferred) | Err(deferred) => deferred,
    };
    if let Some(deferred) = deferred {
        let _ = callbacks.send(deferred);
    }
    // An initializer that failed on one rank would fail on every rank:
    // the pool is broken, as a process pool is.
    if let Some(Err(error)) =
        (pool.initializing.remove(&rank)).map(|outcome| outcome.result_timeout(Duration::ZERO))
        && pool.broken.is_none()
    {
        let reason = Initializer::failure(error);
        pool.fail(
            Vec::new(),
            &format!("the initializer failed on MPI rank {rank}: {reason}"),
        );
    }
}

/// Takes `rank`'s answer to a request to cut the chunk it runs: how many
/// of its items run there. The rest goes to the queue; a chunk with items
/// left that have not started (it was cut halfway through them, or none
/// had started) may be asked again later. An answer for work the rank no
/// longer runs (its outcomes came first) is dropped.
fn cut_answered(pool: &mut Pool, rank: Rank, answer: &[u8]) {
    let Ok((answer, _)) = Answer::decode(answer) else {
        return; // a stray message, ignored
    };
    let Some(busy) = (pool.busy.get_mut(&rank))
        .filter(|busy| busy.work.header.first == answer.first && busy.cut == Cut::Asked)
    else {
        return;
    };
    busy.cut = match answer.done >= busy.work.header.count {
        true => Cut::Never,
        false => Cut::Later(Instant::now()),
    };
    if let Some(rest) = busy.work.split_off(answer.done as usize) {
        queue_rest(pool, rest);
    }
}

/// Queues the rest of a cut chunk first, to run on the next free rank; it
/// fails at once if the pool is broken, and is dropped unrun (its future
/// cancelled) if a shutdown cancelled the pool's queued work.
fn queue_rest(pool: &mut Pool, rest: Work) {
    match (&pool.broken, pool.cancelled) {
        (Some(reason), _) => rest.results.fail(Error::BrokenExecutor {
            reason: reason.clone(),
        }),
        (None, true) => drop(rest),
        (None, false) => pool.queue.push_front(rest),
    }
}

/// A failed handshake.
struct Refused {
    /// Why, naming the first rank that failed.
    reason: String,
    /// The host of each rank (as far as it got).
    hosts: Vec<String>,
    /// The ranks that said they are ready: they serve until stopped.
    serving: Vec<Rank>,
}

/// The greeting: each rank's `Hello` and where it runs, then our
/// `Welcome`, then its `Ready`. `Ok` holds the host each rank runs on.
fn handshake<C: Communicator>(
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

/// One arrived message with `tag`, if any: its sender and bytes.
fn receive_from_any<C: Communicator>(comm: &C, tag: ::mpi::Tag) -> Option<(Rank, Vec<u8>)> {
    // A probe, then a receive from the rank it found: this thread alone
    // receives, so the message is still there. Not a matched probe
    // (`MPI_Mprobe`): Open MPI's has been unreliable (mpi4py turns it off),
    // and here it left spawned ranks crashing in `MPI_Comm_disconnect`.
    let status = comm.any_process().immediate_probe_with_tag(tag)?;
    let rank = status.source_rank();
    let (bytes, _) = comm.process_at_rank(rank).receive_vec_with_tag::<u8>(tag);
    Some((rank, bytes))
}

/// Tells each of `ranks` to stop serving.
fn stop<C: Communicator>(comm: &C, ranks: &[Rank]) {
    for &rank in ranks {
        comm.process_at_rank(rank)
            .send_with_tag(&[][..] as &[u8], tags::STOP);
    }
}
