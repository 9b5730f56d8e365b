//! Per-task overhead of `ProcessPoolExecutor` next to its peers, all with the
//! same worker count (2, the cores of the reference machine and what
//! `shared/peers/overhead_python.py` uses on it). The peer in Rust is
//! procspawn's `Pool`; Python's `ProcessPoolExecutor` and the machine's raw
//! limits (`shared/peers/limits.c`) come from `benches/compare.sh`.
//!
//! Groups (criterion IDs are `group/function`):
//!
//! - `process_start`: build a pool, submit one tiny task, take its result,
//!   drop the pool (which waits for its workers to exit). procspawn:
//!   `Pool::new(2)`, `spawn`, `join`, drop (which kills and reaps them).
//! - `process_round_trip`: submit one task to a warm pool and wait for its
//!   result, repeat. One iteration is one round trip. With `--features
//!   tracing`, `ours` is the library with its feature `tracing` and no
//!   subscriber, and `ours_traced` the same with a subscriber listening.
//! - `process_submit_result`: submit [`PENDING`] tasks, then take every
//!   result; the throughput is set, so criterion reports elements/s. The
//!   process's open descriptors are counted before, right after the last
//!   submit (the peak) and after; a line `fds ...` reports them. procspawn
//!   holds descriptors per pending task and runs out of them (EMFILE) near
//!   10k, so its row has [`PROCSPAWN_PENDING`] pending, and one attempt at
//!   [`PROCSPAWN_ATTEMPT`] records whether it fails.
//! - `process_map`: `map` with `chunksize(1000)` over [`MAP_ITEMS`] items.
//!   The procspawn row is context (it has no `map`): one `spawn` per chunk
//!   of 1000 inputs, every chunk submitted before the first `join`. Then
//!   the default `map` of a ~25 ns task ([`mix25`]) over as many items,
//!   beside fixed chunk sizes ([`MIX25_CHUNKSIZES`]); the first line of the
//!   output says what the task takes here.
//! - `process_bytes`: one task whose argument is a `Vec<u8>` of 1 MiB or
//!   64 MiB and which returns its length (`arg_*`), and one that returns
//!   its argument (`echo_*`: the bytes both ways); the throughput is set in
//!   bytes (one way), so criterion reports GiB/s. Making the vector is not
//!   timed, nor is dropping a returned one (see [`byte_calls`]).
//!   `compare.py` takes a result's time as echo minus argument. A line
//!   `bytes floor ...` gives what copying into memory costs here: a fresh
//!   vector (what a receiver must make) and a reused one.
//!   procspawn's `arg_64MiB` row is the peer. Then the same two tasks for
//!   typed payloads of 64 MiB and 60 MiB: a `Vec<f64>` (`arg_f64_64MiB`,
//!   `echo_f64_64MiB`) and a struct of three 20 MiB vectors ([`Three`]:
//!   `arg_three_60MiB`, `echo_three_60MiB`), which serde encodes.
//!
//! procspawn's workers serve from `procspawn::init()`, the first line of
//! `main`, so this bench has a `main` of its own; our pool's workers need no
//! line (see `process_no_setup.rs`, a bench under criterion's own main).

// Needs the process pool and procspawn, its peer here, which has no Windows
// support (its ipc-channel bootstrap): on Linux and macOS only; elsewhere
// this binary is empty.
#![cfg_attr(not(any(target_os = "linux", target_os = "macos")), no_main)]
#![cfg(any(target_os = "linux", target_os = "macos"))]

mod common;

use std::hint::black_box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::{ident, pid};
use concurrent_futures::ProcessPoolExecutor;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use serde::{Deserialize, Serialize};

