//! Layer: remote. May use: `error`, `panic`, `remote::decode`, and
//! libc (its `madvise`, on Linux). The payload codec: task arguments and
//! outcomes as bytes.
//!
//! Arguments and results are postcard. A vector of plain numbers (see
//! [`Plain`]: `Vec<u8>`, `Vec<f32>`, `Vec<f64>`) takes a fast path to the
//! same bytes: its length, then its memory as it is, in one copy (or none:
//! a lone task's vector travels apart from its message as a [`Bulk`]). Each
//! outcome is a one-byte tag (a value, a panic, a serialization failure)
//! and its postcard body.

use std::any::Any;
use std::mem::MaybeUninit;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::decode;
use crate::{Error, panic};

/// A number that postcard writes as its little-endian bytes, of a fixed
/// size, and that any bytes of that size are a valid value of (`u8`, `f32`,
/// `f64`): a vector of them is its length, then its memory as it is, on a
/// little-endian machine. Serde would move such a vector one call per
/// number, into memory grown as it goes; the fast path copies it at once.
trait Plain: Copy + 'static {
    /// Whether this machine's memory holds these numbers as postcard writes
    /// them (always for bytes; for the rest, on a little-endian machine).
    const FAST: bool = cfg!(target_endian = "little") || size_of::<Self>() == 1;
    /// The [`Bulk`] holding `vector`.
    fn bulk(vector: Vec<Self>) -> Bulk;
    /// The vector `bulk` holds, if it is a vector of these.
    fn in_bulk(bulk: &mut Bulk) -> Option<&mut Vec<Self>>;
}

/// Implements [`Plain`] for each number type, held by its [`Bulk`] variant.
macro_rules! plain {
    ($($number:ty => $variant:ident),*) => {$(
        impl Plain for $number {
            fn bulk(vector: Vec<Self>) -> Bulk {
                Bulk::$variant(vector)
            }
            fn in_bulk(bulk: &mut Bulk) -> Option<&mut Vec<Self>> {
                match bulk {
                    Bulk::$variant(vector) => Some(vector),
                    _ => None,
                }
            }
        }
    )*};
}

plain!(u8 => Bytes, f32 => F32, f64 => F64);

/// The memory of `values`, as bytes.
fn bytes_of<P: Plain>(values: &[P]) -> &[u8] {
    // SAFETY: `Plain` is implemented for u8, f32 and f64 alone: types
    // without padding, so every byte of the slice is initialized; u8 needs
    // no alignment, and the length is the slice's size in bytes.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), size_of_val(values)) }
}

/// The last part of a lone task's message, kept apart from the rest: a
/// vector of plain numbers, its argument or its result (the message ends
/// with the vector's length, and the vector's memory goes after it as it
/// is, see [`Plain`], with no copy here); or an argument whose encoding is
/// big, not encoded yet ([`Deferred`]).
#[derive(Debug)]
pub(crate) enum Bulk {
    Bytes(Vec<u8>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Deferred(Deferred),
}

impl Default for Bulk {
    fn default() -> Self {
        Bulk::Bytes(Vec::new())
    }
}

impl Bulk {
    /// The bytes to send after the message (none yet for a deferred
    /// argument: see [`Deferred`]).
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Bulk::Bytes(vector) => vector,
            Bulk::F32(vector) => bytes_of(vector),
            Bulk::F64(vector) => bytes_of(vector),
            Bulk::Deferred(_) => &[],
        }
    }

    /// How many bytes it sends: its bytes, or a deferred argument's
    /// encoding.
    pub(crate) fn len(&self) -> usize {
        match self {
            Bulk::Deferred(deferred) => deferred.size,
            bulk => bulk.bytes().len(),
        }
    }

    /// How many numbers it holds.
    fn count(&self) -> usize {
        match self {
            Bulk::Bytes(vector) => vector.len(),
            Bulk::F32(vector) => vector.len(),
            Bulk::F64(vector) => vector.len(),
            Bulk::Deferred(_) => 0,
        }
    }

    /// `slot`'s value, taken out, if it is a vector of plain numbers.
    fn take<T: 'static>(slot: &mut Option<T>) -> Option<Bulk> {
        fn take<T: 'static, P: Plain>(slot: &mut Option<T>) -> Option<Bulk> {
            let vector = (slot as &mut dyn Any).downcast_mut::<Option<Vec<P>>>()?;
            P::FAST.then(|| vector.take().map(P::bulk))?
        }
        take::<T, u8>(slot)
            .or_else(|| take::<T, f32>(slot))
            .or_else(|| take::<T, f64>(slot))
    }
}

