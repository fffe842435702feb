//! Faults in foreign code become errors; every other signal keeps working.
//!
//! Cofferdam's entry (`gate::cofferdam_signal_entry`) sits in front of the
//! fault signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP), SIGABRT and
//! SIGSYS, and in front of every handler that trusted code installs for
//! another signal. It authenticates the frame (the kernel wrote it: see the
//! entry) and calls [`cofferdam_signal_dispatch`] with P's rights, which
//! decides through one classification, [`classify`]:
//!
//! * [`Trap::TryCopy`]: a checked copy from foreign memory by trusted code
//!   faulted; it resumes at its fixup and reports the fault to its caller.
//! * [`Trap::Foreign`]: a fault signal raised while this thread is inside a
//!   gate call, by code running without P's rights (foreign code). It is
//!   recorded in the call's frame ([`FaultRecord`]), and the context is
//!   rewritten so that the return from the handler lands on the gate's
//!   landing pad, on the stack the gate saved, with the call's trusted PKRU.
//!   No `longjmp`: the kernel does the switch. A SIGABRT that foreign code
//!   raises (`abort`, a failed `assert`) counts too.
//! * [`Trap::Syscall`]: the syscall guard's SIGSYS (`crate::guard`).
//! * [`Trap::NotOurs`]: everything else goes to the handler the program
//!   installed, with P's rights, so Rust's own stack-overflow report still
//!   appears; if that is the default action, the default is put back and the
//!   signal happens again (the process ends as it would have).
//!
//! The signal context is read and written only through
//! [`context::SignalContext`].
//!
//! Signals whose frame the entry cannot authenticate, on a thread that is not
//! inside a gate call, are handled without rights by
//! [`cofferdam_signal_untrusted`].

mod context;
mod signals;

use core::ffi::c_void;

pub(crate) use context::SignalContext;
pub use signals::is_wrapped;
pub(crate) use signals::{install, table_page};

use crate::gate::{self, FaultRecord, GateFrame};

/// What a signal is to Cofferdam.
pub(crate) enum Trap {
    /// A fault in `cofferdam_try_copy`, run by trusted code.
    TryCopy,
    /// Foreign code raised it during gate call `frame` (innermost, live).
    Foreign(*mut GateFrame, FaultRecord),
    /// The syscall guard's trap.
    Syscall,
    /// Not Cofferdam's: the program's own handler (or the default) gets it.
    NotOurs,
}

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
    // SAFETY: the kernel's siginfo and ucontext for this handler, whose
    // frame the entry authenticated.
    let cx = unsafe { SignalContext::new(info, ctx) };
    match classify(sig, &cx, st) {
        Trap::TryCopy => cx.set_reg(libc::REG_RIP, gate::try_copy_fixup() as u64),
        // SAFETY: `classify` found `frame` as this thread's innermost live
        // gate frame with its stack pointer saved.
        Trap::Foreign(frame, record) => unsafe { end_gate_call(frame, &cx, record) },
        Trap::Syscall => {
            // SAFETY: the context of this SIGSYS; `st` is this thread's.
            if !unsafe { crate::guard::on_sigsys(&cx, st) } {
                forward_with_frames(sig, info, ctx, st);
            }
        }
        Trap::NotOurs => forward_with_frames(sig, info, ctx, st),
    }
}

