//! The gate's thread identity on `mpk`: a thread that foreign code makes
//! with a TLS of its own marks nobody; one made with the caller's TLS (so
//! the caller's FS base) marks the caller, whose crossings back then also
//! check the kernel's thread id: the impostor's callback is refused, the
//! caller's own calls and callbacks keep working.

use cofferdam::{Callback, Compartment, Error, ForeignBuf, ForeignPtr};
use cofferdam_attacks::syscalls::ffi;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

type Cb<'a> = Callback<'a, fn(ForeignPtr<u8>, ForeignPtr<u8>) -> i32>;

#[test]
fn only_a_thread_given_the_callers_fs_base_turns_on_the_thread_id_check() {
    if !cofferdam_attacks::mpk_or_skip(
        "only_a_thread_given_the_callers_fs_base_turns_on_the_thread_id_check",
    ) {
        return;
    }
    if std::env::var("COFFERDAM_CHECK_THREAD_IDS").as_deref() == Ok("1") {
        eprintln!("skipping: COFFERDAM_CHECK_THREAD_IDS=1 marks every thread");
        return;
    }
    let c = Compartment::new("thread-identity").expect("compartment");
    let g = ForeignBuf::from_slice(&[b'G'; 16]).expect("foreign buffer");
    let gp = g.as_foreign_ptr().as_raw();
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };

    // A thread of the library's own, with a TLS of its own: nobody marked.
    // SAFETY: cd_pthread_roundtrip() -> int.
    let r: Result<i32, Error> = unsafe {
        c.call(
            "cd_pthread_roundtrip",
            ffi::cd_pthread_roundtrip as *const (),
            (),
        )
    };
    assert_eq!(r.expect("the library's thread runs"), 0);
    let id = cofferdam::info().thread_identity;
    assert!(id.contains("(0 such thread(s) now"), "{id}");
    assert!(!id.contains("; 0 thread(s) made by foreign code"), "{id}");

    // A thread given the caller's TLS: its callback is refused, and the
    // caller is marked.
    let ran = core::cell::Cell::new(0u32);
    let cb = Cb::with_error(-1, |_, _| {
        ran.set(ran.get() + 1);
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    })
    .expect("callback");
    // SAFETY: cd_clone_tls_call_cb(cb, a, b) -> int.
    let r: Result<i32, Error> = unsafe {
        c.call_with_callbacks(
            "cd_clone_tls_call_cb",
            ffi::cd_clone_tls_call_cb as *const (),
            (cb.stub(), gp, gp),
            &[&cb],
        )
    };
    assert_eq!(r.expect("the call itself returns"), -1);
    assert_eq!((ran.get(), cb.refusals()), (0, 1));
    let id = cofferdam::info().thread_identity;
    assert!(id.contains("(1 such thread(s) now"), "{id}");

    // The caller's own calls and callbacks, through the checked paths.
    for _ in 0..3 {
        // SAFETY: cd_call_cb_here(cb, a, b) -> int.
        let r: Result<i32, Error> = unsafe {
            c.call_with_callbacks(
                "cd_call_cb_here",
                ffi::cd_call_cb_here as *const (),
                (cb.stub(), gp, gp),
                &[&cb],
            )
        };
        assert_eq!(r.expect("the caller's callback runs"), me);
    }
    assert_eq!((ran.get(), cb.refusals()), (3, 1));
}
