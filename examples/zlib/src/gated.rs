//! zlib through the gate: the `z_stream` and the buffers zlib reads and
//! writes are foreign memory; Rust copies its data in and out.

// The wrappers the sandbox macro generates keep zlib's names (`deflateEnd`),
// and unlike foreign declarations they are Rust functions, which this lint
// checks.
#![allow(non_snake_case)]

use core::cell::Cell;
use core::ffi::{c_char, c_int};
use core::mem::{offset_of, size_of};

use cofferdam::{ForeignBox, ForeignBuf, ForeignPtr};

use crate::copy::{append, fill, CopyMode};
use crate::z::*;
use crate::{ok_or, Error, CHUNK, MEM_LEVEL, WINDOW_BITS};

/// zlib's `z_stream` (x86_64 / LP64 layout), with every pointer as an
/// integer so that any bytes zlib leaves in it form a valid value
/// ([`cofferdam::Pod`]).
/// It lives in foreign memory ([`ForeignBox<ZStream>`]); Rust reads it back
/// by copy.
/// `#[derive(cofferdam::Pod)]` checks at compile time that every field is
/// Pod and that the padding is spelled out (`_pad*`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, cofferdam::Pod)]
pub struct ZStream {
    /// `const Bytef *next_in`: next input byte.
    pub next_in: u64,
    /// `uInt avail_in`: bytes available at `next_in`.
    pub avail_in: u32,
    _pad0: u32,
    /// `uLong total_in`.
    pub total_in: u64,
    /// `Bytef *next_out`: where the next output byte goes.
    pub next_out: u64,
    /// `uInt avail_out`: space left at `next_out`.
    pub avail_out: u32,
    _pad1: u32,
    /// `uLong total_out`.
    pub total_out: u64,
    /// `const char *msg`: last error message, or null.
    pub msg: u64,
    /// `struct internal_state *state`: zlib's own, in C's heap.
    pub state: u64,
    /// `alloc_func zalloc`: 0 for zlib's default (C's `malloc`).
    pub zalloc: u64,
    /// `free_func zfree`: 0 for zlib's default (C's `free`).
    pub zfree: u64,
    /// `voidpf opaque`.
    pub opaque: u64,
    /// `int data_type`.
    pub data_type: i32,
    _pad2: u32,
    /// `uLong adler`: Adler-32 of the data so far.
    pub adler: u64,
    /// `uLong reserved`.
    pub reserved: u64,
}

// The layout must be zlib's: checked against libz-sys's `z_stream`.
const _: () = {
    use libz_sys::z_stream as Z;
    assert!(size_of::<ZStream>() == size_of::<Z>());
    assert!(offset_of!(ZStream, next_in) == offset_of!(Z, next_in));
    assert!(offset_of!(ZStream, avail_in) == offset_of!(Z, avail_in));
    assert!(offset_of!(ZStream, total_in) == offset_of!(Z, total_in));
    assert!(offset_of!(ZStream, next_out) == offset_of!(Z, next_out));
    assert!(offset_of!(ZStream, avail_out) == offset_of!(Z, avail_out));
    assert!(offset_of!(ZStream, total_out) == offset_of!(Z, total_out));
    assert!(offset_of!(ZStream, msg) == offset_of!(Z, msg));
    assert!(offset_of!(ZStream, state) == offset_of!(Z, state));
    assert!(offset_of!(ZStream, zalloc) == offset_of!(Z, zalloc));
    assert!(offset_of!(ZStream, zfree) == offset_of!(Z, zfree));
    assert!(offset_of!(ZStream, opaque) == offset_of!(Z, opaque));
    assert!(offset_of!(ZStream, data_type) == offset_of!(Z, data_type));
    assert!(offset_of!(ZStream, adler) == offset_of!(Z, adler));
    assert!(offset_of!(ZStream, reserved) == offset_of!(Z, reserved));
};

