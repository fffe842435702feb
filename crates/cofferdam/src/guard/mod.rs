//! Foreign code cannot grant itself rights: the syscall guard and the
//! inspection of foreign code.
//!
//! * [`policy`]: the syscall allowlist. While foreign code runs, every call
//!   off the list is refused; calls that need a look at their arguments are
//!   trapped and decided by the handler ([`check`]).
//! * [`bpf`]: the seccomp-BPF filter built from the list, installed
//!   process-wide (TSYNC, after `PR_SET_NO_NEW_PRIVS`) at the first
//!   [`crate::Compartment::new`] or [`crate::Compartment::load`] on the mpk
//!   backend. It cannot see PKRU, so trusted code's calls pass through it
//!   too: listed calls run directly, the rest trap.
//! * [`on_sigsys`]: the trap handler (reached through the fault module's
//!   signal entry, so it runs with P's rights). A trapped call is *trusted*
//!   when the interrupted context had P's rights (PKRU from the signal
//!   frame; on the split backend: when the thread is not inside a gate). A
//!   trusted call is re-issued with the guard's token in an argument the
//!   filter checks; the token lives in the P-protected state area and in
//!   registers only. A foreign call is checked ([`check::foreign`]) and
//!   re-issued, or refused: inside a gate that ends the gate call with
//!   `Err(Fault)` of kind [`crate::FaultKind::Syscall`]; outside any gate (a
//!   thread foreign code started) it fails with `EPERM`.
//! * [`inspect`]: `pkey_set` in libc is neutralised before the filter is
//!   installed; objects that foreign functions live in are scanned for
//!   WRPKRU/XRSTOR/XRSTORS at their first call; `Compartment::load` scans a
//!   library before `dlopen`.
//!
//! `COFFERDAM_SYSCALL_GUARD=off` turns the filter off (and `on` forces it on
//! the split backend too, where it protects nothing but can be tested).

pub(crate) mod bpf;
mod check;
pub(crate) mod inspect;
mod notify;
pub(crate) mod policy;
pub(crate) mod scope;

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::Error;
use crate::gate::{self, FaultRecord};
use crate::state::{self, Backend};
use crate::sys;

/// In a forked child (from the `pthread_atfork` handler).
pub(crate) fn after_fork_in_child() {
    notify::after_fork_in_child();
}

/// The filter was installed under another process's listener (`install`).
static NESTED: AtomicBool = AtomicBool::new(false);

/// Whether the filter is installed (read by the SIGSYS handler).
static ON: AtomicBool = AtomicBool::new(false);
/// Whether foreign objects are inspected at first call (hot path).
pub(crate) static INSPECT: AtomicBool = AtomicBool::new(false);
/// Syscalls refused so far (for `info` and tests).
static REFUSED: AtomicUsize = AtomicUsize::new(0);
/// Trusted syscalls the handler re-issued.
static REISSUED: AtomicUsize = AtomicUsize::new(0);
/// Foreign syscalls the handler checked and re-issued.
static CHECKED: AtomicUsize = AtomicUsize::new(0);

/// Changes to the default syscall list, for the whole process (there is one
/// filter): see [`crate::Compartment::with_syscalls`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallPolicy {
    allow: Vec<u32>,
    deny: Vec<u32>,
}

impl SyscallPolicy {
    /// The default list.
    pub fn new() -> SyscallPolicy {
        SyscallPolicy::default()
    }

    /// Lets foreign code also make syscall `nr` (x86_64 number, e.g.
    /// `libc::SYS_memfd_create`), run by the kernel with foreign code's
    /// rights. Calls that make the kernel touch memory without PKRU, change
    /// protection keys, escape the filter or start programs, and the calls
    /// the handler checks, cannot be added: `Error::Unavailable` says so.
    pub fn allow(mut self, nr: i64) -> Result<SyscallPolicy, Error> {
        let n = u32::try_from(nr).map_err(|_| Error::Unavailable {
            reason: "not a syscall number",
        })?;
        if policy::never_allowable(n) {
            return Err(Error::Unavailable {
                reason: "this syscall cannot be allowed for foreign code (kernel deputy, protection keys, filter escape, program start, or a call the guard checks itself)",
            });
        }
        if !self.allow.contains(&n) {
            self.allow.push(n);
        }
        self.deny.retain(|&d| d != n);
        Ok(self)
    }

