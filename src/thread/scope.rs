//! Layer: pools (the thread pool). May use: `error`, `future`, `map`,
//! `panic`, `thread::task` and `work_queue`.
//! [`Scope`]: tasks that borrow from the caller's stack, on the pool's
//! threads.
//!
//! A scoped task is queued on the pool like any other, as a [`Ticket`] for a
//! slot that holds the task. Whoever empties the slot first runs the task: a
//! worker that dequeues the ticket, or the scope's own thread, which, once
//! the closure has returned, runs every task no worker has started yet.
//! So the scope never waits for a worker that is not coming: not when it
//! is called from one of the pool's own tasks, not on a pool that was shut
//! down. It then waits for the tasks that workers are running.
//!
//! The pool's queue holds `'static` jobs, so a scoped task's lifetime is
//! erased to queue it ([`Scope::enqueue`], the one unsafe step). That is
//! sound because every job is boxed with a [`Live`] count that drops only
//! after the job has been run or dropped, and [`run`] returns only once that
//! count is zero.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::task::{Run, Task, ThreadTask};
use crate::work_queue::{Busy, WorkQueue};
use crate::{Error, Future, future, map, panic};

/// How many chunks `map_scoped` cuts per worker: a few, so that a worker
/// with quick items takes over from one with slow items, and not many, so
/// that per-task overhead stays small next to the items' work.
const CHUNKS_PER_WORKER: usize = 4;

/// A scope in which tasks may borrow anything that outlives it; see
/// [`ThreadPoolExecutor::scope`](crate::ThreadPoolExecutor::scope).
///
/// `'scope` is the scope itself and `'env` is what its tasks borrow. Both
/// are invariant, as in [`std::thread::Scope`], so neither the scope nor a
/// borrow can be stretched past the `scope` call.
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let executor = ThreadPoolExecutor::new(2);
/// let words = ["one", "two", "three"];
/// let lengths = executor.scope(|s| {
///     words.iter().map(|word| s.submit(move |()| word.len(), ())).collect::<Vec<_>>()
/// });
/// let total: usize = lengths.into_iter().map(|f| f.result().unwrap()).sum();
/// assert_eq!(total, 11);
/// ```
///
/// # What does not compile
///
/// The scope cannot leave its closure:
///
/// ```compile_fail,E0521
/// # let executor = concurrent_futures::ThreadPoolExecutor::new(1);
/// let mut kept = None;
/// executor.scope(|s| kept = Some(s));
/// ```
///
/// A task cannot borrow what does not outlive the scope:
///
/// ```compile_fail,E0373
/// # let executor = concurrent_futures::ThreadPoolExecutor::new(1);
/// executor.scope(|s| {
///     let local = vec![1, 2, 3];
///     drop(s.submit(|()| local.len(), ()));
/// });
/// ```
///
/// A future of borrowed data cannot outlive the data:
///
/// ```compile_fail,E0597
/// # let executor = concurrent_futures::ThreadPoolExecutor::new(1);
/// let future = {
///     let name = String::from("web1");
///     executor.scope(|s| s.submit(|()| name.as_str(), ()))
/// };
/// let _ = future.result();
/// ```
///
/// And a task must be able to move to another thread:
///
/// ```compile_fail,E0277
/// # let executor = concurrent_futures::ThreadPoolExecutor::new(1);
/// let shared = std::rc::Rc::new(1);
/// executor.scope(|s| {
///     drop(s.submit(|()| *shared + 1, ()));
/// });
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    queue: &'scope Arc<WorkQueue<ThreadTask>>,
    shared: Arc<Shared>,
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// What a scope shares with its jobs.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a job is added to `unstarted` and when `live` reaches 0.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Jobs created and not yet dropped.
    live: usize,
    /// The slots of every job submitted, oldest first, until the scope's
    /// thread looks at them; a worker may have emptied one already.
    unstarted: VecDeque<Arc<Slot>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing that can panic runs under this lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A job, until a worker or the scope's thread takes it to run or drop.
type Slot = Mutex<Option<Counted>>;

/// Empties `slot`; `None` if someone else already did.
fn take(slot: &Slot) -> Option<Counted> {
    // A job never panics while its slot is locked: it is only moved.
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// A job and the count that holds its scope open. Fields drop in order:
/// the job first, then `_live`.
struct Counted {
    job: ThreadTask,
    _live: Live,
}

/// One in [`State::live`], for as long as it exists.
struct Live(Arc<Shared>);

impl Live {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.lock().live += 1;
        Live(Arc::clone(shared))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.live -= 1;
        if state.live == 0 {
            self.0.changed.notify_all();
        }
    }
}

/// What the pool's queue holds for a scoped job.
struct Ticket(Arc<Slot>);

impl Run for Ticket {
    fn run(self: Box<Self>, busy: Option<Busy<'_, ThreadTask>>) {
        match take(&self.0) {
            Some(Counted { job, _live }) => job.run(busy),
            // The scope's thread took the job: this queue thread is idle
            // again as the busy drops.
            None => drop(busy),
        }
    }

    fn fail_unrun(self: Box<Self>, error: Error) {
        if let Some(Counted { job, _live }) = take(&self.0) {
            job.fail_unrun(error);
        }
    }
}

