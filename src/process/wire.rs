//! The wire protocol between the pool and a worker process.
//!
//! Every message is a frame: an 8-byte little-endian length, one kind byte,
//! then the body (length counts the kind byte and the body). Bodies are
//! fixed little-endian layouts, except task arguments and results, which
//! are postcard.
//!
//! ```text
//! worker                              pool
//!   ── Hello   (magic, version, fingerprint) ──▶   checks the fingerprint
//!   ◀── Welcome (magic, version, fingerprint, secret, initializer?) ──
//!   checks the fingerprint, runs the initializer
//!   ── Ready   (ok, or the initializer's error) ──▶
//!   ◀── Task    (call, tag, count, arguments) ──
//!   ── Outcomes (one per argument) ──▶
//!   ...                         end of file: the worker exits
//! ```
//!
//! Decoding never trusts a length: at most [`RESERVE_AHEAD`] is reserved
//! before a frame's bytes arrive, a frame longer than the memory that can be
//! reserved for it is an error, not an abort, and every read is bounds
//! checked. Nothing here is `unsafe`. `fuzz/` drives every decoder here with
//! arbitrary bytes through [`fuzz`].

use std::any::{Any, TypeId};
use std::io::{self, IoSlice, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::call::{Call, Fingerprint, Secret};
use super::decode;
use crate::Error;

/// Bumped whenever a message's layout changes.
pub(crate) const VERSION: u16 = 2;

const MAGIC: [u8; 4] = *b"CFut";

/// The kinds of frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Hello = 1,
    Welcome = 2,
    Ready = 3,
    Task = 4,
    Outcomes = 5,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        [
            Kind::Hello,
            Kind::Welcome,
            Kind::Ready,
            Kind::Task,
            Kind::Outcomes,
        ]
        .into_iter()
        .find(|kind| *kind as u8 == byte)
    }
}

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The other side closed the channel (cleanly, between frames).
    Closed,
    /// The channel failed, or timed out.
    Io(io::Error),
    /// The bytes do not form a valid message.
    Malformed(String),
}

impl From<io::Error> for WireError {
    fn from(error: io::Error) -> Self {
        WireError::Io(error)
    }
}

impl WireError {
    /// This error as it reaches a task's future.
    pub(crate) fn into_error(self) -> Error {
        Error::Protocol(match self {
            WireError::Closed => "the worker closed the channel".to_owned(),
            WireError::Io(error) => format!("the channel to the worker failed: {error}"),
            WireError::Malformed(what) => what,
        })
    }
}

fn malformed(what: impl Into<String>) -> WireError {
    WireError::Malformed(what.into())
}

/// Writes one frame: its header, then the body's parts, without copying them.
pub(crate) fn write_frame(out: &mut impl Write, kind: Kind, parts: &[&[u8]]) -> io::Result<()> {
    let len = 1 + parts.iter().map(|part| part.len() as u64).sum::<u64>();
    let mut header = [0_u8; 9];
    header[..8].copy_from_slice(&len.to_le_bytes());
    header[8] = kind as u8;
    let mut slices: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
    slices.push(&header);
    slices.extend(parts.iter().copied().filter(|part| !part.is_empty()));
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let io: Vec<IoSlice<'_>> = slices.iter().map(|s| IoSlice::new(s)).collect();
        let mut written = match out.write_vectored(&io) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        while let Some(first) = slices.first_mut() {
            if written < first.len() {
                *first = &first[written..];
                break;
            }
            written -= first.len();
            slices = &mut slices[1..];
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
pub(crate) fn read_frame(input: &mut impl Read, body: &mut Vec<u8>) -> Result<Kind, WireError> {
    read_frame_reserving(input, body, RESERVE_AHEAD)
}

fn read_frame_reserving(
    input: &mut impl Read,
    body: &mut Vec<u8>,
    reserve_ahead: usize,
) -> Result<Kind, WireError> {
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
        Ok(0) => return Err(WireError::Closed),
        Ok(_) => input.read_exact(&mut header[1..])?,
        Err(error) => return Err(error.into()),
    }
    let len = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
    let kind = Kind::from_byte(header[8])
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
            return Ok(kind);
        }
        goal = goal.saturating_mul(2).min(body_len);
    }
}

