//! Layer: process sys. May use: `error`, `process::sys::handover`, std and
//! windows-sys. The Windows half of the transport's system calls, with
//! the names of the Unix half (`unix.rs`; `mod.rs` lists them), and the
//! crate's exit codes for killed workers (`error`): starting a child with
//! its private channel, stopping and reaping it, a channel end with a
//! deadline, and the child's side of taking the channel.
//!
//! - **The channel** is two anonymous pipes, one each way, never a named
//!   pipe another process could open. The child's ends reach that one
//!   child only: `CreateProcessW` gets an explicit list of the handles it
//!   may inherit (`PROC_THREAD_ATTRIBUTE_HANDLE_LIST`), inheritable copies
//!   made just for the call and closed right after it. (std's `Command`
//!   would hand the child every inheritable handle of the program,
//!   rust-lang/rust#161158.) Their values travel in the marker variable;
//!   the child checks that both are pipes and makes them non-inheritable
//!   before any task runs, so nothing a task starts gets them.
//! - **A Job object per worker**, with `JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE`,
//!   which only the pool holds: the worker is put in it right after it is
//!   created, before the pool reads its greeting, so before any task runs,
//!   and whatever its tasks start joins it. (It is not created suspended:
//!   a pool killed between the creation and the resume would leave a
//!   suspended orphan, seen under Wine. A child whose pool dies before the
//!   job holds it reads end-of-file on its channel and exits.) When the pool's process ends, however it ends, the system
//!   closes the handle and kills the job. A kill (a cancel, a timeout,
//!   `kill_workers`, `terminate_workers`) is `TerminateJobObject`, with an
//!   exit code that says which ([`KILL`], [`TERMINATE`]); it is what a
//!   process group and its signal are on Unix.
//! - **Deadlines:** pipes have no timeouts. A [`ChannelEnd`] with a time set
//!   is registered with one watcher thread, which terminates the worker's
//!   job when the time comes; the blocked read or write then fails, and is
//!   reported as timed out.
//!
//! Spawns are serialised ([`spawning`]) so that no other child of this
//! crate is started while the inheritable copies exist; a child that
//! another thread of the program starts with std's `Command` in those
//! microseconds can still inherit them (std hands out every inheritable
//! handle), which would only keep the channel open after the worker dies.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;
use std::{env, ptr, thread};

use super::handover::{Descriptor, Page, ReceiveFd, SendFd};

mod memory;

pub(crate) use memory::*;

use windows_sys::Wdk::System::Threading::{NtQueryInformationProcess, ProcessBasicInformation};
use windows_sys::Win32::Foundation::{
    DUPLICATE_SAME_ACCESS, DuplicateHandle, HANDLE, HANDLE_FLAG_INHERIT, INVALID_HANDLE_VALUE,
    SetHandleInformation, WAIT_OBJECT_0,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, FILE_TYPE_PIPE, GetFileInformationByHandle, GetFileType,
};
use windows_sys::Win32::System::Console::{
    GetStdHandle, STD_ERROR_HANDLE, STD_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
};
use windows_sys::Win32::System::Environment::GetCommandLineW;
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JobObjectExtendedLimitInformation,
    SetInformationJobObject, TerminateJobObject,
};
use windows_sys::Win32::System::Pipes::{CreatePipe, PeekNamedPipe};
use windows_sys::Win32::System::Threading::{
    CREATE_UNICODE_ENVIRONMENT, CreateProcessW, DeleteProcThreadAttributeList,
    EXTENDED_STARTUPINFO_PRESENT, GetCurrentProcess, GetExitCodeProcess, INFINITE,
    InitializeProcThreadAttributeList, LPPROC_THREAD_ATTRIBUTE_LIST,
    PROC_THREAD_ATTRIBUTE_HANDLE_LIST, PROCESS_BASIC_INFORMATION, PROCESS_INFORMATION,
    STARTF_USESTDHANDLES, STARTUPINFOEXW, TerminateProcess, UpdateProcThreadAttribute,
    WaitForSingleObject,
};

