//! Layer: remote. May use the crate's `Error` and `panic`; no transport.
//! The payload codec: task arguments and outcomes as bytes.
//!
//! Arguments and results are postcard. A `Vec<u8>` takes a fast path to the
//! same bytes (see [`byte_vec`]). Each outcome is a one-byte tag (a value, a
//! panic, a serialization failure) and its postcard body.

use std::any::Any;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::decode;
use crate::{Error, panic};

/// The `Vec<u8>` fast path's one test, shared by every place that takes it:
/// `slot` (holding a `T`, or to be filled with one) as a slot of `Vec<u8>`,
/// if `T` is `Vec<u8>`. Serde would move a byte vector one call per byte;
/// the fast path writes the same bytes postcard would, in one copy or none.
fn byte_vec<T: 'static>(slot: &mut Option<T>) -> Option<&mut Option<Vec<u8>>> {
    (slot as &mut dyn Any).downcast_mut()
}

/// [`byte_vec`] for a value that is only lent.
fn byte_vec_ref<T: 'static>(value: &T) -> Option<&Vec<u8>> {
    (value as &dyn Any).downcast_ref()
}

/// Serializes `value` onto the end of `out`: postcard, and for a `Vec<u8>`
/// the same bytes in one copy.
pub(crate) fn append<T: Serialize + 'static>(value: &T, out: &mut Vec<u8>) -> postcard::Result<()> {
    /// Lends a `Vec` to postcard, which wants to own an `Extend<u8>`.
    struct Tail<'a>(&'a mut Vec<u8>);
    impl Extend<u8> for Tail<'_> {
        fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
            self.0.extend(bytes);
        }
    }
    if let Some(bytes) = byte_vec_ref(value) {
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
    let mut slot = None;
    let Some(vector) = byte_vec::<T>(&mut slot) else {
        return postcard::take_from_bytes(bytes);
    };
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
    *vector = Some(copy);
    Ok((slot.expect("just filled"), &rest[len..]))
}

/// [`take`] for a task's argument in the serving process: its `Deserialize`
/// is user code, so a panic in it (or in the `Drop` of a part it had made)
/// is caught, and is that task's error like any other failure to decode.
pub(crate) fn take_arg<A: DeserializeOwned + 'static>(args: &[u8]) -> Result<(A, &[u8]), String> {
    let reason = match panic::catch(|| take::<A>(args)) {
        Ok(Ok(taken)) => return Ok(taken),
        Ok(Err(error)) => explain(&error),
        Err(panicked) => format!("its Deserialize impl panicked: {panicked}"),
    };
    Err(format!(
        "the task's argument could not be deserialized in the worker: {reason}"
    ))
}

/// If `T` is `Vec<u8>` and `buf[start..]` is exactly one such vector, takes
/// `buf` itself as the value: the bytes move down over the prefix in place,
/// with no new allocation. This is how a big byte argument reaches its task.
pub(crate) fn take_whole<T: 'static>(buf: &mut Vec<u8>, start: usize) -> Option<T> {
    let mut slot = None;
    let vector = byte_vec::<T>(&mut slot)?;
    let (len, prefix) = read_len(buf.get(start..)?)?;
    if start.checked_add(prefix)?.checked_add(len)? != buf.len() {
        return None;
    }
    buf.drain(..start + prefix);
    *vector = Some(std::mem::take(buf));
    slot
}

/// If `T` is `Vec<u8>` and `args` is exactly the length prefix of `tail`'s
/// bytes (a lone byte vector whose bytes travelled apart from its message,
/// as a transport may carry them), takes `tail` itself as the value.
pub(crate) fn take_tail<T: 'static>(args: &[u8], tail: &mut Vec<u8>) -> Option<T> {
    let mut slot = None;
    let vector = byte_vec::<T>(&mut slot)?;
    let (len, prefix) = read_len(args)?;
    if prefix != args.len() || len != tail.len() {
        return None;
    }
    *vector = Some(std::mem::take(tail));
    slot
}

/// Encodes a lone task's argument: the bytes to send after the task's
/// header, and a tail to send after them. A `Vec<u8>` argument is its own
/// tail, sent as it is behind postcard's length prefix: no copy at all.
pub(crate) fn encode_lone<A: Serialize + 'static>(arg: A) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let mut args = Vec::new();
    let mut slot = Some(arg);
    if let Some(tail) = byte_vec(&mut slot).and_then(Option::take) {
        append_len(tail.len(), &mut args);
        return Ok((args, tail));
    }
    encode_arg(
        slot.as_ref().expect("only a byte vector is taken"),
        &mut args,
    )?;
    Ok((args, Vec::new()))
}

