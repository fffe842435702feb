//! The call gate: the only door between Rust's domain and foreign code.
//!
//! * [`config`]: the page of gate constants (the deny mask of key P), written
//!   once and then made read-only, so foreign code cannot change what the gate
//!   checks against without a syscall.
//! * `asm`: the trampolines themselves (`cofferdam_gate_call`, the fault
//!   landing pad, the signal entry).
//! * [`GateFrame`]: what one call through the gate records, linked per thread
//!   so that nested calls and the fault handler find the innermost call.
//!
//! * `thread`: each thread's state (foreign stack, tagged Rust stack,
//!   alternate signal stack), in a table tagged with P.
//!
//! # Re-entry
//!
//! Calls nest: a gate call made while another is in progress on the same
//! thread (from a signal handler, or from a [`crate::Callback`] that foreign
//! code called) pushes a new frame and pops it on return; a fault is charged
//! to the innermost call. A nested call's foreign frames go below those of
//! the call it is nested in (the callback entry and the signal dispatcher
//! lower the thread's foreign stack top while they run). Foreign code that
//! calls Rust through anything but a `Callback` runs that Rust code without
//! P's rights, on the foreign stack: its first touch of the Rust heap or
//! stack faults and the outer call returns `Err(Fault)`.

mod asm;
pub(crate) mod config;
// The statics layout's linker symbols (weak) and TLS offsets.
pub(crate) mod layout;
pub(crate) mod thread;
// The syscall guard's token re-issue (asm; kept out of the gate's own file).
pub(crate) mod syscall;

use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::ptr;

pub(crate) use asm::{cofferdam_cb_stubs, cofferdam_gate_landing, cofferdam_signal_entry};

/// Resumes the interrupted context `uc` from a signal handler without
/// rt_sigreturn: signal mask, x87/SSE state (FXRSTOR), general registers,
/// rflags, rsp, rip. PKRU is left as it is.
///
/// # Safety
/// `uc` is a ucontext the kernel passed to the running handler, and the
/// handler has nothing left to do.
pub(crate) unsafe fn user_sigreturn(uc: *mut c_void) -> ! {
    // SAFETY: forwarded contract.
    unsafe { asm::cofferdam_user_sigreturn(uc) }
}

/// Whether `ip` lies in the trampolines' code (`cofferdam_gate_call` up to
/// the end of the callback entry).
pub(crate) fn is_gate_code(ip: usize) -> bool {
    let lo = cofferdam_gate_call as *const () as usize;
    let hi = asm::cofferdam_gate_code_end as *const () as usize;
    lo <= ip && ip < hi
}

/// Whether `ip` lies in the benchmark floor's unchecked WRPKRU pair (only
/// with the `bench-floor` feature; never otherwise).
pub(crate) fn is_bench_floor(ip: usize) -> bool {
    #[cfg(feature = "bench-floor")]
    {
        let lo = asm::cofferdam_wrpkru_pair_call as *const () as usize;
        // The function is 60-odd bytes (asm.rs); its two WRPKRUs lie inside.
        lo <= ip && ip < lo + 128
    }
    #[cfg(not(feature = "bench-floor"))]
    {
        let _ = ip;
        false
    }
}

/// Whether `ip` is one of `cofferdam_try_copy`'s loads (which may fault).
pub(crate) fn in_try_copy(ip: usize) -> bool {
    let lo = asm::cofferdam_try_copy as *const () as usize;
    let hi = asm::cofferdam_try_copy_insn as *const () as usize;
    lo <= ip && ip < hi
}

/// Where `cofferdam_try_copy` resumes after a fault.
pub(crate) fn try_copy_fixup() -> usize {
    asm::cofferdam_try_copy_fixup as *const () as usize
}

