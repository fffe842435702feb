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
/// Each thread's alternate signal stack is a slot of `1 << ALT_SHIFT` bytes
/// (its lowest page a guard) in one arena, at the same index as its entry in
/// the state table: the signal entry finds the entry that owns a frame from
/// the frame's address alone (`asm.rs`).
pub(crate) const ALT_SHIFT: u32 = 17;
const ALT_SLOT: usize = 1 << ALT_SHIFT;

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
    /// Nonzero when another thread may have this thread's FS base: the
    /// gate's return path and the callback entry then compare `gettid`
    /// with `tid` too (`ident`). Read by `asm.rs`.
    pub verify_tid: core::sync::atomic::AtomicU32,
    /// The foreign stack's mapping (guard page included) and its top.
    pub foreign_map: usize,
    pub foreign_map_len: usize,
    pub foreign_base: usize,
    /// The tagged part of the Rust stack (0, 0 if none). Read by other
    /// threads (`is_protected`).
    pub stack_lo: AtomicUsize,
    pub stack_hi: AtomicUsize,
    /// 1 once the guard page of this entry's alternate-stack slot is in
    /// place (slots are reused with their entries; the guard stays).
    pub alt_guarded: u32,
    /// 1 while the slot is this thread's registered alternate stack.
    pub alt_armed: u32,
    /// The thread's whole stack as it was at its first gate call: a stack
    /// pointer inside it identifies the thread without RDFSBASE (stacks of
    /// live threads do not overlap).
    pub id_lo: usize,
    pub id_hi: usize,
    /// The thread's Rust TLS pages, tagged with P (0, 0 if not). Read by
    /// other threads (`is_protected`).
    pub tls_lo: AtomicUsize,
    pub tls_hi: AtomicUsize,
    /// The thread's alternate signal stack while it has state (0, 0 if
    /// none): a protected range for the syscall guard. Read by other threads.
    pub alt_lo: AtomicUsize,
    pub alt_hi: AtomicUsize,
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

/// One past the highest entry ever claimed: `is_protected` looks no
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

/// The arena of alternate signal stacks, one slot per state-table entry:
/// `(base, len)`. Tagged with `pkey` when `tag` (the kernel writes signal
/// frames onto tagged stacks: Linux 6.12 and later).
pub(crate) fn reserve_alt_arena(pkey: Option<u32>, tag: bool) -> (usize, usize) {
    let len = MAX_THREADS << ALT_SHIFT;
    let base = match sys::map_aligned(len, ALT_SLOT, libc::PROT_READ | libc::PROT_WRITE) {
        Ok(p) => p as usize,
        Err(_) => {
            sys::write_stderr(b"cofferdam: cannot map the alternate signal stacks\n");
            std::process::abort();
        }
    };
    if let (Some(k), true) = (pkey, tag) {
        // SAFETY: the range is the mapping just made, used for nothing else.
        if unsafe {
            sys::pkey_mprotect(
                base as *mut c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                k,
            )
        }
        .is_err()
        {
            sys::write_stderr(b"cofferdam: cannot tag the alternate signal stacks\n");
            std::process::abort();
        }
    }
    (base, len)
}

