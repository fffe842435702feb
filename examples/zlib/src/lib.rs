//! Unmodified C zlib behind the Cofferdam gate.
//!
//! The C library is the one `libz-sys` builds from its bundled source and
//! links statically. It is called two ways, with the same chunked streaming
//! loops, so that both results and speed can be compared:
//!
//! * [`compress_gated`] / [`decompress_gated`]: through
//!   `#[cofferdam::sandbox(compartment = "zlib")]` ([`gated`]). The
//!   `z_stream` and both 1 MiB buffers live in C's heap
//!   ([`cofferdam::ForeignBox`], [`cofferdam::ForeignBuf`]); the Rust input
//!   and output never reach zlib, they are copied in and out chunk by chunk.
//!   What zlib writes back into the `z_stream` (`avail_in`, `avail_out`) is
//!   untrusted and checked before it is used.
//! * [`compress_bare`] / [`decompress_bare`]: the ordinary way, with
//!   `libz-sys`'s own declarations, zlib reading the caller's slice and
//!   writing a Rust buffer directly ([`bare`]).
//!
//! Both use zlib's default allocator (`zalloc` = `zfree` = 0): zlib's
//! internal state is in C's `malloc` heap in both cases.

// The gated block declares zlib's functions again with its own `z_stream`
// type (`ZStream`, all pointers as integers): the same symbols as libz-sys's
// declarations, with pointee types that differ on purpose.
#![allow(clashing_extern_declarations)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bare;
pub mod bench;
pub mod copy;
pub mod gated;
pub mod input;

use core::fmt;

// Links libz-sys's static C zlib, whose symbols the gated block uses too.
use libz_sys as _;

pub use bench::bench;
pub use gated::ZStream;

/// Size of the input and output buffers handed to zlib per call: 1 MiB.
pub const CHUNK: usize = 1 << 20;

/// `deflateInit2_` parameters shared by both paths, so that their output is
/// byte for byte the same: zlib format (window bits 15), memLevel 8, default
/// strategy.
pub const WINDOW_BITS: i32 = 15;
/// See [`WINDOW_BITS`].
pub const MEM_LEVEL: i32 = 8;

/// zlib's return codes and flush values used here (from `zlib.h`).
pub mod z {
    #![allow(missing_docs)]
    pub const Z_NO_FLUSH: i32 = 0;
    pub const Z_FINISH: i32 = 4;
    pub const Z_OK: i32 = 0;
    pub const Z_STREAM_END: i32 = 1;
    pub const Z_NEED_DICT: i32 = 2;
    pub const Z_ERRNO: i32 = -1;
    pub const Z_STREAM_ERROR: i32 = -2;
    pub const Z_DATA_ERROR: i32 = -3;
    pub const Z_MEM_ERROR: i32 = -4;
    pub const Z_BUF_ERROR: i32 = -5;
    pub const Z_VERSION_ERROR: i32 = -6;
    pub const Z_DEFLATED: i32 = 8;
    pub const Z_DEFAULT_STRATEGY: i32 = 0;
}

/// What went wrong compressing or decompressing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A zlib function returned an error code.
    Zlib {
        /// The zlib function.
        function: &'static str,
        /// Its return code (`Z_DATA_ERROR`, ...).
        code: i32,
    },
    /// The compressed input ended before the end of the stream.
    Truncated,
    /// Bytes follow the end of the compressed stream.
    TrailingData,
    /// zlib left the `z_stream` in a state it cannot be in (a count larger
    /// than the buffer it describes): it is not trusted.
    Protocol(String),
    /// The gate refused or contained the call (a fault in zlib, a poisoned
    /// compartment, an invalid return).
    Gate(cofferdam::Error),
    /// C's `malloc` could not allocate a foreign buffer.
    Alloc(cofferdam::ForeignAllocError),
}

/// The name of a zlib return code.
pub fn code_name(code: i32) -> &'static str {
    use z::*;
    match code {
        Z_OK => "Z_OK",
        Z_STREAM_END => "Z_STREAM_END",
        Z_NEED_DICT => "Z_NEED_DICT",
        Z_ERRNO => "Z_ERRNO",
        Z_STREAM_ERROR => "Z_STREAM_ERROR",
        Z_DATA_ERROR => "Z_DATA_ERROR",
        Z_MEM_ERROR => "Z_MEM_ERROR",
        Z_BUF_ERROR => "Z_BUF_ERROR",
        Z_VERSION_ERROR => "Z_VERSION_ERROR",
        _ => "unknown zlib code",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Zlib { function, code } => {
                write!(f, "{function} returned {} ({code})", code_name(*code))
            }
            Error::Truncated => f.write_str("the compressed input is truncated"),
            Error::TrailingData => f.write_str("data follows the end of the compressed stream"),
            Error::Protocol(d) => write!(f, "zlib broke its contract: {d}"),
            Error::Gate(e) => write!(f, "gate: {e}"),
            Error::Alloc(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<cofferdam::Error> for Error {
    fn from(e: cofferdam::Error) -> Self {
        Error::Gate(e)
    }
}

impl From<cofferdam::ForeignAllocError> for Error {
    fn from(e: cofferdam::ForeignAllocError) -> Self {
        Error::Alloc(e)
    }
}

/// `Ok(code)` for the codes a caller handles, `Err` for the others.
fn ok_or(function: &'static str, code: i32, accepted: &[i32]) -> Result<i32, Error> {
    if accepted.contains(&code) {
        Ok(code)
    } else {
        Err(Error::Zlib { function, code })
    }
}

/// Compresses `input` to the zlib format at `level` (0–9, or -1 for the
/// default), through the gate.
pub fn compress_gated(input: &[u8], level: i32) -> Result<Vec<u8>, Error> {
    gated::compress(input, level, copy::CopyMode::Bulk)
}

/// Decompresses zlib-format `input`, through the gate.
pub fn decompress_gated(input: &[u8]) -> Result<Vec<u8>, Error> {
    gated::decompress(input, copy::CopyMode::Bulk)
}

/// As [`compress_gated`], calling zlib directly (no gate, Rust buffers).
pub fn compress_bare(input: &[u8], level: i32) -> Result<Vec<u8>, Error> {
    bare::compress(input, level)
}

/// As [`decompress_gated`], calling zlib directly (no gate, Rust buffers).
pub fn decompress_bare(input: &[u8]) -> Result<Vec<u8>, Error> {
    bare::decompress(input)
}

/// The C zlib's version string (`zlibVersion()`), asked through the gate.
pub fn version() -> Result<String, Error> {
    gated::version()
}
