//! The guard's supervisor: a thread of Cofferdam's that decides `munmap` and
//! `madvise` outside the ranges fixed at install, and sees who makes threads
//! (`clone` with `CLONE_VM`), through the filter's user-notification
//! descriptor (`SECCOMP_RET_USER_NOTIF`).
//!
//! Why not the SIGSYS handler, as for every other checked call: glibc's
//! thread exit blocks every signal, then advises its own stack away and
//! unmaps cached stacks of other exited threads. A trap while SIGSYS is
//! blocked kills the process. A user notification needs no signal: the
//! calling thread sleeps in the kernel until the supervisor answers.
//!
//! The decision is made with trusted state only (`check::is_protected`: the
//! thread table's tagged stacks and alternate stacks, the fixed ranges), and
//! the arguments are registers, which the kernel copied before the
//! supervisor saw them: no other thread can change what is decided. The
//! answer is `EPERM`, or "continue" (the kernel runs the call as made).
//!
//! What foreign code can do to it, and what follows:
//! * Close the descriptor (or `dup2` over it): the kernel then fails every
//!   such call with `ENOSYS` (memory is not returned early; nothing
//!   protected is unmapped). Denial of service, fail-closed.
//! * Keep a copy (`dup`, `SCM_RIGHTS`) and close the original: the calls wait
//!   for an answer that does not come. Denial of service.
//! * Answer itself: the `ioctl`s carry the guard's token, which the filter
//!   requires for any `ioctl` request other than a few terminal ones;
//!   foreign code cannot read the token.
//! * Race the check: a range that is not protected when decided becomes
//!   protected only if trusted code maps a new Rust stack at that very
//!   address between the answer and the call (a range already unmapped
//!   when the supervisor looks). Documented in docs/guard.md.

use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Mutex;

use crate::sys::{self, SeccompNotif, SeccompNotifResp};

/// The listener descriptor, or -1.
static LISTENER: AtomicI32 = AtomicI32::new(-1);
/// 0: the supervisor waits; 1: it serves `LISTENER`; 2: there is nothing to
/// serve (no listener).
static STATE: AtomicU32 = AtomicU32::new(0);
static THREAD: Mutex<Option<std::thread::Thread>> = Mutex::new(None);
/// Set by the supervisor once its own start (glibc's and Cofferdam's thread
/// set-up, which allocate and unmap) is over.
static READY: AtomicU32 = AtomicU32::new(0);

/// Calls answered so far: continued, and refused.
pub(crate) static CONTINUED: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(0);
pub(crate) static REFUSED: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(0);

/// Starts the supervisor (before the filter is installed: its own start
/// makes calls the filter would look at). It waits for [`serve`].
pub(crate) fn start() -> Result<(), &'static str> {
    let t = std::thread::Builder::new()
        .name("cofferdam-guard".into())
        .stack_size(64 * 1024)
        .spawn(run)
        .map_err(|_| "cannot start the guard's supervisor thread")?;
    *THREAD.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.thread().clone());
    // The filter goes on only once the supervisor has started: a `munmap`
    // of its own start-up, held for itself, would never be answered.
    while READY.load(Ordering::Acquire) == 0 {
        sys::futex_wait(&READY, 0, None);
    }
    Ok(())
}

/// Hands the supervisor the filter's listener (or tells it there is none).
pub(crate) fn serve(fd: Option<i32>) {
    if let Some(fd) = fd {
        LISTENER.store(fd, Ordering::Release);
    }
    STATE.store(if fd.is_some() { 1 } else { 2 }, Ordering::Release);
    if let Some(t) = THREAD.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        t.unpark();
    }
}

/// Whether a supervisor answers calls now.
pub(crate) fn serving() -> bool {
    STATE.load(Ordering::Acquire) == 1
}

/// In a forked child: there is no supervisor there. The child's own calls
/// still reach the parent's supervisor (the filter and its listener are
/// shared with the parent) while the parent lives, and fail with `ENOSYS`
/// after; the child's copy of the descriptor is closed.
pub(crate) fn after_fork_in_child() {
    let fd = LISTENER.swap(-1, Ordering::AcqRel);
    if fd >= 0 {
        // SAFETY: closes the child's copy of the listener, which nothing in
        // the child uses.
        unsafe { libc::close(fd) };
    }
}