/// Copies `n` bytes from `src`, memory foreign code named, into `dst`;
/// `false` if reading `src` faulted (nothing else happens then).
///
/// # Safety
/// `dst` must be valid for `n` bytes of writes and not overlap `src`; `src`
/// must not be protected memory (checked by callers) — it may be unmapped.
pub(crate) unsafe fn try_copy(dst: *mut u8, src: usize, n: usize) -> bool {
    // SAFETY: forwarded contract; a fault reading src is resumed at the
    // fixup by the fault handler.
    unsafe { asm::cofferdam_try_copy(dst, src as *const u8, n) == 0 }
}

/// The benchmark floor: `f(x)` on this thread's foreign stack with a bare
/// WRPKRU pair around it (deny P, call, allow P) and none of the gate's
/// checks. Returns `None` where the mpk backend is not in force.
///
/// This is not a gate (no check of the values written, no fault recovery):
/// it exists only to measure what any MPK gate must cost on this CPU.
#[doc(hidden)]
#[cfg(feature = "bench-floor")]
pub fn wrpkru_pair_call(f: extern "C" fn(i32) -> i32, x: i32) -> Option<i32> {
    crate::state::runtime().pkey?;
    // The thread's foreign stack: the Rust stack is tagged, so even the
    // floor must leave it before dropping the rights.
    let st = thread::current().ok()?;
    // SAFETY: this thread's checked state; no gate call uses the foreign
    // stack's top while this thread runs this function.
    let top = unsafe { ((*st).foreign_top - 128) & !15 };
    // SAFETY: the mpk backend is in force, so the configuration holds P's
    // mask and WRPKRU is defined; `f` is a safe extern "C" function that
    // touches no protected memory; `top` is the top of this thread's
    // foreign stack, unused right now.
    Some(unsafe { asm::cofferdam_wrpkru_pair_call(f, x, top) })
}

/// What ended a gate call, written into its frame by the fault path
/// (`crate::fault`) and read by the compartment when `status` says the call
/// faulted. Each variant means one thing.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FaultRecord {
    /// The CPU raised SIGSEGV or SIGBUS for a memory access.
    Memory {
        signal: i32,
        /// `si_code` (`SEGV_MAPERR`, `SEGV_ACCERR`, `SEGV_PKUERR`, ...).
        code: i32,
        address: usize,
        ip: usize,
        /// The page-fault error code (bit 1: write, bit 4: instruction fetch).
        err: u64,
        /// The protection key the kernel reported (`si_pkey`), or -1.
        pkey: i32,
    },
    /// The CPU raised SIGFPE, SIGILL or SIGTRAP for an instruction.
    Instruction { signal: i32, code: i32, ip: usize },
    /// Foreign code sent this fault signal or SIGABRT to itself (`raise`,
    /// `abort`, `tgkill`): `si_code <= 0`.
    Sent { signal: i32, ip: usize },
    /// The syscall guard refused a system call.
    Syscall {
        nr: u32,
        i386: bool,
        /// Its first argument.
        arg0: u64,
        ip: usize,
    },
    /// A trampoline's check failed: foreign code jumped into one.
    Integrity,
}

/// Arguments beyond the six in registers that the gate copies onto the
/// stack (its argument area is 128 bytes).
pub const MAX_STACK_ARGS: usize = 16;