    /// Refuses syscall `nr` to foreign code although the default list has
    /// it (trusted code's calls still run, re-issued by the handler). Only
    /// calls the filter allows outright can be denied.
    pub fn deny(mut self, nr: i64) -> Result<SyscallPolicy, Error> {
        let n = u32::try_from(nr).map_err(|_| Error::Unavailable {
            reason: "not a syscall number",
        })?;
        if policy::rule(n, &[], &[]) != Some(policy::Rule::Allow) {
            return Err(Error::Unavailable {
                reason: "only calls the default list allows outright can be denied",
            });
        }
        if !self.deny.contains(&n) {
            self.deny.push(n);
        }
        self.allow.retain(|&a| a != n);
        Ok(self)
    }
}

/// The policy the filter was (or will be) built from.
static POLICY: Mutex<Option<SyscallPolicy>> = Mutex::new(None);

/// The one-time decision.
#[derive(Clone, Copy, Debug)]
struct Decision {
    on: bool,
    inspect: bool,
    reason: &'static str,
    refused: Option<&'static str>,
}

static DECISION: Mutex<Option<Decision>> = Mutex::new(None);

/// Token mask: page-aligned (it also travels as `mmap`'s offset, which the
/// kernel ignores for anonymous mappings but requires page-aligned and not
/// overflowing) and non-zero.
const TOKEN_MASK: u64 = 0x7fff_ffff_ffff_f000;

fn token_ptr() -> Option<*const u64> {
    crate::alloc::state_area().map(|p| p as *const u64)
}

fn setting() -> Option<&'static [u8]> {
    sys::getenv_bytes(c"COFFERDAM_SYSCALL_GUARD")
}

fn decide() -> Decision {
    let rt = state::runtime();
    let mut d = Decision {
        on: false,
        inspect: false,
        reason: "",
        refused: None,
    };
    let forced_on = match setting() {
        Some(b"off") => {
            d.reason = "turned off by COFFERDAM_SYSCALL_GUARD=off";
            d.inspect = rt.backend == Backend::Mpk;
            return d;
        }
        Some(b"on") => true,
        None | Some(b"") | Some(b"auto") => false,
        Some(_) => {
            d.reason = "COFFERDAM_SYSCALL_GUARD has an unknown value (use on, off or auto)";
            d.refused = Some(d.reason);
            return d;
        }
    };
    if rt.backend == Backend::None {
        d.reason = "backend none: nothing to guard";
        return d;
    }
    if rt.backend == Backend::Process {
        // Foreign code runs in helpers, each under its own allowlist
        // (backend/process/child.rs); this process runs none. Forcing the
        // in-process filter here (a testing switch for split) would be
        // inherited by every helper, which dies under it at start-up.
        d.reason = "off: the process backend runs foreign code in helper processes, each under a seccomp allowlist of its own (COFFERDAM_SYSCALL_GUARD=on applies to in-process backends)";
        return d;
    }
    if sys::inherited_guard() {
        d.reason = "off: this process inherited a parent Cofferdam process's syscall guard (its own would need pkey syscalls the inherited filter traps)";
        return d;
    }
    if rt.backend != Backend::Mpk && !forced_on {
        d.reason = "off: without MPK there is no protected memory to guard (COFFERDAM_SYSCALL_GUARD=on forces it)";
        return d;
    }
    d.inspect = true;
    // Before the filter: patching libc's text needs mprotect(PROT_EXEC).
    inspect::neutralise_pkey_set();
    match install() {
        Ok(()) => {
            d.on = true;
            d.reason = if rt.backend == Backend::Mpk {
                "on: seccomp filter installed (mpk backend)"
            } else {
                "on: forced by COFFERDAM_SYSCALL_GUARD=on (split backend: nothing is protected; for testing)"
            };
        }
        Err(why) => {
            d.reason = why;
            d.refused = Some("the syscall guard could not be installed (set COFFERDAM_SYSCALL_GUARD=off to run without it)");
        }
    }
    d
}

