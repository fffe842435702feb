//! Copying bytes between Rust and a foreign buffer.
//!
//! The runtime's own copies ([`ForeignVec::write`](cofferdam::ForeignVec::write),
//! [`ForeignVec::append_to`](cofferdam::ForeignVec::append_to)) are volatile
//! on the foreign side (16-byte SSE2 accesses), because in general foreign
//! code may touch the buffer at any time from any thread. They cost about 2 %
//! of a decompression more than `memcpy` (glibc's `rep movsb`), which is the
//! whole of the 2 % budget ([`CopyMode::Volatile`], measured by the
//! benchmark). For zlib that generality is not needed: zlib starts no threads
//! and touches these buffers only inside calls this thread makes through the
//! gate, so between calls nothing foreign writes them, and [`CopyMode::Bulk`]
//! copies with `copy_nonoverlapping`. That is what the public functions use.

use cofferdam::ForeignBuf;

use crate::Error;

/// How bytes cross between Rust and foreign buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyMode {
    /// `ptr::copy_nonoverlapping`, in this crate (see the module docs for why
    /// that is sound for zlib).
    Bulk,
    /// The runtime's [`ForeignVec::write`](cofferdam::ForeignVec::write) /
    /// [`ForeignVec::append_to`](cofferdam::ForeignVec::append_to): volatile.
    Volatile,
}

/// Copies `data` to the start of `buf`.
///
/// # Panics
/// If `data` is longer than `buf` (callers pass at most a chunk).
pub fn fill(buf: &ForeignBuf, data: &[u8], mode: CopyMode) {
    assert!(
        data.len() <= buf.len(),
        "chunk larger than the foreign buffer"
    );
    match mode {
        CopyMode::Volatile => buf.write(0, data).expect("checked above"),
        // SAFETY: the destination is a live foreign allocation of
        // `buf.len() >= data.len()` bytes (checked above), borrowed for the
        // copy, and cannot overlap `data`, which is Rust memory. No foreign
        // code runs during the copy: zlib touches the buffer only inside
        // calls this thread makes through the gate, and it starts no threads.
        CopyMode::Bulk => unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), buf.as_foreign_ptr().as_raw(), data.len())
        },
    }
}

/// Appends the first `n` bytes of `buf` to `out`; `n` comes from zlib, so it
/// is checked against the buffer's length.
pub fn append(out: &mut Vec<u8>, buf: &ForeignBuf, n: usize, mode: CopyMode) -> Result<(), Error> {
    if n > buf.len() {
        return Err(Error::Protocol(format!(
            "{n} bytes claimed in a buffer of {}",
            buf.len()
        )));
    }
    match mode {
        CopyMode::Volatile => buf.append_to(n, out).expect("checked above"),
        CopyMode::Bulk => {
            let start = out.len();
            out.reserve(n);
            // SAFETY: the source is `n <= buf.len()` bytes (checked above) of
            // a live foreign allocation; u8 has no invalid values, so
            // whatever zlib left there is a valid byte. The destination is
            // the reserved spare capacity of `out`, which cannot overlap
            // foreign memory; `set_len` covers exactly the bytes written. No
            // foreign code runs during the copy (see `fill`).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    buf.as_foreign_ptr().as_raw().cast_const(),
                    out.as_mut_ptr().add(start),
                    n,
                );
                out.set_len(start + n);
            }
        }
    }
    Ok(())
}
