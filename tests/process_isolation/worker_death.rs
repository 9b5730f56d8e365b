//! A worker process that dies in the middle of a task (abort, segfault,
//! `exit`, SIGKILL from outside) fails only that task, with
//! `Error::WorkerDied` naming the exit code or signal. The tasks queued
//! behind it and the tasks running beside it complete normally, on a
//! replacement worker. (Python's `BrokenProcessPool` would fail them all.)

use crate::fixtures;
use crate::harness;

use std::path::Path;

use concurrent_futures::{Error, ProcessPoolExecutor};
use fixtures::{Scratch, block_until_released, pid, settle, write_atomically};
use serde::{Deserialize, Serialize};

/// The cases of this file, run by `main.rs`.
pub(crate) const CASES: &[harness::Case] = harness::cases![
    an_abort_fails_only_its_task,
    a_segfault_fails_only_its_task,
    an_exit_fails_only_its_task,
    a_sigkill_fails_only_its_task,
    a_death_spares_the_task_running_beside_it,
    an_idle_worker_that_dies_fails_no_task,
    a_death_in_a_map_chunk_fails_that_chunk_only,
    a_death_while_writing_into_the_arena_fails_only_its_task,
    a_death_while_writing_a_struct_into_the_arena_fails_only_its_task,
    a_death_with_calls_queued_on_its_worker_fails_only_its_task,
];

fn died(exit_code: Option<i32>, signal: Option<i32>) -> Result<u32, Error> {
    Err(Error::WorkerDied { exit_code, signal })
}

/// Notes the doomed worker's pid in `DIR/doomed`.
fn note_pid(dir: &str) {
    write_atomically(
        &Path::new(dir).join("doomed"),
        &std::process::id().to_string(),
    );
}

fn aborts(dir: String) -> u32 {
    note_pid(&dir);
    std::process::abort()
}

#[cfg(unix)]
fn segfaults(dir: String) -> u32 {
    note_pid(&dir);
    // SAFETY: signal() and raise() take plain integers. Resetting SIGSEGV
    // to its default action first matters: std's stack-overflow handler
    // would otherwise catch a raised SIGSEGV, reset itself, and return.
    unsafe {
        libc::signal(libc::SIGSEGV, libc::SIG_DFL);
        libc::raise(libc::SIGSEGV);
    }
    unreachable!("SIGSEGV with its default action ends the process")
}

/// Raises an access violation, as a bad pointer would (without the
/// undefined behaviour of using one): nothing handles it, so the process
/// ends with its status.
#[cfg(windows)]
fn segfaults(dir: String) -> u32 {
    use windows_sys::Win32::Foundation::EXCEPTION_ACCESS_VIOLATION;
    use windows_sys::Win32::System::Diagnostics::Debug::RaiseException;
    note_pid(&dir);
    // SAFETY: no arguments; a noncontinuable exception that no handler of
    // this worker catches (Rust's unwinding ignores foreign exceptions).
    unsafe { RaiseException(EXCEPTION_ACCESS_VIOLATION as u32, 1, 0, std::ptr::null()) };
    unreachable!("an unhandled access violation ends the process")
}

/// How a crash by bad memory access is reported.
fn segfault() -> Result<u32, Error> {
    #[cfg(unix)]
    return died(None, Some(libc::SIGSEGV));
    #[cfg(windows)]
    return died(Some(0xC000_0005_u32 as i32), None);
}

fn exits(dir: String) -> u32 {
    note_pid(&dir);
    std::process::exit(3)
}

/// Runs `doomed` on a one-worker pool between healthy tasks, and checks that
/// only it fails, with `expected`, and that a new worker serves the rest.
/// `kill` does whatever ends the doomed worker from outside, if anything.
fn dies_alone(doomed: fn(String) -> u32, expected: Result<u32, Error>, kill: fn(&Scratch)) {
    let scratch = Scratch::new("death");
    let executor = ProcessPoolExecutor::new(1);
    let first_worker = settle(&executor.submit(pid, ())).unwrap();
    let victim = executor.submit(doomed, scratch.arg());
    let queued_behind: Vec<_> = (0..3).map(|_| executor.submit(pid, ())).collect();
    kill(&scratch);

    assert_eq!(settle(&victim), expected);
    let dead = fixtures::read_pid(&scratch.path("doomed"));
    assert_eq!(dead, first_worker, "the task ran on the pool's one worker");
    for future in &queued_behind {
        let worker = settle(future).expect("a task queued behind the death is unaffected");
        assert_ne!(worker, dead, "a replacement worker ran it");
    }
    assert!(!fixtures::exists(dead), "the dead worker was reaped");
    let worker = settle(&executor.submit(pid, ())).expect("the pool keeps working");
    assert!(fixtures::alive(worker));
}

