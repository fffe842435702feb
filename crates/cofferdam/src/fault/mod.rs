//! Faults in foreign code become errors; every other signal keeps working.
//!
//! Cofferdam's handler (`gate::cofferdam_signal_entry`, then
//! [`cofferdam_signal_dispatch`]) sits in front of SIGSEGV and SIGBUS, and in
//! front of every handler that trusted code installs for another signal.
//!
//! * A SIGSEGV or SIGBUS raised while this thread is inside a gate call, by
//!   code running without P's rights (that is, foreign code), is recorded in
//!   the call's frame; the handler then rewrites the interrupted context so
//!   that returning from the handler lands on the gate's landing pad, on the
//!   stack the gate saved, with the trusted PKRU restored by `rt_sigreturn`.
//!   No `longjmp`: the kernel does the switch.
//! * Every other fault goes to the handler that was installed before, with
//!   P's rights, so Rust's own stack-overflow report still appears; if that
//!   was the default action, the default is put back and the faulting
//!   instruction runs again and kills the process as it would have.
//! * The kernel enters every signal handler with its default PKRU, which
//!   denies P. A handler that touches the heap (a `signal-hook` flag behind an
//!   `Arc`, a handler reading a `Box`) would fault. Cofferdam therefore
//!   interposes `sigaction` and `signal` (see `signals.rs`): handlers
//!   installed by trusted code, before or after Cofferdam started, are entered
//!   through the trampoline, which takes P's rights first.

mod signals;

use core::ffi::c_void;

pub use signals::is_wrapped;
pub(crate) use signals::{install, table_page};

use crate::gate::{self, FaultRecord};

/// Called by `cofferdam_signal_entry` for a signal frame the kernel wrote
/// (authenticated: see the entry in `gate/asm.rs`), with P's rights taken,
/// on the thread's alternate stack. `st` is the thread's own state, found
/// from where the frame lies; null only without MPK (nothing is protected
/// then and the entry authenticates nothing), when it is looked up here.
pub(crate) extern "C" fn cofferdam_signal_dispatch(
    sig: i32,
    info: *mut libc::siginfo_t,
    ctx: *mut c_void,
    st: *mut gate::thread::ThreadState,
) {
    let st = if st.is_null() {
        gate::thread::for_signal_handler()
    } else {
        Some(st)
    };
    if is_fault_signal(sig)
        // SAFETY: the kernel passes a valid siginfo and ucontext to an
        // SA_SIGINFO handler.
        && unsafe { recover(sig, info, ctx, st) }
    {
        return;
    }
    // The syscall guard's traps (crate::guard).
    // SAFETY: as above.
    if sig == libc::SIGSYS && unsafe { crate::guard::on_sigsys(info, ctx) } {
        return;
    }
    // A handler that makes gate calls while this thread was interrupted on
    // its foreign stack must not put its foreign frames over the
    // interrupted ones: lower the thread's foreign stack top for the
    // handler's duration. (Signals that arrive while such a call runs are
    // framed on the alternate stack below this handler's frames: see
    // `gate::call`.)
    let mut saved = None;
    if let Some(st) = st {
        // SAFETY: ctx is the kernel's ucontext; st is this thread's state
        // (checked by tid), written only by this thread.
        unsafe {
            let rsp = (*(ctx as *mut libc::ucontext_t)).uc_mcontext.gregs[libc::REG_RSP as usize]
                as usize;
            let top = (*st).foreign_top;
            let lo = (*st).foreign_map;
            if lo != 0 && lo < rsp && rsp <= top {
                saved = Some(top);
                (*st).foreign_top = (rsp - 256) & !15;
            }
        }
    }
    // SAFETY: forwarded from the kernel, as above.
    unsafe { signals::forward(sig, info, ctx) };
    if let (Some(st), Some(top)) = (st, saved) {
        // SAFETY: as above.
        unsafe { (*st).foreign_top = top };
    }
}

/// `XSTATE_BV`, the XSAVE header's bitmap of components present, is at byte
/// 512 of the XSAVE area; PKRU is component 9.
const XSTATE_BV_OFFSET: usize = 512;
const XFEATURE_PKRU: u64 = 1 << 9;
/// `fpstate->sw_reserved` (bytes 464..512) starts with this magic when the
/// frame carries an XSAVE area.
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;

/// Where PKRU sits in this signal frame, if the frame has an XSAVE area that
/// holds it.
///
/// # Safety
/// `uc` is the ucontext the kernel passed to the handler.
unsafe fn pkru_slot(uc: *mut libc::ucontext_t, offset: u32) -> Option<(*mut u8, *mut u64)> {
    // SAFETY: the kernel fills uc_mcontext.fpregs with a pointer into the
    // signal frame (or null); the checks below stay inside its sizes.
    unsafe {
        let fp = (*uc).uc_mcontext.fpregs as *mut u8;
        if fp.is_null() || offset == 0 {
            return None;
        }
        let magic1 = (fp.add(464) as *const u32).read_unaligned();
        let xstate_size = (fp.add(464 + 16) as *const u32).read_unaligned();
        if magic1 != FP_XSTATE_MAGIC1 || (xstate_size as usize) < offset as usize + 4 {
            return None;
        }
        Some((
            fp.add(offset as usize),
            fp.add(XSTATE_BV_OFFSET) as *mut u64,
        ))
    }
}

