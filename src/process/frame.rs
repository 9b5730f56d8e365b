//! Layer: process. May use: `error`, `process::arena`, `process::sys`,
//! `remote::codec`, `remote::message`, `shared`. The frames on a worker's
//! private channel (`remote::codec` and `shared` only for the fuzzing
//! entry).
//!
//! Every message is a frame: an 8-byte little-endian length, one kind byte
//! (the message's [`Kind`]), then the body (the length counts the kind byte
//! and the body). The bodies are the remote layer's
//! ([`message`](crate::remote::message)).
//!
//! A message whose last part (a lone plain vector's memory, or else the
//! encoded arguments or outcomes, of any type) is big goes through the
//! shared [`Arena`] ([`write_message`], [`read_message`]): the kind byte
//! then has [`IN_ARENA`] set, the body starts with the length of those
//! bytes (8 bytes, little-endian), and they are at the start of the arena,
//! where the receiver decodes them; with [`NEW_ARENA`] also set, the frame's
//! first byte carries the descriptor of a new arena, which replaces the
//! old. A task frame with [`LENT`] set lends the arena to the child until
//! it answers that task: only then may the task's argument or its answer
//! lie in the arena (the pool lends it only with nothing else in flight).
//! The pool may make a new arena before it has a frame to hand it over
//! with (a big argument whose encoding failed halfway into it): the next
//! task frame that lends the arena hands it over, with 0 bytes in it if
//! need be, so the child never answers into an arena the pool has dropped.
//! The handshake's frames never carry any flag.
//!
//! Reading never trusts a length: at most [`RESERVE_AHEAD`] is reserved
//! before a frame's bytes arrive, a frame longer than the memory that can be
//! reserved for it is an error, not an abort. Nothing here is `unsafe`.
//! `fuzz/` drives every decoder with arbitrary bytes through [`fuzz`].

use std::io::{self, BufReader, IoSlice, Read, Write};

use super::arena::{self, Arena};
use super::sys::{Descriptor, ReceiveFd, SendFd};
use crate::Error;
#[cfg(fuzzing)]
use crate::remote::codec;
#[cfg(fuzzing)]
use crate::remote::message::{Answer, Hello, TaskHeader, Welcome, decode_ready};
use crate::remote::message::{Kind, Malformed};

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The other side closed the channel (cleanly, between frames).
    Closed,
    /// The channel failed, or timed out.
    Io(io::Error),
    /// The bytes do not form a valid message.
    Malformed(String),
}

impl From<io::Error> for FrameError {
    fn from(error: io::Error) -> Self {
        FrameError::Io(error)
    }
}

impl From<Malformed> for FrameError {
    fn from(Malformed(what): Malformed) -> Self {
        FrameError::Malformed(what)
    }
}

impl FrameError {
    /// This error as it reaches a task's future.
    pub(crate) fn into_error(self) -> Error {
        Error::Protocol(match self {
            FrameError::Closed => "the child closed the channel".to_owned(),
            FrameError::Io(error) => format!("the channel to the child failed: {error}"),
            FrameError::Malformed(what) => what,
        })
    }
}

fn malformed(what: impl Into<String>) -> FrameError {
    FrameError::Malformed(what.into())
}
/// The most parts a frame's body is written from (a task that lends the
/// arena: the length of what lies there, header, arguments, a lone plain
/// vector's memory).
const MAX_PARTS: usize = 4;

/// The kind byte's flag: the message's last bytes are in the arena.
const IN_ARENA: u8 = 0x80;
/// The kind byte's flag: the frame's first byte carries a new arena.
const NEW_ARENA: u8 = 0x40;
/// The kind byte's flag: the arena is lent with this task, until its answer.
const LENT: u8 = 0x20;