/// Worker processes in every pool measured here.
const WORKERS: usize = 2;
/// Tasks pending at once in our `process_submit_result` row.
const PENDING: u64 = 100_000;
/// Tasks pending at once in procspawn's row: it needs ~3 descriptors each.
const PROCSPAWN_PENDING: u64 = 1_000;
/// procspawn's one attempt at a larger batch, to record whether it fails.
const PROCSPAWN_ATTEMPT: u64 = 10_000;
/// Items per `process_map` iteration.
const MAP_ITEMS: u64 = 1_000_000;
/// `process_map`'s chunk size (Python's figure is `chunksize=1000` too).
const CHUNK: usize = 1_000;
/// Rounds of [`common::mix`] in [`mix25`]: about 25 ns on the reference
/// machine (a fixed count, as worker processes cannot share a calibration).
const MIX25_ROUNDS: u32 = 6;
/// The fixed chunk sizes that the default `map` of [`mix25`] is compared with.
const MIX25_CHUNKSIZES: [usize; 3] = [100, 1_000, 10_000];
/// The payload sizes of `process_bytes`, with their names.
const BYTES: [(usize, &str); 2] = [(1 << 20, "1MiB"), (64 << 20, "64MiB")];

/// The ~25 ns task of the `process_map` rows.
fn mix25(x: u64) -> u64 {
    common::mix(x, MIX25_ROUNDS)
}

/// A chunk of tiny tasks, for procspawn's stand-in for `map`.
fn ident_chunk(xs: Vec<u64>) -> Vec<u64> {
    xs.into_iter().map(ident).collect()
}

/// The big-argument task: the length of its bytes.
fn len(bytes: Vec<u8>) -> usize {
    bytes.len()
}

/// The big-result task: its argument, back.
fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

/// The typed big-argument task: how many numbers.
fn len_f64(numbers: Vec<f64>) -> usize {
    numbers.len()
}

/// The typed big-result task: its argument, back.
fn echo_f64(numbers: Vec<f64>) -> Vec<f64> {
    numbers
}

/// A struct of big vectors, as a task's data often is: three of 20 MiB.
#[derive(Clone, Serialize, Deserialize)]
struct Three {
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
}

impl Three {
    /// The numbers in each vector.
    const LEN: usize = 20 << 20 >> 3;
    /// Its vectors' size in bytes.
    const BYTES: usize = 3 * (20 << 20);

    fn new() -> Self {
        let numbers: Vec<f64> = (0..Three::LEN).map(|n| n as f64 * 0.5).collect();
        Three {
            x: numbers.clone(),
            y: numbers.clone(),
            z: numbers,
        }
    }

    /// How many bytes its vectors hold.
    fn bytes(&self) -> usize {
        (self.x.len() + self.y.len() + self.z.len()) * size_of::<f64>()
    }
}

/// The struct's big-argument task: how many bytes its vectors hold.
fn len_three(three: Three) -> usize {
    three.bytes()
}

/// The struct's big-result task: its argument, back.
fn echo_three(three: Three) -> Three {
    three
}

/// This process's open file descriptors.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// Open descriptors around the batches of one row, reported on one line.
struct Fds {
    before: Option<usize>,
    peak: usize,
    after: usize,
}

impl Fds {
    fn new() -> Self {
        Fds {
            before: None,
            peak: 0,
            after: 0,
        }
    }

    fn before(&mut self) {
        let now = open_fds();
        self.before.get_or_insert(now);
    }

    fn peak(&mut self) {
        self.peak = self.peak.max(open_fds());
    }

    fn after(&mut self) {
        self.after = open_fds();
    }

    /// Prints the counts, if the row ran (a filter may skip it).
    fn report(&self, who: &str, pending: u64) {
        let Some(before) = self.before else {
            return;
        };
        println!(
            "fds {who} {pending} pending: before {}, peak {}, after {}",
            before, self.peak, self.after
        );
    }
}

fn procspawn_pool() -> procspawn::Pool {
    procspawn::Pool::new(WORKERS).expect("a procspawn pool")
}

