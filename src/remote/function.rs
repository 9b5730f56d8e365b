//! Layer: remote. May use: `error`, `executor`, `panic`, `remote::codec`
//! and `remote::decode`. Naming a function so that
//! another run of the same executable can call it: the unsafe core.
//!
//! A serving process (a process pool's child, an MPI rank) is a fresh run
//! of the front end's own executable, so every function lies at the same
//! distance from any fixed point of the image, whatever address the loader
//! chose. A task travels as two such distances, measured from [`ANCHOR`] (a
//! `static`: one item, one address, unlike a generic function that may be
//! copied into several codegen units):
//!
//! - the **trampoline**: [`run::<T>`], monomorphised for the task's
//!   function pointer type `T` (a [`TaskFn`]: `fn(A) -> R`, or `fn(A, B) -> R`
//!   for `starmap`), which decodes the arguments, calls the task and encodes
//!   the outcomes;
//! - the **function**: the user's `fn(A) -> R` or `fn(A, B) -> R`.
//!
//! A pool's initializer travels the same way ([`Initializer`]): a `fn()` or
//! `fn(A)` is a task whose result is `()`, its argument encoded once.
//!
//! Turning a distance back into a function pointer is the only `unsafe` here
//! ([`function_at`], used by [`FunctionRef::invoke`] and [`run`]). It is sound only
//! if the serving side runs the same binary, the pair really came from
//! [`FunctionRef::of`], and both functions lie in the same image as the anchor.
//! Three checks stand before it:
//!
//! 1. [`FunctionRef::of`] refuses a function outside the anchor's image (one in a
//!    dynamic library: `-C prefer-dynamic`, a `dylib` crate, a plugin),
//!    whose distance from the anchor differs from run to run; and it
//!    refuses every task when the anchor itself is not in the program's
//!    executable (this crate in a `cdylib` that a host program loaded),
//!    since a worker runs the executable, not the library.
//! 2. [`Fingerprint`]: at the handshake each side compares the other's
//!    executable identity (which each transport measures its own way) and
//!    code layout.
//! 3. A **tag**: a keyed hash of the pair under a secret the front end sends
//!    over the private channel at the handshake. A message whose tag does
//!    not match (corrupted, truncated, forged, or from another pool) is
//!    refused before any offset is used.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use siphasher::sip::SipHasher24;

use super::codec::{self, Bulk};
use super::decode;
use crate::{Error, Payload, panic};

/// The fixed point every offset is measured from.
static ANCHOR: u8 = 0;

/// What every trampoline looks like: call the function at `function` on
/// each of `count` encoded arguments in `args`, appending one encoded
/// outcome per argument to `out`, whether or not it decoded, as long as
/// `may_start` allows each next item (see [`Ran`]). The trampoline may take
/// the frame's buffer as a lone byte-vector argument, leaving it empty; it
/// leaves a lone task's plain-vector result in `bulk`, to be sent after
/// `out` (see `codec::encode_lone_outcome`).
type Trampoline = fn(
    function: *const (),
    count: u32,
    args: Args<'_>,
    out: &mut Vec<u8>,
    bulk: &mut Bulk,
    may_start: &mut dyn FnMut() -> bool,
) -> Ran;

/// Where a task message's encoded arguments lie: `frame[start..]`, then
/// `tail`, the bytes a transport may carry apart, in memory of its own.
pub(crate) struct Args<'a> {
    pub(crate) frame: &'a mut Vec<u8>,
    pub(crate) start: usize,
    pub(crate) tail: &'a [u8],
}

/// How much of a task message ran: the items before the first that
/// `may_start` refused (all of them, if it refused none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ran {
    /// How many items ran, from the first.
    pub(crate) done: u32,
    /// How many bytes of the encoded arguments (from `start`) they took;
    /// of use only when some items did not run (0 for a lone task).
    pub(crate) consumed: usize,
}

fn offset(address: usize) -> u64 {
    address.wrapping_sub(&ANCHOR as *const u8 as usize) as u64
}