/// If `T` is a vector of plain numbers: how many, and its memory.
fn plain_bytes<T: 'static>(value: &T) -> Option<(usize, &[u8])> {
    fn view<P: Plain>(value: &dyn Any) -> Option<(usize, &[u8])> {
        let vector = value.downcast_ref::<Vec<P>>().filter(|_| P::FAST)?;
        Some((vector.len(), bytes_of(vector)))
    }
    let value = value as &dyn Any;
    view::<u8>(value)
        .or_else(|| view::<f32>(value))
        .or_else(|| view::<f64>(value))
}

/// If `T` is a vector of plain numbers: the size of one.
fn plain_size<T: 'static>() -> Option<usize> {
    fn size<T: 'static, P: Plain>() -> Option<usize> {
        (P::FAST && std::any::TypeId::of::<T>() == std::any::TypeId::of::<Vec<P>>())
            .then_some(size_of::<P>())
    }
    size::<T, u8>()
        .or_else(size::<T, f32>)
        .or_else(size::<T, f64>)
}

/// If `T` is a vector of plain numbers: the one of `count` numbers whose
/// memory is `bytes` (exactly), copied out (see [`plain_vector`]).
fn plain_from<T: 'static>(
    count: usize,
    bytes: &[u8],
    reuse: &mut Bulk,
) -> Option<Result<T, String>> {
    fn fill<T: 'static, P: Plain>(
        slot: &mut Option<T>,
        count: usize,
        bytes: &[u8],
        reuse: &mut Bulk,
    ) -> Option<Result<(), String>> {
        let vector = (slot as &mut dyn Any)
            .downcast_mut::<Option<Vec<P>>>()
            .filter(|_| P::FAST)?;
        Some(plain_vector(count, bytes, reuse).map(|filled| *vector = Some(filled)))
    }
    let mut slot = None;
    let filled = fill::<T, u8>(&mut slot, count, bytes, reuse)
        .or_else(|| fill::<T, f32>(&mut slot, count, bytes, reuse))
        .or_else(|| fill::<T, f64>(&mut slot, count, bytes, reuse))?;
    Some(filled.map(|()| slot.expect("just filled")))
}

/// A vector of `count` numbers copied out of `bytes`, exactly their memory:
/// into `reuse`'s memory when it holds such a vector that `count` fills
/// snugly (at least seven eighths of its capacity: memory already faulted
/// in costs a copy, fresh memory also a page fault and the kernel's zeroing
/// of each page, more than the copy itself); otherwise into fresh memory,
/// asked for first, so that a count from the other side too big for this
/// process is an error, not an abort.
fn plain_vector<P: Plain>(count: usize, bytes: &[u8], reuse: &mut Bulk) -> Result<Vec<P>, String> {
    if count.checked_mul(size_of::<P>()) != Some(bytes.len()) {
        return Err(format!(
            "{} bytes are not a vector of {count} numbers",
            bytes.len()
        ));
    }
    let mut vector = match P::in_bulk(reuse) {
        Some(old) if count <= old.capacity() && count >= old.capacity() - old.capacity() / 8 => {
            let mut reused = std::mem::take(old);
            reused.clear();
            reused
        }
        _ => {
            let mut fresh = Vec::new();
            fresh
                .try_reserve_exact(count)
                .map_err(|_| no_memory(bytes.len()))?;
            advise_huge(fresh.spare_capacity_mut());
            fresh
        }
    };
    // SAFETY: the vector is empty with room for `count` numbers (its
    // capacity was checked or reserved), which are `bytes.len()` bytes
    // (checked); any bytes are a valid `P` (see `Plain`); `bytes` is a
    // message's or a transport's memory, never this vector's.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), vector.as_mut_ptr().cast(), bytes.len());
        vector.set_len(count);
    }
    Ok(vector)
}

