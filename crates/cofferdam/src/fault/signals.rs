//! Signal handlers that work while the heap carries key P.
//!
//! Cofferdam defines `sigaction` and `signal` in the executable, which take
//! precedence over glibc's weak definitions for every caller that links
//! against them (the Rust standard library, `signal-hook`, `nix`, C code in
//! the program). For a handler installed by trusted code, the kernel is given
//! `cofferdam_signal_entry` instead and the handler is kept in a table; the
//! entry takes P's rights and calls it. Handlers that were installed before
//! Cofferdam started are moved behind the entry the same way, at start-up.
//! `sigaction`'s old-action result reports the user's handler, not the
//! trampoline, so code that saves and restores handlers keeps working.
//!
//! The table lives on pages of its own tagged with P: foreign code can neither
//! read nor redirect it.
//!
//! Foreign code (a call made while the thread is inside a gate) may set
//! `SIG_DFL` or `SIG_IGN` for other signals, and nothing else (`EPERM`): a
//! handler of its own would get a frame it can write and return through
//! `rt_sigreturn`, which restores the PKRU the frame names; and replacing
//! the SIGSEGV/SIGBUS/SIGSYS handler would let it swallow its own faults.
//!
//! Not covered: `sigset`, `sysv_signal`, `bsd_signal`, and raw
//! `rt_sigaction` syscalls bypass the interposition; a shared library loaded
//! with `dlopen` calls glibc's `sigaction` unless the executable exports the
//! symbol (`-rdynamic`).

use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use crate::gate;
use crate::state::Runtime;
use crate::sys;

const NSIG: usize = 65;

/// What trusted code asked for, per signal.
struct Table {
    /// Handler address (or SIG_DFL / SIG_IGN), read by the dispatcher
    /// without locking.
    handler: [AtomicUsize; NSIG],
    /// `sa_flags` of the user's action.
    flags: [AtomicI32; NSIG],
    /// Whether the kernel currently has our entry for this signal.
    wrapped: [AtomicBool; NSIG],
    /// The full action, for `sigaction`'s old-action result (under `lock`).
    action: UnsafeCell<[libc::sigaction; NSIG]>,
    lock: AtomicBool,
}

/// Page-aligned and page-padded, so that tagging it tags nothing else.
#[repr(C, align(4096))]
struct TablePage {
    table: Table,
}

// SAFETY: `handler`, `flags` and `wrapped` are atomics; `action` is only
// accessed with `lock` held.
unsafe impl Sync for TablePage {}

static TABLE: TablePage = TablePage {
    table: Table {
        handler: [const { AtomicUsize::new(0) }; NSIG],
        flags: [const { AtomicI32::new(0) }; NSIG],
        wrapped: [const { AtomicBool::new(false) }; NSIG],
        // SAFETY: an all-zero sigaction is SIG_DFL with no flags and an empty mask.
        action: UnsafeCell::new(unsafe { core::mem::zeroed() }),
        lock: AtomicBool::new(false),
    },
};

/// Set once handlers are in place; before that the interposed functions pass
/// straight through.
static INSTALLED: AtomicBool = AtomicBool::new(false);

fn table() -> &'static Table {
    &TABLE.table
}

struct Guard;
fn lock() -> Guard {
    while table().lock.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    Guard
}
impl Drop for Guard {
    fn drop(&mut self) {
        table().lock.store(false, Ordering::Release);
    }
}

/// Signals that can carry a handler. glibc reserves 32 and 33 for itself.
fn managed(sig: c_int) -> bool {
    (1..NSIG as c_int).contains(&sig)
        && sig != libc::SIGKILL
        && sig != libc::SIGSTOP
        && sig != 32
        && sig != 33
}

use super::is_fault_signal;