/// The address `offset` bytes from the anchor, as a pointer. Its provenance
/// is whatever was exposed at that address: in the process that made the
/// offset, the function's own (the `as usize` casts in [`FunctionRef::of`] expose
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
pub(crate) trait TaskFn: Copy + Send + Sync + 'static {
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

impl<R: Payload> TaskFn for fn() -> R {
    type Args = ();
    type Output = R;

    fn address(self) -> usize {
        self as usize
    }

    fn call(self, (): ()) -> R {
        self()
    }
}

impl<A: Payload, R: Payload> TaskFn for fn(A) -> R {
    type Args = A;
    type Output = R;

    fn address(self) -> usize {
        self as usize
    }

    fn call(self, arg: A) -> R {
        self(arg)
    }
}

impl<A: Payload, B: Payload, R: Payload> TaskFn for fn(A, B) -> R {
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
pub(crate) struct FunctionRef {
    pub(crate) trampoline: u64,
    pub(crate) function: u64,
}

impl FunctionRef {
    /// Names `task`, with the trampoline for its type.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the task's function lies outside the
    /// image that holds the anchor: see [`in_anchor_image`].
    pub(crate) fn of<T: TaskFn>(task: T) -> Result<Self, Error> {
        let trampoline: Trampoline = run::<T>;
        FunctionRef::checked(trampoline as usize, task.address())
    }

    fn checked(trampoline: usize, function: usize) -> Result<Self, Error> {
        anchor_in_program()?;
        for address in [function, trampoline] {
            in_anchor_image(address)?;
        }
        Ok(FunctionRef {
            trampoline: offset(trampoline),
            function: offset(function),
        })
    }

    /// The tag that proves the pair came from the parent holding `secret`:
    /// SipHash-2-4 of the pair, keyed with the secret, a keyed MAC (SipHash
    /// was designed as one). Without the key no one can make a valid tag
    /// for a pair of their choosing.
    pub(crate) fn tag(&self, secret: &Secret) -> u64 {
        let [k0, k1] = secret.0;
        let mut mac = SipHasher24::new_with_keys(k0, k1);
        mac.write_u64(self.trampoline);
        mac.write_u64(self.function);
        mac.finish()
    }

    /// Runs the task on each encoded argument that `may_start` allows,
    /// asked before each.
    ///
    /// # Safety
    ///
    /// `self` must have been made by [`FunctionRef::of`] in a process running this
    /// same executable: the worker checks the [`Fingerprint`] at the
    /// handshake and the [`tag`](FunctionRef::tag) of every task before calling.
    pub(crate) unsafe fn invoke(
        self,
        count: u32,
        args: Args<'_>,
        out: &mut Vec<u8>,
        bulk: &mut Bulk,
        may_start: &mut dyn FnMut() -> bool,
    ) -> Ran {
        // SAFETY: by this function's contract, `trampoline` is the offset of
        // a `run::<T>` (a `Trampoline`) in this very image, so anchor +
        // offset is that function's address.
        let trampoline = unsafe { function_at::<Trampoline>(address(self.trampoline)) };
        trampoline(address(self.function), count, args, out, bulk, may_start)
    }
}

/// A pool's initializer: a function of the program that each serving
/// process runs before its first task of the pool, named as a task is
/// (a `fn()` or `fn(A)` is a task whose result is `()`), with its argument
/// encoded once, when the pool is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Initializer {
    pub(crate) function: FunctionRef,
    /// The encoded argument: empty for a `fn()`.
    pub(crate) arg: Vec<u8>,
}

impl Initializer {
    /// Names `function` and encodes `arg` for it.
    ///
    /// # Errors
    ///
    /// As [`FunctionRef::of`]; [`Error::Serialization`] if `arg` does not
    /// serialize (its `Serialize` impl fails or panics).
    pub(crate) fn of<F: TaskFn<Output = ()>>(function: F, arg: &F::Args) -> Result<Self, Error> {
        let named = FunctionRef::of(function)?;
        let mut encoded = Vec::new();
        let failure = match panic::catch(|| codec::append(arg, &mut encoded)) {
            Ok(Ok(())) => {
                return Ok(Initializer {
                    function: named,
                    arg: encoded,
                });
            }
            Ok(Err(error)) => decode::explain(&error),
            Err(panicked) => panicked.to_string(),
        };
        Err(Error::Serialization(format!(
            "the initializer's argument could not be serialized: {failure}"
        )))
    }