/// Asks for transparent huge pages under a big fresh buffer, before its
/// first write: a 4 KiB page fault each costs more than the copy into it
/// (BENCHMARKS.md), and the system's policy may be `madvise`. Only a hint:
/// failing changes nothing; a no-op but on Linux.
fn advise_huge<T>(buffer: &mut [MaybeUninit<T>]) {
    #[cfg(target_os = "linux")]
    {
        /// How big a fresh buffer must be before it is worth huge pages.
        const HUGE: usize = 4 << 20;
        let len = size_of_val(buffer);
        if len < HUGE {
            return;
        }
        let page = 4096;
        let base = buffer.as_mut_ptr().cast::<u8>();
        let start = base.addr().next_multiple_of(page);
        let end = (base.addr() + len) / page * page;
        // SAFETY: `start..end` lies inside `buffer`, memory this process
        // owns through a `&mut`, page-aligned; MADV_HUGEPAGE changes how
        // the kernel backs those pages, never what they hold.
        unsafe {
            libc::madvise(
                base.with_addr(start).cast(),
                end - start,
                libc::MADV_HUGEPAGE,
            )
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buffer;
}

/// `slot` as a slot of `Vec<u8>`, if `T` is `Vec<u8>`: for [`take_whole`],
/// which makes a message's own buffer the value.
fn byte_vec<T: 'static>(slot: &mut Option<T>) -> Option<&mut Option<Vec<u8>>> {
    (slot as &mut dyn Any).downcast_mut()
}

/// postcard's output onto the end of a vector, a slice at a time, until
/// the vector would pass `cap` bytes (then `SerializeBufferFull`, as when
/// no memory is left); a vector that grows big gets huge pages
/// ([`advise_huge`]) under what it adds.
struct Growing<'a> {
    out: &'a mut Vec<u8>,
    cap: usize,
}

impl Growing<'_> {
    #[inline]
    fn make_room(&mut self, more: usize) -> postcard::Result<()> {
        if self.out.capacity() - self.out.len() >= more {
            return Ok(());
        }
        if self.out.len().saturating_add(more) > self.cap {
            return Err(postcard::Error::SerializeBufferFull);
        }
        (self.out.try_reserve(more)).map_err(|_| postcard::Error::SerializeBufferFull)?;
        advise_huge(self.out.spare_capacity_mut());
        Ok(())
    }
}

impl postcard::ser_flavors::Flavor for Growing<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.make_room(1)?;
        self.out.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.make_room(bytes.len())?;
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Serializes `value` onto the end of `out`: postcard, and for a vector of
/// plain numbers the same bytes in one copy.
pub(crate) fn append<T: Serialize + 'static>(value: &T, out: &mut Vec<u8>) -> postcard::Result<()> {
    if let Some((count, bytes)) = plain_bytes(value) {
        append_len(count, out);
        out.extend_from_slice(bytes);
        return Ok(());
    }
    postcard::serialize_with_flavor(
        value,
        Growing {
            out,
            cap: usize::MAX,
        },
    )
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
/// inverse of [`append`], with the same fast path for plain vectors.
pub(crate) fn take<T: DeserializeOwned + 'static>(bytes: &[u8]) -> postcard::Result<(T, &[u8])> {
    let Some(size) = plain_size::<T>() else {
        return postcard::take_from_bytes(bytes);
    };
    let (count, prefix) = read_len(bytes).ok_or(postcard::Error::DeserializeBadVarint)?;
    let rest = &bytes[prefix..];
    let len = (count.checked_mul(size))
        .filter(|&len| len <= rest.len())
        .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
    // The count came from the other side: a value too big to hold a second
    // copy of is an error, not an abort.
    let value = plain_from(count, &rest[..len], &mut Bulk::default())
        .expect("a plain vector")
        .map_err(|_| postcard::Error::DeserializeUnexpectedEnd)?;
    Ok((value, &rest[len..]))
}

/// [`take`] for a task's argument in the serving process: its `Deserialize`
/// is user code, so a panic in it (or in the `Drop` of a part it had made)
/// is caught, and is that task's error like any other failure to decode.
pub(crate) fn take_arg<A: DeserializeOwned + 'static>(args: &[u8]) -> Result<(A, &[u8]), String> {
    let reason = match panic::catch(|| take::<A>(args)) {
        Ok(Ok(taken)) => return Ok(taken),
        Ok(Err(error)) => decode::explain(&error),
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

/// If `T` is a vector of plain numbers and `prefix` is exactly its length,
/// its memory in `tail` (a lone vector whose bytes travelled apart from its
/// message, as a transport may carry them): that vector, copied out of
/// `tail`, into `reuse`'s memory if it fits snugly (see [`plain_vector`]).
pub(crate) fn take_apart<T: 'static>(
    prefix: &[u8],
    tail: &[u8],
    reuse: &mut Bulk,
) -> Option<Result<T, String>> {
    let (count, _) = read_len(prefix).filter(|&(_, used)| used == prefix.len())?;
    plain_from(count, tail, reuse)
}