/// One call through the gate. The layout is shared with `asm.rs`: keep the
/// offsets there in sync (checked by the `layout` test below).
#[repr(C)]
pub(crate) struct GateFrame {
    /// 0: the foreign function.
    pub func: usize,
    /// 8..56: up to six integer or pointer arguments (rdi, rsi, rdx, rcx, r8, r9).
    pub args: [u64; 6],
    /// 56: the Rust stack pointer the gate returns on (and a fault resumes on).
    pub saved_rsp: usize,
    /// 64: PKRU as it was before the gate dropped the rights.
    pub trusted_pkru: u32,
    /// 68: 0 if the function returned, 1 if the call was ended by a fault.
    pub status: u32,
    /// 72, 80: rax and rdx as the function returned them.
    pub ret: [u64; 2],
    /// 88: how many arguments go on the stack (at most [`MAX_STACK_ARGS`]).
    pub nstack: u64,
    /// 96: the stack arguments, in order (the 7th argument first).
    pub stack_args: *const u64,
    /// 104: the foreign stack pointer foreign code is called with (the stack
    /// arguments above it), and must return with.
    pub foreign_sp: usize,
    /// 112..176: xmm0..xmm7 (the low 8 bytes: an `f64`, or an `f32` in the
    /// low 4).
    pub fargs: [u64; 8],
    /// 176, 184: xmm0 and xmm1 as the function returned them.
    pub fret: [u64; 2],
    /// 192: how many SSE registers carry arguments (`al`, for variadic callees).
    pub nsse: u64,
    /// 200: this call's number on its thread (never reused): callbacks are
    /// armed for one call.
    pub call_id: u64,
    /// 208: Rust's MXCSR; 212: Rust's x87 control word. Restored when the
    /// call ends and while a callback runs.
    pub mxcsr: u32,
    pub fpucw: u16,
    _pad: u16,
    /// 216: callbacks of this call running now (foreign code is not running
    /// on this thread while it is non-zero).
    pub cb_active: u32,
    _pad2: u32,
    /// The enclosing call on this thread, if any.
    pub prev: *mut GateFrame,
    /// Written by the fault handler, and only read when `status` says the
    /// call faulted.
    pub fault: MaybeUninit<FaultRecord>,
    /// Set by the callback dispatcher when a callback of this call refused
    /// its arguments or panicked.
    pub callback_error: Option<String>,
}

impl GateFrame {
    /// A frame for `func(args…, stack…)`.
    ///
    /// # Panics
    /// If `stack` holds more than [`MAX_STACK_ARGS`] words.
    #[inline]
    pub(crate) fn new(func: usize, args: [u64; 6], stack: &[u64]) -> Self {
        assert!(
            stack.len() <= MAX_STACK_ARGS,
            "the gate carries at most {MAX_STACK_ARGS} stack arguments"
        );
        GateFrame {
            func,
            args,
            nstack: stack.len() as u64,
            stack_args: stack.as_ptr(),
            saved_rsp: 0,
            trusted_pkru: 0,
            status: 0,
            ret: [0; 2],
            foreign_sp: 0,
            fargs: [0; 8],
            fret: [0; 2],
            nsse: 0,
            call_id: 0,
            mxcsr: 0,
            fpucw: 0,
            _pad: 0,
            cb_active: 0,
            _pad2: 0,
            prev: ptr::null_mut(),
            fault: MaybeUninit::uninit(),
            callback_error: None,
        }
    }

    /// Sets the SSE argument registers.
    #[inline]
    pub(crate) fn set_sse(&mut self, sse: &[u64]) {
        let n = sse.len().min(8);
        self.fargs[..n].copy_from_slice(&sse[..n]);
        self.nsse = n as u64;
    }
}

/// The innermost gate call in progress on this thread, or null (also null
/// on a thread that never made one).
pub(crate) fn current_frame() -> *mut GateFrame {
    match thread::existing() {
        // SAFETY: a checked state belongs to this thread.
        Some(st) => unsafe { (*st).current },
        None => ptr::null_mut(),
    }
}

/// Whether foreign code is (or may be) running on this thread right now:
/// inside a gate call and not inside one of its callbacks. On the mpk
/// backend PKRU says it directly.
pub(crate) fn foreign_running() -> bool {
    let cfg = config::get();
    if cfg.deny_mask != 0 {
        if let Some(pkru) = read_pkru() {
            return pkru & cfg.deny_mask == cfg.deny_mask;
        }
    }
    let f = current_frame();
    // SAFETY: a non-null innermost frame is live (it is popped before its
    // call returns).
    !f.is_null() && unsafe { (*f).cb_active } == 0
}