/// When the gate checks the kernel's thread id as well as the FS base.
///
/// The FS base names a thread only while no two threads share one. A thread
/// that foreign code makes can be given another thread's FS base
/// (`clone(CLONE_SETTLS)` with that thread's TLS; a vfork child shares its
/// parent's outright), and would then pass the gate's return path and the
/// callback entry as that thread: it could run an armed callback on the
/// other thread's Rust stack, or return through the other thread's gate call
/// while that thread still runs.
///
/// The supervisor sees every thread or vfork child made in this address
/// space (`guard::notify`). One made by foreign code (its maker is inside a
/// gate call, or a thread with no entry) is recorded here: a vfork child
/// marks its maker's entry; a thread's TLS is kept in a list on this
/// P-tagged page, and every live entry with that FS base is marked, as is
/// any thread that later starts using Cofferdam with it (`on_adopt`). A
/// marked entry's gate crossings back compare `gettid` with its `tid` (one
/// syscall each); every other thread's cost nothing more. Where the gate
/// cannot read the FS base (no FSGSBASE), where the list is full, where no
/// supervisor sees threads being made, or when asked, every entry is marked.
/// (Changing the FS base of a running thread needs `arch_prctl`, which the
/// syscall guard refuses, or WRFSBASE, which the code inspection refuses,
/// like WRPKRU.)
pub(crate) mod ident {
    /// The list of foreign-made TLS values is full, or the gate cannot
    /// read the FS base (no FSGSBASE): a foreign-made thread marks all.
    pub(crate) const FOREIGN_THREAD: u32 = 1;
    /// Threads are made without the supervisor seeing them (no listener).
    pub(crate) const UNSEEN: u32 = 2;
    /// `COFFERDAM_CHECK_THREAD_IDS=1`.
    pub(crate) const ASKED: u32 = 4;

    use super::{config, ThreadState, HIGH, STATE_SIZE};
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    const MAX_TLS: usize = 500;

    /// The identity page (P-tagged, next to the callback slots).
    #[repr(C)]
    struct Page {
        /// Why every entry is marked (0: only those that need it).
        all: AtomicU32,
        lock: AtomicU32,
        /// Entries of `tls` in use.
        count: AtomicU32,
        /// Threads foreign code made so far (seen by the supervisor).
        made: AtomicU32,
        /// FS bases given to threads that foreign code made.
        tls: [AtomicU64; MAX_TLS],
    }
    const _: () = assert!(core::mem::size_of::<Page>() <= 4096);