/// Encodes a lone task's argument: the bytes to send after the task's
/// header, and a [`Bulk`] to send after them. A plain vector is its own
/// bulk, sent as it is behind its length: no copy here at all. With
/// `defer` (the transport encodes where it sends from, see [`Deferred`]),
/// an argument whose encoding reaches [`DEFER`] bytes is left to it.
pub(crate) fn encode_lone<A: Serialize + Send + 'static>(
    arg: A,
    defer: bool,
) -> Result<(Vec<u8>, Bulk), Error> {
    let mut args = Vec::new();
    let mut slot = Some(arg);
    if let Some(bulk) = Bulk::take(&mut slot) {
        append_len(bulk.count(), &mut args);
        return Ok((args, bulk));
    }
    let arg = slot.take().expect("only a plain vector is taken");
    let cap = if defer { DEFER } else { usize::MAX };
    let encoded = serialized(|| {
        postcard::serialize_with_flavor(
            &arg,
            Growing {
                out: &mut args,
                cap,
            },
        )
    });
    match encoded {
        Ok(()) => Ok((args, Bulk::default())),
        Err(Failed::Postcard(postcard::Error::SerializeBufferFull)) if defer => {
            let size = serialized(|| postcard::experimental::serialized_size(&arg))
                .map_err(Failed::into_error)?;
            let value = Some(Box::new(arg) as Box<dyn Encode>);
            Ok((Vec::new(), Bulk::Deferred(Deferred { value, size })))
        }
        Err(failed) => Err(failed.into_error()),
    }
}

/// Encodings at least this big are left to a transport that encodes where
/// it sends from (see [`Deferred`]): the size from which the process
/// pool's arena takes payloads.
pub(crate) const DEFER: usize = 256 << 10;

/// Why an argument could not be serialized.
enum Failed {
    Postcard(postcard::Error),
    Panicked(Error),
}

impl Failed {
    /// The task's error.
    fn into_error(self) -> Error {
        let reason = match self {
            Failed::Postcard(error) => decode::explain(&error),
            Failed::Panicked(panic) => panic.to_string(),
        };
        Error::Serialization(format!(
            "the task's argument could not be serialized: {reason}"
        ))
    }
}

/// Runs `serialize`, user code: a panic in it is caught.
fn serialized<T>(serialize: impl FnOnce() -> postcard::Result<T>) -> Result<T, Failed> {
    match panic::catch(serialize) {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(error)) => Err(Failed::Postcard(error)),
        Err(panic) => Err(Failed::Panicked(panic)),
    }
}

/// A lone task's argument whose encoding is big, left unencoded by
/// [`encode_lone`] for the transport to encode where it sends it from (the
/// process pool's arena): no memory of its own to fault in, and no copy
/// out of it. Its size is known (its `Serialize` ran once more, to measure
/// it), so the place can be made ready first. A serialization failure then
/// is still the task's error.
pub(crate) struct Deferred {
    /// `None` only while dropped.
    value: Option<Box<dyn Encode>>,
    /// The size of its encoding.
    size: usize,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Deferred({} bytes)", self.size)
    }
}

impl Deferred {
    /// The size of its encoding.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Encodes it into `out`, exactly [`size`](Self::size) bytes: a
    /// failure, or a panic in its `Serialize`, is the task's error, as is
    /// an encoding of another size than measured.
    pub(crate) fn encode_into(&self, out: &mut [u8]) -> Result<(), Error> {
        let value = self.value.as_deref().expect("not dropped yet");
        match serialized(|| value.encode_into(out)) {
            Ok(wrote) if wrote == self.size && out.len() == self.size => Ok(()),
            Ok(_) | Err(Failed::Postcard(postcard::Error::SerializeBufferFull)) => {
                Err(Error::Serialization(
                    "the task's argument could not be serialized: its Serialize wrote another \
                     size than when it was measured"
                        .into(),
                ))
            }
            Err(failed) => Err(failed.into_error()),
        }
    }

    /// Its encoding, in memory of its own (where the transport has no
    /// place to encode it into).
    pub(crate) fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        out.try_reserve_exact(self.size).map_err(|_| {
            Error::Serialization(format!(
                "the task's argument could not be serialized: {}",
                no_memory(self.size)
            ))
        })?;
        out.resize(self.size, 0);
        self.encode_into(&mut out)?;
        Ok(out)
    }
}

