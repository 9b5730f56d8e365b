//! Layer: core. May use: `error`, `panic`, serde,
//! postcard and bytemuck. A transport reads the table of values through
//! the `pub(crate)` functions below. Its one platform part is `region`.
//! [`Shared`]: a value put once and used by many tasks.
//!
//! Every handle points at an [`Inner`], kept in this process's table under
//! a random 64-bit id. A handle serializes as that id alone; the front end
//! of a remote pool notes which handles a task's argument holds
//! ([`collect`]), and the transport, which knows the worker a task goes
//! to, sends that worker each value it does not have yet, in a `Put`
//! message before the task ([`put_header`], [`accept_put`]). A worker keeps
//! what it was put in the same table; deserializing a handle there finds
//! it by id, and a typed value is decoded once, at its first use. When the
//! last handle in the process that made the value is dropped, its id
//! leaves the table; the transport sees that ([`gone`]) and tells each
//! worker that has it in a `Release` message before the next message it
//! sends that worker ([`release_body`], [`accept_release`]).
//!
//! Plain data (`Shared<[T]>` for a `bytemuck::Pod` `T`) lives in memory
//! that every process maps read-only where the platform allows it
//! (`region`: a sealed `memfd` on Linux, a POSIX shared memory object
//! reached read-only on the portable Unix path and macOS); the process
//! transport hands its descriptor over, and a worker maps it without
//! copying it.

#[cfg(unix)]
pub(crate) mod region;

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use bytemuck::Pod;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, panic};

#[cfg(unix)]
pub(crate) use region::Region;

/// Shared memory for plain data, where this platform has none (Windows):
/// there is never one.
#[cfg(not(unix))]
#[derive(Debug)]
pub(crate) enum Region {}

#[cfg(not(unix))]
impl Region {
    fn bytes(&self) -> &[u8] {
        match *self {}
    }
}

impl Bytes for Region {
    fn bytes(&self) -> &[u8] {
        Region::bytes(self)
    }

    fn region(&self) -> Option<&Region> {
        Some(self)
    }
}

/// A value put once and read by many tasks: Ray's `ray.put`, Dask's
/// `client.scatter`, for every executor of this crate.
///
/// Make one with [`Shared::new`] (any serde value) or [`Shared::from_vec`]
/// and [`Shared::from_slice`] (a slice of plain numbers, or of any
/// [`bytemuck::Pod`] type), clone it as often as you like (a clone is a
/// reference count), and pass it inside any task argument, alone, in a
/// tuple or in a struct: it is a [`Payload`](crate::Payload). In the task
/// it derefs to the value.
///
/// ```
/// use concurrent_futures::{Executor, ProcessPoolExecutor, Shared};
///
/// fn lookup((table, key): (Shared<Vec<u32>>, usize)) -> u32 {
///     table[key] * 2
/// }
///
/// let executor = ProcessPoolExecutor::new(2);
/// let table = Shared::new((0..1000).collect::<Vec<u32>>());
/// let inputs = (0..10).map(|key| (table.clone(), key * 100));
/// let doubled: Vec<_> = executor.map(lookup, inputs).collect::<Result<_, _>>()?;
/// assert_eq!(doubled, [0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800]);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
///
/// # What crosses to a worker, and when
///
/// A handle serializes as a 64-bit id. Its value goes to each worker (a
/// process of a [`ProcessPoolExecutor`](crate::ProcessPoolExecutor), a rank
/// of an `MpiPoolExecutor`) at most once, just before the first task that
/// uses it there, however many tasks use it; a worker that replaces one
/// that died gets it again before its first task that uses it. A typed
/// value is serialized once, at the first task that sends it anywhere, and
/// decoded once in each worker, at its first use there.
///
/// On a [`ThreadPoolExecutor`](crate::ThreadPoolExecutor) nothing is
/// serialized: the handle is an `Arc`, and every task reads the caller's
/// value. So code written for the [`Executor`](crate::Executor) trait runs
/// with a `Shared` on all three executors.
///
/// # Plain data: shared, not copied
///
/// A `Shared<[T]>` of plain data (bytes, numbers, and structs of them that
/// derive [`bytemuck::Pod`]) derefs to `&[T]`. On Unix its bytes are
/// copied once, when the handle is made, into shared memory that this
/// process and every worker of a process pool map read-only (on Linux a
/// sealed `memfd`; on macOS a POSIX shared memory object, unlinked at once
/// and reached only through a read-only descriptor): no worker copies it,
/// and a worker's memory grows only by the pages its tasks read. On
/// Windows, and to MPI ranks, it is sent to each worker once, like a typed
/// value.
///
/// ```
/// use concurrent_futures::{Executor, ProcessPoolExecutor, Shared};
///
/// fn window_sum((samples, from): (Shared<[f64]>, usize)) -> f64 {
///     samples[from..from + 4].iter().sum()
/// }
///
/// let executor = ProcessPoolExecutor::new(2);
/// let samples = Shared::from_vec((0..1_000).map(f64::from).collect());
/// let sums: Vec<_> = executor
///     .map(window_sum, [(samples.clone(), 0), (samples.clone(), 996)])
///     .collect::<Result<_, _>>()?;
/// assert_eq!(sums, [6.0, 3990.0]);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
///
/// # When workers let go of it
///
/// When the last handle in the process that made the value is dropped
/// (the tasks that carried clones of it hold some until they are sent),
/// this process frees its copy, and each worker that has the value drops
/// its own before the next message its pool sends it, or when it exits;
/// a task still running in a worker keeps the value it holds until it
/// returns. The workers' caches are bounded by what the caller holds: a
/// worker never keeps a value whose last handle is gone past the next
/// task it is sent.
///
/// # Where a handle cannot go
///
/// A handle means something only to the process that made it and to the
/// workers of its pools. A task may return a handle it was given, but not
/// one it made: the caller cannot find that value, and the result fails
/// with [`Error::Serialization`]. Serialized to a file or another channel,
/// a handle is only an id.
pub struct Shared<T: ?Sized + Share> {
    inner: Arc<Inner>,
    value: PhantomData<fn() -> Box<T>>,
}

