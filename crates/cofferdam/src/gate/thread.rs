//! Each thread's state: its foreign stack, its tagged Rust stack, its
//! alternate signal stack, and the innermost gate call.
//!
//! The states live in one table on pages tagged with P (allocated when the
//! runtime starts, committed lazily), so foreign code can neither read nor
//! write them. A thread finds its own through a TLS slot (`asm.rs`); since
//! foreign code *can* write TLS, every reader checks the pointer: it must name
//! an entry of the table, and that entry must belong to the thread reading it
//! (its FS base, read with RDFSBASE, which other threads cannot change). The
//! gate's asm repeats the same checks on its return path.
//!
//! A thread gets its state at its first gate call ([`current`]):
//!
//! * a **foreign stack** (`COFFERDAM_FOREIGN_STACK_KIB`, default 1024 KiB,
//!   with a guard page below and above), in ordinary untagged memory: foreign
//!   code runs on it and never on the Rust stack;
//! * on the mpk backend, the thread's **Rust stack is tagged with P**: the
//!   main thread's from the bottom of its mapping up to the page below its
//!   start-up data (argv, the environment, the auxiliary vector, which foreign
//!   code reads through `environ` and `getauxval`); another thread's from the
//!   bottom of its stack to the page below its static TLS block and thread
//!   control block (foreign code reads `errno` and the stack-protector canary
//!   there). The page the TLS shares with the thread's first frames stays
//!   untagged: MPK works on whole pages;
//! * an **alternate signal stack** if the thread has none (the kernel would
//!   otherwise write a signal frame on the tagged stack, and handlers start
//!   without P's rights); every handler Cofferdam installs is `SA_ONSTACK`,
//!   and alternate stacks are made `SS_AUTODISARM` (see the constant).
//!
//! At thread exit a TLS destructor undoes all three (glibc reuses the stacks
//! of exited threads, perhaps for a thread of foreign code's own).

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::{asm, config, GateFrame};
use crate::sys;

/// Entries in the state table: the most threads that can make gate calls at
/// once.
pub(crate) const MAX_THREADS: usize = 4096;
/// Bytes per entry (the asm checks entry alignment with `test ecx, 255`).
pub(crate) const STATE_SIZE: usize = 256;
/// `SS_AUTODISARM` (Linux 4.7): the kernel disables the alternate stack
/// while a handler runs on it. A handler that makes a gate call leaves the
/// alternate stack for the foreign stack; a signal arriving then (a fault in
/// the nested call) would otherwise be framed at the top of the alternate
/// stack, over the first handler's frames.
const SS_AUTODISARM: i32 = 1 << 31;
/// Size of an alternate signal stack that Cofferdam provides.
const ALT_STACK: usize = 64 << 10;

/// One thread's state. Offsets 0, 8 and 16 are read by `asm.rs`.
#[repr(C, align(256))]
pub(crate) struct ThreadState {
    /// 0: the owning thread's FS base; 0 while the entry is free.
    pub fs_base: AtomicU64,
    /// 8: the innermost gate call in progress, or null.
    pub current: *mut GateFrame,
    /// 16: where the next gate call's foreign frames start (the top of the
    /// foreign stack, or below the frames of the call a callback or signal
    /// handler interrupted).
    pub foreign_top: usize,
    /// Calls made on this thread so far (call ids).
    pub call_seq: u64,
    /// The thread's id (gettid), for the signal handler's check.
    pub tid: i32,
    _pad: u32,
    /// The foreign stack's mapping (guard page included) and its top.
    pub foreign_map: usize,
    pub foreign_map_len: usize,
    pub foreign_base: usize,
    /// The tagged part of the Rust stack (0, 0 if none). Read by other
    /// threads (`contains_protected`).
    pub stack_lo: AtomicUsize,
    pub stack_hi: AtomicUsize,
    /// An alternate signal stack Cofferdam mapped for the thread (0 if the
    /// thread had its own).
    pub alt_map: usize,
    pub alt_map_len: usize,
    /// The thread's whole stack as it was at its first gate call: a stack
    /// pointer inside it identifies the thread without RDFSBASE (stacks of
    /// live threads do not overlap).
    pub id_lo: usize,
    pub id_hi: usize,
    /// The thread's Rust TLS pages, tagged with P (0, 0 if not). Read by
    /// other threads (`contains_protected`).
    pub tls_lo: AtomicUsize,
    pub tls_hi: AtomicUsize,
}

