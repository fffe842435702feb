//! Foreign code cannot grant itself rights: the syscall guard and the
//! inspection of foreign code.
//!
//! * [`bpf`]: a seccomp-BPF filter, installed process-wide (TSYNC, after
//!   `PR_SET_NO_NEW_PRIVS`) at the first [`crate::Compartment::new`] or
//!   [`crate::Compartment::load`] on the mpk backend, that traps the syscalls
//!   which could retag, unmap or zero protected memory or create executable
//!   memory (see `bpf.rs` for the exact rules and `docs/guard.md`).
//! * [`on_sigsys`]: the trap handler (reached through the fault module's
//!   signal entry, so it runs with P's rights). A trapped call is *trusted*
//!   when the interrupted context had P's rights (PKRU from the signal
//!   frame; on the split backend: when the thread is not inside a gate). A
//!   trusted call is re-issued with the guard's token in the sixth argument
//!   register, which the filter lets through; the token lives in the
//!   P-protected state area and in registers only. An untrusted call inside
//!   a gate ends that gate call with `Err(Fault)` of kind
//!   [`crate::FaultKind::Syscall`]; an untrusted call outside any gate (a
//!   thread foreign code started) fails with `EPERM`.
//! * [`inspect`]: `pkey_set` in libc is neutralised before the filter is
//!   installed; objects that foreign functions live in are scanned for
//!   WRPKRU/XRSTOR/XRSTORS at their first call; `Compartment::load` scans a
//!   library before `dlopen`.
//!
//! `COFFERDAM_SYSCALL_GUARD=off` turns the filter off (and `on` forces it on
//! the split backend too, where it protects nothing but can be tested).

pub(crate) mod bpf;
pub(crate) mod inspect;
pub(crate) mod scope;

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::Error;
use crate::gate::{self, FaultRecord};
use crate::state::{self, Backend};
use crate::sys;
use core::ffi::c_void;

/// Whether the filter is installed (read by the SIGSYS handler).
static ON: AtomicBool = AtomicBool::new(false);
/// Whether foreign objects are inspected at first call (hot path).
pub(crate) static INSPECT: AtomicBool = AtomicBool::new(false);
/// Syscalls refused so far (for `info` and tests).
static REFUSED: AtomicUsize = AtomicUsize::new(0);
/// Trusted syscalls the handler re-issued.
static REISSUED: AtomicUsize = AtomicUsize::new(0);

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

fn install() -> Result<(), &'static str> {
    let Some((start, len)) = crate::alloc::reservation() else {
        return Err("no protected reservation (ProtectedAlloc is not the global allocator)");
    };
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
    let cfg = gate::config::CONFIG.0.get() as usize;
    let (table, table_len) = crate::fault::table_page();
    let c = gate::config::get();
    let ctl_end = c.state_base + c.state_len + c.nslots * crate::callback::SLOT_SIZE;
    let ranges = [
        (start as u64, (start + len) as u64),
        (cfg as u64, (cfg + 4096) as u64),
        (table as u64, (table + table_len) as u64),
        // Rust's tagged statics (issue 14), or the table again when untagged.
        crate::statics::data_range()
            .map(|(s, e)| (s as u64, e as u64))
            .unwrap_or((table as u64, (table + table_len) as u64)),
        // The thread-state table with the callback slots, and the arena of
        // alternate signal stacks: the signal entry trusts a frame for lying
        // there, so foreign code may not unmap or remap any of it.
        (c.state_base as u64, ctl_end as u64),
        (c.alt_base as u64, (c.alt_base + c.alt_len) as u64),
    ];
    let policy = bpf::program(&ranges, token);
    // Scoped to this process's code (`scope.rs`): programs this process
    // starts are not held to its policy.
    let code = scope::executable_ranges().map_err(|_| "cannot read /proc/self/maps")?;
    let prog = scope::scoped(&policy, &code);
    // What `cover` needs later, without allocating in the trap handler.
    let mut scratch = Vec::with_capacity(scope::one_range_len(&policy));
    scope::scoped_into(&policy, &[(0, 0)], &mut scratch);
    let layer = Box::leak(Box::new(Layer {
        policy,
        scratch: core::cell::UnsafeCell::new(scratch),
        busy: AtomicBool::new(false),
    }));
    LAYER.store(layer, Ordering::Release);
    let r = sys::install_seccomp_filter(&prog);
    if r.is_err() {
        // SAFETY: as above.
        unsafe { (tok as *mut u64).write_volatile(0) };
        return Err("seccomp refused the filter (kernel without SECCOMP_FILTER?)");
    }
    ON.store(true, Ordering::Release);
    Ok(())
}