/// Layout of the protected state area (P-tagged, 64 KiB): word 0 the
/// token, words 1 and 2 glibc's rseq offset and size, word 8 the number of
/// static protected ranges, from byte 128 the ranges (`[lo, hi)` pairs).
const RSEQ_OFFSET_WORD: usize = 1;
const RSEQ_SIZE_WORD: usize = 2;
const NRANGES_WORD: usize = 8;
const RANGES_AT: usize = 16;
const MAX_RANGES: usize = (64 * 1024 / 8 - RANGES_AT) / 2;

fn state_word(i: usize) -> Option<*mut u64> {
    // SAFETY (of the arithmetic): the state area holds 64 KiB; i < 8192.
    crate::alloc::state_area().map(|p| unsafe { (p as *mut u64).add(i) })
}

/// Whether `[addr, end)` meets a range recorded at install.
pub(crate) fn static_ranges_meet(addr: usize, end: usize) -> bool {
    let Some(n) = state_word(NRANGES_WORD) else {
        return false;
    };
    // SAFETY: the state area is readable (callers run with P's rights) and
    // the count and ranges were written once before the filter existed.
    unsafe {
        let n = (n.read_volatile() as usize).min(MAX_RANGES);
        let r = state_word(RANGES_AT).expect("state area") as *const u64;
        (0..n).any(|i| {
            let lo = r.add(2 * i).read_volatile() as usize;
            let hi = r.add(2 * i + 1).read_volatile() as usize;
            addr < hi && end > lo
        })
    }
}

/// The ranges recorded at install: the gate's configuration page, the
/// signal table, and every PT_LOAD segment of every object loaded now (the
/// gate's code, Cofferdam's and the program's code and data, libc, ld.so).
fn record_static_ranges() -> Vec<(usize, usize)> {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let cfg = gate::config::CONFIG.0.get() as usize;
    ranges.push((cfg, cfg + 4096));
    let (table, table_len) = crate::fault::table_page();
    ranges.push((table, table + table_len));
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut core::ffi::c_void,
    ) -> i32 {
        // SAFETY: dl_iterate_phdr passes a valid info for each object and
        // our `data` (a Vec of ranges).
        unsafe {
            let v = &mut *(data as *mut Vec<(usize, usize)>);
            let info = &*info;
            for i in 0..info.dlpi_phnum as usize {
                let ph = &*info.dlpi_phdr.add(i);
                if ph.p_type == libc::PT_LOAD && ph.p_memsz != 0 {
                    let lo = (info.dlpi_addr as usize + ph.p_vaddr as usize) & !4095;
                    let hi = (info.dlpi_addr as usize + (ph.p_vaddr + ph.p_memsz) as usize + 4095)
                        & !4095;
                    v.push((lo, hi));
                }
            }
        }
        0
    }
    // SAFETY: the callback only reads the loader's tables and pushes to the
    // Vec passed as data.
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut ranges as *mut Vec<_>).cast()) };
    ranges.truncate(MAX_RANGES);
    let (Some(n), Some(r)) = (state_word(NRANGES_WORD), state_word(RANGES_AT)) else {
        return ranges;
    };
    // SAFETY: inside the state area (MAX_RANGES pairs fit); written before
    // the filter is installed, read-only afterwards.
    unsafe {
        for (i, &(lo, hi)) in ranges.iter().enumerate() {
            r.add(2 * i).write_volatile(lo as u64);
            r.add(2 * i + 1).write_volatile(hi as u64);
        }
        n.write_volatile(ranges.len() as u64);
    }
    ranges
}