fn nothing(_: &Scratch) {}

fn an_abort_fails_only_its_task() {
    dies_alone(aborts, Err(fixtures::aborted()), nothing);
}

fn a_segfault_fails_only_its_task() {
    dies_alone(segfaults, segfault(), nothing);
}

fn an_exit_fails_only_its_task() {
    dies_alone(exits, died(Some(3), None), nothing);
}

/// Blocks (writing its pid to `DIR/doomed`) until killed.
fn waits_to_be_killed(dir: String) -> u32 {
    note_pid(&dir);
    block_until_released(dir)
}

fn sigkill(scratch: &Scratch) {
    fixtures::kill_from_outside(scratch.wait_for_pid("doomed"));
}

/// SIGKILL on Unix; `TerminateProcess` on Windows.
fn a_sigkill_fails_only_its_task() {
    dies_alone(
        waits_to_be_killed,
        Err(fixtures::killed_from_outside()),
        sigkill,
    );
}

fn a_death_spares_the_task_running_beside_it() {
    let scratch = Scratch::new("beside");
    let executor = ProcessPoolExecutor::new(2);
    let beside = executor.submit(block_until_released, scratch.arg());
    let [started] = &scratch.wait_for_files("started-", 1)[..] else {
        unreachable!()
    };
    let victim = executor.submit(aborts, scratch.arg());
    assert_eq!(settle(&victim), Err(fixtures::aborted()));
    assert!(!beside.done(), "the task beside it is still running");
    scratch.touch("release");
    let worker = settle(&beside).expect("the task beside the death completes");
    assert_eq!(format!("started-{worker}"), *started);
    assert_ne!(worker, fixtures::read_pid(&scratch.path("doomed")));
}

fn an_idle_worker_that_dies_fails_no_task() {
    let executor = ProcessPoolExecutor::new(1);
    let idle = settle(&executor.submit(pid, ())).unwrap();
    // Killed between tasks, as the OOM killer might: no task is running.
    fixtures::kill_from_outside(idle);
    // Dead with every thread, so its end of the channel is closed: sending
    // to it fails, rather than landing in a channel a dying thread holds.
    fixtures::wait_for_death(idle);
    let next = settle(&executor.submit(pid, ()));
    assert!(
        matches!(next, Ok(worker) if worker != idle),
        "the next task should run on a new worker: the dead one was not running it; got {next:?}"
    );
}

/// Aborts on 6; doubles everything else.
fn aborts_on_6(n: u32) -> u32 {
    if n == 6 {
        std::process::abort();
    }
    n * 2
}

fn a_death_in_a_map_chunk_fails_that_chunk_only() {
    let executor = ProcessPoolExecutor::new(2);
    let results: Vec<_> = executor
        .map(aborts_on_6, 0..12)
        .chunksize(4)
        .timeout(fixtures::PATIENCE)
        .collect();
    for (n, outcome) in (0..12).zip(results) {
        match n {
            // Items 4..8 shared a worker, and a call, with 6.
            4..8 => assert_eq!(outcome, Err(fixtures::aborted()), "item {n}"),
            _ => assert_eq!(outcome, Ok(n * 2), "item {n}"),
        }
    }
}

/// A result big enough that copying it into the shared arena takes
/// milliseconds, and far above the arena's threshold.
const ARENA_RESULT: usize = 128 << 20;

/// `len` bytes of `byte`.
fn filled((byte, len): (u8, usize)) -> Vec<u8> {
    vec![byte; len]
}

/// Where this worker maps the pool's shared arena, if it has one (the
/// process transport names its memfd so).
fn arena_mapping() -> Option<usize> {
    // No /proc (Windows): no memfd, so no arena either.
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let line = maps
        .lines()
        .find(|line| line.contains("memfd:concurrent-futures-arena"))?;
    let start = line.split('-').next()?;
    usize::from_str_radix(start, 16).ok()
}

/// Starts a thread that aborts this worker as soon as `byte` shows in its
/// arena, `len / 16` bytes in: a result of `len` bytes, mid-transfer.
fn abort_when_the_arena_shows(byte: u8, len: usize) {
    let watched = arena_mapping().expect("the warm-up left an arena") + len / 16;
    std::thread::spawn(move || {
        loop {
            // SAFETY: `watched` lies inside the arena's mapping (at most
            // MAX bytes, sized for a result of `len` by the warm-up), which
            // stays mapped while this worker lives; a volatile read of a
            // byte that the transport may be writing is the point here.
            if unsafe { std::ptr::read_volatile(watched as *const u8) } == byte {
                std::process::abort();
            }
            std::hint::spin_loop();
        }
    });
}

/// Returns `len` bytes of `byte`, and dies as they start to arrive in the
/// arena.
fn dies_writing_into_the_arena((byte, len): (u8, usize)) -> Vec<u8> {
    abort_when_the_arena_shows(byte, len);
    vec![byte; len]
}

