//! What the process-pool tests share: scratch directories that tasks and
//! tests synchronise through, bounded waits, a look at our child processes
//! and open descriptors (in /proc on Linux; a Toolhelp snapshot and the
//! handle count on Windows), a few tasks, one test at a time ([`alone`]),
//! how the pool's own kills are reported on each platform, and panics on
//! purpose kept quiet.
//!
//! Nothing here sleeps and hopes: every wait polls for a condition and fails
//! clearly when [`PATIENCE`] runs out.

#![allow(dead_code)] // each test binary uses a different part

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{Error, Executor, Future};

/// How long any wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How long a blocking task waits for its release before giving up.
pub const BLOCK_AT_MOST: Duration = Duration::from_secs(30);

/// A fresh directory under the system's temp dir, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "concurrent-futures-{label}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create a scratch dir");
        Scratch(dir)
    }

    /// The directory that [`parents_scratch`] names in our workers, for
    /// code that takes no argument, such as an initializer. One at a time.
    pub fn for_workers(label: &str) -> Self {
        let me = std::process::id();
        let dir = std::env::temp_dir().join(format!("concurrent-futures-{label}-{me}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create a scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The directory as a task argument.
    pub fn arg(&self) -> String {
        self.0.to_str().expect("a UTF-8 temp dir").to_owned()
    }

    /// Creates `name`, e.g. the file blocked tasks wait for.
    pub fn touch(&self, name: &str) {
        write_atomically(&self.path(name), "");
    }

    /// The names of the files whose name starts with `prefix`, leaving out
    /// the temporary files of a [`write_atomically`] still under way.
    pub fn files(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .expect("read the scratch dir")
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with(prefix) && !name.contains(".tmp"))
            .collect();
        names.sort();
        names
    }

    /// Waits until `count` files start with `prefix`; returns their names.
    pub fn wait_for_files(&self, prefix: &str, count: usize) -> Vec<String> {
        wait_until(&format!("{count} files named {prefix}*"), || {
            let names = self.files(prefix);
            (names.len() >= count).then_some(names)
        })
    }

    /// Waits for the file `name` and reads the pid in it.
    pub fn wait_for_pid(&self, name: &str) -> u32 {
        self.wait_for_files(name, 1);
        read_pid(&self.path(name))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// In a worker: the directory [`Scratch::for_workers`] made in the pool.
pub fn parents_scratch(label: &str) -> PathBuf {
    #[cfg(unix)]
    let parent = std::os::unix::process::parent_id();
    #[cfg(windows)]
    let parent = windows::processes()
        .into_iter()
        .find(|&(pid, _)| pid == std::process::id())
        .expect("this process is in the snapshot")
        .1;
    std::env::temp_dir().join(format!("concurrent-futures-{label}-{parent}"))
}

/// Writes a whole file at once (through a rename), so a reader never sees
/// it half written.
pub fn write_atomically(path: &Path, contents: &str) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, contents).expect("write a scratch file");
    fs::rename(&tmp, path).expect("rename a scratch file");
}

pub fn read_pid(path: &Path) -> u32 {
    let text = fs::read_to_string(path).expect("read a pid file");
    text.trim().parse().expect("a pid file holds a pid")
}

/// Polls `check` until it gives `Some`, failing after [`PATIENCE`].
pub fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {PATIENCE:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

/// The future's outcome, failing the test if it is not resolved within
/// [`PATIENCE`] (so a broken pool fails a test instead of hanging it).
pub fn settle<R>(future: &Future<R>) -> Result<R, Error> {
    match future.result_timeout(PATIENCE) {
        Err(Error::Timeout) if !future.done() => {
            panic!("a future was still unresolved after {PATIENCE:?}")
        }
        outcome => outcome,
    }
}

/// The state letter of process `pid` (R, S, Z...), or `None` if it is gone.
/// Windows has no states to read: `R` while it runs.
pub fn state(pid: u32) -> Option<char> {
    #[cfg(unix)]
    return stat(pid).map(|(state, _)| state);
    #[cfg(windows)]
    return windows::processes()
        .iter()
        .any(|&(p, _)| p == pid)
        .then_some('R');
}

/// Waits until our child `pid` has died completely: every one of its
/// threads has exited, so every descriptor or handle it held is closed.
///
/// On Unix its zombie state letter alone does not say so: a process's
/// first thread shows `Z` while its other threads are still exiting. The
/// system reports a child to `waitid` only once all are gone; `WNOWAIT`
/// leaves it to be reaped by whoever owns it. On Windows a process leaves
/// the process list once it has ended.
pub fn wait_for_death(pid: u32) {
    wait_until("the process to die", || {
        #[cfg(unix)]
        return waitable(pid).then_some(());
        #[cfg(windows)]
        return (!alive(pid)).then_some(());
    });
}

/// Whether our child `pid` has exited and can be reaped (it is not).
#[cfg(unix)]
fn waitable(pid: u32) -> bool {
    // SAFETY: all-zero bytes are a valid `siginfo_t` (plain integers and
    // unions of them); waitid writes into it and touches nothing else.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable siginfo_t; `pid` is our child
    // (the caller's), and WNOWAIT leaves it unreaped.
    let found = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    let error = std::io::Error::last_os_error();
    assert_eq!(found, 0, "waitid on child {pid}: {error}");
    // SAFETY: waitid succeeded, so `info` holds a child's status, or is
    // still zeroed (pid 0) when no child has changed state.
    unsafe { info.si_pid() == pid as libc::pid_t }
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    matches!(state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// Whether /proc still has an entry for `pid`, even a zombie one. Windows
/// lists only running processes (an exited one whose handle is still open,
/// its "zombie", is not in a snapshot), so there this is [`alive`].
pub fn exists(pid: u32) -> bool {
    #[cfg(unix)]
    return Path::new(&format!("/proc/{pid}")).exists();
    #[cfg(windows)]
    return alive(pid);
}

/// The pids a helper run reports on the first line of its standard output
/// (piped), as `LABEL PID PID...`. A helper that says nothing else within
/// [`PATIENCE`] is killed, and the test fails.
pub fn reported_pids(helper: &mut std::process::Child, label: &str) -> Vec<u32> {
    use std::io::{BufRead, BufReader};
    let stdout = helper.stdout.take().expect("the helper's piped stdout");
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = line_tx.send(line);
    });
    let line = line_rx.recv_timeout(PATIENCE);
    match line.as_deref().map(|line| line.strip_prefix(label)) {
        Ok(Some(pids)) if pids.starts_with(' ') => pids
            .split_whitespace()
            .map(|pid| pid.parse().unwrap())
            .collect(),
        _ => {
            let _ = helper.kill();
            let _ = helper.wait();
            panic!("the helper did not report its {label}: {line:?}");
        }
    }
}

/// Runs `command` (`what` it is, for the message) to its end and returns
/// its standard output and error, as text; fails, showing both, unless it
/// exited successfully.
pub fn output_of(command: &mut std::process::Command, what: &str) -> (String, String) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{what}: {stdout}\n{stderr}");
    (stdout, stderr)
}

/// Those of `pids` still alive after up to `within` (polled): processes
/// that the test started, which it kills before it returns them.
pub fn survivors(pids: &[u32], within: Duration) -> Vec<u32> {
    let start = Instant::now();
    let mut left = pids.to_vec();
    while !left.is_empty() && start.elapsed() < within {
        left.retain(|&pid| alive(pid));
        thread::sleep(Duration::from_millis(2));
    }
    for &pid in &left {
        try_kill(pid);
    }
    left
}

/// Our child processes, zombies included: every pid whose parent is us.
pub fn children() -> Vec<u32> {
    let me = std::process::id();
    #[cfg(unix)]
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| matches!(stat(pid), Some((_, parent)) if parent == me))
        .collect();
    #[cfg(windows)]
    let mut pids: Vec<u32> = windows::processes()
        .into_iter()
        .filter_map(|(pid, parent)| (parent == me).then_some(pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// Fails unless we have no child process at all, not even a zombie.
pub fn assert_no_children() {
    let left = children();
    let described: Vec<String> = left
        .iter()
        .map(|&pid| format!("{pid} ({:?})", state(pid)))
        .collect();
    assert!(left.is_empty(), "child processes left: {described:?}");
}

/// (state, parent pid) from /proc/PID/stat.
#[cfg(unix)]
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let mut fields = text[text.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.next()?.parse().ok()?))
}

/// How many descriptors (on Windows, handles) this process has open.
pub fn open_fds() -> usize {
    #[cfg(unix)]
    return fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count();
    #[cfg(windows)]
    return windows::handle_count();
}

/// How a task's future fails when its worker died by `signal` on Unix, or
/// exited with `code` on Windows (the other platform's half is unused).
#[cfg(unix)]
fn worker_died(signal: libc::c_int, _code: u32) -> Error {
    Error::WorkerDied {
        exit_code: None,
        signal: Some(signal),
    }
}

/// As on Unix, above.
#[cfg(windows)]
fn worker_died(_signal: (), code: u32) -> Error {
    Error::WorkerDied {
        exit_code: Some(code as i32),
        signal: None,
    }
}

/// The signals the Unix halves of the calls below name; Windows has none.
#[cfg(unix)]
use libc::{SIGABRT, SIGKILL, SIGTERM};
#[cfg(windows)]
const SIGABRT: () = ();
#[cfg(windows)]
const SIGKILL: () = ();
#[cfg(windows)]
const SIGTERM: () = ();

/// How a running task's future fails when `kill_workers` (or a cancel, or
/// a timeout) killed its worker: SIGKILL on Unix; on Windows the exit code
/// the pool ends a worker's job with.
pub fn killed_by_pool() -> Error {
    worker_died(SIGKILL, 0xE0CF_0009)
}

/// As [`killed_by_pool`], for `terminate_workers`: SIGTERM on Unix.
pub fn terminated_by_pool() -> Error {
    worker_died(SIGTERM, 0xE0CF_000F)
}

/// How a running task's future fails when its worker called
/// `std::process::abort`: SIGABRT on Unix; on Windows the fast-fail status
/// that abort raises, `STATUS_STACK_BUFFER_OVERRUN`.
pub fn aborted() -> Error {
    worker_died(SIGABRT, 0xC000_0409)
}

/// Kills process `pid` from outside the pool, as the OOM killer or a user
/// might: SIGKILL on Unix, `TerminateProcess` with exit code 9 on Windows.
pub fn kill_from_outside(pid: u32) {
    assert!(try_kill(pid), "kill {pid} from outside");
}

/// Kills `pid` as [`kill_from_outside`] does, if it is there; whether it
/// was. The caller knows `pid` to be a process of its test (a worker the
/// pool has not reaped yet, or what a task started), or gone.
pub fn try_kill(pid: u32) -> bool {
    #[cfg(unix)]
    // SAFETY: kill(2) touches no memory; `pid` is a process of this test
    // (see above), so no stranger's.
    return unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } == 0;
    #[cfg(windows)]
    return windows::terminate(pid, 9);
}