fn process_start(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_start");
    group.bench_function("ours", |b| {
        b.iter(|| {
            let executor = ProcessPoolExecutor::new(WORKERS);
            let one = executor.submit(ident, 1).result().expect("identity");
            drop(executor);
            one
        });
    });
    // Context: ours starts a worker only when a task finds none idle, so
    // one task starts one process; procspawn starts all of them up front.
    // Two tasks at once start both of ours.
    let mut ran = false;
    group.bench_function("ours_two_tasks_context", |b| {
        ran = true;
        b.iter(|| {
            let executor = ProcessPoolExecutor::new(WORKERS);
            let (one, two) = (executor.submit(pid, 1), executor.submit(pid, 2));
            let pids = (one.result().expect("pid"), two.result().expect("pid"));
            drop(executor);
            pids
        });
    });
    group.bench_function("procspawn_pool", |b| {
        b.iter(|| {
            let pool = procspawn_pool();
            let one = pool.spawn(1, ident).join().expect("identity");
            drop(pool);
            one
        });
    });
    group.finish();
    if !ran {
        return; // filtered out
    }
    let tries = 20;
    let both = (0..tries)
        .filter(|_| {
            let executor = ProcessPoolExecutor::new(WORKERS);
            let (one, two) = (executor.submit(pid, 1), executor.submit(pid, 2));
            one.result().expect("pid") != two.result().expect("pid")
        })
        .count();
    println!("start with two tasks: two worker processes answered in {both} of {tries} tries");
}

fn process_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_round_trip");
    let mut i = 0u64;

    let executor = ProcessPoolExecutor::new(WORKERS);
    group.bench_function("ours", |b| {
        b.iter(|| {
            i += 1;
            executor.submit(ident, i).result().expect("identity")
        });
    });
    drop(executor);

    // With `--features tracing`, `ours` above is the library built with the
    // feature and no subscriber; here a subscriber wants every span and
    // event (and writes nowhere), so each task gets its span, its worker
    // captures, and the answer carries the captured (empty) event list.
    #[cfg(feature = "tracing")]
    {
        let executor = ProcessPoolExecutor::new(WORKERS);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            group.bench_function("ours_traced", |b| {
                b.iter(|| {
                    i += 1;
                    executor.submit(ident, i).result().expect("identity")
                });
            });
        });
    }

    let pool = procspawn_pool();
    group.bench_function("procspawn_pool", |b| {
        b.iter(|| {
            i += 1;
            pool.spawn(i, ident).join().expect("identity")
        });
    });
    drop(pool);
    group.finish();
}

/// Times `iters` batches of `pending` submits followed by every result,
/// counting descriptors outside the clock.
fn batches<H>(
    iters: u64,
    pending: u64,
    fds: &mut Fds,
    mut submit: impl FnMut(u64) -> H,
    mut take: impl FnMut(H),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        fds.before();
        let start = Instant::now();
        let handles: Vec<H> = (0..pending).map(&mut submit).collect();
        total += start.elapsed();
        fds.peak();
        let start = Instant::now();
        handles.into_iter().for_each(&mut take);
        total += start.elapsed();
        fds.after();
    }
    total
}

fn process_submit_result(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_submit_result");
    group.sampling_mode(SamplingMode::Flat);

    let executor = ProcessPoolExecutor::new(WORKERS);
    submit_result_row(
        &mut group,
        format!("ours_{}k_pending", PENDING / 1000),
        ("ours", PENDING),
        |i| executor.submit(ident, i),
        |f| {
            black_box(f.result().expect("identity"));
        },
    );
    drop(executor);

    let pool = procspawn_pool();
    let fds = submit_result_row(
        &mut group,
        format!("procspawn_pool_{}k_pending", PROCSPAWN_PENDING / 1000),
        ("procspawn", PROCSPAWN_PENDING),
        |i| pool.spawn(i, ident),
        |h| {
            black_box(h.join().expect("identity"));
        },
    );
    group.finish();
    if fds.before.is_some() {
        procspawn_attempt(&pool);
    }
}

/// The `process_submit_result` row `name` of `who`: a warm-up of 100
/// tasks (so that every worker has started and its channel counts in
/// `before`), then [`batches`] of `pending` tasks; prints the descriptor
/// counts and returns them.
fn submit_result_row<H>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: String,
    (who, pending): (&str, u64),
    mut submit: impl FnMut(u64) -> H,
    mut take: impl FnMut(H),
) -> Fds {
    let warm: Vec<_> = (0..100).map(&mut submit).collect();
    warm.into_iter().for_each(&mut take);
    let mut fds = Fds::new();
    group.throughput(Throughput::Elements(pending));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| batches(iters, pending, &mut fds, &mut submit, &mut take));
    });
    fds.report(who, pending);
    fds
}

