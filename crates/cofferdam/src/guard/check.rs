//! What the SIGSYS handler does with a trapped call once it knows who made
//! it (see `policy.rs` for the list and `mod.rs` for the trust decision).
//!
//! * Trusted code's calls are re-issued with the token, except the few that
//!   cannot be: `clone` of a thread sharing the caller's TLS (`EPERM`), and
//!   `rseq` registration (`ENOSYS`: no thread registers rseq while the guard
//!   is on, see `unregister_rseq`).
//! * Foreign code's checked calls are decided here with trusted state and
//!   re-issued by the handler itself; every pointer argument the kernel will
//!   read is first checked not to be protected and copied into protected
//!   memory (the heap: this runs with P's rights, and the interrupted code is
//!   foreign, so the allocator is not in use on this thread), so that another
//!   thread cannot change it between the check and the call. Output pointers
//!   are checked not to be protected (the re-issue runs with P's rights).

use core::mem::size_of;

use libc as c;

use crate::gate;

/// The handler's answer for a foreign call.
pub(crate) enum Outcome {
    /// Re-issued; the kernel's result.
    Ret(i64),
    /// Refused.
    Refuse,
}

/// Whether `[addr, addr + len)` meets memory the runtime trusts: the
/// protected heap, the thread table and callback slots, tagged Rust stacks,
/// alternate signal stacks, and the ranges recorded when the filter was
/// installed (the gate's configuration page, the signal table, and every
/// object loaded then: Cofferdam's code, the program's, libc's).
pub(crate) fn is_protected(addr: usize, len: usize) -> bool {
    if addr.checked_add(len.max(1)).is_none() {
        return true;
    }
    gate::thread::is_protected(addr, len)
        || gate::thread::touches_alt_stack(addr, len)
        || super::static_ranges_meet(addr, addr + len.max(1))
}

fn reissue(nr: i64, a: [u64; 6], tok: *const u64) -> i64 {
    // SAFETY: the token pointer is the state area's first word (readable:
    // the handler runs with P's rights); the call is one the handler decided
    // to make with these arguments.
    super::with_signals_blocked(true, || unsafe {
        gate::syscall::syscall_with_token(nr, [a[0], a[1], a[2], a[3], a[4]], tok)
    })
}

fn reissue_mmap(a: [u64; 6], tok: *const u64) -> i64 {
    let mut a = a;
    a[2] &= 0xffff_ffff;
    a[3] &= 0xffff_ffff;
    // SAFETY: as in `reissue`; prot and flags are ints (masked to 32 bits).
    super::with_signals_blocked(true, || unsafe { gate::syscall::mmap_with_token(a, tok) })
}

const RSEQ_FLAG_UNREGISTER: u64 = 1;
const CLONE_VM: u64 = c::CLONE_VM as u64;

/// A trusted call, trapped: re-issued, or refused when it cannot be.
///
/// # Safety
/// `uc` is the running handler's ucontext.
pub(crate) unsafe fn trusted(nr: u32, a: [u64; 6], tok: *const u64, uc: *mut c::ucontext_t) -> i64 {
    let n = nr as i64;
    if n == c::SYS_sigaltstack {
        // SAFETY: forwarded contract.
        return match unsafe { sigaltstack(a, uc, false) } {
            Outcome::Ret(r) => r,
            Outcome::Refuse => -(c::EPERM as i64),
        };
    }
    if n == c::SYS_rt_sigreturn {
        // Only the signal entry returns from signals, with the token; a
        // token-less rt_sigreturn cannot be re-issued from this handler.
        return -(c::EPERM as i64);
    }
    if n == c::SYS_clone && a[0] & CLONE_VM != 0 {
        // A thread sharing the caller's TLS (the filter lets a vfork child
        // and a thread with its own TLS through): it would pass the gate's
        // thread check as the caller, and it would run on the memory this
        // handler is using.
        return -(c::EPERM as i64);
    }
    if n == c::SYS_rt_sigprocmask {
        // SAFETY: forwarded contract.
        return match unsafe { sigprocmask(a, uc, false) } {
            Outcome::Ret(r) => r,
            Outcome::Refuse => -(c::EPERM as i64),
        };
    }
    if n == c::SYS_rseq && a[2] & RSEQ_FLAG_UNREGISTER == 0 {
        return -(c::ENOSYS as i64);
    }
    if n == c::SYS_mmap {
        return reissue_mmap(a, tok);
    }
    reissue(n, a, tok)
}