    /// Why an initializer failed, from the error its run ended with: a
    /// panic's message and place, or the error as it reads.
    pub(crate) fn failure(error: Error) -> String {
        match error {
            Error::Panicked {
                message, location, ..
            } => match location {
                Some(location) => format!("it panicked at {location}: {message}"),
                None => format!("it panicked: {message}"),
            },
            other => other.to_string(),
        }
    }

    /// Runs the initializer `named` on its encoded argument, `frame[start..]`
    /// (taking the buffer if it likes, as a task does); `Err` says why it
    /// failed.
    ///
    /// # Safety
    ///
    /// As for [`FunctionRef::invoke`], with a `named` made by [`Initializer::of`].
    pub(crate) unsafe fn run(
        named: FunctionRef,
        frame: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), String> {
        let (mut out, mut bulk) = (Vec::new(), Bulk::default());
        let args = Args {
            frame,
            start,
            tail: &[],
        };
        // SAFETY: this function's contract is `invoke`'s.
        unsafe { named.invoke(1, args, &mut out, &mut bulk, &mut || true) };
        match codec::decode_outcomes_with_tail::<()>(&out, bulk.bytes(), 1, &mut Bulk::default()) {
            Ok(mut outcomes) => (outcomes.pop())
                .unwrap_or_else(|| Err(Error::Protocol("the initializer gave no outcome".into())))
                .map_err(Self::failure),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// The trampoline for tasks of type `T`: decode, call, encode, per item,
/// while `may_start` allows the next. A panic, or an argument or a result
/// that fails to (de)serialize, is that item's outcome.
fn run<T: TaskFn>(
    function: *const (),
    count: u32,
    Args { frame, start, tail }: Args<'_>,
    out: &mut Vec<u8>,
    bulk: &mut Bulk,
    may_start: &mut dyn FnMut() -> bool,
) -> Ran {
    // SAFETY: `function` is anchor + the offset `FunctionRef::of::<T>` took of a
    // `T` (a function pointer type, as `TaskFn` requires), and this is the
    // trampoline `FunctionRef::of` paired with it, so the address is a function of
    // exactly this type (see `FunctionRef::invoke`).
    let task = unsafe { function_at::<T>(function) };
    let nothing = Ran {
        done: 0,
        consumed: 0,
    };
    if count == 0 || !may_start() {
        return nothing;
    }
    let lone = match count {
        1 if tail.is_empty() => codec::take_whole::<T::Args>(frame, start).map(Ok),
        1 => codec::take_apart::<T::Args>(&frame[start..], tail, &mut Bulk::default()),
        _ => None,
    };
    let lone_ran = Ran {
        done: 1,
        consumed: 0,
    };
    match lone {
        Some(Ok(arg)) => {
            codec::encode_lone_outcome(panic::catch(|| task.call(arg)), out, bulk);
            return lone_ran;
        }
        Some(Err(reason)) => {
            let reason =
                format!("the task's argument could not be received in the worker: {reason}");
            codec::encode_undecoded(reason, 1, out);
            return lone_ran;
        }
        None => {}
    }
    // Arguments apart from the message are decoded where they lie; those
    // split between the two, from the bytes joined.
    if !tail.is_empty() && frame.len() > start {
        frame.extend_from_slice(tail);
    }
    let mut args = match frame.len() > start {
        true => &frame[start..],
        false => tail,
    };
    let total = args.len();
    for done in 0..count {
        if done > 0 && !may_start() {
            return Ran {
                done,
                consumed: total - args.len(),
            };
        }
        let (arg, rest) = match codec::take_arg::<T::Args>(args) {
            Ok(taken) => taken,
            Err(reason) => {
                // The items after it cannot be found past it: each that may
                // still start fails with it (those taken back run elsewhere).
                let mut failed = 1;
                while done + failed < count && may_start() {
                    failed += 1;
                }
                codec::encode_undecoded(reason, failed, out);
                return Ran {
                    done: done + failed,
                    consumed: total,
                };
            }
        };
        args = rest;
        let outcome = panic::catch(|| task.call(arg));
        match count {
            1 => codec::encode_lone_outcome(outcome, out, bulk),
            _ => codec::encode_outcome(outcome, out),
        }
    }
    Ran {
        done: count,
        consumed: total,
    }
}

/// A per-pool random key for [`FunctionRef::tag`].
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

/// Who this executable is: identical for the front end and every serving
/// process that may run its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint(pub(crate) [u64; 5]);

impl Fingerprint {
    /// The executable's `identity`, measured by the transport (a file's
    /// identity, a hash of its contents), with this image's code layout.
    pub(crate) fn new([a, b, c, d]: [u64; 4]) -> Self {
        let layout = offset(run::<fn(())> as Trampoline as usize);
        Fingerprint([a, b, c, d, layout])
    }
}

/// Whether `address` lies in the image (the executable or the shared
/// library) that holds [`ANCHOR`]; an error that names the other image if
/// not. A distance from the anchor to a function in another image changes
/// with where the loader puts each: the serving side would jump to garbage.
///
/// `dladdr` takes the loader's lock and walks its list, so the answers are
/// remembered in a few slots keyed by address: a `map` or repeated
/// `submit` of one function asks once.
fn in_anchor_image(address: usize) -> Result<(), Error> {
    /// Addresses already found in the anchor's image (0: empty).
    static KNOWN: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];
    let slot = &KNOWN[(address >> 4) % KNOWN.len()];
    // ORDERING: a memo of a pure function of `address`; any value seen is
    // one some thread proved, so Relaxed suffices.
    if slot.load(Ordering::Relaxed) == address {
        return Ok(());
    }
    let anchor = image::of(&ANCHOR as *const u8 as usize);
    let image = image::of(address);
    if image.base != anchor.base {
        return Err(Error::InvalidArgument(format!(
            "the task function at {address:#x} lies in {}, not in {} with this crate: \
             its offset would differ in a worker. Tasks must be functions of the \
             program itself (no `-C prefer-dynamic`, `dylib` crate or plugin)",
            image.describe(),
            anchor.describe(),
        )));
    }
    // ORDERING: as above.
    slot.store(address, Ordering::Relaxed);
    Ok(())
}

/// Whether the anchor, and so this crate, lies in the program's executable;
/// an error that names the library it lies in if not. A worker (a process
/// pool's child, an MPI rank) is a fresh run of the executable: with this
/// crate in a dynamic library (a `cdylib` or plugin that a host program
/// loaded), that is the host, which would run its own `main` rather than
/// serve, since this crate's constructor is not in it. Checked once.
fn anchor_in_program() -> Result<(), Error> {
    static REFUSAL: OnceLock<Option<String>> = OnceLock::new();
    let refusal = REFUSAL.get_or_init(|| {
        let anchor = image::of(&ANCHOR as *const u8 as usize);
        let program = image::program();
        (anchor.base != program.base).then(|| {
            format!(
                "this crate lies in the dynamic library {}, not in the program's executable \
                 {}: a worker process runs the executable, which would run its own main \
                 instead of the task. Pools of processes or MPI ranks work only from the \
                 program itself; use a ThreadPoolExecutor in a dynamic library",
                anchor.describe(),
                program.describe(),
            )
        })
    });
    match refusal {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidArgument(reason.clone())),
    }
}

/// Which loaded image holds an address, as the dynamic loader says.
mod image {
    /// The image's base address (`None`: the loader knows no image there,
    /// as in a statically linked program, which is one image) and path.
    pub(super) struct Image {
        pub(super) base: Option<usize>,
        path: Option<String>,
    }