/// Whether stacks are tagged, and why not: written when the runtime starts
/// and when a thread's tagging fails.
static STACK_PROBLEM: AtomicUsize = AtomicUsize::new(0);
static STACK_PROBLEMS: [&str; 6] = [
    "",
    "not the mpk backend",
    "disabled by COFFERDAM_STACK_PROTECT=off",
    "the kernel refused pkey_mprotect on a thread stack",
    "a thread's stack bounds could not be determined",
    "glibc's static TLS size is unknown (_dl_get_tls_static_info missing)",
];

/// One past the highest entry ever claimed: `contains_protected` looks no
/// further.
static HIGH: AtomicUsize = AtomicUsize::new(0);

fn note_problem(i: usize) {
    STACK_PROBLEM.store(i, Ordering::Relaxed);
}

/// Why Rust stacks are not (all) tagged, or `None` if they are.
pub(crate) fn stack_problem() -> Option<&'static str> {
    match STACK_PROBLEM.load(Ordering::Relaxed) {
        0 => None,
        i => Some(STACK_PROBLEMS[i]),
    }
}

/// The state table, allocated once by the runtime before the gate is
/// configured: `(base, len)`. Tagged with `pkey` when there is one.
pub(crate) fn reserve_table(pkey: Option<u32>, extra: usize) -> (usize, usize) {
    let len = MAX_THREADS * STATE_SIZE;
    let total = len + extra;
    let base = match sys::map_anon(total, libc::PROT_READ | libc::PROT_WRITE) {
        Ok(p) => p as usize,
        Err(_) => {
            sys::write_stderr(b"cofferdam: cannot map the thread-state table\n");
            std::process::abort();
        }
    };
    if let Some(k) = pkey {
        // SAFETY: the range is the mapping just made, used for nothing else.
        if unsafe {
            sys::pkey_mprotect(
                base as *mut c_void,
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                k,
            )
        }
        .is_err()
        {
            sys::write_stderr(b"cofferdam: cannot tag the thread-state table\n");
            std::process::abort();
        }
    }
    (base, len)
}

/// Decides at start-up whether stacks will be tagged.
pub(crate) fn stacks_enabled(pkey: Option<u32>) -> bool {
    if pkey.is_none() {
        note_problem(1);
        return false;
    }
    if sys::getenv_bytes(c"COFFERDAM_STACK_PROTECT") == Some(b"off") {
        note_problem(2);
        return false;
    }
    true
}

fn table() -> (usize, usize) {
    let c = config::get();
    (c.state_base, c.state_len)
}

/// Whether `p` names an entry of the table owned by this thread.
#[inline(always)]
fn check(p: usize) -> bool {
    let c = config::get();
    let off = p.wrapping_sub(c.state_base);
    if off >= c.state_len || off % STATE_SIZE != 0 {
        return false;
    }
    let st = p as *const ThreadState;
    // The cheap proof of ownership first: this stack pointer lies in the
    // entry's stack. (An entry is written only by its owner and, on the mpk
    // backend, not at all by foreign code; another thread's entry names
    // another stack.)
    let sp = &off as *const usize as usize;
    // SAFETY: p is an entry of the mapped table (checked above).
    let (lo, hi) = unsafe { ((*st).id_lo, (*st).id_hi) };
    if lo < sp && sp < hi {
        return true;
    }
    // SAFETY: as above.
    let owner = unsafe { (*st).fs_base.load(Ordering::Relaxed) };
    owner != 0 && owner == asm::fs_base(c.fsgsbase != 0)
}