/// The policy, kept to scope new executable mappings to (`cover`).
struct Layer {
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
    scope::scoped_into(&layer.policy, &[(lo, hi)], scratch);
    // SAFETY: `tok` is the guard's token (the caller holds rights).
    let r = unsafe { sys::add_seccomp_layer(scratch, tok) };
    layer.busy.store(false, Ordering::Release);
    r == 0
}

/// Re-issues a trusted call that makes an executable mapping (`mmap` or
/// `mprotect` with `PROT_EXEC`), then covers the new range with the filter's
/// policy. A file mapping cannot carry the token (its sixth argument is the
/// offset): it is made without `PROT_EXEC` first, then made executable with
/// `mprotect`. If the range cannot be covered, the mapping is undone and the
/// call fails (`ENOMEM`): no code runs outside the policy.
///
/// # Safety
/// As for `syscall_with_token`; the call is trusted code's own.
unsafe fn reissue_exec(nr: u32, a: [u64; 6], tok: *const u64) -> i64 {
    let page = sys::page_size() as u64;
    let (lo, len) = if nr == bpf::nr::MMAP {
        let anon = a[3] & libc::MAP_ANONYMOUS as u64 != 0;
        let first = if anon {
            // SAFETY: forwarded contract; the offset is ignored for
            // anonymous mappings, so it carries the token.
            unsafe {
                gate::syscall::syscall_with_token(nr as i64, [a[0], a[1], a[2], a[3], a[4]], tok)
            }
        } else {
            // SAFETY: the caller's own file mapping, not executable yet.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_mmap,
                    a[0],
                    a[1],
                    a[2] & !(libc::PROT_EXEC as u64),
                    a[3],
                    a[4],
                    a[5],
                )
            };
            if r == -1 {
                -(std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::ENOMEM) as i64)
            } else {
                r
            }
        };
        // User-space addresses are below 2^47: a negative value is -errno.
        if first < 0 {
            return first;
        }
        if !anon {
            // SAFETY: the mapping just made; mprotect takes three arguments,
            // the token rides in the sixth.
            let r = unsafe {
                gate::syscall::syscall_with_token(
                    libc::SYS_mprotect,
                    [first as u64, a[1], a[2], 0, 0],
                    tok,
                )
            };
            if r < 0 {
                // SAFETY: the mapping just made, which nothing uses yet.
                unsafe { libc::munmap(first as *mut c_void, a[1] as usize) };
                return r;
            }
        }
        (first as u64, a[1])
    } else {
        // SAFETY: forwarded contract.
        let r = unsafe {
            gate::syscall::syscall_with_token(nr as i64, [a[0], a[1], a[2], a[3], a[4]], tok)
        };
        if r < 0 {
            return r;
        }
        (a[0], a[1])
    };
    let hi = (lo + len + page - 1) & !(page - 1);
    if cover(lo & !(page - 1), hi, tok) {
        if nr == bpf::nr::MMAP {
            lo as i64
        } else {
            0
        }
    } else {
        if nr == bpf::nr::MMAP {
            // SAFETY: the mapping just made; its code never ran.
            unsafe { libc::munmap(lo as *mut c_void, len as usize) };
        } else {
            // SAFETY: takes execute permission back from the caller's own
            // range (it may not run outside the policy).
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
}

fn decision() -> Decision {
    let mut g = DECISION.lock().unwrap_or_else(|e| e.into_inner());
    let d = *g.get_or_insert_with(decide);
    INSPECT.store(d.inspect, Ordering::Release);
    d
}

/// Installs the guard if this backend wants it (once). Called by
/// `Compartment::new` and `Compartment::load`.
pub(crate) fn ensure() -> Result<(), Error> {
    match decision().refused {
        Some(reason) => Err(Error::Unavailable { reason }),
        None => Ok(()),
    }
}

/// The token, for `rt_sigreturn` from the signal entry (see
/// `fault::cofferdam_sigreturn_token`), or null when the filter is off.
pub(crate) fn sigreturn_token() -> *const u64 {
    if !ON.load(Ordering::Acquire) {
        return core::ptr::null();
    }
    token_ptr().unwrap_or(core::ptr::null())
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
    }
}