    impl Image {
        pub(super) fn describe(&self) -> String {
            match (&self.path, self.base) {
                (Some(path), _) => format!("`{path}`"),
                (None, Some(base)) => format!("the image at {base:#x}"),
                (None, None) => "no image the loader knows".to_owned(),
            }
        }
    }

    /// The image that holds `address`.
    #[cfg(all(unix, not(miri)))]
    pub(super) fn of(address: usize) -> Image {
        // SAFETY: an all-zero `Dl_info` is valid (null pointers).
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        // SAFETY: dladdr only reads the loader's tables for `address` (any
        // value is allowed) and writes `info`, valid for writes.
        if unsafe { libc::dladdr(address as *const libc::c_void, &mut info) } == 0 {
            return Image {
                base: None,
                path: None,
            };
        }
        let path = (!info.dli_fname.is_null()).then(|| {
            // SAFETY: dladdr set `dli_fname` to the loader's NUL-terminated
            // path of the image, which lives while the image is loaded
            // (the anchor's and a task's image stay loaded: we hold code
            // addresses in them).
            unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }
                .to_string_lossy()
                .into_owned()
        });
        Image {
            base: Some(info.dli_fbase as usize),
            path,
        }
    }

    /// The program's executable: the image that holds its program
    /// headers, which the kernel hands every program (`AT_PHDR`).
    #[cfg(all(target_os = "linux", not(miri)))]
    pub(super) fn program() -> Image {
        // SAFETY: getauxval reads the auxiliary vector the kernel passed
        // this process, and takes and returns plain integers.
        of(unsafe { libc::getauxval(libc::AT_PHDR) } as usize)
    }

