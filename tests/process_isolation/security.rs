//! The process pool's security posture (README, "Safety"): a run becomes a
//! worker only when its marker names its parent *and* its standard input is
//! a socket from that parent; a worker checks the pool's executable at the
//! handshake and the keyed tag of every task before using any offset; and no
//! socket listens anywhere.
//!
//! The tests play the pool by hand: they start this same binary with the
//! marker and speak the wire protocol (`src/process/frame.rs`, `src/remote/message.rs`) themselves.

#[cfg(unix)]
use crate::fixtures;
use crate::harness;

#[cfg(unix)]
use std::collections::HashSet;
#[cfg(unix)]
use std::io::{Read, Write};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};

#[cfg(unix)]
use concurrent_futures::ProcessPoolExecutor;
#[cfg(unix)]
use fixtures::{pid, settle};

/// The marker a pool sets on its workers (`src/process/child.rs`).
const MARKER: &str = "CONCURRENT_FUTURES_WORKER";

/// Printed by a run that reached `main` as an ordinary program.
const ORDINARY: &str = "an ordinary run";

/// Set, this makes a run print `ORDINARY` and exit as `main` starts.
const PROBE: &str = "CONCURRENT_FUTURES_TEST_SECURITY_PROBE";

/// The cases of this file, run by `main.rs`.
#[cfg(unix)]
pub(crate) const CASES: &[harness::Case] = harness::cases![
    a_marker_naming_another_process_is_ignored,
    a_marker_without_the_parents_socket_serves_nothing,
    a_channel_without_its_answers_end_serves_nothing,
    a_worker_refuses_a_pool_running_another_executable,
    a_worker_refuses_a_task_whose_tag_does_not_match,
    no_socket_listens,
];

/// The cases that apply on Windows: a stranger's marker. Playing the pool
/// by hand needs the Unix socket pair (the Windows channel is two pipes
/// handed over by `CreateProcessW`), and the listening-socket check reads
/// /proc/net; the Windows channel is anonymous pipes, with no name at all.
#[cfg(windows)]
pub(crate) const CASES: &[harness::Case] = harness::cases![
    a_marker_naming_another_process_is_ignored,
    a_marker_without_the_parents_pipes_serves_nothing,
];

/// In a probe run (started by a case below) that reached `main` as an
/// ordinary program, says so and exits; otherwise returns.
pub(crate) fn probe_mode() {
    if std::env::var_os(PROBE).is_some() {
        println!("{ORDINARY}");
        std::process::exit(0);
    }
}

/// This binary as a probe with `marker` set, its stdin `stdin`.
fn probe(marker: &str, stdin: Stdio) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .env(MARKER, marker)
        .env(PROBE, "1")
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn a_marker_naming_another_process_is_ignored() {
    // PID 1 is not our probe's parent: the run is an ordinary program.
    let output = probe("1", Stdio::null()).wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(text(&output.stdout).trim(), ORDINARY);
}

/// Exited with code 1, saying `why` on stderr, never reaching the program.
fn assert_refused(output: &Output, why: &str) {
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(why), "expected {why:?} in {stderr:?}");
    assert!(
        !stdout.contains(ORDINARY),
        "it went on as a program: {stdout}"
    );
}

#[cfg(unix)]
fn a_marker_without_the_parents_socket_serves_nothing() {
    // The marker names us, the parent, but stdin is a pipe, not our socket.
    let me = std::process::id().to_string();
    // Nothing is written: the refusal must come before any read, and a
    // write could race the child's exit (EPIPE).
    let child = probe(&me, Stdio::piped());
    assert_refused(
        &child.wait_with_output().unwrap(),
        "standard input is not the pool's private channel",
    );
}

