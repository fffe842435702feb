//! `#[cofferdam::sandbox]` wrappers: libc functions and Rust stand-ins for
//! misbehaving C functions, called through the gate, with their returns
//! validated.

// The stand-ins below are declared several times, with the return types a
// lying C function might claim (`char` included): on purpose.
#![allow(clashing_extern_declarations, improper_ctypes)]

mod common;

use core::ffi::{c_char, c_int, c_void};

use cofferdam::{Access, Error, FaultKind, ForeignBox, ForeignBuf, ForeignPtr, ForeignVec};

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

#[cofferdam::sandbox(compartment = "libc", safe(abs), handle = libc_compartment)]
extern "C" {
    /// The length of a NUL-terminated string.
    pub fn strlen(s: *const c_char) -> usize;
    pub fn memset(s: *mut c_void, c: c_int, n: usize) -> *mut c_void;
    pub fn memchr(s: *const c_void, c: c_int, n: usize) -> *mut c_void;
    pub fn abs(x: c_int) -> c_int;
    #[cofferdam(safe)]
    pub fn getpid() -> c_int;
    pub fn malloc(size: usize) -> *mut c_void;
    pub fn free(p: *mut c_void);
    #[link_name = "strlen"]
    fn strlen_u64(s: *const u64) -> usize;
}

// The edition-2024 spelling: `unsafe extern` with a `safe fn`.
#[cofferdam::sandbox(compartment = "libc-2024")]
unsafe extern "C" {
    pub safe fn labs(x: core::ffi::c_long) -> core::ffi::c_long;
}

/// The enum a misbehaving C function claims to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, cofferdam::ForeignEnum)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    Busy = 5,
    Failed = -1,
}

/// A `#[repr(C)]` enum: read as C's `int`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, cofferdam::ForeignEnum)]
#[repr(C)]
pub enum Color {
    Red = 1,
    Green,
}

// Stand-ins for C functions that return what their declaration does not
// allow: `cd_get_word` (C, attacks/c/statics.c) returns a word kept in C's
// memory, declared below with the types the caller expects. (A Rust
// stand-in reading a Rust static would fault on the mpk backend: Rust's
// statics carry P.)

#[export_name = "cdtest_echo_status"]
extern "C" fn echo_status(s: i32) -> i32 {
    s
}

// The stand-ins take no arguments and have no precondition: their wrappers
// can be safe.
#[cofferdam::sandbox(
    compartment = "liars",
    handle = liars_compartment,
    safe(lying_bool, lying_status, lying_color, lying_char, lying_ptr, lying_nonzero)
)]
extern "C" {
    #[link_name = "cd_get_word"]
    fn lying_bool() -> bool;
    #[link_name = "cd_get_word"]
    fn lying_status() -> Status;
    #[link_name = "cd_get_word"]
    fn lying_color() -> Color;
    #[link_name = "cd_get_word"]
    fn lying_char() -> char;
    #[link_name = "cd_get_word"]
    fn lying_ptr() -> *mut u8;
    #[link_name = "cd_get_word"]
    fn lying_nonzero() -> core::num::NonZeroU32;
    #[cofferdam(safe)]
    fn cdtest_echo_status(s: Status) -> Status;
}

// The word the stand-ins return is shared: tests that set it take this lock.
static WORD: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn returning<R>(word: usize, f: impl FnOnce() -> R) -> R {
    returning_in(liars_compartment().unwrap(), word, f)
}

/// Sets the word in `c`'s library, through `c` (on the process backend the
/// C global lives in `c`'s helper, not in this process).
fn returning_in<R>(c: &cofferdam::Compartment, word: usize, f: impl FnOnce() -> R) -> R {
    let _g = WORD.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: cd_set_word(uintptr_t) stores the word in a C global.
    let _: () = unsafe {
        c.call(
            "cd_set_word",
            cofferdam_attacks::statics::ffi::cd_set_word as *const (),
            (word,),
        )
    }
    .unwrap();
    f()
}

#[cofferdam::sandbox(compartment = "faulty", handle = faulty_compartment)]
extern "C" {
    #[link_name = "strlen"]
    fn faulty_strlen(s: *const c_char) -> usize;
}

#[cofferdam::sandbox(compartment = "heap-writer")]
extern "C" {
    #[link_name = "memset"]
    fn heap_memset(s: *mut u8, c: c_int, n: usize) -> *mut c_void;
}