    fn page() -> Option<&'static Page> {
        let a = config::get().ident;
        // SAFETY: `ident` is 0 or the start of the zero-filled P-tagged page
        // the runtime mapped for it (with the state table), never unmapped;
        // `Page` is atomics only, for which all-zero is valid. Only trusted
        // code (which holds P's rights) calls this.
        (a != 0).then(|| unsafe { &*(a as *const Page) })
    }

    struct Held(&'static Page);
    impl Drop for Held {
        fn drop(&mut self) {
            self.0.lock.store(0, Ordering::Release);
        }
    }
    fn lock(p: &'static Page) -> Held {
        while p.lock.swap(1, Ordering::Acquire) != 0 {
            core::hint::spin_loop();
        }
        Held(p)
    }

    /// Every live entry `pred` picks is marked.
    fn mark_where(pred: impl Fn(&ThreadState) -> bool) {
        let c = config::get();
        let high = HIGH.load(Ordering::Acquire).min(c.state_len / STATE_SIZE);
        for i in 0..high {
            // SAFETY: entries of the mapped table (trusted caller, P held).
            let e = unsafe { &*((c.state_base + i * STATE_SIZE) as *const ThreadState) };
            if e.fs_base.load(Ordering::Acquire) != 0 && pred(e) {
                e.verify_tid.store(1, Ordering::SeqCst);
            }
        }
    }

    /// From now on every thread's crossings check thread ids, because of `why`.
    pub(crate) fn require(why: u32) {
        let Some(p) = page() else { return };
        let _g = lock(p);
        p.all.fetch_or(why, Ordering::SeqCst);
        mark_where(|_| true);
    }

    /// The supervisor saw foreign code make a thread (`settls`: with FS
    /// base `tls`) or a vfork child, from the thread `maker`.
    pub(crate) fn foreign_made(maker: i32, vfork: bool, settls: bool, tls: u64) {
        let Some(p) = page() else { return };
        let _g = lock(p);
        p.made.fetch_add(1, Ordering::Relaxed);
        if vfork {
            // The child runs with its maker's FS base (and stack).
            mark_where(|e| e.tid == maker);
        }
        if settls {
            if config::get().fsgsbase == 0 {
                // The gate finds the entry through the TLS slot alone, which
                // a thread with a TLS of foreign code's making can forge.
                p.all.fetch_or(FOREIGN_THREAD, Ordering::SeqCst);
                mark_where(|_| true);
                return;
            }
            let n = p.count.load(Ordering::Relaxed) as usize;
            if !(0..n).any(|i| p.tls[i].load(Ordering::Relaxed) == tls) {
                if n == MAX_TLS {
                    p.all.fetch_or(FOREIGN_THREAD, Ordering::SeqCst);
                    mark_where(|_| true);
                    return;
                }
                p.tls[n].store(tls, Ordering::Relaxed);
                p.count.store(n as u32 + 1, Ordering::Release);
            }
            mark_where(|e| e.fs_base.load(Ordering::Acquire) == tls);
        }
    }

    /// A thread has just claimed `st` with FS base `fs`: marked if every
    /// entry is, or if foreign code made a thread with that FS base.
    pub(crate) fn on_adopt(st: &ThreadState, fs: u64) {
        let Some(p) = page() else { return };
        let _g = lock(p);
        let n = p.count.load(Ordering::Acquire) as usize;
        let mark = p.all.load(Ordering::SeqCst) != 0
            || (0..n).any(|i| p.tls[i].load(Ordering::Relaxed) == fs);
        st.verify_tid.store(mark as u32, Ordering::SeqCst);
    }

    /// Marks this thread's entry (adopting the thread first).
    pub(crate) fn mark_this_thread() -> Result<(), &'static str> {
        let st = super::adopt()?;
        // SAFETY: this thread's own entry, just checked or claimed.
        unsafe { (*st).verify_tid.store(1, Ordering::SeqCst) };
        Ok(())
    }

    /// What `info` says.
    pub(crate) fn describe() -> String {
        let Some(p) = page() else {
            return "by FS base (no runtime)".into();
        };
        let r = p.all.load(Ordering::Acquire);
        if r != 0 {
            let mut why = Vec::new();
            if r & FOREIGN_THREAD != 0 {
                why.push("foreign code made a thread, and FS bases cannot all be followed");
            }
            if r & UNSEEN != 0 {
                why.push("threads are made unseen: no supervisor");
            }
            if r & ASKED != 0 {
                why.push("COFFERDAM_CHECK_THREAD_IDS=1");
            }
            return format!(
                "by FS base and kernel thread id on every thread ({})",
                why.join("; ")
            );
        }
        let c = config::get();
        let high = HIGH.load(Ordering::Acquire).min(c.state_len / STATE_SIZE);
        let marked = (0..high)
            .filter(|&i| {
                // SAFETY: entries of the mapped table (trusted caller).
                let e = unsafe { &*((c.state_base + i * STATE_SIZE) as *const ThreadState) };
                e.fs_base.load(Ordering::Acquire) != 0 && e.verify_tid.load(Ordering::Relaxed) != 0
            })
            .count();
        format!(
            "by FS base; also by kernel thread id on threads whose FS base a thread of foreign code's was given ({} such thread(s) now; {} thread(s) made by foreign code so far)",
            marked,
            p.made.load(Ordering::Relaxed)
        )
    }
}

/// Who a thread is to the supervisor: trusted code (an entry, not inside a
/// foreign call), foreign code (an entry inside a gate call, not running a
/// callback), or a thread with no entry (made by foreign code, or before
/// the runtime started).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runner {
    Trusted,
    Foreign,
    NoEntry,
}

