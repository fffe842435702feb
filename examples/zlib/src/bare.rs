//! The same loops, the ordinary way: libz-sys's declarations, zlib reading
//! the caller's slice and writing a Rust buffer directly.

use core::mem::{size_of, MaybeUninit};

use libz_sys as zs;

use crate::z::*;
use crate::{ok_or, Error, CHUNK, MEM_LEVEL, WINDOW_BITS};

/// A zeroed `z_stream` on the Rust heap. It is never turned into a
/// `&z_stream` (libz-sys's `zalloc`/`zfree` are non-nullable function
/// pointers, and 0 asks zlib for its default allocator): fields are accessed
/// through the raw pointer only.
fn new_stream() -> Box<MaybeUninit<zs::z_stream>> {
    Box::new(MaybeUninit::zeroed())
}

/// Compresses `input`, calling zlib directly.
pub fn compress(input: &[u8], level: i32) -> Result<Vec<u8>, Error> {
    let mut boxed = new_stream();
    let strm = boxed.as_mut_ptr();
    // SAFETY: `strm` is a zeroed z_stream (zalloc, zfree, opaque null: the
    // default allocator); the version and size are libz-sys's, that is the
    // linked zlib's.
    let rc = unsafe {
        zs::deflateInit2_(
            strm,
            level,
            Z_DEFLATED,
            WINDOW_BITS,
            MEM_LEVEL,
            Z_DEFAULT_STRATEGY,
            zs::zlibVersion(),
            size_of::<zs::z_stream>() as i32,
        )
    };
    ok_or("deflateInit2_", rc, &[Z_OK])?;
    // SAFETY: initialised above; the stream stays in its box.
    let result = unsafe { deflate_loop(strm, input) };
    // SAFETY: initialised by deflateInit2_, ended once.
    let end = unsafe { zs::deflateEnd(strm) };
    let out = result?;
    ok_or("deflateEnd", end, &[Z_OK])?;
    Ok(out)
}

/// # Safety
/// `strm` points to a z_stream initialised by `deflateInit2_`.
// docs/examples.md shows this loop next to gated::deflate_loop.
unsafe fn deflate_loop(strm: *mut zs::z_stream, input: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(input.len() / 2);
    let mut outbuf = vec![0u8; CHUNK];
    let mut pos = 0;
    loop {
        let chunk = &input[pos..(pos + CHUNK).min(input.len())];
        pos += chunk.len();
        let flush = if pos == input.len() {
            Z_FINISH
        } else {
            Z_NO_FLUSH
        };
        // SAFETY: `strm` is valid (contract); fields are written through the
        // raw pointer. zlib only reads through next_in.
        unsafe {
            (*strm).next_in = chunk.as_ptr().cast_mut();
            (*strm).avail_in = chunk.len() as u32;
        }
        let rc = loop {
            // SAFETY: as above; next_out/avail_out describe `outbuf`, and
            // next_in/avail_in what is left of `chunk`.
            let (rc, avail_out) = unsafe {
                (*strm).next_out = outbuf.as_mut_ptr();
                (*strm).avail_out = CHUNK as u32;
                let rc = zs::deflate(strm, flush);
                (rc, (*strm).avail_out as usize)
            };
            let rc = ok_or("deflate", rc, &[Z_OK, Z_STREAM_END, Z_BUF_ERROR])?;
            out.extend_from_slice(&outbuf[..CHUNK - avail_out]);
            if avail_out != 0 {
                break rc;
            }
        };
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

/// Decompresses `input`, calling zlib directly.
pub fn decompress(input: &[u8]) -> Result<Vec<u8>, Error> {
    let mut boxed = new_stream();
    let strm = boxed.as_mut_ptr();
    // SAFETY: as in `compress`; next_in is null and avail_in 0.
    let rc = unsafe {
        zs::inflateInit2_(
            strm,
            WINDOW_BITS,
            zs::zlibVersion(),
            size_of::<zs::z_stream>() as i32,
        )
    };
    ok_or("inflateInit2_", rc, &[Z_OK])?;
    // SAFETY: initialised above; the stream stays in its box.
    let result = unsafe { inflate_loop(strm, input) };
    // SAFETY: initialised by inflateInit2_, ended once.
    let end = unsafe { zs::inflateEnd(strm) };
    let out = result?;
    ok_or("inflateEnd", end, &[Z_OK])?;
    Ok(out)
}

/// # Safety
/// `strm` points to a z_stream initialised by `inflateInit2_`.
unsafe fn inflate_loop(strm: *mut zs::z_stream, input: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(input.len().saturating_mul(3));
    let mut outbuf = vec![0u8; CHUNK];
    let mut pos = 0;
    while pos < input.len() {
        let chunk = &input[pos..(pos + CHUNK).min(input.len())];
        pos += chunk.len();
        // SAFETY: `strm` is valid (contract); zlib only reads next_in.
        unsafe {
            (*strm).next_in = chunk.as_ptr().cast_mut();
            (*strm).avail_in = chunk.len() as u32;
        }
        loop {
            // SAFETY: as above; next_out/avail_out describe `outbuf`.
            let (rc, avail_in, avail_out) = unsafe {
                (*strm).next_out = outbuf.as_mut_ptr();
                (*strm).avail_out = CHUNK as u32;
                let rc = zs::inflate(strm, Z_NO_FLUSH);
                (rc, (*strm).avail_in, (*strm).avail_out as usize)
            };
            let rc = ok_or("inflate", rc, &[Z_OK, Z_STREAM_END, Z_BUF_ERROR])?;
            out.extend_from_slice(&outbuf[..CHUNK - avail_out]);
            if rc == Z_STREAM_END {
                if avail_in != 0 || pos != input.len() {
                    return Err(Error::TrailingData);
                }
                return Ok(out);
            }
            if avail_out != 0 {
                break;
            }
        }
    }
    Err(Error::Truncated)
}