/// One batch of [`PROCSPAWN_ATTEMPT`] pending procspawn tasks, outside
/// criterion: reports how far it got, and the descriptors it held.
fn procspawn_attempt(pool: &procspawn::Pool) {
    let before = open_fds();
    let start = Instant::now();
    let mut handles = Vec::new();
    // The expected panic is reported below, on one line.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let submitted = catch_unwind(AssertUnwindSafe(|| {
        for i in 0..PROCSPAWN_ATTEMPT {
            handles.push(pool.spawn(i, ident));
        }
    }));
    std::panic::set_hook(hook);
    let peak = open_fds();
    let spawned = handles.len();
    let mut failures = 0;
    for handle in handles {
        failures += usize::from(handle.join().is_err());
    }
    let elapsed = start.elapsed();
    let after = open_fds();
    match submitted {
        Ok(()) => println!(
            "procspawn {PROCSPAWN_ATTEMPT} pending: all submitted, {failures} failed joins, \
             {:.1} us/task; fds before {before}, peak {peak}, after {after}",
            elapsed.as_secs_f64() * 1e6 / PROCSPAWN_ATTEMPT as f64
        ),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            println!(
                "procspawn {PROCSPAWN_ATTEMPT} pending: FAILED at task {spawned} ({message}); \
                 fds before {before}, peak {peak}, after {after}"
            );
        }
    }
}

fn process_map(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_map");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(MAP_ITEMS));

    let executor = ProcessPoolExecutor::new(WORKERS);
    group.bench_function(format!("ours_chunksize_{CHUNK}"), |b| {
        b.iter(|| {
            let mut total = 0u64;
            for result in executor.map(ident, 0..MAP_ITEMS).chunksize(CHUNK) {
                total += result.expect("identity");
            }
            black_box(total)
        });
    });
    let round = common::round_nanos();
    println!(
        "process_map mix25: {MIX25_ROUNDS} rounds of {round:.2} ns = {:.1} ns per item here",
        f64::from(MIX25_ROUNDS) * round
    );
    let sizes = std::iter::once(None).chain(MIX25_CHUNKSIZES.map(Some));
    for chunksize in sizes {
        let name = match chunksize {
            None => "ours_default_25ns".to_owned(),
            Some(chunksize) => format!("ours_chunksize_{chunksize}_25ns"),
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let results = executor.map(mix25, 0..MAP_ITEMS);
                let results = match chunksize {
                    Some(chunksize) => results.chunksize(chunksize),
                    None => results,
                };
                let mut total = 0u64;
                for result in results {
                    total = total.wrapping_add(result.expect("mix25 never fails"));
                }
                black_box(total)
            });
        });
    }
    drop(executor);

    let pool = procspawn_pool();
    group.bench_function(format!("procspawn_pool_chunk_{CHUNK}_context"), |b| {
        b.iter(|| {
            let chunk = CHUNK as u64;
            let handles: Vec<_> = (0..MAP_ITEMS / chunk)
                .map(|c| pool.spawn((c * chunk..(c + 1) * chunk).collect(), ident_chunk))
                .collect();
            let mut total = 0u64;
            for handle in handles {
                total += handle.join().expect("identity").iter().sum::<u64>();
            }
            black_box(total)
        });
    });
    group.finish();
}

/// Times `iters` calls of `send` on a fresh copy of `template` each,
/// leaving the making of the copy off the clock, and the dropping of what
/// `send` returns: a returned value is the caller's to free when it likes,
/// as the argument's memory is the pool's to free after the result is in
/// hand (freeing 64 MiB of 4 KiB pages takes a few milliseconds here,
/// whoever made them). `len` says how many bytes came back, `size` how
/// many must.
fn payload_calls<T: Clone, R>(
    iters: u64,
    template: &T,
    size: usize,
    mut send: impl FnMut(T) -> R,
    len: fn(&R) -> usize,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let payload = template.clone();
        let start = Instant::now();
        let got = send(payload);
        total += start.elapsed();
        assert_eq!(len(&got), size);
    }
    total
}

/// [`payload_calls`] on a vector of `size` bytes.
fn byte_calls<R>(
    iters: u64,
    size: usize,
    send: impl FnMut(Vec<u8>) -> R,
    len: fn(&R) -> usize,
) -> Duration {
    payload_calls(iters, &vec![7u8; size], size, send, len)
}