/// Writes one message, with the arena in hand: as [`write_frame`], except
/// that a last part (the last that is not empty) of at least
/// [`arena::THRESHOLD`] bytes goes through `arena` ([`fill_arena`]), and a
/// task frame lends the arena (see the module docs), handing over the new
/// arena waiting in `handing`, if one does. Without an arena (none can be
/// made here, or the part is above [`arena::MAX`]), the channel carries it.
pub(crate) fn write_message(
    out: &mut impl SendFd,
    kind: Kind,
    parts: &[&[u8]],
    arena: &mut Option<Arena>,
    handing: &mut Option<Descriptor>,
) -> io::Result<()> {
    let used = parts
        .iter()
        .rposition(|part| !part.is_empty())
        .map_or(0, |last| last + 1);
    let parts = &parts[..used];
    let mut lent = if kind == Kind::Task { LENT } else { 0 };
    if let Some((bulk, head)) = parts.split_last()
        && bulk.len() >= arena::THRESHOLD
    {
        let copy = |into: &mut [u8]| into.copy_from_slice(bulk);
        if fill_arena(arena, handing, bulk.len(), copy).is_some() {
            return write_placed(out, kind, head, bulk.len(), handing);
        }
        // This side's arena went, and no new one could be made: a lent
        // frame would let the child answer into the one it still has.
        if arena.is_none() {
            lent = 0;
        }
    }
    if lent != 0 && handing.is_some() {
        return write_placed(out, kind, parts, 0, handing);
    }
    write_all(out, &frame_header(kind as u8 | lent, parts, &[]), parts)
}

/// Makes sure `arena` holds at least `len` bytes (made, or replaced by a
/// bigger one, whose descriptor then waits in `handing` for the next frame
/// that uses or lends the arena: [`write_placed`]), and lets `fill` write
/// its first `len` bytes: call only while this side owns the arena. `None`
/// if there can be no arena here (none can be made, or `len` is above
/// [`arena::MAX`]): the channel must carry the bytes.
pub(crate) fn fill_arena<R>(
    arena: &mut Option<Arena>,
    handing: &mut Option<Descriptor>,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> R,
) -> Option<R> {
    if len > arena::MAX {
        return None;
    }
    if arena.as_ref().is_none_or(|arena| arena.len() < len) {
        // The old arena goes first: never two held at once on this side.
        *arena = None;
        *handing = None;
        let (new, fd) = Arena::create(len).ok()?;
        *arena = Some(new);
        *handing = Some(fd);
    }
    Some(fill(arena.as_mut().expect("made above").view_mut(len)))
}

/// Writes one message whose last `len` bytes lie at the start of the arena
/// already ([`fill_arena`]), after `head` in the frame; with `len` 0, a task
/// frame that lends the arena with nothing in it. Either way, the new arena
/// waiting in `handing`, if one does, goes with it.
pub(crate) fn write_placed(
    out: &mut impl SendFd,
    kind: Kind,
    head: &[&[u8]],
    len: usize,
    handing: &mut Option<Descriptor>,
) -> io::Result<()> {
    let lent = if kind == Kind::Task { LENT } else { 0 };
    let handed = handing.take();
    let len = (len as u64).to_le_bytes();
    let flags = lent | IN_ARENA | if handed.is_some() { NEW_ARENA } else { 0 };
    let header = frame_header(kind as u8 | flags, &[&len], head);
    let mut parts_after = [&[][..]; MAX_PARTS];
    parts_after[0] = &len;
    parts_after[1..=head.len()].copy_from_slice(head);
    let parts_after = &parts_after[..=head.len()];
    match handed {
        None => write_all(out, &header, parts_after),
        Some(fd) => write_all_with_fd(out, &header, parts_after, &fd),
    }
}

/// Writes one frame whose first bytes carry `fd`: a `Put` of a shared
/// value's memory (see `shared`), which only Linux has.
#[cfg(unix)]
pub(crate) fn write_frame_with_fd(
    out: &mut impl SendFd,
    kind: Kind,
    parts: &[&[u8]],
    fd: &Descriptor,
) -> io::Result<()> {
    write_all_with_fd(out, &frame_header(kind as u8, parts, &[]), parts, fd)
}

/// [`write_all`], with `fd` sent along with the header's first bytes.
fn write_all_with_fd(
    out: &mut impl SendFd,
    header: &[u8],
    parts: &[&[u8]],
    fd: &Descriptor,
) -> io::Result<()> {
    let sent = loop {
        match out.send_fd(header, fd) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            sent => break sent?,
        }
    };
    write_all(out, &header[sent..], parts)
}

/// A frame's 9-byte header, for a body made of `parts` then `more`.
fn frame_header(kind: u8, parts: &[&[u8]], more: &[&[u8]]) -> [u8; 9] {
    let body = parts.iter().chain(more).map(|part| part.len() as u64);
    let len = 1 + body.sum::<u64>();
    let mut header = [0_u8; 9];
    header[..8].copy_from_slice(&len.to_le_bytes());
    header[8] = kind;
    header
}

