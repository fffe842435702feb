//! The syscall guard: foreign syscalls that would retag, unmap or zero
//! protected memory or create executable memory are refused with
//! `Err(Fault)` of kind `syscall`; trusted code's are re-issued. Runs on the
//! host by forcing the guard on the split backend (`COFFERDAM_SYSCALL_GUARD=on`,
//! set for a child run of this binary), and for real in the MPK VM.

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

mod common;

use cofferdam::{Compartment, Error, FaultKind};
use cofferdam_attacks::ffi;

/// Runs `name` again in a child with the guard forced on (on mpk it is on
/// anyway) and checks that the child passed.
fn in_guarded_child(name: &str) -> bool {
    if std::env::var("COFFERDAM_GUARD_CHILD").is_ok() {
        return true;
    }
    if !common::in_process_or_skip(
        name,
        "the syscall guard is the in-process backends' (forced on split only for testing); a process compartment's syscalls are filtered in its helper (tests/process.rs)",
    ) {
        return false;
    }
    // On mpk the guard is on by default: run here. (A child would inherit
    // this process's filter and run on split: see docs/guard.md.)
    if cofferdam::backend() == cofferdam::Backend::Mpk {
        return true;
    }
    let out = common::rerun(
        name,
        &[
            ("COFFERDAM_GUARD_CHILD", "1"),
            ("COFFERDAM_SYSCALL_GUARD", "on"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in a guarded child: {stdout}\n{stderr}"
    );
    false
}

fn page() -> *mut u8 {
    let l = std::alloc::Layout::from_size_align(4096, 4096).unwrap();
    // SAFETY: non-zero layout; leaked on purpose.
    let p = unsafe { std::alloc::alloc_zeroed(l) };
    assert!(!p.is_null());
    // SAFETY: our page.
    unsafe { p.write_bytes(0x5a, 4096) };
    p
}

fn syscall_fault(r: Result<i64, Error>, name: &str) {
    match r {
        Err(Error::Fault(f)) => {
            assert!(
                matches!(f.kind, FaultKind::Syscall { name: n, .. } if n == name),
                "{f}"
            );
            assert_eq!(f.kind.name(), "syscall");
        }
        other => panic!("{name}: expected a syscall fault, got {other:?}"),
    }
}

#[test]
fn foreign_protection_syscalls_on_rust_memory_are_refused() {
    if !in_guarded_child("foreign_protection_syscalls_on_rust_memory_are_refused") {
        return;
    }
    let p = page();
    let c = || Compartment::new("g").unwrap();
    let _first = c();
    assert!(
        cofferdam::info().guard.syscall_guard,
        "{}",
        cofferdam::info()
    );
    // SAFETY: each C function takes (void*, size_t) and returns long.
    unsafe {
        syscall_fault(
            c().call("cd_zap_page", ffi::cd_zap_page as *const (), (p, 4096usize)),
            "madvise",
        );
        syscall_fault(
            c().call(
                "cd_mprotect_page",
                ffi::cd_mprotect_page as *const (),
                (p, 4096usize),
            ),
            "mprotect",
        );
    }
    let out = cofferdam::ForeignBuf::zeroed(8).unwrap();
    // SAFETY: cd_retag_and_read(void*, size_t, const uint8_t*, uint8_t*, size_t) -> long.
    let r = unsafe {
        c().call(
            "cd_retag_and_read",
            ffi::cd_retag_and_read as *const (),
            (p, 4096usize, p as *const u8, out.as_foreign_ptr(), 0usize),
        )
    };
    syscall_fault(r, "pkey_mprotect");
    // SAFETY: cd_rwx_wrpkru(const uint8_t*, uint8_t*, size_t, int) -> long.
    let r = unsafe {
        c().call(
            "cd_rwx_wrpkru",
            ffi::cd_rwx_wrpkru as *const (),
            (p as *const u8, out.as_foreign_ptr(), 0usize, 0i32),
        )
    };
    syscall_fault(r, "mmap");
    // Rust's page is intact and still writable.
    // SAFETY: our page.
    unsafe {
        assert!((0..4096).all(|i| *p.add(i) == 0x5a));
        p.write(1);
    }
    assert!(cofferdam::info().guard.refused_syscalls >= 4);
}

#[test]
fn trusted_code_keeps_its_syscalls() {
    if !in_guarded_child("trusted_code_keeps_its_syscalls") {
        return;
    }
    let _c = Compartment::new("t").unwrap();
    let p = page();
    // Trusted code, in the protected range: trapped, re-issued, works.
    // SAFETY: our own page.
    unsafe {
        assert_eq!(libc::madvise(p.cast(), 4096, libc::MADV_DONTNEED), 0);
        assert_eq!(*p, 0, "MADV_DONTNEED zeroed the page (trusted call ran)");
        assert_eq!(libc::mprotect(p.cast(), 4096, libc::PROT_READ), 0);
        assert_eq!(
            libc::mprotect(p.cast(), 4096, libc::PROT_READ | libc::PROT_WRITE),
            0
        );
        p.write(7);
        // Anonymous executable memory for trusted code (a JIT): allowed.
        let x = libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(x, libc::MAP_FAILED);
        libc::munmap(x, 4096);
    }
    // Lots of allocation and freeing (mimalloc commits and purges in range).
    for i in 0..2000 {
        let v = vec![i as u8; 1 << 16];
        assert_eq!(v[100], i as u8);
    }
    // A direct mapping (1.5 GiB, touched sparsely: the test VM is small),
    // carved from the reservation and given back (madvise + mprotect, both
    // trapped and re-issued).
    let l = std::alloc::Layout::from_size_align(3 << 29, 64).unwrap();
    // SAFETY: non-zero layout; freed below with the same layout.
    unsafe {
        let b = std::alloc::alloc_zeroed(l);
        assert!(!b.is_null());
        for off in (0..l.size()).step_by(256 << 20) {
            assert_eq!(*b.add(off), 0);
            b.add(off).write(9);
        }
        std::alloc::dealloc(b, l);
    }
    assert!(cofferdam::info().guard.reissued_syscalls > 0);
}

#[test]
fn on_mpk_the_guard_is_on_by_default_and_pkey_set_is_neutralised() {
    if !common::mpk_or_skip("on_mpk_the_guard_is_on_by_default_and_pkey_set_is_neutralised") {
        return;
    }
    let _c = Compartment::new("m").unwrap();
    let i = cofferdam::info();
    assert!(i.guard.syscall_guard, "{i}");
    assert!(i.guard.inspection, "{i}");
    assert!(
        i.guard.pkey_set.starts_with("patched") || i.guard.pkey_set.starts_with("absent"),
        "{i}"
    );
}

/// `/proc/self/mem` (and the same file through `/proc/thread-self`, a
/// task directory, or a symlink foreign code made) lets the kernel write
/// memory for its caller without PKRU: the guard checks what an `open`
/// opened and refuses procfs `mem` files. The page stays as it was.
#[test]
fn proc_mem_files_are_refused_however_named() {
    if !common::mpk_or_skip("proc_mem_files_are_refused_however_named") {
        return;
    }
    let p = page();
    // SAFETY: our page (leaked, 4096 bytes).
    let before = unsafe { core::slice::from_raw_parts(p, 4096) }.to_vec();
    let link = format!("/tmp/cofferdam-mem-link-{}", std::process::id());
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("/proc/self/mem", &link).unwrap();
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    for path in [
        "/proc/self/mem".to_string(),
        "/proc/thread-self/mem".to_string(),
        format!("/proc/self/task/{tid}/mem"),
        format!("/proc/{}/mem", std::process::id()),
        link.clone(),
    ] {
        let c = Compartment::new("procmem").unwrap();
        let path_c = cofferdam::ForeignBuf::from_str_nul(&path).unwrap();
        // SAFETY: open(const char*, int) -> int.
        let r: Result<i32, Error> = unsafe {
            c.call(
                "open",
                libc::open as *const (),
                (path_c.as_foreign_ptr(), libc::O_RDWR),
            )
        };
        syscall_fault(r.map(|x| x as i64), "openat");
    }
    // An ordinary procfs file still opens.
    let c = Compartment::new("procfs").unwrap();
    let ok = cofferdam::ForeignBuf::from_str_nul("/proc/self/status").unwrap();
    // SAFETY: open(const char*, int) -> int; close(int) -> int.
    let fd: i32 = unsafe {
        c.call(
            "open",
            libc::open as *const (),
            (ok.as_foreign_ptr(), libc::O_RDONLY),
        )
    }
    .unwrap();
    assert!(fd >= 0);
    // SAFETY: close(int) -> int, of the descriptor just opened.
    let _: i32 = unsafe { c.call("close", libc::close as *const (), (fd,)) }.unwrap();
    let _ = std::fs::remove_file(&link);
    // SAFETY: our page.
    assert_eq!(unsafe { core::slice::from_raw_parts(p, 4096) }, &before[..]);
}

/// One raw syscall from foreign code: `cd_syscall(nr, args)` in a fresh
/// compartment (a refused call poisons it).
fn foreign_syscall(nr: i64, args: [i64; 6]) -> Result<i64, Error> {
    let c = Compartment::new("table").unwrap();
    let a = cofferdam::ForeignVec::<i64>::from_slice(&args).unwrap();
    // SAFETY: cd_syscall(long nr, const long *args) -> long; the arguments
    // are the test's, chosen per row below.
    unsafe {
        c.call(
            "cd_syscall",
            cofferdam_attacks::syscalls::ffi::cd_syscall as *const (),
            (nr, a.as_foreign_ptr()),
        )
    }
}

/// The allowlist from foreign code: calls real C libraries need succeed;
/// calls off the list, and checked calls aimed at protected memory, end the
/// gate call with `Err(Fault)` of kind `syscall` naming the call.
#[test]
fn foreign_syscall_table() {
    if !in_guarded_child("foreign_syscall_table") {
        return;
    }
    use libc::*;
    let _first = Compartment::new("g").unwrap();
    assert!(cofferdam::info().guard.syscall_guard);
    let heap = page() as i64;
    let fbuf = cofferdam::ForeignBuf::zeroed(8192).unwrap();
    let fb = fbuf.as_foreign_ptr().addr() as i64;
    let fpage = (fb + 4095) & !4095;
    let path = |s: &str| {
        let b = cofferdam::ForeignBuf::from_str_nul(s).unwrap();
        let p = b.as_foreign_ptr().addr() as i64;
        std::mem::forget(b);
        p
    };
    let (zero, null) = (path("/dev/zero"), path("/dev/null"));
    let at = AT_FDCWD as i64;
    let fd_zero = foreign_syscall(SYS_openat, [at, zero, O_RDONLY as i64, 0, 0, 0]).unwrap();
    assert!(fd_zero >= 0);
    let anon = (MAP_PRIVATE | MAP_ANONYMOUS) as i64;
    let rw = (PROT_READ | PROT_WRITE) as i64;
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() } as i64;
    // (name, nr, args, check of the result)
    type Check = fn(i64) -> bool;
    let ok: &[(&str, i64, [i64; 6], Check)] = &[
        ("read", SYS_read, [fd_zero, fb, 1, 0, 0, 0], |r| r == 1),
        ("pread64", SYS_pread64, [fd_zero, fb, 16, 0, 0, 0], |r| {
            r == 16
        }),
        ("getpid", SYS_getpid, [0; 6], |r| {
            r == std::process::id() as i64
        }),
        ("gettid", SYS_gettid, [0; 6], |r| r > 0),
        (
            "clock_gettime",
            SYS_clock_gettime,
            [CLOCK_MONOTONIC as i64, fb, 0, 0, 0, 0],
            |r| r == 0,
        ),
        ("getrandom", SYS_getrandom, [fb, 8, 0, 0, 0, 0], |r| r == 8),
        (
            "futex wake",
            SYS_futex,
            [fb, FUTEX_WAKE as i64, 1, 0, 0, 0],
            |r| r == 0,
        ),
        ("sched_yield", SYS_sched_yield, [0; 6], |r| r == 0),
        ("uname", SYS_uname, [fb, 0, 0, 0, 0, 0], |r| r == 0),
        ("fstat", SYS_fstat, [fd_zero, fb, 0, 0, 0, 0], |r| r == 0),
        (
            "openat /dev/null",
            SYS_openat,
            [at, null, O_WRONLY as i64, 0, 0, 0],
            |r| r >= 0,
        ),
        (
            "mmap anonymous",
            SYS_mmap,
            [0, 4096, rw, anon, -1, 0],
            |r| r > 0,
        ),
        (
            "mprotect own page",
            SYS_mprotect,
            [fpage, 4096, rw, 0, 0, 0],
            |r| r == 0,
        ),
        (
            "madvise own page",
            SYS_madvise,
            [fpage, 4096, MADV_WILLNEED as i64, 0, 0, 0],
            |r| r == 0,
        ),
        (
            "pipe2",
            SYS_pipe2,
            [fb, O_CLOEXEC as i64, 0, 0, 0, 0],
            |r| r == 0,
        ),
        (
            "socket",
            SYS_socket,
            [AF_UNIX as i64, SOCK_STREAM as i64, 0, 0, 0, 0],
            |r| r >= 0,
        ),
        (
            "rt_sigprocmask block",
            SYS_rt_sigprocmask,
            [SIG_BLOCK as i64, fb + 64, fb + 128, 8, 0, 0],
            |r| r == 0,
        ),
        (
            "prctl PR_GET_DUMPABLE",
            SYS_prctl,
            [PR_GET_DUMPABLE as i64, 0, 0, 0, 0, 0],
            |r| r == 0,
        ),
        // rseq registration "succeeds" without registering (see docs/guard.md).
        ("rseq", SYS_rseq, [fpage, 32, 0, 0x5305_3053, 0, 0], |r| {
            r == 0
        }),
        (
            "io_uring_setup",
            SYS_io_uring_setup,
            [8, fb, 0, 0, 0, 0],
            |r| r == -(ENOSYS as i64),
        ),
        ("clone3", SYS_clone3, [fb, 88, 0, 0, 0, 0], |r| {
            r == -(ENOSYS as i64)
        }),
        // Starting a program replaces this one (the end of the process, not
        // an escape: docs/guard.md); a bad path only fails.
        ("execve", SYS_execve, [0, 0, 0, 0, 0, 0], |r| {
            r == -(EFAULT as i64)
        }),
        (
            "tgkill own thread, signal 0",
            SYS_tgkill,
            [std::process::id() as i64, tid, 0, 0, 0, 0],
            |r| r == 0,
        ),
    ];
    for (name, nr, args, check) in ok {
        let r = foreign_syscall(*nr, *args);
        assert!(matches!(r, Ok(v) if check(v)), "{name}: {r:?}");
    }
    let mem = path("/proc/self/mem");
    let (ctl, _) = cofferdam::control_pages().unwrap();
    let ctl = ctl as i64;
    let stack_var = 0u64;
    let stack = (&stack_var as *const u64 as i64) & !4095;
    let refused: &[(&str, i64, [i64; 6])] = &[
        ("ptrace", SYS_ptrace, [PTRACE_TRACEME as i64, 0, 0, 0, 0, 0]),
        ("process_vm_readv", SYS_process_vm_readv, [0; 6]),
        ("process_vm_writev", SYS_process_vm_writev, [0; 6]),
        ("pkey_alloc", SYS_pkey_alloc, [0; 6]),
        (
            "pkey_mprotect",
            SYS_pkey_mprotect,
            [heap, 4096, rw, 0, 0, 0],
        ),
        ("userfaultfd", SYS_userfaultfd, [0; 6]),
        (
            "perf_event_open",
            SYS_perf_event_open,
            [fb, 0, -1, -1, 0, 0],
        ),
        ("bpf", SYS_bpf, [0; 6]),
        ("kcmp", SYS_kcmp, [0; 6]),
        ("process_madvise", SYS_process_madvise, [0; 6]),
        ("pidfd_getfd", SYS_pidfd_getfd, [0; 6]),
        ("vmsplice", SYS_vmsplice, [0; 6]),
        ("kill", SYS_kill, [0, 0, 0, 0, 0, 0]),
        ("tkill", SYS_tkill, [0, 0, 0, 0, 0, 0]),
        ("tgkill", SYS_tgkill, [1, 1, 0, 0, 0, 0]),
        ("memfd_create", SYS_memfd_create, [null, 0, 0, 0, 0, 0]),
        ("arch_prctl", SYS_arch_prctl, [0x1002, 0, 0, 0, 0, 0]),
        ("unshare", SYS_unshare, [0; 6]),
        ("setuid", SYS_setuid, [0; 6]),
        ("seccomp", SYS_seccomp, [0; 6]),
        (
            "clone",
            SYS_clone,
            [
                (CLONE_VM | CLONE_THREAD | CLONE_SIGHAND) as i64,
                fpage + 4096,
                0,
                0,
                0,
                0,
            ],
        ),
        (
            "mprotect",
            SYS_mprotect,
            [fpage, 4096, (PROT_READ | PROT_EXEC) as i64, 0, 0, 0],
        ),
        (
            "mprotect",
            SYS_mprotect,
            [heap, 4096, PROT_READ as i64, 0, 0, 0],
        ),
        (
            "mprotect",
            SYS_mprotect,
            [stack, 4096, PROT_READ as i64, 0, 0, 0],
        ),
        (
            "mmap",
            SYS_mmap,
            [0, 4096, (PROT_READ | PROT_EXEC) as i64, anon, -1, 0],
        ),
        (
            "mmap",
            SYS_mmap,
            [heap, 4096, rw, anon | MAP_FIXED as i64, -1, 0],
        ),
        (
            "mmap",
            SYS_mmap,
            [ctl, 4096, rw, anon | MAP_FIXED as i64, -1, 0],
        ),
        ("munmap", SYS_munmap, [heap, 4096, 0, 0, 0, 0]),
        (
            "madvise",
            SYS_madvise,
            [heap, 4096, MADV_DONTNEED as i64, 0, 0, 0],
        ),
        (
            "madvise",
            SYS_madvise,
            [ctl, 4096, MADV_DONTNEED as i64, 0, 0, 0],
        ),
        (
            "mremap",
            SYS_mremap,
            [ctl, 4096, 4096, MREMAP_MAYMOVE as i64, 0, 0],
        ),
        (
            "mremap",
            SYS_mremap,
            [
                fpage,
                4096,
                4096,
                (MREMAP_MAYMOVE | MREMAP_FIXED) as i64,
                heap,
                0,
            ],
        ),
        ("openat", SYS_openat, [at, mem, O_RDWR as i64, 0, 0, 0]),
        ("openat", SYS_openat, [at, heap, O_RDONLY as i64, 0, 0, 0]),
        ("sigaltstack", SYS_sigaltstack, [fb + 256, 0, 0, 0, 0, 0]),
        ("prctl", SYS_prctl, [PR_SET_DUMPABLE as i64, 1, 0, 0, 0, 0]),
        ("prctl", SYS_prctl, [PR_SET_SECCOMP as i64, 2, 0, 0, 0, 0]),
        ("ioctl", SYS_ioctl, [0, TIOCSTI as i64, fb, 0, 0, 0]),
        // The supervisor's own requests need the token.
        ("ioctl", SYS_ioctl, [3, 0xc050_2100, fb, 0, 0, 0]),
    ];
    // Refused with an error, without ending the call: the supervisor's
    // answers (a Rust stack is tagged after install, so it is not in the
    // filter's fixed ranges), and Cofferdam's signals.
    let eperm: &[(&str, i64, [i64; 6])] = &[
        ("munmap stack", SYS_munmap, [stack, 4096, 0, 0, 0, 0]),
        (
            "madvise stack",
            SYS_madvise,
            [stack, 4096, MADV_DONTNEED as i64, 0, 0, 0],
        ),
        (
            "rt_sigaction",
            SYS_rt_sigaction,
            [SIGSEGV as i64, fb, 0, 8, 0, 0],
        ),
    ];
    for (name, nr, args) in eperm {
        let r = foreign_syscall(*nr, *args);
        assert!(matches!(r, Ok(v) if v == -(EPERM as i64)), "{name}: {r:?}");
    }
    // And what the supervisor lets run: a page of foreign code's own.
    let own = foreign_syscall(SYS_mmap, [0, 8192, rw, anon, -1, 0]).unwrap();
    assert!(own > 0);
    assert_eq!(
        foreign_syscall(SYS_madvise, [own, 4096, MADV_DONTNEED as i64, 0, 0, 0]),
        Ok(0)
    );
    assert_eq!(foreign_syscall(SYS_munmap, [own, 8192, 0, 0, 0, 0]), Ok(0));
    if cofferdam::info().guard.supervisor {
        assert!(cofferdam::info().guard.supervisor_answers.0 >= 2);
        assert!(cofferdam::info().guard.supervisor_answers.1 >= 2);
    }
    // The sigaltstack row: a stack_t pointing at the Rust heap page.
    let ss = libc::stack_t {
        ss_sp: heap as *mut c_void,
        ss_flags: 0,
        ss_size: 4096,
    };
    // SAFETY: writes a stack_t's bytes into the foreign buffer at offset 256.
    let bytes: [u8; 24] = unsafe { core::mem::transmute(ss) };
    fbuf.write(256, &bytes).unwrap();
    let before = cofferdam::info().guard.refused_syscalls;
    for (name, nr, args) in refused {
        syscall_fault(foreign_syscall(*nr, *args), name);
    }
    assert_eq!(
        cofferdam::info().guard.refused_syscalls - before,
        refused.len()
    );
    // Nothing protected moved: the heap page still holds its bytes.
    // SAFETY: our page.
    assert!(
        unsafe { core::slice::from_raw_parts(heap as *const u8, 4096) }
            .iter()
            .all(|&b| b == 0x5a)
    );
}

#[test]
fn off_switch_and_info() {
    if std::env::var("COFFERDAM_GUARD_CHILD").is_ok() {
        let _c = Compartment::new("o").unwrap();
        let i = cofferdam::info();
        assert!(!i.guard.syscall_guard, "{i}");
        assert!(
            i.guard.reason.contains("COFFERDAM_SYSCALL_GUARD=off"),
            "{i}"
        );
        println!("CHILD-OK");
        return;
    }
    let out = common::rerun(
        "off_switch_and_info",
        &[
            ("COFFERDAM_GUARD_CHILD", "1"),
            ("COFFERDAM_SYSCALL_GUARD", "off"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Before any compartment, nothing is decided: no filter.
    // (This process may have made compartments in other tests.)
    let i = cofferdam::info();
    assert!(!i.guard.reason.is_empty());
}
