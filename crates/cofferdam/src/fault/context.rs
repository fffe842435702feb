//! The one place that reads and writes a signal context: the `siginfo` and
//! the kernel's `ucontext` (registers, the XSAVE area with PKRU). Everything
//! else in the fault path goes through [`SignalContext`].
//!
//! A `SignalContext` is only ever made for a frame the signal entry
//! authenticated (on mpk: a kernel frame on the thread's P-tagged alternate
//! stack, see `gate/asm.rs`), so what it reads is what the kernel wrote, and
//! what it writes only the kernel's `rt_sigreturn` reads.

use core::ffi::c_void;

use crate::gate;

/// `XSTATE_BV`, the XSAVE header's bitmap of components present, is at byte
/// 512 of the XSAVE area; PKRU is component 9.
const XSTATE_BV_OFFSET: usize = 512;
const XFEATURE_PKRU: u64 = 1 << 9;
/// `fpstate->sw_reserved` (bytes 464..512) starts with this magic when the
/// frame carries an XSAVE area.
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;

/// A signal's `siginfo` and `ucontext`, as the kernel delivered them.
pub(crate) struct SignalContext {
    info: *mut libc::siginfo_t,
    uc: *mut libc::ucontext_t,
}

impl SignalContext {
    /// # Safety
    /// `info` and `ctx` are what the kernel passed to the running
    /// SA_SIGINFO handler, and the value is used only while that handler
    /// runs. Only for a frame the signal entry authenticated is what it
    /// reads the kernel's word (`cofferdam_signal_untrusted` reads one it
    /// could not authenticate, as untrusted input, without rights).
    pub(crate) unsafe fn new(info: *mut libc::siginfo_t, ctx: *mut c_void) -> Self {
        SignalContext {
            info,
            uc: ctx.cast(),
        }
    }

    /// `si_code`: positive for a fault the CPU raised, zero or negative for a
    /// signal sent by `kill`, `tgkill`, `sigqueue`.
    pub(crate) fn code(&self) -> i32 {
        // SAFETY: the kernel's siginfo (contract of `new`).
        unsafe { (*self.info).si_code }
    }

    /// `si_addr` (memory faults: the address accessed).
    pub(crate) fn addr(&self) -> usize {
        // SAFETY: as above.
        unsafe { (*self.info).si_addr() as usize }
    }

    /// `si_pkey` (byte 32 of siginfo, after `si_addr` and `si_addr_lsb`),
    /// meaningful for `SEGV_PKUERR` only.
    pub(crate) fn pkey(&self) -> i32 {
        // SAFETY: as above; siginfo is 128 bytes.
        unsafe { ((self.info as *const u8).add(32) as *const i32).read_unaligned() }
    }

    /// For a seccomp SIGSYS: `si_call_addr` (byte 16), the address after the
    /// trapped `syscall` instruction.
    pub(crate) fn call_addr(&self) -> usize {
        // SAFETY: the kernel's siginfo (contract of `new`); 128 bytes.
        unsafe { ((self.info as *const u8).add(16) as *const usize).read_unaligned() }
    }

    /// For a seccomp SIGSYS: the syscall number (`si_syscall`, byte 24) and
    /// the audit architecture (`si_arch`, byte 28).
    pub(crate) fn syscall(&self) -> (u32, u32) {
        // SAFETY: as above.
        unsafe {
            let b = self.info as *const u8;
            (
                (b.add(24) as *const i32).read_unaligned() as u32,
                (b.add(28) as *const u32).read_unaligned(),
            )
        }
    }

    /// The kernel's ucontext itself, for the syscall guard's emulations
    /// (`sigaltstack`, `rt_sigprocmask`), which write its stack and mask.
    pub(crate) fn ucontext(&self) -> *mut libc::ucontext_t {
        self.uc
    }

    fn gregs(&self) -> *mut libc::greg_t {
        // SAFETY: the kernel's ucontext (contract of `new`).
        unsafe { (*self.uc).uc_mcontext.gregs.as_mut_ptr() }
    }

    /// General register `r` (`libc::REG_*`).
    pub(crate) fn reg(&self, r: i32) -> u64 {
        // SAFETY: r is one of the 23 REG_* indices.
        unsafe { *self.gregs().add(r as usize) as u64 }
    }