/// This thread's state if it has one, checked.
#[inline]
pub(crate) fn existing() -> Option<*mut ThreadState> {
    let p = asm::tls_state();
    if p == 0 {
        return None;
    }
    if !check(p) {
        tampered();
    }
    Some(p as *mut ThreadState)
}

#[cold]
fn tampered() -> ! {
    sys::write_stderr(
        b"cofferdam: this thread's state pointer does not name its own state: \
          TLS was overwritten (foreign code?); stopping\n",
    );
    std::process::abort();
}

/// This thread's state, created at its first gate call.
#[inline(always)]
pub(crate) fn current() -> Result<*mut ThreadState, &'static str> {
    match existing() {
        Some(p) => Ok(p),
        None => enter(),
    }
}

/// The state of the thread the signal handler runs on, checked also by
/// thread id (a system call is fine here).
pub(crate) fn for_signal_handler() -> Option<*mut ThreadState> {
    let p = asm::tls_state();
    if p == 0 {
        return None;
    }
    let c = config::get();
    let off = p.wrapping_sub(c.state_base);
    if off >= c.state_len || off % STATE_SIZE != 0 {
        return None;
    }
    let st = p as *mut ThreadState;
    // SAFETY: an entry of the mapped table.
    let ok = unsafe { (*st).fs_base.load(Ordering::Relaxed) != 0 && (*st).tid == sys::gettid() };
    ok.then_some(st)
}

#[cold]
fn enter() -> Result<*mut ThreadState, &'static str> {
    let c = config::get();
    if c.state_len == 0 {
        return Err("the runtime has no thread-state table");
    }
    let fs = asm::fs_base(c.fsgsbase != 0);
    let (base, len) = table();
    let mut st: *mut ThreadState = ptr::null_mut();
    for i in 0..len / STATE_SIZE {
        let e = (base + i * STATE_SIZE) as *mut ThreadState;
        // SAFETY: an entry of the mapped table; claimed with a CAS.
        if unsafe { &(*e).fs_base }
            .compare_exchange(0, fs, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            st = e;
            HIGH.fetch_max(i + 1, Ordering::AcqRel);
            break;
        }
    }
    if st.is_null() {
        return Err("more threads make gate calls than the state table holds (4096)");
    }
    let page = sys::page_size();
    let size = (c.foreign_stack + page - 1) & !(page - 1);
    // [guard][stack][guard]: an overrun either way faults.
    let map = match sys::map_anon(size + 2 * page, libc::PROT_READ | libc::PROT_WRITE) {
        Ok(m) => m as usize,
        Err(_) => {
            // SAFETY: our entry; give it back.
            unsafe { (*st).fs_base.store(0, Ordering::Release) };
            return Err("cannot map a foreign stack for this thread");
        }
    };
    // SAFETY: the lowest and highest pages of the mapping just made become
    // the guards.
    unsafe {
        let _ = sys::mprotect(map as *mut c_void, page, libc::PROT_NONE);
        let _ = sys::mprotect((map + page + size) as *mut c_void, page, libc::PROT_NONE);
    }
    // SAFETY: the entry is ours (claimed above); nothing else writes it.
    unsafe {
        (*st).current = ptr::null_mut();
        (*st).call_seq = 0;
        (*st).tid = sys::gettid();
        (*st).foreign_map = map;
        (*st).foreign_map_len = size + 2 * page;
        (*st).foreign_base = map + page + size;
        (*st).foreign_top = map + page + size;
        (*st).alt_map = 0;
        (*st).alt_map_len = 0;
        (*st).stack_lo.store(0, Ordering::Relaxed);
        (*st).stack_hi.store(0, Ordering::Relaxed);
        (*st).id_lo = 0;
        (*st).id_hi = 0;
        (*st).tls_lo.store(0, Ordering::Relaxed);
        (*st).tls_hi.store(0, Ordering::Relaxed);
    }
    // The thread's stack, for the cheap ownership check (if it cannot be
    // determined, every check reads the FS base).
    let here = &fs as *const u64 as usize;
    let whole = if sys::gettid() == sys::getpid() {
        sys::mapping_containing(here)
    } else {
        sys::pthread_stack()
    };
    if let Some((lo, hi)) = whole.filter(|&(lo, hi)| lo < here && here < hi) {
        // SAFETY: our entry.
        unsafe {
            (*st).id_lo = lo;
            (*st).id_hi = hi;
        }
    }
    asm::set_tls_state(st as usize);
    // SAFETY: our entry.
    unsafe { ensure_alt_stack(&mut *st) };
    if c.tag_stacks != 0 {
        // SAFETY: our entry.
        unsafe { tag_stack(&mut *st, c.pkey) };
    }
    if c.deny_mask != 0 {
        // SAFETY: our entry.
        unsafe { tag_tls(&mut *st, c.pkey) };
    }
    // Undo it all when the thread exits (if TLS destructors can still be
    // registered: not during the thread's own teardown).
    let _ = EXIT.try_with(|_| ());
    Ok(st)
}

