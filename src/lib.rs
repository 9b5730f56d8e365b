// Layer: root. May use: every module it declares. Declares the modules
// and the public API. (Plain comments: the `//!` lines below are the
// crate's docs.)
//! Python's `concurrent.futures`, for Rust: run many tasks at once, on threads
//! or on processes, behind one [`Executor`] trait, one [`Future`] and one `map`.
//!
//! # Threads or processes?
//!
//! Some programs spend their time **waiting**: for the network, the disk, a
//! database. They are *I/O-bound*, and threads suit them: while one thread
//! waits, another runs, and all of them share the process's memory. Three
//! downloads of two seconds each take two seconds, not six:
//!
//! ```
//! use concurrent_futures::ThreadPoolExecutor;
//! use std::time::{Duration, Instant};
//!
//! fn download_page(url: &str) -> String {
//!     std::thread::sleep(Duration::from_millis(200)); // the network delay
//!     format!("Downloaded {url}")
//! }
//!
//! let start = Instant::now();
//! let executor = ThreadPoolExecutor::new(3);
//! for line in executor.map(download_page, ["web1", "web2", "web3"]) {
//!     println!("{}", line?);
//! }
//! assert!(start.elapsed() < Duration::from_millis(500)); // about 200 ms, not 600
//! # Ok::<(), concurrent_futures::Error>(())
//! ```
//!
//! Other programs spend their time **computing**. They are *CPU-bound*. Rust
//! has no GIL, so threads already use every core for them; processes add
//! isolation: each has its own memory, and a crash (a segfault, an abort, an
//! out-of-memory kill) takes down one worker, not your program. Python needs
//! processes to use more than one core; in Rust, reach for them when a task
//! might crash or leak, or must be killable. Workers are new runs of your
//! program that serve before `main` ever runs, so nothing needs guarding:
//! Python's `if __name__ == "__main__":` has no counterpart to forget, in a
//! program, a test, a doctest or a library ([`init`] remains, optional):
//!
//! ```
//! use concurrent_futures::{Executor, ProcessPoolExecutor};
//!
//! fn sum_of_squares(n: u64) -> u128 {
//!     (0..n).map(|i| u128::from(i) * u128::from(i)).sum()
//! }
//!
//! fn main() -> Result<(), concurrent_futures::Error> {
//!     let executor = ProcessPoolExecutor::new(2); // one process per core
//!     for sum in executor.map(sum_of_squares, [1_000, 1_000]) {
//!         assert_eq!(sum?, 332_833_500);
//!     }
//!     Ok(())
//! }
//! ```
//!
//! | | threads | processes |
//! |---|---|---|
//! | memory | shared | separate |
//! | start-up cost | low | higher |
//! | suits | I/O-bound work | CPU-bound, crash-prone work |
//!
//! # The API in one screen
//!
//! ```
//! use concurrent_futures::{as_completed, wait, Executor, ReturnWhen, ThreadPoolExecutor};
//! use std::time::Duration;
//!
//! fn task(n: u32) -> String {
//!     format!("Task {n} done")
//! }
//!
//! let executor = ThreadPoolExecutor::new(3);
//!
//! // map: results in input order, each a Result.
//! for result in executor.map(task, [1, 2, 3]) {
//!     println!("{}", result?);
//! }
//!
//! // map_unordered: each result as soon as its task finishes, for throughput.
//! let mut lines = executor.map_unordered(task, [1, 2, 3]).collect::<Result<Vec<_>, _>>()?;
//! lines.sort();
//! assert_eq!(lines, ["Task 1 done", "Task 2 done", "Task 3 done"]);
//!
//! // starmap: a tuple of arguments per task, in input order.
//! let sums: Vec<_> = executor.starmap(|a: u32, b: u32| a + b, [(1, 2), (3, 4)]).collect();
//! assert_eq!(sums, [Ok(3), Ok(7)]);
//!
//! // submit: one task, one Future.
//! let future = executor.submit(task, 4);
//! assert_eq!(future.result()?, "Task 4 done");
//!
//! // wait and as_completed: many futures at once.
//! let futures: Vec<_> = (5..8).map(|n| executor.submit(task, n)).collect();
//! let (done, not_done) = wait(&futures, ReturnWhen::AllCompleted, Some(Duration::from_secs(10)));
//! assert_eq!((done.len(), not_done.len()), (3, 0));
//! for future in as_completed(&futures) {
//!     println!("{}", future.result()?);
//! }
//!
//! // scope and map_scoped: tasks that borrow local data, no 'static or Arc.
//! let names = vec![String::from("web1"), String::from("web2")];
//! let lengths = executor.map_scoped(|name| name.len(), &names);
//! assert_eq!(lengths, [Ok(4), Ok(4)]);
//!
//! executor.shutdown(); // also done on drop, like leaving Python's `with` block
//! # Ok::<(), concurrent_futures::Error>(())
//! ```
//!
//! In async code, `.await` a [`Future`] instead of calling `result()`, and
//! turn `as_completed` into a [`Stream`](futures_core::Stream) with
//! [`AsCompleted::into_stream`]. Neither blocks the runtime's thread; both
//! are woken by the completing task (`examples/async_bridge.rs` is a whole
//! tokio program):
//!
//! ```
//! use concurrent_futures::{as_completed, ThreadPoolExecutor};
//! use futures_util::StreamExt;
//!
//! let executor = ThreadPoolExecutor::new(2);
//! let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! runtime.block_on(async {
//!     assert_eq!(executor.submit(|n: u32| n * 2, 21).await, Ok(42));
//!     let futures: Vec<_> = (1..=3).map(|n| executor.submit(|n: u32| n, n)).collect();
//!     let mut completed = as_completed(&futures).into_stream();
//!     while let Some(future) = completed.next().await {
//!         println!("{}", future.result()?); // done already: returns at once
//!     }
//!     Ok::<(), concurrent_futures::Error>(())
//! })?;
//! # Ok::<(), concurrent_futures::Error>(())
//! ```
//!
//! Errors are values: a task that panics gives [`Error::Panicked`] on its own
//! future and the pool carries on. Every way a task can fail is one variant
//! of [`Error`].
//!
//! Coming from Python? The [`guide`] maps every part of `concurrent.futures`
//! to its Rust form and says where the behaviour differs.
//!
//! # Writing code for any executor
//!
//! The [`Executor`] trait takes plain functions `fn(A) -> R` with
//! serializable arguments and results ([`Payload`]), so the same code runs
//! on a [`ThreadPoolExecutor`] or a [`ProcessPoolExecutor`]: switching is one
//! identifier. [`ThreadPoolExecutor`]'s own methods of the same names are
//! wider: any closure, any `Send` data, and for `starmap` one to six
//! arguments ([`Spread`]) where the trait takes two. To choose the pool at
//! run time (threads or processes from a flag), hold an [`AnyExecutor`].
//!
//! # Context for many tasks: `Shared`
//!
//! A task cannot capture anything, so the context it needs (a table, a
//! model, a config) travels in its argument. Put it in a [`Shared`] once,
//! and pass clones of the handle: a process pool sends the value to each
//! worker at most once, however many tasks use it, and the workers drop it
//! when your last handle is gone. Plain data (`Shared<[T]>` of numbers, or
//! of any `bytemuck::Pod` type) is not even copied to the workers on Unix:
//! it lives in one piece of shared memory that every process maps
//! read-only. On the thread
//! pool a `Shared` is an `Arc`, so code written for [`Executor`] runs with
//! it everywhere:
//!
//! ```
//! use concurrent_futures::{Executor, ProcessPoolExecutor, Shared};
//!
//! fn score((weights, row): (Shared<[f64]>, usize)) -> f64 {
//!     weights[row * 4..row * 4 + 4].iter().sum()
//! }
//!
//! let executor = ProcessPoolExecutor::new(2);
//! let weights = Shared::from_vec(vec![0.25; 4_000]); // put once
//! let scores: Vec<_> = executor
//!     .map(score, (0..1000).map(|row| (weights.clone(), row)))
//!     .collect::<Result<_, _>>()?;
//! assert!(scores.iter().all(|&s| s == 1.0));
//! # Ok::<(), concurrent_futures::Error>(())
//! ```
//!
//! # Tracing across processes
//!
//! With the cargo feature `tracing`, every task gets a `tracing` span named
//! `task`, a child of the span that was current at `submit`, with the
//! fields `queue_wait_us` (until a worker took it) and `run_us`; a task
//! message of a process pool or an MPI executor adds `items` (inputs in the
//! message: one, or a `map` chunk), `bytes_sent`, `bytes_received` and
//! `worker_pid`, or `error` if the pool failed it. On the thread pool the
//! task runs in its span, with the caller's subscriber. On the remote
//! pools, while the caller's subscriber wants the span, the task's own
//! events (at the caller's level or above) are captured where the task
//! runs and, when its outcomes arrive, replayed in the caller's subscriber
//! under the span, at their level, with target `concurrent_futures::task`
//! and their worker-side target and spans as fields. Events of threads the
//! task starts itself are not captured. Both sides of this are the remote
//! layer's, shared by the process pool and the MPI executor; CI checks it
//! on the process pool (`tests/tracing.rs`). Without the feature none of
//! it is built; with it and no subscriber, a remote task message's header
//! has one byte more. `examples/tracing.rs` shows it with `tracing-subscriber`:
//!
//! ```text
//!  INFO batch{id=7}:task{items=1 bytes_sent=2 queue_wait_us=54 run_us=1269 bytes_received=100 worker_pid=25303}: concurrent_futures::task: summing squares in process 25303 n=2000 worker_target=tracing
//! ```
//!
//! # Beyond one machine: MPI
//!
//! With the cargo feature `mpi`, `MpiPoolExecutor` runs tasks on MPI
//! ranks, as Python's `mpi4py.futures.MPIPoolExecutor` does: alone, it
//! spawns copies of the program with `MPI_Comm_spawn`; under
//! `mpiexec -n N`, rank 0 runs `main` and the other ranks serve from inside
//! [`init`]. It implements the same [`Executor`] trait, so generic code
//! switches by one identifier. Default builds need no MPI library. The
//! guide's [MPI section](guide#mpi-beyond-one-machine) has the commands, and
//! how to run on a cluster.
//!
//! # Platforms
//!
//! The futures, `map`, `wait`, `as_completed`, the [`ThreadPoolExecutor`],
//! `scope` and the async interop are plain `std` and build on every target
//! whose `std` has threads; CI runs them on Linux and, under Wine, on
//! Windows, and checks them for macOS. The process pool (and the remote
//! layer under it) is built on Linux, macOS and Windows; macOS takes a
//! portable Unix path (`process/sys/unix.rs`) that CI also runs on Linux,
//! and Windows its own system calls (`process/sys/windows/`: anonymous pipes
//! inherited by the one child, a kill-on-close Job object per worker),
//! whose process-pool tests CI runs under Wine. The MPI executor is built
//! on Linux only: elsewhere `MpiPoolExecutor` does not exist, so code that
//! names it fails to compile rather than at run time. Which promise is
//! checked where:
//!
//! | | Linux | portable Unix path (on Linux) | macOS | Windows (under Wine 8) |
//! |---|---|---|---|---|
//! | `ThreadPoolExecutor`, futures, `map`, `wait`, `as_completed`, `scope`, async | yes: every test and example | same code as Linux | builds: clippy | yes: unit tests, 14 test binaries, `download` and `concurrent_futures thread` |
//! | process pool with no set-up (plain `#[test]`s, ten pools at once, no `init()`) | yes: `process_zero_setup`, every default-harness process test | yes | builds (`__mod_init_func`) | yes (`.CRT$XCU`): `process_zero_setup`, `process`, the `squares` fixture (a library with a pool inside, a binary without `init()`), the doctests, the `process_no_setup` criterion bench; the examples `concurrent_futures process` and `square_sum` print the tutorial's lines |
//! | process pool: a crash fails one task, the worker is replaced | yes: `process_isolation` (`worker_death`), `process_faults` | yes: the same tests | builds: clippy | yes: `process_isolation` (`worker_death`: abort `0xC0000409`, access violation `0xC0000005`, exit, `TerminateProcess` from outside), `process` |
//! | cancel of a running task, per-task timeout: the worker and the processes its task started are killed | yes: `process` (`cancel`, `adversarial`) | yes | builds | yes, by the worker's Job object: `process` (`cancel`), `process_isolation` (`adversarial`) |
//! | `max_tasks_per_child`, initializer, `terminate_workers`, `kill_workers` | yes: `process` (`max_tasks_per_child`, `initializer`, `shutdown`) | yes | builds | yes: the same tests |
//! | workers die with the pool, even when it is killed, and with them what their tasks started | yes, by `PR_SET_PDEATHSIG` and a group kill: `process_isolation` (`parent_death`, `process_tree`) | yes, by a watchdog on the channel: the same tests | builds (the same watchdog) | yes, by the kill-on-close Job object: `process_isolation` (`parent_death`, `process_tree`) |
//! | same-binary check, keyed task tags | yes: `process_isolation` (`security`) | yes | builds | yes: the image check (`GetModuleHandleExW`) in the library's unit tests, a stranger's marker in `process_isolation` (`security`); a wrong executable or tag offered by hand is checked on Unix only |
//! | a rebuilt executable: new workers still run the pool's own | yes (`/proc/self/exe`): `process` (`bad_input`) | no: tasks fail with `SpawnFailed` or `BrokenExecutor`, checked by the same test | no, as on the portable path | no (`GetModuleFileNameW`, as on the portable path); a touched one breaks nothing: `process_isolation` (`adversarial`) |
//! | no descriptor growth with pending tasks | yes: `process_isolation` (`fds`) | yes | builds | yes, handles: `process_isolation` (`fds`) |
//! | no listening socket, no named endpoint | yes: socket pairs, the calls' on standard input, each checked by peer pid (`SO_PEERCRED`); `process_isolation` (`security`) | yes | builds (`LOCAL_PEERPID`) | by design: anonymous pipes only, inherited through `PROC_THREAD_ATTRIBUTE_HANDLE_LIST`; the child checks its parent's pid and that both handles are pipes (`security`) |
//! | [`Shared`]: a value crosses to each worker once; plain data in one read-only mapping | yes: `shared` (a sealed `memfd`, unmapped everywhere after the last handle) | yes, a read-only `shm_open` object: `shared` | builds: clippy | sent once per worker, no shared memory: `shared` |
//! | `MpiPoolExecutor` (feature `mpi`) | yes: the MPI step | no | no | no |
//!
//! "Builds" means CI compiles the library, tests and examples for
//! `x86_64-apple-darwin` and `aarch64-apple-darwin` with
//! `cargo clippy --all-targets -D warnings`: macOS binaries cannot run on
//! CI's Linux machine. Windows binaries run under Debian's `wine64` (Wine
//! 8), which lacks `bcryptprimitives.dll!ProcessPrng`, imported by Rust's
//! std: `.ci/wine/processprng.c`, built by `.ci/run` and put beside the
//! binaries, stands in for it (without it an `.exe` exits with code 53 and
//! prints nothing). The process tests read `/proc` on Linux and a Toolhelp
//! snapshot and the handle table on Windows; the cases that are about Unix
//! alone (resource limits, SIGSTOP, SIGCHLD, bytes written into the
//! worker's socket) are left out there. What each CI step checks, and how
//! long it takes, is in the repository's `RELIABILITY.md` ("Platforms:
//! which promise is checked where").
//!
//! The portable Unix path differs from macOS's only in the peer check's one
//! system call (`LOCAL_PEERPID`), so every other line of it runs in CI. On
//! Windows, cancel, timeout and `kill_workers` end the worker and what its
//! task started (`TerminateJobObject`), the workers die with the pool's
//! process however it ends, and a crash is reported with its NTSTATUS
//! (`exited with code -1073741819 (0xC0000005, STATUS_ACCESS_VIOLATION: ...)`).
//!
//! # The process pool in detail
//!
//! - **No set-up.** Workers are fresh runs of your own program
//!   (`/proc/self/exe` on Linux, not `fork()`) that serve tasks *before*
//!   `main`, from a constructor, and exit when the pool is done: nothing of
//!   `main` runs twice, so Python's `if __name__ == "__main__":` has no
//!   counterpart to forget. Plain `#[test]`s, doctests and criterion
//!   benches use a `ProcessPoolExecutor` as they are: no
//!   `harness = false`, no [`init`], since a worker never runs libtest or
//!   your tests. [`init`] remains, optional (the MPI executor needs it); see
//!   its docs for what a worker does without because it never reaches
//!   `main`.
//! - **Tasks are plain functions** `fn(A) -> R`; a closure that captures
//!   nothing coerces to one. The pool sends the function's position in the
//!   binary, so it needs no registration.
//! - **Arguments and results are serde types** ([`Payload`]), sent with
//!   [postcard](https://docs.rs/postcard). Pass several arguments as a
//!   tuple. A value that cannot be serialized, or whose result does not
//!   deserialize in your process (its `Deserialize` fails or panics, or it
//!   nests deeper than 4,096 levels), is an [`Error::Serialization`] on its
//!   own future, with serde's own message.
//! - **Failures stay with their task.** A panic is [`Error::Panicked`] on
//!   that future; a worker that aborts, segfaults, exits or is killed fails
//!   only the task it ran, with [`Error::WorkerDied`] naming the exit code or
//!   signal, and is replaced. (Python's `BrokenProcessPool` fails them all.)
//! - **Stopping tasks.** `cancel()` on a running task kills its worker; the
//!   builder's `timeout` does the same for tasks that run too long
//!   ([`Error::TaskTimedOut`]; the time to send the argument counts);
//!   `terminate_workers()` and `kill_workers()` stop everything now.
//! - **Nothing a task starts outlives its worker, or your program.** Each
//!   worker leads its own process group, and every signal the pool sends
//!   goes to the whole group; when a worker ends (cancel, timeout,
//!   `terminate_workers`, `kill_workers`, shutdown or drop of the pool),
//!   whatever is left of its group is killed. However your program ends
//!   (it returns or exits with the pool still running, panics, gets Ctrl-C,
//!   SIGTERM or SIGKILL), its workers end with it and take their groups
//!   along (on Windows, each worker's Job object does it). A program a task
//!   starts in a group of its own (`setsid`) escapes this. Being in their
//!   own groups, workers do not get the terminal's Ctrl-C; they die with
//!   the pool instead. A task's terminal output and `tcsetattr` work as in
//!   your program, even with `stty tostop` (workers ignore SIGTTOU and
//!   SIGTTIN; a task that reads the terminal gets an error rather than
//!   stop). `terminate_workers` sends SIGTERM and, after one second,
//!   SIGKILL to what is left; workers start with default signal
//!   dispositions, whatever your program ignores or blocks.
//! - **Who may be a worker.** Everything a worker runs arrives over a
//!   private channel: two socket pairs created by the pool, one for calls
//!   and one for answers. The calls' end is the child's standard input,
//!   which the worker moves to a close-on-exec descriptor (putting
//!   `/dev/null` in its place) before anything else; its first bytes carry
//!   the answers' end. A run becomes a worker only if the
//!   `CONCURRENT_FUTURES_WORKER` variable names its parent process *and* its
//!   standard input is a Unix socket whose peer (`SO_PEERCRED`) is that
//!   parent, as is the answers' end's, so the variable alone, leaked into
//!   another process or set by hand, does nothing. The handshake then checks
//!   that both sides run the same executable and protocol version, and
//!   hands over a random per-pool key; every task carries a keyed tag of the
//!   function offsets it names, checked before any offset is used. No
//!   socket listens anywhere. A task function must live in the program
//!   itself, not in a dynamic library (its offset would differ in a
//!   worker): such a task is refused at `submit`. So is every task of a
//!   pool made inside a dynamic library (a `cdylib` or plugin that a host
//!   program loads), with an [`Error::InvalidArgument`] that says why: a
//!   worker is a fresh run of the host's executable, which would run the
//!   host's `main`; use a [`ThreadPoolExecutor`] there. Where the unsafe
//!   code is, and why each block is sound, is listed below.
//!
//! # For maintainers: the layers, how a task flows, and the words
//!
//! `ls src/` reads from the bottom up. Each file's first comment names its
//! layer and every module of the crate it imports (`Layer: … May use: …`);
//! a unit test (`src/layers.rs`, run alone with `cargo test --lib layers`)
//! holds every header to the code, so that a layer uses only the layers
//! below it and no two files import each other, through any number of
//! files between. No transport imports another.
//!
//! | layer | files | may use |
//! |---|---|---|
//! | core | `error`, `panic`, `sync`, `future` (and `future/watch`), `map/`, `wait`, `executor`, `flat`, `spread`, `trace`, `shared/` | core |
//! | pools | `work_queue`, `thread/` | core |
//! | remote | `remote/` | core |
//! | process sys | `process/sys/` (`unix/`, `windows/`, the same file names) | core |
//! | process | the rest of `process/` | core, pools, remote, process sys |
//! | mpi sys | `mpi/ffi` | core |
//! | mpi | the rest of `mpi/` | core, remote, mpi sys |
//! | entry | `init` | core, the transports |
//! | root | `lib`, `any` | everything |
//!
//! How one task flows:
//!
//! 1. **Front end.** [`ThreadPoolExecutor`] (`thread/`) runs tasks itself:
//!    it puts each on its `WorkQueue` (`work_queue.rs`),
//!    whose threads run it. Every other pool is one [`RemoteExecutor`]
//!    (`remote/front.rs`) over a [`Transport`]: `submit` and `map` name
//!    the function (`remote/function.rs`: a `FunctionRef` of offsets from an
//!    anchor, and a tag keyed with the pool's secret), encode the arguments
//!    (`remote/codec.rs`) and hand the transport one `Work`: a task header,
//!    the bytes, and the futures its answer completes (`remote/work.rs`).
//! 2. **Transport.** The process pool (`process/`) puts the work on its
//!    work queue; a dispatcher thread (`dispatch.rs`) takes it and sends it
//!    as a call to its worker (`pool_side.rs`), in frames (`frame.rs`) over
//!    a private channel, big parts through shared memory (`arena.rs`), with
//!    a start gate (`gate.rs`) that decides whether the worker starts each
//!    item or the pool takes it back; the system calls are in `sys/`. The
//!    MPI executor (`mpi/`) hands the work to the one hub thread that owns
//!    MPI (`mpi/hub/`), which sends it to a free worker rank.
//! 3. **Serving side.** A worker is this same program: a child process
//!    serves from the crate's constructor before `main`
//!    (`process/constructor.rs`, then `process/worker_side.rs`), an MPI
//!    rank from [`init`] (`mpi/worker.rs`). Both run the remote layer's one
//!    loop (`remote/serve.rs`): the handshake (`remote/message.rs`), then,
//!    per task, the tag check, the call of the function, and the encoded
//!    outcomes.
//! 4. **Back.** The transport hands the answer to `Work`'s results, which
//!    decode it and complete the futures; done callbacks run with the
//!    queue thread counted busy, so that work they submit finds another
//!    thread.
//!
//! The words, one thing each:
//!
//! - **task**: one call of the user's function on one argument (one
//!   `submit`); **item**: one input of a `map`; **chunk**: several items
//!   sent as one message.
//! - **work** (`Work`): what the front end hands a transport: one task
//!   message (a task or a chunk) and the results its answer completes.
//! - **worker**: what runs work: a thread of the thread pool, a child
//!   process, an MPI rank (the process pool's `Worker` is the pool's side
//!   of one child; MPI's `WorkerEndpoint` the rank's side).
//! - **call**: work sent to a worker, until its **answer** comes back
//!   (in flight: the dispatcher's `Call`); a function is *named* by a
//!   `FunctionRef`, whose type is a `TaskFn`.
//! - **work queue** (`WorkQueue`): a pool's queue and the threads that
//!   serve it; it holds **entries**; a queue thread is **idle** (waiting)
//!   or **busy** (`Busy`). A **dispatcher** is a process pool's queue
//!   thread, which drives one child; the **hub** is the MPI executor's one
//!   thread.
//! - **pool side** / **worker side**: the two ends of one link between the
//!   process pool and a child; **channel**: the private socket pair (pipes
//!   on Windows) between them; **frame**: one message on it; **arena**:
//!   the memory they share for big payloads; **start gate**: the page they
//!   share to decide who starts an item; **region**: a `Shared` value's
//!   read-only memory.
//! - **take back**: the pool takes back an item sent ahead that has not
//!   started; **give back**: it returns that work to the queue; **cut**:
//!   a `map` chunk split after its running item, the rest taken back.
//! - **life** (`Life`): where a child process is (running, exited,
//!   reaped); **health** (`Health`): whether it may take more calls;
//!   **delivery** (`Delivery`): where an in-flight call's message is.
//!
//! # Where the unsafe code is
//!
//! The futures, `map` and `wait` use no `unsafe` code, and the future's
//! state machine (pending, running, done, cancelled, with its callbacks,
//! waiters and wakers) is model-checked under every interleaving with loom;
//! see `future.rs` for the command. The thread pool has one block, for
//! scoped tasks; the remote layer has it in three files, the process
//! transport in thirteen (ten of them its system calls, under `sys/`), the
//! MPI transport (feature `mpi`) in one, and [`Shared`]'s shared memory in
//! one. Each block has a `// SAFETY:` comment:
//!
//! - `process/constructor.rs`, `BEFORE_MAIN`: the `link_section` that puts the worker's
//!   entry in the platform's table of constructors, run before `main`
//!   (`.init_array`, `__mod_init_func`, `.CRT$XCU`). The
//!   module docs list what is and is not set up by then, and what a worker
//!   does without.
//! - `thread/scope.rs`, `Scope::enqueue`: erasing a scoped task's lifetime
//!   so the pool's `'static` queue can hold it. Each task is boxed with a
//!   count that drops only after the task has been run or dropped, and
//!   `scope` does not return or unwind until that count is zero.
//! - `remote/function.rs`: turning a function's offset, received from the
//!   front end, back into a function pointer. It is trusted only after the
//!   handshake proved both sides run the same executable, and after the
//!   task's keyed tag proved the offsets came from this pool. The rule
//!   that makes offsets meaningful: **a task function must lie in the same
//!   image as the anchor** (the executable, not a shared library: no
//!   `-C prefer-dynamic`, `dylib` crate or plugin). `FunctionRef::of` checks it
//!   with `dladdr` (on Windows `GetModuleHandleExW` with
//!   `GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS`, whose module handle is its
//!   image base) at `submit` and refuses the task otherwise; it also
//!   refuses every task when the anchor's image is not the program's
//!   executable (found through `getauxval(AT_PHDR)` on Linux,
//!   `_dyld_get_image_header(0)` on macOS, `GetModuleHandleW(NULL)` on
//!   Windows). Those calls are the file's other unsafe blocks.
//! - `remote/serve.rs`: calling a received task, after those two checks.
//! - `remote/codec.rs`: the fast path of vectors of plain numbers (`u8`,
//!   `f32`, `f64`: no padding, and any bytes are a valid value): viewing
//!   one's memory as bytes, and copying bytes into a vector's reserved,
//!   uninitialized room before setting its length; and `madvise` for huge
//!   pages under a big fresh buffer (Linux), a hint that never changes what
//!   the memory holds.
//! - `process/sys/unix/` (Unix; `launch.rs`, `channel.rs`,
//!   `worker_side.rs`): the system calls std has no safe form
//!   of (`signal` to ignore SIGPIPE in a child that starts before `main`,
//!   `dup2` to take the channel off standard input, `kill` for a signal
//!   other than SIGKILL and for a child's whole process group,
//!   `waitid(WNOWAIT)` to see a child exit while its pid, and so its
//!   group's id, is still reserved, `prctl` and a handler (`sigaction`)
//!   so a Linux child dies with its pool and kills its process group,
//!   `sigaction` and `pthread_sigmask` to give a worker default signal
//!   dispositions and an empty mask, `getpgid`/`setpgid` so a worker can
//!   kill its own group from outside it as it exits, and `SO_PEERCRED` or, on macOS, `LOCAL_PEERPID` to check who is
//!   on the other end).
//! - `process/sys/windows/` (Windows; `launch.rs`, `job_object.rs`,
//!   `channel.rs`, `worker_side.rs`): `CreatePipe`, `DuplicateHandle` for
//!   the inheritable copies of one spawn, the attribute list with the
//!   handles the child may inherit, `GetCommandLineW` for the command line
//!   the child gets (the pool's own), `CreateProcessW` (then the child is put
//!   in its Job object before the handshake), the Job object's calls
//!   (`TerminateJobObject` is the kill), `WaitForSingleObject` and
//!   `GetExitCodeProcess` to reap, `GetFileInformationByHandle` for the
//!   executable's identity, `NtQueryInformationProcess` for the parent's
//!   pid; and in the child, taking ownership of the two inherited pipe
//!   handles named by the marker, once they are checked to be pipes and
//!   not the standard handles, and made non-inheritable.
//! - `process/sys/unix/passing.rs` (Unix): `sendmsg`/`recvmsg` with
//!   `SCM_RIGHTS`, to hand a descriptor over with a frame's bytes.
//! - `process/sys/unix/memory.rs` (Unix) and `process/sys/windows/memory.rs`
//!   (Windows): shared memory for arenas and start gates: `memfd_create`,
//!   sealing, `shm_open`/`shm_unlink`, `mmap`/`munmap`, `madvise`, in a
//!   worker `mallopt` (glibc's two thresholds, see `arena::keep_freed`);
//!   on Windows `CreateFileMappingW`, `MapViewOfFile`, `UnmapViewOfFile`.
//! - `process/arena.rs`: the memory a pool shares with one child for big
//!   payloads (Linux): the
//!   slices over the shared mapping that payloads are encoded into and
//!   decoded out of (`Arena::view_mut`, `Arena::view`). A slice lives only
//!   while the protocol gives this side the memory: the writer writes
//!   before it sends its frame, the reader reads after that frame arrives
//!   and is done before it sends one (the borrow of the arena ends first);
//!   the memfd is sealed at its size (no `SIGBUS`) and the mapping is not
//!   inherited by `fork`. The module docs give the argument.
//! - `shared/region.rs` (Unix): the memory that holds a `Shared<[T]>`'s
//!   plain data, one object for the caller and every worker: on Linux
//!   `memfd_create` and `fcntl` to seal it against writes and size changes
//!   (and, for one handed over, to check those seals before mapping it);
//!   on the portable path (macOS) `shm_open` twice (writable to fill it,
//!   read-only to keep and hand over), `shm_unlink`, `ftruncate`, a
//!   writable `mmap` to copy the bytes in, unmapped before anyone else can
//!   see it, and `fcntl(F_GETFL)` to check that a descriptor handed over
//!   is read-only; then `mmap`/`munmap` read-only, and the `&[u8]` over the
//!   mapping, sound because the bytes are written before any other process
//!   can reach them and nobody can write or shrink them after (the seals,
//!   or no writable descriptor left); the region's `Send`/`Sync` rest on
//!   the same argument.
//! - `process/gate.rs`: each child's start gate, a page of memory
//!   shared with the pool (a sealed `memfd` on Linux, an unlinked
//!   `shm_open` object elsewhere, a section on Windows: `sys`'s), used only through
//!   two aligned `AtomicU64`s in it, one written by each side; sequentially
//!   consistent operations on them decide, for each item, whether the child
//!   starts it or the pool takes it back (the module docs give the argument).
//!   `sys/unix/worker_side.rs` also installs a `pthread_atfork` handler in workers and
//!   ends a forked copy with `_exit` before it can speak on the channel.
//! - `mpi/ffi.rs`: the MPI calls the `mpi` crate has no form of that
//!   returns errors: `MPI_Comm_spawn` with its error codes (so a failing
//!   spawn is an `Err`), the `MPI_Info` of its spawn settings
//!   (`MPI_Info_create`, `_set`, `_free`), `MPI_Comm_set_errhandler` on
//!   `MPI_COMM_SELF`,
//!   `MPI_Error_string`, reading the library's handle constants, wrapping
//!   the new intercommunicator; and `atexit`, so that the serving ranks are
//!   stopped and MPI finalized when the program exits.

