//! Layer: mpi. May use: `remote::message`, std and the mpi crate.
//! The MPI tags of the messages between the hub and a worker: the remote
//! layer's message kinds, and four more.

use ::mpi::Tag;

use crate::remote::message::Kind;

/// The tag that carries messages of `kind`.
pub(crate) const fn of(kind: Kind) -> Tag {
    kind as Tag
}

/// The kind a tag carries, if it carries one.
pub(crate) fn kind(tag: Tag) -> Option<Kind> {
    u8::try_from(tag).ok().and_then(Kind::from_byte)
}

pub(crate) const HELLO: Tag = of(Kind::Hello);
pub(crate) const WELCOME: Tag = of(Kind::Welcome);
pub(crate) const READY: Tag = of(Kind::Ready);
pub(crate) const TASK: Tag = of(Kind::Task);
pub(crate) const OUTCOMES: Tag = of(Kind::Outcomes);
/// Stop serving. Empty: finalize MPI and exit. Not empty: a rank of
/// the static world died, so exit without `MPI_Finalize`, which would
/// wait for the dead rank for ever.
pub(crate) const STOP: Tag = 6;
/// Where a worker runs: `"<pid> <hostname>"`, sent with its `Hello`.
pub(crate) const WHERE: Tag = 7;
/// A worker running a call is alive (an empty message); see `liveness`.
pub(crate) const HEARTBEAT: Tag = 8;
/// From the hub: cut the task message numbered as the body says (its
/// header's `first`, 4 bytes little-endian). From a worker running that
/// message: an [`Answer`](crate::remote::message::Answer) saying how many
/// of its items run (see `gate`).
pub(crate) const CUT: Tag = 9;
