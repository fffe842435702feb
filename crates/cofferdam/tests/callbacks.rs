//! Rust callbacks called by C through the reverse gate: qsort, refusals
//! (Rust pointers, late calls, other threads), panics, floats, nesting.

use core::cell::Cell;
use core::ffi::c_int;

use cofferdam::{Callback, Compartment, Error, ForeignPtr, ForeignVec};
use cofferdam_attacks::ffi;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

type Cmp = fn(ForeignPtr<c_int>, ForeignPtr<c_int>) -> c_int;
type Two = fn(ForeignPtr<u8>, ForeignPtr<u8>) -> c_int;

fn gated() -> bool {
    cofferdam::backend() != cofferdam::Backend::None
}

#[test]
fn qsort_sorts_with_a_rust_comparator() {
    if !gated() {
        return; // callbacks run through the gate; the baseline has none
    }
    let libc = Compartment::new("libc").unwrap();
    let mut x: u32 = 12345;
    let data: Vec<c_int> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 100_000) as c_int
        })
        .collect();
    let v = ForeignVec::<c_int>::from_slice(&data).unwrap();
    let calls = Cell::new(0u64);
    let cmp = Callback::<Cmp>::new(|a, b| {
        calls.set(calls.get() + 1);
        a.read().unwrap().cmp(&b.read().unwrap()) as c_int
    })
    .unwrap();
    // SAFETY: qsort(void *base, size_t n, size_t size, int (*)(const void *, const void *)).
    let _: () = unsafe {
        libc.call_with_callbacks(
            "qsort",
            libc::qsort as *const (),
            (v.as_foreign_ptr(), v.len(), 4usize, cmp.stub()),
            &[&cmp],
        )
    }
    .unwrap();
    let mut want = data.clone();
    want.sort();
    assert_eq!(v.to_vec(), want);
    assert!(
        calls.get() > 20_000,
        "the comparator ran {} times",
        calls.get()
    );
    assert_eq!(cmp.refusals(), 0);
}

fn abuse_setup() -> (Compartment, ForeignVec<u8>) {
    (
        Compartment::new("abuse").unwrap(),
        ForeignVec::<u8>::zeroed(16).unwrap(),
    )
}

#[test]
fn a_rust_pointer_passed_to_a_callback_is_refused() {
    if !gated() {
        return;
    }
    let (c, buf) = abuse_setup();
    let ran = Cell::new(0);
    let cb = Callback::<Two>::with_error(-7, |_, _| {
        ran.set(ran.get() + 1);
        1
    })
    .unwrap();
    let rust = Box::new([0u8; 16]);
    let rust_ptr = rust.as_ptr() as *mut u8;
    // SAFETY: cd_cb_call(cb, void *a, void *b) -> int.
    let r: Result<i32, Error> = unsafe {
        c.call_with_callbacks(
            "cd_cb_call",
            ffi::cd_cb_call as *const (),
            (cb.stub(), rust_ptr, buf.as_foreign_ptr()),
            &[&cb],
        )
    };
    match r {
        Err(Error::Callback { detail, .. }) => assert!(detail.contains("protected"), "{detail}"),
        other => panic!("a Rust pointer reached the callback: {other:?}"),
    }
    assert_eq!(ran.get(), 0);
    assert_eq!(cb.refusals(), 1);
    // A pointer into this thread's (tagged, on mpk) stack is refused too: a
    // local below the thread's first page (shared with its TLS, untagged).
    let mut deep = [0u8; 8192];
    std::hint::black_box(&mut deep);
    let stack_ptr = deep.as_mut_ptr();
    // SAFETY: as above.
    let r: Result<i32, Error> = unsafe {
        c.call_with_callbacks(
            "cd_cb_call",
            ffi::cd_cb_call as *const (),
            (cb.stub(), buf.as_foreign_ptr(), stack_ptr),
            &[&cb],
        )
    };
    let mpk = cofferdam::backend() == cofferdam::Backend::Mpk;
    if mpk {
        assert!(matches!(r, Err(Error::Callback { .. })), "{r:?}");
        assert_eq!(ran.get(), 0);
    } else {
        // Without MPK the stack is not tagged, so not protected memory.
        assert_eq!(ran.get(), 1, "{r:?}");
    }
    // A proper call runs it.
    // SAFETY: as above.
    let r: i32 = unsafe {
        c.call_with_callbacks(
            "cd_cb_call",
            ffi::cd_cb_call as *const (),
            (cb.stub(), buf.as_foreign_ptr(), buf.as_foreign_ptr()),
            &[&cb],
        )
    }
    .unwrap();
    assert_eq!(r, 1);
    assert_eq!(ran.get(), if mpk { 1 } else { 2 });
}