/// Reads one frame and checks that it is of the `expected` kind.
pub(crate) fn expect_frame(
    input: &mut impl Read,
    body: &mut Vec<u8>,
    expected: Kind,
) -> Result<(), WireError> {
    match read_frame(input, body)? {
        kind if kind == expected => Ok(()),
        kind => Err(malformed(format!(
            "expected a {expected:?} frame, got {kind:?}"
        ))),
    }
}

/// A bounds-checked reader over a frame's body.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(malformed("the frame is shorter than its fields"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(
            self.bytes(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(
            self.bytes(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.bytes(1)?[0])
    }

    fn preamble(&mut self) -> Result<(), WireError> {
        if self.bytes(4)? != MAGIC {
            return Err(malformed("not a concurrent-futures frame (bad magic)"));
        }
        let version = u16::from_le_bytes(self.bytes(2)?.try_into().expect("2 bytes"));
        if version != VERSION {
            return Err(malformed(format!(
                "protocol version {version}, expected {VERSION}"
            )));
        }
        Ok(())
    }

    fn fingerprint(&mut self) -> Result<Fingerprint, WireError> {
        let mut words = [0; 5];
        for word in &mut words {
            *word = self.u64()?;
        }
        Ok(Fingerprint(words))
    }

    fn end(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(malformed("the frame has trailing bytes"))
        }
    }
}

fn put_preamble(out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
}

fn put_fingerprint(out: &mut Vec<u8>, fingerprint: &Fingerprint) {
    for word in fingerprint.0 {
        out.extend_from_slice(&word.to_le_bytes());
    }
}

/// The worker's first words: who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) fingerprint: Fingerprint,
}

impl Hello {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(46);
        put_preamble(&mut out);
        put_fingerprint(&mut out, &self.fingerprint);
        out
    }

    pub(crate) fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut fields = Fields(body);
        fields.preamble()?;
        let fingerprint = fields.fingerprint()?;
        fields.end()?;
        Ok(Hello { fingerprint })
    }
}

/// The pool's answer: who it is, the key for task tags, the initializer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Welcome {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) secret: Secret,
    pub(crate) initializer: Option<Call>,
}

impl Welcome {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        put_preamble(&mut out);
        put_fingerprint(&mut out, &self.fingerprint);
        for word in self.secret.0 {
            out.extend_from_slice(&word.to_le_bytes());
        }
        if let Some(call) = self.initializer {
            out.push(1);
            out.extend_from_slice(&call.trampoline.to_le_bytes());
            out.extend_from_slice(&call.function.to_le_bytes());
        } else {
            out.push(0);
        }
        out
    }

    pub(crate) fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut fields = Fields(body);
        fields.preamble()?;
        let fingerprint = fields.fingerprint()?;
        let secret = Secret([fields.u64()?, fields.u64()?]);
        let initializer = match fields.u8()? {
            0 => None,
            1 => Some(Call {
                trampoline: fields.u64()?,
                function: fields.u64()?,
            }),
            other => return Err(malformed(format!("bad initializer flag {other}"))),
        };
        fields.end()?;
        Ok(Welcome {
            fingerprint,
            secret,
            initializer,
        })
    }
}

/// The head of a task frame; the encoded arguments follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskHeader {
    pub(crate) call: Call,
    pub(crate) tag: u64,
    pub(crate) count: u32,
}

impl TaskHeader {
    pub(crate) const LEN: usize = 28;

    pub(crate) fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[..8].copy_from_slice(&self.call.trampoline.to_le_bytes());
        out[8..16].copy_from_slice(&self.call.function.to_le_bytes());
        out[16..24].copy_from_slice(&self.tag.to_le_bytes());
        out[24..].copy_from_slice(&self.count.to_le_bytes());
        out
    }

    /// Splits a task frame's body into its header and its arguments.
    pub(crate) fn decode(body: &[u8]) -> Result<(Self, &[u8]), WireError> {
        let mut fields = Fields(body);
        let header = TaskHeader {
            call: Call {
                trampoline: fields.u64()?,
                function: fields.u64()?,
            },
            tag: fields.u64()?,
            count: fields.u32()?,
        };
        Ok((header, fields.0))
    }
}