fn invalid(r: Result<impl core::fmt::Debug, Error>, function: &str, detail: &str) {
    match r {
        Err(Error::Invalid {
            function: f,
            detail: d,
        }) => {
            assert_eq!(f, function);
            assert!(d.contains(detail), "detail {d:?} should contain {detail:?}");
        }
        other => panic!("{function}: expected Err(Invalid), got {other:?}"),
    }
}

#[test]
fn scalars_pass_through_and_safe_wrappers_need_no_unsafe() {
    assert_eq!(abs(-42), Ok(42));
    assert_eq!(abs(i32::MIN + 1), Ok(i32::MAX));
    // The pid of the process the library runs in: this one, or the
    // compartment's helper.
    let pid = libc_compartment()
        .unwrap()
        .helper_pid()
        .unwrap_or(std::process::id() as i32);
    assert_eq!(getpid(), Ok(pid as c_int));
    assert_eq!(labs(-5), Ok(5));
}

#[test]
fn pointer_parameters_take_foreign_memory() {
    let text = ForeignBuf::from_str_nul("cofferdam").unwrap();
    // SAFETY: a NUL-terminated string in foreign memory.
    assert_eq!(unsafe { strlen(&text) }, Ok(9));
    // A ForeignPtr of the exact pointee works as well, and a ForeignVec<i8>.
    let p = ForeignPtr::<c_char>::from_addr(text.as_foreign_ptr().addr());
    // SAFETY: the same NUL-terminated foreign string.
    assert_eq!(unsafe { strlen(p) }, Ok(9));
    let signed = ForeignVec::<i8>::from_slice(&[65, 66, 0]).unwrap();
    // SAFETY: "AB" and a NUL in foreign memory.
    assert_eq!(unsafe { strlen(&signed) }, Ok(2));

    // memset through a void* parameter, returning its first argument.
    let buf = ForeignBuf::zeroed(16).unwrap();
    // SAFETY: 8 bytes of a 16-byte foreign buffer.
    let p = unsafe { memset(&buf, 0x5a, 8) }.unwrap();
    assert_eq!(p.addr(), buf.as_foreign_ptr().addr());
    assert_eq!(buf.to_vec(), [[0x5au8; 8], [0u8; 8]].concat());

    // memchr: a returned pointer into foreign memory is accepted.
    // SAFETY: 16 bytes of a 16-byte foreign buffer.
    let hit = unsafe { memchr(&buf, 0, 16) }.unwrap();
    assert_eq!(hit.addr(), buf.as_foreign_ptr().addr() + 8);
    // SAFETY: 16 bytes of the same buffer, which holds no 0x77: memchr returns null.
    let miss = unsafe { memchr(&buf, 0x77, 16) }.unwrap();
    assert!(miss.is_null(), "null is a valid ForeignPtr");

    // A ForeignBox of u64 to a `*const u64` parameter.
    let b = ForeignBox::new(0x0000_0000_0041_4141u64).unwrap();
    // SAFETY: the box's 8 bytes hold "AAA\0".
    assert_eq!(unsafe { strlen_u64(&b) }, Ok(3));
}

#[test]
fn returned_pointers_are_foreign_ptrs() {
    // SAFETY: malloc has no precondition.
    let p: ForeignPtr<c_void> = unsafe { malloc(64) }.unwrap();
    assert!(!p.is_null());
    assert!(!cofferdam::is_protected_region(p.addr()));
    // SAFETY: 64 bytes from malloc.
    unsafe { memset(p, 0, 64) }.unwrap();
    // SAFETY: from malloc, freed once.
    assert_eq!(unsafe { free(p) }, Ok(()));
}

#[test]
fn invalid_bools_are_refused() {
    returning(0, || assert_eq!(lying_bool(), Ok(false)));
    returning(1, || assert_eq!(lying_bool(), Ok(true)));
    // Only `al` is defined for a bool: higher bits are ignored.
    returning(0x100, || assert_eq!(lying_bool(), Ok(false)));
    returning(2, || invalid(lying_bool(), "lying_bool", "2 is not a bool"));
    returning(0xff, || invalid(lying_bool(), "lying_bool", "255"));
    // An invalid return does not poison: nothing went wrong in the compartment.
    assert!(!liars_compartment().unwrap().is_poisoned());
}

