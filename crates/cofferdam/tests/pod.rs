//! Mirroring C structs: `#[derive(cofferdam::Pod)]`, `ForeignPtr` fields
//! (read back as untrusted addresses, usable only through checked paths),
//! `?` on foreign-memory errors in a function returning `cofferdam::Error`,
//! and `read_foreign_cstr` on a `*const c_char` return.

mod common;

use core::ffi::{c_char, c_int, c_void};
use core::mem::{offset_of, size_of};

use cofferdam::{
    Error, ForeignAllocError, ForeignBox, ForeignBuf, ForeignPtr, ForeignVec, OutOfBounds,
};

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

/// `struct header { const char *name; unsigned char *buf; uint32_t len;
/// int32_t flags; struct { uint16_t a, b; uint32_t c; } inner; }`, field
/// for field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, cofferdam::Pod)]
#[repr(C)]
struct Header {
    name: ForeignPtr<c_char>,
    buf: ForeignPtr<u8>,
    len: u32,
    flags: i32,
    inner: Inner,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, cofferdam::Pod)]
#[repr(C)]
struct Inner {
    a: u16,
    b: u16,
    c: u32,
}

/// A `#[repr(transparent)]` handle around a pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, cofferdam::Pod)]
#[repr(transparent)]
struct Handle(ForeignPtr<c_void>);