/// What the thread `tid` runs now (the supervisor's question about a thread
/// that makes a thread). The caller is stopped in the kernel while this is
/// asked, so its entry does not change under the reader.
pub(crate) fn runner(tid: i32) -> Runner {
    let c = config::get();
    let high = HIGH.load(Ordering::Acquire).min(c.state_len / STATE_SIZE);
    for i in 0..high {
        let e = (c.state_base + i * STATE_SIZE) as *const ThreadState;
        // SAFETY: entries of the mapped table; fields read with volatile
        // loads (a stale value of another thread's entry only matters for a
        // thread that is not `tid`).
        unsafe {
            if (*e).fs_base.load(Ordering::Acquire) == 0
                || ptr::read_volatile(ptr::addr_of!((*e).tid)) != tid
            {
                continue;
            }
            let f = ptr::read_volatile(ptr::addr_of!((*e).current));
            return if !f.is_null() && ptr::read_volatile(ptr::addr_of!((*f).cb_active)) == 0 {
                Runner::Foreign
            } else {
                Runner::Trusted
            };
        }
    }
    Runner::NoEntry
}

/// Whether signal frames on the alternate stacks carry P (and so can only
/// have been written by the kernel or trusted code): the mpk backend on
/// Linux 6.12 or later. `COFFERDAM_TAGGED_ALTSTACKS=off` turns it off.
pub(crate) fn frames_can_be_tagged(pkey: Option<u32>) -> bool {
    pkey.is_some()
        && sys::kernel_at_least(6, 12)
        && sys::getenv_bytes(c"COFFERDAM_TAGGED_ALTSTACKS") != Some(b"off")
}

/// Why signal frames are not authenticated, or `None` where they are.
pub(crate) fn frames_problem() -> Option<&'static str> {
    let c = config::get();
    if c.deny_mask == 0 {
        Some("not the mpk backend (nothing is protected, so there is nothing to take rights to)")
    } else if c.frames_tagged == 0 {
        Some(
            if sys::getenv_bytes(c"COFFERDAM_TAGGED_ALTSTACKS") == Some(b"off") {
                "the alternate stacks are untagged (COFFERDAM_TAGGED_ALTSTACKS=off): foreign code in another thread could change a frame while its handler runs"
            } else {
                "Linux before 6.12 cannot write signal frames onto tagged alternate stacks: foreign code in another thread could change a frame while its handler runs"
            },
        )
    } else {
        None
    }
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

/// This thread's state with its foreign stack, created at its first gate
/// call.
#[inline(always)]
pub(crate) fn current() -> Result<*mut ThreadState, &'static str> {
    match existing() {
        // SAFETY: a checked entry of this thread.
        Some(p) if unsafe { (*p).foreign_map } != 0 => Ok(p),
        _ => enter(),
    }
}

/// The state of the thread the signal handler runs on, found through the TLS
/// slot and checked also by thread id (a system call is fine here). Only for
/// backends without MPK, where nothing is protected and the signal entry
/// does not authenticate frames; on mpk the entry passes the authenticated
/// state itself.
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

/// Gives this thread an entry in the state table and its alternate signal
/// stack (the arena slot of the same index), without a foreign stack yet.
/// Called when a thread that trusted code created starts (`pthread_create`
/// below), for the main thread when the runtime starts, and at a thread's
/// first gate call if it has no entry yet. Idempotent.
pub(crate) fn adopt() -> Result<*mut ThreadState, &'static str> {
    if let Some(p) = existing() {
        return Ok(p);
    }
    let c = config::get();
    if c.state_len == 0 {
        return Err("the runtime has no thread-state table");
    }
    let fs = asm::fs_base(c.fsgsbase != 0);
    let (base, len) = table();
    let mut st: *mut ThreadState = ptr::null_mut();
    let mut index = 0;
    for i in 0..len / STATE_SIZE {
        let e = (base + i * STATE_SIZE) as *mut ThreadState;
        // SAFETY: an entry of the mapped table; claimed with a CAS.
        if unsafe { &(*e).fs_base }
            .compare_exchange(0, fs, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            st = e;
            index = i;
            HIGH.fetch_max(i + 1, Ordering::AcqRel);
            break;
        }
    }
    if st.is_null() {
        return Err("more threads use Cofferdam than the state table holds (4096)");
    }
    // SAFETY: the entry is ours (claimed above); nothing else writes it.
    unsafe {
        (*st).current = ptr::null_mut();
        (*st).call_seq = 0;
        (*st).tid = sys::gettid();
        ident::on_adopt(&*st, fs);
        (*st).foreign_map = 0;
        (*st).foreign_map_len = 0;
        (*st).foreign_base = 0;
        (*st).foreign_top = 0;
        (*st).alt_armed = 0;
        (*st).stack_lo.store(0, Ordering::Relaxed);
        (*st).stack_hi.store(0, Ordering::Relaxed);
        (*st).id_lo = 0;
        (*st).id_hi = 0;
        (*st).tls_lo.store(0, Ordering::Relaxed);
        (*st).tls_hi.store(0, Ordering::Relaxed);
        (*st).alt_lo.store(0, Ordering::Relaxed);
        (*st).alt_hi.store(0, Ordering::Relaxed);
    }
    // The entry and the alternate stack first: finding the stack below makes
    // syscalls (`/proc/self/maps`, glibc's attribute query) that the guard
    // traps, and a trap on a thread without an armed entry is handled as a
    // foreign thread's, without P's rights (it would resume with P denied).
    asm::set_tls_state(st as usize);
    // SAFETY: our entry, at `index`.
    unsafe { arm_alt_stack(&mut *st, index) };
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
    // Undo it all when the thread exits (if TLS destructors can still be
    // registered: not during the thread's own teardown). The main thread
    // needs none: its exit ends the process.
    if sys::gettid() != sys::getpid() {
        let _ = EXIT.try_with(|_| ());
    }
    Ok(st)
}