/// Signals Cofferdam keeps for itself: the fault signals (with SIGABRT) and
/// SIGSYS (the syscall guard's traps). Always behind the entry; foreign code may not
/// install handlers for them.
fn is_reserved_signal(sig: c_int) -> bool {
    is_fault_signal(sig) || sig == libc::SIGSYS
}

/// The page that holds the signal table (P-tagged), for the syscall guard's
/// list of protected ranges.
pub(crate) fn table_page() -> (usize, usize) {
    (
        &TABLE as *const TablePage as usize,
        core::mem::size_of::<TablePage>(),
    )
}

fn is_function(h: usize) -> bool {
    h != libc::SIG_DFL && h != libc::SIG_IGN
}

fn entry_address() -> usize {
    gate::cofferdam_signal_entry as *const () as usize
}

/// Records `act` as the user's action for `sig` (lock held).
fn record(_g: &Guard, sig: c_int, act: &libc::sigaction) {
    let i = sig as usize;
    // SAFETY: the lock is held (`_g`).
    unsafe { (*table().action.get())[i] = *act };
    table().flags[i].store(act.sa_flags, Ordering::Relaxed);
    table().handler[i].store(act.sa_sigaction, Ordering::Release);
}

/// Puts our entry in front of `sig` with the user's mask and flags.
fn install_entry(sig: c_int, user: &libc::sigaction) -> c_int {
    // SAFETY: a zeroed sigaction is valid; fields set below.
    let mut ours: libc::sigaction = unsafe { core::mem::zeroed() };
    ours.sa_sigaction = entry_address();
    ours.sa_mask = user.sa_mask;
    // Always on the alternate stack: the thread's own stack may be tagged
    // with P, which the handler starts without (see `gate/thread.rs`).
    ours.sa_flags = user.sa_flags | libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SIGSYS must never be blocked while a handler runs: a blocked SIGSYS
    // from the syscall guard kills the process.
    // SAFETY: sa_mask is a valid sigset_t.
    unsafe { libc::sigdelset(&mut ours.sa_mask, libc::SIGSYS) };
    if is_reserved_signal(sig) {
        // Run on the alternate stack when there is one (stack overflow), and
        // let a fault inside a handler reach us again (the default would be
        // to kill the process while the signal is blocked).
        ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
        // SAFETY: sa_mask is a valid sigset_t.
        unsafe { libc::sigemptyset(&mut ours.sa_mask) };
    }
    // SAFETY: `ours` names our entry, a valid SA_SIGINFO handler.
    let r = unsafe { sys::real_sigaction(sig, &ours, core::ptr::null_mut()) };
    if r == 0 {
        table().wrapped[sig as usize].store(true, Ordering::Release);
    }
    r
}

/// Start-up: move existing handlers behind the entry, take SIGSEGV/SIGBUS,
/// tag the table with P.
pub(crate) fn install(rt: &Runtime) {
    if rt.backend == crate::Backend::None {
        return; // unprotected baseline: leave signals exactly as they are
    }
    // The thread starting the runtime (the main thread, normally) gets its
    // state and its alternate stack now; threads that trusted code starts
    // later get theirs as they start (`gate::thread::pthread_create`).
    let _ = gate::thread::adopt();
    // A child made by fork has the thread that forked, with its state: the
    // state must name the child's thread id, which the signal entry checks.
    // SAFETY: registers a plain function for the child side only.
    unsafe { libc::pthread_atfork(None, None, Some(gate::thread::after_fork_in_child)) };
    {
        let g = lock();
        for sig in 1..NSIG as c_int {
            if !managed(sig) {
                continue;
            }
            // SAFETY: a zeroed sigaction is a valid out-parameter.
            let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
            // SAFETY: query only.
            if unsafe { sys::real_sigaction(sig, core::ptr::null(), &mut old) } != 0 {
                continue;
            }
            if is_reserved_signal(sig) || is_function(old.sa_sigaction) {
                record(&g, sig, &old);
                install_entry(sig, &old);
            }
        }
        if let Some(key) = rt.pkey {
            let start = &TABLE as *const TablePage as *mut c_void;
            let len = core::mem::size_of::<TablePage>();
            // SAFETY: TablePage is page-aligned and its size a multiple of
            // the page (align(4096) rounds size up), so the range holds the
            // table and nothing else.
            if unsafe { sys::pkey_mprotect(start, len, libc::PROT_READ | libc::PROT_WRITE, key) }
                .is_err()
            {
                sys::write_stderr(
                    b"cofferdam: cannot tag the signal table with the protection key\n",
                );
                std::process::abort();
            }
        }
    }
    // glibc's own handlers (thread cancellation, set*id broadcast) are
    // installed without `sigaction`: move them to the alternate stack too.
    if rt.pkey.is_some() {
        sys::add_onstack(32);
        sys::add_onstack(33);
    }
    INSTALLED.store(true, Ordering::Release);
}

