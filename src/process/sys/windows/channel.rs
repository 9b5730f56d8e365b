//! Layer: process sys. May use: `process::sys::handover`,
//! `process::sys::windows::job_object`, std and windows-sys.
//! A channel end whose reads and writes may time out, on pipes that have
//! no timeouts: a deadline is registered with one watcher thread, which
//! ends the worker's job object when the time comes; the blocked read or
//! write then fails, and is reported as timed out.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::windows::io::AsRawHandle;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;
use std::{ptr, thread};

use super::job_object::{JobObject, KILL};
use crate::process::sys::handover::{Descriptor, ReceiveFd, SendFd};
use windows_sys::Win32::System::Pipes::PeekNamedPipe;

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
    job: Arc<JobObject>,
    deadline: Option<Instant>,
    /// The watcher's entry for the deadline, while one is set.
    watched: Option<Entry>,
}

impl ChannelEnd {
    pub(super) fn new(pipe: File, job: Arc<JobObject>) -> Self {
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
    deadlines: BTreeMap<Entry, Arc<JobObject>>,
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

    fn watch(&self, at: Instant, job: Arc<JobObject>) -> Entry {
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