/// Serializes one argument, turning a failure (or a panic in a `Serialize`
/// impl) into that task's error.
pub(crate) fn encode_arg<A: Serialize + 'static>(arg: &A, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    let result = match panic::catch(|| append(arg, out)) {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(error)) => explain(&error),
        Err(panic) => panic.to_string(),
    };
    out.truncate(start);
    Err(Error::Serialization(format!(
        "the task's argument could not be serialized: {result}"
    )))
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
/// little-endian, so that a value the front end cannot decode fails alone
/// and the outcomes after it still decode), its panic, or why the value
/// could not be serialized.
pub(crate) fn encode_outcome<R: Serialize + 'static>(outcome: Result<R, Error>, out: &mut Vec<u8>) {
    let start = out.len();
    let failure = match outcome {
        Ok(value) => {
            out.push(VALUE);
            out.extend_from_slice(&[0; 8]);
            let appended = panic::catch(|| append(&value, out));
            // The result's Drop is user code: its panic must not end the
            // serving side, and the value has been sent by now.
            panic::drop_caught(value);
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
        Err(Error::Panicked {
            message,
            location,
            backtrace,
        }) => {
            out.push(PANICKED);
            append(&(message, location, backtrace), out).expect("strings serialize");
            return;
        }
        Err(Error::Serialization(message)) => message,
        Err(other) => other.to_string(),
    };
    out.truncate(start);
    out.push(UNSERIALIZABLE);
    append(&failure, out).expect("strings serialize");
}

/// The outcomes of the last `left` items of a task message, from the one
/// whose argument did not decode (for `reason`) on: the ones after it are
/// not run, since their bytes cannot be found past bytes that did not
/// decode. The outcomes before it stand.
pub(crate) fn encode_undecoded(reason: String, left: u32, out: &mut Vec<u8>) {
    encode_outcome::<()>(Err(Error::Serialization(reason)), out);
    for _ in 1..left {
        let skipped = "not run: the argument of an item before it in its chunk could not be \
                       deserialized in the worker, and the arguments after that one cannot be \
                       found";
        encode_outcome::<()>(Err(Error::Serialization(skipped.into())), out);
    }
}

/// [`encode_outcome`] for the one outcome of a lone task: a `Vec<u8>` value
/// leaves its bytes apart, in `tail`, to be sent right after `out` (the
/// same bytes on the wire, with no copy here). `tail` must be empty.
pub(crate) fn encode_lone_outcome<R: Serialize + 'static>(
    outcome: Result<R, Error>,
    out: &mut Vec<u8>,
    tail: &mut Vec<u8>,
) {
    let value = match outcome {
        Ok(value) => value,
        Err(error) => return encode_outcome::<R>(Err(error), out),
    };
    let mut slot = Some(value);
    let Some(bytes) = byte_vec(&mut slot).and_then(Option::take) else {
        return encode_outcome(Ok(slot.expect("only a byte vector is taken")), out);
    };
    out.push(VALUE);
    let len_at = out.len();
    out.extend_from_slice(&[0; 8]);
    append_len(bytes.len(), out);
    let len = (out.len() - len_at - 8 + bytes.len()) as u64;
    out[len_at..len_at + 8].copy_from_slice(&len.to_le_bytes());
    *tail = bytes;
}

/// [`decode_outcomes`] of outcomes whose last bytes came apart, in `tail`
/// (see [`encode_lone_outcome`]): a lone `Vec<u8>` result takes `tail`
/// itself, with no copy; anything else is decoded from the bytes joined.
pub(crate) fn decode_outcomes_with_tail<R: DeserializeOwned + 'static>(
    bytes: &[u8],
    mut tail: Vec<u8>,
    count: usize,
) -> Result<Vec<Result<R, Error>>, Error> {
    if tail.is_empty() {
        return decode_outcomes(bytes, count);
    }
    if count == 1
        && let Some((&VALUE, rest)) = bytes.split_first()
        && let Some((len, prefix)) = rest.split_first_chunk::<8>()
        && u64::from_le_bytes(*len) == (prefix.len() + tail.len()) as u64
        && let Some(value) = take_tail::<R>(prefix, &mut tail)
    {
        return Ok(vec![Ok(value)]);
    }
    let mut whole = Vec::new();
    whole
        .try_reserve_exact(bytes.len() + tail.len())
        .map_err(|_| Error::Protocol(format!("no memory for {} outcome bytes", tail.len())))?;
    whole.extend_from_slice(bytes);
    whole.extend_from_slice(&tail);
    decode_outcomes(&whole, count)
}

/// Why a byte vector of `len` bytes could not be received.
fn no_memory(len: usize) -> String {
    format!("this process has no memory left for its {len} bytes")
}

/// The error of a lone task whose result of `len` bytes arrived whole, but
/// for which this process has no memory: that task's, not the channel's.
pub(crate) fn no_memory_for_result(len: usize) -> Error {
    Error::Serialization(format!(
        "the task's result could not be deserialized in the parent: {}",
        no_memory(len)
    ))
}