impl Drop for Deferred {
    /// The value's `Drop` is user code, run where the transport is done
    /// with it: caught.
    fn drop(&mut self) {
        panic::drop_caught(self.value.take());
    }
}

/// A value that a transport can encode later, on a thread of its own.
trait Encode: Send {
    /// Serializes it with postcard into `out`; how many bytes it wrote.
    fn encode_into(&self, out: &mut [u8]) -> postcard::Result<usize>;
}

impl<A: Serialize + Send> Encode for A {
    fn encode_into(&self, out: &mut [u8]) -> postcard::Result<usize> {
        postcard::to_slice(self, out).map(|used| used.len())
    }
}

/// Serializes one argument, turning a failure (or a panic in a `Serialize`
/// impl) into that task's error.
pub(crate) fn encode_arg<A: Serialize + 'static>(arg: &A, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    serialized(|| append(arg, out)).map_err(|failed| {
        out.truncate(start);
        failed.into_error()
    })
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
                    decode::explain(&error)
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

/// [`encode_outcome`] for the one outcome of a lone task: a plain vector
/// leaves its memory apart, in `bulk`, to be sent right after `out` (the
/// same bytes on the wire, with no copy here).
pub(crate) fn encode_lone_outcome<R: Serialize + 'static>(
    outcome: Result<R, Error>,
    out: &mut Vec<u8>,
    bulk: &mut Bulk,
) {
    let value = match outcome {
        Ok(value) => value,
        Err(error) => return encode_outcome::<R>(Err(error), out),
    };
    let mut slot = Some(value);
    let Some(taken) = Bulk::take(&mut slot) else {
        return encode_outcome(Ok(slot.expect("only a plain vector is taken")), out);
    };
    out.push(VALUE);
    let len_at = out.len();
    out.extend_from_slice(&[0; 8]);
    append_len(taken.count(), out);
    let len = (out.len() - len_at - 8 + taken.bytes().len()) as u64;
    out[len_at..len_at + 8].copy_from_slice(&len.to_le_bytes());
    *bulk = taken;
}

/// [`decode_outcomes`] of outcomes whose last bytes came apart, in `tail`
/// (see [`encode_lone_outcome`]), which may be a transport's memory: a
/// lone plain vector is copied out of it once, into `reuse`'s memory if it
/// fits (see [`plain_vector`]); outcomes all in `tail` are decoded where
/// they lie; anything else from the bytes joined.
pub(crate) fn decode_outcomes_with_tail<R: DeserializeOwned + 'static>(
    bytes: &[u8],
    tail: &[u8],
    count: usize,
    reuse: &mut Bulk,
) -> Result<Vec<Result<R, Error>>, Error> {
    if tail.is_empty() {
        return decode_outcomes(bytes, count);
    }
    if bytes.is_empty() {
        return decode_outcomes(tail, count);
    }
    if count == 1
        && let Some((&VALUE, rest)) = bytes.split_first()
        && let Some((len, prefix)) = rest.split_first_chunk::<8>()
        && u64::from_le_bytes(*len) == (prefix.len() + tail.len()) as u64
        && let Some(value) = take_apart::<R>(prefix, tail, reuse)
    {
        return Ok(vec![value.map_err(undecoded_result)]);
    }
    let mut whole = Vec::new();
    whole
        .try_reserve_exact(bytes.len() + tail.len())
        .map_err(|_| Error::Protocol(format!("no memory for {} outcome bytes", tail.len())))?;
    whole.extend_from_slice(bytes);
    whole.extend_from_slice(tail);
    decode_outcomes(&whole, count)
}

/// Why a vector of `len` bytes could not be received.
fn no_memory(len: usize) -> String {
    format!("this process has no memory left for its {len} bytes")
}