/// How the pool stops a child: the exit code its job is terminated with.
pub(crate) type Signal = u32;
/// The exit code of a worker that `kill_workers`, a cancel or a timeout
/// killed.
pub(crate) const KILL: Signal = crate::error::KILLED_BY_POOL;
/// The exit code of a worker that `terminate_workers` stopped.
pub(crate) const TERMINATE: Signal = crate::error::TERMINATED_BY_POOL;
/// How a child ended: its exit code (an NTSTATUS for a crash).
pub(crate) type Status = u32;

/// A dead worker's exit code as `Error::WorkerDied` reports it, as the
/// `i32` that `std::process::ExitStatus::code` gives on Windows; no
/// process dies of a signal here. If the code could not be read, the code
/// the pool killed it with, if any.
pub(crate) fn code_and_signal(
    status: Option<Status>,
    sent: Option<Signal>,
) -> (Option<i32>, Option<i32>) {
    (status.or(sent).map(|code| code as i32), None)
}

/// How a child ended, in words.
pub(crate) fn describe(status: Status) -> String {
    format!("exited with code {status:#X}")
}

/// Held while a channel is made and a child spawned: see the module docs.
pub(crate) fn spawning() -> MutexGuard<'static, ()> {
    static SPAWNING: Mutex<()> = Mutex::new(());
    SPAWNING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The executable a child is started from: the path this process was
/// started from (`GetModuleFileNameW`). Windows does not let a running
/// executable's file be written, though it may be renamed and replaced;
/// the handshake's fingerprint then differs, and the pool refuses the
/// child.
pub(crate) fn executable() -> io::Result<PathBuf> {
    env::current_exe()
}

/// A worker's Job object: kill-on-close, held by the pool alone.
#[derive(Debug)]
struct Job(OwnedHandle);