/// Decodes `count` outcomes written by [`encode_outcome`]. A value that
/// does not decode (its `Deserialize` fails, panics, or nests too deep) is
/// that item's [`Error::Serialization`]; `Err` means the bytes themselves
/// are not outcomes: a broken protocol.
pub(crate) fn decode_outcomes<R: DeserializeOwned + 'static>(
    bytes: &[u8],
    count: usize,
) -> Result<Vec<Result<R, Error>>, Error> {
    let mut outcomes = Vec::new();
    outcomes
        .try_reserve_exact(count.min(bytes.len()))
        .map_err(|_| Error::Protocol(format!("no memory for {count} outcomes")))?;
    match decode_outcomes_into(bytes, count, &mut outcomes) {
        Ok(()) => Ok(outcomes),
        Err(error) => {
            // The values decoded before the break are dropped here, on the
            // transport's thread: their Drop is user code.
            panic::drop_caught(outcomes);
            Err(error)
        }
    }
}

/// The loop of [`decode_outcomes`], pushing onto `outcomes`.
fn decode_outcomes_into<R: DeserializeOwned + 'static>(
    mut bytes: &[u8],
    count: usize,
    outcomes: &mut Vec<Result<R, Error>>,
) -> Result<(), Error> {
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
    for _ in 0..count {
        let (&tag, rest) = bytes
            .split_first()
            .ok_or_else(|| Error::Protocol("the worker sent fewer outcomes than tasks".into()))?;
        let (outcome, rest) = match tag {
            VALUE => {
                let len = (rest.get(..8))
                    .map(|len| u64::from_le_bytes(len.try_into().expect("8 bytes")))
                    .and_then(|len| usize::try_from(len).ok())
                    .filter(|&len| len <= rest.len() - 8)
                    .ok_or_else(|| {
                        Error::Protocol("a task's result is longer than its frame".into())
                    })?;
                let (value, rest) = rest[8..].split_at(len);
                let outcome = byte_vector::<R>(value)
                    .unwrap_or_else(|| decode::value::<R>(value))
                    .map_err(|reason| {
                        Error::Serialization(format!(
                            "the task's result could not be deserialized in the parent: {reason}"
                        ))
                    });
                (outcome, rest)
            }
            PANICKED => {
                let ((message, location, backtrace), rest) =
                    field::<(String, Option<String>, Option<String>)>(rest, "a panic report")?;
                let panicked = Error::Panicked {
                    message,
                    location,
                    backtrace,
                };
                (Err(panicked), rest)
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
    Ok(())
}

/// If `R` is `Vec<u8>`: the result that fills `value`, its bytes copied
/// into memory asked for first, so that one too big for this process is an
/// error. Plain bytes run no user code: no guard needed.
fn byte_vector<R: 'static>(value: &[u8]) -> Option<Result<R, String>> {
    let mut slot = None;
    let vector = byte_vec::<R>(&mut slot)?;
    let Some((len, _)) =
        read_len(value).filter(|&(len, prefix)| prefix.checked_add(len) == Some(value.len()))
    else {
        return Some(Err("the bytes are not one Vec<u8>".into()));
    };
    let mut copy = Vec::new();
    if copy.try_reserve_exact(len).is_err() {
        return Some(Err(no_memory(len)));
    }
    copy.extend_from_slice(&value[value.len() - len..]);
    *vector = Some(copy);
    slot.map(Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip() {
        let mut out = Vec::new();
        encode_outcome::<String>(Ok("ok".into()), &mut out);
        encode_outcome::<String>(
            Err(Error::Panicked {
                message: "boom".into(),
                location: Some("f.rs:1:1".into()),
                backtrace: Some("   0: f".into()),
            }),
            &mut out,
        );
        let decoded = decode_outcomes::<String>(&out, 2).unwrap();
        assert_eq!(decoded[0], Ok("ok".into()));
        assert!(
            matches!(&decoded[1], Err(Error::Panicked { message, backtrace: Some(trace), .. })
                if message == "boom" && trace == "   0: f")
        );
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
    /// A number whose `Drop` panics.
    #[derive(Debug, serde::Deserialize)]
    struct Bomb(#[allow(dead_code)] u8);

    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("Bomb's drop panics");
        }
    }

    #[test]
    fn values_nobody_sees_are_dropped_under_a_catch_in_the_parent() {
        // A value followed by bytes of no outcome: the protocol error
        // drops the value decoded before it, here on this thread.
        let mut out = Vec::new();
        encode_outcome::<u8>(Ok(7), &mut out);
        out.push(99);
        let error = decode_outcomes::<Bomb>(&out, 2).unwrap_err();
        assert!(matches!(error, Error::Protocol(_)), "{error:?}");
        // A value with bytes left over after it is of the wrong type, and
        // is dropped too.
        let mut out = Vec::new();
        encode_outcome::<(u8, u8)>(Ok((7, 8)), &mut out);
        let decoded = decode_outcomes::<Bomb>(&out, 1).unwrap();
        assert!(
            matches!(&decoded[0], Err(Error::Serialization(m)) if m.contains("left over")),
            "{decoded:?}"
        );
    }
}