/// How a running task's future fails when [`kill_from_outside`] killed its
/// worker.
pub fn killed_from_outside() -> Error {
    worker_died(SIGKILL, 9)
}

/// How a worker that called `std::process::abort` is described: SIGABRT
/// on Unix; on Windows the fast-fail status that abort raises.
#[cfg(unix)]
pub const ABORTED: &str = "signal 6";
#[cfg(windows)]
pub const ABORTED: &str = "code 0xC0000409";

/// The process list and handle count, which Windows has no /proc for.
#[cfg(windows)]
mod windows {
    use windows_sys::Win32::Foundation::{CloseHandle, INVALID_HANDLE_VALUE};
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW,
        TH32CS_SNAPPROCESS,
    };

    /// (pid, parent pid) of every running process.
    pub fn processes() -> Vec<(u32, u32)> {
        // SAFETY: a snapshot of the process list; no pointers.
        let snapshot = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
        assert_ne!(snapshot, INVALID_HANDLE_VALUE, "a process snapshot");
        // SAFETY: all zeroes is a valid value of this plain C struct.
        let mut entry: PROCESSENTRY32W = unsafe { std::mem::zeroed() };
        entry.dwSize = size_of::<PROCESSENTRY32W>() as u32;
        let mut found = Vec::new();
        // SAFETY: the snapshot is open and `entry` has its size set.
        let mut more = unsafe { Process32FirstW(snapshot, &mut entry) } != 0;
        while more {
            found.push((entry.th32ProcessID, entry.th32ParentProcessID));
            // SAFETY: as above.
            more = unsafe { Process32NextW(snapshot, &mut entry) } != 0;
        }
        // SAFETY: the snapshot's handle, closed once.
        unsafe { CloseHandle(snapshot) };
        found
    }

    /// Ends process `pid` with exit code `code`; whether that worked.
    pub fn terminate(pid: u32, code: u32) -> bool {
        use windows_sys::Win32::System::Threading::{
            OpenProcess, PROCESS_TERMINATE, TerminateProcess,
        };
        // SAFETY: plain values; a null handle on failure.
        let process = unsafe { OpenProcess(PROCESS_TERMINATE, 0, pid) };
        if process.is_null() {
            return false;
        }
        // SAFETY: the handle just opened, with the right to terminate.
        let ended = unsafe { TerminateProcess(process, code) } != 0;
        // SAFETY: the handle just opened, closed once.
        unsafe { CloseHandle(process) };
        ended
    }

    /// How many handles this process has open. Wine 8's
    /// `GetProcessHandleCount` answers 0, so this asks about each handle
    /// value in turn (they are multiples of 4; this process has far fewer
    /// than the 4,096 looked at; a handle table fills from the bottom).
    pub fn handle_count() -> usize {
        use windows_sys::Win32::Foundation::GetHandleInformation;
        let count = (1..=4_096_usize)
            .filter(|&n| {
                let mut flags = 0;
                // SAFETY: any value may be asked about; `flags` is valid for
                // writes. A value that is no open handle fails.
                unsafe { GetHandleInformation((n * 4) as _, &mut flags) != 0 }
            })
            .count();
        assert_ne!(count, 0, "a process has handles open");
        count
    }
}