extern "C" {
    /// See `asm.rs`: calls `frame.func` with `frame.args`, PKRU switched.
    fn cofferdam_gate_call(frame: *mut c_void);
    /// See `asm.rs`: the same call without any switch (the `none` backend).
    fn cofferdam_direct_call(frame: *mut c_void);
}

/// Calls `frame.func` directly, on this stack, with no PKRU switch: the
/// `none` backend's baseline.
///
/// # Safety
/// As for [`call`].
#[inline]
pub(crate) unsafe fn call_direct(frame: &mut GateFrame) {
    // SAFETY: forwarded contract.
    unsafe { cofferdam_direct_call((frame as *mut GateFrame).cast()) }
}

/// Calls the foreign function described by `frame` through the gate, with
/// the callbacks in `arm` armed for this call only. Returns `Ok(true)` if
/// the call returned and `Ok(false)` if a fault ended it (the frame's
/// `fault` record says which); `Err` if this thread cannot get a state (too
/// many threads, no memory for a foreign stack).
///
/// # Safety
/// `frame.func` must be a foreign function that may be called with the
/// argument registers set as in `frame` (System V ABI), and the process must
/// have been configured with [`config::configure`].
#[inline(always)]
pub(crate) unsafe fn call(frame: &mut GateFrame, arm: &[u32]) -> Result<bool, &'static str> {
    let st = thread::current()?;
    // SAFETY: `current` returns this thread's checked, live state; only
    // this thread writes `current`, `call_seq` and `foreign_top`.
    unsafe {
        (*st).call_seq += 1;
        frame.call_id = (*st).call_seq;
        frame.prev = (*st).current;
        frame.foreign_sp = ((*st).foreign_top - 128) & !15;
    }
    // A gate call from a signal handler, which runs on the thread's
    // alternate stack: see `call_from_handler`.
    let c = config::get();
    let sp = &c as *const &config::GateConfig as usize;
    if sp.wrapping_sub(c.alt_base) < c.alt_len {
        return Ok(call_from_handler(st, frame, arm, sp));
    }
    if !arm.is_empty() {
        return Ok(call_arming(st, frame, arm));
    }
    // SAFETY: as above.
    unsafe { (*st).current = frame as *mut GateFrame };
    // SAFETY: the frame lives on this (tagged) stack frame for the whole
    // call; the foreign function's contract is the caller's (above).
    unsafe { cofferdam_gate_call((frame as *mut GateFrame).cast()) };
    // SAFETY: as above; the gate returned on this thread.
    unsafe { (*st).current = frame.prev };
    Ok(frame.status == 0)
}

/// [`call`] made by a signal handler on the thread's alternate stack. The
/// kernel disarmed that stack when it entered the handler (`SS_AUTODISARM`),
/// so a signal that arrived while foreign code runs would be framed on the
/// foreign stack, where the signal entry cannot authenticate it. For the
/// call's duration the part of the slot below this frame is the alternate
/// stack again: frames land there, below the handler's own, and a callback
/// running below this frame is "on" that stack (the kernel then frames at
/// its stack pointer). Afterwards the stack is disarmed as before; the
/// handler's rt_sigreturn restores the whole slot.
#[cold]
#[inline(never)]
fn call_from_handler(
    st: *mut thread::ThreadState,
    frame: &mut GateFrame,
    arm: &[u32],
    sp: usize,
) -> bool {
    // The top of the re-armed part must lie below the gate's saved
    // registers (a few hundred bytes below this frame), and at or below
    // where a callback of this call puts its frame (448 bytes below those):
    // 2 KiB below this frame is both.
    let here = &arm as *const &[u32] as usize;
    let armed = thread::alt_stack_of(st).filter(|&(lo, _)| here > lo + 16384);
    if let Some((lo, _)) = armed {
        crate::sys::set_alt_stack(lo, (here - 2048 - lo) & !15);
    }
    let _ = sp;
    let ok = if arm.is_empty() {
        // SAFETY: as in `call`, whose contract the caller upholds.
        unsafe { (*st).current = frame as *mut GateFrame };
        // SAFETY: as in `call`.
        unsafe { cofferdam_gate_call((frame as *mut GateFrame).cast()) };
        // SAFETY: as above.
        unsafe { (*st).current = frame.prev };
        frame.status == 0
    } else {
        call_arming(st, frame, arm)
    };
    if armed.is_some() {
        crate::sys::disable_alt_stack();
    }
    ok
}