impl Job {
    fn new() -> io::Result<Self> {
        // SAFETY: no attributes (not inheritable) and no name: a fresh
        // anonymous job, or null on failure.
        let handle = unsafe { CreateJobObjectW(ptr::null(), ptr::null()) };
        if handle.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh handle that nothing else owns.
        let job = Job(unsafe { OwnedHandle::from_raw_handle(handle) });
        // SAFETY: all zeroes is a valid value of this plain C struct.
        let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        // SAFETY: `limits` is the struct this information class takes, with
        // its size; the job handle is open.
        let set = unsafe {
            SetInformationJobObject(
                job.raw(),
                JobObjectExtendedLimitInformation,
                (&raw const limits).cast(),
                size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        };
        if set == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(job)
    }

    fn raw(&self) -> HANDLE {
        self.0.as_raw_handle()
    }

    /// Ends every process in the job with exit code `code`.
    fn terminate(&self, code: u32) {
        // SAFETY: the job handle is open while `self` lives; terminating
        // an empty job does nothing.
        unsafe { TerminateJobObject(self.raw(), code) };
    }
}

/// A started child: its process handle (which keeps its exit code and pid
/// reserved until dropped) and its job.
#[derive(Debug)]
pub(crate) struct OsChild {
    process: OwnedHandle,
    job: Arc<Job>,
}

/// Starts a run of [`executable`] as a child with `marker` set to this
/// process's pid and the values of its channel's handles and of its start
/// gate's section (`page`, which Windows needs: without it the launch
/// fails); returns it with the pool's ends of the channel (reader,
/// writer). See the module docs.
pub(crate) fn launch(
    marker: &str,
    page: Option<&Page>,
) -> io::Result<(OsChild, ChannelEnd, ChannelEnd)> {
    let spawning = spawning();
    let (child_reads, pool_writes) = pipe()?;
    let (pool_reads, child_writes) = pipe()?;
    let job = Arc::new(Job::new()?);
    let null = File::open("NUL")?;
    // The handles the child inherits, and nothing else: inheritable copies,
    // closed when this function returns. Standard input is NUL; output and
    // error are ours, or NUL where we have none.
    let reads = inheritable(child_reads.as_raw_handle())?;
    let writes = inheritable(child_writes.as_raw_handle())?;
    let stdin = inheritable(null.as_raw_handle())?;
    let stdout = inheritable(std_handle(STD_OUTPUT_HANDLE).unwrap_or(null.as_raw_handle()))?;
    let stderr = inheritable(std_handle(STD_ERROR_HANDLE).unwrap_or(null.as_raw_handle()))?;
    let section = page.ok_or_else(|| io::Error::other("no start gate could be made"))?;
    let section = inheritable(section.as_raw_handle())?;
    let list =
        [&reads, &writes, &stdin, &stdout, &stderr, &section].map(AsRawHandle::as_raw_handle);

    let value = format!(
        "{}:{}:{}:{}",
        std::process::id(),
        reads.as_raw_handle() as usize,
        writes.as_raw_handle() as usize,
        section.as_raw_handle() as usize,
    );
    let mut environment = environment_block(marker, &value);
    let path = executable()?;
    let application: Vec<u16> = path.as_os_str().encode_wide().chain([0]).collect();
    // The child's command line is this process's own, so that a task's
    // `std::env::args` gives the caller's arguments; they never reach a
    // `main`, as a worker serves before it (see `init.rs`).
    // SAFETY: GetCommandLineW takes nothing and returns this process's
    // command line, a NUL-terminated string that lives as long as the
    // process.
    let own = unsafe { GetCommandLineW() };
    let mut len = 0;
    // SAFETY: `own` is NUL-terminated (above), so every unit up to and
    // including the NUL is readable.
    while unsafe { *own.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units and the NUL at `own`, readable (above).
    let mut command_line = unsafe { std::slice::from_raw_parts(own, len + 1) }.to_vec();
    let mut attributes = AttributeList::with_handles(&list)?;
    // SAFETY: all zeroes is a valid value of this plain C struct.
    let mut startup: STARTUPINFOEXW = unsafe { std::mem::zeroed() };
    startup.StartupInfo.cb = size_of::<STARTUPINFOEXW>() as u32;
    startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    startup.StartupInfo.hStdInput = stdin.as_raw_handle();
    startup.StartupInfo.hStdOutput = stdout.as_raw_handle();
    startup.StartupInfo.hStdError = stderr.as_raw_handle();
    startup.lpAttributeList = attributes.as_ptr();
    // SAFETY: all zeroes is a valid value of this plain C struct.
    let mut info: PROCESS_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: every pointer is valid for the call: the NUL-terminated path
    // and (writable, as CreateProcessW requires) command line, the
    // NUL-terminated UTF-16 environment block (CREATE_UNICODE_ENVIRONMENT),
    // the startup info with its size and an initialised attribute list
    // whose handle array (`list`) outlives the call, and `info` to fill in.
    let created = unsafe {
        CreateProcessW(
            application.as_ptr(),
            command_line.as_mut_ptr(),
            ptr::null(),
            ptr::null(),
            1, // inherit: the handles of the list, no others
            EXTENDED_STARTUPINFO_PRESENT | CREATE_UNICODE_ENVIRONMENT,
            environment.as_mut_ptr().cast(),
            ptr::null(),
            &startup.StartupInfo,
            &mut info,
        )
    };
    if created == 0 {
        return Err(io::Error::last_os_error());
    }
    drop(attributes);
    // The inheritable copies, and the child's own ends, close here: from
    // now on only the child holds its ends, so the pool reads end-of-file
    // when it dies.
    drop((
        reads,
        writes,
        stdin,
        stdout,
        stderr,
        section,
        child_reads,
        child_writes,
    ));
    drop(spawning);
    // SAFETY: CreateProcessW succeeded, so both are fresh handles that
    // nothing else owns.
    let (process, thread) = unsafe {
        (
            OwnedHandle::from_raw_handle(info.hProcess),
            OwnedHandle::from_raw_handle(info.hThread),
        )
    };
    drop(thread);
    // Into its job before the handshake, so before any task.
    // SAFETY: both handles are open.
    if unsafe { AssignProcessToJobObject(job.raw(), process.as_raw_handle()) } == 0 {
        let error = io::Error::last_os_error();
        // SAFETY: our own child's handle, open.
        unsafe { TerminateProcess(process.as_raw_handle(), KILL) };
        return Err(error);
    }
    let reader = ChannelEnd::new(pool_reads, Arc::clone(&job));
    let writer = ChannelEnd::new(pool_writes, Arc::clone(&job));
    Ok((OsChild { process, job }, reader, writer))
}

impl OsChild {
    /// Ends the child and whatever its tasks started, with exit code `code`.
    pub(crate) fn signal(&mut self, code: Signal) {
        self.job.terminate(code);
    }

    /// Waits for the child to exit, ends what is left in its job, and
    /// returns its exit code.
    pub(crate) fn reap(&mut self) -> Option<Status> {
        // SAFETY: the process handle is open while `self` lives.
        let waited = unsafe { WaitForSingleObject(self.process.as_raw_handle(), INFINITE) };
        self.job.terminate(KILL);
        if waited != WAIT_OBJECT_0 {
            return None;
        }
        let mut code = 0;
        // SAFETY: the handle is open; `code` is valid for writes.
        let read = unsafe { GetExitCodeProcess(self.process.as_raw_handle(), &mut code) };
        (read != 0).then_some(code)
    }
}

/// An anonymous pipe, not inheritable: (read end, write end).
fn pipe() -> io::Result<(File, File)> {
    let (mut read, mut write) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: both out-pointers are valid for writes; no attributes means
    // not inheritable; 0 asks for the default buffer size.
    if unsafe { CreatePipe(&mut read, &mut write, ptr::null(), 0) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CreatePipe succeeded: two fresh handles that nothing else owns.
    Ok(unsafe { (File::from_raw_handle(read), File::from_raw_handle(write)) })
}

/// An inheritable copy of `handle`, for one `CreateProcessW`.
fn inheritable(handle: RawHandle) -> io::Result<OwnedHandle> {
    let mut copy = ptr::null_mut();
    // SAFETY: `handle` is open (ours, or this process's standard handle);
    // `copy` is valid for writes.
    let duplicated = unsafe {
        let me = GetCurrentProcess();
        DuplicateHandle(me, handle, me, &mut copy, 0, 1, DUPLICATE_SAME_ACCESS)
    };
    if duplicated == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(copy) })
}

/// This process's standard handle `which`, if it has one.
fn std_handle(which: STD_HANDLE) -> Option<RawHandle> {
    // SAFETY: GetStdHandle only reads the process's parameters.
    let handle = unsafe { GetStdHandle(which) };
    (!handle.is_null() && handle != INVALID_HANDLE_VALUE).then_some(handle)
}

/// This process's environment with `name` set to `value`, as a block for
/// `CreateProcessW`: `name=value` strings in UTF-16, each NUL-terminated,
/// and a NUL after the last.
fn environment_block(name: &str, value: &str) -> Vec<u16> {
    let mut block = Vec::new();
    for (key, val) in env::vars_os() {
        if key.eq_ignore_ascii_case(name) {
            continue;
        }
        block.extend(key.encode_wide());
        block.push(u16::from(b'='));
        block.extend(val.encode_wide());
        block.push(0);
    }
    block.extend(format!("{name}={value}").encode_utf16());
    block.extend([0, 0]);
    block
}

/// A process-thread attribute list holding one handle list.
struct AttributeList {
    /// The list's opaque memory, in `usize`s for its alignment.
    memory: Vec<usize>,
}

impl AttributeList {
    /// A list saying the child inherits exactly `handles`, which must
    /// outlive the `CreateProcessW` call that uses the list.
    fn with_handles(handles: &[HANDLE]) -> io::Result<Self> {
        let mut size = 0;
        // SAFETY: a null list asks for the size of one attribute's list,
        // written to `size`; this call "fails" with that size by design.
        unsafe { InitializeProcThreadAttributeList(ptr::null_mut(), 1, 0, &mut size) };
        let mut memory = vec![0_usize; size.div_ceil(size_of::<usize>())];
        // SAFETY: `memory` holds at least `size` bytes, aligned for the
        // list's pointers.
        if unsafe { InitializeProcThreadAttributeList(memory.as_mut_ptr().cast(), 1, 0, &mut size) }
            == 0
        {
            return Err(io::Error::last_os_error());
        }
        // Initialised: from here on, dropping the list deletes it.
        let mut list = AttributeList { memory };
        // SAFETY: the list was initialised above for one attribute; the
        // value is the array of handles with its size in bytes, which the
        // caller keeps alive until the process is created.
        let updated = unsafe {
            UpdateProcThreadAttribute(
                list.as_ptr(),
                0,
                PROC_THREAD_ATTRIBUTE_HANDLE_LIST as usize,
                handles.as_ptr().cast(),
                size_of_val(handles),
                ptr::null_mut(),
                ptr::null(),
            )
        };
        if updated == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(list)
    }

