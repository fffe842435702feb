//! Calls through the gate: values, contained faults, poisoning, threads, and
//! (with MPK) foreign code kept out of the Rust heap.

mod common;

use cofferdam::{Access, Backend, Compartment, Error, FaultKind, ForeignBuf};
use cofferdam_attacks::ffi;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

fn f(p: *const ()) -> *const () {
    p
}

#[test]
fn values_pass_through_the_gate() {
    let c = Compartment::new("values").unwrap();
    for x in [-5i32, 0, 41, i32::MAX - 1] {
        // SAFETY: cd_noop(int) -> int.
        let r: i32 = unsafe { c.call("cd_noop", f(ffi::cd_noop as *const ()), (x,)) }.unwrap();
        assert_eq!(r, x + 1);
    }
    // Six arguments and a pointer result: C's memchr-like use of a foreign buffer.
    let buf = ForeignBuf::from_str_nul("cofferdam").unwrap();
    extern "C" {
        fn memchr(s: *const u8, c: i32, n: usize) -> *mut u8;
    }
    // SAFETY: memchr(const void*, int, size_t) -> void*, on a 10-byte foreign buffer.
    let p: *mut u8 = unsafe {
        c.call(
            "memchr",
            f(memchr as *const ()),
            (buf.as_foreign_ptr(), b'd' as i32, 10usize),
        )
    }
    .unwrap();
    assert_eq!(p as usize - buf.as_foreign_ptr().addr(), 6);
}

#[test]
fn arguments_beyond_six_go_on_the_stack() {
    let c = Compartment::new("wide").unwrap();
    let regs = [1u64, 2, 3, 4, 5, 6];
    let stack = [7u64, 8, (-9i64) as u64, 10];
    let expected: i64 = (1..=10).map(|i: i64| i * if i == 9 { -9 } else { i }).sum();
    // SAFETY: cd_sum10 takes ten longs and returns a long.
    let r = unsafe { c.call_words_stack("cd_sum10", f(ffi::cd_sum10 as *const ()), regs, &stack) }
        .unwrap();
    assert_eq!(r[0] as i64, expected);
    // Many calls in a row: the stack area is given back each time.
    for k in 0..1000u64 {
        let stack = [k, 0, 0, 0];
        // SAFETY: as above.
        let r = unsafe {
            c.call_words_stack("cd_sum10", f(ffi::cd_sum10 as *const ()), [0; 6], &stack)
        }
        .unwrap();
        assert_eq!(r[0], 7 * k);
    }
}

#[test]
#[should_panic(expected = "at most 16 stack arguments")]
fn more_stack_arguments_than_the_gate_carries_panic() {
    let c = Compartment::new("too-wide").unwrap();
    // SAFETY: never called: the argument check comes first.
    let _ =
        unsafe { c.call_words_stack("cd_sum10", f(ffi::cd_sum10 as *const ()), [0; 6], &[0; 17]) };
}

#[test]
fn a_fault_in_foreign_code_becomes_err_and_poisons() {
    let c = Compartment::new("faulty").unwrap();
    let other = Compartment::new("healthy").unwrap();
    // SAFETY: cd_null_write() writes through a null pointer: the fault is the test.
    let r: Result<(), Error> =
        unsafe { c.call("cd_null_write", f(ffi::cd_null_write as *const ()), ()) };
    match r {
        Err(Error::Fault(fault)) => {
            assert_eq!(fault.compartment, "faulty");
            assert_eq!(fault.function, "cd_null_write");
            assert_eq!(fault.kind, FaultKind::Unmapped);
            assert_eq!(fault.access, Access::Write);
            assert_eq!(fault.address, 0);
        }
        other => panic!("expected a fault, got {other:?}"),
    }
    assert!(c.is_poisoned());
    // SAFETY: cd_noop(int) -> int.
    let again: Result<i32, Error> =
        unsafe { c.call("cd_noop", f(ffi::cd_noop as *const ()), (1,)) };
    assert_eq!(
        again,
        Err(Error::Poisoned {
            compartment: "faulty".into()
        })
    );
    // Another compartment is unaffected, and Rust goes on normally.
    // SAFETY: as above.
    let ok: i32 = unsafe { other.call("cd_noop", f(ffi::cd_noop as *const ()), (1,)) }.unwrap();
    assert_eq!(ok, 2);
    let v: Vec<u64> = (0..1000).collect();
    assert_eq!(v.iter().sum::<u64>(), 499_500);
    if let (Some(pkru), Some(key)) = (cofferdam::read_pkru(), cofferdam::info().pkey) {
        assert_eq!(
            pkru & (0b11 << (2 * key)),
            0,
            "PKRU after a contained fault must allow P"
        );
    }
}