#[test]
fn invalid_enums_are_refused() {
    returning(5, || assert_eq!(lying_status(), Ok(Status::Busy)));
    returning(u32::MAX as usize, || {
        assert_eq!(lying_status(), Ok(Status::Failed))
    });
    returning(3, || {
        invalid(
            lying_status(),
            "lying_status",
            "3 is not a discriminant of `Status`",
        )
    });
    // Only the low 32 bits carry an i32: 1 << 32 is 0, Ok.
    returning(1 << 32, || assert_eq!(lying_status(), Ok(Status::Ok)));
    returning(2, || assert_eq!(lying_color(), Ok(Color::Green)));
    returning(0, || invalid(lying_color(), "lying_color", "0 is not"));
    // Enums also pass by value; the safe wrapper needs no `unsafe`.
    assert_eq!(cdtest_echo_status(Status::Failed), Ok(Status::Failed));
}

#[test]
fn invalid_chars_and_nonzeros_are_refused() {
    returning('é' as usize, || assert_eq!(lying_char(), Ok('é')));
    returning(0xd800, || invalid(lying_char(), "lying_char", "0xd800"));
    returning(7, || assert_eq!(lying_nonzero().map(|n| n.get()), Ok(7)));
    returning(0, || invalid(lying_nonzero(), "lying_nonzero", "0 is not"));
}

#[test]
fn pointers_into_a_tagged_rust_stack_are_refused() {
    // One check for every "is this protected?" question: a pointer into this
    // thread's (tagged) Rust stack is refused like one into the heap.
    if !common::mpk_or_skip("pointers_into_a_tagged_rust_stack_are_refused") {
        return;
    }
    let _ = lying_ptr(); // the thread's first gate call tags its stack
                         // Some frames down: the top page of a thread's stack, which it shares
                         // with its TLS, stays untagged (docs/stacks.md).
    fn deep(n: usize) {
        let pad = [n as u8; 4096];
        std::hint::black_box(&pad);
        if n > 0 {
            return deep(n - 1);
        }
        let addr = pad.as_ptr() as usize;
        assert!(cofferdam::is_protected(addr, 8), "the stack is tagged");
        assert!(
            !cofferdam::is_protected_region(addr),
            "and it is not the heap"
        );
        returning(addr, || {
            invalid(lying_ptr(), "lying_ptr", "points into protected memory")
        });
    }
    deep(3);
}

#[test]
fn pointers_into_the_rust_heap_are_refused() {
    let secret = Box::new(0x5ec2e7u64);
    let addr = &*secret as *const u64 as usize;
    assert!(
        cofferdam::is_protected_region(addr),
        "the test needs ProtectedAlloc's region (any backend but none)"
    );
    returning(addr, || {
        invalid(lying_ptr(), "lying_ptr", "points into protected memory")
    });
    // Null and foreign addresses are fine.
    returning(0, || assert_eq!(lying_ptr(), Ok(ForeignPtr::null())));
    let f = ForeignBuf::zeroed(8).unwrap();
    returning(f.as_foreign_ptr().addr(), || {
        assert_eq!(lying_ptr(), Ok(f.as_foreign_ptr()))
    });
    assert_eq!(*secret, 0x5ec2e7);
}

#[test]
fn a_fault_in_a_wrapped_function_is_an_error_and_poisons() {
    // SAFETY: strlen of address 1 faults; the fault is the test.
    let r = unsafe { faulty_strlen(ForeignPtr::from_addr(1)) };
    match r {
        Err(Error::Fault(f)) => {
            assert_eq!(f.compartment, "faulty");
            assert_eq!(f.function, "faulty_strlen");
            assert_eq!(f.kind, FaultKind::Unmapped);
            assert_eq!(f.access, Access::Read);
            assert_eq!(f.address, 1);
        }
        other => panic!("expected a fault, got {other:?}"),
    }
    assert!(faulty_compartment().unwrap().is_poisoned());
    let text = ForeignBuf::from_str_nul("ok").unwrap();
    // SAFETY: a valid string; the call is refused before it runs.
    assert_eq!(
        unsafe { faulty_strlen(&text) },
        Err(Error::Poisoned {
            compartment: "faulty".into()
        })
    );
    // Other blocks have compartments of their own.
    // SAFETY: `text` is a NUL-terminated foreign string.
    assert_eq!(unsafe { strlen(&text) }, Ok(2));
    assert!(!libc_compartment().unwrap().is_poisoned());
}

