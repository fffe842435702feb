//! The syscall guard's policy covers this process's code, including
//! libraries loaded after the guard went in, and nothing else: programs this
//! process starts are not held to it (the filter is inherited and can never
//! be removed; docs/signals.md, guard/scope.rs).

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

mod common;

use cofferdam::{Compartment, Error, FaultKind, ForeignBuf};

/// A shell started after the guard is in place traps a signal, returns from
/// its handler (rt_sigreturn, which the policy refuses without the token)
/// and exits with its own status.
#[test]
fn a_program_this_process_starts_is_not_held_to_the_policy() {
    if !common::mpk_or_skip("a_program_this_process_starts_is_not_held_to_the_policy") {
        return;
    }
    let _c = Compartment::new("scope").unwrap();
    assert!(cofferdam::info().guard.syscall_guard, "the guard is on");
    let out = std::process::Command::new("/bin/sh")
        .args([
            "-c",
            "trap 'echo TRAPPED' USR1; kill -USR1 $$; echo ALIVE; exit 7",
        ])
        .output()
        .expect("run /bin/sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{:?} {stdout}", out.status);
    assert!(
        stdout.contains("TRAPPED") && stdout.contains("ALIVE"),
        "{stdout}"
    );
}

/// A library loaded after the guard makes a raw `pkey_mprotect` from its own
/// code: refused, as from code that was there before.
#[test]
fn a_library_loaded_later_is_covered_by_the_policy() {
    if !common::mpk_or_skip("a_library_loaded_later_is_covered_by_the_policy") {
        return;
    }
    let _first = Compartment::new("before").unwrap(); // the guard goes in here
    let lib = Compartment::load("raw-syscalls", cofferdam_attacks::ffi::SYSCALL_SO)
        .expect("the library is clean and loads");
    // A page of the Rust heap with a secret on it.
    let layout = std::alloc::Layout::from_size_align(4096, 4096).unwrap();
    // SAFETY: a non-zero layout; freed never (the attack may retag it).
    let page = unsafe { std::alloc::alloc_zeroed(layout) };
    // SAFETY: the page is ours.
    unsafe { page.copy_from_nonoverlapping(b"COFFERDAM-SECRET:scope".as_ptr(), 22) };
    // SAFETY: cd_lib_raw_syscall(long nr, long, long, long, long) -> long:
    // pkey_mprotect(page, 4096, PROT_READ|PROT_WRITE, key 0).
    let r: Result<i64, Error> = unsafe {
        lib.call(
            "cd_lib_raw_syscall",
            (
                libc::SYS_pkey_mprotect,
                page as usize,
                4096usize,
                (libc::PROT_READ | libc::PROT_WRITE) as usize,
                0usize,
            ),
        )
    };
    match &r {
        Err(Error::Fault(f)) => assert!(
            matches!(f.kind, FaultKind::Syscall { nr, .. } if nr == libc::SYS_pkey_mprotect as u32),
            "{f}"
        ),
        other => panic!("the retag was not refused: {other:?}"),
    }
    // And the page is still out of foreign reach: a copy from it faults.
    let lib2 = Compartment::load("raw-syscalls-2", cofferdam_attacks::ffi::SYSCALL_SO).unwrap();
    let out = ForeignBuf::zeroed(22).unwrap();
    // SAFETY: cd_lib_copy(const uint8_t*, uint8_t*, long).
    let r: Result<(), Error> = unsafe {
        lib2.call(
            "cd_lib_copy",
            (page as usize, out.as_foreign_ptr(), 22usize),
        )
    };
    assert!(matches!(r, Err(Error::Fault(_))), "{r:?}");
    assert!(!out.to_vec().starts_with(b"COFFERDAM"));
}