#[cofferdam::sandbox(compartment = "mirror")]
extern "C" {
    fn memcpy(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
    fn strchr(s: *const c_char, c: c_int) -> *mut c_char;
    fn strtol(s: *const c_char, end: *mut *mut c_char, base: c_int) -> core::ffi::c_long;
}

#[test]
fn a_derived_mirror_has_the_c_layout_and_round_trips_through_c() {
    // The layout C has for `struct header` on x86_64.
    assert_eq!(size_of::<Header>(), 32);
    assert_eq!(offset_of!(Header, buf), 8);
    assert_eq!(offset_of!(Header, len), 16);
    assert_eq!(offset_of!(Header, inner), 24);
    assert_eq!(size_of::<Handle>(), 8);
    assert_eq!(size_of::<ForeignPtr<u8>>(), size_of::<usize>());

    let name = ForeignBuf::from_str_nul("header-one").unwrap();
    let data = ForeignBuf::from_slice(b"payload").unwrap();
    let h = Header {
        name: ForeignPtr::from_addr(name.as_foreign_ptr().addr()),
        buf: data.as_foreign_ptr(),
        len: 7,
        flags: -2,
        inner: Inner { a: 1, b: 2, c: 3 },
    };
    let src = ForeignBox::new(h).unwrap();
    let dst = ForeignBox::<Header>::zeroed().unwrap();
    assert_eq!(dst.get(), Header::default());
    // C copies the struct, pointers and all.
    // SAFETY: both boxes hold one Header; memcpy copies its 32 bytes.
    unsafe { memcpy(&dst, &src, size_of::<Header>()) }.unwrap();
    let back = dst.get();
    assert_eq!(back, h);

    // The pointer fields are used through the checked paths.
    let c = mirror_compartment().unwrap();
    assert_eq!(c.read_foreign_cstr(back.name, 64).unwrap(), b"header-one");
    assert_eq!(
        c.read_foreign(back.buf, back.len as usize).unwrap(),
        b"payload"
    );
    assert_eq!(back.buf.read_at(3), Ok(b'l'));

    // A ForeignVec of them, and a transparent wrapper.
    let hs = ForeignVec::from_slice(&[h, Header::default()]).unwrap();
    assert_eq!(hs.get(0), Some(h));
    let handle = ForeignBox::new(Handle(ForeignPtr::from_addr(0x1000))).unwrap();
    assert_eq!(handle.get().0.addr(), 0x1000);
}

#[test]
fn a_pointer_field_c_wrote_is_untrusted() {
    if !common::mpk_or_skip("a_pointer_field_c_wrote_is_untrusted") {
        return;
    }
    let secret = Box::new(*b"rust secret\0");
    let secret_addr = secret.as_ptr() as usize;
    assert!(cofferdam::is_protected_region(secret_addr));
    // Foreign code points the struct's fields at Rust's heap and at nothing:
    // bytes are bytes, so the Header is valid, but its pointers are not to
    // be followed blindly.
    let forged = ForeignBox::new(Header::default()).unwrap();
    let words = ForeignVec::from_slice(&[secret_addr as u64, 8]).unwrap();
    // SAFETY: 16 bytes from one foreign buffer into the first two fields.
    unsafe { memcpy(&forged, &words, 16) }.unwrap();
    let h = forged.get();
    assert_eq!(h.name.addr(), secret_addr);
    assert_eq!(h.buf.addr(), 8);

    let c = mirror_compartment().unwrap();
    // Into the protected heap: refused without being touched.
    assert!(
        matches!(c.read_foreign_cstr(h.name, 64), Err(Error::Invalid { .. })),
        "a pointer into the Rust heap must be refused"
    );
    assert!(matches!(h.name.read(), Err(Error::Invalid { .. })));
    // Nowhere: an error, not a crash.
    assert!(matches!(h.buf.read(), Err(Error::Invalid { .. })));
    assert!(!c.is_poisoned());
    assert_eq!(&*secret, b"rust secret\0");
}

#[test]
fn read_foreign_cstr_takes_a_c_char_return() {
    let s = ForeignBuf::from_str_nul("key=value").unwrap();
    // SAFETY: `s` is a NUL-terminated foreign string.
    let eq: ForeignPtr<c_char> = unsafe { strchr(&s, b'=' as c_int) }.unwrap();
    assert_eq!(eq.addr(), s.as_foreign_ptr().addr() + 3);
    let c = mirror_compartment().unwrap();
    assert_eq!(c.read_foreign_cstr(eq, 64).unwrap(), b"=value");
    assert_eq!(c.read_foreign_cstr(eq, 3).unwrap(), b"=va");
}

/// A function of the program's own, returning `cofferdam::Error`: `?` works
/// on foreign allocations and bounds checks.
fn fill(len: usize, at: usize, data: &[u8]) -> Result<Vec<u8>, Error> {
    let v = ForeignVec::<u8>::zeroed(len)?;
    v.write(at, data)?;
    let b = ForeignBox::new(0u64)?;
    b.set(v.len() as u64);
    Ok(v.to_vec())
}

#[test]
fn question_mark_converts_foreign_memory_errors() {
    assert_eq!(fill(4, 1, b"ab"), Ok(vec![0, b'a', b'b', 0]));
    let oob = fill(4, 3, b"ab").unwrap_err();
    assert_eq!(
        oob,
        Error::OutOfBounds(OutOfBounds {
            index: 3,
            count: 2,
            len: 4
        })
    );
    assert!(
        oob.to_string().contains("outside a foreign buffer"),
        "{oob}"
    );
    // An allocation C's allocator cannot satisfy.
    let huge = fill(usize::MAX / 2, 0, b"").unwrap_err();
    assert!(
        matches!(huge, Error::Alloc(ForeignAllocError { .. })),
        "{huge:?}"
    );
    let source = std::error::Error::source(&huge).expect("the allocation error");
    assert!(
        source.to_string().contains("could not allocate"),
        "{source}"
    );
}

#[test]
fn an_out_parameter_of_pointer_type_is_a_box_of_foreign_ptr() {
    let s = ForeignBuf::from_str_nul("1234 rest").unwrap();
    let end = ForeignBox::new(ForeignPtr::<c_char>::null()).unwrap();
    // SAFETY: `s` is a NUL-terminated foreign string; `end` is a foreign
    // `char *` slot that strtol fills in.
    let n = unsafe { strtol(&s, &end, 10) }.unwrap();
    assert_eq!(n, 1234);
    let rest = end.get();
    assert_eq!(rest.addr(), s.as_foreign_ptr().addr() + 4);
    let c = mirror_compartment().unwrap();
    assert_eq!(c.read_foreign_cstr(rest, 16).unwrap(), b" rest");
}