    fn as_ptr(&mut self) -> LPPROC_THREAD_ATTRIBUTE_LIST {
        self.memory.as_mut_ptr().cast()
    }
}

impl Drop for AttributeList {
    fn drop(&mut self) {
        // SAFETY: an `AttributeList` exists only once its memory was
        // initialised as a list (see `with_handles`), and is deleted once.
        unsafe { DeleteProcThreadAttributeList(self.as_ptr()) };
    }
}

/// How many bytes of calls the channel surely holds before the child reads
/// them: none. An anonymous pipe's buffer size is only "a suggestion" to
/// the system, so a call waits until the one before it is answered, and
/// the dispatcher and its child can never both block writing.
pub(crate) const UNREAD_BYTES: usize = 0;

/// One end of a worker's channel, with an optional deadline for its reads
/// or writes: at the deadline the watcher ends the worker's job, which
/// makes a blocked read or write fail; such a failure past the deadline is
/// reported as a timeout.
#[derive(Debug)]
pub(crate) struct ChannelEnd {
    pipe: File,
    job: Arc<Job>,
    deadline: Option<Instant>,
    /// The watcher's entry for the deadline, while one is set.
    watched: Option<Entry>,
}

impl ChannelEnd {
    fn new(pipe: File, job: Arc<Job>) -> Self {
        ChannelEnd {
            pipe,
            job,
            deadline: None,
            watched: None,
        }
    }