    /// The program's executable: dyld's first image, whose Mach-O header
    /// is its base address.
    #[cfg(all(target_vendor = "apple", not(miri)))]
    // libc deprecates its dyld bindings in favour of the `mach2` crate; the
    // function is dyld's own, documented in `<mach-o/dyld.h>`, and one
    // call does not warrant a dependency.
    #[allow(deprecated)]
    pub(super) fn program() -> Image {
        // SAFETY: dyld's image 0 is the main executable, loaded for the
        // life of the process; the call only reads dyld's list.
        of(unsafe { libc::_dyld_get_image_header(0) } as usize)
    }

    /// The program's executable: the module that `GetModuleHandleW(NULL)`
    /// names, whose handle is its base address.
    #[cfg(all(windows, not(miri)))]
    pub(super) fn program() -> Image {
        use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;
        // SAFETY: with a null name, GetModuleHandleW returns the handle of
        // the executable that created this process, and takes no reference.
        of(unsafe { GetModuleHandleW(std::ptr::null()) } as usize)
    }

    /// The image that holds `address`: the module whose mapping contains
    /// it (its handle is its base address), as `dladdr` says on Unix.
    #[cfg(all(windows, not(miri)))]
    pub(super) fn of(address: usize) -> Image {
        use windows_sys::Win32::System::LibraryLoader::{
            GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS, GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
            GetModuleFileNameW, GetModuleHandleExW,
        };
        let mut module = std::ptr::null_mut();
        // SAFETY: with FROM_ADDRESS the name argument is an address, any
        // value allowed, that the loader looks up in its module list;
        // UNCHANGED_REFCOUNT takes no reference to release; `module` is
        // valid for writes.
        let found = unsafe {
            GetModuleHandleExW(
                GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS
                    | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                address as *const u16,
                &mut module,
            )
        };
        if found == 0 {
            return Image {
                base: None,
                path: None,
            };
        }
        let mut name = [0_u16; 1024];
        // SAFETY: `module` is a loaded module (it holds `address`, which we
        // hold a code address in); `name` is valid for writes of its length.
        let len = unsafe { GetModuleFileNameW(module, name.as_mut_ptr(), name.len() as u32) };
        let path = (len > 0).then(|| String::from_utf16_lossy(&name[..len as usize]));
        Image {
            base: Some(module as usize),
            path,
        }
    }