/// In the child of a `fork` (registered with `pthread_atfork`): the one
/// thread there is the one that forked, and its state now belongs to a new
/// thread id.
pub(crate) extern "C" fn after_fork_in_child() {
    crate::guard::after_fork_in_child();
    if let Some(st) = existing() {
        // SAFETY: this thread's checked entry, which only it writes.
        unsafe { (*st).tid = sys::gettid() };
    }
}

/// The rest of a thread's first gate call: its foreign stack, and the
/// tagging of its Rust stack.
#[cold]
fn enter() -> Result<*mut ThreadState, &'static str> {
    let st = adopt()?;
    let c = config::get();
    let page = sys::page_size();
    let size = (c.foreign_stack + page - 1) & !(page - 1);
    // [guard][stack][guard]: an overrun either way faults.
    let map = match sys::map_anon(size + 2 * page, libc::PROT_READ | libc::PROT_WRITE) {
        Ok(m) => m as usize,
        Err(_) => return Err("cannot map a foreign stack for this thread"),
    };
    // SAFETY: the lowest and highest pages of the mapping just made become
    // the guards.
    unsafe {
        let _ = sys::mprotect(map as *mut c_void, page, libc::PROT_NONE);
        let _ = sys::mprotect((map + page + size) as *mut c_void, page, libc::PROT_NONE);
    }
    // SAFETY: our own checked entry; only this thread writes these fields.
    unsafe {
        (*st).foreign_map = map;
        (*st).foreign_map_len = size + 2 * page;
        (*st).foreign_base = map + page + size;
        (*st).foreign_top = map + page + size;
    }
    // glibc's rseq registration would let foreign code that writes this
    // thread's rseq area (TLS) send it to an abort handler of its choice
    // with P's rights, at a preemption after a gate call returned.
    crate::guard::unregister_rseq();
    if c.tag_stacks != 0 {
        // SAFETY: our entry.
        unsafe { tag_stack(&mut *st, c.pkey) };
    }
    if c.deny_mask != 0 {
        // SAFETY: our entry.
        unsafe { tag_tls(&mut *st, c.pkey) };
    }
    Ok(st)
}

/// The slot of entry `index` in the alternate-stack arena: `(lo, hi)`, the
/// guard page excluded.
fn alt_slot(index: usize) -> (usize, usize) {
    let c = config::get();
    let lo = c.alt_base + (index << ALT_SHIFT);
    (lo + sys::page_size(), lo + ALT_SLOT)
}