/// Writes one frame: its header, then the body's parts, in vectored writes
/// straight from where the parts lie: no copy, no allocation.
pub(crate) fn write_frame(out: &mut impl Write, kind: Kind, parts: &[&[u8]]) -> io::Result<()> {
    write_all(out, &frame_header(kind as u8, parts, &[]), parts)
}

/// Appends one frame to `out`, to be written with others in one call: a
/// task that does not lend the arena (another is in flight), so all its
/// bytes are in the frame.
pub(crate) fn stage_frame(out: &mut Vec<u8>, kind: Kind, parts: &[&[u8]]) {
    out.extend_from_slice(&frame_header(kind as u8, parts, &[]));
    parts.iter().for_each(|part| out.extend_from_slice(part));
}

/// Writes all of `bytes` (staged frames).
pub(crate) fn write_staged(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    write_all(out, bytes, &[])
}

/// Writes `header`, then `parts`, in vectored writes.
fn write_all(out: &mut impl Write, header: &[u8], parts: &[&[u8]]) -> io::Result<()> {
    assert!(parts.len() <= MAX_PARTS, "a frame of {} parts", parts.len());
    let mut slices = [IoSlice::new(&[]); MAX_PARTS + 1];
    slices[0] = IoSlice::new(header);
    let mut used = 1;
    for part in parts.iter().filter(|part| !part.is_empty()) {
        slices[used] = IoSlice::new(part);
        used += 1;
    }
    let mut slices = &mut slices[..used];
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    out.flush()
}

/// How much of a frame's claimed length is reserved before its bytes arrive.
/// Larger frames grow as their bytes come (doubling, so at most twice what
/// arrived is ever reserved): a corrupt or hostile length costs at most this
/// much address space, and a 64 MiB argument still lands in one reservation.
/// The fuzzer uses a small one, to go through the growth on small inputs and
/// not spend its time mapping 256 MiB for every absurd length.
const RESERVE_AHEAD: usize = if cfg!(fuzzing) { 1 << 10 } else { 256 << 20 };

/// Reads one frame into `body` (reusing its memory) and returns its kind.
/// A frame that refers to an arena is refused: see [`read_message`].
pub(crate) fn read_frame(input: &mut impl Read, body: &mut Vec<u8>) -> Result<Kind, FrameError> {
    match read_frame_reserving(input, body, RESERVE_AHEAD)? {
        (kind, 0) => Ok(kind),
        _ => Err(malformed("an arena frame where none may be")),
    }
}

/// What [`read_message`] read: the message's kind, whether it lent the
/// arena, and how many of its last bytes it left at the start of the arena
/// (0: none), to decode there (see [`Arena::view`]).
pub(crate) struct Received {
    pub(crate) kind: Kind,
    pub(crate) lent: bool,
    pub(crate) in_arena: usize,
}

/// Reads one message written by [`write_message`] or [`stage_frame`]: the
/// frame into `body`; the bytes it left in the arena stay there (see
/// [`Received`]). A new arena handed over replaces `arena`.
pub(crate) fn read_message<R: ReceiveFd>(
    input: &mut BufReader<R>,
    body: &mut Vec<u8>,
    arena: &mut Option<Arena>,
) -> Result<Received, FrameError> {
    let (kind, flags) = read_frame_reserving(input, body, RESERVE_AHEAD)?;
    let lent = flags & LENT != 0;
    if flags & !LENT == 0 {
        return Ok(Received {
            kind,
            lent,
            in_arena: 0,
        });
    }
    let len = (body.first_chunk::<8>())
        .filter(|_| flags & IN_ARENA != 0 && (lent || kind != Kind::Task))
        .and_then(|len| usize::try_from(u64::from_le_bytes(*len)).ok())
        .ok_or_else(|| malformed("a bad arena frame"))?;
    body.drain(..8);
    if flags & NEW_ARENA != 0 {
        let fd = (input.get_mut().received_fd())
            .ok_or_else(|| malformed("a frame announced an arena that did not come with it"))?;
        *arena = None;
        *arena = Some(Arena::adopt(fd).map_err(|error| {
            malformed(format!(
                "the arena handed over is larger than the memory that could be mapped for it: \
                 {error}"
            ))
        })?);
    }
    let arena = (arena.as_ref())
        .ok_or_else(|| malformed("a frame refers to an arena never handed over"))?;
    if len > arena.len() {
        return Err(malformed(format!(
            "a frame claims {len} bytes in an arena of {}",
            arena.len()
        )));
    }
    Ok(Received {
        kind,
        lent,
        in_arena: len,
    })
}