/// [`call`] with callbacks to arm for the call and disarm after it.
#[inline(never)]
fn call_arming(st: *mut thread::ThreadState, frame: &mut GateFrame, arm: &[u32]) -> bool {
    let mut saved = [(0u32, 0usize, 0u64); 6];
    let n = arm.len().min(saved.len());
    for (i, &slot) in arm[..n].iter().enumerate() {
        let (o, c) = crate::callback::arm(slot, st as usize, frame.call_id);
        saved[i] = (slot, o, c);
    }
    // SAFETY: `st` is this thread's checked state (see `call`).
    unsafe { (*st).current = frame as *mut GateFrame };
    // SAFETY: as in `call`, whose contract the caller upholds.
    unsafe { cofferdam_gate_call((frame as *mut GateFrame).cast()) };
    // SAFETY: as above.
    unsafe { (*st).current = frame.prev };
    for &(slot, o, c) in saved[..n].iter().rev() {
        crate::callback::restore(slot, o, c);
    }
    frame.status == 0
}

/// Reads PKRU (`rdpkru`). Only meaningful where the OS enabled protection keys.
pub fn read_pkru() -> Option<u32> {
    if !crate::sys::cpu_pkeys().1 {
        return None;
    }
    let eax: u32;
    // SAFETY: OSPKE is set (checked above), so RDPKRU is defined; ECX must be
    // zero, EDX is clobbered.
    unsafe {
        core::arch::asm!("rdpkru", in("ecx") 0u32, out("eax") eax, out("edx") _, options(nomem, nostack, preserves_flags));
    }
    Some(eax)
}

/// Whether this thread's PKRU denies every bit of `mask`: foreign code is
/// running. For the interposed allocator (`crate::heap`), which must decide
/// cheaply (no CPUID) and from state foreign code cannot forge, without
/// reading any Rust static.
///
/// # Safety
/// `mask` is the configuration page's non-zero deny mask, so the mpk
/// backend is in force and RDPKRU is defined.
#[inline(always)]
pub(crate) unsafe fn pkru_denies(mask: u32) -> bool {
    let eax: u32;
    // SAFETY: RDPKRU is defined (contract); ECX must be zero, EDX is
    // clobbered.
    unsafe {
        core::arch::asm!("rdpkru", in("ecx") 0u32, out("eax") eax, out("edx") _, options(nomem, nostack, preserves_flags));
    }
    eax & mask == mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn layout_matches_asm() {
        // The asm takes every offset from `offset_of!` (const operands); what
        // it assumes beyond offsets: entries and slots are powers of two in
        // size (it shifts by their log2), the callback frame keeps the stack
        // 16-aligned, and the config page is one page.
        assert!(thread::STATE_SIZE.is_power_of_two());
        assert_eq!(
            core::mem::size_of::<thread::ThreadState>(),
            thread::STATE_SIZE
        );
        assert!(crate::callback::SLOT_SIZE.is_power_of_two());
        assert_eq!(
            core::mem::size_of::<crate::callback::Slot>(),
            crate::callback::SLOT_SIZE
        );
        assert_eq!(core::mem::size_of::<crate::callback::CbFrame>() % 16, 0);
        assert_eq!(core::mem::size_of::<config::GateConfig>(), 4096);
        assert_eq!(
            offset_of!(config::GateConfig, deny_mask),
            0,
            "read as [rip + cfg]"
        );
    }
}
