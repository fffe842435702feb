//! Gate calls nest: foreign code raises a signal, the (trusted) handler calls
//! through the gate again, a fault in the inner call is charged to the inner
//! call only, and the outer call still returns normally. Plus SIGBUS.

use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::OnceLock;

mod common;

use cofferdam::{Compartment, Error, FaultKind, ForeignBuf};
use cofferdam_attacks::ffi;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

static INNER_OK: AtomicI32 = AtomicI32::new(0);
static INNER_FAULT: AtomicU32 = AtomicU32::new(0);
static COMPARTMENTS: OnceLock<(Compartment, Compartment)> = OnceLock::new();

extern "C" fn on_usr1(_sig: i32) {
    let (good, bad) = COMPARTMENTS.get().expect("set before raise");
    // SAFETY: cd_noop(int) -> int.
    let r: Result<i32, Error> = unsafe { good.call("cd_noop", ffi::cd_noop as *const (), (41,)) };
    INNER_OK.store(r.unwrap_or(-1), Ordering::SeqCst);
    // SAFETY: the fault is the test.
    let r: Result<(), Error> =
        unsafe { bad.call("cd_null_write", ffi::cd_null_write as *const (), ()) };
    if let Err(Error::Fault(f)) = r {
        if f.function == "cd_null_write" && f.kind == FaultKind::Unmapped {
            INNER_FAULT.store(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn a_handler_inside_a_gate_call_makes_its_own_gate_calls() {
    if !common::in_process_or_skip(
        "a_handler_inside_a_gate_call_makes_its_own_gate_calls",
        "a signal foreign code raises goes to the helper, where it ends the call as a fault (tests/process.rs), not to this program's handler",
    ) {
        return;
    }
    COMPARTMENTS.get_or_init(|| {
        (
            Compartment::new("inner").unwrap(),
            Compartment::new("inner-bad").unwrap(),
        )
    });
    let outer = Compartment::new("outer").unwrap();
    // SAFETY: installs a valid handler.
    unsafe { libc::signal(libc::SIGUSR1, on_usr1 as *const () as libc::sighandler_t) };
    // The foreign function is libc's raise(): the handler runs while this
    // thread is inside the outer gate call, in foreign code.
    // SAFETY: raise(int) -> int.
    let r: i32 =
        unsafe { outer.call("raise", libc::raise as *const (), (libc::SIGUSR1,)) }.unwrap();
    assert_eq!(r, 0);
    assert_eq!(
        INNER_OK.load(Ordering::SeqCst),
        42,
        "the nested call returned its value"
    );
    assert_eq!(
        INNER_FAULT.load(Ordering::SeqCst),
        1,
        "the nested call's fault was charged to it"
    );
    assert!(!outer.is_poisoned(), "the outer call did not fault");
    assert!(COMPARTMENTS.get().unwrap().1.is_poisoned());
    // SAFETY: cd_noop(int) -> int.
    let again: i32 = unsafe { outer.call("cd_noop", ffi::cd_noop as *const (), (1,)) }.unwrap();
    assert_eq!(again, 2);
    // SAFETY: restore the default.
    unsafe { libc::signal(libc::SIGUSR1, libc::SIG_DFL) };
}

#[test]
fn sigbus_in_foreign_code_is_contained() {
    if !common::in_process_or_skip(
        "sigbus_in_foreign_code_is_contained",
        "the truncated file mapping is this process's; in the helper its address is unmapped (a SIGSEGV fault, not SIGBUS)",
    ) {
        return;
    }
    // A shared file mapping whose file is then truncated: touching it raises
    // SIGBUS.
    // tmpfs: pages past the end of a truncated file raise SIGBUS there.
    let path =
        std::path::Path::new("/dev/shm").join(format!("cofferdam-sigbus-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.set_len(4096).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: maps 4096 bytes of a file we own, shared, read-only.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    file.set_len(0).unwrap();
    let c = Compartment::new("bus").unwrap();
    let out = ForeignBuf::zeroed(16).unwrap();
    // cd_overread(buf = the dead mapping, 64, 0, null, out, 16) scans it.
    // SAFETY: signature as in attacks.c; the SIGBUS is the test.
    let r: Result<i32, Error> = unsafe {
        c.call(
            "cd_overread",
            ffi::cd_overread as *const (),
            (
                p as *const u8,
                64usize,
                0usize,
                std::ptr::null::<u8>(),
                out.as_foreign_ptr(),
                16usize,
            ),
        )
    };
    match r {
        Err(Error::Fault(f)) => {
            assert_eq!(f.kind, FaultKind::Bus);
            assert_eq!(f.address, p as usize);
        }
        other => panic!("expected a bus fault, got {other:?}"),
    }
    // SAFETY: unmaps the mapping made above.
    unsafe { libc::munmap(p, 4096) };
    std::fs::remove_file(path).unwrap();
}
