//! Layer: remote. May use: `panic`, `remote::function`, `remote::codec`,
//! `remote::message`, `remote::trace` and `shared` (to keep and release the
//! values put here). A transport implements [`Endpoint`] instead of
//! importing it.
//! The serving side's one loop, for a process pool's child and an MPI rank
//! alike: the handshake, then task after task.
//!
//! One policy for everything that cannot be trusted: a message that is not
//! a task, a task header that does not decode, or a tag that does not match
//! ends the service with the reason ([`serve`] returns `Err`), and nothing
//! the message names is called. The transport then reports the reason and
//! exits; its front end sees a serving process gone, as after a crash.
//! Arguments that do not deserialize are not a breach: the item whose
//! argument fails (and the items after it in its chunk, which cannot be
//! found past it) get an `Error::Serialization` outcome, and the service
//! goes on.
//!
//! Between tasks, a `Put` message gives this side the value of a
//! [`Shared`](crate::Shared) that the tasks after it use, and a `Release`
//! takes values back (see `shared`); neither is answered.

use super::codec::Bulk;
use super::function::{Args, Fingerprint, Initializer, Ran, Secret};
use super::message::{Hello, Kind, TaskHeader, Welcome};
use crate::panic;
use crate::shared::{self, Region};

/// The serving side's end of a transport's channel.
pub(crate) trait Endpoint {
    /// Sends one message of `kind`, made of `parts` in order.
    fn send(&mut self, kind: Kind, parts: &[&[u8]]) -> Result<(), String>;
    /// Receives the next message into `body` (reusing its memory): its
    /// kind, or `None` when the front end is done with this side. A
    /// transport that carries a message's last bytes apart (the process
    /// pool's shared memory) keeps them, for [`execute`](Self::execute).
    fn receive(&mut self, body: &mut Vec<u8>) -> Result<Option<Kind>, String>;
    /// The shared memory that came with the `Put` message just received,
    /// which says it would. Only the process pool on Linux hands memory
    /// over; elsewhere a `Put` carries its bytes.
    fn take_region(&mut self) -> Result<Region, String> {
        Err("this transport hands over no shared memory".into())
    }
    /// Runs a task message through [`run_task_with_tail`] (with the
    /// session's `secret` and the message's last bytes, if they came
    /// apart), leaving its outcomes in `outcomes` and `bulk`. Here, every
    /// item, by default; a transport that must keep talking while a task
    /// runs (MPI's heartbeats) runs it on a thread of its own, and one
    /// whose front end may take items back (the process pool's gate) asks
    /// before each.
    fn execute(
        &mut self,
        body: &mut Vec<u8>,
        secret: &Secret,
        outcomes: &mut Vec<u8>,
        bulk: &mut Bulk,
    ) -> Result<(), String> {
        run_task_with_tail(body, &[], secret, outcomes, bulk, &mut || true).map(drop)
    }
}

/// Why serving stopped before the front end was done.
#[derive(Debug)]
pub(crate) struct Stopped {
    /// What went wrong.
    pub(crate) reason: String,
    /// Whether the front end heard `reason` (a refusal that `Ready` carried,
    /// which it reports to the user): then the serving side need not.
    pub(crate) reported: bool,
}

impl From<String> for Stopped {
    fn from(reason: String) -> Self {
        Stopped {
            reason,
            reported: false,
        }
    }
}

/// Serves the front end at the other end of `endpoint` until it is done;
/// `fingerprint` is this executable's, as the transport measures it.
pub(crate) fn serve(endpoint: &mut impl Endpoint, fingerprint: Fingerprint) -> Result<(), Stopped> {
    let secret = handshake(endpoint, fingerprint)?;
    // After the initializer: a panic hook it set (the only code of the
    // program that runs in a worker before its tasks) is wrapped by ours,
    // so task panics keep their location. A caught panic prints nothing
    // here: it travels to the front end in its outcome.
    panic::install_serving_hook();
    let mut body = Vec::new();
    let mut outcomes = Vec::new();
    loop {
        // A fresh bulk each time: a big result's memory is not kept.
        let mut bulk = Bulk::default();
        match endpoint.receive(&mut body)? {
            Some(Kind::Task) => {}
            // A value of a `Shared` for the tasks to come, and values to
            // drop: nothing to answer.
            Some(Kind::Put) => {
                let region = shared::put_is_mapped(&body)
                    .then(|| endpoint.take_region())
                    .transpose()?;
                shared::accept_put(&mut body, region)?;
                continue;
            }
            Some(Kind::Release) => {
                shared::accept_release(&body)?;
                continue;
            }
            Some(kind) => return Err(format!("unexpected {kind:?} message").into()),
            None => return Ok(()),
        }
        outcomes.clear();
        endpoint.execute(&mut body, &secret, &mut outcomes, &mut bulk)?;
        let parts: &[&[u8]] = match bulk.bytes() {
            [] => &[&outcomes],
            tail => &[&outcomes, tail],
        };
        endpoint
            .send(Kind::Outcomes, parts)
            .map_err(|e| format!("cannot send results: {e}"))?;
    }
}