/// Registers the thread's slot as its alternate signal stack, in place of
/// any it had: every handler Cofferdam installs runs there (`SA_ONSTACK`),
/// which is where the signal entry requires a frame to be. Alternate stacks
/// are `SS_AUTODISARM` (see the constant).
///
/// # Safety
/// `st` is this thread's own entry, at `index` in the table.
unsafe fn arm_alt_stack(st: &mut ThreadState, index: usize) {
    let c = config::get();
    if c.alt_len == 0 {
        return;
    }
    let page = sys::page_size();
    let (lo, hi) = alt_slot(index);
    // Both calls are made with the syscall guard's token where it is on:
    // the thread has no alternate stack yet, so a trap here would be
    // handled as a stateless thread's (without rights, refused).
    let tok = crate::guard::sigreturn_token();
    if st.alt_guarded == 0 {
        // SAFETY: the lowest page of this entry's slot, which only the
        // entry's owner uses; `tok` is null or the token (rights held).
        let _ = unsafe {
            sys::trusted_syscall(
                libc::SYS_mprotect,
                [
                    (lo - page) as u64,
                    page as u64,
                    libc::PROT_NONE as u64,
                    0,
                    0,
                ],
                tok,
            )
        };
        st.alt_guarded = 1;
    }
    let ss = libc::stack_t {
        ss_sp: lo as *mut c_void,
        ss_flags: SS_AUTODISARM,
        ss_size: hi - lo,
    };
    // SAFETY: the slot is this thread's for as long as it owns the entry;
    // this is not a signal handler, so the thread is not running on its
    // current alternate stack (if it had one, the standard library's, that
    // one is replaced here and still unmapped by its owner at thread exit).
    if unsafe {
        sys::trusted_syscall(
            libc::SYS_sigaltstack,
            [&ss as *const libc::stack_t as u64, 0, 0, 0, 0],
            tok,
        )
    } == 0
    {
        st.alt_armed = 1;
        st.alt_lo.store(lo, Ordering::Relaxed);
        st.alt_hi.store(hi, Ordering::Release);
    }
}