    /// Miri runs no foreign code, and everything it runs is one image.
    #[cfg(miri)]
    pub(super) fn of(_: usize) -> Image {
        Image {
            base: None,
            path: None,
        }
    }

    /// Miri's one image.
    #[cfg(miri)]
    pub(super) fn program() -> Image {
        of(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arguments that all lie in `frame`, from `start`.
    fn whole(frame: &mut Vec<u8>, start: usize) -> Args<'_> {
        Args {
            frame,
            start,
            tail: &[],
        }
    }

    fn double(n: u32) -> u64 {
        u64::from(n) * 2
    }

    fn power(base: u64, exp: u32) -> u64 {
        base.pow(exp)
    }

    #[test]
    fn a_call_round_trips_within_one_process() {
        let outcomes = invoke_on(FunctionRef::of(double as fn(_) -> _).unwrap(), &[1_u32, 20]);
        assert_eq!(outcomes, [Ok(2), Ok(40)]);
    }

    #[test]
    fn a_two_argument_call_takes_a_tuple() {
        let named = FunctionRef::of(power as fn(_, _) -> _).unwrap();
        let outcomes = invoke_on(named, &[(2_u64, 10_u32), (3, 3)]);
        assert_eq!(outcomes, [Ok(1024), Ok(27)]);
    }

    /// Runs `named` in this process on each of `inputs`, as a worker would,
    /// and decodes the outcomes.
    fn invoke_on<A: serde::Serialize + 'static>(
        named: FunctionRef,
        inputs: &[A],
    ) -> Vec<Result<u64, Error>> {
        let mut args = Vec::new();
        for input in inputs {
            codec::append(input, &mut args).unwrap();
        }
        let count = u32::try_from(inputs.len()).unwrap();
        let (_, out) = invoke(named, count, &mut args, 0, &mut || true);
        codec::decode_outcomes::<u64>(&out, inputs.len()).unwrap()
    }

    /// Runs `named` in this process on the `count` arguments encoded in
    /// `frame` from `start`, as a worker would: what ran, and the outcomes.
    fn invoke(
        named: FunctionRef,
        count: u32,
        frame: &mut Vec<u8>,
        start: usize,
        may_start: &mut dyn FnMut() -> bool,
    ) -> (Ran, Vec<u8>) {
        let mut out = Vec::new();
        // SAFETY: every test's `named` was made by `FunctionRef::of` in this process.
        let ran = unsafe {
            named.invoke(
                count,
                whole(frame, start),
                &mut out,
                &mut Bulk::default(),
                may_start,
            )
        };
        (ran, out)
    }

    #[test]
    fn a_lone_byte_vector_takes_the_frame_buffer() {
        fn len(bytes: Vec<u8>) -> usize {
            bytes.len()
        }
        let mut frame = b"head".to_vec();
        codec::append(&vec![7_u8; 1000], &mut frame).unwrap();
        let named = FunctionRef::of(len as fn(_) -> _).unwrap();
        let (_, out) = invoke(named, 1, &mut frame, 4, &mut || true);
        assert_eq!(
            codec::decode_outcomes::<usize>(&out, 1).unwrap(),
            [Ok(1000)]
        );
        assert!(frame.is_empty(), "the buffer itself became the argument");
    }

    /// A `may_start` that allows the first `n` items.
    fn allowing(mut n: u32) -> impl FnMut() -> bool {
        move || n.checked_sub(1).map(|left| n = left).is_some()
    }