/// Gives the thread an alternate signal stack if it has none.
fn ensure_alt_stack(st: &mut ThreadState) {
    // SAFETY: a zeroed stack_t is a valid out-parameter.
    let mut old: libc::stack_t = unsafe { core::mem::zeroed() };
    // SAFETY: query only.
    if unsafe { libc::sigaltstack(ptr::null(), &mut old) } != 0 {
        return;
    }
    if old.ss_flags & libc::SS_DISABLE == 0 && old.ss_size >= ALT_STACK {
        // The thread has a large enough one: make it auto-disarming, as
        // ours are. (The standard library's are a few KiB: a handler that
        // makes gate calls needs more; those get replaced below, and the
        // standard library still unmaps its own at thread exit.)
        if old.ss_flags & SS_AUTODISARM == 0 {
            let ss = libc::stack_t {
                ss_sp: old.ss_sp,
                ss_flags: SS_AUTODISARM,
                ss_size: old.ss_size,
            };
            // SAFETY: re-registers the same stack with one more flag; we are
            // not running on it (this is not a signal handler).
            unsafe { libc::sigaltstack(&ss, ptr::null_mut()) };
        }
        return;
    }
    let page = sys::page_size();
    let Ok(map) = sys::map_anon(ALT_STACK + page, libc::PROT_READ | libc::PROT_WRITE) else {
        return;
    };
    // SAFETY: the lowest page of the fresh mapping becomes a guard.
    let _ = unsafe { sys::mprotect(map.cast(), page, libc::PROT_NONE) };
    let ss = libc::stack_t {
        // SAFETY: inside the mapping just made.
        ss_sp: unsafe { map.add(page) }.cast(),
        ss_flags: SS_AUTODISARM,
        ss_size: ALT_STACK,
    };
    // SAFETY: ss describes memory this thread owns until it exits.
    if unsafe { libc::sigaltstack(&ss, ptr::null_mut()) } == 0 {
        st.alt_map = map as usize;
        st.alt_map_len = ALT_STACK + page;
    } else {
        // SAFETY: not installed; nothing refers to it.
        unsafe { sys::unmap(map, ALT_STACK + page) };
    }
}

/// The part of this thread's Rust stack to tag: `[lo, hi)`.
fn rust_stack_range(fs: u64) -> Result<(usize, usize), usize> {
    let page = sys::page_size();
    let here = &fs as *const u64 as usize;
    if sys::gettid() == sys::getpid() {
        // The main thread: its mapping, up to the page below where the
        // kernel put argc (start-up data above).
        let (lo, hi) = sys::mapping_containing(here).ok_or(4usize)?;
        let start = sys::start_stack().ok_or(4usize)?;
        let top = (start & !(page - 1)).min(hi);
        if !(lo < here && here < top) {
            return Err(4);
        }
        Ok((lo, top))
    } else {
        let (lo, hi) = sys::pthread_stack().ok_or(4usize)?;
        let limit = sys::stack_top_below_tls(fs as usize).ok_or(5usize)?;
        let top = hi.min(limit) & !(page - 1);
        if !(lo < here && here < top) {
            return Err(4);
        }
        Ok((lo, top))
    }
}

