//! Layer: process sys. May use: `process::sys::handover`.
//! Shared memory on Windows: a start gate's page is a section backed by
//! the paging file, with no name, so only its handle reaches it. There are
//! no arenas (a file mapping duplicated into the child would be one): no
//! [`Descriptor`] exists, and every payload takes the pipe.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};

use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
use windows_sys::Win32::System::Memory::{
    CreateFileMappingW, FILE_MAP_ALL_ACCESS, MEMORY_MAPPED_VIEW_ADDRESS, MapViewOfFile,
    PAGE_READWRITE, UnmapViewOfFile,
};

use crate::process::sys::handover::Descriptor;

/// A fresh section of `len` bytes, with no name: only its handle reaches
/// it.
pub(crate) fn page(len: usize) -> io::Result<OwnedHandle> {
    // SAFETY: no name and no security attributes (null pointers); the
    // paging file backs it (INVALID_HANDLE_VALUE); plain integers else.
    let raw = unsafe {
        CreateFileMappingW(
            INVALID_HANDLE_VALUE,
            std::ptr::null(),
            PAGE_READWRITE,
            0,
            len as u32,
            std::ptr::null(),
        )
    };
    if raw.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CreateFileMappingW just returned this handle, owned by
    // nobody else.
    Ok(unsafe { OwnedHandle::from_raw_handle(raw) })
}

/// Nothing to check before mapping: a view of `len` bytes of a smaller
/// section fails to map.
pub(crate) fn check_page(_: &OwnedHandle, _: usize) -> io::Result<()> {
    Ok(())
}

/// Maps a view of the section's `len` bytes, read-write.
pub(crate) fn map_page(section: &OwnedHandle, len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh view chosen by the system of a section handle we
    // own; it aliases no Rust object.
    let view = unsafe { MapViewOfFile(section.as_raw_handle(), FILE_MAP_ALL_ACCESS, 0, 0, len) };
    if view.Value.is_null() {
        return Err(io::Error::last_os_error());
    }
    Ok(view.Value.cast())
}

/// Unmaps what [`map_page`] mapped (a view's size is the system's to know).
pub(crate) fn unmap(base: *mut u8, _len: usize) {
    // SAFETY: `base` is the start of a view `map_page` made, which its one
    // owner (a gate being dropped) no longer uses.
    unsafe { UnmapViewOfFile(MEMORY_MAPPED_VIEW_ADDRESS { Value: base.cast() }) };
}

/// No arena here: every payload takes the pipe.
pub(crate) fn arena_memory(_: usize) -> io::Result<Descriptor> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Unreachable: no descriptor exists to adopt.
pub(crate) fn arena_size(fd: &Descriptor) -> io::Result<usize> {
    match *fd {}
}

/// Unreachable: no descriptor exists to map.
pub(crate) fn map_arena(fd: &Descriptor, _: usize) -> io::Result<*mut u8> {
    match *fd {}
}

/// No arena, so no arena-sized memory to keep.
pub(crate) fn keep_freed(_: usize) {}
