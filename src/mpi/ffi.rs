//! Layer: mpi sys. May use: `error`, std, libc and the mpi crate's raw
//! bindings.
//! The MPI calls the `mpi` crate has no form of that returns errors, each
//! in a safe function: spawning workers with their `MPI_Info`, the error
//! handler, error strings; and the process exit hook that finalizes MPI.
//! Every `unsafe` block of the MPI transport is here. Only the hub thread
//! calls these, after it initialized MPI. The bottom of the transport: it
//! takes plain values (a path, an argument, `MPI_Info` pairs), not the
//! pool's settings.

use std::ffi::{CString, c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use ::mpi::ffi;
use ::mpi::topology::InterCommunicator;

use crate::Error;

/// Registers `hook` to run at process exit; `false` if it could not be.
pub(super) fn at_exit(hook: extern "C" fn()) -> bool {
    // SAFETY: `atexit` stores a pointer to a function that takes nothing,
    // returns nothing and lives for the whole program.
    unsafe { libc::atexit(hook) == 0 }
}

/// An `MPI_Info` object, freed on drop.
struct Info(ffi::MPI_Info);

impl Info {
    /// An info object holding `pairs`.
    fn of(pairs: &[(String, String)]) -> Result<Info, String> {
        let mut info = Info(
            // SAFETY: reading a handle constant of the MPI library.
            unsafe { ffi::RSMPI_INFO_NULL },
        );
        // SAFETY: MPI is initialized (by this thread, the only one calling
        // MPI), and `info.0` is valid for a write.
        if unsafe { ffi::MPI_Info_create(&mut info.0) } != ffi::MPI_SUCCESS as c_int {
            return Err("MPI_Info_create failed".into());
        }
        for (key, value) in pairs {
            let text = |s: &str| CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"));
            let (key_c, value_c) = (text(key)?, text(value)?);
            // SAFETY: `info.0` is the info object just created; both strings
            // are NUL-terminated and outlive the call; MPI copies them.
            let status = unsafe { ffi::MPI_Info_set(info.0, key_c.as_ptr(), value_c.as_ptr()) };
            if status != ffi::MPI_SUCCESS as c_int {
                return Err(format!(
                    "MPI_Info_set({key:?}, {value:?}) failed ({})",
                    error_string(status)
                ));
            }
        }
        Ok(info)
    }
}

impl Drop for Info {
    fn drop(&mut self) {
        // SAFETY: `self.0` is an info object MPI_Info_create made, freed only
        // here; MPI is still initialized (the hub owns it until it exits).
        unsafe {
            ffi::MPI_Info_free(&mut self.0);
        }
    }
}

/// Starts `workers` copies of `program`, each with the one argument `arg`,
/// with `MPI_Comm_spawn` and the `MPI_Info` of `pairs`.
pub(super) fn spawn(
    program: &Path,
    arg: &str,
    workers: usize,
    pairs: &[(String, String)],
) -> Result<InterCommunicator, Error> {
    let failed = |reason: String| Error::SpawnFailed { reason };
    let program = CString::new(program.as_os_str().as_bytes())
        .map_err(|_| failed("the program's path contains a NUL byte".into()))?;
    let info = Info::of(pairs).map_err(|e| failed(format!("the spawn settings: {e}")))?;
    let arg = CString::new(arg).map_err(|_| failed(format!("{arg:?} contains a NUL byte")))?;
    let mut argv = [arg.as_ptr().cast_mut(), std::ptr::null_mut()];
    let count = c_int::try_from(workers)
        .map_err(|_| failed(format!("{workers} workers are more than MPI can spawn")))?;
    let mut errcodes: Vec<c_int> = vec![-1; workers];
    // SAFETY: reading the MPI library's handle constants; MPI is
    // initialized (this thread did it).
    let (mut intercomm, self_comm) = unsafe { (ffi::RSMPI_COMM_NULL, ffi::RSMPI_COMM_SELF) };
    // SAFETY: `program` and the strings of `argv` are NUL-terminated and
    // outlive the call, `argv` ends with a null pointer, `errcodes` has
    // room for `count` codes, and `intercomm` is valid for a write. MPI
    // copies what it keeps. This thread initialized MPI, and it alone
    // calls MPI.
    let status = unsafe {
        ffi::MPI_Comm_spawn(
            program.as_ptr(),
            argv.as_mut_ptr(),
            count,
            info.0,
            0,
            self_comm,
            &mut intercomm,
            errcodes.as_mut_ptr(),
        )
    };
    // SAFETY: as above, reading a handle constant.
    let null = unsafe { ffi::RSMPI_COMM_NULL };
    let bad = errcodes.iter().filter(|&&code| code != 0).count();
    if status != ffi::MPI_SUCCESS as c_int || intercomm == null || bad > 0 {
        let code = if status != 0 {
            status
        } else {
            errcodes.iter().copied().find(|&c| c != 0).unwrap_or(status)
        };
        return Err(failed(format!(
            "MPI_Comm_spawn of {workers} workers failed ({}); on a machine with fewer \
             cores than processes, Open MPI needs OMPI_MCA_rmaps_base_oversubscribe=1, \
             and as root OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
            error_string(code)
        )));
    }
    // SAFETY: `intercomm` is the valid intercommunicator MPI_Comm_spawn
    // just made; from now on only the returned value uses it.
    unsafe { InterCommunicator::try_from_raw(intercomm) }
        .ok_or_else(|| failed("MPI_Comm_spawn gave no intercommunicator".into()))
}

/// Makes errors on `MPI_COMM_SELF` (the spawning communicator) return codes
/// instead of aborting the job: a failing spawn is then an `Err`.
pub(super) fn errors_return_on_self() {
    // SAFETY: MPI is initialized (by this thread, the only one calling MPI);
    // both arguments are the library's own predefined handles.
    unsafe {
        ffi::MPI_Comm_set_errhandler(ffi::RSMPI_COMM_SELF, ffi::RSMPI_ERRORS_RETURN);
    }
}

/// MPI's words for an error code.
fn error_string(code: c_int) -> String {
    let mut buffer = [0 as c_char; ffi::MPI_MAX_ERROR_STRING as usize + 1];
    let mut len: c_int = 0;
    // SAFETY: the buffer holds MPI_MAX_ERROR_STRING characters and more, as
    // MPI_Error_string requires, and `len` is valid for a write.
    let status = unsafe { ffi::MPI_Error_string(code, buffer.as_mut_ptr(), &mut len) };
    if status != 0 {
        return format!("MPI error code {code}");
    }
    let len = usize::try_from(len).unwrap_or(0).min(buffer.len());
    let bytes: Vec<u8> = buffer[..len].iter().map(|&c| c as u8).collect();
    format!("{}, MPI error code {code}", String::from_utf8_lossy(&bytes))
}