fn tag_stack(st: &mut ThreadState, pkey: u32) {
    let fs = st.fs_base.load(Ordering::Relaxed);
    match rust_stack_range(fs) {
        Ok((lo, hi)) => {
            // SAFETY: [lo, hi) is this thread's own stack below its TLS and
            // start-up data; tagging changes who may access it, not what it
            // holds, and this thread keeps the rights (PKRU allows P here).
            let r = unsafe {
                sys::pkey_mprotect(
                    lo as *mut c_void,
                    hi - lo,
                    libc::PROT_READ | libc::PROT_WRITE,
                    pkey,
                )
            };
            if r.is_ok() {
                st.stack_lo.store(lo, Ordering::Relaxed);
                st.stack_hi.store(hi, Ordering::Release);
            } else {
                note_problem(3);
            }
        }
        Err(i) => note_problem(i),
    }
}

/// Tags this thread's Rust thread-locals (the pages `crate::statics` found
/// below the thread pointer) with P.
fn tag_tls(st: &mut ThreadState, pkey: u32) {
    let fs = st.fs_base.load(Ordering::Relaxed) as usize;
    let Some((lo, hi)) = crate::statics::tls_range(fs) else {
        return;
    };
    // The range lies below the thread pointer (the TCB, with the canary at
    // fs:0x28, starts at it): checked again here, cheaply.
    // The thread pointer must be page-aligned (glibc aligns it to the TLS
    // segment's alignment, a page with the layout), or the pages would hold
    // more than Rust's thread-locals.
    let page = sys::page_size();
    if hi > fs || lo >= hi || lo % page != 0 || hi % page != 0 {
        crate::statics::note_tls_failure();
        return;
    }
    // SAFETY: [lo, hi) are this thread's own Rust TLS pages, page-aligned
    // and holding nothing but Rust's thread-locals (the layout pads them to
    // whole pages; `statics::tls_offsets` checked it); tagging changes who
    // may access them, not what they hold, and this thread has P's rights.
    if unsafe { retag_trusted(lo, hi - lo, pkey) } {
        st.tls_lo.store(lo, Ordering::Relaxed);
        st.tls_hi.store(hi, Ordering::Release);
    } else {
        crate::statics::note_tls_failure();
    }
}

/// `pkey_mprotect(addr, len, PROT_READ | PROT_WRITE, key)` from trusted
/// code, issued with the syscall guard's token (read from protected memory
/// into the sixth argument register only, `gate/syscall.rs`), so that the
/// guard lets it through without a SIGSYS trap and re-issue: two of these
/// per thread (tag at the first call, untag at exit) stay cheap. Without a
/// guard the token word is 0 and the kernel ignores the sixth argument.
///
/// # Safety
/// As for `sys::pkey_mprotect`: the caller owns the pages.
unsafe fn retag_trusted(addr: usize, len: usize, key: u32) -> bool {
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    match crate::alloc::state_area() {
        // SAFETY: the token's home is the state area's first word, readable
        // with the rights trusted code runs with; the syscall is the one
        // the caller is entitled to (caller's contract).
        Some(tok) => unsafe {
            super::syscall::syscall_with_token(
                libc::SYS_pkey_mprotect,
                [addr as u64, len as u64, prot, key as u64, 0],
                tok as *const u64,
            ) == 0
        },
        // SAFETY: forwarded contract.
        None => unsafe { sys::pkey_mprotect(addr as *mut c_void, len, prot as i32, key) }.is_ok(),
    }
}

struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        leave();
    }
}

thread_local! {
    static EXIT: ExitGuard = const { ExitGuard };
}

