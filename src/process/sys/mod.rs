//! Layer: process sys. May use: std only.
//! The system calls under the process transport, one folder per OS, under
//! the same names, so that the files above (`pool_side`, `worker_side`,
//! `frame`, `arena`, `gate`) are the same everywhere. Nothing here imports
//! a file above it.
//!
//! Each OS has the same files: `launch.rs` (starting, stopping, reaping),
//! `channel.rs` (the channel end), `worker_side.rs` (the child's side),
//! `memory.rs` (shared memory); Unix also `passing.rs` (descriptors passed
//! with bytes), Windows `job_object.rs` (a worker's job object).
//! `handover.rs` holds what both share: the types that hand memory over
//! and the two traits of a channel end that can hand a descriptor over.
//!
//! # The contract: what each OS provides
//!
//! | what | Unix (`unix/`: Linux, and the portable path macOS takes) | Windows (`windows/`) |
//! |---|---|---|
//! | `launch(marker, page)` | two socket pairs, the calls' end as standard input; the answers' end and the gate's page passed on it (`SCM_RIGHTS`); its own process group | two anonymous pipes and the page's section inherited by that one child alone, their values in the marker; a kill-on-close job object |
//! | `OsChild::signal`, `reap` | a signal to the process group; `waitid`, then the rest of the group | `TerminateJobObject` with an exit code; wait, then the job |
//! | `Signal`, `KILL`, `TERMINATE`, `Status`, `code_and_signal`, `describe` | signals and exit statuses | exit codes (`error`'s) |
//! | `ChannelEnd`: a channel end whose reads and writes may time out | the socket's own timeouts; `poll` | a watcher thread that ends the job at the time |
//! | `SendFd`, `ReceiveFd` (`handover`): a descriptor beside the bytes | `SCM_RIGHTS` (`unix/passing.rs`) | none: no `Descriptor` exists |
//! | `page`, `check_page`, `map_page`, `unmap` | Linux a sealed `memfd`; portable a POSIX shared memory object | a section of the paging file |
//! | `arena_memory`, `arena_size`, `map_arena`, `keep_freed` | Linux a sealed `memfd`, pre-faulted, not inherited by `fork`; portable: unsupported | unsupported |
//! | `UNREAD_BYTES` | what a socket surely buffers | 0: one call at a time |
//! | the child's side: `take_channel`, `Reader`, `ChildWriter`, `parent_id`, `before_main`, `worker_signals`, `on_worker_stack`, `exit_with_group`, `watch_for_forks`, `end_if_forked` | standard input, the pool's death by `PR_SET_PDEATHSIG` (Linux) or a watchdog thread (portable), `fork()` copies ended | the marker's handles, a 16 MiB thread, no signals, no `fork()` |
//! | `executable`, `file_identity` | `/proc/self/exe` or `current_exe`; device, inode, size | `GetModuleFileNameW`; volume, file index, size |

mod handover;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

pub(crate) use handover::*;
#[cfg(unix)]
pub(crate) use unix::*;
#[cfg(windows)]
pub(crate) use windows::*;
