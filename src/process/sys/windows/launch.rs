//! Layer: process sys. May use: `process::sys::handover`,
//! `process::sys::windows::channel`, `process::sys::windows::job_object`,
//! std and windows-sys.
//! Starting a Windows worker: its two anonymous pipes and its gate's
//! section, inherited by that one child alone (an explicit handle list),
//! their values in the marker variable; the child put in its job object
//! before the handshake; and waiting for it and reaping it (see `windows.rs`).

use std::fs::File;
use std::io;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::{env, ptr};

use super::channel::ChannelEnd;
use super::job_object::{JobObject, KILL, Signal, Status};
use crate::process::sys::handover::Page;
use windows_sys::Win32::Foundation::{
    DUPLICATE_SAME_ACCESS, DuplicateHandle, HANDLE, INVALID_HANDLE_VALUE, WAIT_OBJECT_0,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, GetFileInformationByHandle,
};
use windows_sys::Win32::System::Console::{
    GetStdHandle, STD_ERROR_HANDLE, STD_HANDLE, STD_OUTPUT_HANDLE,
};
use windows_sys::Win32::System::Environment::GetCommandLineW;
use windows_sys::Win32::System::JobObjects::AssignProcessToJobObject;
use windows_sys::Win32::System::Pipes::CreatePipe;
use windows_sys::Win32::System::Threading::{
    CREATE_UNICODE_ENVIRONMENT, CreateProcessW, DeleteProcThreadAttributeList,
    EXTENDED_STARTUPINFO_PRESENT, GetCurrentProcess, GetExitCodeProcess, INFINITE,
    InitializeProcThreadAttributeList, LPPROC_THREAD_ATTRIBUTE_LIST,
    PROC_THREAD_ATTRIBUTE_HANDLE_LIST, PROCESS_INFORMATION, STARTF_USESTDHANDLES, STARTUPINFOEXW,
    TerminateProcess, UpdateProcThreadAttribute, WaitForSingleObject,
};

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

/// A started child: its process handle (which keeps its exit code and pid
/// reserved until dropped) and its job.
#[derive(Debug)]
pub(crate) struct OsChild {
    process: OwnedHandle,
    job: Arc<JobObject>,
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
    let job = Arc::new(JobObject::new()?);
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
    // `main`, as a worker serves before it (see `process/constructor.rs`).
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
pub(super) fn std_handle(which: STD_HANDLE) -> Option<RawHandle> {
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
