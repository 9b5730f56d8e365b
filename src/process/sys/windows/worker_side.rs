//! Layer: process sys. May use: `process::sys::handover`,
//! `process::sys::windows::launch`, std and windows-sys.
//! A Windows worker's side: taking the channel's handles that the marker
//! names, checked to be pipes and made non-inheritable, the parent's pid,
//! the stack it serves on, and how it exits.

use std::fs::File;
use std::io;
use std::os::windows::io::{FromRawHandle, OwnedHandle, RawHandle};
use std::{ptr, thread};

use super::launch::std_handle;
use crate::process::sys::handover::{Descriptor, Page, ReceiveFd, SendFd};
use windows_sys::Wdk::System::Threading::{NtQueryInformationProcess, ProcessBasicInformation};
use windows_sys::Win32::Foundation::{HANDLE, HANDLE_FLAG_INHERIT, SetHandleInformation};
use windows_sys::Win32::Storage::FileSystem::{FILE_TYPE_PIPE, GetFileType};
use windows_sys::Win32::System::Console::{STD_ERROR_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, PROCESS_BASIC_INFORMATION};

/// Windows has no `fork()`: a worker is never copied.
pub(crate) fn watch_for_forks() {}

/// Nothing to end: see [`watch_for_forks`].
pub(crate) fn end_if_forked() {}

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
    // Unnamed, as the first thread is in a Unix worker (see `process/constructor.rs`).
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