/// Whether foreign code may have the kernel read or write `[addr, addr +
/// len)` through a re-issued call (which runs with P's rights): not memory
/// tagged with P (the heap, the thread table and slots, tagged stacks), not
/// the gate's configuration page or the signal table. Other code and data
/// of loaded objects are not tagged: foreign code reads and writes them
/// itself (read-only pages stay read-only for the kernel too).
fn foreign_may_touch(addr: usize, len: usize) -> bool {
    let Some(end) = addr.checked_add(len.max(1)) else {
        return false;
    };
    let cfg = gate::config::CONFIG.0.get() as usize;
    let (table, table_len) = crate::fault::table_page();
    let meets = |lo: usize, hi: usize| addr < hi && end > lo;
    !gate::thread::is_protected(addr, len)
        && !meets(cfg, cfg + 4096)
        && !meets(table, table + table_len)
}

/// Copies `n` bytes that foreign code named at `src` into `dst`, if they are
/// not protected and are readable.
fn copy_in(dst: &mut [u8], src: usize, n: usize) -> bool {
    n <= dst.len()
        && foreign_may_touch(src, n)
        // SAFETY: dst holds n bytes; src is not protected (checked) and may
        // be unmapped (try_copy resumes at its fixup then).
        && unsafe { gate::try_copy(dst.as_mut_ptr(), src, n) }
}

