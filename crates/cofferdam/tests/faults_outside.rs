//! Faults that are not foreign go where they went before Cofferdam: Rust's
//! stack-overflow report still appears, and a null dereference in Rust still
//! kills the process with SIGSEGV.

mod common;

use std::os::unix::process::ExitStatusExt;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

fn use_the_gate_once() {
    let c = cofferdam::Compartment::new("warm-up").unwrap();
    // SAFETY: cd_noop(int) -> int.
    let r: i32 = unsafe {
        c.call(
            "cd_noop",
            cofferdam_attacks::ffi::cd_noop as *const (),
            (1,),
        )
    }
    .unwrap();
    assert_eq!(r, 2);
}

#[inline(never)]
#[allow(unconditional_recursion, reason = "the overflow is the test")]
fn recurse(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 64]);
    recurse(n + 1) + pad[3]
}

#[test]
fn child_overflow() {
    if std::env::var("COFFERDAM_CHILD").as_deref() != Ok("overflow") {
        return;
    }
    use_the_gate_once();
    let on_thread = std::env::var("COFFERDAM_ON_THREAD").is_ok();
    if on_thread {
        std::thread::spawn(|| recurse(0)).join().unwrap();
    } else {
        recurse(0);
    }
}

#[test]
fn rust_stack_overflow_is_still_reported() {
    for thread in [false, true] {
        let mut env = vec![("COFFERDAM_CHILD", "overflow")];
        if thread {
            env.push(("COFFERDAM_ON_THREAD", "1"));
        }
        let out = common::rerun("child_overflow", &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("has overflowed its stack"),
            "thread={thread}: no overflow report in: {stderr}"
        );
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "thread={thread}: {:?}",
            out.status
        );
    }
}

#[test]
fn child_null_deref() {
    if std::env::var("COFFERDAM_CHILD").as_deref() != Ok("null") {
        return;
    }
    use_the_gate_once();
    // SAFETY: none: this dereference of null is the point of the test, in a
    // child process.
    unsafe { std::ptr::write_volatile(std::hint::black_box(std::ptr::null_mut::<u64>()), 1) };
}

#[test]
fn a_fault_in_rust_code_is_not_swallowed() {
    let out = common::rerun("child_null_deref", &[("COFFERDAM_CHILD", "null")]);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