/// The signal entry trusts a frame for lying on the thread's alternate-stack
/// slot (P-tagged): foreign code may not unmap or remap that arena to put a
/// page of its own there. Unprotected (no guard), the same `munmap` succeeds.
#[test]
fn foreign_code_cannot_unmap_or_remap_the_alternate_stacks() {
    if !common::mpk_or_skip("foreign_code_cannot_unmap_or_remap_the_alternate_stacks") {
        return;
    }
    let c = Compartment::new("arena").unwrap();
    // A first call adopts this thread; its alternate stack is its slot.
    // SAFETY: getpid() takes nothing.
    let _: i32 = unsafe { c.call("getpid", libc::getpid as *const (), ()) }.unwrap();
    // SAFETY: a query into a local.
    let mut ss: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::sigaltstack(std::ptr::null(), &mut ss) }, 0);
    let slot = ss.ss_sp as usize;
    assert!(
        cofferdam::is_protected(slot, 4096),
        "the slot is protected memory"
    );
    for (nr, args) in [
        (libc::SYS_munmap, [slot, 4096, 0]),
        (libc::SYS_mremap, [slot, 4096, 8192]),
        (
            libc::SYS_madvise,
            [slot, 4096, libc::MADV_DONTNEED as usize],
        ),
    ] {
        // SAFETY: libc's syscall(long, ...) with integer arguments; the
        // call is refused before it runs.
        let r: Result<i64, Error> = unsafe {
            c.call(
                "syscall",
                libc::syscall as *const (),
                (nr, args[0], args[1], args[2], 1usize),
            )
        };
        match &r {
            Err(Error::Fault(f)) => {
                assert!(matches!(f.kind, FaultKind::Syscall { .. }), "{f}")
            }
            other => panic!("syscall {nr} on the arena was not refused: {other:?}"),
        }
        c.renew().unwrap();
    }
}

/// `rt_sigqueueinfo` to this process may carry any siginfo with
/// si_code >= 0, a "seccomp" SIGSYS included: it must not make the guard's
/// handler re-issue a call (with the interrupted thread's registers and
/// rights) nor kill the process. Sent here from trusted code, which is where
/// a process-directed signal from foreign code could land.
#[test]
fn a_sigsys_sent_with_rt_sigqueueinfo_is_not_a_trap() {
    if !common::mpk_or_skip("a_sigsys_sent_with_rt_sigqueueinfo_is_not_a_trap") {
        return;
    }
    let _c = Compartment::new("forged-sigsys").unwrap();
    // A siginfo as seccomp would fill it: SIGSYS, si_code SYS_SECCOMP (1),
    // si_call_addr, si_syscall (getpid), si_arch (x86_64).
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&libc::SIGSYS.to_ne_bytes());
    info[8..12].copy_from_slice(&1i32.to_ne_bytes());
    info[16..24].copy_from_slice(&0x1000usize.to_ne_bytes());
    info[24..28].copy_from_slice(&(libc::SYS_getpid as i32).to_ne_bytes());
    info[28..32].copy_from_slice(&0xC000_003Eu32.to_ne_bytes());
    // The kernel takes si_code >= 0 only from a process's main thread (the
    // test runs on another): in a forked child, the one thread is its main.
    // SAFETY: fork; the child only signals itself, reads a counter and
    // leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // Read in the child: the parent's other test threads make trapped
        // calls of their own.
        let before = cofferdam::info().guard.reissued_syscalls;
        // SAFETY: rt_sigqueueinfo(own pid, SIGSYS, &info): the signal is the
        // test.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigqueueinfo,
                libc::getpid(),
                libc::SIGSYS,
                info.as_ptr(),
            )
        };
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() } as i64;
        let code = if r == me {
            1 // the guard re-issued getpid into this thread's rax
        } else if r != 0 {
            2 // the kernel refused the forged siginfo: nothing was tested
        } else if cofferdam::info().guard.reissued_syscalls - before > 1 {
            // rt_sigqueueinfo itself is not on the list: trusted code's
            // call is trapped and re-issued once. More than that means the
            // forged SIGSYS made the guard re-issue a call.
            1
        } else {
            0
        };
        // SAFETY: ends the forked child.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status:#x} (exit 1: the guard re-issued a call for it; 2: not sent; a signal: killed)"
    );
}