// docs.rs builds with `--cfg docsrs` on nightly (see Cargo.toml): feature- and
// platform-gated items then say which feature or platform they need.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod any;
mod error;
mod executor;
mod flat;
mod future;
pub mod guide;
mod init;
#[cfg(test)]
mod layers;
mod map;
#[cfg(all(feature = "mpi", target_os = "linux"))]
mod mpi;
mod panic;
#[cfg(any(target_os = "linux", target_os = "macos", windows))]
mod process;
#[cfg(any(target_os = "linux", target_os = "macos", windows))]
mod remote;
mod shared;
mod spread;
mod sync;
mod thread;
#[cfg(feature = "tracing")]
mod trace;
mod wait;
mod work_queue;

pub use any::AnyExecutor;
pub use error::Error;
pub use executor::{Executor, Payload, Shutdown};
pub use future::Future;
pub use init::init;
pub use map::{LOOK_AHEAD_PER_WORKER, MAX_AUTO_CHUNKSIZE, Map};
#[cfg(all(feature = "mpi", target_os = "linux"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "mpi", target_os = "linux"))))]
pub use mpi::{MPI_MAX_WORKERS_VAR, MpiPoolBuilder, MpiPoolExecutor, MpiTransport};
/// The wire decoders' fuzzing entry point; built only by `cargo fuzz`.
#[cfg(all(fuzzing, any(target_os = "linux", target_os = "macos", windows)))]
#[doc(hidden)]
pub use process::fuzz_wire;
#[cfg(any(target_os = "linux", target_os = "macos", windows))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(target_os = "linux", target_os = "macos", windows)))
)]
pub use process::{ProcessPoolBuilder, ProcessPoolExecutor, ProcessTransport};
#[cfg(any(target_os = "linux", target_os = "macos", windows))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(target_os = "linux", target_os = "macos", windows)))
)]
pub use remote::{RemoteBuilder, RemoteExecutor, Transport};
pub use shared::{Share, Shared};
pub use spread::Spread;
pub use thread::{Scope, ThreadPoolBuilder, ThreadPoolExecutor};
pub use wait::{
    AsCompleted, AsCompletedStream, AsCompletedTimeout, AsFuture, ReturnWhen, as_completed, wait,
};