/// The error of a result that did not decode, for `reason`.
fn undecoded_result(reason: String) -> Error {
    Error::Serialization(format!(
        "the task's result could not be deserialized in the parent: {reason}"
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
                decode::explain(&error)
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
                let outcome = plain_value::<R>(value)
                    .unwrap_or_else(|| decode::value::<R>(value))
                    .map_err(undecoded_result);
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

/// If `R` is a vector of plain numbers: the result that `value` holds,
/// copied into memory asked for first, so that one too big for this
/// process is an error. Plain numbers run no user code: no guard needed.
fn plain_value<R: 'static>(value: &[u8]) -> Option<Result<R, String>> {
    plain_size::<R>()?;
    let Some((_, prefix)) = read_len(value) else {
        return Some(Err("the bytes are not one vector".into()));
    };
    let (prefix, memory) = value.split_at(prefix);
    take_apart(prefix, memory, &mut Bulk::default())
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
    fn plain_vectors_take_the_fast_path_to_postcards_own_format() {
        /// Encodes `values` on the fast path, checks postcard's bytes, and
        /// decodes them back, as a lone outcome apart too.
        fn check<P: Plain + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
            values: Vec<P>,
        ) {
            let len = values.len();
            let mut fast = Vec::new();
            append(&values, &mut fast).unwrap();
            assert_eq!(fast, postcard::to_allocvec(&values).unwrap(), "len {len}");
            fast.push(42);
            let (back, rest) = take::<Vec<P>>(&fast).unwrap();
            assert_eq!((&back, rest), (&values, &[42][..]));
            let (mut out, mut bulk) = (Vec::new(), Bulk::default());
            encode_lone_outcome(Ok(values.clone()), &mut out, &mut bulk);
            let decoded =
                decode_outcomes_with_tail::<Vec<P>>(&out, bulk.bytes(), 1, &mut Bulk::default());
            assert_eq!(decoded.unwrap(), [Ok(values)], "len {len}");
        }
        for len in [0, 1, 127, 128, 300, 70_000] {
            check::<u8>((0..len).map(|i| i as u8).collect());
            check::<f32>((0..len).map(|i| i as f32 / 3.0).collect());
            check::<f64>((0..len).map(|i| i as f64 / 3.0).collect());
        }
        let truncated = [5, 1, 2];
        assert!(take::<Vec<u8>>(&truncated).is_err());
        assert!(take::<Vec<f64>>(&[1, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(take::<Vec<u8>>(&[0xFF; 11]).is_err());
    }

    #[test]
    fn a_plain_result_takes_the_arguments_memory_when_it_fits_snugly() {
        for (len, reused) in [(1000, true), (875, true), (874, false)] {
            let mut reuse = Bulk::F64(Vec::with_capacity(1000));
            let memory = reuse.bytes().as_ptr();
            let values: Vec<f64> = (0..len).map(|i| i as f64).collect();
            let (mut out, mut bulk) = (Vec::new(), Bulk::default());
            encode_lone_outcome(Ok(values.clone()), &mut out, &mut bulk);
            let mut decoded =
                decode_outcomes_with_tail::<Vec<f64>>(&out, bulk.bytes(), 1, &mut reuse).unwrap();
            let got = decoded.pop().unwrap().unwrap();
            assert_eq!(got, values);
            assert_eq!(got.as_ptr().cast() == memory, reused, "len {len}");
        }
    }

    /// A value whose encoding is big.
    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Big {
        name: String,
        numbers: Vec<u32>,
    }

    #[test]
    fn a_big_argument_is_left_to_be_encoded_where_it_is_sent() {
        // Five bytes a number: a little more than DEFER in all.
        let big = || Big {
            name: "big".into(),
            numbers: vec![u32::MAX; DEFER / 5 + 1],
        };
        let (args, bulk) = encode_lone(big(), false).unwrap();
        assert_eq!(args, postcard::to_allocvec(&big()).unwrap(), "not deferred");
        assert!(bulk.bytes().is_empty());
        let (args, bulk) = encode_lone(big(), true).unwrap();
        assert!(args.is_empty());
        let Bulk::Deferred(deferred) = bulk else {
            panic!("deferred: {bulk:?}");
        };
        let encoded = postcard::to_allocvec(&big()).unwrap();
        assert_eq!(deferred.size(), encoded.len());
        assert_eq!(deferred.encode().unwrap(), encoded);
        let mut short = vec![0; encoded.len() - 1];
        assert!(
            matches!(deferred.encode_into(&mut short), Err(Error::Serialization(m)) if m.contains("another size")),
        );
        // A small one is encoded at once.
        let small = Big {
            name: "small".into(),
            numbers: vec![1, 2, 3],
        };
        let (args, bulk) = encode_lone(small, true).unwrap();
        assert!(!args.is_empty() && matches!(bulk, Bulk::Bytes(ref b) if b.is_empty()));
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