// ---- Tasks, run in the workers ------------------------------------------

/// The worker's pid.
pub fn pid(_: ()) -> u32 {
    std::process::id()
}

/// Writes the worker's pid to `DIR/started-PID`, then waits for
/// `DIR/release` (for at most [`BLOCK_AT_MOST`]); returns the pid.
pub fn block_until_released(dir: String) -> u32 {
    let dir = Path::new(&dir);
    let me = std::process::id();
    write_atomically(&dir.join(format!("started-{me}")), &me.to_string());
    let deadline = Instant::now() + BLOCK_AT_MOST;
    while !dir.join("release").exists() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2));
    }
    me
}

/// Creates `DIR/ran-PID`: proof that the task ran.
pub fn leave_a_mark(dir: String) -> u32 {
    let me = std::process::id();
    write_atomically(&Path::new(&dir).join(format!("ran-{me}")), "");
    me
}

// ---- One test at a time, and panics on purpose ---------------------------

/// Held by every process test while it runs. libtest runs a binary's tests
/// side by side, and these count this process's children and descriptors,
/// which another test's pool would change.
pub fn alone() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    // A test that failed holding it poisons it; the next one still runs.
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the message of a panic that a test provokes on purpose, e.g.
/// `panic!("{EXPECTED}no {n} today")`: [`quiet_expected_panics`] prints
/// nothing for it.
pub const EXPECTED: &str = "expected panic: ";