    /// Sets (or, with `None`, lifts) the deadline of the reads or writes
    /// that follow; past it they fail with a timeout.
    pub(crate) fn set(&mut self, deadline: Option<Instant>) {
        if let Some(entry) = self.watched.take() {
            watcher().forget(entry);
        }
        self.deadline = deadline;
        if let Some(at) = deadline {
            self.watched = Some(watcher().watch(at, Arc::clone(&self.job)));
        }
    }

    /// Whether bytes can be read before `until` (or the pipe broke): a
    /// wait that, unlike a read with a deadline (which ends the worker),
    /// never stops in the middle of a frame. An anonymous pipe has nothing
    /// to wait on, so it looks every 100 µs; the dispatcher waits so only
    /// while a chunk or calls wait behind a running item.
    pub(crate) fn readable_by(&self, until: Instant) -> bool {
        loop {
            let mut available = 0;
            // SAFETY: the pipe handle is open while `self` lives; no buffer
            // is read (null, 0), and `available` is valid for writes.
            let peeked = unsafe {
                PeekNamedPipe(
                    self.pipe.as_raw_handle(),
                    ptr::null_mut(),
                    0,
                    ptr::null_mut(),
                    &mut available,
                    ptr::null_mut(),
                )
            };
            // A broken pipe: let the read say so.
            if peeked == 0 || available > 0 {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            thread::sleep(std::time::Duration::from_micros(100));
        }
    }

    fn passed(&self) -> bool {
        self.deadline.is_some_and(|at| Instant::now() >= at)
    }

    /// `result`, or a timeout if it is a failure (or an end) past the
    /// deadline, which the watcher caused.
    fn judge(&self, result: io::Result<usize>) -> io::Result<usize> {
        match result {
            Ok(0) | Err(_) if self.passed() => Err(io::ErrorKind::TimedOut.into()),
            other => other,
        }
    }
}

impl Drop for ChannelEnd {
    fn drop(&mut self) {
        self.set(None);
    }
}

/// Windows has no `fork()`: a worker is never copied.
pub(crate) fn watch_for_forks() {}

/// Nothing to end: see [`watch_for_forks`].
pub(crate) fn end_if_forked() {}

impl SendFd for ChannelEnd {
    fn send_fd(&mut self, _bytes: &[u8], fd: &Descriptor) -> io::Result<usize> {
        match *fd {}
    }
}

impl ReceiveFd for ChannelEnd {
    fn received_fd(&mut self) -> Option<Descriptor> {
        None
    }
}

/// A child's ends of the pipes hand nothing over either.
impl SendFd for File {
    fn send_fd(&mut self, _bytes: &[u8], fd: &Descriptor) -> io::Result<usize> {
        match *fd {}
    }
}

impl ReceiveFd for File {
    fn received_fd(&mut self) -> Option<Descriptor> {
        None
    }
}

impl Read for ChannelEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.passed() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let result = self.pipe.read(buf);
        self.judge(result)
    }
}

