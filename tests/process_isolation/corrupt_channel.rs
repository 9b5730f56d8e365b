//! A worker that corrupts its private channel to the pool (here, a task
//! that writes garbage to it) fails only its own task, with
//! `Error::Protocol`; the pool kills that worker, no longer to be trusted,
//! and goes on with a new one.

use crate::fixtures;
use crate::harness;

use std::io::Write;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;

use concurrent_futures::{Error, ProcessPoolExecutor};
use fixtures::{pid, settle};

/// The cases of this file, run by `main.rs`.
pub(crate) const CASES: &[harness::Case] = harness::cases![
    garbage_on_the_channel_fails_only_its_task,
    a_garbled_answer_fails_only_its_task,
];

/// The worker's end of its answers' socket: of its two sockets above
/// stderr (calls, then answers), the one it took second, with the higher
/// descriptor.
fn channel() -> UnixStream {
    let sockets: Vec<(RawFd, String)> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let fd: RawFd = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?.into_os_string();
            let target = target.into_string().ok()?;
            (fd > 2 && target.starts_with("socket:")).then_some((fd, target))
        })
        .collect();
    let [(one, _), (other, _)] = sockets[..] else {
        panic!("expected two sockets in the worker, found {sockets:?}")
    };
    let fd = one.max(other);
    // SAFETY: `fd` is open (just listed) and stays open while we use it:
    // the worker's loop owns it and is busy running this very task.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    UnixStream::from(borrowed.try_clone_to_owned().unwrap())
}

/// Writes `bytes` to the pool as if they were the worker's answer.
fn scribble(bytes: Vec<u8>) -> u32 {
    channel().write_all(&bytes).unwrap();
    std::process::id()
}

fn fails_with_protocol_and_is_replaced(bytes: Vec<u8>) {
    let executor = ProcessPoolExecutor::new(1);
    let worker = settle(&executor.submit(pid, ())).unwrap();
    let outcome = settle(&executor.submit(scribble, bytes.clone()));
    assert!(
        matches!(outcome, Err(Error::Protocol(_))),
        "after writing {bytes:?}: {outcome:?}"
    );
    let next = settle(&executor.submit(pid, ())).expect("the pool goes on");
    assert_ne!(next, worker, "the corrupting worker was replaced");
    assert!(!fixtures::exists(worker), "and killed and reaped");
}

fn garbage_on_the_channel_fails_only_its_task() {
    for bytes in [
        vec![0xFF; 64],
        vec![0; 64],
        b"not a frame at all, just text\n".to_vec(),
    ] {
        fails_with_protocol_and_is_replaced(bytes);
    }
}

fn a_garbled_answer_fails_only_its_task() {
    // A well-formed frame (8-byte little-endian length, then the kind, 5 for
    // outcomes: see src/remote/codec.rs) whose body decodes to nothing.
    let mut frame = 4_u64.to_le_bytes().to_vec();
    frame.extend([5, 0x63, 0x63, 0x63]);
    fails_with_protocol_and_is_replaced(frame);
}
