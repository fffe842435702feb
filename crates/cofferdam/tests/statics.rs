//! Rust's statics and thread-locals carry key P on the mpk backend (this
//! test binary is linked with Cofferdam's layout: the crate's build script
//! calls `cofferdam_build::protect_statics()`).

mod common;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use cofferdam::{Compartment, Error, FaultKind};
use cofferdam_attacks::ffi;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

/// A Rust static foreign code is pointed at.
static SECRET: AtomicU64 = AtomicU64::new(0x5ec2_e75e_c2e7_5ec2);

thread_local! {
    static TL: Cell<u64> = const { Cell::new(0x7711_7711_7711_7711) };
}

fn fn_addr(f: *const ()) -> *const () {
    f
}

/// The protection key of the page holding `addr`, from /proc/self/smaps.
fn pkey_of(addr: usize) -> Option<u32> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for l in smaps.lines() {
        if let Some((range, _)) = l.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = a <= addr && addr < b;
                    continue;
                }
            }
        }
        if inside {
            if let Some(k) = l.strip_prefix("ProtectionKey:") {
                return k.trim().parse().ok();
            }
        }
    }
    None
}

/// C writes `v` at `p`, through the gate.
fn foreign_write(c: &Compartment, p: *mut u64, v: u64) -> Result<(), Error> {
    // SAFETY: cd_write_u64(uint64_t *, uint64_t); where the write lands is
    // the test.
    unsafe {
        c.call(
            "cd_write_u64",
            fn_addr(ffi::cd_write_u64 as *const ()),
            (p, v),
        )
    }
}

#[test]
fn statics_and_thread_locals_are_reported_protected() {
    if !common::mpk_or_skip("statics_and_thread_locals_are_reported_protected") {
        return;
    }
    let _c = Compartment::new("info").unwrap();
    let i = cofferdam::info();
    assert_eq!(i.statics_unprotected, None);
    assert_eq!(i.thread_locals_unprotected, None);
    assert!(i.statics_bytes >= 4096);
    let shown = i.to_string();
    assert!(
        shown.contains("statics:          protected (key"),
        "{shown}"
    );
    let addr = &SECRET as *const AtomicU64 as usize;
    assert_eq!(pkey_of(addr), i.pkey, "the static's page carries P");
}

/// Child side: C writes the static; unprotected it lands.
#[test]
fn static_write_child() {
    if std::env::var("CD_STATICS_CHILD").is_err() {
        return;
    }
    let c = Compartment::new("statics-child").unwrap();
    let r = foreign_write(&c, SECRET.as_ptr(), 0x4141_4141_4141_4141);
    println!("result={r:?} value={:#x}", SECRET.load(Ordering::SeqCst));
}

