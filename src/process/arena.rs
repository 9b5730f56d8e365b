//! Layer: process. May use: `process::sys`.
//! Big payloads through shared memory: a message's big last part
//! (a lone plain vector's memory, or encoded arguments or outcomes of any
//! type) travels through an [`Arena`] (a `memfd` mapped by the pool and by
//! one child) instead of the channel.
//!
//! Why: through the socket, every byte is copied into the kernel and out
//! again, in pieces of the socket's buffer, with a context switch each. An
//! arena costs one copy on each side: the sender's into memory that is
//! already mapped and faulted in, the receiver's out of it, as it decodes
//! the value in place ([`Arena::view`]).
//!
//! # The protocol: who may touch the arena when
//!
//! The arena has one owner at a time, and ownership moves with the frames
//! on the channel. The pool lends it with a task frame (flag `LENT`) only
//! when no other call is in flight on that child; only such a task's
//! argument may lie in it, and only such a task's answer may use it:
//!
//! ```text
//! pool: write(argument) ── Task frame ────▶ child: view(argument), decoded
//!                                                 … task …
//!                                                 write(result)
//! pool: view(result), decoded ◀── Outcomes frame ──
//! ```
//!
//! The side that writes does so before it sends its frame; the other side
//! reads only after that frame arrived, and is done reading (it decoded
//! the value out) before it sends a frame of its own. Between two frames,
//! the memory belongs to one process alone; the system calls that move the
//! frame order the writes before the reads. So no byte is read while the
//! peer may still write it, nor written while it may read it: the slices
//! that [`Arena::view_mut`] and [`Arena::view`] form over the mapping live
//! only inside such windows (their callers say why).
//!
//! Nothing else can write the mapping: the `memfd` is close-on-exec (and
//! received so), closed once mapped, sealed against shrinking or growing
//! (so an access within its size never faults with `SIGBUS`), and the
//! mapping is not inherited by `fork` (`MADV_DONTFORK`), so a process that
//! a task starts has none of it.
//!
//! # Faults
//!
//! A child that dies mid-transfer (killed while writing a result into the
//! arena, say) sends no frame: the pool never reads that arena again. The
//! call fails as any call to a dying child does (only its task), and the
//! arena goes with the child's link; the next child gets a new one.
//!
//! # Memory
//!
//! An arena is made by whichever side first needs one big enough, sized to
//! the next power of two at least [`MIN`] and at most [`MAX`]; it is handed
//! to the other side once, with the frame that first uses it, or (one the
//! pool made for an argument that then failed to encode) the next task
//! frame that lends it (`SCM_RIGHTS` on the channel), and replaced only by
//! a bigger one. So a pool holds at
//! most one arena per worker, of at most [`MAX`] bytes: `max_workers` ×
//! the largest payload seen, rounded up to a power of two. Payloads above
//! [`MAX`] take the channel. The memory is returned when the worker retires
//! (at shutdown, or when it is replaced).
//!
//! A worker also keeps what its tasks free, up to twice its arena's size,
//! for the next payload's vectors ([`keep_freed`]): it holds at most that
//! much more memory, for its life.
//!
//! The memory and its mapping are `sys`'s (`arena_memory`, `map_arena`):
//! Linux only (`memfd_create`); on the portable Unix path (macOS) and on
//! Windows [`Arena::create`] says it is unsupported and every payload
//! takes the channel.

use std::io;

use super::sys::{self, Descriptor};

/// Payloads at least this big go through an arena (when there can be one).
/// Below it, the channel is as fast: see BENCHMARKS.md.
pub(crate) const THRESHOLD: usize = 256 << 10;
/// The smallest arena.
pub(crate) const MIN: usize = 1 << 20;
/// The largest arena; bigger payloads take the channel.
pub(crate) const MAX: usize = 1 << 30;

/// A shared memory region: a sealed `memfd` of a fixed size, mapped
/// read-write and shared, pre-faulted.
#[derive(Debug)]
pub(crate) struct Arena {
    base: *mut u8,
    len: usize,
}

// SAFETY: an Arena is a mapping owned by one value; it has no thread
// affinity, and every access goes through a borrow of it (`view_mut`,
// `view`), under the protocol, so moving it to another thread is sound.
unsafe impl Send for Arena {}

impl Arena {
    /// A new arena of at least `len` bytes, and the descriptor to hand to
    /// the other side.
    pub(crate) fn create(len: usize) -> io::Result<(Arena, Descriptor)> {
        if len > MAX {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let size = len.max(MIN).next_power_of_two();
        let fd = sys::arena_memory(size)?;
        let arena = Arena::map(&fd, size)?;
        Ok((arena, fd))
    }

    /// Maps the arena that the other side handed over.
    pub(crate) fn adopt(fd: Descriptor) -> io::Result<Arena> {
        let size = sys::arena_size(&fd)?;
        if size > MAX {
            return Err(io::Error::other("the arena handed over is too big"));
        }
        Arena::map(&fd, size)
    }

    fn map(fd: &Descriptor, len: usize) -> io::Result<Arena> {
        let base = sys::map_arena(fd, len)?;
        Ok(Arena { base, len })
    }

    /// The arena's size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first `len` bytes of the arena (at most its size), to write
    /// into: call only while this side owns the arena, before sending the
    /// frame that hands the bytes over (see the module docs).
    pub(crate) fn view_mut(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= self.len, "a payload bigger than its arena");
        // SAFETY: the mapping is `self.len` bytes, readable and writable,
        // sealed at that size (no SIGBUS) and alive while `self` is (the
        // reference borrows it mutably, so no other view of it exists in
        // this process); `len` fits (checked). The peer does not touch the
        // arena while this side owns it (module docs).
        unsafe { std::slice::from_raw_parts_mut(self.base, len) }
    }

    /// The first `len` bytes of the arena (at most its size), to decode in
    /// place: call only after the frame that handed them over arrived, and
    /// drop before sending a frame (see the module docs). Within that
    /// window the peer writes nothing, so the bytes hold still under the
    /// reference, as Rust requires.
    pub(crate) fn view(&self, len: usize) -> &[u8] {
        assert!(len <= self.len, "a payload bigger than its arena");
        // SAFETY: the mapping is `self.len` bytes, readable, sealed at that
        // size (no SIGBUS) and alive while `self` is (the reference borrows
        // it); `len` fits (checked). Nothing in this process writes it but
        // `view_mut`, which needs `&mut self`, so not while this borrow lives;
        // the peer wrote these bytes before sending the frame that handed
        // them over, and writes nothing more until this side sends one,
        // which its callers do only once the view is gone (module docs).
        unsafe { std::slice::from_raw_parts(self.base, len) }
    }
}

/// Called by a worker whose arena is now `len` bytes: lets its allocator
/// keep up to twice that much memory that tasks free, rather than return it
/// to the system, and serve blocks of up to that size from it.
///
/// Why: a big payload's vector is fresh memory, and the kernel faults in
/// and zeroes every page of it before the copy out of the arena can fill
/// it, which costs more than the copy itself (BENCHMARKS.md). glibc serves
/// a block above 32 MiB with a fresh `mmap` and unmaps it when freed, so
/// every task paid that again; now the task's argument, freed when the task
/// ends, is the memory the next argument is copied into. Only a worker does
/// this, never the pool's own process: the worker's allocator is the
/// pool's to tune. A no-op but with glibc (another global allocator, or
/// another C library, keeps its own policy).
pub(crate) fn keep_freed(len: usize) {
    sys::keep_freed(len);
}

impl Drop for Arena {
    fn drop(&mut self) {
        sys::unmap(self.base, self.len);
    }
}