/// glibc's rseq area for this thread, as `(offset from the thread pointer,
/// registered size)`, recorded at install (0 size: glibc registers none).
fn record_rseq() {
    let off = sys::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset");
    let size = sys::dlsym(libc::RTLD_DEFAULT, c"__rseq_size");
    let (Some(off), Some(size), Some(wo), Some(ws)) = (
        off,
        size,
        state_word(RSEQ_OFFSET_WORD),
        state_word(RSEQ_SIZE_WORD),
    ) else {
        return;
    };
    // SAFETY: glibc exports `ptrdiff_t __rseq_offset` and `unsigned int
    // __rseq_size` (2.35+); the state area words are ours.
    unsafe {
        wo.write_volatile((off as *const isize).read() as u64);
        ws.write_volatile((size as *const u32).read() as u64);
    }
}

/// Unregisters glibc's rseq area of the calling thread (called at install
/// and at each thread's first gate call). With the guard on, `rseq`
/// registration is refused process-wide, so threads created later never
/// register one.
pub(crate) fn unregister_rseq() {
    const RSEQ_SIG: u64 = 0x5305_3053;
    if !ON.load(Ordering::Acquire) {
        return;
    }
    let (Some(tok), Some(wo), Some(ws)) = (
        token_ptr(),
        state_word(RSEQ_OFFSET_WORD),
        state_word(RSEQ_SIZE_WORD),
    ) else {
        return;
    };
    // SAFETY: state area words (readable with P's rights: trusted code).
    let (off, size) = unsafe { (wo.read_volatile() as i64, ws.read_volatile()) };
    if size == 0 {
        return;
    }
    let area = (gate::thread::thread_pointer() as i64).wrapping_add(off) as u64;
    for len in [size.max(32), 32] {
        // SAFETY: rseq(area, len, UNREGISTER, sig) only unregisters this
        // thread's area if it is the registered one; the token is readable.
        let r = with_signals_blocked(false, || unsafe {
            gate::syscall::syscall_with_token(libc::SYS_rseq, [area, len, 1, RSEQ_SIG, 0], tok)
        });
        if r == 0 || r == -(libc::EINVAL as i64) && len == 32 {
            return;
        }
    }
}