/// This thread's alternate-stack slot `(lo, hi)`, if armed: a signal
/// handler that may make gate calls re-arms the part below its own frames
/// (`fault`), so that nested frames land there too.
pub(crate) fn alt_stack_of(st: *const ThreadState) -> Option<(usize, usize)> {
    let c = config::get();
    // SAFETY: st is an entry of the table (the caller's: an authenticated or
    // checked state).
    if c.alt_len == 0 || unsafe { (*st).alt_armed } == 0 {
        return None;
    }
    Some(alt_slot((st as usize - c.state_base) / STATE_SIZE))
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
            if unsafe { retag_trusted(lo, hi - lo, pkey) } {
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
/// per thread (tag at the first call, untag at exit) stay cheap. Without the
/// guard it is a plain system call (`sys::trusted_syscall`).
///
/// # Safety
/// As for `sys::pkey_mprotect`: the caller owns the pages.
unsafe fn retag_trusted(addr: usize, len: usize, key: u32) -> bool {
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    // SAFETY: forwarded contract; the token (or null without the guard) is
    // readable with the rights trusted code runs with.
    unsafe {
        sys::trusted_syscall(
            libc::SYS_pkey_mprotect,
            [addr as u64, len as u64, prot, key as u64, 0],
            crate::guard::sigreturn_token(),
        ) == 0
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

/// Thread exit: untag the stack, disarm the alternate stack, unmap the
/// foreign stack, free the entry.
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
        let _ = unsafe { retag_trusted(lo, hi - lo, 0) };
        st.stack_hi.store(0, Ordering::Release);
        st.stack_lo.store(0, Ordering::Relaxed);
    }
    if st.foreign_map != 0 {
        // SAFETY: the foreign stack is unused: no gate call is open.
        unsafe { sys::unmap(st.foreign_map as *mut u8, st.foreign_map_len) };
        st.foreign_map = 0;
        st.foreign_top = 0;
    }
    st.alt_hi.store(0, Ordering::Release);
    st.alt_lo.store(0, Ordering::Relaxed);
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
    // The alternate stack last: until here every trapped system call above
    // is framed on it and handled with rights (authenticated); after it, the
    // thread's last calls (glibc's teardown) are handled as a stateless
    // thread's.
    if st.alt_armed != 0 {
        let ss = libc::stack_t {
            ss_sp: ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: disables the alternate stack (we are not running on it:
        // TLS destructors run on the thread's own stack). The slot stays
        // mapped for the entry's next owner.
        unsafe { sys::real_sigaltstack(&ss, ptr::null_mut()) };
        st.alt_armed = 0;
    }
    st.fs_base.store(0, Ordering::Release);
}

/// What a thread started through the interposed `pthread_create` runs first.
struct Start {
    routine: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
}

extern "C" fn adopted_start(p: *mut c_void) -> *mut c_void {
    // SAFETY: `p` is the `Start` that `pthread_create` below boxed for this
    // thread and handed to no one else.
    let start = unsafe { Box::from_raw(p.cast::<Start>()) };
    // A thread of trusted code gets its entry and its alternate stack before
    // it runs anything: its signal frames can then be authenticated
    // (`asm.rs`). If the table is full it runs without (its signals are then
    // handled as a foreign thread's, without rights).
    let _ = adopt();
    (start.routine)(start.arg)
}

type PthreadCreate = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    extern "C" fn(*mut c_void) -> *mut c_void,
    *mut c_void,
) -> libc::c_int;

/// glibc's `pthread_create`.
fn lookup_pthread_create() -> Option<PthreadCreate> {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name.
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"pthread_create".as_ptr()) } as usize;
    // SAFETY: the symbol is glibc's pthread_create, whose type is
    // `PthreadCreate`.
    (f != 0).then(|| unsafe { core::mem::transmute::<usize, PthreadCreate>(f) })
}

/// glibc's `pthread_create`, looked up once (for trusted callers: the cache
/// is a Rust static).
fn real_pthread_create() -> Option<PthreadCreate> {
    static REAL: AtomicUsize = AtomicUsize::new(0);
    let f = REAL.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: stored below from a `PthreadCreate`.
        return Some(unsafe { core::mem::transmute::<usize, PthreadCreate>(f) });
    }
    let real = lookup_pthread_create()?;
    REAL.store(real as usize, Ordering::Release);
    Some(real)
}

/// Cofferdam's `pthread_create`, shadowing glibc's in the executable (as
/// `sigaction` is, `fault/signals.rs`): a thread that trusted code starts
/// is adopted (state entry, alternate stack) before its start routine runs.
/// A thread that foreign code starts is left alone: it has no entry, so no
/// signal on it is ever handled with P's rights.
///
/// # Safety
/// As for `pthread_create(3)`.
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    routine: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> libc::c_int {
    let c = config::get();
    if c.alt_len == 0 || super::foreign_running() {
        // Foreign code (or no arena): straight through, touching nothing
        // that foreign code cannot read.
        let Some(real) = lookup_pthread_create() else {
            return libc::EAGAIN;
        };
        // glibc's bookkeeping of the new thread (its DTV, kept with the
        // stack glibc caches and reuses for later threads, trusted ones
        // too) goes to the C library's heap, not the caller's compartment
        // heap, which may be quarantined and discarded while glibc still
        // uses it (crate::heap). The word is C state: no Rust static read.
        let prev = crate::heap::enter(0);
        // SAFETY: forwarded contract.
        let r = unsafe { real(thread, attr, routine, arg) };
        crate::heap::leave(prev);
        return r;
    }
    let Some(real) = real_pthread_create() else {
        return libc::EAGAIN;
    };
    let start = Box::into_raw(Box::new(Start { routine, arg }));
    // As above: the new thread's bookkeeping in the C library's heap.
    let prev = crate::heap::enter(0);
    // SAFETY: forwarded contract; `adopted_start` takes ownership of `start`
    // in the new thread.
    let r = unsafe { real(thread, attr, adopted_start, start.cast()) };
    crate::heap::leave(prev);
    if r != 0 {
        // SAFETY: the thread was not created: `start` is still ours.
        drop(unsafe { Box::from_raw(start) });
    }
    r
}