/// The `Ready` body: empty when the worker is ready, else why it is not.
pub(crate) fn decode_ready(body: &[u8]) -> Result<Result<(), String>, WireError> {
    if body.is_empty() {
        return Ok(Ok(()));
    }
    match std::str::from_utf8(body) {
        Ok(reason) => Ok(Err(reason.to_owned())),
        Err(_) => Err(malformed("the worker's ready message is not UTF-8")),
    }
}

/// Serializes `value` onto the end of `out`.
///
/// A `Vec<u8>` skips serde's one-call-per-byte path: its bytes are copied
/// whole, after the same varint length postcard would write, so the wire
/// format is postcard's either way.
pub(crate) fn append<T: Serialize + 'static>(value: &T, out: &mut Vec<u8>) -> postcard::Result<()> {
    /// Lends a `Vec` to postcard, which wants to own an `Extend<u8>`.
    struct Tail<'a>(&'a mut Vec<u8>);
    impl Extend<u8> for Tail<'_> {
        fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
            self.0.extend(bytes);
        }
    }
    if let Some(bytes) = (value as &dyn Any).downcast_ref::<Vec<u8>>() {
        append_len(bytes.len(), out);
        out.extend_from_slice(bytes);
        return Ok(());
    }
    postcard::to_extend(value, Tail(out)).map(drop)
}

/// A postcard error as text for [`Error::Serialization`], with the fix when
/// the cause is a serde feature postcard cannot carry (see `Payload`'s docs).
pub(crate) fn explain(error: &postcard::Error) -> String {
    match error {
        postcard::Error::WontImplement => format!(
            "{error}: the type deserializes with `deserialize_any`, which needs a self-describing \
             format, and postcard is not one; `#[serde(untagged)]` and `#[serde(tag = \"...\")]` \
             enums, `#[serde(flatten)]` and `serde_json::Value` do this. Use an externally tagged \
             enum (serde's default), write the flattened fields out, or send JSON as a `String`; \
             the thread pool, which does not serialize, takes such types as they are"
        ),
        postcard::Error::SerializeSeqLengthUnknown => format!(
            "{error}: the type serializes a map or sequence without saying its length first, as \
             `#[serde(flatten)]` does, and postcard needs the length; write the flattened fields \
             out, or collect into a `Vec` or map first"
        ),
        other => other.to_string(),
    }
}

/// Appends a length as postcard does: a varint, seven bits a byte.
pub(crate) fn append_len(mut len: usize, out: &mut Vec<u8>) {
    while len >= 0x80 {
        out.push(len as u8 | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
}

/// Deserializes a `T` from the front of `bytes`, returning the rest; the
/// inverse of [`append`], with the same fast path for `Vec<u8>`.
pub(crate) fn take<T: DeserializeOwned + 'static>(bytes: &[u8]) -> postcard::Result<(T, &[u8])> {
    if TypeId::of::<T>() != TypeId::of::<Vec<u8>>() {
        return postcard::take_from_bytes(bytes);
    }
    let (len, prefix) = read_len(bytes).ok_or(postcard::Error::DeserializeBadVarint)?;
    let rest = &bytes[prefix..];
    if rest.len() < len {
        return Err(postcard::Error::DeserializeUnexpectedEnd);
    }
    // The length came from the other side: ask for the memory, so that a
    // value too big to hold a second copy of is an error, not an abort.
    let mut copy = Vec::new();
    copy.try_reserve_exact(len)
        .map_err(|_| postcard::Error::DeserializeUnexpectedEnd)?;
    copy.extend_from_slice(&rest[..len]);
    let value: Box<dyn Any> = Box::new(copy);
    let value = value.downcast::<T>().expect("T is Vec<u8>");
    Ok((*value, &rest[len..]))
}

/// If `T` is `Vec<u8>` and `buf[start..]` is exactly one such vector, takes
/// `buf` itself as the value: the bytes move down over the prefix in place,
/// with no new allocation. This is how a big byte argument reaches its task.
pub(crate) fn take_whole<T: 'static>(buf: &mut Vec<u8>, start: usize) -> Option<T> {
    if TypeId::of::<T>() != TypeId::of::<Vec<u8>>() {
        return None;
    }
    let (len, prefix) = read_len(buf.get(start..)?)?;
    if start.checked_add(prefix)?.checked_add(len)? != buf.len() {
        return None;
    }
    buf.drain(..start + prefix);
    let value: Box<dyn Any> = Box::new(std::mem::take(buf));
    value.downcast::<T>().ok().map(|value| *value)
}