fn install() -> Result<(), &'static str> {
    if crate::alloc::reservation().is_none() {
        return Err("no protected reservation (ProtectedAlloc is not the global allocator)");
    }
    let tok = token_ptr().ok_or("no protected state area")?;
    let token = loop {
        let t = sys::random_u64().map_err(|_| "getrandom failed")? & TOKEN_MASK;
        if t != 0 {
            break t;
        }
    };
    // SAFETY: the state area is 64 KiB of read-write memory owned by
    // Cofferdam; its first word is the token's home.
    unsafe { (tok as *mut u64).write_volatile(token) };
    let images = record_static_ranges();
    record_rseq();
    let pol = POLICY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(SyscallPolicy::default)
        .clone();
    let (rs, rl) = crate::alloc::reservation().expect("checked above");
    let (cfg_lo, table) = (
        gate::config::CONFIG.0.get() as usize,
        crate::fault::table_page(),
    );
    let c = gate::config::get();
    let ctl = (c.state_base, c.control_end());
    let mut fixed = vec![
        (rs as u64, (rs + rl) as u64),
        (cfg_lo as u64, (cfg_lo + 4096) as u64),
        (table.0 as u64, (table.0 + table.1) as u64),
        (ctl.0 as u64, ctl.1 as u64),
    ];
    // The alternate signal stacks (the whole arena) and Rust's tagged
    // statics.
    if c.alt_len != 0 {
        fixed.push((c.alt_base as u64, (c.alt_base + c.alt_len) as u64));
    }
    if let Some((s, e)) = crate::statics::data_range() {
        fixed.push((s as u64, e as u64));
    }
    fixed.extend(images.iter().map(|&(lo, hi)| (lo as u64, hi as u64)));
    fixed.truncate(200);
    let policy = bpf::program(token, &fixed, &pol.allow, &pol.deny, bpf::Notify::Listener);
    // Scoped to this process's code (`scope.rs`): programs this process
    // starts are not held to its policy.
    let code = scope::executable_ranges().map_err(|_| "cannot read /proc/self/maps")?;
    let always = bpf::always_allowed(&pol.allow, &pol.deny);
    let prelude = scope::prelude(&always);
    let prog = scope::scoped(&prelude, &policy, &code);
    // What `cover` needs later, without allocating in the trap handler. Its
    // layers have no listener (there is one per process, on the first
    // filter): their munmap and madvise trap.
    let cover_policy = bpf::program(token, &fixed, &pol.allow, &pol.deny, bpf::Notify::Cover);
    let mut scratch = Vec::with_capacity(scope::one_range_len(&prelude, &cover_policy));
    scope::scoped_into(&prelude, &cover_policy, &[(0, 0)], &mut scratch);
    let layer = Box::leak(Box::new(Layer {
        prelude: prelude.clone(),
        policy: cover_policy,
        scratch: core::cell::UnsafeCell::new(scratch),
        busy: AtomicBool::new(false),
    }));
    LAYER.store(layer, Ordering::Release);
    // The supervisor answers munmap and madvise (`notify.rs`); it starts
    // before the filter, whose own start it would otherwise go through.
    notify::start()?;
    // Children foreign code forks keep this (fork preserves it): no core
    // dump of protected memory, no ptrace or /proc/<pid>/mem for other
    // processes of this user.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0usize, 0usize, 0usize, 0usize) };
    let r = match sys::install_seccomp_filter(&prog, true) {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            // A filter above this process (one that started it) holds the
            // listener: munmap traps and madvise fails instead (`Notify`).
            NESTED.store(true, Ordering::Release);
            let policy = bpf::program(token, &fixed, &pol.allow, &pol.deny, bpf::Notify::Trap);
            let prog = scope::scoped(&prelude, &policy, &code);
            sys::install_seccomp_filter(&prog, false)
        }
        r => r,
    };
    if NESTED.load(Ordering::Acquire) {
        // No supervisor sees threads being made: the gate checks thread ids
        // from the start (`gate::thread::ident`).
        crate::gate::thread::ident::require(crate::gate::thread::ident::UNSEEN);
    }
    let Ok(listener) = r else {
        notify::serve(None);
        // SAFETY: as above.
        unsafe { (tok as *mut u64).write_volatile(0) };
        return Err("seccomp refused the filter (kernel without SECCOMP_FILTER?)");
    };
    notify::serve(listener);
    ON.store(true, Ordering::Release);
    unregister_rseq();
    Ok(())
}

/// The policy, kept to scope new executable mappings to (`cover`).
struct Layer {
    /// The calls allowed to everyone (`scope::prelude`).
    prelude: Vec<sys::SockFilter>,
    policy: Vec<sys::SockFilter>,
    /// Room for one layer, built without allocating (under `busy`).
    scratch: core::cell::UnsafeCell<Vec<sys::SockFilter>>,
    busy: AtomicBool,
}

// SAFETY: `scratch` is only touched with `busy` held; `policy` is immutable.
unsafe impl Sync for Layer {}

static LAYER: core::sync::atomic::AtomicPtr<Layer> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// Puts `[lo, hi)`, a new executable mapping of trusted code's, under the
/// filter's policy (one more layer, every thread). Called by the trap
/// handler, with rights, after re-issuing the call that made the mapping.
/// Returns whether the layer is in place.
fn cover(lo: u64, hi: u64, tok: *const u64) -> bool {
    let layer = LAYER.load(Ordering::Acquire);
    if layer.is_null() {
        return false;
    }
    // SAFETY: set once by `install`, leaked: lives for the process.
    let layer = unsafe { &*layer };
    while layer.busy.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // SAFETY: `busy` is held: nothing else touches `scratch`.
    let scratch = unsafe { &mut *layer.scratch.get() };
    scope::scoped_into(&layer.prelude, &layer.policy, &[(lo, hi)], scratch);
    // SAFETY: `tok` is the guard's token (the caller holds rights).
    let r = unsafe { sys::add_seccomp_layer(scratch, tok) };
    layer.busy.store(false, Ordering::Release);
    r == 0
}