/// The marker names us and standard input is our socket, but its first
/// bytes do not carry the answers' end: refused, before any handshake.
#[cfg(unix)]
fn a_channel_without_its_answers_end_serves_nothing() {
    let (mut calls, theirs) = UnixStream::pair().unwrap();
    calls.write_all(&[0]).unwrap();
    let me = std::process::id().to_string();
    let child = probe(&me, Stdio::from(std::os::fd::OwnedFd::from(theirs)));
    assert_refused(
        &child.wait_with_output().unwrap(),
        "the private channel did not start with its answers' end",
    );
}

/// The marker names us, the parent, but no handles, or handles that are
/// not pipes the pool made: refused before any read.
#[cfg(windows)]
fn a_marker_without_the_parents_pipes_serves_nothing() {
    let me = std::process::id();
    for marker in [format!("{me}"), format!("{me}:4:8"), format!("{me}:x:y")] {
        let child = probe(&marker, Stdio::piped());
        assert_refused(
            &child.wait_with_output().unwrap(),
            "not the pool's private channel",
        );
    }
}

#[cfg(unix)]
/// One frame: 8-byte little-endian length (kind + body), kind, body.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = (1 + body.len() as u64).to_le_bytes().to_vec();
    out.push(kind);
    out.extend_from_slice(body);
    out
}

#[cfg(unix)]
fn read_frame(channel: &mut UnixStream) -> (u8, Vec<u8>) {
    let mut header = [0; 9];
    channel.read_exact(&mut header).unwrap();
    let len = u64::from_le_bytes(header[..8].try_into().unwrap()) as usize;
    let mut body = vec![0; len - 1];
    channel.read_exact(&mut body).unwrap();
    (header[8], body)
}

// The frame kinds (`src/remote/message.rs`).
#[cfg(unix)]
const HELLO: u8 = 1;
#[cfg(unix)]
const WELCOME: u8 = 2;
#[cfg(unix)]
const READY: u8 = 3;
#[cfg(unix)]
const TASK: u8 = 4;

#[cfg(unix)]
/// The pool's ends of a worker's channel: it writes calls to one and reads
/// answers from the other.
struct ByHand {
    calls: UnixStream,
    answers: UnixStream,
}

#[cfg(unix)]
/// Starts a worker the way a pool does (marker, socket, and the answers'
/// end as the socket's first bytes) and reads its Hello; returns the
/// child, our ends, and the fingerprint it sent.
fn worker_by_hand() -> (std::process::Child, ByHand, Vec<u8>) {
    let (calls, theirs) = UnixStream::pair().unwrap();
    let (mut answers, answering) = UnixStream::pair().unwrap();
    send_with_fd(&calls, &answering);
    drop(answering);
    // No start gate: the pool says so with a byte of its own.
    (&calls).write_all(&[0]).unwrap();
    let me = std::process::id().to_string();
    let child = probe(&me, Stdio::from(std::os::fd::OwnedFd::from(theirs)));
    let (kind, hello) = read_frame(&mut answers);
    assert_eq!(kind, HELLO);
    assert_eq!(&hello[..4], b"CFut");
    let fingerprint = hello[6..].to_vec();
    assert_eq!(fingerprint.len(), 40, "five 64-bit words");
    (child, ByHand { calls, answers }, fingerprint)
}

#[cfg(unix)]
/// Sends one byte with `fd` attached (`SCM_RIGHTS`), as the pool hands a
/// worker its answers' end.
fn send_with_fd(socket: &UnixStream, fd: &impl std::os::fd::AsRawFd) {
    use std::os::fd::AsRawFd;
    // Room for one header with one descriptor, aligned for cmsghdr.
    #[repr(C, align(8))]
    struct Control([u8; 64]);
    let mut control = Control([0; 64]);
    let mut byte = [0_u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    message.msg_controllen = unsafe { libc::CMSG_SPACE(4) } as _;
    // SAFETY: the control buffer (64 bytes, aligned for cmsghdr) holds
    // msg_controllen bytes, so the first header and its c_int of data are
    // inside it.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(4) as _;
        libc::CMSG_DATA(header)
            .cast::<libc::c_int>()
            .write_unaligned(fd.as_raw_fd());
    }
    // SAFETY: `message` and what it points to (the byte, the control
    // buffer) are alive for the call, which only reads them.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &message, 0) };
    assert_eq!(sent, 1, "sendmsg: {}", std::io::Error::last_os_error());
}

