//! Layer: process sys. May use: `error`, std and windows-sys.
//! How the pool stops a Windows worker and how it ended: a kill-on-close
//! [`JobObject`] per worker, which only the pool holds, ended with an exit
//! code that says why ([`KILL`], [`TERMINATE`]): what a process group and
//! its signal are on Unix.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::JobObjects::{
    CreateJobObjectW, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JobObjectExtendedLimitInformation, SetInformationJobObject, TerminateJobObject,
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

/// A worker's Job object: kill-on-close, held by the pool alone.
#[derive(Debug)]
pub(crate) struct JobObject(OwnedHandle);

impl JobObject {
    /// A fresh job, kill-on-close, with no name and not inheritable.
    pub(super) fn new() -> io::Result<Self> {
        // SAFETY: no attributes (not inheritable) and no name: a fresh
        // anonymous job, or null on failure.
        let handle = unsafe { CreateJobObjectW(ptr::null(), ptr::null()) };
        if handle.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh handle that nothing else owns.
        let job = JobObject(unsafe { OwnedHandle::from_raw_handle(handle) });
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

    /// Its handle, for the calls that take one.
    pub(super) fn raw(&self) -> HANDLE {
        self.0.as_raw_handle()
    }

    /// Ends every process in the job with exit code `code`.
    pub(super) fn terminate(&self, code: u32) {
        // SAFETY: the job handle is open while `self` lives; terminating
        // an empty job does nothing.
        unsafe { TerminateJobObject(self.raw(), code) };
    }
}