    #[test]
    fn a_chunk_stops_where_it_may_not_start_the_next_item() {
        let named = FunctionRef::of(double as fn(_) -> _).unwrap();
        let mut args = Vec::new();
        for n in [1_u32, 300, 5] {
            codec::append(&n, &mut args).unwrap();
        }
        let two = {
            let mut first_two = Vec::new();
            codec::append(&1_u32, &mut first_two).unwrap();
            codec::append(&300_u32, &mut first_two).unwrap();
            first_two.len()
        };
        let mut may_start = allowing(2);
        let (ran, out) = invoke(named, 3, &mut args, 0, &mut may_start);
        assert_eq!(
            ran,
            Ran {
                done: 2,
                consumed: two
            }
        );
        assert_eq!(
            codec::decode_outcomes::<u64>(&out, 2).unwrap(),
            [Ok(2), Ok(600)]
        );
        // Refused at once: nothing runs.
        let (ran, out) = invoke(named, 3, &mut args, 0, &mut || false);
        assert_eq!(
            ran,
            Ran {
                done: 0,
                consumed: 0
            }
        );
        assert!(out.is_empty());
    }

    #[test]
    fn truncated_arguments_are_an_error_not_a_call() {
        let named = FunctionRef::of(double as fn(_) -> _).unwrap();
        let (ran, out) = invoke(named, 1, &mut Vec::new(), 0, &mut || true);
        assert_eq!(ran.done, 1, "its outcome is the error");
        let outcomes = codec::decode_outcomes::<u64>(&out, 1).unwrap();
        assert!(
            matches!(&outcomes[0], Err(Error::Serialization(m)) if m.contains("could not be deserialized")),
            "{outcomes:?}"
        );
    }

    /// A number whose `Deserialize` panics on 13.
    #[derive(Debug, serde::Serialize)]
    struct Unlucky(u8);

