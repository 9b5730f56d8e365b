//! A task that talks to the terminal does so as the program would. A
//! worker leads its own process group (so that stopping it stops whatever
//! its tasks started, see `process_tree`), which on a terminal makes it a
//! background job; a background job that writes to the terminal with
//! `stty tostop` set, or changes the terminal's settings (`tcsetattr`),
//! is stopped by SIGTTOU. A worker ignores SIGTTOU, so both go through.
//!
//! The case makes a pseudo-terminal with `tostop` set and runs this binary
//! again on it (the helper, see `HELPER`) as a session leader whose
//! controlling terminal it is, in the foreground, as a shell runs a
//! program. The helper's pool (with a per-task timeout, so that a stopped
//! worker fails the task instead of hanging the case) runs one task that
//! prints a line and sets the terminal's settings; the helper prints the
//! outcome. The test reads it all from the terminal's other side.

use crate::harness;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use concurrent_futures::ProcessPoolExecutor;

use crate::fixtures::PATIENCE;

/// Set, this variable makes a run the helper.
const HELPER: &str = "CONCURRENT_FUTURES_TEST_TERMINAL_HELPER";

/// The per-task timeout of the helper's pool: how long a stopped worker
/// holds its task before it is killed. Without the fix, the case takes
/// this long and fails.
const TASK_TIMEOUT: Duration = Duration::from_secs(10);

/// The cases of this file, run by `main.rs`.
pub(crate) const CASES: &[harness::Case] =
    harness::cases![a_task_writes_to_and_sets_the_terminal_as_the_program_would];

/// In a helper run, runs the helper, which never returns; otherwise
/// returns.
pub(crate) fn helper_mode() {
    if std::env::var_os(HELPER).is_some() {
        let executor = ProcessPoolExecutor::builder()
            .max_workers(1)
            .timeout(TASK_TIMEOUT)
            .build()
            .unwrap();
        let outcome = executor.submit(talk_to_the_terminal, ()).result();
        println!("the task's outcome: {outcome:?}");
        std::process::exit(0);
    }
}

/// A task: prints a line, then sets the terminal's settings to what they
/// are (through standard output, the terminal); `tcsetattr`'s result.
fn talk_to_the_terminal(_: ()) -> i32 {
    println!("a line from the task");
    // SAFETY: a zeroed `termios` is valid storage for tcgetattr to fill;
    // tcsetattr reads it back.
    unsafe {
        let mut settings: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(1, &mut settings) != 0 {
            return -1;
        }
        libc::tcsetattr(1, libc::TCSANOW, &settings)
    }
}

fn a_task_writes_to_and_sets_the_terminal_as_the_program_would() {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: both out-pointers are valid for writes; no name, settings or
    // window size is asked for.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty just opened both; nothing else owns them.
    let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // SAFETY: a zeroed `termios` is valid storage for tcgetattr to fill;
    // the slave is an open terminal.
    unsafe {
        let mut settings: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut settings), 0);
        settings.c_lflag |= libc::TOSTOP;
        assert_eq!(
            libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &settings),
            0
        );
    }
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .env(HELPER, "1")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    // SAFETY: between fork and exec the closure calls only setsid and
    // ioctl, which are async-signal-safe: the helper leads a new session,
    // and its standard input, the terminal, becomes that session's
    // controlling terminal, with the helper's group in the foreground.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut helper = command.spawn().expect("start the helper");
    // Our copies of the terminal's side close with the command, so the
    // reader below ends when the helper and its workers are gone.
    drop(command);
    let (text_tx, text_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut text = Vec::new();
        // Ends with EIO once no process holds the terminal's side.
        let _ = (&master).read_to_end(&mut text);
        let _ = text_tx.send(String::from_utf8_lossy(&text).into_owned());
    });
    let text = match text_rx.recv_timeout(TASK_TIMEOUT + PATIENCE) {
        Ok(text) => text,
        Err(_) => {
            let _ = helper.kill();
            panic!("the helper did not finish");
        }
    };
    let status = helper.wait().unwrap();
    assert!(status.success(), "{status}: {text}");
    assert!(text.contains("a line from the task"), "{text}");
    assert!(text.contains("the task's outcome: Ok(0)"), "{text}");
}