/// Hands a signal that is not a contained fault to the user's handler.
///
/// # Safety
/// Arguments as the kernel passed them to an SA_SIGINFO handler.
pub(crate) unsafe fn forward(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    if !managed(sig) {
        return;
    }
    let i = sig as usize;
    let h = table().handler[i].load(Ordering::Acquire);
    let flags = table().flags[i].load(Ordering::Relaxed);
    if h == libc::SIG_IGN {
        return;
    }
    // SAFETY: info is the kernel's siginfo for this signal (or null).
    let sent = info.is_null() || unsafe { (*info).si_code } <= 0;
    // Under the guard, a SIGSYS that reaches here is not one of its traps
    // (`guard::on_sigsys` took those): someone sent it, whatever si_code
    // says (rt_sigqueueinfo may claim SYS_SECCOMP).
    let sent = sent || (sig == libc::SIGSYS && !crate::guard::sigreturn_token().is_null());
    if h == libc::SIG_DFL
        && sent
        && (is_fault_signal(sig) || sig == libc::SIGSYS)
        && sig != libc::SIGABRT
    {
        // A fault signal (or SIGSYS) someone sent (kill, tgkill,
        // rt_sigqueueinfo) is not a fault nor a trap: its
        // default action is not taken, so that no thread, foreign or not,
        // can take Cofferdam's entry out of the kernel by sending it. (A
        // sent SIGABRT keeps its meaning: abort() ends the process.)
        return;
    }
    if h == libc::SIG_DFL {
        // Put the default back and let it happen: for a fault the CPU
        // raised, returning re-runs the faulting instruction; for a signal
        // that was sent, re-raise it (blocked until this handler returns,
        // unless SA_NODEFER). Only trusted code's signals get here (the
        // classification in `fault` took foreign code's, and threads that
        // foreign code started never reach this with rights), so foreign
        // code cannot use this to take Cofferdam's entry out of the kernel:
        // the process ends right after, as the program asked.
        // The kernel's sigaction for SIG_DFL: handler, flags, restorer,
        // mask, all zero. With the guard's token: the filter answers EPERM
        // to an rt_sigaction of Cofferdam's signals without it.
        let dfl = [0u64; 4];
        // SAFETY: installs the default action; `tok` is null or the token
        // (this handler holds rights).
        unsafe {
            sys::trusted_syscall(
                libc::SYS_rt_sigaction,
                [sig as u64, dfl.as_ptr() as u64, 0, 8, 0],
                crate::guard::sigreturn_token(),
            )
        };
        table().wrapped[i].store(false, Ordering::Release);
        if !is_fault_signal(sig) || sent {
            // SAFETY: raise has no memory preconditions.
            unsafe { libc::raise(sig) };
        }
        return;
    }
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the user installed an SA_SIGINFO handler at this address.
        let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
            unsafe { core::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the user installed a plain handler at this address.
        let f: extern "C" fn(c_int) = unsafe { core::mem::transmute(h) };
        f(sig);
    }
}