thread_local! {
    /// Whether this thread is inside [`expect_panic`].
    static EXPECTING: Cell<bool> = const { Cell::new(false) };
    /// Where the panic inside [`expect_panic`] happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keeps the panics a test provokes on purpose off stderr: those whose
/// message starts with [`EXPECTED`], and those inside [`expect_panic`].
/// Every other panic reaches the hook that was there before, with its
/// backtrace under `RUST_BACKTRACE=1`. Installed once per process. Nothing
/// of a test's `main` runs in a worker, so there the pool's initializer
/// installs it (`.initializer(quiet_expected_panics)`), and the pool's own
/// hook, installed after, wraps it and still records where a task
/// panicked. Code that installs it as it panics is quiet too, but the
/// pool's hook, then inside it, records no location.
pub fn quiet_expected_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if EXPECTING.get() {
                LOCATION.set(info.location().map(ToString::to_string));
                return;
            }
            let payload = info.payload();
            let message = (payload.downcast_ref::<String>().map(String::as_str))
                .or_else(|| payload.downcast_ref::<&str>().copied());
            if !message.is_some_and(|m| m.starts_with(EXPECTED)) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, which must panic, without printing the panic; returns its
/// payload and where it happened (`file:line:column`).
pub fn expect_panic<T>(f: impl FnOnce() -> T) -> (Box<dyn Any + Send>, Option<String>) {
    quiet_expected_panics();
    EXPECTING.set(true);
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    EXPECTING.set(false);
    match outcome {
        Ok(_) => panic!("expect_panic: the closure returned instead of panicking"),
        Err(payload) => (payload, LOCATION.take()),
    }
}

/// A quick task: its input doubled.
pub fn twice(n: u64) -> u64 {
    2 * n
}

/// Takes `consumed` results of a default `map` of [`twice`] over an endless
/// input on `executor`, and says how many inputs it had pulled beyond them.
/// While every chunk is one input, that is at most `LOOK_AHEAD_PER_WORKER`
/// per worker.
pub fn pulled_ahead(executor: &impl Executor, consumed: u64) -> usize {
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let inputs = (0_u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let mut results = executor.map(twice, inputs).timeout(PATIENCE);
    for n in 0..consumed {
        assert_eq!(results.next(), Some(Ok(twice(n))));
    }
    pulled.load(Ordering::SeqCst) - consumed as usize
}