/// What [`Shared`] can hold: any serde value that is `Send + Sync`
/// ([`Shared<T>`](Shared::new)), and slices of [`bytemuck::Pod`] data
/// ([`Shared<[T]>`](Shared::from_vec)). Implemented for those and sealed.
pub trait Share: sealed::Share + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Share for T {}

impl<T: Pod + Send + Sync> Share for [T] {}

mod sealed {
    // The lint sees `Share` below reachable as the public trait's
    // supertrait; it is not nameable outside this crate.
    #![allow(private_interfaces)]

    use super::Value;

    /// How a handle of one type finds its value in an [`Value`].
    pub trait Share {
        /// Whether the value is plain bytes ([`Value::Plain`]).
        const PLAIN: bool;
        /// Whether `value` can be viewed as `Self` as it is.
        fn fits(value: &Value) -> bool;
        /// `Self` viewed in `value`, which [`fits`](Share::fits).
        fn view(value: &Value) -> &Self;
        /// A value that fits, made from one that does not (decoded,
        /// aligned), or why it cannot be.
        fn convert(value: &Value) -> Result<Value, String>;
        /// The bytes a worker is put: a typed value's postcard encoding.
        fn encode(value: &Value) -> Result<Vec<u8>, String>;
    }
}

/// A value as one process holds it.
pub(crate) enum Value {
    /// A serde value, decoded: a `T`, boxed.
    Typed(Box<dyn Any + Send + Sync>),
    /// A typed value's encoding as a worker received it, from byte `from`
    /// on: decoded at its first use.
    Encoded { bytes: Vec<u8>, from: usize },
    /// Plain data's bytes, wherever they live.
    Plain(Box<dyn Bytes>),
}

/// Where plain data's bytes live: a vector, or a shared mapping.
pub(crate) trait Bytes: Send + Sync + 'static {
    fn bytes(&self) -> &[u8];
    /// The shared memory holding the bytes, if they are in it.
    fn region(&self) -> Option<&Region> {
        None
    }
}

/// Plain data in this process's heap, as the caller gave it or as a
/// worker aligned it.
struct Heap<T>(Vec<T>);

