//! `Compartment::with_syscalls`: widening and narrowing the syscall list.
//! A binary of its own: the list is process-wide and fixed by the first
//! compartment.

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

mod common;

use cofferdam::{Compartment, Error, FaultKind, SyscallPolicy};

fn foreign_syscall(c: &Compartment, nr: i64, args: [i64; 6]) -> Result<i64, Error> {
    let a = cofferdam::ForeignVec::<i64>::from_slice(&args).unwrap();
    // SAFETY: cd_syscall(long nr, const long *args) -> long.
    unsafe {
        c.call(
            "cd_syscall",
            cofferdam_attacks::syscalls::ffi::cd_syscall as *const (),
            (nr, a.as_foreign_ptr()),
        )
    }
}

#[test]
fn a_policy_widens_and_narrows_the_list_for_the_whole_process() {
    // Calls that can never be given to foreign code, or that the handler
    // checks itself, cannot be allowed; only listed calls can be denied.
    for nr in [
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_pkey_mprotect,
        libc::SYS_munmap,
        libc::SYS_mprotect,
        libc::SYS_openat,
    ] {
        assert!(
            matches!(
                SyscallPolicy::new().allow(nr),
                Err(Error::Unavailable { .. })
            ),
            "{nr}"
        );
    }
    assert!(SyscallPolicy::new().deny(libc::SYS_mprotect).is_err());
    assert!(SyscallPolicy::new().deny(-1).is_err());
    if !common::mpk_or_skip("a_policy_widens_and_narrows_the_list_for_the_whole_process") {
        return;
    }
    let policy = SyscallPolicy::new()
        .deny(libc::SYS_socket)
        .unwrap()
        .allow(libc::SYS_memfd_create)
        .unwrap();
    let c = Compartment::with_syscalls("policy", &policy).unwrap();
    assert!(cofferdam::info().guard.syscall_guard);
    let name = cofferdam::ForeignBuf::from_str_nul("cofferdam").unwrap();
    let fd = foreign_syscall(
        &c,
        libc::SYS_memfd_create,
        [name.as_foreign_ptr().addr() as i64, 0, 0, 0, 0, 0],
    )
    .unwrap();
    assert!(fd >= 0, "memfd_create: {fd}");
    match foreign_syscall(&c, libc::SYS_socket, [libc::AF_UNIX as i64, 1, 0, 0, 0, 0]) {
        Err(Error::Fault(f)) => {
            assert!(
                matches!(f.kind, FaultKind::Syscall { name: "socket", .. }),
                "{f}"
            )
        }
        other => panic!("socket: {other:?}"),
    }
    // Trusted code keeps the denied call (re-issued by the handler).
    // SAFETY: socket(2) with integer arguments; closed at once.
    let s = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    assert!(s >= 0);
    // SAFETY: our descriptor.
    unsafe { libc::close(s) };
    // The list is fixed now: the same policy is accepted, another is not.
    assert!(Compartment::with_syscalls("same", &policy).is_ok());
    assert!(Compartment::new("plain").is_ok());
    assert!(matches!(
        Compartment::with_syscalls("other", &SyscallPolicy::new()),
        Err(Error::Unavailable { .. })
    ));
}