/// A name for syscall `nr` of the x86_64 (`i386 == false`) or i386 ABI.
pub(crate) fn syscall_name(nr: u32, i386: bool) -> &'static str {
    if i386 {
        return match nr {
            90 => "mmap (i386)",
            91 => "munmap (i386)",
            117 => "ipc (i386)",
            125 => "mprotect (i386)",
            163 => "mremap (i386)",
            192 => "mmap2 (i386)",
            219 => "madvise (i386)",
            348 => "process_vm_writev (i386)",
            380 => "pkey_mprotect (i386)",
            381 => "pkey_alloc (i386)",
            382 => "pkey_free (i386)",
            397 => "shmat (i386)",
            _ => "unknown (i386)",
        };
    }
    use bpf::nr::*;
    match nr {
        RT_SIGRETURN => "rt_sigreturn",
        EXIT_GROUP => "exit_group",
        SIGALTSTACK => "sigaltstack",
        MMAP => "mmap",
        MPROTECT => "mprotect",
        MUNMAP => "munmap",
        MREMAP => "mremap",
        MADVISE => "madvise",
        SHMAT => "shmat",
        PROCESS_VM_WRITEV => "process_vm_writev",
        PKEY_MPROTECT => "pkey_mprotect",
        PKEY_ALLOC => "pkey_alloc",
        PKEY_FREE => "pkey_free",
        IO_URING_SETUP => "io_uring_setup",
        _ => "unknown",
    }
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
    // The gate call foreign code is running in, if it made this call.
    let foreign = crate::fault::foreign_call(cx, st);
    let trusted = if gate::config::get().deny_mask != 0 {
        cx.trusted()
    } else {
        foreign.is_none()
    };
    let x86_64 = arch == bpf::AUDIT_ARCH_X86_64;
    if trusted && x86_64 {
        let ret = match (nr, token_ptr()) {
            (_, None) => -(libc::EPERM as i64),
            // An executable mapping: re-issued and covered by the policy.
            (bpf::nr::MMAP | bpf::nr::MPROTECT, Some(tok))
                if args[2] & libc::PROT_EXEC as u64 != 0 =>
            {
                REISSUED.fetch_add(1, Ordering::Relaxed);
                // SAFETY: trusted code's own call; `tok` readable (rights).
                unsafe { reissue_exec(nr, args, tok) }
            }
            // The token travels as the offset, which anonymous mappings
            // ignore; a file mapping that needs it (MAP_FIXED inside a
            // protected range) is refused.
            (bpf::nr::MMAP, Some(_)) if args[3] & libc::MAP_ANONYMOUS as u64 == 0 => {
                -(libc::EPERM as i64)
            }
            (_, Some(tok)) => {
                REISSUED.fetch_add(1, Ordering::Relaxed);
                // SAFETY: `tok` points into the state area (readable with the
                // rights this handler runs with); the call is the one trusted
                // code made, with its own arguments.
                unsafe {
                    gate::syscall::syscall_with_token(
                        nr as i64,
                        [args[0], args[1], args[2], args[3], args[4]],
                        tok,
                    )
                }
            }
        };
        cx.set_reg(libc::REG_RAX, ret as u64);
        return true;
    }
    REFUSED.fetch_add(1, Ordering::Relaxed);
    match foreign {
        Some(frame) if !trusted => {
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
        _ => cx.set_reg(libc::REG_RAX, (-(libc::EPERM as i64)) as u64),
    }
    true
}