    impl<'de> serde::Deserialize<'de> for Unlucky {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let n = u8::deserialize(deserializer)?;
            assert_ne!(n, 13, "Unlucky panics on 13");
            Ok(Unlucky(n))
        }
    }

    fn unlucky(n: Unlucky) -> u8 {
        n.0
    }

    #[test]
    fn an_argument_whose_deserialize_panics_fails_its_item_and_the_rest_of_its_chunk() {
        panic::install_hook();
        let named = FunctionRef::of(unlucky as fn(_) -> _).unwrap();
        let mut args = Vec::new();
        for n in [1, 13, 2] {
            codec::append(&Unlucky(n), &mut args).unwrap();
        }
        let (ran, out) = invoke(named, 3, &mut args, 0, &mut || true);
        assert_eq!(ran.done, 3, "an outcome each");
        let outcomes = codec::decode_outcomes::<u8>(&out, 3).unwrap();
        assert_eq!(outcomes[0], Ok(1), "the item before it stands");
        assert!(
            matches!(&outcomes[1], Err(Error::Serialization(m))
                if m.contains("Deserialize impl panicked") && m.contains("Unlucky panics on 13")),
            "{outcomes:?}"
        );
        assert!(
            matches!(&outcomes[2], Err(Error::Serialization(m)) if m.starts_with("not run")),
            "{outcomes:?}"
        );
        // The items after it that were taken back get no outcome here: they
        // run elsewhere.
        let mut may_start = allowing(2);
        let (ran, out) = invoke(named, 3, &mut args, 0, &mut may_start);
        assert_eq!(ran.done, 2, "an outcome for each item allowed");
        let outcomes = codec::decode_outcomes::<u8>(&out, 2).unwrap();
        assert!(
            matches!(&outcomes[1], Err(Error::Serialization(_))),
            "{outcomes:?}"
        );
    }

    static SEEN: AtomicUsize = AtomicUsize::new(0);

    fn remember(n: usize) {
        assert!(n != 13, "no table of 13 today");
        // ORDERING: a test's own counter, read after the call returns.
        SEEN.store(n, Ordering::Relaxed);
    }

    #[test]
    fn an_initializer_runs_on_its_argument_or_says_why_not() {
        panic::install_hook();
        let init = Initializer::of(remember as fn(_), &42_usize).unwrap();
        let mut frame = b"head".to_vec();
        frame.extend_from_slice(&init.arg);
        // SAFETY: the call was made by `Initializer::of` in this process.
        let ran = unsafe { Initializer::run(init.function, &mut frame, 4) };
        assert_eq!(ran, Ok(()));
        // ORDERING: as in `remember`.
        assert_eq!(SEEN.load(Ordering::Relaxed), 42);
        let init = Initializer::of(remember as fn(_), &13_usize).unwrap();
        let mut frame = init.arg.clone();
        // SAFETY: as above.
        let failed = unsafe { Initializer::run(init.function, &mut frame, 0) }.unwrap_err();
        assert!(
            failed.starts_with("it panicked at ") && failed.ends_with("no table of 13 today"),
            "{failed}"
        );
        // A `fn()` takes no argument at all.
        let init = Initializer::of((|| ()) as fn(), &()).unwrap();
        assert!(init.arg.is_empty());
        // SAFETY: as above.
        let ran = unsafe { Initializer::run(init.function, &mut Vec::new(), 0) };
        assert_eq!(ran, Ok(()));
    }

    /// The tag is SipHash-2-4 keyed with the secret: with the SipHash
    /// paper's key (bytes 0 to 15) and message (bytes 0 to 15, here the
    /// pair), it gives the paper's test vector.
    #[test]
    #[cfg(target_endian = "little")]
    fn the_tag_is_siphash_keyed_with_the_secret() {
        let bytes = 0x0706_0504_0302_0100_u64;
        let more = 0x0f0e_0d0c_0b0a_0908_u64;
        let named = FunctionRef {
            trampoline: bytes,
            function: more,
        };
        assert_eq!(named.tag(&Secret([bytes, more])), 0x3f2a_cc7f_57c2_9bdb);
    }

    #[test]
    fn tags_depend_on_the_secret_and_the_pair() {
        let secret = Secret::random();
        let named = FunctionRef::of(double as fn(_) -> _).unwrap();
        assert_eq!(named.tag(&secret), named.tag(&secret));
        assert_ne!(named.tag(&secret), named.tag(&Secret::random()));
        let other = FunctionRef {
            function: named.function + 1,
            ..named
        };
        assert_ne!(named.tag(&secret), other.tag(&secret));
    }

    #[test]
    // Miri gives every use of a generic function's address a fresh address
    // on purpose (a real build may have several copies of one); the layout
    // word taken from one call site is stable only in a real build.
    #[cfg_attr(miri, ignore = "miri varies function addresses by design")]
    fn the_fingerprint_is_stable_within_a_process() {
        let a = Fingerprint::new([1, 2, 3, 4]);
        assert_eq!(a, Fingerprint::new([1, 2, 3, 4]));
        assert_ne!(a, Fingerprint::new([1, 2, 3, 5]));
    }

    #[test]
    #[cfg_attr(miri, ignore = "miri cannot ask the dynamic loader")]
    fn a_function_in_a_shared_library_is_refused() {
        // `getpid` lives in the C library, a shared object of its own (on
        // Windows, `GetCurrentProcessId` in kernel32.dll): its distance from
        // the anchor changes from run to run.
        #[cfg(unix)]
        let (foreign, library) = (libc::getpid as *const () as usize, "libc");
        // (An imported function's address in Rust is its import thunk, in
        // this image: ask the loader for the function itself.)
        #[cfg(windows)]
        let (foreign, library) = {
            use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
            // SAFETY: both names are NUL-terminated; kernel32.dll is loaded
            // in every Windows process, and exports the function.
            let function = unsafe {
                GetProcAddress(
                    GetModuleHandleA(c"kernel32.dll".as_ptr().cast()),
                    c"GetCurrentProcessId".as_ptr().cast(),
                )
            };
            (function.expect("kernel32 exports it") as usize, "kernel32")
        };
        let error = FunctionRef::checked(run::<fn(u32) -> u64> as Trampoline as usize, foreign)
            .unwrap_err();
        assert!(
            matches!(&error, Error::InvalidArgument(m) if m.to_lowercase().contains(library)),
            "{error:?}"
        );
        // The same check passes the program's own functions, again and
        // again (the second time from the memo).
        for _ in 0..2 {
            FunctionRef::of(double as fn(_) -> _).unwrap();
            FunctionRef::of((|| ()) as fn()).unwrap();
        }
    }
}
