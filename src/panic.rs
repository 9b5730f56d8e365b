//! Layer: core. May use: `error`.
//! Turning a task's panic into [`Error::Panicked`].
//!
//! The panic message is in the payload, but its location is only given to the
//! panic hook. So the first executor built installs a hook that records the
//! location in a thread-local while a task runs under [`catch`], and then calls
//! the hook that was there before (so the usual message still reaches stderr).
//! A hook the program installs later replaces ours; `location` is then `None`.
//!
//! A serving process (a process pool's worker, an MPI rank) installs the
//! hook with [`install_serving_hook`], after the handshake, which on a
//! process pool runs the pool's initializer, so that a hook the initializer
//! sets is wrapped, not replacing. (An MPI rank runs an executor's
//! initializer later, as a task: a hook set there replaces ours, and the
//! rank's task panics lose their location.) There a caught panic
//! prints nothing: its message, location and, when `RUST_BACKTRACE` asks for
//! one, backtrace travel to the caller in the error, which shows them where
//! the caller's own output goes (libtest's capture, say); the worker's
//! stderr is the caller's terminal, which nothing captures.

use std::any::Any;
use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Error;

thread_local! {
    /// Whether this thread is inside [`catch`], so the hook records a location.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// The location of the last panic caught on this thread, and in a
    /// serving process its backtrace, if one was asked for.
    static REPORT: RefCell<Report> = const { RefCell::new((None, None)) };
}

/// A caught panic's location and backtrace, as the hook saw them.
type Report = (Option<String>, Option<String>);

/// Whether this process serves a pool's tasks: see [`install_serving_hook`].
static SERVING: AtomicBool = AtomicBool::new(false);

/// Installs the location-recording hook, once per process.
pub(crate) fn install_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.get() {
                let location = info.location().map(ToString::to_string);
                // ORDERING: set once, before the serving process runs any
                // task, by the thread that starts its tasks' threads.
                let serving = SERVING.load(Ordering::Relaxed);
                let backtrace = if serving { backtrace() } else { None };
                REPORT.set((location, backtrace));
                if serving {
                    return;
                }
            }
            previous(info);
        }));
    });
}

/// [`install_hook`] for a serving process: a panic caught there prints
/// nothing, and its report travels in the error instead.
pub(crate) fn install_serving_hook() {
    // ORDERING: see the load in the hook.
    SERVING.store(true, Ordering::Relaxed);
    install_hook();
}

/// The backtrace of the panic being reported, when `RUST_BACKTRACE` asks
/// for one, as the default hook would print it (`full`: every frame).
fn backtrace() -> Option<String> {
    let style = std::env::var_os("RUST_BACKTRACE")?;
    if style == "0" {
        return None;
    }
    let backtrace = Backtrace::force_capture();
    Some(match style == "full" {
        true => format!("{backtrace:#}"),
        false => format!("{backtrace}"),
    })
}

/// Runs `f`, turning a panic into [`Error::Panicked`].
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Error> {
    let outer = CATCHING.replace(true);
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.set(outer);
    outcome.map_err(|payload| {
        let (location, backtrace) = REPORT.take();
        let error = Error::Panicked {
            message: message(payload.as_ref()),
            location,
            backtrace,
        };
        drop_payload(payload);
        error
    })
}

/// Drops `value`, whose `Drop` is user code, where nobody would see it
/// panic (on a pool's own thread, or in a serving process): a panic in it
/// is caught and forgotten.
pub(crate) fn drop_caught<T>(value: T) {
    let _ = catch(move || drop(value));
}

/// Drops a panic payload, whose `Drop` is user code and may panic too: that
/// second payload is leaked rather than dropped (which could panic again).
fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// The text of a panic payload: `panic!` makes a `&str` or a `String`.
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "the panic payload was not a string".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_passes_values_through() {
        assert_eq!(catch(|| 41 + 1), Ok(42));
    }

    #[test]
    fn catch_records_message_and_location() {
        install_hook();
        let line = line!() + 1;
        let error = catch(|| -> u8 { panic!("bad {}", 7) }).unwrap_err();
        let Error::Panicked {
            message, location, ..
        } = error
        else {
            panic!("expected Panicked, got {error:?}");
        };
        assert_eq!(message, "bad 7");
        let location = location.expect("the hook records the location");
        assert!(
            location.starts_with(&format!("{}:{line}:", file!())),
            "{location}"
        );
    }

    #[test]
    // `drop_payload` leaks the second payload on purpose (dropping it could
    // panic again), and miri's leak check fails the run for it.
    #[cfg_attr(miri, ignore = "leaks the second payload by design")]
    fn a_payload_whose_drop_panics_is_still_caught() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("the payload's drop panics");
            }
        }
        let error = catch(|| std::panic::panic_any(Bomb)).unwrap_err();
        assert!(matches!(error, Error::Panicked { .. }), "{error:?}");
    }

    #[test]
    fn non_string_payloads_get_a_placeholder() {
        let error = catch(|| std::panic::panic_any(5_u8)).unwrap_err();
        assert!(
            matches!(error, Error::Panicked { message, .. } if message.contains("not a string"))
        );
    }
}