#[test]
fn foreign_code_cannot_write_the_rust_heap_through_a_wrapper() {
    if !common::mpk_or_skip("foreign_code_cannot_write_the_rust_heap_through_a_wrapper") {
        return;
    }
    let key = cofferdam::info().pkey.unwrap();
    let target = Box::new([7u8; 64]);
    let forged = ForeignPtr::<u8>::from_addr(target.as_ptr() as usize);
    // SAFETY: not sound on purpose: a forged ForeignPtr to Rust memory; the
    // protection key stops the write, which is the test.
    let r = unsafe { heap_memset(forged, 0, 64) };
    match r {
        Err(Error::Fault(f)) => {
            assert_eq!(f.compartment, "heap-writer");
            assert_eq!(f.function, "heap_memset");
            assert_eq!(f.kind, FaultKind::ProtectionKey);
            assert_eq!(f.access, Access::Write);
            assert_eq!(f.pkey, Some(key));
        }
        other => panic!("expected a protection-key fault, got {other:?}"),
    }
    assert_eq!(*target, [7u8; 64]);
}

#[test]
fn validate_call_checks_returns_of_compartment_calls() {
    let c = cofferdam::Compartment::new("manual").unwrap();
    returning_in(&c, 9, || {
        // SAFETY: cd_get_word() -> uintptr_t, called as returning a bool.
        let r: Result<bool, Error> = unsafe {
            cofferdam::validate::call(
                &c,
                "cd_get_word",
                cofferdam_attacks::statics::ffi::cd_get_word as *const (),
                (),
            )
        };
        invalid(r, "cd_get_word", "9 is not a bool");
    });
}

// The attack suite's C library provides `cd_sum10` (ten `long`s, a weighted
// sum); this keeps it linked.
use cofferdam_attacks as _;

#[cofferdam::sandbox(compartment = "wide", safe(cd_sum10))]
extern "C" {
    fn cd_sum10(
        a: i64,
        b: i64,
        c: i64,
        d: i64,
        e: i64,
        f: i64,
        g: i64,
        h: i64,
        i: i64,
        j: i64,
    ) -> i64;
}

#[test]
fn more_than_six_parameters_go_on_the_stack() {
    // Σ k·k for k = 1..=10: every argument landed in its own place.
    assert_eq!(cd_sum10(1, 2, 3, 4, 5, 6, 7, 8, 9, 10).unwrap(), 385);
    assert_eq!(cd_sum10(0, 0, 0, 0, 0, 0, 0, 0, 0, -1).unwrap(), -10);
}

// Floating-point parameters and returns, and callbacks, as bindgen writes
// them.
#[cofferdam::sandbox(compartment = "float-and-callbacks")]
extern "C" {
    fn cd_mix(a: c_int, x: f64, b: core::ffi::c_long, y: f32, z: core::ffi::c_double) -> f64;
    fn cd_halve(x: core::ffi::c_float) -> f32;
    pub fn qsort(
        base: *mut c_void,
        nmemb: usize,
        size: usize,
        compar: Option<unsafe extern "C" fn(*const c_void, *const c_void) -> c_int>,
    );
    fn cd_cb_double(
        cb: Option<unsafe extern "C" fn(x: f64, n: c_int) -> f64>,
        x: f64,
        n: c_int,
    ) -> f64;
    fn ldexp(x: f64, exp: c_int) -> f64;
}

#[test]
fn floats_travel_in_sse_registers() {
    // SAFETY: scalar arguments only; the functions have no preconditions.
    unsafe {
        assert_eq!(cd_mix(3, 1.5, 4, 0.5, 2.0).unwrap(), 4.5);
        assert_eq!(cd_halve(3.0).unwrap(), 1.5);
        assert_eq!(ldexp(0.75, 4).unwrap(), 12.0);
    }
}

#[test]
fn callbacks_through_the_macro() {
    if cofferdam::backend() == cofferdam::Backend::None {
        return;
    }
    let v = ForeignVec::<c_int>::from_slice(&[5, -2, 9, 0, 3]).unwrap();
    let cmp =
        cofferdam::Callback::<fn(ForeignPtr<c_int>, ForeignPtr<c_int>) -> c_int>::new(|a, b| {
            a.read().unwrap_or(0).cmp(&b.read().unwrap_or(0)) as c_int
        })
        .unwrap();
    // SAFETY: `v` holds `len` ints of 4 bytes.
    unsafe { qsort(&v, v.len(), 4, Some(cmp.as_arg())) }.unwrap();
    assert_eq!(v.to_vec(), [-2, 0, 3, 5, 9]);
    let twice = cofferdam::Callback::<fn(f64, c_int) -> f64>::new(|x, n| x * n as f64).unwrap();
    // SAFETY: scalar arguments and a callback.
    let r = unsafe { cd_cb_double(Some(twice.as_arg()), 2.5, 2) }.unwrap();
    assert_eq!(r, 6.0);
}