#[cofferdam::sandbox(compartment = "zlib", safe(zlibVersion), handle = pub zlib_compartment)]
extern "C" {
    /// zlib's version string, a literal in the library's read-only data.
    pub fn zlibVersion() -> *const c_char;
    pub fn deflateInit2_(
        strm: *mut ZStream,
        level: c_int,
        method: c_int,
        window_bits: c_int,
        mem_level: c_int,
        strategy: c_int,
        version: *const c_char,
        stream_size: c_int,
    ) -> c_int;
    pub fn deflate(strm: *mut ZStream, flush: c_int) -> c_int;
    pub fn deflateEnd(strm: *mut ZStream) -> c_int;
    pub fn inflateInit2_(
        strm: *mut ZStream,
        window_bits: c_int,
        version: *const c_char,
        stream_size: c_int,
    ) -> c_int;
    pub fn inflate(strm: *mut ZStream, flush: c_int) -> c_int;
    pub fn inflateEnd(strm: *mut ZStream) -> c_int;
}

/// The version string, copied out of zlib's read-only data.
pub fn version() -> Result<String, Error> {
    let p = zlibVersion()?;
    if p.is_null() {
        return Err(Error::Protocol("zlibVersion returned null".into()));
    }
    // Copied through the gate: a lying pointer is an error, not UB.
    let bytes = zlib_compartment()?.read_foreign_cstr(p, 64)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The address of a foreign buffer, as `z_stream` stores it.
fn addr(b: &ForeignBuf) -> u64 {
    b.as_foreign_ptr().addr() as u64
}

/// `avail` as zlib left it, checked against the buffer it describes: how
/// many of `len` bytes are used.
fn used(field: &str, avail: u32, len: usize) -> Result<usize, Error> {
    len.checked_sub(avail as usize).ok_or_else(|| {
        Error::Protocol(format!(
            "{field} = {avail}, more than the {len} bytes given"
        ))
    })
}

thread_local! {
    /// The last pair of 1 MiB foreign buffers this thread used, kept for the
    /// next call: C's `malloc` serves blocks this large with fresh pages
    /// (`mmap`, or a heap top it trims again), and faulting 2 MiB of them in
    /// on every call cost about 3% of a decompression. They hold the
    /// previous call's data, which zlib (the only code given them) saw
    /// already.
    static BUFFERS: Cell<Option<(ForeignBuf, ForeignBuf)>> = const { Cell::new(None) };
}

/// The input and output buffers: this thread's cached pair, or new ones.
fn take_buffers() -> Result<(ForeignBuf, ForeignBuf), Error> {
    match BUFFERS.with(Cell::take) {
        Some(pair) => Ok(pair),
        None => Ok((ForeignBuf::zeroed(CHUNK)?, ForeignBuf::zeroed(CHUNK)?)),
    }
}

/// Keeps `pair` for this thread's next call.
fn keep_buffers(pair: (ForeignBuf, ForeignBuf)) {
    BUFFERS.with(|b| b.set(Some(pair)));
}

/// Compresses `input` through the gate; `mode` is how bytes are copied in
/// and out ([`crate::compress_gated`] uses [`CopyMode::Bulk`]).
pub fn compress(input: &[u8], level: i32, mode: CopyMode) -> Result<Vec<u8>, Error> {
    // The z_stream and both buffers in C's heap: zlib sees nothing else.
    let strm = ForeignBox::<ZStream>::zeroed()?;
    let (inbuf, outbuf) = take_buffers()?;
    let version: ForeignPtr<c_char> = zlibVersion()?;
    // SAFETY: `strm` is a zeroed z_stream in foreign memory (zalloc, zfree,
    // opaque 0: zlib's default allocator), `version` is zlib's own version
    // string and the size is that of its z_stream (checked above).
    let rc = unsafe {
        deflateInit2_(
            &strm,
            level,
            Z_DEFLATED,
            WINDOW_BITS,
            MEM_LEVEL,
            Z_DEFAULT_STRATEGY,
            version,
            size_of::<ZStream>() as c_int,
        )
    }?;
    ok_or("deflateInit2_", rc, &[Z_OK])?;
    let result = deflate_loop(&strm, &inbuf, &outbuf, input, mode);
    // SAFETY: `strm` was initialised by deflateInit2_ and is ended once.
    let end = unsafe { deflateEnd(&strm) };
    keep_buffers((inbuf, outbuf));
    let out = result?;
    // Z_DATA_ERROR means "freed before the end": not after Z_STREAM_END.
    ok_or("deflateEnd", end?, &[Z_OK])?;
    Ok(out)
}

// docs/examples.md shows this loop next to bare::deflate_loop.
fn deflate_loop(
    strm: &ForeignBox<ZStream>,
    inbuf: &ForeignBuf,
    outbuf: &ForeignBuf,
    input: &[u8],
    mode: CopyMode,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(input.len() / 2);
    let mut pos = 0;
    loop {
        let chunk = &input[pos..(pos + CHUNK).min(input.len())];
        pos += chunk.len();
        let flush = if pos == input.len() {
            Z_FINISH
        } else {
            Z_NO_FLUSH
        };
        fill(inbuf, chunk, mode);
        let mut s = strm.get();
        (s.next_in, s.avail_in) = (addr(inbuf), chunk.len() as u32);
        strm.set(s);
        let rc = loop {
            let mut s = strm.get();
            (s.next_out, s.avail_out) = (addr(outbuf), CHUNK as u32);
            strm.set(s);
            // SAFETY: strm is initialised; next_in/avail_in and
            // next_out/avail_out describe the two foreign buffers.
            let rc = unsafe { deflate(strm, flush) }?;
            let rc = ok_or("deflate", rc, &[Z_OK, Z_STREAM_END, Z_BUF_ERROR])?;
            let s = strm.get();
            append(
                &mut out,
                outbuf,
                used("avail_out", s.avail_out, CHUNK)?,
                mode,
            )?;
            if s.avail_out != 0 {
                break rc;
            }
        };
        if strm.get().avail_in != 0 {
            return Err(Error::Protocol("deflate left input unread".into()));
        }
        if flush == Z_FINISH {
            return match rc {
                Z_STREAM_END => Ok(out),
                code => Err(Error::Zlib {
                    function: "deflate",
                    code,
                }),
            };
        }
    }
}

/// Decompresses `input` through the gate; `mode` as for [`compress`].
pub fn decompress(input: &[u8], mode: CopyMode) -> Result<Vec<u8>, Error> {
    let strm = ForeignBox::<ZStream>::zeroed()?;
    let (inbuf, outbuf) = take_buffers()?;
    let version: ForeignPtr<c_char> = zlibVersion()?;
    // SAFETY: as in `compress`; next_in is null and avail_in 0, so
    // inflateInit2_ reads no input.
    let rc = unsafe { inflateInit2_(&strm, WINDOW_BITS, version, size_of::<ZStream>() as c_int) }?;
    ok_or("inflateInit2_", rc, &[Z_OK])?;
    let result = inflate_loop(&strm, &inbuf, &outbuf, input, mode);
    // SAFETY: `strm` was initialised by inflateInit2_ and is ended once.
    let end = unsafe { inflateEnd(&strm) };
    keep_buffers((inbuf, outbuf));
    let out = result?;
    ok_or("inflateEnd", end?, &[Z_OK])?;
    Ok(out)
}

fn inflate_loop(
    strm: &ForeignBox<ZStream>,
    inbuf: &ForeignBuf,
    outbuf: &ForeignBuf,
    input: &[u8],
    mode: CopyMode,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(input.len().saturating_mul(3));
    let mut pos = 0;
    while pos < input.len() {
        let chunk = &input[pos..(pos + CHUNK).min(input.len())];
        pos += chunk.len();
        fill(inbuf, chunk, mode);
        let mut s = strm.get();
        (s.next_in, s.avail_in) = (addr(inbuf), chunk.len() as u32);
        strm.set(s);
        loop {
            let mut s = strm.get();
            (s.next_out, s.avail_out) = (addr(outbuf), CHUNK as u32);
            strm.set(s);
            // SAFETY: strm is initialised; next_in/avail_in and
            // next_out/avail_out describe the two foreign buffers.
            let rc = unsafe { inflate(strm, Z_NO_FLUSH) }?;
            // Z_BUF_ERROR: no progress possible, more input is needed.
            let rc = ok_or("inflate", rc, &[Z_OK, Z_STREAM_END, Z_BUF_ERROR])?;
            let s = strm.get();
            append(
                &mut out,
                outbuf,
                used("avail_out", s.avail_out, CHUNK)?,
                mode,
            )?;
            let unread = chunk.len() - used("avail_in", s.avail_in, chunk.len())?;
            if rc == Z_STREAM_END {
                if unread != 0 || pos != input.len() {
                    return Err(Error::TrailingData);
                }
                return Ok(out);
            }
            if s.avail_out != 0 {
                break;
            }
        }
    }
    Err(Error::Truncated)
}