impl Write for ChannelEnd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.passed() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let result = self.pipe.write(buf);
        self.judge(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A deadline the watcher holds: when, and a number that tells apart two
/// deadlines of the same instant.
type Entry = (Instant, u64);

/// The one thread that ends the jobs of workers whose deadline passed.
struct Watcher {
    state: Mutex<Watched>,
    changed: Condvar,
}

struct Watched {
    deadlines: BTreeMap<Entry, Arc<Job>>,
    next: u64,
}

/// The watcher, started with the first deadline.
fn watcher() -> &'static Watcher {
    static WATCHER: OnceLock<Watcher> = OnceLock::new();
    WATCHER.get_or_init(|| {
        thread::Builder::new()
            .name("concurrent-futures-deadlines".into())
            .spawn(|| watcher().run())
            .expect("cannot start the process pool's deadline thread");
        Watcher {
            state: Mutex::new(Watched {
                deadlines: BTreeMap::new(),
                next: 0,
            }),
            changed: Condvar::new(),
        }
    })
}

impl Watcher {
    fn lock(&self) -> MutexGuard<'_, Watched> {
        // Nothing that can panic runs under this lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn watch(&self, at: Instant, job: Arc<Job>) -> Entry {
        let mut state = self.lock();
        let entry = (at, state.next);
        state.next += 1;
        let earliest = state
            .deadlines
            .first_key_value()
            .is_none_or(|(e, _)| entry < *e);
        state.deadlines.insert(entry, job);
        if earliest {
            self.changed.notify_one();
        }
        entry
    }

    fn forget(&self, entry: Entry) {
        self.lock().deadlines.remove(&entry);
    }

    fn run(&self) {
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            match state.deadlines.first_key_value() {
                None => {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner)
                }
                Some((&(at, _), _)) if at <= now => {
                    let (_, job) = state.deadlines.pop_first().expect("just seen");
                    drop(state);
                    job.terminate(KILL);
                    state = self.lock();
                }
                Some((&(at, _), _)) => {
                    state = self
                        .changed
                        .wait_timeout(state, at - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

/// The identity of the file at `path`: its volume's serial number, its
/// file index on that volume, and its size.
pub(crate) fn file_identity(path: &Path) -> io::Result<[u64; 3]> {
    let file = File::open(path)?;
    // SAFETY: all zeroes is a valid value of this plain C struct.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the file's handle is open; `info` is valid for writes.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle(), &mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |high: u32, low: u32| (u64::from(high) << 32) | u64::from(low);
    Ok([
        u64::from(info.dwVolumeSerialNumber),
        join(info.nFileIndexHigh, info.nFileIndexLow),
        join(info.nFileSizeHigh, info.nFileSizeLow),
    ])
}

/// The pid of the process that created this one.
pub(crate) fn parent_id() -> u32 {
    // SAFETY: all zeroes is a valid value of this plain C struct.
    let mut info: PROCESS_BASIC_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the pseudo-handle of this process, and `info` with its size,
    // as the ProcessBasicInformation class takes.
    let status = unsafe {
        NtQueryInformationProcess(
            GetCurrentProcess(),
            ProcessBasicInformation,
            (&raw mut info).cast(),
            size_of::<PROCESS_BASIC_INFORMATION>() as u32,
            ptr::null_mut(),
        )
    };
    if status < 0 {
        return 0; // no process has pid 0 as its pool
    }
    info.InheritedFromUniqueProcessId as u32
}

/// What a child sets up before `main` that std would set up in `main`'s
/// prologue: nothing on Windows (no SIGPIPE).
pub(crate) fn before_main() {}

/// A worker's signal set-up (see the Unix half): nothing on Windows, which
/// has no signals to inherit.
pub(crate) fn worker_signals() {}

/// Ends this worker. What its tasks started is in its Job object, which
/// the pool ends when it reaps the worker, or the system when the pool
/// dies (kill on close).
pub(crate) fn exit_with_group(code: i32) -> ! {
    std::process::exit(code)
}

/// The stack a worker serves on. The remote layer's depth limits assume a
/// worker encodes a result on a Linux main thread's 8 MiB; Windows' x64
/// frames are larger, and under Wine 8 MiB did not hold the 20,000-link
/// list that a Linux worker encodes (a debug build, `adversarial`'s
/// deep-result case), while 16 MiB does. Only reserved: pages are
/// committed as the stack grows.
const WORKER_STACK: usize = 16 << 20;

/// Runs the child's service on a thread of [`WORKER_STACK`]: the first
/// thread's stack is what the executable's header reserves (1 MiB with
/// MSVC's linker, 2 MiB with mingw's). The first thread waits for it.
pub(crate) fn on_worker_stack<E: From<String> + Send + 'static>(
    serve: impl FnOnce() -> Result<(), E> + Send + 'static,
) -> Result<(), E> {
    // Unnamed, as the first thread is in a Unix worker (see `init.rs`).
    thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(serve)
        .map_err(|e| format!("cannot start the worker's thread: {e}"))?
        .join()
        .unwrap_or_else(|_| Err(String::from("the worker's thread panicked").into()))
}

/// How a child reads its channel.
pub(crate) type Reader = File;
/// How a child writes to its channel.
pub(crate) type ChildWriter = File;

/// The child's side: takes the channel's two handles named by the marker's
/// `rest` (`read:write`), checks that they are pipes, not one of this
/// process's standard handles, and makes them non-inheritable. The pool
/// (`pool`) holds their jobs' handles: if it dies, this child is killed.
pub(crate) fn take_channel(
    _pool: u32,
    rest: &str,
) -> Result<(Reader, ChildWriter, Option<Page>), String> {
    let values: Vec<usize> = rest.split(':').map_while(|v| v.parse().ok()).collect();
    let &[read, write, section] = &values[..] else {
        return Err("the marker names no handles: not the pool's private channel".into());
    };
    if read == write || section == read || section == write {
        return Err("the marker names one handle twice: not the pool's private channel".into());
    }
    let standard = [STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE].map(std_handle);
    for value in [read, write, section] {
        if standard.contains(&Some(value as HANDLE)) {
            return Err(
                "the marker names a standard handle: not the pool's private channel".into(),
            );
        }
    }
    for value in [read, write] {
        let handle = value as HANDLE;
        // SAFETY: GetFileType takes any value; for one that is no open
        // handle it fails, with FILE_TYPE_UNKNOWN.
        if unsafe { GetFileType(handle) } != FILE_TYPE_PIPE {
            return Err(format!(
                "handle {value} is not a pipe: not the pool's private channel"
            ));
        }
        // SAFETY: as above; clearing the flag of an open pipe handle.
        if unsafe { SetHandleInformation(handle, HANDLE_FLAG_INHERIT, 0) } == 0 {
            let error = io::Error::last_os_error();
            return Err(format!("cannot keep the channel private: {error}"));
        }
    }
    // SAFETY: a handle, distinct from the pipes and the standard handles,
    // that the pool had this process inherit for this alone and named in
    // the marker; no code of this program has seen it (this runs before
    // `main`, or in `init()`): ours to own. If it is not a section, mapping
    // it fails.
    let section = unsafe { OwnedHandle::from_raw_handle(section as RawHandle) };
    // SAFETY: two distinct pipe handles, checked above, that the pool had
    // this process inherit for this alone and named in the marker; no code
    // of this program has seen them (this runs before `main`, or in
    // `init()`), and they are not the standard handles std uses: they are
    // ours to own.
    Ok(unsafe {
        (
            File::from_raw_handle(read as RawHandle),
            File::from_raw_handle(write as RawHandle),
            Some(section),
        )
    })
}
