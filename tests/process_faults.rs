//! Fault injection on the process pool: while a pool of [`WORKERS`] runs
//! `FAULT_TASKS` tasks (default 10,000, each 0.2 to 2 ms long), another
//! thread hits random workers `FAULT_KILLS` times (default 100), in turn
//! with SIGKILL, SIGSEGV, and SIGSTOP followed a few ms later by SIGCONT.
//! Meanwhile a fork storm: every tenth task forks, and both processes
//! return from `fork()`, as two copies of the worker (only the worker may
//! answer: a copy that spoke would hand results to the wrong futures).
//!
//! Then: every task that succeeded has its right value (each task returns
//! its input and the pid it ran in; a wrong one is counted, `wrong=`, and
//! fails the run); every failure is `WorkerDied` by
//! SIGKILL or SIGSEGV, and no more of them than such signals were
//! delivered (a stopped and continued worker fails nothing: the pool has no
//! per-task timeout); the faults did hit running tasks; no zombie is left;
//! the pool then runs a last batch correctly; and once it is dropped, no
//! child process, thread or descriptor of its remains.
//!
//! Only workers that have served a task are hit (each writes `ready-PID`
//! once, see [`work`]): a worker killed in its start-up handshake fails its
//! task with `SpawnFailed`, a different property from the one tested here.
//! `FAULT_SEED` picks the victims' sequence (printed, to replay a failure).

// Runs on Linux (natively, and on the portable Unix path that macOS takes):
// its faults are signals (SIGKILL, SIGSEGV, SIGSTOP/SIGCONT) and its checks
// read /proc; Windows' kills and crashes are in process_isolation.
// Elsewhere this binary is empty; `no_main` only until these tests use the
// default harness, where `#![cfg]` alone would do.
#![cfg_attr(not(target_os = "linux"), no_main)]
#![cfg(target_os = "linux")]

#[path = "common/process_fixtures.rs"]
mod fixtures;
#[path = "common/harness.rs"]
mod harness;

use std::collections::HashSet;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, ProcessPoolExecutor};
use fixtures::{PATIENCE, Scratch};

const LABEL: &str = "faults";
const WORKERS: usize = 4;
/// How long the killer waits between two faults.
const PACE: Duration = Duration::from_millis(15);
/// How long a stopped worker stays stopped.
const STOPPED_FOR: Duration = Duration::from_millis(5);

fn main() {
    let number = |name: &str, default: u64| {
        std::env::var(name).map_or(default, |v| v.parse().expect("a number"))
    };
    let tasks = number("FAULT_TASKS", 10_000);
    let kills = number("FAULT_KILLS", 100);
    let seed = number("FAULT_SEED", u64::from(std::process::id()));
    // No time limit: the counts set how long it runs (CI bounds it).
    let trial = harness::trial("process_faults", None, move || faults(tasks, kills, seed));
    harness::conclude(&harness::arguments(), vec![trial]).exit()
}

fn expected(n: u64) -> u64 {
    n * 2 + 1
}

/// Whether task `n` forks.
fn forks(n: u64) -> bool {
    n % 10 == 3
}

/// The task: marks its worker ready (once per worker), works for 0.2 to
/// 2 ms, forks if [`forks`] says so (both copies go on), and returns its
/// input, its worker's pid and `expected(n)`.
fn work(n: u64) -> (u64, u32, u64) {
    static READY: Once = Once::new();
    let me = std::process::id();
    READY.call_once(|| {
        let dir = fixtures::parents_scratch(LABEL);
        fixtures::write_atomically(&dir.join(format!("ready-{me}")), "");
    });
    thread::sleep(Duration::from_micros(200 + n * 7919 % 1800));
    if forks(n) {
        // SAFETY: fork(2) in a worker whose task runs on its one thread
        // (the pool's worker serves on its main thread); both copies only
        // return.
        unsafe { libc::fork() };
    }
    (n, me, expected(n))
}

/// What the killer did.
#[derive(Debug, Default)]
struct Faults {
    sigkill: u64,
    sigsegv: u64,
    stop_cont: u64,
}

impl Faults {
    fn total(&self) -> u64 {
        self.sigkill + self.sigsegv + self.stop_cont
    }
}

/// A small xorshift generator: reproducible victims from a seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn signal(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) touches no memory of ours. `pid` is a child of this
    // process that /proc showed alive a moment ago; the pool reaps a worker
    // only after it died, and a pid is not reused within microseconds, so
    // it names that worker (or its zombie, which ignores signals).
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Hits a random ready worker every [`PACE`] until `kills` faults are
/// delivered or `stop` is set.
fn killer(scratch: &Scratch, kills: u64, seed: u64, stop: &AtomicBool) -> Faults {
    let mut rng = Rng(seed | 1);
    let mut faults = Faults::default();
    let mut dead = HashSet::new();
    while faults.total() < kills && !stop.load(Ordering::Relaxed) {
        thread::sleep(PACE);
        let children: HashSet<u32> = fixtures::children().into_iter().collect();
        let ready: Vec<u32> = scratch
            .files("ready-")
            .iter()
            .filter_map(|name| name.strip_prefix("ready-")?.parse().ok())
            .filter(|pid| children.contains(pid) && !dead.contains(pid) && fixtures::alive(*pid))
            .collect();
        if ready.is_empty() {
            continue;
        }
        let victim = ready[rng.below(ready.len())];
        match faults.total() % 3 {
            0 => {
                if signal(victim, libc::SIGKILL) {
                    dead.insert(victim);
                    faults.sigkill += 1;
                }
            }
            1 => {
                // A SIGSEGV kills too, but not at once: until the pool
                // reaps it, the victim still shows in /proc. Stopping it
                // then would find it gone by the time of its SIGCONT.
                if signal(victim, libc::SIGSEGV) {
                    dead.insert(victim);
                    faults.sigsegv += 1;
                }
            }
            _ => {
                if signal(victim, libc::SIGSTOP) {
                    thread::sleep(STOPPED_FOR);
                    assert!(
                        signal(victim, libc::SIGCONT),
                        "worker {victim} died while stopped: nothing but this thread signals it"
                    );
                    faults.stop_cont += 1;
                }
            }
        }
    }
    faults
}

