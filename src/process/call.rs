//! Naming a function so that another process can call it: the unsafe core.
//!
//! A worker is a fresh run of the parent's own executable, so every function
//! lies at the same distance from any fixed point of the image, whatever
//! address the loader chose. A task travels as two such distances, measured
//! from [`ANCHOR`] (a `static`: one item, one address, unlike a generic
//! function that may be copied into several codegen units):
//!
//! - the **trampoline**: [`run::<T>`], monomorphised for the task's
//!   function pointer type `T` (a [`Task`]: `fn(A) -> R`, or `fn(A, B) -> R`
//!   for `starmap`), which decodes the arguments, calls the task and encodes
//!   the outcomes;
//! - the **function**: the user's `fn(A) -> R` or `fn(A, B) -> R`.
//!
//! Turning a distance back into a function pointer is the only `unsafe` here
//! ([`function_at`], used by [`Call::invoke`] and [`run`]). It is sound only if the
//! worker runs the same binary and the pair really came from [`Call::of`].
//! Two checks stand before it:
//!
//! 1. [`Fingerprint`]: at the handshake each side compares the other's
//!    executable identity (device, inode and size of `/proc/self/exe`) and
//!    code layout. While the parent lives, its executable's inode cannot be
//!    reused or rewritten (Linux refuses to write a running executable), so
//!    equal identities mean the same bytes. The modification time is left
//!    out: `touch` changes it, not the bytes.
//! 2. A **tag**: a keyed hash of the pair under a secret the parent sends
//!    over the private channel at the handshake. A frame whose tag does not
//!    match (corrupted, truncated, forged, or from another pool) is refused
//!    before any offset is used.

use std::fs;
use std::hash::{BuildHasher, DefaultHasher, Hasher, RandomState};
use std::io;
use std::os::unix::fs::MetadataExt;

use super::wire;
use crate::{Error, Payload, panic};

/// The fixed point every offset is measured from.
static ANCHOR: u8 = 0;

/// What every trampoline looks like: call the function at `function` on
/// each of `count` encoded arguments in `frame[start..]`, appending one
/// encoded outcome per argument to `out`. `Err` means the arguments did not
/// decode. The trampoline may take `frame`'s buffer as a lone byte-vector
/// argument, leaving it empty.
type Trampoline = fn(
    function: *const (),
    count: u32,
    frame: &mut Vec<u8>,
    start: usize,
    out: &mut Vec<u8>,
) -> Result<(), String>;

/// What an initializer trampoline looks like.
type InitTrampoline = fn(function: *const ()) -> Result<(), String>;

fn offset(address: usize) -> u64 {
    address.wrapping_sub(&ANCHOR as *const u8 as usize) as u64
}

/// The address `offset` bytes from the anchor, as a pointer. Its provenance
/// is whatever was exposed at that address: in the process that made the
/// offset, the function's own (the `as usize` casts in [`Call::of`] expose
/// it), which is what lets miri run a call within one process.
fn address(offset: u64) -> *const () {
    std::ptr::with_exposed_provenance((&ANCHOR as *const u8 as usize).wrapping_add(offset as usize))
}

/// The function of type `F` at `address`: the one step from a number to
/// code, shared by every call below.
///
/// # Safety
///
/// `F` must be a function pointer type, and `address` the address of a
/// function of exactly that type in this image.
unsafe fn function_at<F: Copy>(address: *const ()) -> F {
    const { assert!(size_of::<F>() == size_of::<*const ()>()) };
    // SAFETY: by this function's contract, `F` is a function pointer type
    // (the same size as `*const ()`, checked above, and on the platforms
    // with processes, the same representation) and `address` is the address
    // of a function of type `F`.
    unsafe { std::mem::transmute_copy::<*const (), F>(&address) }
}

/// A task's function pointer type: what [`run`] calls, one trampoline body
/// for every arity. [`run`] turns an address back into a `Self`, so this
/// must be implemented for function pointer types only.
pub(crate) trait Task: Copy + Send + Sync + 'static {
    /// The one value the task is called with: its argument, or the tuple of
    /// its arguments.
    type Args: Payload;
    /// What the task returns.
    type Output: Payload;
    /// The function's address.
    fn address(self) -> usize;
    /// Calls the function with `args`.
    fn call(self, args: Self::Args) -> Self::Output;
}

impl<A: Payload, R: Payload> Task for fn(A) -> R {
    type Args = A;
    type Output = R;

    fn address(self) -> usize {
        self as usize
    }

    fn call(self, arg: A) -> R {
        self(arg)
    }
}

impl<A: Payload, B: Payload, R: Payload> Task for fn(A, B) -> R {
    type Args = (A, B);
    type Output = R;

    fn address(self) -> usize {
        self as usize
    }

    fn call(self, (a, b): (A, B)) -> R {
        self(a, b)
    }
}