#[test]
fn many_threads_call_and_fault_at_once() {
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let c = Compartment::new(&format!("t{t}")).unwrap();
                for i in 0..10_000 {
                    // SAFETY: cd_noop(int) -> int.
                    let r: i32 =
                        unsafe { c.call("cd_noop", f(ffi::cd_noop as *const ()), (i,)) }.unwrap();
                    assert_eq!(r, i + 1);
                }
                let bad = Compartment::new(&format!("bad{t}")).unwrap();
                // SAFETY: the fault is the test.
                let r: Result<(), _> =
                    unsafe { bad.call("cd_null_write", f(ffi::cd_null_write as *const ()), ()) };
                assert!(matches!(r, Err(Error::Fault(_))));
                // SAFETY: cd_noop(int) -> int.
                let r: i32 =
                    unsafe { c.call("cd_noop", f(ffi::cd_noop as *const ()), (1,)) }.unwrap();
                assert_eq!(r, 2);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn foreign_code_cannot_read_or_write_the_rust_heap() {
    if !common::mpk_or_skip("foreign_code_cannot_read_or_write_the_rust_heap") {
        return;
    }
    let key = cofferdam::info().pkey.unwrap();
    let c = Compartment::new("reader").unwrap();
    let secret = Box::new(*b"rust-secret-rust-secret-rust-sec");
    let out = ForeignBuf::zeroed(32).unwrap();
    let empty = ForeignBuf::zeroed(1).unwrap();
    // cd_overread(buf, 0, 0, leak = &secret, out, 32): reads the Rust Box.
    // SAFETY: signature as declared in attacks.c; the read of Rust memory is the test.
    let r: Result<i32, Error> = unsafe {
        c.call(
            "cd_overread",
            f(ffi::cd_overread as *const ()),
            (
                empty.as_foreign_ptr(),
                0usize,
                0usize,
                secret.as_ptr(),
                out.as_foreign_ptr(),
                32usize,
            ),
        )
    };
    match r {
        Err(Error::Fault(fault)) => {
            assert_eq!(fault.kind, FaultKind::ProtectionKey);
            assert_eq!(fault.access, Access::Read);
            assert_eq!(fault.pkey, Some(key));
            assert_eq!(fault.address, secret.as_ptr() as usize);
        }
        other => panic!("expected a protection-key fault, got {other:?}"),
    }
    assert!(
        out.to_vec().iter().all(|&b| b == 0),
        "nothing reached foreign memory"
    );
    let w = Compartment::new("writer").unwrap();
    let target = Box::new([7u8; 64]);
    // SAFETY: cd_overwrite(buf, len, extra, leak, leak_len); the write is the test.
    let r: Result<(), Error> = unsafe {
        w.call(
            "cd_overwrite",
            f(ffi::cd_overwrite as *const ()),
            (
                empty.as_foreign_ptr(),
                1usize,
                0usize,
                &*target as *const [u8; 64] as *mut u8,
                64usize,
            ),
        )
    };
    match r {
        Err(Error::Fault(fault)) => {
            assert_eq!(fault.kind, FaultKind::ProtectionKey);
            assert_eq!(fault.access, Access::Write);
        }
        other => panic!("expected a protection-key fault, got {other:?}"),
    }
    assert_eq!(*target, [7u8; 64]);
    assert_eq!(&*secret, b"rust-secret-rust-secret-rust-sec");
}

#[test]
fn pkru_is_restored_after_each_call() {
    if !common::mpk_or_skip("pkru_is_restored_after_each_call") {
        return;
    }
    let before = cofferdam::read_pkru().unwrap();
    let c = Compartment::new("pkru").unwrap();
    // SAFETY: cd_noop(int) -> int.
    let _: i32 = unsafe { c.call("cd_noop", f(ffi::cd_noop as *const ()), (1,)) }.unwrap();
    assert_eq!(cofferdam::read_pkru().unwrap(), before);
}

#[test]
fn forcing_an_unavailable_backend_is_an_error_not_a_fallback() {
    if std::env::var_os("COFFERDAM_CHILD").is_some() {
        // In the child: the backend was forced to something that cannot run.
        let err = Compartment::new("x").unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        assert!(cofferdam::init().is_err());
        println!("CHILD-OK {err}");
        return;
    }
    let mut forced = vec!["bogus"];
    // Forcing mpk must fail where protection keys do not work (not merely
    // where another backend was chosen).
    let i = cofferdam::info();
    if i.pkey.is_none() && !(i.kernel_pkeys && i.os_pke && i.cpu_pku) && i.backend != Backend::None
    {
        forced.push("mpk");
    }
    for value in forced {
        let out = common::rerun(
            "forcing_an_unavailable_backend_is_an_error_not_a_fallback",
            &[("COFFERDAM_CHILD", "1"), ("COFFERDAM_BACKEND", value)],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("CHILD-OK"),
            "COFFERDAM_BACKEND={value}: {stdout}"
        );
    }
}