fn faults(tasks: u64, kills: u64, seed: u64) {
    let threads_before = thread_count();
    let fds_before = fixtures::open_fds();
    fixtures::assert_no_children();
    let scratch = Arc::new(Scratch::for_workers(LABEL));
    let executor = ProcessPoolExecutor::new(WORKERS);
    let start = Instant::now();
    let futures: Vec<_> = (0..tasks).map(|n| executor.submit(work, n)).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let (faults_tx, faults_rx) = mpsc::channel();
    let killer_thread = {
        let (scratch, stop) = (Arc::clone(&scratch), Arc::clone(&stop));
        thread::spawn(move || drop(faults_tx.send(killer(&scratch, kills, seed, &stop))))
    };

    let (mut ok, mut died_kill, mut died_segv, mut wrong) = (0_u64, 0_u64, 0_u64, 0_u64);
    let mut workers = HashSet::new();
    let mut unexpected = Vec::new();
    for (n, future) in (0..).zip(&futures) {
        // Tasks run in order on 4 workers: PATIENCE per task is ample.
        match future.result_timeout(PATIENCE) {
            Ok((input, pid, value)) => {
                if (input, value) != (n, expected(n)) {
                    eprintln!("task {n} got task {input}'s result, {value}, in {pid}");
                    wrong += 1;
                }
                assert_ne!(pid, std::process::id(), "task {n} ran in a worker");
                workers.insert(pid);
                ok += 1;
            }
            Err(Error::WorkerDied {
                exit_code: None,
                signal: Some(libc::SIGKILL),
            }) => died_kill += 1,
            Err(Error::WorkerDied {
                exit_code: None,
                signal: Some(libc::SIGSEGV),
            }) => died_segv += 1,
            Err(Error::Timeout) if !future.done() => {
                panic!("task {n} was unresolved after {PATIENCE:?}")
            }
            Err(other) => unexpected.push((n, other)),
        }
    }
    let run_time = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let faults = faults_rx
        .recv_timeout(PATIENCE)
        .expect("the killer finished");
    killer_thread.join().unwrap();

    println!(
        "\nfaults: tasks={tasks} seed={seed} injected={} (sigkill={} sigsegv={} stop/cont={}) \
         forked={} ok={ok} wrong={wrong} died_sigkill={died_kill} died_sigsegv={died_segv} \
         other_errors={} lost={} workers_used={} in {:.2} s",
        faults.total(),
        faults.sigkill,
        faults.sigsegv,
        faults.stop_cont,
        (0..tasks).filter(|&n| forks(n)).count(),
        unexpected.len(),
        tasks - ok - died_kill - died_segv - unexpected.len() as u64,
        workers.len(),
        run_time.as_secs_f64(),
    );
    assert_eq!(wrong, 0, "results handed to the wrong futures");
    assert!(
        unexpected.is_empty(),
        "errors other than WorkerDied: {unexpected:?}"
    );
    assert_eq!(
        faults.total(),
        kills,
        "the run ended before every fault was injected: raise FAULT_TASKS"
    );
    assert!(
        died_kill <= faults.sigkill,
        "{died_kill} tasks died of SIGKILL, but only {} were sent",
        faults.sigkill
    );
    assert!(
        died_segv <= faults.sigsegv,
        "{died_segv} tasks died of SIGSEGV, but only {} were sent",
        faults.sigsegv
    );
    if faults.sigkill >= 10 {
        // Workers are busy nearly all the time: some kills hit a task.
        assert!(died_kill > 0, "{} SIGKILLs failed no task", faults.sigkill);
    }

    // No zombie: every child is a live worker, and there are no more of them
    // than the pool's size.
    let children = fixtures::children();
    assert!(
        children.iter().all(|&pid| fixtures::alive(pid)) && children.len() <= WORKERS,
        "children after the run: {:?}",
        children
            .iter()
            .map(|&pid| (pid, fixtures::state(pid)))
            .collect::<Vec<_>>()
    );
    // Healthy: a last batch runs right.
    let last: Vec<_> = (0..200).map(|n| executor.submit(work, n)).collect();
    for (n, future) in (0..).zip(&last) {
        let (input, _, value) = fixtures::settle(future).expect("the pool is healthy again");
        assert_eq!((input, value), (n, expected(n)));
    }

    drop(executor);
    fixtures::assert_no_children();
    let settled = fixtures::wait_until("threads and fds back to their level", || {
        let now = (thread_count(), fixtures::open_fds());
        (now == (threads_before, fds_before)).then_some(now)
    });
    println!(
        "faults: after the pool: threads {threads_before}->{} fds {fds_before}->{} children 0",
        settled.0, settled.1
    );
}

fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads line")
}