/// What copying `size` bytes costs here: into a fresh vector, and into
/// one already written (medians of a few tries, GiB/s).
fn copy_floor(size: usize) -> (f64, f64) {
    let source = vec![7u8; size];
    let mut reused = vec![0u8; size];
    let gib_s = |time: Duration| size as f64 / time.as_secs_f64() / f64::from(1 << 30);
    let (mut fresh, mut into) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        let start = Instant::now();
        black_box(source.clone());
        fresh.push(gib_s(start.elapsed()));
        let start = Instant::now();
        reused.copy_from_slice(black_box(&source));
        black_box(&reused);
        into.push(gib_s(start.elapsed()));
    }
    fresh.sort_by(f64::total_cmp);
    into.sort_by(f64::total_cmp);
    (fresh[4], into[4])
}

fn process_bytes(c: &mut Criterion) {
    let mut group = c.benchmark_group("process_bytes");
    group.sampling_mode(SamplingMode::Flat);

    let executor = ProcessPoolExecutor::new(WORKERS);
    drop(executor.submit(ident, 0).result());
    let mut ran = false;
    for (size, name) in BYTES {
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("arg_{name}"), |b| {
            ran = true;
            b.iter_custom(|iters| {
                byte_calls(
                    iters,
                    size,
                    |bytes| executor.submit(len, bytes).result().expect("len"),
                    |n| *n,
                )
            });
        });
        group.bench_function(format!("echo_{name}"), |b| {
            b.iter_custom(|iters| {
                byte_calls(
                    iters,
                    size,
                    |bytes| executor.submit(echo, bytes).result().expect("echo"),
                    Vec::len,
                )
            });
        });
    }
    let numbers: Vec<f64> = (0..BYTES[1].0 / 8).map(|n| n as f64 * 0.5).collect();
    let size = BYTES[1].0;
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function("arg_f64_64MiB", |b| {
        ran = true;
        b.iter_custom(|iters| {
            let send = |numbers| executor.submit(len_f64, numbers).result().expect("len");
            payload_calls(iters, &numbers, size / 8, send, |n| *n)
        });
    });
    group.bench_function("echo_f64_64MiB", |b| {
        b.iter_custom(|iters| {
            let send = |numbers| executor.submit(echo_f64, numbers).result().expect("echo");
            payload_calls(iters, &numbers, size / 8, send, Vec::len)
        });
    });
    drop(numbers);
    let three = Three::new();
    group.throughput(Throughput::Bytes(Three::BYTES as u64));
    group.bench_function("arg_three_60MiB", |b| {
        ran = true;
        b.iter_custom(|iters| {
            let send = |three| executor.submit(len_three, three).result().expect("len");
            payload_calls(iters, &three, Three::BYTES, send, |n| *n)
        });
    });
    group.bench_function("echo_three_60MiB", |b| {
        b.iter_custom(|iters| {
            let send = |three| executor.submit(echo_three, three).result().expect("echo");
            payload_calls(iters, &three, Three::BYTES, send, Three::bytes)
        });
    });
    drop(three);
    drop(executor);

    let pool = procspawn_pool();
    drop(pool.spawn(0, ident).join());
    let (size, name) = BYTES[1];
    group.throughput(Throughput::Bytes(size as u64));
    group.bench_function(format!("procspawn_pool_arg_{name}"), |b| {
        b.iter_custom(|iters| {
            byte_calls(
                iters,
                size,
                |bytes| pool.spawn(bytes, len).join().expect("len"),
                |n| *n,
            )
        });
    });
    drop(pool);
    group.finish();
    if ran {
        for (size, name) in BYTES {
            let (fresh, reused) = copy_floor(size);
            println!(
                "bytes floor {name}: copy into a fresh vector {fresh:.2} GiB/s, into a reused one {reused:.2} GiB/s"
            );
        }
    }
}

fn main() {
    procspawn::init(); // first line: in procspawn's workers it never returns
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
        .configure_from_args();
    process_start(&mut c);
    process_round_trip(&mut c);
    process_submit_result(&mut c);
    process_map(&mut c);
    process_bytes(&mut c);
    c.final_summary();
}