/// A trusted call that made an executable mapping (`mmap` or `mprotect`
/// with `PROT_EXEC`, re-issued: `ret`) is covered by the filter's policy, or
/// undone: no code runs outside the policy. Returns the call's result, or
/// `-ENOMEM` when the range could not be covered.
fn cover_exec(nr: u32, a: [u64; 6], ret: i64, tok: *const u64) -> i64 {
    if ret < 0 {
        return ret;
    }
    let page = sys::page_size() as u64;
    let lo = if nr == libc::SYS_mmap as u32 {
        ret as u64
    } else {
        a[0]
    };
    let hi = (lo + a[1] + page - 1) & !(page - 1);
    if cover(lo & !(page - 1), hi, tok) {
        return ret;
    }
    if nr == libc::SYS_mmap as u32 {
        // SAFETY: the mapping just made; its code never ran.
        unsafe { libc::munmap(lo as *mut c_void, a[1] as usize) };
    } else {
        // SAFETY: takes execute permission back from the caller's own range
        // (it may not run outside the policy); mprotect ignores the sixth
        // argument, which carries the token.
        unsafe {
            gate::syscall::syscall_with_token(
                libc::SYS_mprotect,
                [a[0], a[1], a[2] & !(libc::PROT_EXEC as u64), 0, 0],
                tok,
            )
        };
    }
    -(libc::ENOMEM as i64)
}

/// The token, for `rt_sigreturn` from the signal entry (see
/// `fault::cofferdam_sigreturn_token`), or null when the filter is off.
pub(crate) fn sigreturn_token() -> *const u64 {
    if !ON.load(Ordering::Acquire) {
        return core::ptr::null();
    }
    token_ptr().unwrap_or(core::ptr::null())
}

fn decision() -> Decision {
    let mut g = DECISION.lock().unwrap_or_else(|e| e.into_inner());
    let d = *g.get_or_insert_with(decide);
    INSPECT.store(d.inspect, Ordering::Release);
    d
}

/// Installs the guard with `policy` (the default list when `None`) if this
/// backend wants it, once per process. A later, different policy is an
/// error: the filter is process-wide.
pub(crate) fn ensure_with(policy: Option<&SyscallPolicy>) -> Result<(), Error> {
    if let Some(p) = policy {
        let mut g = POLICY.lock().unwrap_or_else(|e| e.into_inner());
        match &*g {
            Some(cur) if cur != p => {
                return Err(Error::Unavailable {
                    reason: "the syscall list is process-wide and was already chosen (by the first compartment) with different changes",
                })
            }
            Some(_) => {}
            None => {
                if DECISION.lock().unwrap_or_else(|e| e.into_inner()).is_some() && *p != SyscallPolicy::default() {
                    return Err(Error::Unavailable {
                        reason: "the syscall list is process-wide and was already chosen (by the first compartment) with different changes",
                    });
                }
                *g = Some(p.clone());
            }
        }
    }
    ensure()
}

/// Installs the guard if this backend wants it (once). Called by
/// `Compartment::new` and `Compartment::load`.
pub(crate) fn ensure() -> Result<(), Error> {
    match decision().refused {
        Some(reason) => Err(Error::Unavailable { reason }),
        None => Ok(()),
    }
}