/// A function, named by offsets, that a worker of the same binary can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) trampoline: u64,
    pub(crate) function: u64,
}

impl Call {
    /// Names `task`, with the trampoline for its type.
    pub(crate) fn of<T: Task>(task: T) -> Self {
        let trampoline: Trampoline = run::<T>;
        Call {
            trampoline: offset(trampoline as usize),
            function: offset(task.address()),
        }
    }

    /// Names an initializer.
    pub(crate) fn of_initializer(initializer: fn()) -> Self {
        let trampoline: InitTrampoline = run_initializer;
        Call {
            trampoline: offset(trampoline as usize),
            function: offset(initializer as usize),
        }
    }

    /// The tag that proves the pair came from the parent holding `secret`.
    pub(crate) fn tag(&self, secret: &Secret) -> u64 {
        // DefaultHasher::new() is SipHash with fixed keys; the secret comes
        // first, so the tag cannot be made without it. Both sides run the
        // same binary, hence the same hasher.
        let mut hasher = DefaultHasher::new();
        hasher.write_u64(secret.0[0]);
        hasher.write_u64(secret.0[1]);
        hasher.write_u64(self.trampoline);
        hasher.write_u64(self.function);
        hasher.finish()
    }

    /// Runs the task on each encoded argument.
    ///
    /// # Safety
    ///
    /// `self` must have been made by [`Call::of`] in a process running this
    /// same executable: the worker checks the [`Fingerprint`] at the
    /// handshake and the [`tag`](Call::tag) of every task before calling.
    pub(crate) unsafe fn invoke(
        self,
        count: u32,
        frame: &mut Vec<u8>,
        start: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        // SAFETY: by this function's contract, `trampoline` is the offset of
        // a `run::<T>` (a `Trampoline`) in this very image, so anchor +
        // offset is that function's address.
        let trampoline = unsafe { function_at::<Trampoline>(address(self.trampoline)) };
        trampoline(address(self.function), count, frame, start, out)
    }

    /// Runs an initializer.
    ///
    /// # Safety
    ///
    /// As for [`invoke`](Call::invoke), with a `Call` made by
    /// [`Call::of_initializer`].
    pub(crate) unsafe fn invoke_initializer(self) -> Result<(), String> {
        // SAFETY: by this function's contract, `trampoline` is the offset of
        // `run_initializer` (an `InitTrampoline`) in this very image.
        let trampoline = unsafe { function_at::<InitTrampoline>(address(self.trampoline)) };
        trampoline(address(self.function))
    }
}

/// The trampoline for tasks of type `T`: decode, call, encode, per item.
/// A panic, or a result that fails to serialize, is that item's outcome.
fn run<T: Task>(
    function: *const (),
    count: u32,
    frame: &mut Vec<u8>,
    start: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    // SAFETY: `function` is anchor + the offset `Call::of::<T>` took of a
    // `T` (a function pointer type, as `Task` requires), and this is the
    // trampoline `Call::of` paired with it, so the address is a function of
    // exactly this type (see `Call::invoke`).
    let task = unsafe { function_at::<T>(function) };
    if count == 1
        && let Some(arg) = wire::take_whole::<T::Args>(frame, start)
    {
        wire::encode_outcome(panic::catch(|| task.call(arg)), out);
        return Ok(());
    }
    let mut args = &frame[start..];
    for _ in 0..count {
        let (arg, rest) = wire::take::<T::Args>(args).map_err(|error| {
            format!(
                "the task's argument could not be deserialized in the worker: {}",
                wire::explain(&error)
            )
        })?;
        args = rest;
        wire::encode_outcome(panic::catch(|| task.call(arg)), out);
    }
    Ok(())
}

/// The trampoline for initializers `fn()`.
fn run_initializer(function: *const ()) -> Result<(), String> {
    // SAFETY: `function` is anchor + the offset `Call::of_initializer` took
    // of a `fn()` (see `Call::invoke_initializer`).
    let initializer = unsafe { function_at::<fn()>(function) };
    panic::catch(initializer).map_err(|error| match error {
        Error::Panicked { message, location } => match location {
            Some(location) => format!("it panicked at {location}: {message}"),
            None => format!("it panicked: {message}"),
        },
        other => other.to_string(),
    })
}

/// A per-pool random key for [`Call::tag`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) [u64; 2]);

