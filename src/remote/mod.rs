//! Layer: remote. May use: no module (it declares the layer's files and
//! shows `front`'s types as its own). Between the front end and the
//! transports, never importing one (`process`, `mpi`). Running a task in
//! another run of this
//! same executable, whatever carries the bytes:
//!
//! - [`front`]: [`RemoteExecutor`], the one public front end, generic over a
//!   [`Transport`] (how the bytes travel);
//! - [`function`]: naming a function by offsets, tags and fingerprints: the
//!   unsafe core;
//! - [`codec`]: arguments and outcomes as bytes, and [`decode`]: a result's
//!   `Deserialize` under guard (depth, messages, panics);
//! - [`message`]: the handshake and task messages;
//! - [`work`]: a task message and the futures its answer completes;
//! - [`serve`]: the serving side's loop, over a transport's
//!   [`Endpoint`](serve::Endpoint).
//! - `trace` (feature `tracing`): a task's span in the caller, and its
//!   events captured where it runs and replayed under that span.
//!
//! A transport (`process/`, `mpi/`) implements [`Transport`] for the front
//! end and an `Endpoint` for the serving side, and owns everything about
//! its channel and its processes: that is where platform-specific code
//! lives.

pub(crate) mod codec;
pub(crate) mod decode;
mod front;
pub(crate) mod function;
pub(crate) mod message;
pub(crate) mod serve;
#[cfg(feature = "tracing")]
mod trace;
pub(crate) mod work;

pub use front::{RemoteBuilder, RemoteExecutor, Transport};
pub(crate) use front::{at_least_one, sealed};