/// Thread exit: untag the stack, remove the alternate stack Cofferdam gave,
/// unmap the foreign stack, free the entry.
fn leave() {
    let Some(st) = existing() else { return };
    // SAFETY: our own checked entry.
    let st = unsafe { &mut *st };
    if !st.current.is_null() {
        return; // a gate call is somehow still open: leave everything
    }
    let (lo, hi) = (
        st.stack_lo.load(Ordering::Relaxed),
        st.stack_hi.load(Ordering::Relaxed),
    );
    if hi > lo {
        // SAFETY: the range this thread tagged; key 0 gives it back to
        // whoever reuses the stack.
        let _ = unsafe {
            sys::pkey_mprotect(
                lo as *mut c_void,
                hi - lo,
                libc::PROT_READ | libc::PROT_WRITE,
                0,
            )
        };
        st.stack_hi.store(0, Ordering::Release);
        st.stack_lo.store(0, Ordering::Relaxed);
    }
    if st.alt_map != 0 {
        let ss = libc::stack_t {
            ss_sp: ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: disables the alternate stack (we are not running on it:
        // TLS destructors run on the thread's own stack), then unmaps it.
        unsafe {
            if libc::sigaltstack(&ss, ptr::null_mut()) == 0 {
                sys::unmap(st.alt_map as *mut u8, st.alt_map_len);
            }
        }
        st.alt_map = 0;
    }
    // SAFETY: the foreign stack is unused: no gate call is open.
    unsafe { sys::unmap(st.foreign_map as *mut u8, st.foreign_map_len) };
    st.foreign_map = 0;
    st.id_lo = 0;
    st.id_hi = 0;
    asm::set_tls_state(0);
    // The Rust TLS pages back to key 0, after the last write to our TLS
    // slot above (glibc reuses the block for the next thread on this stack).
    let (lo, hi) = (
        st.tls_lo.load(Ordering::Relaxed),
        st.tls_hi.load(Ordering::Relaxed),
    );
    if hi > lo {
        // SAFETY: the range this thread tagged in `tag_tls`.
        let _ = unsafe { retag_trusted(lo, hi - lo, 0) };
        st.tls_hi.store(0, Ordering::Release);
        st.tls_lo.store(0, Ordering::Relaxed);
    }
    st.fs_base.store(0, Ordering::Release);
}

/// Whether `[addr, addr + len)` touches memory foreign code must not be
/// pointed at: the protected heap, a tagged Rust stack of any thread, the
/// state table or the callback slots.
#[inline]
pub(crate) fn contains_protected(addr: usize, len: usize) -> bool {
    let len = len.max(1);
    let Some(end) = addr.checked_add(len) else {
        return true;
    };
    if crate::alloc::overlaps_protected(addr, end) || crate::statics::overlaps(addr, end) {
        return true;
    }
    let c = config::get();
    let ctl_end = c.state_base + c.state_len + c.nslots * crate::callback::SLOT_SIZE;
    if c.state_len != 0 && addr < ctl_end && end > c.state_base {
        return true;
    }
    let base = c.state_base;
    let high = HIGH.load(Ordering::Acquire).min(c.state_len / STATE_SIZE);
    for i in 0..high {
        let e = (base + i * STATE_SIZE) as *const ThreadState;
        // SAFETY: entries of the mapped table; the range is read atomically
        // (a thread exiting concurrently may make it stale, never invalid).
        let (lo, hi) = unsafe {
            (
                (*e).stack_lo.load(Ordering::Relaxed),
                (*e).stack_hi.load(Ordering::Acquire),
            )
        };
        if hi > lo && addr < hi && end > lo {
            return true;
        }
        // SAFETY: as above, for the thread's tagged TLS pages.
        let (lo, hi) = unsafe {
            (
                (*e).tls_lo.load(Ordering::Relaxed),
                (*e).tls_hi.load(Ordering::Acquire),
            )
        };
        if hi > lo && addr < hi && end > lo {
            return true;
        }
    }
    false
}