#[cfg(unix)]
/// A Welcome: preamble, fingerprint, a 128-bit secret, no initializer.
fn welcome(fingerprint: &[u8]) -> Vec<u8> {
    let mut body = b"CFut".to_vec();
    body.extend_from_slice(&4_u16.to_le_bytes()); // the protocol version
    body.extend_from_slice(fingerprint);
    body.extend_from_slice(&[0x5A; 16]);
    body.push(0);
    frame(WELCOME, &body)
}

#[cfg(unix)]
fn a_worker_refuses_a_pool_running_another_executable() {
    let (child, mut channel, mut fingerprint) = worker_by_hand();
    fingerprint[8] ^= 1; // another inode: another executable
    channel.calls.write_all(&welcome(&fingerprint)).unwrap();
    // The refusal comes back in Ready, for the pool to report...
    let (kind, why) = read_frame(&mut channel.answers);
    assert_eq!(kind, READY);
    let why = text(&why);
    assert!(
        why.contains("the pool runs a different executable"),
        "{why}"
    );
    drop(channel);
    // ...and the worker exits without serving or running the program. It
    // says nothing more: the pool heard it, and tells the user once.
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(!text(&output.stdout).contains(ORDINARY));
    assert_eq!(text(&output.stderr), "", "the pool reports the refusal");
}

#[cfg(unix)]
fn a_worker_refuses_a_task_whose_tag_does_not_match() {
    let (child, mut channel, fingerprint) = worker_by_hand();
    channel.calls.write_all(&welcome(&fingerprint)).unwrap();
    assert_eq!(read_frame(&mut channel.answers), (READY, vec![]));
    // Offsets that would crash if anything called them, with a made-up tag.
    let mut task = Vec::new();
    for word in [0xDEAD_BEEF_u64, 0xBAD_F00D, 0x1234_5678] {
        task.extend_from_slice(&word.to_le_bytes());
    }
    task.extend_from_slice(&1_u32.to_le_bytes()); // one item
    task.extend_from_slice(&1_u32.to_le_bytes()); // numbered 1
    task.push(0);
    channel.calls.write_all(&frame(TASK, &task)).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_refused(&output, "refused a task whose tag does not match");
}

#[cfg(unix)]
/// The socket inodes open in process `pid`.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|entry| {
                    let target = std::fs::read_link(entry.path()).ok()?;
                    let target = target.to_str()?;
                    target
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(unix)]
fn no_socket_listens() {
    let executor = ProcessPoolExecutor::new(2);
    let workers: HashSet<u32> = (0..20)
        .map(|_| executor.submit(pid, ()))
        .collect::<Vec<_>>()
        .iter()
        .map(|future| settle(future).unwrap())
        .collect();
    let mut ours: HashSet<u64> = socket_inodes(std::process::id());
    for &worker in &workers {
        ours.extend(socket_inodes(worker));
    }
    assert!(!ours.is_empty(), "the pool's channels are sockets");
    // Unix sockets: a listening one has __SO_ACCEPTCON (0x10000) in Flags.
    let unix = std::fs::read_to_string("/proc/net/unix").unwrap();
    for line in unix.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (flags, inode) = (fields[3], fields[6].parse::<u64>().unwrap());
        let listening = u32::from_str_radix(flags, 16).unwrap() & 0x10000 != 0;
        assert!(
            !(listening && ours.contains(&inode)),
            "a listening Unix socket: {line}"
        );
    }
    // Internet sockets: none at all.
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let inode: u64 = line.split_whitespace().nth(9).unwrap().parse().unwrap();
            assert!(!ours.contains(&inode), "an internet socket: {line}");
        }
    }
}
