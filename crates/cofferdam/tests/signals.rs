//! Signal handlers installed by other code keep working while the heap is
//! protected: the kernel enters handlers with a PKRU that denies P, and
//! Cofferdam's entry takes the rights back before calling them.

mod common;

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

/// Signal dispositions are process-wide: the tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Raises `sig` on this thread and returns once it has been handled.
fn raise(sig: i32) {
    // SAFETY: raise has no memory preconditions; the handlers are installed.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

#[test]
fn signal_hook_flags_behind_an_arc_work_for_sigint_and_sigalrm() {
    let _turn = serial();
    let _ = cofferdam::init();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGALRM] {
        let flag = Arc::new(AtomicBool::new(false));
        assert!(cofferdam::is_protected_region(Arc::as_ptr(&flag) as usize));
        let id = signal_hook::flag::register(sig, Arc::clone(&flag)).unwrap();
        if cofferdam::backend() != cofferdam::Backend::None {
            assert!(
                cofferdam::signal_is_wrapped(sig),
                "signal {sig} does not go through Cofferdam's entry"
            );
        }
        raise(sig);
        assert!(
            flag.load(Ordering::SeqCst),
            "the handler for {sig} did not set its flag"
        );
        signal_hook::low_level::unregister(id);
    }
}

static BOXED: AtomicPtr<u64> = AtomicPtr::new(std::ptr::null_mut());
static SEEN: AtomicU64 = AtomicU64::new(0);

extern "C" fn read_box_handler(_sig: i32) {
    let p = BOXED.load(Ordering::SeqCst);
    // SAFETY: BOXED points to a live Box<u64> while the handler is installed.
    SEEN.store(unsafe { *p }, Ordering::SeqCst);
}

#[test]
fn a_plain_handler_reading_a_box_works_with_signal_and_sigaction() {
    let _turn = serial();
    let _ = cofferdam::init();
    let b = Box::new(0x00C0_FFEEu64);
    BOXED.store(Box::into_raw(b), Ordering::SeqCst);
    // Installed with signal(): the old action comes back as SIG_DFL.
    // SAFETY: installs a valid handler.
    let old = unsafe {
        libc::signal(
            libc::SIGALRM,
            read_box_handler as *const () as libc::sighandler_t,
        )
    };
    assert_ne!(old, libc::SIG_ERR);
    raise(libc::SIGALRM);
    assert_eq!(SEEN.swap(0, Ordering::SeqCst), 0x00C0_FFEE);
    // sigaction reports the user's handler, not Cofferdam's trampoline.
    // SAFETY: query only, into a zeroed out-parameter.
    let mut cur: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::sigaction(libc::SIGALRM, std::ptr::null(), &mut cur) },
        0
    );
    assert_eq!(cur.sa_sigaction, read_box_handler as *const () as usize);
    // A real timer, not raise(): delivered asynchronously by the kernel, to
    // whichever thread of the process it picks.
    // SAFETY: alarm has no memory preconditions.
    unsafe { libc::alarm(1) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while SEEN.load(Ordering::SeqCst) != 0x00C0_FFEE {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGALRM from alarm(1) was not handled within 10 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // SAFETY: restore the default.
    unsafe { libc::signal(libc::SIGALRM, libc::SIG_DFL) };
    // SAFETY: the handler is gone; reclaim the box.
    drop(unsafe { Box::from_raw(BOXED.swap(std::ptr::null_mut(), Ordering::SeqCst)) });
}

#[test]
fn handlers_touch_the_heap_while_mpk_protects_it() {
    let _turn = serial();
    if !common::mpk_or_skip("handlers_touch_the_heap_while_mpk_protects_it") {
        return;
    }
    // The kernel's PKRU at handler entry denies P: without Cofferdam's entry
    // this handler would fault on the Vec's buffer.
    static VEC: AtomicPtr<Vec<u64>> = AtomicPtr::new(std::ptr::null_mut());
    static PKRU_IN_HANDLER: AtomicU64 = AtomicU64::new(u64::MAX);
    extern "C" fn push(_sig: i32) {
        PKRU_IN_HANDLER.store(cofferdam::read_pkru().unwrap() as u64, Ordering::SeqCst);
        // SAFETY: VEC points to a live Vec while the handler is installed,
        // and this thread is the only user while the signal runs.
        unsafe { (*VEC.load(Ordering::SeqCst)).push(42) };
    }
    VEC.store(
        Box::into_raw(Box::new(Vec::with_capacity(4))),
        Ordering::SeqCst,
    );
    // SAFETY: installs a valid handler.
    unsafe { libc::signal(libc::SIGINT, push as *const () as libc::sighandler_t) };
    raise(libc::SIGINT);
    let key = cofferdam::info().pkey.unwrap();
    assert_eq!(
        PKRU_IN_HANDLER.load(Ordering::SeqCst) as u32 & (0b11 << (2 * key)),
        0
    );
    // SAFETY: handler removed first; then the box is ours again.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        let v = Box::from_raw(VEC.swap(std::ptr::null_mut(), Ordering::SeqCst));
        assert_eq!(*v, vec![42]);
    }
}