/// The interposed `sigaction`.
///
/// # Safety
/// As for `sigaction(2)`.
unsafe fn hook(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    // Foreign code first, before anything reads a static: Rust's statics
    // (INSTALLED, the table) carry P on the mpk backend and foreign code runs
    // without it. `foreign_running` reads only PKRU and the untagged config
    // page there (issue 14).
    if gate::foreign_running() {
        // Foreign code may set SIG_DFL or SIG_IGN for signals that are not
        // Cofferdam's, and nothing else: a handler of its own would run on a
        // frame it can write and return through rt_sigreturn (which would
        // restore whatever PKRU the frame said; the filter refuses it
        // without the token anyway). Deny by default.
        // SAFETY: the caller passes a valid action when non-null.
        if managed(sig)
            && !act.is_null()
            && (is_reserved_signal(sig) || is_function(unsafe { (*act).sa_sigaction }))
        {
            // SAFETY: errno is thread-local.
            unsafe { *libc::__errno_location() = libc::EPERM };
            return -1;
        }
        // SAFETY: forwarded contract.
        return unsafe { sys::real_sigaction(sig, act, old) };
    }
    if !INSTALLED.load(Ordering::Acquire) || !managed(sig) {
        // SAFETY: forwarded contract.
        return unsafe { sys::real_sigaction(sig, act, old) };
    }
    let g = lock();
    // SAFETY: a zeroed sigaction is a valid out-parameter.
    let mut kernel: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: query only.
    if unsafe { sys::real_sigaction(sig, core::ptr::null(), &mut kernel) } != 0 {
        return -1;
    }
    let ours = kernel.sa_sigaction == entry_address();
    // SAFETY: lock held.
    let previous = if ours {
        unsafe { (*table().action.get())[sig as usize] }
    } else {
        kernel
    };
    if !act.is_null() {
        // SAFETY: the caller passes a valid action.
        let a = unsafe { *act };
        if is_reserved_signal(sig) || is_function(a.sa_sigaction) {
            record(&g, sig, &a);
            // The reserved signals keep our entry once it is there.
            if (!ours || !is_reserved_signal(sig)) && install_entry(sig, &a) != 0 {
                return -1;
            }
        } else {
            // SIG_DFL or SIG_IGN: the kernel can do that without us.
            record(&g, sig, &a);
            // SAFETY: forwarded action.
            if unsafe { sys::real_sigaction(sig, act, core::ptr::null_mut()) } != 0 {
                return -1;
            }
            table().wrapped[sig as usize].store(false, Ordering::Release);
        }
    }
    if !old.is_null() {
        // SAFETY: the caller passes a writable out-parameter.
        unsafe { *old = previous };
    }
    0
}

/// Cofferdam's `sigaction`, shadowing glibc's (see the module docs).
///
/// # Safety
/// As for `sigaction(2)`.
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { hook(sig, act, old) }
}

/// Cofferdam's `signal`, shadowing glibc's: BSD semantics as glibc's (the
/// signal is blocked during its handler, interrupted calls restart), through
/// the interposed `sigaction`.
///
/// # Safety
/// As for `signal(2)`.
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    // SAFETY: zeroed sigactions are valid; fields set below.
    let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    act.sa_sigaction = handler;
    act.sa_flags = libc::SA_RESTART;
    // SAFETY: sa_mask is a valid sigset_t; sig is checked by sigaddset.
    unsafe {
        libc::sigemptyset(&mut act.sa_mask);
        if libc::sigaddset(&mut act.sa_mask, sig) != 0 {
            return libc::SIG_ERR;
        }
    }
    // SAFETY: valid action and out-parameter.
    if unsafe { hook(sig, &act, &mut old) } != 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}

/// Whether `sig` currently reaches its handler through Cofferdam's entry.
pub fn is_wrapped(sig: c_int) -> bool {
    managed(sig) && table().wrapped[sig as usize].load(Ordering::Acquire)
}