/// What the guard and inspection do in this process (part of
/// [`crate::Info`]).
#[derive(Clone, Debug, Default)]
pub struct GuardInfo {
    /// Whether the decision was made yet (it is made at the first
    /// `Compartment::new`/`load`: programs that never call foreign code never
    /// carry the filter).
    pub decided: bool,
    /// The seccomp filter is installed.
    pub syscall_guard: bool,
    /// Why it is on or off.
    pub reason: &'static str,
    /// Foreign objects are scanned for WRPKRU/XRSTOR at their first call.
    pub inspection: bool,
    /// What happened to libc's `pkey_set` (its WRPKRU).
    pub pkey_set: String,
    /// Objects scanned so far, with what was found.
    pub scanned: Vec<inspect::ScannedObject>,
    /// Syscalls refused so far.
    pub refused_syscalls: usize,
    /// Trusted syscalls re-issued by the trap handler so far.
    pub reissued_syscalls: usize,
    /// Foreign syscalls the handler checked and let run so far.
    pub checked_syscalls: usize,
    /// `munmap` and `madvise` outside the fixed ranges are decided by the
    /// guard's supervisor thread. False with the filter on means this
    /// process runs under another process's filter that holds the one
    /// listener a chain may have (a program started by a Cofferdam program):
    /// `munmap` then traps (and a trap while a thread blocks every signal,
    /// as glibc's thread exit does, ends the process) and `madvise` fails
    /// with `ENOSYS`.
    pub supervisor: bool,
    /// `munmap`/`madvise` the supervisor let run, and refused, so far.
    pub supervisor_answers: (usize, usize),
}

pub(crate) fn info() -> GuardInfo {
    let d = *DECISION.lock().unwrap_or_else(|e| e.into_inner());
    GuardInfo {
        decided: d.is_some(),
        syscall_guard: ON.load(Ordering::Acquire),
        reason: d.map_or(
            "not decided yet: decided at the first Compartment::new/load",
            |d| d.reason,
        ),
        inspection: d.is_some_and(|d| d.inspect),
        pkey_set: inspect::pkey_set_status(),
        scanned: inspect::scanned(),
        refused_syscalls: REFUSED.load(Ordering::Relaxed),
        reissued_syscalls: REISSUED.load(Ordering::Relaxed),
        checked_syscalls: CHECKED.load(Ordering::Relaxed),
        supervisor: notify::serving() && !NESTED.load(Ordering::Acquire),
        supervisor_answers: (
            notify::CONTINUED.load(Ordering::Relaxed),
            notify::REFUSED.load(Ordering::Relaxed),
        ),
    }
}

/// A name for syscall `nr` of the x86_64 (`i386 == false`) or i386 ABI.
pub(crate) fn syscall_name(nr: u32, i386: bool) -> &'static str {
    if i386 {
        return match nr {
            90 => "mmap (i386)",
            91 => "munmap (i386)",
            125 => "mprotect (i386)",
            163 => "mremap (i386)",
            192 => "mmap2 (i386)",
            219 => "madvise (i386)",
            380 => "pkey_mprotect (i386)",
            _ => "i386 ABI",
        };
    }
    policy::name(nr)
}