fn run() {
    // Every signal blocked: the token sits in a register while the thread
    // waits in the kernel, and no frame of this thread may hold it. Nothing
    // here traps (SIGSYS is blocked too): the thread only waits (futex) and
    // makes its two ioctls with the token.
    // SAFETY: a sigset filled by sigfillset, then pthread_sigmask on it.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, core::ptr::null_mut());
    }
    READY.store(1, Ordering::Release);
    sys::futex_wake(&READY, 1);
    while STATE.load(Ordering::Acquire) == 0 {
        std::thread::park();
    }
    if STATE.load(Ordering::Acquire) != 1 {
        loop {
            std::thread::park();
        }
    }
    let Some(tok) = super::token_ptr() else {
        return;
    };
    loop {
        let fd = LISTENER.load(Ordering::Acquire);
        if fd < 0 {
            break;
        }
        let mut n = SeccompNotif::default();
        // SAFETY: the ioctl writes one `seccomp_notif` into `n` (zeroed, as
        // the kernel requires); the token pointer is the guard's (this
        // thread holds P's rights: it is trusted code).
        let r = unsafe {
            crate::gate::syscall::syscall_with_token(
                libc::SYS_ioctl,
                [
                    fd as u64,
                    sys::SECCOMP_IOCTL_NOTIF_RECV,
                    &mut n as *mut SeccompNotif as u64,
                    0,
                    0,
                ],
                tok,
            )
        };
        if r == -(libc::EINTR as i64) || r == -(libc::ENOENT as i64) {
            continue;
        }
        if r != 0 {
            // The descriptor is gone or no longer the listener (foreign code
            // closed or replaced it): the kernel fails the calls from now on.
            STATE.store(2, Ordering::Release);
            break;
        }
        let ok = decide(&n);
        let resp = SeccompNotifResp {
            id: n.id,
            val: 0,
            error: if ok { 0 } else { -libc::EPERM },
            flags: if ok {
                sys::SECCOMP_USER_NOTIF_FLAG_CONTINUE
            } else {
                0
            },
        };
        if ok {
            CONTINUED.fetch_add(1, Ordering::Relaxed);
        } else {
            REFUSED.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the ioctl reads one `seccomp_notif_resp`; token as above.
        // ENOENT (the caller died or was interrupted) needs nothing.
        unsafe {
            crate::gate::syscall::syscall_with_token(
                libc::SYS_ioctl,
                [
                    fd as u64,
                    sys::SECCOMP_IOCTL_NOTIF_SEND,
                    &resp as *const SeccompNotifResp as u64,
                    0,
                    0,
                ],
                tok,
            )
        };
    }
    loop {
        std::thread::park();
    }
}

/// Whether the held call may run. `munmap` and `madvise` may not touch
/// anything protected. A `clone` of a thread or vfork child always runs;
/// one that foreign code makes (its maker is inside a gate call running
/// foreign code, or has no entry) is recorded, with the FS base it gives
/// the thread, so that the gate checks thread ids where that FS base could
/// be shared (`gate::thread::ident`). The maker's thread id is the
/// kernel's, from the notification, and the arguments are registers the
/// kernel copied: nothing here can be changed by another thread.
fn decide(n: &SeccompNotif) -> bool {
    use crate::gate::thread::{ident, runner, Runner};
    let nr = n.nr as i64;
    if n.arch != super::bpf::AUDIT_ARCH_X86_64 {
        return false;
    }
    if nr == libc::SYS_clone {
        let maker = n.pid as i32;
        if runner(maker) != Runner::Trusted {
            let flags = n.args[0];
            ident::foreign_made(
                maker,
                flags & libc::CLONE_VFORK as u64 != 0,
                flags & libc::CLONE_SETTLS as u64 != 0,
                // x86_64: clone(flags, stack, parent_tid, child_tid, tls)
                n.args[4],
            );
        }
        return true;
    }
    if nr != libc::SYS_munmap && nr != libc::SYS_madvise {
        return false;
    }
    !super::check::is_protected(n.args[0] as usize, n.args[1] as usize)
}