impl<T: Pod + Send + Sync> Bytes for Heap<T> {
    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Plain data received over a channel, from byte `from` on.
struct Received {
    bytes: Vec<u8>,
    from: usize,
}

impl Bytes for Received {
    fn bytes(&self) -> &[u8] {
        &self.bytes[self.from..]
    }
}

// Sealed: crate-private types are fine here (see `sealed`).
#[allow(private_interfaces)]
impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> sealed::Share for T {
    const PLAIN: bool = false;

    fn fits(value: &Value) -> bool {
        matches!(value, Value::Typed(any) if any.is::<T>())
    }

    fn view(value: &Value) -> &T {
        match value {
            Value::Typed(any) => any.downcast_ref().expect("checked by `fits`"),
            _ => unreachable!("checked by `fits`"),
        }
    }

    fn convert(value: &Value) -> Result<Value, String> {
        let Value::Encoded { bytes, from } = value else {
            return Err(format!(
                "the shared value is not a `{}`: a handle was deserialized as another type",
                std::any::type_name::<T>()
            ));
        };
        match panic::catch(|| postcard::from_bytes::<T>(&bytes[*from..])) {
            Ok(Ok(value)) => Ok(Value::Typed(Box::new(value))),
            Ok(Err(error)) => Err(format!("the shared value did not deserialize: {error}")),
            Err(panicked) => Err(format!(
                "the shared value's Deserialize impl panicked: {panicked}"
            )),
        }
    }

    fn encode(value: &Value) -> Result<Vec<u8>, String> {
        let value = Self::view(value);
        match panic::catch(|| postcard::to_allocvec(value)) {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(error)) => Err(format!("the shared value could not be serialized: {error}")),
            Err(panicked) => Err(format!(
                "the shared value's Serialize impl panicked: {panicked}"
            )),
        }
    }
}

#[allow(private_interfaces)]
impl<T: Pod + Send + Sync> sealed::Share for [T] {
    const PLAIN: bool = true;

    fn fits(value: &Value) -> bool {
        matches!(value, Value::Plain(plain) if bytemuck::try_cast_slice::<u8, T>(plain.bytes()).is_ok())
    }

    fn view(value: &Value) -> &[T] {
        match value {
            Value::Plain(plain) => bytemuck::cast_slice(plain.bytes()),
            _ => unreachable!("checked by `fits`"),
        }
    }

    fn convert(value: &Value) -> Result<Value, String> {
        let Value::Plain(plain) = value else {
            return Err(
                "the shared value is not plain data: a handle was deserialized as \
                        another type"
                    .into(),
            );
        };
        let bytes = plain.bytes();
        if !bytes.len().is_multiple_of(size_of::<T>().max(1)) {
            return Err(format!(
                "the shared value's {} bytes are not a whole number of `{}`: a handle was \
                 deserialized as another type",
                bytes.len(),
                std::any::type_name::<T>()
            ));
        }
        // Misaligned where it arrived: one copy, into a vector of `T`.
        let mut aligned = vec![T::zeroed(); bytes.len() / size_of::<T>().max(1)];
        bytemuck::cast_slice_mut::<T, u8>(&mut aligned).copy_from_slice(bytes);
        Ok(Value::Plain(Box::new(Heap(aligned))))
    }

    fn encode(value: &Value) -> Result<Vec<u8>, String> {
        Err(format!(
            "plain data is sent as it is, not encoded ({} items)",
            Self::view(value).len()
        ))
    }
}

/// What every handle to one value shares.
pub(crate) struct Inner {
    id: u64,
    value: Value,
    /// Whether this process made the value (its last handle's drop
    /// releases it), rather than being put it.
    origin: bool,
    /// A typed value's encoding, made at its first send, with the values
    /// of the handles it holds itself: they go wherever it goes.
    encoded: OnceLock<Result<Encoded, String>>,
    /// How to make it (the handle's type knows; the table does not).
    encode: fn(&Value) -> Result<Vec<u8>, String>,
}

/// A typed value's encoding, and the values of the handles it holds.
type Encoded = (Vec<u8>, Vec<Arc<Inner>>);

/// What a transport sends a worker for a value.
pub(crate) enum Wire<'a> {
    /// A typed value's encoding.
    Encoded(&'a [u8]),
    /// Plain data's bytes.
    Plain(&'a [u8]),
    /// Plain data in shared memory: hand its descriptor over.
    Mapped(&'a Region),
}

impl<'a> Wire<'a> {
    /// The same value, for a transport that hands over no shared memory:
    /// its bytes, to send as they are (MPI).
    #[cfg(all(feature = "mpi", target_os = "linux"))]
    pub(crate) fn inline(self) -> Wire<'a> {
        match self {
            Wire::Mapped(region) => Wire::Plain(region.bytes()),
            other => other,
        }
    }

    /// The bytes, wherever they are.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Wire::Encoded(bytes) | Wire::Plain(bytes) => bytes,
            Wire::Mapped(region) => region.bytes(),
        }
    }
}