/// Reads one frame; returns its kind and the flags of its kind byte.
fn read_frame_reserving(
    input: &mut impl Read,
    body: &mut Vec<u8>,
    reserve_ahead: usize,
) -> Result<(Kind, u8), FrameError> {
    let mut header = [0_u8; 9];
    // A signal that stops and continues the process (SIGSTOP, SIGCONT)
    // interrupts a blocked read even with SA_RESTART; std's read_exact and
    // read_to_end retry that themselves, this first plain read must too.
    let first = loop {
        match input.read(&mut header[..1]) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            first => break first,
        }
    };
    match first {
        Ok(0) => return Err(FrameError::Closed),
        Ok(_) => input.read_exact(&mut header[1..])?,
        Err(error) => return Err(error.into()),
    }
    let len = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
    let flags = header[8] & (IN_ARENA | NEW_ARENA | LENT);
    let kind = Kind::from_byte(header[8] & !flags)
        .filter(|&kind| match kind {
            Kind::Task => true,
            Kind::Outcomes => flags & LENT == 0,
            _ => flags == 0,
        })
        .filter(|_| flags & NEW_ARENA == 0 || flags & IN_ARENA != 0)
        .ok_or_else(|| malformed(format!("unknown frame kind {}", header[8])))?;
    let body_len = len
        .checked_sub(1)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| malformed(format!("impossible frame length {len}")))?;
    body.clear();
    let mut goal = body_len.min(reserve_ahead);
    loop {
        body.try_reserve_exact(goal - body.len()).map_err(|_| {
            malformed(format!(
                "a frame of {body_len} bytes is larger than the memory that could be reserved for it"
            ))
        })?;
        input
            .by_ref()
            .take((goal - body.len()) as u64)
            .read_to_end(body)?;
        if body.len() < goal {
            return Err(malformed(format!(
                "the frame ended after {} of {body_len} bytes",
                body.len()
            )));
        }
        if goal == body_len {
            return Ok((kind, flags));
        }
        goal = goal.saturating_mul(2).min(body_len);
    }
}