#[test]
fn a_tagged_static_is_unreachable_from_foreign_code() {
    if !common::mpk_or_skip("a_tagged_static_is_unreachable_from_foreign_code") {
        return;
    }
    // Unprotected (none backend, in a child), the write lands.
    let out = common::rerun(
        "static_write_child",
        &[("CD_STATICS_CHILD", "1"), ("COFFERDAM_BACKEND", "none")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("result=Ok(()) value=0x4141414141414141"),
        "unprotected, C should have written the static: {text}"
    );
    // On mpk it faults at the static, which keeps its value.
    let c = Compartment::new("statics").unwrap();
    let p = SECRET.as_ptr();
    match foreign_write(&c, p, 0x4141_4141_4141_4141) {
        Err(Error::Fault(f)) => {
            assert_eq!(f.kind, FaultKind::ProtectionKey, "{f}");
            assert_eq!(f.address, p as usize);
            assert_eq!(f.pkey, cofferdam::info().pkey);
        }
        other => panic!("the write to a Rust static was not stopped: {other:?}"),
    }
    assert_eq!(SECRET.load(Ordering::SeqCst), 0x5ec2_e75e_c2e7_5ec2);
    // The program lives on: a fresh compartment works.
    let c = Compartment::new("statics-after").unwrap();
    // SAFETY: cd_noop(int) -> int.
    let n: i32 = unsafe { c.call("cd_noop", fn_addr(ffi::cd_noop as *const ()), (41,)) }.unwrap();
    assert_eq!(n, 42);
}

#[test]
fn the_config_page_and_glibc_tls_stay_untagged() {
    if !common::mpk_or_skip("the_config_page_and_glibc_tls_stay_untagged") {
        return;
    }
    let c = Compartment::new("untagged").unwrap();
    // SAFETY: cd_noop(int) -> int: a gate call, so this thread's TLS is tagged.
    let _: i32 = unsafe { c.call("cd_noop", fn_addr(ffi::cd_noop as *const ()), (1,)) }.unwrap();
    // errno and the TCB (the canary at fs:0x28) stay foreign code's.
    // SAFETY: __errno_location has no preconditions.
    let errno = unsafe { libc::__errno_location() } as usize;
    // SAFETY: pthread_self is glibc's TCB address, the thread pointer.
    let tp = unsafe { libc::pthread_self() } as usize;
    assert_eq!(pkey_of(errno), Some(0), "errno's page");
    assert_eq!(pkey_of(tp + 0x28), Some(0), "the canary's page");
    let tl = TL.with(|t| t.as_ptr() as usize);
    assert_eq!(
        pkey_of(tl),
        cofferdam::info().pkey,
        "the Rust thread-local's page"
    );
}

#[test]
fn a_tagged_thread_local_on_a_spawned_thread_is_unreachable_then_untagged_at_exit() {
    if !common::mpk_or_skip(
        "a_tagged_thread_local_on_a_spawned_thread_is_unreachable_then_untagged_at_exit",
    ) {
        return;
    }
    let pkey = cofferdam::info().pkey;
    let (addr, key_inside, result, value) = std::thread::spawn(move || {
        let c = Compartment::new("tls").unwrap();
        let p = TL.with(|t| t.as_ptr());
        let r = foreign_write(&c, p, 0x4242_4242_4242_4242);
        (p as usize, pkey_of(p as usize), r, TL.with(|t| t.get()))
    })
    .join()
    .unwrap();
    assert_eq!(key_inside, pkey, "tagged while the thread runs");
    match result {
        Err(Error::Fault(f)) => {
            assert_eq!(f.kind, FaultKind::ProtectionKey, "{f}");
            assert_eq!(f.address, addr);
        }
        other => panic!("the write to a Rust thread-local was not stopped: {other:?}"),
    }
    assert_eq!(
        value, 0x7711_7711_7711_7711,
        "the thread-local kept its value"
    );
    // glibc keeps the exited thread's stack (and TLS block) for reuse: it
    // must be foreign code's again.
    assert_eq!(
        pkey_of(addr),
        Some(0),
        "the exited thread's TLS page is untagged"
    );
}

#[test]
fn foreign_code_cannot_register_handlers_that_run_with_rusts_rights() {
    if !common::mpk_or_skip("foreign_code_cannot_register_handlers_that_run_with_rusts_rights") {
        return;
    }
    use cofferdam_attacks::statics::ffi as s;
    // Trusted code registers as before.
    // SAFETY: plain C helpers, called directly (outside any gate).
    unsafe {
        assert_eq!(
            s::cd_key_create(1),
            0,
            "trusted pthread_key_create with a destructor"
        );
        assert_eq!(s::cd_atfork(), 0, "trusted pthread_atfork");
    }
    let c = Compartment::new("handlers").unwrap();
    let key = |with: i32| -> i32 {
        // SAFETY: cd_key_create(int) -> int.
        unsafe {
            c.call(
                "cd_key_create",
                fn_addr(s::cd_key_create as *const ()),
                (with,),
            )
        }
        .unwrap()
    };
    assert_eq!(key(0), 0, "a key without a destructor is harmless: allowed");
    assert_eq!(
        key(1),
        libc::EPERM,
        "a destructor from foreign code is refused"
    );
    // SAFETY: cd_atfork(void) -> int.
    let r: i32 = unsafe { c.call("cd_atfork", fn_addr(s::cd_atfork as *const ()), ()) }.unwrap();
    assert_eq!(
        r,
        libc::EPERM,
        "a fork handler from foreign code is refused"
    );
    // Foreign code may still install ordinary signal handlers: the
    // sigaction interposer's foreign path reads no (tagged) static.
    // SAFETY: signal(SIGUSR2, SIG_IGN) through the gate, then restored.
    let prev: usize = unsafe {
        c.call(
            "signal",
            fn_addr(libc::signal as *const ()),
            (libc::SIGUSR2, libc::SIG_IGN),
        )
    }
    .unwrap();
    assert_ne!(prev, libc::SIG_ERR);
    assert!(!c.is_poisoned());
}