static HITS: AtomicU64 = AtomicU64::new(0);
static HEAP_FLAG: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn count_on_heap(_sig: i32) {
    // Touches the heap (an AtomicU64 in a Box) and this handler's own stack
    // frames, wherever the kernel put them.
    let p = HEAP_FLAG.load(Ordering::SeqCst);
    // SAFETY: HEAP_FLAG points to a live Box<AtomicU64> while installed.
    unsafe { (*p).fetch_add(1, Ordering::SeqCst) };
    HITS.fetch_add(1, Ordering::SeqCst);
}

/// Arms a one-shot real-time timer for `ms` milliseconds (SIGALRM).
fn timer_ms(ms: i64) {
    let v = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: 0,
            tv_usec: ms * 1000,
        },
    };
    // SAFETY: valid itimerval; no old value requested.
    assert_eq!(
        unsafe { libc::setitimer(libc::ITIMER_REAL, &v, std::ptr::null_mut()) },
        0
    );
}

#[test]
fn handlers_work_on_a_tagged_stack_while_rust_and_foreign_code_run() {
    let _turn = serial();
    // A gate call first: this thread's stack is now tagged (mpk) and it has
    // a foreign stack and an alternate signal stack.
    let c = cofferdam::Compartment::new("signals").unwrap();
    // SAFETY: cd_noop(int) -> int.
    let one: i32 = unsafe {
        c.call(
            "cd_noop",
            cofferdam_attacks::ffi::cd_noop as *const (),
            (0,),
        )
    }
    .unwrap();
    assert_eq!(one, 1);
    if cofferdam::backend() == cofferdam::Backend::Mpk {
        assert_eq!(cofferdam::info().stacks_unprotected, None);
    }
    let counter = Box::new(AtomicU64::new(0));
    HEAP_FLAG.store(
        &*counter as *const AtomicU64 as *mut AtomicU64,
        Ordering::SeqCst,
    );
    // Installed now, after Cofferdam started, for SIGINT and SIGALRM.
    for sig in [libc::SIGINT, libc::SIGALRM] {
        // SAFETY: installs a valid handler.
        let old = unsafe { libc::signal(sig, count_on_heap as *const () as libc::sighandler_t) };
        assert_ne!(old, libc::SIG_ERR);
        if cofferdam::backend() != cofferdam::Backend::None {
            assert!(cofferdam::signal_is_wrapped(sig));
        }
    }
    // Synchronous, from Rust code on the tagged stack.
    raise(libc::SIGINT);
    raise(libc::SIGALRM);
    assert_eq!(counter.load(Ordering::SeqCst), 2);
    // Asynchronous, while Rust code spins on the tagged stack. (The kernel
    // may deliver a process-directed signal to any thread that does not
    // block it; in this binary the other threads are idle test workers.)
    timer_ms(20);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while counter.load(Ordering::SeqCst) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the timer's SIGALRM was not handled"
        );
        std::hint::spin_loop();
    }
    // Asynchronous, while foreign code runs (usleep inside the gate).
    timer_ms(20);
    // SAFETY: usleep(useconds_t) -> int; the signal may interrupt it.
    let _: i32 = unsafe { c.call("usleep", libc::usleep as *const (), (300_000u32,)) }.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while counter.load(Ordering::SeqCst) < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGALRM during foreign code was not handled"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        !c.is_poisoned(),
        "a signal during the foreign call poisoned the compartment"
    );
    assert_eq!(HITS.load(Ordering::SeqCst), counter.load(Ordering::SeqCst));
    for sig in [libc::SIGINT, libc::SIGALRM] {
        // SAFETY: restore the default.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    HEAP_FLAG.store(std::ptr::null_mut(), Ordering::SeqCst);
    drop(counter);
}