/// The `form` byte of a `Put` body.
const ENCODED: u8 = 0;
const PLAIN: u8 = 1;
const MAPPED: u8 = 2;

/// The length of a `Put` body's header: the id (8 bytes, little-endian),
/// then the form.
pub(crate) const PUT_HEADER: usize = 9;

impl Inner {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// What to send a worker: made once, the first time; an error is the
    /// task's.
    pub(crate) fn wire(&self) -> Result<Wire<'_>, Error> {
        match &self.value {
            Value::Plain(plain) => {
                if let Some(region) = plain.region() {
                    return Ok(Wire::Mapped(region));
                }
                Ok(Wire::Plain(plain.bytes()))
            }
            Value::Typed(_) => match self.encoded() {
                Ok((bytes, _)) => Ok(Wire::Encoded(bytes)),
                Err(reason) => Err(Error::Serialization(reason.clone())),
            },
            Value::Encoded { bytes, from } => Ok(Wire::Encoded(&bytes[*from..])),
        }
    }
}

impl Inner {
    fn encoded(&self) -> &Result<Encoded, String> {
        self.encoded.get_or_init(|| {
            let (bytes, nested) = noting(|| (self.encode)(&self.value));
            bytes.map(|bytes| (bytes, nested))
        })
    }

    /// The values of the handles this value holds (encoding it, if it is
    /// typed and was not yet).
    fn nested(&self) -> &[Arc<Inner>] {
        match (&self.value, self.encoded()) {
            (Value::Typed(_), Ok((_, nested))) => nested,
            _ => &[],
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.origin {
            table().remove(&self.id);
        }
        // A typed value's Drop is user code.
        let empty = Value::Encoded {
            bytes: Vec::new(),
            from: 0,
        };
        if let Value::Typed(value) = std::mem::replace(&mut self.value, empty) {
            panic::drop_caught(value);
        }
    }
}

/// A value in this process's table.
enum Slot {
    /// Made here: alive while a handle is.
    Made(Weak<Inner>),
    /// Put here by a pool: kept until the pool releases it.
    Put(Arc<Inner>),
}

fn table() -> MutexGuard<'static, HashMap<u64, Slot>> {
    static TABLE: LazyLock<Mutex<HashMap<u64, Slot>>> = LazyLock::new(Mutex::default);
    // No user code runs under this lock (values are decoded and dropped
    // outside it), so a poisoned lock still guards a consistent table.
    TABLE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new id: random, so that ids made in a worker (which may run a pool
/// of its own) do not meet those its pool put there.
fn new_id() -> u64 {
    static BASE: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one(std::process::id()));
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // ORDERING: only uniqueness matters, which every order gives.
    BASE.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

impl<T: ?Sized + Share> Shared<T> {
    fn made(value: Value) -> Self {
        let inner = Arc::new(Inner {
            id: new_id(),
            value,
            origin: true,
            encoded: OnceLock::new(),
            encode: T::encode,
        });
        table().insert(inner.id, Slot::Made(Arc::downgrade(&inner)));
        Shared {
            inner,
            value: PhantomData,
        }
    }

    /// A handle to a value of this process's table with id `id`, if it is
    /// a `T`: a worker decodes or aligns it here the first time.
    fn find(id: u64) -> Result<Self, String> {
        let found = match table().get(&id) {
            Some(Slot::Made(weak)) => weak.upgrade(),
            Some(Slot::Put(inner)) => Some(Arc::clone(inner)),
            None => None,
        };
        let Some(inner) = found else {
            return Err(format!(
                "no shared value with id {id:#x} in this process: a `Shared` can only be sent \
                 to the workers of the process that made it, and returned from them"
            ));
        };
        if T::fits(&inner.value) {
            return Ok(Shared {
                inner,
                value: PhantomData,
            });
        }
        // Decoded outside the table's lock: a `Deserialize` is user code.
        let value = T::convert(&inner.value)?;
        let fitted = Arc::new(Inner {
            id,
            value,
            // Never in the table as made here: its drop releases nothing.
            origin: false,
            encoded: OnceLock::new(),
            encode: T::encode,
        });
        if inner.origin {
            // A value made here that is not a `T`: a type confusion of the
            // caller's own; this handle keeps its conversion to itself.
            return Ok(Shared {
                inner: fitted,
                value: PhantomData,
            });
        }
        let mut table = table();
        // Released meanwhile: this handle keeps it until it is dropped.
        if let Some(slot @ Slot::Put(_)) = table.get_mut(&id) {
            *slot = Slot::Put(Arc::clone(&fitted));
        }
        drop(table);
        panic::drop_caught(inner);
        Ok(Shared {
            inner: fitted,
            value: PhantomData,
        })
    }

    /// This value's id, which is all a handle carries when it is sent.
    ///
    /// ```
    /// use concurrent_futures::Shared;
    ///
    /// let a = Shared::new(String::from("context"));
    /// assert_eq!(a.id(), a.clone().id());
    /// assert_ne!(a.id(), Shared::new(String::from("context")).id());
    /// ```
    pub fn id(&self) -> u64 {
        self.inner.id
    }
}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Shared<T> {
    /// Puts `value` behind a handle. Nothing is serialized until a remote
    /// pool first sends it to a worker.
    ///
    /// ```
    /// use concurrent_futures::Shared;
    /// use std::collections::HashMap;
    ///
    /// let config = Shared::new(HashMap::from([(String::from("scale"), 2.5)]));
    /// assert_eq!(config["scale"], 2.5);
    /// ```
    pub fn new(value: T) -> Self {
        Self::made(Value::Typed(Box::new(value)))
    }
}

impl<T: Pod + Send + Sync> Shared<[T]> {
    /// Refuses a zero-sized `T` when the program is built.
    fn not_zero_sized() {
        const {
            assert!(
                size_of::<T>() > 0,
                "Shared<[T]> shares bytes, and a zero-sized T has none: use Shared::new"
            );
        }
    }

    /// Puts plain data behind a handle. On Unix the bytes move into shared
    /// memory (one copy) and the vector is freed; if that memory cannot be
    /// made (no memory, an empty vector), and on Windows, the vector is
    /// kept as it is and sent to each worker once.
    ///
    /// ```
    /// use concurrent_futures::Shared;
    ///
    /// let weights = Shared::from_vec(vec![0.5_f32, 0.25, 0.25]);
    /// assert_eq!(weights.iter().sum::<f32>(), 1.0);
    /// assert_eq!(&weights[..], [0.5, 0.25, 0.25]);
    /// ```
    ///
    /// A zero-sized `T` has no bytes to share (its count would be lost):
    /// it does not build. Put such a value in a [`Shared::new`] instead.
    ///
    /// ```compile_fail,E0080
    /// let units = concurrent_futures::Shared::from_vec(vec![(); 3]);
    /// ```
    pub fn from_vec(values: Vec<T>) -> Self {
        Self::not_zero_sized();
        #[cfg(unix)]
        if let Ok(region) = Region::copy_of(bytemuck::cast_slice(&values)) {
            return Self::made(Value::Plain(Box::new(region)));
        }
        Self::made(Value::Plain(Box::new(Heap(values))))
    }

    /// Puts a copy of `values` behind a handle: [`from_vec`](Shared::from_vec)
    /// without the vector, copied once (on Unix, straight into the shared
    /// memory).
    ///
    /// ```
    /// use concurrent_futures::Shared;
    ///
    /// let bytes = Shared::from_slice(b"header");
    /// assert_eq!(&bytes[..3], b"hea");
    /// ```
    pub fn from_slice(values: &[T]) -> Self {
        Self::not_zero_sized();
        #[cfg(unix)]
        if let Ok(region) = Region::copy_of(bytemuck::cast_slice(values)) {
            return Self::made(Value::Plain(Box::new(region)));
        }
        Self::made(Value::Plain(Box::new(Heap(values.to_vec()))))
    }
}

impl<T: ?Sized + Share> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        T::view(&self.inner.value)
    }
}