    /// Sets general register `r`, as `rt_sigreturn` will restore it.
    pub(crate) fn set_reg(&self, r: i32, v: u64) {
        // SAFETY: as above; the frame is writable (the handler's own).
        unsafe { *self.gregs().add(r as usize) = v as i64 }
    }

    /// The interrupted instruction pointer.
    pub(crate) fn ip(&self) -> usize {
        self.reg(libc::REG_RIP) as usize
    }

    /// The page-fault error code (bit 1: write, bit 4: instruction fetch).
    pub(crate) fn err(&self) -> u64 {
        self.reg(libc::REG_ERR)
    }

    /// The six syscall argument registers.
    pub(crate) fn args(&self) -> [u64; 6] {
        [
            self.reg(libc::REG_RDI),
            self.reg(libc::REG_RSI),
            self.reg(libc::REG_RDX),
            self.reg(libc::REG_R10),
            self.reg(libc::REG_R8),
            self.reg(libc::REG_R9),
        ]
    }

    /// Makes the handler's return resume at `ip` with stack pointer `sp`.
    pub(crate) fn resume_at(&self, ip: usize, sp: usize) {
        self.set_reg(libc::REG_RIP, ip as u64);
        self.set_reg(libc::REG_RSP, sp as u64);
    }

    /// Sets the alternate stack `rt_sigreturn` will restore (`uc_stack`).
    pub(crate) fn set_alt_stack(&self, lo: usize, size: usize, flags: i32) {
        // SAFETY: the kernel's ucontext (contract of `new`).
        unsafe {
            (*self.uc).uc_stack = libc::stack_t {
                ss_sp: lo as *mut c_void,
                ss_flags: flags,
                ss_size: size,
            };
        }
    }

    /// Where PKRU and `XSTATE_BV` sit in this frame's XSAVE area, if it has
    /// one that holds PKRU.
    fn pkru_slot(&self) -> Option<(*mut u32, *mut u64)> {
        let offset = gate::config::get().pkru_xsave_offset as usize;
        // SAFETY: the kernel fills uc_mcontext.fpregs with a pointer into the
        // signal frame (or null); the checks below stay inside its sizes.
        unsafe {
            let fp = (*self.uc).uc_mcontext.fpregs as *mut u8;
            if fp.is_null() || offset == 0 {
                return None;
            }
            let magic1 = (fp.add(464) as *const u32).read_unaligned();
            let xstate_size = (fp.add(464 + 16) as *const u32).read_unaligned();
            if magic1 != FP_XSTATE_MAGIC1 || (xstate_size as usize) < offset + 4 {
                return None;
            }
            Some((fp.add(offset).cast(), fp.add(XSTATE_BV_OFFSET).cast()))
        }
    }

    /// PKRU of the interrupted code (0, all rights, when the frame says PKRU
    /// was in its initial state), or `None` when the frame carries none.
    pub(crate) fn pkru(&self) -> Option<u32> {
        let (pkru, bv) = self.pkru_slot()?;
        // SAFETY: both pointers lie inside the XSAVE area (pkru_slot).
        Some(unsafe {
            if bv.read_unaligned() & XFEATURE_PKRU != 0 {
                pkru.read_unaligned()
            } else {
                0
            }
        })
    }

    /// Sets the PKRU `rt_sigreturn` will restore.
    pub(crate) fn set_pkru(&self, v: u32) {
        if let Some((pkru, bv)) = self.pkru_slot() {
            // SAFETY: both pointers lie inside the XSAVE area (pkru_slot).
            unsafe {
                pkru.write_unaligned(v);
                bv.write_unaligned(bv.read_unaligned() | XFEATURE_PKRU);
            }
        }
    }

    /// Whether the interrupted code ran with P's rights: trusted code. Without
    /// MPK every context counts as trusted here (nothing is protected).
    pub(crate) fn trusted(&self) -> bool {
        let deny = gate::config::get().deny_mask;
        deny == 0 || self.pkru().is_some_and(|p| p & deny == 0)
    }

    /// Whether the interrupted code ran with P denied: foreign code. `false`
    /// without MPK (callers then decide from the thread's gate state).
    pub(crate) fn foreign(&self) -> bool {
        let deny = gate::config::get().deny_mask;
        deny != 0 && self.pkru().is_some_and(|p| p & deny == deny)
    }
}