/// Hands the signal to the program's handler (`signals::forward`). A handler
/// that makes gate calls while this thread was interrupted on its foreign
/// stack must not put its foreign frames over the interrupted ones: the
/// thread's foreign stack top is lowered for the handler's duration.
/// (Signals that arrive while such a call runs are framed on the alternate
/// stack below this handler's frames: see `gate::call`.)
fn forward_with_frames(
    sig: i32,
    info: *mut libc::siginfo_t,
    ctx: *mut c_void,
    st: Option<*mut gate::thread::ThreadState>,
) {
    let mut saved = None;
    if let Some(st) = st {
        // SAFETY: ctx is the kernel's ucontext; st is this thread's state
        // (authenticated by the entry), written only by this thread.
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

/// The signals Cofferdam keeps in front of, whatever the program installs:
/// those a faulting instruction raises, and SIGABRT (which foreign code's
/// `abort` raises).
pub(crate) fn is_fault_signal(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL | libc::SIGTRAP | libc::SIGABRT
    )
}

/// The one classification of a signal (see the module docs).
fn classify(sig: i32, cx: &SignalContext, st: Option<*mut gate::thread::ThreadState>) -> Trap {
    if sig == libc::SIGSYS {
        return Trap::Syscall;
    }
    if !is_fault_signal(sig) {
        return Trap::NotOurs;
    }
    // A checked copy from foreign memory that faulted: resume at its fixup
    // (it returns "faulted" to its trusted caller). Only for trusted code.
    if matches!(sig, libc::SIGSEGV | libc::SIGBUS) && gate::in_try_copy(cx.ip()) && cx.trusted() {
        return Trap::TryCopy;
    }
    let Some(frame) = foreign_call(cx, st) else {
        return Trap::NotOurs;
    };
    let code = cx.code();
    let ip = cx.ip();
    let record = if code <= 0 {
        // Sent with kill/tgkill/raise, not raised by the CPU: never taken
        // for a hardware fault. (abort() raises SIGABRT this way.)
        FaultRecord::Sent { signal: sig, ip }
    } else {
        match sig {
            libc::SIGSEGV | libc::SIGBUS => FaultRecord::Memory {
                signal: sig,
                code,
                address: cx.addr(),
                ip,
                err: cx.err(),
                pkey: if sig == libc::SIGSEGV && code == SEGV_PKUERR {
                    cx.pkey()
                } else {
                    -1
                },
            },
            _ => FaultRecord::Instruction {
                signal: sig,
                code,
                ip,
            },
        }
    };
    Trap::Foreign(frame, record)
}

/// The gate call foreign code was running in when this signal came: this
/// thread's innermost live call, with no callback of it running, and (on
/// mpk) an interrupted PKRU that denies P.
pub(crate) fn foreign_call(
    cx: &SignalContext,
    st: Option<*mut gate::thread::ThreadState>,
) -> Option<*mut GateFrame> {
    let st = st?;
    // SAFETY: st is this thread's own state (authenticated by the entry, or
    // checked by thread id without MPK).
    let frame = unsafe { (*st).current };
    // SAFETY: a non-null current frame is this thread's innermost live one.
    if frame.is_null() || unsafe { (*frame).saved_rsp } == 0 {
        // Not in a gate call, or in the instants before the trampoline has
        // saved its stack pointer (then nothing foreign is running yet).
        return None;
    }
    // SAFETY: as above.
    if unsafe { (*frame).cb_active } != 0 {
        // A callback of this call is running: Rust code, not foreign.
        return None;
    }
    // Trusted code (the gate after taking rights back, a handler that
    // interrupted foreign code) runs with P allowed: its faults are not
    // foreign faults and are never swallowed.
    if gate::config::get().deny_mask != 0 && !cx.foreign() {
        return None;
    }
    Some(frame)
}

/// Ends gate call `frame` from a signal handler: records `record` in the
/// frame, puts the call's trusted PKRU into the signal frame (so
/// `rt_sigreturn` restores it) and makes the handler's return land on the
/// gate's landing pad on the stack the gate saved. The call then returns
/// `Err(Fault)`. The frame is the kernel's, on the thread's P-tagged
/// alternate stack (authenticated by the entry): foreign code cannot read
/// the stack pointer written into it.
///
/// # Safety
/// `frame` is this thread's innermost live gate frame (`foreign_call`) and
/// its `saved_rsp` is set; `cx` is the running handler's context.
pub(crate) unsafe fn end_gate_call(frame: *mut GateFrame, cx: &SignalContext, record: FaultRecord) {
    // SAFETY: frame is live (contract).
    unsafe {
        if gate::config::get().deny_mask != 0 {
            cx.set_pkru((*frame).trusted_pkru);
        }
        (*frame).fault.write(record);
        cx.resume_at(
            gate::cofferdam_gate_landing as *const () as usize,
            (*frame).saved_rsp,
        );
    }
    // Whatever foreign code did to this thread's alternate stack before the
    // fault (a handler of its own whose delivery disarmed it), the thread
    // gets its slot back: rt_sigreturn restores `uc_stack`.
    if let Some(st) = gate::thread::existing() {
        if let Some((lo, hi)) = gate::thread::alt_stack_of(st) {
            cx.set_alt_stack(lo, hi - lo, 1 << 31); // SS_AUTODISARM
        }
    }
}

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
                // Who faulted? The frame is not authenticated, so its PKRU
                // only chooses between two ways to stop: a thread whose code
                // ran without P's rights (one foreign code started) is ended,
                // and the program carries on; one that had them (trusted code
                // on a thread Cofferdam never adopted) ends the process, as
                // its fault would have without Cofferdam. Lying about it
                // gains nothing but the choice between the two.
                let cx = SignalContext::new(info, ctx);
                if cx.foreign() {
                    crate::sys::write_stderr(
                        b"cofferdam: a thread foreign code started faulted; ending that thread\n",
                    );
                    crate::sys::exit_thread();
                }
                crate::sys::write_stderr(
                    b"cofferdam: a fault on a thread without a Cofferdam state (not adopted: \
                      started before the runtime or without pthread_create); ending the process\n",
                );
                crate::sys::tgkill(crate::sys::getpid(), crate::sys::gettid(), libc::SIGKILL);
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
    let record = FaultRecord::Integrity;
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

/// `si_code` for a protection-key violation.
pub(crate) const SEGV_PKUERR: i32 = 4;