/// The signals a faulting instruction raises.
pub(crate) fn is_fault_signal(sig: i32) -> bool {
    sig == libc::SIGSEGV || sig == libc::SIGBUS
}

/// If the fault belongs to a gate call on this thread, charge it to that call
/// and arrange the return to the landing pad. Returns whether it did.
///
/// # Safety
/// `info` and `ctx` are what the kernel passed to an SA_SIGINFO handler;
/// `st` is this thread's state.
unsafe fn recover(
    sig: i32,
    info: *mut libc::siginfo_t,
    ctx: *mut c_void,
    st: Option<*mut gate::thread::ThreadState>,
) -> bool {
    let cfg = gate::config::get();
    let uc = ctx as *mut libc::ucontext_t;
    // A checked copy from foreign memory that faulted: resume at its fixup
    // (it returns "faulted" to its trusted caller). Only for trusted code.
    // SAFETY: uc comes from the kernel.
    unsafe {
        let g = &mut (*uc).uc_mcontext.gregs;
        let ip = g[libc::REG_RIP as usize] as usize;
        if gate::in_try_copy(ip) && trusted_at_fault(uc, cfg) {
            g[libc::REG_RIP as usize] = gate::try_copy_fixup() as i64;
            return true;
        }
    }
    let Some(st) = st else {
        return false;
    };
    // SAFETY: st is this thread's own state (table entry, tid checked).
    let frame = unsafe { (*st).current };
    // SAFETY: a non-null current frame is this thread's innermost live one.
    if frame.is_null() || unsafe { (*frame).saved_rsp } == 0 {
        // Not in a gate call, or in the instants before the trampoline has
        // saved its stack pointer (then nothing foreign is running yet).
        return false;
    }
    // SAFETY: as above.
    if unsafe { (*frame).cb_active } != 0 {
        // A callback of this call is running: Rust code, not foreign.
        return false;
    }
    if cfg.deny_mask != 0 {
        // SAFETY: uc comes from the kernel.
        let Some(at_fault) = (unsafe { pkru_at_signal(uc) }) else {
            return false;
        };
        // Trusted code (the gate after taking rights back, or a handler that
        // interrupted foreign code) runs with P allowed: its faults are not
        // foreign faults and are never swallowed.
        if at_fault & cfg.deny_mask != cfg.deny_mask {
            return false;
        }
    }
    // SAFETY: info/uc from the kernel. si_pkey is at byte 32 of siginfo for
    // SEGV_PKUERR (after si_addr and si_addr_lsb).
    let record = unsafe {
        let code = (*info).si_code;
        let pkey = if sig == libc::SIGSEGV && code == SEGV_PKUERR {
            ((info as *const u8).add(32) as *const u32).read_unaligned() as i32
        } else {
            -1
        };
        let g = &(*uc).uc_mcontext.gregs;
        FaultRecord {
            signal: sig,
            si_code: code,
            address: (*info).si_addr() as usize,
            ip: g[libc::REG_RIP as usize] as usize,
            err: g[libc::REG_ERR as usize] as u64,
            pkey,
        }
    };
    // SAFETY: frame is this thread's innermost live gate frame with a saved
    // stack pointer (checked above); uc from the kernel.
    unsafe { end_gate_call(frame, uc, record) };
    true
}

/// Ends gate call `frame` from a signal handler: records `record` in the
/// frame, puts the trusted PKRU into the signal frame (so `rt_sigreturn`
/// restores it) and makes the handler's return land on the gate's landing
/// pad on the stack the gate saved. The call then returns `Err(Fault)`.
///
/// # Safety
/// `frame` is this thread's innermost live gate frame (`gate::current_frame`)
/// and its `saved_rsp` is set; `uc` is the ucontext the kernel passed to the
/// running handler.
pub(crate) unsafe fn end_gate_call(
    frame: *mut gate::GateFrame,
    uc: *mut libc::ucontext_t,
    record: FaultRecord,
) {
    let cfg = gate::config::get();
    if cfg.deny_mask != 0 {
        // SAFETY: uc comes from the kernel; the slot lies in its XSAVE area.
        if let Some((pkru, bv)) = unsafe { pkru_slot(uc, cfg.pkru_xsave_offset) } {
            // SAFETY: both pointers lie inside the signal frame's XSAVE area;
            // frame is live (contract).
            unsafe {
                (pkru as *mut u32).write_unaligned((*frame).trusted_pkru);
                bv.write_unaligned(bv.read_unaligned() | XFEATURE_PKRU);
            }
        }
    }
    // SAFETY: frame and uc as in the contract.
    unsafe {
        let g = &mut (*uc).uc_mcontext.gregs;
        (*frame).fault.write(record);
        g[libc::REG_RIP as usize] = gate::cofferdam_gate_landing as *const () as usize as i64;
        g[libc::REG_RSP as usize] = (*frame).saved_rsp as i64;
    }
}