/// Bytes that serde encodes as one blob (`serialize_bytes`), so that even
/// a debug build encodes a big one quickly.
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Blob, E> {
                Ok(Blob(bytes.to_vec()))
            }
        }
        deserializer.deserialize_byte_buf(Bytes)
    }
}

/// Three blobs: a struct that serde encodes (not a plain vector, which
/// travels as its memory).
#[derive(Serialize, Deserialize)]
struct Three {
    x: Blob,
    y: Blob,
    z: Blob,
}

/// A [`Three`] of `len` bytes, every one `byte`.
fn filled_three((byte, len): (u8, usize)) -> Three {
    let blob = || Blob(vec![byte; len / 3]);
    Three {
        x: blob(),
        y: blob(),
        z: blob(),
    }
}

/// Whether `three` is [`filled_three`]'s, of `byte` and `len`.
fn is_filled(three: &Three, byte: u8, len: usize) -> bool {
    [&three.x, &three.y, &three.z]
        .iter()
        .all(|blob| blob.0.len() == len / 3 && blob.0.iter().all(|&b| b == byte))
}

/// Returns [`filled_three`], and dies as its encoding starts to arrive in
/// the arena.
fn dies_writing_a_struct_into_the_arena((byte, len): (u8, usize)) -> Three {
    abort_when_the_arena_shows(byte, len);
    filled_three((byte, len))
}

/// Whether this worker has an arena mapped.
fn has_arena(_: ()) -> bool {
    arena_mapping().is_some()
}

/// A worker that dies while it writes its result (made by `make`, or by
/// `dies`, which dies so) into the arena fails only that task: never a
/// result read out of a half-written arena.
fn dying_in_the_arena<R: concurrent_futures::Payload>(
    make: fn((u8, usize)) -> R,
    dies: fn((u8, usize)) -> R,
    check: fn(&R, u8, usize) -> bool,
) {
    let (executor, len) = (ProcessPoolExecutor::new(1), ARENA_RESULT);
    let warm = settle(&executor.submit(make, (0x11, len))).expect("a big result");
    assert!(check(&warm, 0x11, len));
    drop(warm);
    let arena = settle(&executor.submit(has_arena, ())).unwrap();
    if cfg!(any(windows, concurrent_futures_portable_unix)) {
        // The portable path (macOS) and Windows have no memfd: big payloads
        // take the channel, and there is no arena to die in.
        assert!(!arena, "no arena on the portable path or on Windows");
        return;
    }
    assert!(arena, "a big result left the worker an arena");
    let first_worker = settle(&executor.submit(pid, ())).unwrap();
    let victim = executor.submit(dies, (0x22, len));
    let queued_behind = executor.submit(make, (0x33, len));
    assert_eq!(settle(&victim).map(drop), Err(fixtures::aborted()));
    let next = settle(&queued_behind).expect("the task queued behind it is unaffected");
    assert!(check(&next, 0x33, len));
    let worker = settle(&executor.submit(pid, ())).expect("the pool keeps working");
    assert_ne!(worker, first_worker, "a replacement worker ran it");
    assert!(
        !fixtures::exists(first_worker),
        "the dead worker was reaped"
    );
}

fn a_death_while_writing_into_the_arena_fails_only_its_task() {
    let check = |bytes: &Vec<u8>, byte, len| bytes.len() == len && bytes.iter().all(|&b| b == byte);
    dying_in_the_arena(filled, dies_writing_into_the_arena, check);
}

fn a_death_while_writing_a_struct_into_the_arena_fails_only_its_task() {
    let dies = dies_writing_a_struct_into_the_arena;
    dying_in_the_arena(filled_three, dies, is_filled);
}

fn a_death_with_calls_queued_on_its_worker_fails_only_its_task() {
    // Quick tasks let the manager send its child several calls at once;
    // when the child dies running one, the calls sent behind it never
    // started: they go to the replacement, and succeed there.
    let scratch = Scratch::new("queued");
    let executor = ProcessPoolExecutor::new(1);
    let first_worker = settle(&executor.submit(pid, ())).unwrap();
    let warm: Vec<_> = (0..200).map(|_| executor.submit(pid, ())).collect();
    let victim = executor.submit(aborts, scratch.arg());
    let behind: Vec<_> = (0..40).map(|_| executor.submit(pid, ())).collect();
    for future in &warm {
        assert_eq!(settle(future), Ok(first_worker));
    }
    assert_eq!(settle(&victim), Err(fixtures::aborted()));
    for future in &behind {
        let worker = settle(future).expect("a call sent behind the death is unaffected");
        assert_ne!(worker, first_worker, "a replacement worker ran it");
    }
}