/// Reads one frame and checks that it is of the `expected` kind.
pub(crate) fn expect_frame(
    input: &mut impl Read,
    body: &mut Vec<u8>,
    expected: Kind,
) -> Result<(), FrameError> {
    match read_frame(input, body)? {
        kind if kind == expected => Ok(()),
        kind => Err(malformed(format!(
            "expected a {expected:?} frame, got {kind:?}"
        ))),
    }
}
/// Runs `bytes` through every decoder of the wire protocol, as the fuzzer's one
/// entry point (`fuzz/fuzz_targets/wire.rs`): a stream of frames, each body
/// decoded as the side that receives that kind would decode it. Whatever
/// the bytes, this returns: every malformed input must be a clean error,
/// never a panic, an abort or an allocation the bytes do not justify.
#[cfg(fuzzing)]
pub fn fuzz(mut bytes: &[u8]) {
    let mut body = Vec::new();
    while let Ok(kind) = read_frame(&mut bytes, &mut body) {
        match kind {
            Kind::Hello => drop(Hello::decode(&body)),
            Kind::Welcome => drop(Welcome::decode(&body)),
            Kind::Ready => drop(decode_ready(&body)),
            Kind::Task => {
                // What a trampoline does with the arguments (the tag check
                // before it needs the pool's secret, which no input has).
                if let Ok((header, mut args)) = TaskHeader::decode(&body) {
                    for _ in 0..header.count.min(64) {
                        match codec::take::<(u64, String, Vec<u8>)>(args) {
                            Ok((_, rest)) => args = rest,
                            Err(_) => break,
                        }
                    }
                    let start = body.len() - args.len();
                    drop(codec::take_whole::<Vec<u8>>(&mut body.clone(), start));
                }
            }
            Kind::Outcomes => {
                drop(Answer::decode(&body));
                let count = body.first().map_or(0, |&n| usize::from(n));
                let rest = body.get(1..).unwrap_or_default();
                drop(codec::decode_outcomes::<u64>(rest, count));
                drop(codec::decode_outcomes::<String>(rest, count));
                drop(codec::decode_outcomes::<Vec<u8>>(rest, count));
            }
            // No shared memory comes with fuzzed bytes.
            Kind::Put => drop(crate::shared::accept_put(&mut body.clone(), None)),
            Kind::Release => drop(crate::shared::accept_release(&body)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: Kind, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, kind, &[body]).unwrap();
        out
    }

    #[test]
    fn frames_round_trip_and_reuse_the_buffer() {
        let bytes = [frame(Kind::Task, b"abc"), frame(Kind::Ready, b"")].concat();
        let mut input = &bytes[..];
        let mut body = Vec::new();
        assert_eq!(read_frame(&mut input, &mut body).unwrap(), Kind::Task);
        assert_eq!(body, b"abc");
        assert_eq!(read_frame(&mut input, &mut body).unwrap(), Kind::Ready);
        assert!(body.is_empty());
        assert!(matches!(
            read_frame(&mut input, &mut body),
            Err(FrameError::Closed)
        ));
    }

    /// Yields `Interrupted` before each read that would deliver data, as a
    /// read blocked through SIGSTOP and SIGCONT does.
    struct Interrupting<'a> {
        bytes: &'a [u8],
        interrupt_next: bool,
    }

    impl Read for Interrupting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt_next = !self.interrupt_next;
            if !self.interrupt_next {
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.bytes.read(buf)
        }
    }

    #[test]
    fn an_interrupted_read_is_retried_not_a_broken_channel() {
        // Caught by tests/process_faults.rs: a worker stopped and continued
        // while waiting for its next task took the interrupted read for a
        // failed channel and exited, failing a task it never ran.
        let bytes = [frame(Kind::Task, b"abc"), frame(Kind::Ready, b"")].concat();
        let mut input = Interrupting {
            bytes: &bytes,
            interrupt_next: true,
        };
        let mut body = Vec::new();
        assert_eq!(read_frame(&mut input, &mut body).unwrap(), Kind::Task);
        assert_eq!(body, b"abc");
        assert_eq!(read_frame(&mut input, &mut body).unwrap(), Kind::Ready);
        assert!(matches!(
            read_frame(&mut input, &mut body),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn a_truncated_frame_is_an_error() {
        let bytes = frame(Kind::Task, b"abcdef");
        let mut body = Vec::new();
        for cut in 1..bytes.len() {
            let result = read_frame(&mut &bytes[..cut], &mut body);
            assert!(
                matches!(result, Err(FrameError::Io(_) | FrameError::Malformed(_))),
                "cut at {cut}: {result:?}"
            );
        }
    }

    #[test]
    fn an_absurd_length_is_refused_not_trusted() {
        // Claims 16 EiB and sends nothing: refused after reserving at most
        // RESERVE_AHEAD, never the claimed length (which would abort).
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.push(Kind::Outcomes as u8);
        let result = read_frame(&mut &bytes[..], &mut Vec::new());
        assert!(matches!(result, Err(FrameError::Malformed(m)) if m.contains("ended after 0 of")));
        let zero = [0_u8; 9];
        assert!(matches!(
            read_frame(&mut &zero[..], &mut Vec::new()),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn a_frame_longer_than_the_reservation_grows_as_its_bytes_arrive() {
        let payload: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let bytes = frame(Kind::Task, &payload);
        let mut body = Vec::new();
        let (kind, _) = read_frame_reserving(&mut &bytes[..], &mut body, 7).unwrap();
        assert_eq!((kind, &body), (Kind::Task, &payload));
        // Cut anywhere in the body: an error that says how much arrived.
        let result = read_frame_reserving(&mut &bytes[..9 + 500], &mut body, 7);
        assert!(matches!(result, Err(FrameError::Malformed(m)) if m.contains("after 500 of 1000")));
    }

    #[test]
    fn unknown_kinds_are_refused() {
        let mut bytes = frame(Kind::Task, b"x");
        bytes[8] = 99;
        assert!(matches!(
            read_frame(&mut &bytes[..], &mut Vec::new()),
            Err(FrameError::Malformed(_))
        ));
    }
}