impl Secret {
    /// 128 fresh random bits, from the operating system's seed that std
    /// draws for every `RandomState`.
    pub(crate) fn random() -> Self {
        Secret([
            RandomState::new().hash_one(1_u8),
            RandomState::new().hash_one(2_u8),
        ])
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Who this executable is: identical for the parent and its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint(pub(crate) [u64; 5]);

impl Fingerprint {
    /// The running executable's file identity and code layout.
    pub(crate) fn of_this_process() -> io::Result<Self> {
        let file = fs::metadata("/proc/self/exe")?;
        let layout = Call::of(drop as fn(())).trampoline;
        Ok(Fingerprint([
            file.dev(),
            file.ino(),
            file.size(),
            // Not the modification time: a `touch` changes it and not the
            // bytes, and would make every new worker a stranger.
            u64::from_le_bytes(*b"file-id\0"),
            layout,
        ]))
    }
}

impl Fingerprint {
    /// The running executable's contents and code layout: equal for equal
    /// files wherever they lie, for ranks on other machines, which see
    /// another device and inode for the same program. Reads the whole file
    /// once (a few milliseconds for a typical binary).
    #[cfg(feature = "mpi")]
    pub(crate) fn of_executable_contents() -> io::Result<Self> {
        use std::hash::Hash;
        let bytes = fs::read("/proc/self/exe")?;
        // Two independent 64-bit hashes (SipHash with two fixed keys, the
        // same in every run of this binary) make a 128-bit digest.
        let mut hashes = [DefaultHasher::new(), DefaultHasher::new()];
        hashes[1].write_u64(0x6d70_6920_7261_6e6b);
        for hasher in &mut hashes {
            bytes.hash(hasher);
        }
        let layout = Call::of(drop as fn(())).trampoline;
        Ok(Fingerprint([
            bytes.len() as u64,
            hashes[0].finish(),
            hashes[1].finish(),
            u64::from_le_bytes(*b"contents"),
            layout,
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(n: u32) -> u64 {
        u64::from(n) * 2
    }

    fn power(base: u64, exp: u32) -> u64 {
        base.pow(exp)
    }

    #[test]
    fn a_call_round_trips_within_one_process() {
        let call = Call::of(double as fn(_) -> _);
        let mut args = Vec::new();
        for n in [1_u32, 20] {
            wire::append(&n, &mut args).unwrap();
        }
        let mut out = Vec::new();
        // SAFETY: `call` was made by `Call::of` in this process.
        unsafe { call.invoke(2, &mut args, 0, &mut out) }.unwrap();
        let outcomes = wire::decode_outcomes::<u64>(&out, 2).unwrap();
        assert_eq!(outcomes, [Ok(2), Ok(40)]);
    }

    #[test]
    fn a_two_argument_call_takes_a_tuple() {
        let call = Call::of(power as fn(_, _) -> _);
        let mut args = Vec::new();
        for pair in [(2_u64, 10_u32), (3, 3)] {
            wire::append(&pair, &mut args).unwrap();
        }
        let mut out = Vec::new();
        // SAFETY: `call` was made by `Call::of` in this process.
        unsafe { call.invoke(2, &mut args, 0, &mut out) }.unwrap();
        let outcomes = wire::decode_outcomes::<u64>(&out, 2).unwrap();
        assert_eq!(outcomes, [Ok(1024), Ok(27)]);
    }

    #[test]
    fn a_lone_byte_vector_takes_the_frame_buffer() {
        fn len(bytes: Vec<u8>) -> usize {
            bytes.len()
        }
        let mut frame = b"head".to_vec();
        wire::append(&vec![7_u8; 1000], &mut frame).unwrap();
        let mut out = Vec::new();
        // SAFETY: the call was made by `Call::of` in this process.
        unsafe { Call::of(len as fn(_) -> _).invoke(1, &mut frame, 4, &mut out) }.unwrap();
        assert_eq!(wire::decode_outcomes::<usize>(&out, 1).unwrap(), [Ok(1000)]);
        assert!(frame.is_empty(), "the buffer itself became the argument");
    }

    #[test]
    fn truncated_arguments_are_an_error_not_a_call() {
        let call = Call::of(double as fn(_) -> _);
        let mut out = Vec::new();
        // SAFETY: `call` was made by `Call::of` in this process.
        let result = unsafe { call.invoke(1, &mut Vec::new(), 0, &mut out) };
        assert!(result.unwrap_err().contains("could not be deserialized"));
        assert!(out.is_empty());
    }

    #[test]
    fn tags_depend_on_the_secret_and_the_pair() {
        let secret = Secret::random();
        let call = Call::of(double as fn(_) -> _);
        assert_eq!(call.tag(&secret), call.tag(&secret));
        assert_ne!(call.tag(&secret), call.tag(&Secret::random()));
        let other = Call {
            function: call.function + 1,
            ..call
        };
        assert_ne!(call.tag(&secret), other.tag(&secret));
    }

    #[test]
    // Miri gives every use of a generic function's address a fresh address
    // on purpose (a real build may have several copies of one); the layout
    // word taken from one call site is stable only in a real build.
    #[cfg_attr(miri, ignore = "miri varies function addresses by design")]
    fn the_fingerprint_is_stable_within_a_process() {
        let a = Fingerprint::of_this_process().unwrap();
        assert_eq!(a, Fingerprint::of_this_process().unwrap());
    }
}
