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
//! # Re-entry
//!
//! Calls nest: a gate call made while another is in progress on the same
//! thread (from a signal handler, or from Rust code that foreign code called
//! through a raw function pointer) pushes a new frame and pops it on return;
//! a fault is charged to the innermost call. Foreign code that calls back into
//! Rust without a Cofferdam callback runs that Rust code *without* the
//! protected domain's rights, so the first touch of the Rust heap faults and
//! the outer call returns `Err(Fault)`. Callbacks that take the rights back
//! properly are a later capability (stack isolation and callbacks).

mod asm;
pub(crate) mod config;
// The syscall guard's token re-issue (asm; kept out of the gate's own file).
pub(crate) mod syscall;

use core::cell::Cell;
use core::mem::MaybeUninit;
use core::ptr;

pub(crate) use asm::{cofferdam_gate_landing, cofferdam_signal_entry};

/// The benchmark floor: `f(x)` with a bare WRPKRU pair around it (deny P,
/// call, allow P) and none of the gate's checks. Returns `None` where the
/// mpk backend is not in force.
///
/// This is not a gate (no check of the values written, no fault recovery):
/// it exists only to measure what any MPK gate must cost on this CPU.
#[doc(hidden)]
#[cfg(feature = "bench-floor")]
pub fn wrpkru_pair_call(f: extern "C" fn(i32) -> i32, x: i32) -> Option<i32> {
    crate::backend::runtime().pkey?;
    // SAFETY: the mpk backend is in force, so the configuration holds P's
    // mask and WRPKRU is defined; `f` is a safe extern "C" function.
    Some(unsafe { asm::cofferdam_wrpkru_pair_call(f, x) })
}

/// Details of a fault, written by the fault handler into the frame of the
/// call that faulted.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct FaultRecord {
    pub signal: i32,
    pub si_code: i32,
    pub address: usize,
    pub ip: usize,
    /// The page-fault error code (bit 1: write, bit 4: instruction fetch).
    pub err: u64,
    /// The protection key the kernel reported (`si_pkey`), or -1.
    pub pkey: i32,
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
    /// 56: the stack pointer the landing pad resumes on after a fault.
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
    /// The enclosing call on this thread, if any.
    pub prev: *mut GateFrame,
    /// Written by the fault handler, and only read when `status` says the
    /// call faulted.
    pub fault: MaybeUninit<FaultRecord>,
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
            prev: ptr::null_mut(),
            fault: MaybeUninit::uninit(),
        }
    }
}

thread_local! {
    /// The innermost gate call in progress on this thread. Const-initialised
    /// and without a destructor: reading it allocates nothing and is safe in
    /// a signal handler.
    static CURRENT: Cell<*mut GateFrame> = const { Cell::new(ptr::null_mut()) };
}

/// The innermost gate call in progress on this thread, or null.
pub(crate) fn current_frame() -> *mut GateFrame {
    CURRENT.with(|c| c.get())
}

/// Whether this thread is inside a gate call (foreign code is, or may be,
/// running below us on this thread's stack).
pub(crate) fn in_gate() -> bool {
    !current_frame().is_null()
}

extern "C" {
    /// See `asm.rs`: calls `frame.func` with `frame.args`, PKRU switched.
    fn cofferdam_gate_call(frame: *mut GateFrame);
}

/// Calls the foreign function described by `frame` through the gate.
/// Returns `true` if the call returned and `false` if a fault ended it (the
/// frame's `fault` record says which).
///
/// # Safety
/// `frame.func` must be a foreign function that may be called with the six
/// argument registers set to `frame.args` (System V ABI), and the process must
/// have been configured with [`config::configure`].
#[inline(always)]
pub(crate) unsafe fn call(frame: &mut GateFrame) -> bool {
    let prev = CURRENT.with(|c| c.replace(frame as *mut GateFrame));
    frame.prev = prev;
    // SAFETY: the frame lives on this stack frame for the whole call; the
    // foreign function's contract is the caller's (above).
    unsafe { cofferdam_gate_call(frame) };
    CURRENT.with(|c| c.set(prev));
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

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn layout_matches_asm() {
        assert_eq!(offset_of!(GateFrame, func), 0);
        assert_eq!(offset_of!(GateFrame, args), 8);
        assert_eq!(offset_of!(GateFrame, saved_rsp), 56);
        assert_eq!(offset_of!(GateFrame, trusted_pkru), 64);
        assert_eq!(offset_of!(GateFrame, status), 68);
        assert_eq!(offset_of!(GateFrame, ret), 72);
        assert_eq!(offset_of!(GateFrame, nstack), 88);
        assert_eq!(offset_of!(GateFrame, stack_args), 96);
        assert_eq!(offset_of!(config::GateConfig, deny_mask), 0);
    }
}