/// The serving side of the handshake (see [`message`](super::message)):
/// `Hello`, the front end's `Welcome`, the initializer, `Ready`. Returns
/// the key of the task tags. A refusal is reported in `Ready` as far as the
/// channel still takes it, and returned.
fn handshake(endpoint: &mut impl Endpoint, fingerprint: Fingerprint) -> Result<Secret, Stopped> {
    endpoint
        .send(Kind::Hello, &[&Hello { fingerprint }.encode()])
        .map_err(|e| format!("cannot greet the pool: {e}"))?;
    let mut body = Vec::new();
    let welcome = match endpoint.receive(&mut body)? {
        Some(Kind::Welcome) => Welcome::decode(&body)
            .map(|(welcome, arg)| (welcome, body.len() - arg.len()))
            .map_err(|e| e.into_error().to_string()),
        Some(kind) => Err(format!("expected a Welcome message, got {kind:?}")),
        None => Err("the pool left before welcoming this worker".to_owned()),
    };
    let ready = welcome.and_then(|(welcome, arg)| {
        if welcome.fingerprint != fingerprint {
            return Err("the pool runs a different executable; refusing its tasks".to_owned());
        }
        if let Some(initializer) = welcome.initializer {
            // SAFETY: the call came in the Welcome, over the transport's
            // private channel from a front end that runs this same
            // executable (the fingerprints match), which made it with
            // `Initializer::of`.
            unsafe { Initializer::run(initializer, &mut body, arg) }?;
        }
        Ok(welcome.secret)
    });
    let reason = ready
        .as_ref()
        .err()
        .map_or(&[][..], |reason| reason.as_bytes());
    let reported = endpoint.send(Kind::Ready, &[reason]);
    // A refusal stands whether or not the front end is still listening.
    match (ready, reported) {
        (Ok(secret), Ok(())) => Ok(secret),
        (Ok(_), Err(e)) => Err(format!("cannot report ready: {e}").into()),
        (Err(reason), reported) => Err(Stopped {
            reason,
            reported: reported.is_ok(),
        }),
    }
}

/// Runs one task message, whose last bytes may have come apart, in `tail`,
/// leaving one outcome per item in `outcomes`; `Err` (nothing called) if
/// the message cannot be trusted. A lone plain-vector result is left in
/// `bulk`, to be sent after `outcomes`. Asks `may_start` before each item, and stops at the first
/// it refuses: returns how much ran.
pub(crate) fn run_task_with_tail(
    body: &mut Vec<u8>,
    tail: &[u8],
    secret: &Secret,
    outcomes: &mut Vec<u8>,
    bulk: &mut Bulk,
    may_start: &mut dyn FnMut() -> bool,
) -> Result<Ran, String> {
    let (header, _) = TaskHeader::decode(body).map_err(|e| e.into_error().to_string())?;
    if header.tag != header.function.tag(secret) {
        return Err(
            "refused a task whose tag does not match: it did not come from this pool".into(),
        );
    }
    // Feature `tracing`: the header says whether to capture the task's
    // events for the answer.
    #[cfg(feature = "tracing")]
    let capture = super::trace::Capture::start(header.trace);
    // SAFETY: the fingerprints (executable and code layout) matched at the
    // handshake, and the tag proves that the front end holding this
    // session's secret made this call with `FunctionRef::of` (see `remote::function`).
    let ran = unsafe {
        header.function.invoke(
            header.count,
            Args {
                frame: body,
                start: TaskHeader::LEN,
                tail,
            },
            outcomes,
            bulk,
            may_start,
        )
    };
    #[cfg(feature = "tracing")]
    capture.finish(outcomes);
    Ok(ran)
}