/// Reads a postcard varint length: the length and how many bytes it took.
fn read_len(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0_usize;
    for (index, &byte) in bytes.iter().enumerate().take(10) {
        len |= usize::from(byte & 0x7F).checked_shl(7 * index as u32)?;
        if byte < 0x80 {
            return Some((len, index + 1));
        }
    }
    None
}

const VALUE: u8 = 0;
const PANICKED: u8 = 1;
const UNSERIALIZABLE: u8 = 2;

/// Appends one task's outcome: its value (after its length, as 8 bytes
/// little-endian, so that a value the parent cannot decode fails alone and
/// the outcomes after it still decode), its panic, or why the value could
/// not be serialized.
pub(crate) fn encode_outcome<R: Serialize + 'static>(outcome: Result<R, Error>, out: &mut Vec<u8>) {
    let start = out.len();
    let failure = match outcome {
        Ok(value) => {
            out.push(VALUE);
            out.extend_from_slice(&[0; 8]);
            let appended = crate::panic::catch(|| append(&value, out));
            // The result's Drop is user code: its panic must not end the
            // worker, and the value has been sent by now.
            let _ = crate::panic::catch(move || drop(value));
            match appended {
                Ok(Ok(())) => {
                    let len = (out.len() - start - 9) as u64;
                    out[start + 1..start + 9].copy_from_slice(&len.to_le_bytes());
                    return;
                }
                Ok(Err(error)) => format!(
                    "the task's result could not be serialized: {}",
                    explain(&error)
                ),
                Err(panic) => format!("the task's result could not be serialized: {panic}"),
            }
        }
        Err(Error::Panicked { message, location }) => {
            out.push(PANICKED);
            append(&(message, location), out).expect("strings serialize");
            return;
        }
        Err(Error::Serialization(message)) => message,
        Err(other) => other.to_string(),
    };
    out.truncate(start);
    out.push(UNSERIALIZABLE);
    append(&failure, out).expect("strings serialize");
}

/// Decodes `count` outcomes written by [`encode_outcome`]. A value that
/// does not decode (its `Deserialize` fails, panics, or nests too deep) is
/// that item's [`Error::Serialization`]; `Err` means the bytes themselves
/// are not outcomes: a broken protocol.
pub(crate) fn decode_outcomes<R: DeserializeOwned + 'static>(
    mut bytes: &[u8],
    count: usize,
) -> Result<Vec<Result<R, Error>>, Error> {
    fn field<'a, T: DeserializeOwned + 'static>(
        bytes: &'a [u8],
        what: &str,
    ) -> Result<(T, &'a [u8]), Error> {
        take(bytes).map_err(|error| match error {
            // The type, not the bytes: it cannot come out of postcard at all.
            postcard::Error::WontImplement => Error::Serialization(format!(
                "{what} could not be deserialized: {}",
                explain(&error)
            )),
            _ => Error::Protocol(format!("{what} did not decode: {error}")),
        })
    }
    let mut outcomes = Vec::new();
    outcomes
        .try_reserve_exact(count.min(bytes.len()))
        .map_err(|_| Error::Protocol(format!("no memory for {count} outcomes")))?;
    for _ in 0..count {
        let (&tag, rest) = bytes
            .split_first()
            .ok_or_else(|| Error::Protocol("the worker sent fewer outcomes than tasks".into()))?;
        let (outcome, rest) = match tag {
            VALUE => {
                let mut fields = Fields(rest);
                let len = fields
                    .u64()
                    .ok()
                    .and_then(|len| usize::try_from(len).ok())
                    .filter(|&len| len <= fields.0.len())
                    .ok_or_else(|| {
                        Error::Protocol("a task's result is longer than its frame".into())
                    })?;
                let (value, rest) = fields.0.split_at(len);
                let outcome = if TypeId::of::<R>() == TypeId::of::<Vec<u8>>() {
                    // Plain bytes run no user code: the fast path.
                    byte_vector::<R>(value)
                } else {
                    decode::value::<R>(value)
                };
                let outcome = outcome.map_err(|reason| {
                    Error::Serialization(format!(
                        "the task's result could not be deserialized in the parent: {reason}"
                    ))
                });
                (outcome, rest)
            }
            PANICKED => {
                let ((message, location), rest) =
                    field::<(String, Option<String>)>(rest, "a panic report")?;
                (Err(Error::Panicked { message, location }), rest)
            }
            UNSERIALIZABLE => {
                let (message, rest) = field::<String>(rest, "a serialization report")?;
                (Err(Error::Serialization(message)), rest)
            }
            other => return Err(Error::Protocol(format!("unknown outcome tag {other}"))),
        };
        outcomes.push(outcome);
        bytes = rest;
    }
    if !bytes.is_empty() {
        return Err(Error::Protocol(
            "the worker sent more outcome bytes than tasks".into(),
        ));
    }
    Ok(outcomes)
}