/// PKRU of the interrupted context, from the signal frame's XSAVE area
/// (0, all rights, when the frame says PKRU was in its initial state), or
/// `None` when the frame carries no PKRU.
///
/// # Safety
/// `uc` is the ucontext the kernel passed to the running handler.
pub(crate) unsafe fn pkru_at_signal(uc: *mut libc::ucontext_t) -> Option<u32> {
    let cfg = gate::config::get();
    // SAFETY: uc comes from the kernel.
    let (pkru, bv) = unsafe { pkru_slot(uc, cfg.pkru_xsave_offset) }?;
    // SAFETY: both pointers lie inside the XSAVE area (checked by pkru_slot).
    Some(unsafe {
        if bv.read_unaligned() & XFEATURE_PKRU != 0 {
            (pkru as *const u32).read_unaligned()
        } else {
            0
        }
    })
}

/// Whether the interrupted code ran with P's rights (trusted code). Without
/// MPK every fault counts as trusted here.
///
/// # Safety
/// `uc` is the ucontext the kernel passed to the handler.
unsafe fn trusted_at_fault(uc: *mut libc::ucontext_t, cfg: &gate::config::GateConfig) -> bool {
    if cfg.deny_mask == 0 {
        return true;
    }
    // SAFETY: forwarded contract.
    unsafe { pkru_at_signal(uc) }.is_some_and(|at_fault| at_fault & cfg.deny_mask == 0)
}

/// `si_code` for a protection-key violation.
pub(crate) const SEGV_PKUERR: i32 = 4;

/// Called by `cofferdam_signal_entry`, WITHOUT P's rights, for a signal whose
/// frame it could not authenticate on a thread that is not inside a gate
/// call: a thread that foreign code created (it has no state), or foreign
/// code calling the entry outside any gate. Touches only its arguments
/// (memory of the caller's), the read-only configuration page and the
/// kernel; the entry then resumes `ctx` without rt_sigreturn.
///
/// * a trapped system call is refused (`EPERM`);
/// * a hardware fault (`si_code > 0`) ends the thread, not the process: it
///   ran no trusted code, and there is no gate call to return an error from;
/// * a fault signal sent with `kill`/`tgkill` (`si_code <= 0`) is not a
///   fault: it is dropped;
/// * any other signal is sent on to the main thread, where the program's
///   own handler runs with its rights as usual.
pub(crate) extern "C" fn cofferdam_signal_untrusted(
    sig: i32,
    info: *mut libc::siginfo_t,
    ctx: *mut c_void,
) {
    const SYS_SECCOMP: i32 = 1;
    if info.is_null() || ctx.is_null() {
        return;
    }
    // SAFETY: `info` and `ctx` point to memory of this thread's own (the
    // kernel's frame, or whatever the caller of the entry passed: then a
    // fault here ends only that caller's thread); no rights are held.
    unsafe {
        let code = (*info).si_code;
        let g = &mut (*(ctx as *mut libc::ucontext_t)).uc_mcontext.gregs;
        if sig == libc::SIGSYS && code == SYS_SECCOMP {
            g[libc::REG_RAX as usize] = -(libc::EPERM as i64);
            return;
        }
        if matches!(
            sig,
            libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
        ) {
            if code > 0 {
                crate::sys::write_stderr(
                    b"cofferdam: a thread without a Cofferdam state (started by foreign code) \
                      faulted; ending that thread\n",
                );
                crate::sys::exit_thread();
            }
            return;
        }
    }
    let main = gate::config::get().main_tid;
    if main != 0 && main != crate::sys::gettid() {
        crate::sys::tgkill(crate::sys::getpid(), main, sig);
    }
}

/// Called by `cofferdam_refuse` (`gate/asm.rs`), with rights, on the Rust
/// stack the gate saved, when a trampoline's check failed during gate call
/// `frame`: the call ends with [`crate::FaultKind::Integrity`].
pub(crate) extern "C" fn cofferdam_signal_forged(frame: *mut gate::GateFrame) {
    let record = FaultRecord {
        signal: 0,
        si_code: 0,
        address: 0,
        ip: 0,
        err: 0,
        pkey: -1,
    };
    // SAFETY: the entry found `frame` as this thread's innermost live gate
    // call through its checked state; only this thread writes it.
    unsafe { (*frame).fault.write(record) };
}

/// The syscall guard's token, which the filter demands of `rt_sigreturn`
/// (so that foreign code cannot return through a frame it built), or null
/// when the guard is off. Called by the entry with rights.
pub(crate) extern "C" fn cofferdam_sigreturn_token() -> *const u64 {
    crate::guard::sigreturn_token()
}