/// Cofferdam's `sigaltstack`, shadowing glibc's in the executable. A thread
/// that has its alternate-stack slot keeps it: the signal entry only
/// authenticates frames there. So a trusted caller's new stack is accepted
/// and not installed (the standard library, which installs one for its
/// stack-overflow report when it finds none and removes it at thread exit,
/// finds Cofferdam's and leaves it alone); a query reports the slot.
/// Foreign code may query but not change it (`EPERM`). Threads without a
/// slot pass straight through.
///
/// # Safety
/// As for `sigaltstack(2)`.
#[no_mangle]
pub unsafe extern "C" fn sigaltstack(
    ss: *const libc::stack_t,
    old: *mut libc::stack_t,
) -> libc::c_int {
    let c = config::get();
    if c.alt_len != 0 {
        if super::foreign_running() {
            if !ss.is_null() {
                // SAFETY: errno is thread-local.
                unsafe { *libc::__errno_location() = libc::EPERM };
                return -1;
            }
        } else if let Some(st) = existing() {
            // SAFETY: this thread's checked entry.
            if unsafe { (*st).alt_armed } != 0 && !ss.is_null() {
                if !old.is_null() {
                    // SAFETY: forwarded contract (query only).
                    return unsafe { sys::real_sigaltstack(ptr::null(), old) };
                }
                return 0;
            }
        }
    }
    // SAFETY: forwarded contract.
    unsafe { sys::real_sigaltstack(ss, old) }
}

/// The one answer to "is this protected?": whether `[addr, addr + len)`
/// touches memory foreign code must never be pointed at — the protected
/// reservation (the Rust heap and Cofferdam's state area), the state table
/// and the callback slots, the alternate signal stacks, the signal table, a
/// tagged Rust stack of any thread. A range that wraps around counts as
/// protected. Used by return validation, `read_foreign`, callbacks'
/// argument checks and foreign memory's constructors alike.
#[inline]
pub fn is_protected(addr: usize, len: usize) -> bool {
    let len = len.max(1);
    let Some(end) = addr.checked_add(len) else {
        return true;
    };
    if crate::alloc::overlaps_protected(addr, end) || crate::statics::overlaps(addr, end) {
        return true;
    }
    let c = config::get();
    let ctl_end = c.control_end();
    if c.state_len != 0 && addr < ctl_end && end > c.state_base {
        return true;
    }
    if c.alt_len != 0 && addr < c.alt_base + c.alt_len && end > c.alt_base {
        return true;
    }
    let (t, tl) = crate::fault::table_page();
    if addr < t + tl && end > t {
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

/// Whether `[addr, addr + len)` meets the alternate signal stack of a thread
/// that has state (the syscall guard keeps foreign code from remapping them).
pub(crate) fn touches_alt_stack(addr: usize, len: usize) -> bool {
    let Some(end) = addr.checked_add(len.max(1)) else {
        return true;
    };
    let c = config::get();
    let high = HIGH.load(Ordering::Acquire).min(c.state_len / STATE_SIZE);
    (0..high).any(|i| {
        let e = (c.state_base + i * STATE_SIZE) as *const ThreadState;
        // SAFETY: entries of the mapped table, read atomically.
        let (lo, hi) = unsafe {
            (
                (*e).alt_lo.load(Ordering::Relaxed),
                (*e).alt_hi.load(Ordering::Acquire),
            )
        };
        hi > lo && addr < hi && end > lo
    })
}

/// This thread's thread pointer (FS base), read the way the gate reads it.
pub(crate) fn thread_pointer() -> usize {
    asm::fs_base(config::get().fsgsbase != 0) as usize
}