/// A `Vec<u8>` result that fills `value`: its bytes, copied into memory
/// asked for first, so that one too big for this process is an error.
fn byte_vector<R: 'static>(value: &[u8]) -> Result<R, String> {
    let (len, prefix) = read_len(value)
        .filter(|&(len, prefix)| prefix.checked_add(len) == Some(value.len()))
        .ok_or("the bytes are not one Vec<u8>")?;
    let mut copy = Vec::new();
    copy.try_reserve_exact(len)
        .map_err(|_| format!("this process has no memory left for its {len} bytes"))?;
    copy.extend_from_slice(&value[prefix..]);
    let copy: Box<dyn Any> = Box::new(copy);
    Ok(*copy.downcast::<R>().expect("R is Vec<u8>"))
}

/// Runs `bytes` through every decoder in this module, as the fuzzer's one
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
                        match take::<(u64, String, Vec<u8>)>(args) {
                            Ok((_, rest)) => args = rest,
                            Err(_) => break,
                        }
                    }
                    let start = body.len() - args.len();
                    drop(take_whole::<Vec<u8>>(&mut body.clone(), start));
                }
            }
            Kind::Outcomes => {
                let count = body.first().map_or(0, |&n| usize::from(n));
                let rest = body.get(1..).unwrap_or_default();
                drop(decode_outcomes::<u64>(rest, count));
                drop(decode_outcomes::<String>(rest, count));
                drop(decode_outcomes::<Vec<u8>>(rest, count));
            }
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
            Err(WireError::Closed)
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
            Err(WireError::Closed)
        ));
    }

    #[test]
    fn a_truncated_frame_is_an_error() {
        let bytes = frame(Kind::Task, b"abcdef");
        let mut body = Vec::new();
        for cut in 1..bytes.len() {
            let result = read_frame(&mut &bytes[..cut], &mut body);
            assert!(
                matches!(result, Err(WireError::Io(_) | WireError::Malformed(_))),
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
        assert!(matches!(result, Err(WireError::Malformed(m)) if m.contains("ended after 0 of")));
        let zero = [0_u8; 9];
        assert!(matches!(
            read_frame(&mut &zero[..], &mut Vec::new()),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn a_frame_longer_than_the_reservation_grows_as_its_bytes_arrive() {
        let payload: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let bytes = frame(Kind::Task, &payload);
        let mut body = Vec::new();
        let kind = read_frame_reserving(&mut &bytes[..], &mut body, 7).unwrap();
        assert_eq!((kind, &body), (Kind::Task, &payload));
        // Cut anywhere in the body: an error that says how much arrived.
        let result = read_frame_reserving(&mut &bytes[..9 + 500], &mut body, 7);
        assert!(matches!(result, Err(WireError::Malformed(m)) if m.contains("after 500 of 1000")));
    }

    #[test]
    fn unknown_kinds_are_refused() {
        let mut bytes = frame(Kind::Task, b"x");
        bytes[8] = 99;
        assert!(matches!(
            read_frame(&mut &bytes[..], &mut Vec::new()),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn handshake_messages_round_trip() {
        let fingerprint = Fingerprint([1, 2, 3, 4, 5]);
        let hello = Hello { fingerprint };
        assert_eq!(Hello::decode(&hello.encode()).unwrap(), hello);
        let welcome = Welcome {
            fingerprint,
            secret: Secret([7, 8]),
            initializer: Some(Call {
                trampoline: 9,
                function: 10,
            }),
        };
        assert_eq!(Welcome::decode(&welcome.encode()).unwrap(), welcome);
        let header = TaskHeader {
            call: Call {
                trampoline: 1,
                function: 2,
            },
            tag: 3,
            count: 4,
        };
        let body = [&header.encode()[..], b"args"].concat();
        assert_eq!(TaskHeader::decode(&body).unwrap(), (header, &b"args"[..]));
    }

    #[test]
    fn handshakes_check_magic_version_and_length() {
        let good = Hello {
            fingerprint: Fingerprint([0; 5]),
        }
        .encode();
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        assert!(Hello::decode(&bad_magic).is_err());
        let mut bad_version = good.clone();
        bad_version[4] = 0xFF;
        assert!(
            matches!(Hello::decode(&bad_version), Err(WireError::Malformed(m)) if m.contains("version"))
        );
        for cut in 0..good.len() {
            assert!(Hello::decode(&good[..cut]).is_err());
        }
        assert!(Hello::decode(&[&good[..], b"!"].concat()).is_err());
    }

    #[test]
    fn outcomes_round_trip() {
        let mut out = Vec::new();
        encode_outcome::<String>(Ok("ok".into()), &mut out);
        encode_outcome::<String>(
            Err(Error::Panicked {
                message: "boom".into(),
                location: Some("f.rs:1:1".into()),
            }),
            &mut out,
        );
        let decoded = decode_outcomes::<String>(&out, 2).unwrap();
        assert_eq!(decoded[0], Ok("ok".into()));
        assert!(matches!(&decoded[1], Err(Error::Panicked { message, .. }) if message == "boom"));
        assert!(decode_outcomes::<String>(&out, 3).is_err(), "too few");
        assert!(
            decode_outcomes::<String>(&out, 1).is_err(),
            "too many bytes"
        );
        assert!(
            decode_outcomes::<u8>(&[VALUE], 1).is_err(),
            "truncated value"
        );
        // A value of the wrong shape fails alone; the next still decodes.
        let mut out = Vec::new();
        encode_outcome::<String>(Ok("not a number".into()), &mut out);
        encode_outcome::<u8>(Ok(5), &mut out);
        let decoded = decode_outcomes::<u8>(&out, 2).unwrap();
        assert!(
            matches!(&decoded[0], Err(Error::Serialization(m)) if m.contains("deserialized in the parent")),
            "{decoded:?}"
        );
        assert_eq!(decoded[1], Ok(5));
    }

    #[test]
    fn byte_vectors_take_the_fast_path_to_postcards_own_format() {
        for len in [0, 1, 127, 128, 300, 70_000] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut fast = Vec::new();
            append(&bytes, &mut fast).unwrap();
            assert_eq!(fast, postcard::to_allocvec(&bytes).unwrap(), "len {len}");
            fast.push(42);
            let (back, rest) = take::<Vec<u8>>(&fast).unwrap();
            assert_eq!((back, rest), (bytes, &[42][..]));
        }
        let truncated = [5, 1, 2];
        assert!(take::<Vec<u8>>(&truncated).is_err());
        assert!(take::<Vec<u8>>(&[0xFF; 11]).is_err());
    }

    #[test]
    fn an_unserializable_result_is_reported_not_sent() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no way"))
            }
        }
        let mut out = Vec::new();
        encode_outcome(Ok(Refuses), &mut out);
        let decoded = decode_outcomes::<()>(&out, 1).unwrap();
        // postcard keeps no text for custom errors, only their kind.
        assert!(
            matches!(&decoded[0], Err(Error::Serialization(m)) if m.contains("result could not be serialized")),
            "{decoded:?}"
        );
    }
}