impl<T: ?Sized + Share> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            inner: Arc::clone(&self.inner),
            value: PhantomData,
        }
    }
}

impl<T: ?Sized + Share + fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.inner.id)
            .field("value", &&**self)
            .finish()
    }
}

impl<T: ?Sized + Share> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        USED.with_borrow_mut(|used| {
            if let Some(used) = used {
                used.push(Arc::clone(&self.inner));
            }
        });
        serializer.serialize_u64(self.inner.id)
    }
}

impl<'de, T: ?Sized + Share> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = u64::deserialize(deserializer)?;
        Shared::find(id).map_err(D::Error::custom)
    }
}

thread_local! {
    /// The handles serialized since [`collect`] began on this thread.
    static USED: RefCell<Option<Vec<Arc<Inner>>>> = const { RefCell::new(None) };
}

/// Runs `encode`, noting the values of the handles it serializes.
fn noting<R>(encode: impl FnOnce() -> R) -> (R, Vec<Arc<Inner>>) {
    let outer = USED.replace(Some(Vec::new()));
    let result = encode();
    (result, USED.replace(outer).unwrap_or_default())
}

/// Runs `encode` (a task's arguments being serialized), returning the
/// values of the handles it serialized and of those their values hold,
/// each once, ready to send: an error if one of them cannot be serialized.
pub(crate) fn collect<R>(encode: impl FnOnce() -> R) -> (R, Result<Vec<Arc<Inner>>, Error>) {
    let (result, mut used) = noting(encode);
    let mut seen = HashSet::new();
    used.retain(|inner| seen.insert(inner.id));
    let mut next = 0;
    while let Some(inner) = used.get(next) {
        if let Err(error) = inner.wire() {
            return (result, Err(error));
        }
        let nested: Vec<_> = (inner.nested().iter())
            .filter(|nested| seen.insert(nested.id))
            .cloned()
            .collect();
        used.extend(nested);
        next += 1;
    }
    (result, Ok(used))
}