impl Drop for Ticket {
    /// A shutdown that cancels queued work drops the ticket: drop the job
    /// with it, cancelling its future, rather than leave it for the scope's
    /// thread to run.
    fn drop(&mut self) {
        drop(take(&self.0));
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Schedules `task(arg)` on the pool and returns a future for its result.
    ///
    /// Like [`ThreadPoolExecutor::submit`](crate::ThreadPoolExecutor::submit),
    /// but `task`, `arg` and the result may borrow anything that outlives the
    /// scope. A panic is the future's [`Error::Panicked`]; after shutdown the
    /// future holds [`Error::Shutdown`]. The scope waits for the task, so
    /// you may drop the future: `drop(s.submit(..))`.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let executor = ThreadPoolExecutor::new(2);
    /// let mut pages = vec![String::new(); 2];
    /// executor.scope(|s| {
    ///     for (n, page) in pages.iter_mut().enumerate() {
    ///         drop(s.submit(move |()| *page = format!("web{n}"), ()));
    ///     }
    /// });
    /// assert_eq!(pages, ["web0", "web1"]);
    /// ```
    pub fn submit<F, A, R>(&self, task: F, arg: A) -> Future<R>
    where
        F: FnOnce(A) -> R + Send + 'scope,
        A: Send + 'scope,
        R: Send + 'scope,
    {
        let (promise, future) = future::pair();
        self.enqueue(Box::new(Task { task, arg, promise }));
        future
    }

    /// Queues `job` on the pool, and where the scope's thread can find it.
    fn enqueue(&self, job: Box<dyn Run + 'scope>) {
        let live = Live::new(&self.shared);
        // SAFETY: only the lifetime bound changes, not the layout. What the
        // job borrows outlives 'scope, which `f` must accept as any lifetime
        // within 'env: so it is data `f` was given, borrowed for the whole
        // call of `run` (the only maker of a `Scope`). `run` neither returns
        // nor unwinds before the live count is zero, and this job's `live`
        // drops only after the job: they move together (`Counted`), and
        // every taker runs or drops `job` before `_live`. The job's `Slot`
        // may outlive the scope, but is empty by then.
        let job = unsafe { std::mem::transmute::<Box<dyn Run + 'scope>, ThreadTask>(job) };
        let slot = Arc::new(Mutex::new(Some(Counted { job, _live: live })));
        self.shared.lock().unstarted.push_back(Arc::clone(&slot));
        self.shared.changed.notify_all();
        self.queue.enqueue(Box::new(Ticket(slot)));
    }

    /// Runs every job no worker has started, then waits for the others to
    /// be dropped (run or not). Also wakes for jobs that running tasks
    /// submit meanwhile.
    ///
    /// A task's panic is its future's error, but dropping what a job
    /// captured may panic too. That must not cut the wait short, so the
    /// first such panic is returned once every job is gone.
    fn wait(&self) -> Option<Box<dyn Any + Send>> {
        let mut panic = None;
        let mut state = self.shared.lock();
        loop {
            if let Some(slot) = state.unstarted.pop_front() {
                drop(state);
                if let Some(Counted { job, _live }) = take(&slot)
                    && let Err(payload) = catch_unwind(AssertUnwindSafe(|| job.run(None)))
                {
                    panic.get_or_insert(payload);
                }
                state = self.shared.lock();
            } else if state.live == 0 {
                return panic;
            } else {
                state = self
                    .shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}

/// [`ThreadPoolExecutor::scope`](crate::ThreadPoolExecutor::scope): runs `f`
/// with a new scope, then waits for its tasks, even if `f` panicked; then
/// resumes `f`'s panic, or else one from dropping a job.
pub(super) fn run<'env, F, T>(queue: &Arc<WorkQueue<ThreadTask>>, f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let scope = Scope {
        queue,
        shared: Arc::default(),
        scope: PhantomData,
        env: PhantomData,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    match (outcome, scope.wait()) {
        (Ok(value), None) => value,
        (Err(payload), _) | (Ok(_), Some(payload)) => resume_unwind(payload),
    }
}

/// [`ThreadPoolExecutor::map_scoped`](crate::ThreadPoolExecutor::map_scoped):
/// `f` over `items` in a few chunks per worker, one result per item.
pub(super) fn map_slice<T, R>(
    queue: &Arc<WorkQueue<ThreadTask>>,
    f: impl Fn(&T) -> R + Sync,
    items: &[T],
) -> Vec<Result<R, Error>>
where
    T: Sync,
    R: Send,
{
    let chunk_len = items
        .len()
        .div_ceil(queue.max_workers() * CHUNKS_PER_WORKER)
        .max(1);
    let f = &f;
    let chunks = run(queue, |s| {
        items
            .chunks(chunk_len)
            .map(|chunk| {
                let run_all = move |()| {
                    chunk
                        .iter()
                        .map(|item| panic::catch(|| f(item)))
                        .collect::<Vec<_>>()
                };
                (s.submit(run_all, ()), chunk.len())
            })
            .collect::<Vec<_>>()
    });
    chunks
        .into_iter()
        .flat_map(|(future, len)| map::chunk_results(future.result(), len))
        .collect()
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("live", &self.shared.lock().live)
            .finish_non_exhaustive()
    }
}