/// Copies the NUL-terminated path at `src` (at most `PATH_MAX` bytes).
fn copy_path(src: usize) -> Option<Vec<u8>> {
    const MAX: usize = 4096;
    let mut out = vec![0u8; MAX];
    let mut have = 0usize;
    while have < MAX {
        let at = src.checked_add(have)?;
        // Up to the end of this page, so that a path ending just before an
        // unmapped page is read.
        let chunk = (4096 - (at & 4095)).min(MAX - have);
        if !copy_in(&mut out[have..], at, chunk) {
            return None;
        }
        if let Some(i) = out[have..have + chunk].iter().position(|&b| b == 0) {
            out.truncate(have + i + 1);
            return Some(out);
        }
        have += chunk;
    }
    None
}

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Whether descriptor `fd` (just opened for foreign code) lets the kernel
/// read or write memory for it without PKRU: a `mem` file of procfs (any
/// process, any thread, however it was named), or `/dev/mem`, `/dev/kmem`,
/// `/dev/port`. Unknown counts as forbidden.
fn forbidden_fd(fd: i32) -> bool {
    // SAFETY: zeroed statfs/stat are valid out-parameters; both live on the
    // (protected) heap, so no other thread can change them after the kernel
    // wrote them.
    let mut sfs: Box<c::statfs> = Box::new(unsafe { core::mem::zeroed() });
    // SAFETY: fd is a descriptor; sfs is writable.
    if unsafe { c::fstatfs(fd, &mut *sfs) } != 0 {
        return true;
    }
    if sfs.f_type as i64 == PROC_SUPER_MAGIC {
        let link = format!("/proc/self/fd/{fd}\0");
        let mut buf = vec![0u8; 4096];
        // SAFETY: link is NUL-terminated; buf holds 4096 bytes.
        let n = unsafe { c::readlink(link.as_ptr().cast(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return true;
        }
        return buf[..n as usize].ends_with(b"/mem");
    }
    // SAFETY: as above.
    let mut st: Box<c::stat> = Box::new(unsafe { core::mem::zeroed() });
    // SAFETY: fd is a descriptor; st is writable.
    if unsafe { c::fstat(fd, &mut *st) } != 0 {
        return true;
    }
    let chr = st.st_mode & c::S_IFMT == c::S_IFCHR;
    let (maj, min) = (c::major(st.st_rdev), c::minor(st.st_rdev));
    chr && maj == 1 && matches!(min, 1 | 2 | 4)
}

/// `open`, `openat`, `openat2` from foreign code: the path (and `open_how`)
/// copied into protected memory, opened, and the result checked.
fn open(nr: i64, a: [u64; 6], tok: *const u64) -> Outcome {
    let path_arg = if nr == c::SYS_open { a[0] } else { a[1] };
    let Some(path) = copy_path(path_arg as usize) else {
        return Outcome::Refuse;
    };
    let mut b = a;
    if nr == c::SYS_open {
        b[0] = path.as_ptr() as u64;
    } else {
        b[1] = path.as_ptr() as u64;
    }
    let mut how = [0u8; 24];
    if nr == c::SYS_openat2 {
        if a[3] != 24 || !copy_in(&mut how, a[2] as usize, 24) {
            return Outcome::Refuse;
        }
        b[2] = how.as_ptr() as u64;
    }
    let fd = reissue(nr, b, tok);
    if fd >= 0 && forbidden_fd(fd as i32) {
        // SAFETY: the descriptor was just opened by this handler.
        unsafe { c::close(fd as i32) };
        return Outcome::Refuse;
    }
    Outcome::Ret(fd)
}

/// `sigaltstack`, emulated on the signal frame. The handler runs on the
/// thread's alternate stack, which the kernel has disarmed
/// (`SS_AUTODISARM`) and will restore from the frame's `uc_stack` at
/// `rt_sigreturn`: a re-issued call would report the disarmed state and
/// its change would be undone. So the old value comes from `uc_stack`, the
/// new one is checked as the kernel would and written there.
///
/// # Safety
/// `uc` is the running handler's ucontext.
unsafe fn sigaltstack(a: [u64; 6], uc: *mut c::ucontext_t, foreign: bool) -> Outcome {
    const MINSIGSTKSZ: usize = 2048;
    const SS_AUTODISARM: i32 = 1 << 31;
    let sz = size_of::<c::stack_t>();
    // SAFETY: uc is the kernel's (contract).
    let (cur, rsp) = unsafe {
        (
            (*uc).uc_stack,
            (*uc).uc_mcontext.gregs[c::REG_RSP as usize] as usize,
        )
    };
    let mut new = None;
    if a[0] != 0 {
        let mut buf = Box::new([0u8; 24]);
        if foreign {
            if !copy_in(&mut buf[..], a[0] as usize, sz) {
                return Outcome::Refuse;
            }
        } else {
            // SAFETY: trusted code passed a pointer to its stack_t.
            unsafe { core::ptr::copy_nonoverlapping(a[0] as *const u8, buf.as_mut_ptr(), sz) };
        }
        // SAFETY: 24 bytes, the size of stack_t on x86_64.
        let mut n: c::stack_t = unsafe { (buf.as_ptr() as *const c::stack_t).read_unaligned() };
        let mode = n.ss_flags & !SS_AUTODISARM;
        if mode != 0 && mode != c::SS_DISABLE && mode != c::SS_ONSTACK {
            return Outcome::Ret(-(c::EINVAL as i64));
        }
        let on = cur.ss_flags & c::SS_DISABLE == 0
            && (cur.ss_sp as usize) < rsp
            && rsp <= cur.ss_sp as usize + cur.ss_size;
        if on {
            return Outcome::Ret(-(c::EPERM as i64));
        }
        if mode == c::SS_DISABLE && stack_tagged() {
            // Without an alternate stack, the next signal would be framed
            // on the tagged stack and its handler could not run (it starts
            // without P's rights). The standard library disables its own at
            // thread exit, before Cofferdam untags the stack and removes the
            // one it gave: keep it until then.
            return if foreign {
                Outcome::Refuse
            } else {
                Outcome::Ret(0)
            };
        }
        if mode == c::SS_DISABLE {
            n.ss_sp = core::ptr::null_mut();
            n.ss_size = 0;
            n.ss_flags = c::SS_DISABLE;
        } else {
            if foreign && is_protected(n.ss_sp as usize, n.ss_size) {
                return Outcome::Refuse;
            }
            if n.ss_size < MINSIGSTKSZ {
                return Outcome::Ret(-(c::ENOMEM as i64));
            }
            n.ss_flags &= SS_AUTODISARM;
        }
        new = Some(n);
    }
    if a[1] != 0 {
        if foreign {
            // The kernel would report the disarmed state while this handler
            // runs, and the handler has no fault-tolerant write: foreign
            // code gets no old value (no C library needs it here).
            return Outcome::Refuse;
        } else {
            // SAFETY: trusted code passed a pointer to its stack_t.
            unsafe { (a[1] as *mut c::stack_t).write_unaligned(cur) };
        }
    }
    if let Some(n) = new {
        // Made now, off the alternate stack (the kernel refuses a change
        // while the stack pointer is on it), and recorded in the frame, from
        // which rt_sigreturn restores the alternate stack.
        let copy = Box::new(n);
        let Some(tok) = super::token_ptr() else {
            return Outcome::Refuse;
        };
        // SAFETY: the new stack_t lives on the protected heap; signals are
        // blocked by the caller (on_sigsys); the token is readable.
        let r = super::with_signals_blocked(true, || unsafe {
            gate::syscall::syscall_with_token_off_stack(
                c::SYS_sigaltstack,
                [&*copy as *const c::stack_t as u64, 0, 0, 0, 0],
                tok,
            )
        });
        if r != 0 {
            return Outcome::Ret(r);
        }
        // SAFETY: uc is the kernel's (contract).
        unsafe { (*uc).uc_stack = n };
    }
    Outcome::Ret(0)
}

/// `rt_sigprocmask(how, set, old, 8)` that may block signals, emulated on the
/// signal frame (rt_sigreturn restores the mask from it, so a re-issued call
/// would be undone): the new mask never includes SIGSYS, which must stay
/// deliverable (a trapped call while it is blocked kills the process).
///
/// # Safety
/// `uc` is the running handler's ucontext.
unsafe fn sigprocmask(a: [u64; 6], uc: *mut c::ucontext_t, foreign: bool) -> Outcome {
    const KEEP: u64 = 1 << (c::SIGSYS - 1) | 1 << (c::SIGKILL - 1) | 1 << (c::SIGSTOP - 1);
    if a[3] != 8 {
        return Outcome::Ret(-(c::EINVAL as i64));
    }
    let mask = uc_sigmask(uc);
    // SAFETY: uc is the kernel's (contract); its mask is the kernel's
    // 8-byte sigset.
    let cur = unsafe { mask.read_unaligned() };
    let mut set = [0u8; 8];
    if a[1] != 0 {
        if foreign {
            if !copy_in(&mut set, a[1] as usize, 8) {
                return Outcome::Refuse;
            }
        } else {
            // SAFETY: trusted code passed its sigset.
            unsafe { core::ptr::copy_nonoverlapping(a[1] as *const u8, set.as_mut_ptr(), 8) };
        }
    }
    let set = u64::from_ne_bytes(set);
    let new = match a[0] as i32 {
        _ if a[1] == 0 => cur,
        c::SIG_BLOCK => cur | set,
        c::SIG_UNBLOCK => cur & !set,
        c::SIG_SETMASK => set,
        _ => return Outcome::Ret(-(c::EINVAL as i64)),
    } & !KEEP;
    if a[2] != 0 {
        if foreign {
            if !foreign_may_touch(a[2] as usize, 8) {
                return Outcome::Refuse;
            }
            // The kernel writes the old mask (EFAULT if unmapped): while
            // this handler runs the mask is the interrupted one (SA_NODEFER,
            // empty sa_mask), checked first.
            let mut now = Box::new(0u64);
            // SAFETY: a query into a heap u64.
            unsafe {
                c::syscall(
                    c::SYS_rt_sigprocmask,
                    0,
                    0usize,
                    &mut *now as *mut u64,
                    8usize,
                )
            };
            if *now != cur {
                return Outcome::Refuse;
            }
            // SAFETY: a query; the destination is not protected (checked).
            let r = unsafe { c::syscall(c::SYS_rt_sigprocmask, 0, 0usize, a[2] as usize, 8usize) };
            if r != 0 {
                return Outcome::Ret(-(c::EFAULT as i64));
            }
        } else {
            // SAFETY: trusted code passed its sigset.
            unsafe { (a[2] as *mut u64).write_unaligned(cur) };
        }
    }
    // SAFETY: as above.
    unsafe { mask.write_unaligned(new) };
    Outcome::Ret(0)
}

fn uc_sigmask(uc: *mut c::ucontext_t) -> *mut u64 {
    // SAFETY (of the projection): uc points to a ucontext.
    unsafe { core::ptr::addr_of_mut!((*uc).uc_sigmask) as *mut u64 }
}

/// Whether this thread's Rust stack is tagged now.
fn stack_tagged() -> bool {
    gate::thread::for_signal_handler().is_some_and(|st| {
        // SAFETY: this thread's own entry (checked by tid).
        let st = unsafe { &*st };
        st.stack_hi.load(core::sync::atomic::Ordering::Acquire)
            > st.stack_lo.load(core::sync::atomic::Ordering::Relaxed)
    })
}

fn prctl(a: [u64; 6], tok: *const u64) -> Outcome {
    let opt = a[0] as i32;
    let mut b = a;
    let mut name = [0u8; 16];
    match opt {
        c::PR_SET_NAME => {
            if !copy_in(&mut name, a[1] as usize, 16) {
                return Outcome::Refuse;
            }
            b[1] = name.as_ptr() as u64;
        }
        c::PR_GET_NAME => {
            if !foreign_may_touch(a[1] as usize, 16) {
                return Outcome::Refuse;
            }
        }
        c::PR_GET_DUMPABLE
        | c::PR_SET_PDEATHSIG
        | c::PR_GET_NO_NEW_PRIVS
        | c::PR_GET_SECCOMP
        | c::PR_CAPBSET_READ
        | c::PR_GET_TIMERSLACK
        | c::PR_SET_TIMERSLACK => {}
        _ => return Outcome::Refuse,
    }
    Outcome::Ret(reissue(c::SYS_prctl, b, tok))
}

/// A foreign call, trapped: re-issued if its check passes, else refused.
///
/// # Safety
/// `uc` is the running handler's ucontext.
pub(crate) unsafe fn foreign(
    nr: u32,
    a: [u64; 6],
    tok: *const u64,
    uc: *mut c::ucontext_t,
) -> Outcome {
    let n = nr as i64;
    let prot_exec = a[2] & c::PROT_EXEC as u64 != 0;
    let range = |addr: u64, len: u64| is_protected(addr as usize, len as usize);
    match n {
        c::SYS_mmap => {
            let fixed = a[3] & (c::MAP_FIXED | c::MAP_FIXED_NOREPLACE) as u64 != 0;
            if prot_exec || (fixed && range(a[0], a[1])) {
                Outcome::Refuse
            } else {
                Outcome::Ret(reissue_mmap(a, tok))
            }
        }
        c::SYS_mprotect => {
            if prot_exec || range(a[0], a[1]) {
                Outcome::Refuse
            } else {
                Outcome::Ret(reissue(n, a, tok))
            }
        }
        c::SYS_munmap | c::SYS_madvise => {
            if range(a[0], a[1]) {
                Outcome::Refuse
            } else {
                Outcome::Ret(reissue(n, a, tok))
            }
        }
        c::SYS_mremap => {
            let fixed = a[3] & c::MREMAP_FIXED as u64 != 0;
            if range(a[0], a[1]) || (fixed && range(a[4], a[2])) {
                Outcome::Refuse
            } else {
                Outcome::Ret(reissue(n, a, tok))
            }
        }
        c::SYS_open | c::SYS_openat | c::SYS_openat2 => open(n, a, tok),
        // SAFETY: forwarded contract.
        c::SYS_sigaltstack => unsafe { sigaltstack(a, uc, true) },
        // SAFETY: forwarded contract.
        c::SYS_rt_sigprocmask => unsafe { sigprocmask(a, uc, true) },
        c::SYS_prctl => prctl(a, tok),
        _ => Outcome::Refuse,
    }
}