/// The ids of `known` (the values a worker was put) whose last handle in
/// this process is gone, taken out of `known`: the worker is to drop them.
pub(crate) fn gone(known: &mut HashSet<u64>) -> Vec<u64> {
    if known.is_empty() {
        return Vec::new();
    }
    let table = table();
    let gone: Vec<u64> = known
        .iter()
        .copied()
        .filter(|id| !table.contains_key(id))
        .collect();
    drop(table);
    for id in &gone {
        known.remove(id);
    }
    gone
}

/// The header of a `Put` body for `inner`, sent as `wire`; the bytes
/// follow it, unless they travel in shared memory.
pub(crate) fn put_header(inner: &Inner, wire: &Wire<'_>) -> [u8; PUT_HEADER] {
    let form = match wire {
        Wire::Encoded(_) => ENCODED,
        Wire::Plain(_) => PLAIN,
        Wire::Mapped(_) => MAPPED,
    };
    let mut header = [0; PUT_HEADER];
    header[..8].copy_from_slice(&inner.id.to_le_bytes());
    header[8] = form;
    header
}

/// Whether a `Put` body says its bytes travel in shared memory (then the
/// transport hands a region to [`accept_put`]).
pub(crate) fn put_is_mapped(body: &[u8]) -> bool {
    body.get(8) == Some(&MAPPED)
}

/// Keeps the value of a `Put` message (its body, and the shared memory
/// that came with it, if any) in this process's table.
pub(crate) fn accept_put(body: &mut Vec<u8>, region: Option<Region>) -> Result<(), String> {
    let (Some(id), Some(&form)) = (body.first_chunk::<8>(), body.get(8)) else {
        return Err("a Put message shorter than its header".into());
    };
    let id = u64::from_le_bytes(*id);
    let bytes = std::mem::take(body);
    let value = match form {
        ENCODED => Value::Encoded {
            bytes,
            from: PUT_HEADER,
        },
        PLAIN => Value::Plain(Box::new(Received {
            bytes,
            from: PUT_HEADER,
        })),
        MAPPED => Value::Plain(Box::new(
            region.ok_or("a Put message of shared memory came without it")?,
        )),
        other => return Err(format!("a Put message of unknown form {other}")),
    };
    let inner = Arc::new(Inner {
        id,
        value,
        origin: false,
        encoded: OnceLock::new(),
        encode: |_| Err("a value put in this process is sent as it came".into()),
    });
    let old = table().insert(id, Slot::Put(inner));
    drop(old);
    Ok(())
}

/// The body of a `Release` message: the ids, 8 bytes each, little-endian.
pub(crate) fn release_body(ids: &[u64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}

/// Drops the values a `Release` message names from this process's table
/// (a task that holds one keeps it until it is done).
pub(crate) fn accept_release(body: &[u8]) -> Result<(), String> {
    if !body.len().is_multiple_of(8) {
        return Err("a Release message of a partial id".into());
    }
    let mut released = Vec::new();
    let mut table = table();
    for id in body.chunks_exact(8) {
        let id = u64::from_le_bytes(id.try_into().expect("8 bytes"));
        if let Some(Slot::Put(inner)) = table.remove(&id) {
            released.push(inner);
        }
    }
    drop(table);
    // Their Drop may run a typed value's: user code, outside the lock.
    drop(released);
    Ok(())
}