/// The SIGSYS handler (called by the fault module's dispatcher with P's
/// rights, for a frame the signal entry authenticated). Returns whether the
/// signal was the guard's.
///
/// # Safety
/// `cx` is the running handler's context; `st` is this thread's state.
pub(crate) unsafe fn on_sigsys(
    cx: &crate::fault::SignalContext,
    st: Option<*mut gate::thread::ThreadState>,
) -> bool {
    const SYS_SECCOMP: i32 = 1;
    if !ON.load(Ordering::Acquire) || cx.code() != SYS_SECCOMP {
        return false;
    }
    let (nr, arch) = cx.syscall();
    // A SIGSYS that says "seccomp" is not proof of one: `rt_sigqueueinfo` to
    // this process may carry any siginfo with si_code >= 0. A real trap
    // leaves the call rolled back: rax holds the syscall number and rip is
    // the address the siginfo names (just after the `syscall` instruction).
    // Anything else is not the guard's (and a sent SIGSYS is dropped).
    if cx.reg(libc::REG_RAX) != nr as u64 || cx.ip() != cx.call_addr() {
        return false;
    }
    let args = cx.args();
    let uc = cx.ucontext();
    // The gate call foreign code is running in, if it made this call.
    let foreign = crate::fault::foreign_call(cx, st);
    let trusted = if gate::config::get().deny_mask != 0 {
        cx.trusted()
    } else {
        foreign.is_none()
    };
    let x86_64 = arch == bpf::AUDIT_ARCH_X86_64;
    let tok = token_ptr();
    if trusted {
        let ret = match tok {
            Some(tok) if x86_64 => {
                REISSUED.fetch_add(1, Ordering::Relaxed);
                // SAFETY: the handler's own ucontext; trusted code's call.
                let ret = unsafe { check::trusted(nr, args, tok, uc) };
                let exec = (nr == libc::SYS_mmap as u32 || nr == libc::SYS_mprotect as u32)
                    && args[2] & libc::PROT_EXEC as u64 != 0;
                if exec {
                    cover_exec(nr, args, ret, tok)
                } else {
                    ret
                }
            }
            _ => -(libc::EPERM as i64),
        };
        cx.set_reg(libc::REG_RAX, ret as u64);
        return true;
    }
    if let (Some(tok), true) = (tok, x86_64) {
        if let check::Outcome::Ret(ret) = // SAFETY: as above.
            unsafe { check::foreign(nr, args, tok, uc) }
        {
            CHECKED.fetch_add(1, Ordering::Relaxed);
            cx.set_reg(libc::REG_RAX, ret as u64);
            return true;
        }
    }
    REFUSED.fetch_add(1, Ordering::Relaxed);
    match foreign {
        Some(frame) => {
            let record = FaultRecord::Syscall {
                nr,
                i386: !x86_64,
                arg0: args[0],
                ip: cx.ip(),
            };
            // SAFETY: `foreign_call` found frame as this thread's innermost
            // live gate frame with its stack pointer saved.
            unsafe { crate::fault::end_gate_call(frame, cx, record) };
        }
        None => cx.set_reg(libc::REG_RAX, (-(libc::EPERM as i64)) as u64),
    }
    true
}

/// Runs `f` (a syscall with the token in a register) with every signal
/// blocked: a signal delivered at the end of the call would write the
/// registers, the token among them, into a signal frame in memory foreign
/// code can read. Nothing in `f` may trap (SIGSYS is blocked too).
///
/// Inside the SIGSYS handler (`in_handler`), only the synchronous signals
/// are unblocked afterwards (a fault, or a nested trap of the handler's own
/// allocations); the rest stay blocked until `rt_sigreturn` restores the
/// interrupted mask, so that they are delivered to the interrupted code and
/// not on top of the handler's frames on a small alternate stack.
pub(crate) fn with_signals_blocked<T>(in_handler: bool, f: impl FnOnce() -> T) -> T {
    let Some(tok) = token_ptr() else {
        return f();
    };
    let all: u64 = !0;
    let mut old: u64 = 0;
    // SAFETY: rt_sigprocmask(SIG_BLOCK, &all, &old, 8) with the token (the
    // filter would trap a blocking call); nothing is delivered at its end
    // since everything is then blocked.
    unsafe {
        gate::syscall::syscall_with_token(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_BLOCK as u64,
                &all as *const u64 as u64,
                &mut old as *mut u64 as u64,
                8,
                0,
            ],
            tok,
        )
    };
    let r = f();
    let bit = |s: i32| 1u64 << (s - 1);
    let unblock = if in_handler {
        bit(libc::SIGSYS)
            | bit(libc::SIGSEGV)
            | bit(libc::SIGBUS)
            | bit(libc::SIGILL)
            | bit(libc::SIGFPE)
            | bit(libc::SIGTRAP)
    } else {
        !old
    };
    // SAFETY: SIG_UNBLOCK, plain (the filter allows unblocking), so the
    // token is in no register when pending signals are delivered at its end.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_UNBLOCK,
            &unblock as *const u64,
            core::ptr::null_mut::<u64>(),
            8usize,
        )
    };
    r
}