#[test]
fn a_callback_called_after_its_call_returned_is_refused() {
    if !gated() {
        return;
    }
    let (c, buf) = abuse_setup();
    let ran = Cell::new(0);
    let cb = Callback::<Two>::with_error(-7, |_, _| {
        ran.set(ran.get() + 1);
        1
    })
    .unwrap();
    let f = buf.as_foreign_ptr();
    // SAFETY: cd_cb_call(cb, a, b) -> int; C keeps cb.
    let r: i32 = unsafe {
        c.call_with_callbacks(
            "cd_cb_call",
            ffi::cd_cb_call as *const (),
            (cb.stub(), f, f),
            &[&cb],
        )
    }
    .unwrap();
    assert_eq!((r, ran.get()), (1, 1));
    // A later call that did not pass the callback: C calls the one it kept.
    // SAFETY: cd_cb_call_stored(a, b) -> int.
    let r: i32 = unsafe {
        c.call(
            "cd_cb_call_stored",
            ffi::cd_cb_call_stored as *const (),
            (f, f),
        )
    }
    .unwrap();
    assert_eq!(r, -7, "C got the error value");
    assert_eq!(ran.get(), 1, "the stale callback ran");
    assert_eq!(cb.refusals(), 1);
    // After the Callback is dropped, its stub refuses whatever it is armed
    // for.
    drop(cb);
    // SAFETY: as above.
    let r: i32 = unsafe {
        c.call(
            "cd_cb_call_stored",
            ffi::cd_cb_call_stored as *const (),
            (f, f),
        )
    }
    .unwrap();
    assert_ne!(r, 1, "a dropped callback ran");
    assert_eq!(ran.get(), 1);
}

#[test]
fn a_callback_called_from_a_thread_of_c_is_refused() {
    if !gated() {
        return;
    }
    let (c, buf) = abuse_setup();
    let ran = Cell::new(0);
    let cb = Callback::<Two>::with_error(-7, |_, _| {
        ran.set(ran.get() + 1);
        1
    })
    .unwrap();
    let f = buf.as_foreign_ptr();
    // SAFETY: cd_cb_call_in_thread(cb, a, b) -> int.
    let r: i32 = unsafe {
        c.call_with_callbacks(
            "cd_cb_call_in_thread",
            ffi::cd_cb_call_in_thread as *const (),
            (cb.stub(), f, f),
            &[&cb],
        )
    }
    .unwrap();
    assert_eq!(r, -7);
    assert_eq!(ran.get(), 0);
    assert_eq!(cb.refusals(), 1);
}

#[test]
fn a_panicking_callback_does_not_unwind_into_c() {
    if !gated() {
        return;
    }
    let (c, buf) = abuse_setup();
    let cb = Callback::<Two>::with_error(-7, |_, _| panic!("boom")).unwrap();
    let f = buf.as_foreign_ptr();
    // SAFETY: cd_cb_sum(cb, a, b, n) -> long: calls cb three times.
    let r: Result<i64, Error> = unsafe {
        c.call_with_callbacks(
            "cd_cb_sum",
            ffi::cd_cb_sum as *const (),
            (cb.stub(), f, f, 3),
            &[&cb],
        )
    };
    match r {
        Err(Error::Callback { detail, .. }) => assert!(detail.contains("boom"), "{detail}"),
        other => panic!("{other:?}"),
    }
    assert!(!c.is_poisoned());
    // SAFETY: cd_noop(int) -> int.
    let again: i32 = unsafe { c.call("cd_noop", ffi::cd_noop as *const (), (1,)) }.unwrap();
    assert_eq!(again, 2);
}

#[test]
fn floating_point_callbacks_and_nested_gate_calls() {
    if !gated() {
        return;
    }
    let c = Compartment::new("nest").unwrap();
    let inner = Compartment::new("nest-inner").unwrap();
    let inner_fault = Cell::new(false);
    let cb = Callback::<fn(f64, i32) -> f64>::new(|x, n| {
        // A gate call from inside the callback, and a fault in another.
        // SAFETY: cd_noop(int) -> int; cd_null_write() faults.
        let k: i32 = unsafe { inner.call("cd_noop", ffi::cd_noop as *const (), (n,)) }.unwrap();
        let bad = Compartment::new("nest-bad").unwrap();
        // SAFETY: the fault is the test.
        let e: Result<(), Error> =
            unsafe { bad.call("cd_null_write", ffi::cd_null_write as *const (), ()) };
        inner_fault.set(matches!(e, Err(Error::Fault(_))));
        x * k as f64
    })
    .unwrap();
    let regs = cofferdam::CallRegs {
        ints: [cb.stub().addr() as u64, 3, 0, 0, 0, 0],
        sse: [2.5f64.to_bits(), 0, 0, 0, 0, 0, 0, 0],
        nsse: 1,
        callbacks: &[cb.slot()],
        ..Default::default()
    };
    // SAFETY: double cd_cb_double(double (*cb)(double, int), double x, int n).
    let r = unsafe { c.call_regs("cd_cb_double", ffi::cd_cb_double as *const (), &regs) }.unwrap();
    assert_eq!(f64::from_bits(r.xmm0), 2.5 * 4.0 + 1.0);
    assert!(
        inner_fault.get(),
        "the nested fault was not charged to the nested call"
    );
    assert!(!c.is_poisoned());
}
