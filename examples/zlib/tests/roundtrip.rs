//! The gated path against zlib called directly: same compressed bytes, same
//! decompressed bytes, and errors (not panics, not faults) for bad input.

use cofferdam_example_zlib::{
    compress_bare, compress_gated, decompress_bare, decompress_gated, gated, input, z, Error,
};

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

#[test]
fn eight_mib_round_trip_matches_bare_zlib_byte_for_byte() {
    let data = input::text(input::EIGHT_MIB, 1);
    assert_eq!(data.len(), 8 << 20);
    let gated = compress_gated(&data, 6).expect("gated compress");
    let bare = compress_bare(&data, 6).expect("bare compress");
    // Compressible, and more than one 1 MiB output chunk: the inner loop ran.
    assert!(gated.len() < data.len() / 2, "{} bytes", gated.len());
    assert!(gated.len() > 1 << 20, "{} bytes", gated.len());
    assert_eq!(gated.len(), bare.len());
    assert!(gated == bare, "compressed bytes differ from bare zlib's");
    // zlib header: deflate, 32 KiB window, default level.
    assert_eq!(&gated[..2], &[0x78, 0x9c]);

    let restored = decompress_gated(&gated).expect("gated decompress");
    assert_eq!(restored.len(), data.len());
    assert!(restored == data, "round trip changed the data");
    let restored_bare = decompress_bare(&gated).expect("bare decompress");
    assert!(restored_bare == data);
    // No fault along the way: the compartment is healthy.
    assert!(!gated::zlib_compartment().unwrap().is_poisoned());
}

#[test]
fn other_levels_and_sizes_match_bare_zlib() {
    // Empty, tiny, exactly one chunk, one chunk and a byte; levels 0, 1, 9
    // and the default (-1).
    for (len, level) in [
        (0, -1),
        (1, 9),
        (1 << 20, 1),
        ((1 << 20) + 1, 0),
        (300_000, 9),
    ] {
        let data = input::text(len, len as u64 + 7);
        let g = compress_gated(&data, level).unwrap();
        let b = compress_bare(&data, level).unwrap();
        assert!(g == b, "len {len} level {level}: differs from bare zlib");
        assert!(
            decompress_gated(&g).unwrap() == data,
            "len {len} level {level}"
        );
    }
}

#[test]
fn corrupt_input_is_an_error_not_a_panic() {
    let data = input::text(2 << 20, 3);
    let good = compress_gated(&data, 6).unwrap();

    // A flipped byte in the middle of the deflate data.
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    let e = decompress_gated(&flipped).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Zlib {
                function: "inflate",
                code: z::Z_DATA_ERROR
            } | Error::TrailingData
        ),
        "{e:?}"
    );
    assert_eq!(
        decompress_bare(&flipped).unwrap_err(),
        e,
        "bare zlib agrees"
    );

    // Not zlib at all: a bad header.
    let e = decompress_gated(b"this is not a zlib stream").unwrap_err();
    assert_eq!(
        e,
        Error::Zlib {
            function: "inflate",
            code: z::Z_DATA_ERROR
        }
    );
    assert_eq!(e.to_string(), "inflate returned Z_DATA_ERROR (-3)");

    // A wrong checksum at the end.
    let mut bad_sum = good.clone();
    *bad_sum.last_mut().unwrap() ^= 1;
    assert_eq!(
        decompress_gated(&bad_sum).unwrap_err(),
        Error::Zlib {
            function: "inflate",
            code: z::Z_DATA_ERROR
        }
    );

    // Cut short, and with garbage after the end.
    assert_eq!(
        decompress_gated(&good[..good.len() - 10]).unwrap_err(),
        Error::Truncated
    );
    assert_eq!(decompress_gated(&[]).unwrap_err(), Error::Truncated);
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    assert_eq!(
        decompress_gated(&trailing).unwrap_err(),
        Error::TrailingData
    );

    // A bad level is zlib's Z_STREAM_ERROR from deflateInit2_.
    assert_eq!(
        compress_gated(b"x", 42).unwrap_err(),
        Error::Zlib {
            function: "deflateInit2_",
            code: z::Z_STREAM_ERROR
        }
    );

    // None of this faulted: the compartment still works.
    assert!(!gated::zlib_compartment().unwrap().is_poisoned());
    assert!(decompress_gated(&good).unwrap() == data);
}

#[test]
fn version_comes_from_the_linked_c_library() {
    let v = cofferdam_example_zlib::version().unwrap();
    // SAFETY: zlibVersion returns a static NUL-terminated string.
    let bare = unsafe { core::ffi::CStr::from_ptr(libz_sys::zlibVersion()) };
    assert_eq!(v, bare.to_str().unwrap());
    assert!(v.starts_with("1."), "{v}");
    // The same function, called through the gate and directly.
    let through = gated::zlibVersion().unwrap();
    let c = gated::zlib_compartment().unwrap();
    if c.helper_pid().is_some() {
        // On the process backend the helper returns its own copy of the
        // static string, at its own address: read it through the compartment.
        assert_eq!(c.read_foreign_cstr(through, 64).unwrap(), bare.to_bytes());
    } else {
        assert_eq!(
            through.addr(),
            // SAFETY: as above.
            unsafe { libz_sys::zlibVersion() } as usize
        );
    }
}
