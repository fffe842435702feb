//! Foreign memory: C's malloc, copies out, bounds checks.

mod common;

use cofferdam::{ForeignBox, ForeignBuf, ForeignVec, OutOfBounds};

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

#[test]
fn foreign_memory_is_never_in_the_protected_region() {
    let b = ForeignBox::new(5u32).unwrap();
    let v = ForeignVec::<u64>::zeroed(1000).unwrap();
    assert!(!cofferdam::is_protected_region(b.as_foreign_ptr().addr()));
    assert!(!cofferdam::is_protected_region(v.as_foreign_ptr().addr()));
    assert!(cofferdam::is_protected_region(
        &*Box::new(1u8) as *const u8 as usize
    ));
}

#[test]
fn reads_are_copies_and_bounds_checked() {
    let v = ForeignVec::from_slice(&[1u16, 2, 3]).unwrap();
    assert_eq!(v.len(), 3);
    assert_eq!(v.get(2), Some(3));
    assert_eq!(v.get(3), None);
    assert_eq!(
        v.set(3, 9),
        Err(OutOfBounds {
            index: 3,
            count: 1,
            len: 3
        })
    );
    assert_eq!(
        v.write(2, &[7, 8]),
        Err(OutOfBounds {
            index: 2,
            count: 2,
            len: 3
        })
    );
    assert!(
        v.write(usize::MAX, &[1]).is_err(),
        "index overflow is an error, not a wrap"
    );
    let mut out = [0u16; 2];
    v.read(1, &mut out).unwrap();
    assert_eq!(out, [2, 3]);
    // What "C" changes underneath shows in the next copy, never in an old one.
    let copy = v.to_vec();
    // SAFETY: writes element 0 of the live foreign buffer, as C would.
    unsafe { v.as_foreign_ptr().as_raw().write(99) };
    assert_eq!(copy, vec![1, 2, 3]);
    assert_eq!(v.get(0), Some(99));
}

#[test]
fn c_may_free_what_rust_gives_it() {
    if !common::in_process_or_skip(
        "c_may_free_what_rust_gives_it",
        "foreign memory is the shared arena, not C's malloc, and this process's `free` is not the library's (README: into_foreign on process)",
    ) {
        return;
    }
    let b = ForeignBox::new([1u8; 32]).unwrap();
    let p = b.into_foreign();
    // SAFETY: p came from C's malloc and is given up by Rust.
    unsafe { libc::free(p.as_raw().cast()) };
    let s = ForeignBuf::from_str_nul("abc").unwrap();
    assert_eq!(s.to_bytes_until_nul(), b"abc");
    // SAFETY: strlen on a NUL-terminated foreign buffer.
    assert_eq!(
        unsafe { libc::strlen(s.as_foreign_ptr().as_raw().cast()) },
        3
    );
}

#[test]
fn over_aligned_pod_is_aligned() {
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    struct Line([u8; 64]);
    // SAFETY: a byte array wrapper: every bit pattern is valid.
    unsafe impl cofferdam::Pod for Line {}
    let v = ForeignVec::<Line>::zeroed(3).unwrap();
    assert_eq!(v.as_foreign_ptr().addr() % 64, 0);
}

#[test]
fn read_foreign_copies_through_the_gate_and_contains_bad_pointers() {
    let c = cofferdam::Compartment::new("reader").unwrap();
    let v = ForeignVec::from_slice(&[10u32, 20, 30]).unwrap();
    assert_eq!(
        c.read_foreign(v.as_foreign_ptr(), 3).unwrap(),
        vec![10, 20, 30]
    );
    assert_eq!(
        c.read_foreign(v.as_foreign_ptr(), 0).unwrap(),
        Vec::<u32>::new()
    );
    // Rust's heap is refused before anything is read, on every backend.
    let rust = Box::new([7u8; 32]);
    let p = cofferdam::ForeignPtr::<u8>::from_addr(rust.as_ptr() as usize);
    assert!(matches!(
        c.read_foreign(p, 32),
        Err(cofferdam::Error::Invalid { .. })
    ));
    assert!(!c.is_poisoned());
    // A wild pointer faults inside the gate: an error, and the compartment is poisoned.
    let wild = cofferdam::ForeignPtr::<u8>::from_addr(16);
    assert!(matches!(
        c.read_foreign(wild, 8),
        Err(cofferdam::Error::Fault(_))
    ));
    assert!(c.is_poisoned());
}

#[test]
fn bulk_copies_are_exact_at_every_offset_and_length() {
    let v = ForeignVec::<u8>::zeroed(300).unwrap();
    let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
    for start in 0..17 {
        for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 64, 100, 300 - 17] {
            v.fill(0);
            v.write(start, &data[..len]).unwrap();
            let mut back = vec![0u8; len];
            v.read(start, &mut back).unwrap();
            assert_eq!(back, &data[..len], "start {start} len {len}");
            let all = v.to_vec();
            assert!(
                all[..start].iter().all(|&b| b == 0),
                "nothing written before {start}"
            );
            assert!(
                all[start + len..].iter().all(|&b| b == 0),
                "nothing written after {}",
                start + len
            );
        }
    }
    let mut out = vec![1u8, 2];
    v.write(0, &data[..10]).unwrap();
    v.append_to(10, &mut out).unwrap();
    assert_eq!(out[2..], data[..10]);
    assert!(v.append_to(301, &mut out).is_err());
    let w = ForeignVec::from_slice(&[1u64, u64::MAX, 3]).unwrap();
    assert_eq!(w.to_vec(), vec![1, u64::MAX, 3]);
}
