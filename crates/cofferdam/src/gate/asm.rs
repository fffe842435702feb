//! The trampolines, in assembly (Intel syntax, System V x86_64).
//!
//! ```text
//!  cofferdam_gate_call(frame)           Rust stack (tagged P)        foreign stack (untagged)
//!  ─────────────────────────            ┌─────────────────────┐      ┌────────────────────────┐
//!   push rbp rbx r12..r15 frame   ────▶ │ return into Rust     │      │ C's frames of enclosing │
//!   save MXCSR, x87 control word        │ rbp rbx r12..r15     │      │ calls (callbacks nest)  │
//!   frame.saved_rsp = rsp               │ frame ◀─ saved_rsp   │      ├────────────────────────┤
//!   rsp = frame.foreign_sp  ──────────────────────────────────────▶  │ stack arguments 7..22   │◀ foreign_sp
//!   copy stack arguments, load          └─────────────────────┘      │ return into the gate    │
//!   integer and SSE argument registers                                │ foreign frames …        │
//!   PKRU |= deny_mask (WRPKRU), check                                 └────────────────────────┘
//!   call frame.func
//!   PKRU &= ~deny_mask (WRPKRU), check
//!   state = TLS slot, checked: inside the P-tagged state table, owned by this thread (FS base)
//!   frame = state.current; rsp must equal frame.foreign_sp
//!   rsp = frame.saved_rsp; restore MXCSR/x87 CW (reload, or compare and
//!   reload what differs: per CPU vendor, from the config page);
//!   store rax rdx xmm0 xmm1; return
//! ```
//!
//! The Rust stack pointer is kept only in the frame, which lives on the Rust
//! stack (tagged with P), and is found again through the thread's state in the
//! P-tagged state table: foreign code can neither read nor forge it. A fault
//! in foreign code ends on the landing pad: the handler sets rip to it, rsp to
//! `frame.saved_rsp` and PKRU (in the signal frame) to the trusted value.
//!
//! ERIM's discipline: every WRPKRU is followed by a check, against the
//! read-only configuration page, that the value written is the one this
//! trampoline means at that point. A jump straight onto a WRPKRU with a value
//! of the attacker's choosing therefore either fails the check (`ud2`) or
//! continues along the path that trampoline would have taken anyway.
//!
//! Callbacks: `cofferdam_cb_stubs` holds one 16-byte stub per callback slot
//! (`mov r11d, slot; jmp cofferdam_callback_entry`). The entry takes P's
//! rights, checks the thread's state as above, switches to the Rust stack
//! below the frame of the gate call in progress, and calls
//! `callback::cofferdam_callback_dispatch`, which decides whether the slot is
//! armed for this call on this thread. Without a valid state or a call in
//! progress (a thread of C's own, a call after the outer call returned) the
//! callback is refused on the spot: the slot's error value goes back to C
//! and its refusal count goes up. Either way the entry drops the rights
//! again, checks, and returns to C on C's stack with the caller-saved
//! registers cleared.
//!
//! When the configuration's deny mask is 0 (no MPK), the PKRU steps are
//! skipped: WRPKRU would fault where the OS has not enabled protection keys.
//! The stack switch and the state checks happen on every backend.

use core::mem::offset_of;

use super::config::{GateConfig, CONFIG};
use super::thread::ThreadState;
use super::GateFrame;
use crate::callback::{CbFrame, Slot};

/// The kernel's x86_64 signal frame as the handler finds it at its stack
/// pointer (`struct rt_sigframe`): the restorer's address, then the
/// `ucontext` (the kernel's, 304 bytes: flags, link, stack, the 256-byte
/// `sigcontext`, the mask), then the `siginfo` (128 bytes), then the XSAVE
/// area, 64-aligned. Checked against what the kernel delivers by
/// `tests/integrity.rs`.
pub(crate) const FRAME_UC: usize = 8;
pub(crate) const FRAME_INFO: usize = FRAME_UC + 304;
/// A word in the tail of `siginfo` that the kernel zeroes at every delivery
/// (it copies a 48-byte `kernel_siginfo` and clears the rest) and that no
/// signal uses: the signal entry sets it once it has taken the frame, so a
/// frame is dispatched at most once.
pub(crate) const SIGINFO_MARK: usize = 120;
/// In the kernel's `ucontext`: the general registers (glibc's `gregs`
/// order), the pointer to the XSAVE area, the signal mask.
const UC_GREGS: usize = 40;
const UC_FPREGS: usize = UC_GREGS + 23 * 8;
const UC_SIGMASK: usize = UC_GREGS + 256;

extern "C" {
    /// Landing pad for fault recovery; never called, only resumed at.
    pub(crate) fn cofferdam_gate_landing();
    /// Entry of every signal handler Cofferdam installs (`sa_sigaction`):
    /// takes P's rights, calls `cofferdam_signal_dispatch(sig, info, ctx)`,
    /// drops them again before returning to the kernel's restorer.
    pub(crate) fn cofferdam_signal_entry(
        sig: i32,
        info: *mut libc::siginfo_t,
        ctx: *mut core::ffi::c_void,
    );
    /// Resumes the context a signal frame describes without rt_sigreturn,
    /// PKRU untouched (see the asm).
    pub(crate) fn cofferdam_user_sigreturn(uc: *mut core::ffi::c_void) -> !;
    /// See the asm: a copy that reports a fault instead of taking it.
    pub(crate) fn cofferdam_try_copy(dst: *mut u8, src: *const u8, n: usize) -> u64;
    /// Labels inside `cofferdam_try_copy` (never called).
    pub(crate) fn cofferdam_try_copy_insn();
    pub(crate) fn cofferdam_try_copy_fixup();
    /// The first of `crate::callback::NSLOTS` callback stubs, 16 bytes apart.
    pub(crate) fn cofferdam_cb_stubs();
    /// The end of the trampolines' code (a label, never called): the range
    /// `cofferdam_gate_call..cofferdam_gate_code_end` is the gate.
    pub(crate) fn cofferdam_gate_code_end();
}

/// This thread's state pointer (the asm-defined TLS slot), unchecked.
#[inline(always)]
pub(crate) fn tls_state() -> usize {
    let v: usize;
    // SAFETY: reads the 8-byte initial-exec TLS slot defined below; `fs`
    // always addresses this thread's TLS block.
    unsafe {
        core::arch::asm!(
            "mov {v}, qword ptr [rip + cofferdam_tls_state@GOTTPOFF]",
            "mov {v}, qword ptr fs:[{v}]",
            v = out(reg) v,
            options(nostack, readonly, preserves_flags),
        );
    }
    v
}

/// Sets this thread's state pointer.
#[inline]
pub(crate) fn set_tls_state(p: usize) {
    // SAFETY: writes the 8-byte TLS slot defined below, which only the
    // thread-state code uses.
    unsafe {
        core::arch::asm!(
            "mov {t}, qword ptr [rip + cofferdam_tls_state@GOTTPOFF]",
            "mov qword ptr fs:[{t}], {v}",
            t = out(reg) _,
            v = in(reg) p,
            options(nostack, preserves_flags),
        );
    }
}

/// This thread's FS base: RDFSBASE where user space may run it (`fsgsbase`
/// true), else the TCB's self-pointer at `fs:0` (glibc keeps it there).
#[inline(always)]
pub(crate) fn fs_base(fsgsbase: bool) -> u64 {
    let v: u64;
    if fsgsbase {
        // SAFETY: the kernel set CR4.FSGSBASE (HWCAP2_FSGSBASE, checked by
        // the caller), so RDFSBASE is defined in user mode.
        unsafe {
            core::arch::asm!("rdfsbase {}", out(reg) v, options(nomem, nostack, preserves_flags));
        }
    } else {
        // SAFETY: glibc's TCB starts with a pointer to itself at fs:0.
        unsafe {
            core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) v, options(nostack, readonly, preserves_flags));
        }
    }
    v
}

#[cfg(feature = "bench-floor")]
extern "C" {
    /// The benchmark floor: `f(x)` between two bare WRPKRUs.
    pub(crate) fn cofferdam_wrpkru_pair_call(
        f: extern "C" fn(i32) -> i32,
        x: i32,
        stack_top: usize,
    ) -> i32;
}

// Only with the `bench-floor` feature: an unchecked WRPKRU pair is exactly the
// kind of gadget the gate's checks exist to avoid.
#[cfg(feature = "bench-floor")]
core::arch::global_asm!(
    // ──────────────────── cofferdam_wrpkru_pair_call ────────────────────
    // int cofferdam_wrpkru_pair_call(int (*f)(int) /* rdi */, int x /* esi */)
    // The benchmark floor: the bare WRPKRU pair around a call, with none of
    // the gate's checks, frame or bookkeeping. Not a gate: never use it to
    // call foreign code.
    ".globl cofferdam_wrpkru_pair_call",
    ".type cofferdam_wrpkru_pair_call,@function",
    ".p2align 4",
    "cofferdam_wrpkru_pair_call:",
    // int cofferdam_wrpkru_pair_call(int (*f)(int), int x, void *stack_top):
    // the least any stack-switching MPK gate does: onto another stack, the
    // WRPKRU pair around the call, back.
    "    push rbx",
    "    push rbp",
    "    mov rbx, rdi",
    "    mov rbp, rsp",
    "    mov rsp, rdx",
    "    mov edi, esi",
    "    xor ecx, ecx",
    "    rdpkru",
    "    or eax, dword ptr [rip + {cfg}]",
    "    xor edx, edx",
    "    wrpkru",
    "    call rbx",
    "    mov ebx, eax",
    "    xor ecx, ecx",
    "    rdpkru",
    "    mov r11d, dword ptr [rip + {cfg}]",
    "    not r11d",
    "    and eax, r11d",
    "    xor edx, edx",
    "    wrpkru",
    "    mov eax, ebx",
    "    mov rsp, rbp",
    "    pop rbp",
    "    pop rbx",
    "    ret",
    ".size cofferdam_wrpkru_pair_call, .-cofferdam_wrpkru_pair_call",
    cfg = sym CONFIG,
);

core::arch::global_asm!(
    // The thread's state pointer: initial-exec TLS, read by the trampolines
    // through fs. Foreign code can write it (TLS is not tagged), so every
    // reader checks what it finds (see `thread.rs`).
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".globl cofferdam_tls_state",
    ".hidden cofferdam_tls_state",
    ".type cofferdam_tls_state,@object",
    ".size cofferdam_tls_state, 8",
    "cofferdam_tls_state:",
    "    .zero 8",
    ".popsection",
    "",
    // ─────────────────────── the checked WRPKRU sequences ───────────────────────
    // Every WRPKRU in Cofferdam is one of these two macros, and each is followed
    // at once by a check against the read-only configuration page (ERIM's
    // rule): a jump onto the WRPKRU with a value of the attacker's choosing
    // either fails the check or continues along the path the trampoline would
    // have taken anyway. `tests/integrity.rs` scans the binary and fails if a
    // WRPKRU (or an XRSTOR) stands anywhere else.
    //
    // CD_WRPKRU_DENIED: write eax; P must now be denied (both bits set).
    // CD_WRPKRU_ALLOWED: write eax; P must now be allowed (both bits clear).
    // Both clobber ecx and edx; on a failed check they jump to \\fail.
    ".macro CD_WRPKRU_DENIED fail",
    "    xor ecx, ecx",
    "    xor edx, edx",
    "    wrpkru",
    "    mov ecx, dword ptr [rip + {cfg}]",
    "    and ecx, eax",
    "    cmp ecx, dword ptr [rip + {cfg}]",
    "    jne \\fail",
    ".endm",
    ".macro CD_WRPKRU_ALLOWED fail",
    "    xor ecx, ecx",
    "    xor edx, edx",
    "    wrpkru",
    "    test eax, dword ptr [rip + {cfg}]",
    "    jnz \\fail",
    ".endm",
    // CD_ALLOW_P / CD_DENY_P: PKRU with P's bits cleared / set, every other
    // key as it is. Clobber eax, ecx, edx.
    ".macro CD_ALLOW_P fail",
    "    xor ecx, ecx",
    "    rdpkru",
    "    mov edx, dword ptr [rip + {cfg}]",
    "    not edx",
    "    and eax, edx",
    "    CD_WRPKRU_ALLOWED \\fail",
    ".endm",
    ".macro CD_DENY_P fail",
    "    xor ecx, ecx",
    "    rdpkru",
    "    or eax, dword ptr [rip + {cfg}]",
    "    CD_WRPKRU_DENIED \\fail",
    ".endm",
    "",
    // ───────────────────────── cofferdam_gate_call ─────────────────────────
    // void cofferdam_gate_call(GateFrame *frame /* rdi */)
    ".globl cofferdam_gate_call",
    ".type cofferdam_gate_call,@function",
    ".p2align 4",
    "cofferdam_gate_call:",
    ".cfi_startproc",
    // On entry rsp ≡ 8 (mod 16): the call pushed the return address.
    "    push rbp",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbp, -16",
    "    push rbx",
    ".cfi_def_cfa_offset 24",
    ".cfi_offset rbx, -24",
    "    push r12",
    ".cfi_def_cfa_offset 32",
    "    push r13",
    ".cfi_def_cfa_offset 40",
    "    push r14",
    ".cfi_def_cfa_offset 48",
    "    push r15",
    ".cfi_def_cfa_offset 56",
    "    push rdi",                               // the frame, found again by the landing pad
    ".cfi_def_cfa_offset 64",
    // Seven pushes after the return address: rsp ≡ 0 (mod 16).
    "    stmxcsr dword ptr [rdi + {g_mxcsr}]",          // Rust's control words, restored on the way back
    "    fnstcw word ptr [rdi + {g_fpucw}]",
    "    mov qword ptr [rdi + {g_saved_rsp}], rsp",          // frame.saved_rsp
    // ── onto the foreign stack ──
    "    mov rsp, qword ptr [rdi + {g_foreign_sp}]",         // frame.foreign_sp (16-aligned)
    // Stack arguments 7.. at [rsp], [rsp+8], … (nstack <= 16: the Rust side
    // checked it and left 128 bytes above foreign_sp for them).
    "    mov rcx, qword ptr [rdi + {g_nstack}]",          // frame.nstack
    "    test rcx, rcx",
    "    jz 21f",                                 // the common case: none
    "    mov rsi, qword ptr [rdi + {g_stack_args}]",          // frame.stack_args
    "    xor eax, eax",
    "20:",
    "    cmp rax, rcx",
    "    jae 21f",
    "    mov rdx, qword ptr [rsi + rax*8]",
    "    mov qword ptr [rsp + rax*8], rdx",
    "    inc rax",
    "    jmp 20b",
    "21:",
    // Everything the call needs is read from the frame *before* the rights
    // are dropped: from then on, Rust memory is out of reach.
    "    mov r12d, dword ptr [rip + {cfg}]",      // deny mask of P (0: no MPK)
    "    xor ecx, ecx",
    "    test r12d, r12d",
    "    jz 22f",
    "    rdpkru",                                 // eax = PKRU (trusted), edx = 0
    "    mov dword ptr [rdi + {g_trusted_pkru}], eax",          // frame.trusted_pkru
    "    mov r13d, eax",
    "    or r13d, r12d",                          // r13d = the value that denies P
    "22:",
    "    mov r14, qword ptr [rdi + {g_nsse}]",         // how many SSE registers (al, for varargs)
    "    test r14, r14",
    "    jnz 24f",
    // No SSE arguments: clear the registers (they may hold Rust's data).
    "    xorps xmm0, xmm0",
    "    xorps xmm1, xmm1",
    "    xorps xmm2, xmm2",
    "    xorps xmm3, xmm3",
    "    xorps xmm4, xmm4",
    "    xorps xmm5, xmm5",
    "    xorps xmm6, xmm6",
    "    xorps xmm7, xmm7",
    "    jmp 25f",
    "24:",
    "    movq xmm0, qword ptr [rdi + {g_fargs}]",       // SSE arguments (unused ones are zero)
    "    movq xmm1, qword ptr [rdi + {g_fargs} + 8]",
    "    movq xmm2, qword ptr [rdi + {g_fargs} + 16]",
    "    movq xmm3, qword ptr [rdi + {g_fargs} + 24]",
    "    movq xmm4, qword ptr [rdi + {g_fargs} + 32]",
    "    movq xmm5, qword ptr [rdi + {g_fargs} + 40]",
    "    movq xmm6, qword ptr [rdi + {g_fargs} + 48]",
    "    movq xmm7, qword ptr [rdi + {g_fargs} + 56]",
    "25:",
    "    mov rbx, qword ptr [rdi + {g_func}]",    // the foreign function
    "    mov rsi, qword ptr [rdi + {g_args} + 8]",          // argument 2
    "    mov r10, qword ptr [rdi + {g_args} + 16]",          // argument 3 (rdx after WRPKRU)
    "    mov r11, qword ptr [rdi + {g_args} + 24]",          // argument 4 (rcx after WRPKRU)
    "    mov r8,  qword ptr [rdi + {g_args} + 32]",          // argument 5
    "    mov r9,  qword ptr [rdi + {g_args} + 40]",          // argument 6
    "    mov rdi, qword ptr [rdi + {g_args}]",           // argument 1
    "    test r12d, r12d",
    "    jz 23f",
    "    mov eax, r13d",
    // ── rights on P dropped ── (checked against the mask re-read from the
    // read-only page: a jump onto this WRPKRU with another eax ends at 9)
    "    CD_WRPKRU_DENIED 9f",
    "23:",
    "    mov rdx, r10",
    "    mov rcx, r11",
    "    mov eax, r14d",
    // Nothing of Rust's stays in a register foreign code can read: the
    // callee-saved registers held Rust's values (the frame above has them),
    // rbp pointed into the Rust stack.
    "    xor ebp, ebp",
    "    xor r12d, r12d",
    "    xor r13d, r13d",
    "    xor r14d, r14d",
    "    xor r15d, r15d",
    "    xor r10d, r10d",
    "    xor r11d, r11d",
    "    call rbx",
    // Back from foreign code, on the foreign stack; rax/rdx/xmm0/xmm1 hold
    // its result (WRPKRU touches none of the xmm registers).
    "    mov r8, rax",
    "    mov r9, rdx",
    "    cmp dword ptr [rip + {cfg}], 0",
    "    je 3f",
    // ── rights on P taken back ── (PKRU as foreign code left it, P allowed)
    "    CD_ALLOW_P 9f",
    "3:",
    // Find the frame without trusting anything foreign code can write: the
    // TLS slot must name an entry of the P-tagged state table, owned by the
    // thread running here (its FS base), whose innermost call is this one,
    // made with the stack pointer foreign code has just returned with.
    "    mov rax, qword ptr [rip + cofferdam_tls_state@GOTTPOFF]",
    "    mov rax, qword ptr fs:[rax]",
    "    mov rcx, rax",
    "    sub rcx, qword ptr [rip + {cfg} + {c_state_base}]",  // - state_base
    "    cmp rcx, qword ptr [rip + {cfg} + {c_state_len}]",  // < state_len (unsigned: also catches below)
    "    jae 9f",
    "    test ecx, {state_mask}",                 // on an entry boundary
    "    jnz 9f",
    "    cmp dword ptr [rip + {cfg} + {c_fsgsbase}], 0",    // fsgsbase?
    "    je 31f",
    "    rdfsbase rcx",
    "    cmp rcx, qword ptr [rax + {t_fs_base}]",  // state.fs_base
    "    jne 9f",
    "31:",
    // Where a thread foreign code made may share this thread's FS base (the
    // entry is marked), the FS base proves nothing: the kernel's thread id
    // must be the entry's (see `thread::ident`).
    "    cmp dword ptr [rax + {t_verify}], 0",
    "    jne 36f",
    "37:",
    "    mov rdi, qword ptr [rax + {t_current}]",  // state.current
    "    test rdi, rdi",
    "    jz 9f",
    "    cmp rsp, qword ptr [rdi + {g_foreign_sp}]",         // returned with the rsp it was given
    "    jne 9f",
    // ── back onto the Rust stack ──
    "    mov rsp, qword ptr [rdi + {g_saved_rsp}]",
    "    cmp rdi, qword ptr [rsp]",
    "    jne 9f",
    // The ABI says DF is clear on return; foreign code may not keep to it.
    // Cleared here, after the checks, not before the WRPKRU: a jump onto
    // the WRPKRU would skip a CLD placed before it.
    "    cld",
    // Rust's MXCSR and x87 control word back, whatever foreign code did
    // with them. The configuration says how (chosen per CPU vendor): reload
    // both unconditionally (AMD: LDMXCSR and FLDCW are cheap, STMXCSR is
    // not), or read them and reload only what differs (Intel: the reverse).
    "    cmp dword ptr [rip + {cfg} + {c_cw_reload}], 0",
    "    je 34f",
    "    ldmxcsr dword ptr [rdi + {g_mxcsr}]",
    "    fldcw word ptr [rdi + {g_fpucw}]",
    "    jmp 35f",
    "34:",
    "    sub rsp, 8",
    "    stmxcsr dword ptr [rsp]",
    "    fnstcw word ptr [rsp + 4]",
    "    mov eax, dword ptr [rsp]",
    "    cmp eax, dword ptr [rdi + {g_mxcsr}]",
    "    je 32f",
    "    ldmxcsr dword ptr [rdi + {g_mxcsr}]",
    "32:",
    "    mov ax, word ptr [rsp + 4]",
    "    cmp ax, word ptr [rdi + {g_fpucw}]",
    "    je 33f",
    "    fldcw word ptr [rdi + {g_fpucw}]",
    "33:",
    "    add rsp, 8",
    "35:",
    "    pop rdi",
    "    mov qword ptr [rdi + {g_ret}], r8",           // frame.ret[0] = rax
    "    mov qword ptr [rdi + {g_ret} + 8], r9",           // frame.ret[1] = rdx
    "    movq qword ptr [rdi + {g_fret}], xmm0",       // frame.fret[0]
    "    movq qword ptr [rdi + {g_fret} + 8], xmm1",       // frame.fret[1]
    "    mov dword ptr [rdi + {g_status}], 0",            // frame.status = returned
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbx",
    "    pop rbp",
    ".cfi_def_cfa rsp, 8",
    "    ret",
    "36:",
    "    mov r10, rax",
    "    mov eax, {sys_gettid}",
    "    syscall",                                // (clobbers rcx, r11)
    "    cmp eax, dword ptr [r10 + {t_tid}]",
    "    mov rax, r10",
    "    jne 9f",
    "    jmp 37b",
    "9:",
    // A WRPKRU wrote a value this gate did not mean, or the state or stack
    // pointer is not the one this thread's call left.
    "    jmp cofferdam_refuse",
    ".cfi_endproc",
    ".size cofferdam_gate_call, .-cofferdam_gate_call",
    "",
    // ─────────────────────── cofferdam_gate_landing ───────────────────────
    // Resumed at (never called) by the fault handler with rsp = saved_rsp
    // (on the Rust stack) and PKRU = the trusted value restored by
    // sigreturn.
    ".globl cofferdam_gate_landing",
    ".type cofferdam_gate_landing,@function",
    ".p2align 4",
    "cofferdam_gate_landing:",
    "    cld",                                    // the faulting code may have set DF
    "    mov r11d, dword ptr [rip + {cfg}]",
    "    test r11d, r11d",
    "    jz 4f",
    "    xor ecx, ecx",
    "    rdpkru",
    "    test eax, dword ptr [rip + {cfg}]",      // P must be allowed again
    "    jnz 8f",
    "4:",
    "    pop rdi",                                // frame
    "    fninit",                                 // x87 stack as the faulting code left it: reset
    "    ldmxcsr dword ptr [rdi + {g_mxcsr}]",
    "    fldcw word ptr [rdi + {g_fpucw}]",
    "    mov dword ptr [rdi + {g_status}], 1",            // frame.status = faulted
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbx",
    "    pop rbp",
    "    ret",
    "8:",
    "    jmp cofferdam_refuse",
    ".size cofferdam_gate_landing, .-cofferdam_gate_landing",
    "",
    // ─────────────────────── cofferdam_signal_entry ───────────────────────
    // void cofferdam_signal_entry(int sig /* edi */, siginfo_t *, void *)
    // The `sa_sigaction` of every handler Cofferdam installs. The kernel
    // enters it with its default PKRU (P denied) and rsp pointing at the
    // restorer's address in the frame it wrote (rsp ≡ 8 mod 16).
    //
    // Foreign code can call this address too, with any registers, any stack
    // and a frame of its own making. So on mpk the entry trusts nothing it
    // was handed; it takes P's rights (checked) only to find out, from
    // state foreign code cannot write, whether the kernel delivered this
    // signal:
    //   * rsp lies in the arena of alternate stacks (P-tagged on Linux ≥
    //     6.12, where the kernel writes frames with every key enabled), in
    //     the slot of state-table entry i;
    //   * entry i is in use and its thread id is the caller's (gettid: the
    //     kernel's word, not TLS);
    //   * the siginfo at rsp's fixed offset names this signal, and its mark
    //     word is still 0: each kernel frame is taken once (the mark is set
    //     here, before anything else reads the frame).
    // The frame's pointers are derived from rsp, never taken from rsi/rdx.
    // Such a frame is dispatched with rights on the slot, and the entry
    // returns through rt_sigreturn itself, with the syscall guard's token
    // (which the filter demands of rt_sigreturn): the PKRU restored is the
    // one in the P-tagged frame.
    //
    // Anything else gets no rights. If the thread is inside a gate call,
    // foreign code has called the entry: the call ends with a fault. If not
    // (a thread foreign code created; a forged call outside any gate), the
    // rights are dropped again (checked), `cofferdam_signal_untrusted` runs
    // without them, and the entry returns through a user-space sigreturn
    // that never touches PKRU.
    ".globl cofferdam_signal_entry",
    ".type cofferdam_signal_entry,@function",
    ".p2align 4",
    "cofferdam_signal_entry:",
    "    cmp dword ptr [rip + {cfg}], 0",         // no MPK: nothing to authenticate for
    "    je 110f",
    "    mov r8d, edi",                           // the signal number as passed
    "    mov r9, rsi",                            // the pointers as passed (only the
    "    mov r10, rdx",                           // unauthenticated path uses them)
    "    CD_ALLOW_P 119f",                        // ── rights on P taken ──
    // Is rsp in the arena? Which slot?
    "    mov rax, rsp",
    "    sub rax, qword ptr [rip + {cfg} + {c_alt_base}]",
    "    cmp rax, qword ptr [rip + {cfg} + {c_alt_len}]",
    "    jae 120f",
    "    shr rax, {alt_shift}",
    "    shl rax, {state_shift}",
    "    add rax, qword ptr [rip + {cfg} + {c_state_base}]",
    "    mov rbx, rax",                           // rbx = the entry owning the slot
    "    cmp qword ptr [rbx + {t_fs_base}], 0",   // in use
    "    je 120f",
    "    mov eax, {sys_gettid}",
    "    syscall",                                // (clobbers rcx, r11)
    "    cmp eax, dword ptr [rbx + {t_tid}]",     // owned by this thread
    "    jne 120f",
    "    cmp dword ptr [rsp + {f_info}], r8d",    // si_signo as the kernel wrote it
    "    jne 120f",
    "    cmp qword ptr [rsp + {f_mark}], 0",      // not taken before
    "    jne 120f",
    "    mov qword ptr [rsp + {f_mark}], 1",
    // A kernel frame on this thread's slot: dispatch with rights, here.
    "    mov edi, r8d",
    "    lea rsi, [rsp + {f_info}]",
    "    lea rdx, [rsp + {f_uc}]",
    "    mov rcx, rbx",
    "    sub rsp, 8",                             // rsp ≡ 0 (mod 16)
    "    call {dispatch}",
    "    call {token}",                           // rax = &token, or 0 without the guard
    "    xor r9d, r9d",
    "    test rax, rax",
    "    jz 101f",
    "    mov r9, qword ptr [rax]",
    "101:",
    "    add rsp, 16",                            // rsp = &uc, as rt_sigreturn expects
    "    mov eax, {sys_rt_sigreturn}",
    "    syscall",                                // restores every register, PKRU included
    "    ud2",
    "120:",
    // Not a kernel frame on this thread's slot: foreign code called the entry
    // (or handed it a frame it made). If this thread is inside a gate call,
    // that call ends with a fault; nothing is written to the frame.
    "    lea r11, [rip + 130f]",
    "    jmp cofferdam_refuse_held",
    "130:",
    // No gate call to end (cofferdam_refuse_held came back): give the rights
    // back and handle the signal without them.
    "    CD_DENY_P 119f",                         // ── rights on P dropped ──
    // On a slot of the (P-tagged) arena nothing can run without rights: a
    // thread that is here is not the slot's owner, or replays a frame it
    // already had. It is ended (SYS_exit: this thread only).
    "    mov rax, rsp",
    "    sub rax, qword ptr [rip + {cfg} + {c_alt_base}]",
    "    cmp rax, qword ptr [rip + {cfg} + {c_alt_len}]",
    "    jae 131f",
    "    cmp dword ptr [rip + {cfg} + {c_frames_tagged}], 0",
    "    je 131f",
    "    mov eax, {sys_exit}",
    "    xor edi, edi",
    "    syscall",
    "    ud2",
    "131:",
    "    and rsp, -16",
    "    mov edi, r8d",
    "    mov rsi, r9",
    "    mov rdx, r10",
    "    mov rbx, r10",
    "    call {untrusted}",
    "    mov rdi, rbx",
    "    jmp cofferdam_user_sigreturn",
    "110:",
    // Without MPK nothing is protected and there are no rights to take: the
    // dispatcher finds the thread's state itself.
    "    push rdx",                               // rsp ≡ 0 (mod 16)
    "    xor ecx, ecx",
    "    call {dispatch}",
    "    pop rdi",
    "    cmp dword ptr [rip + {cfg} + {c_inherited}], 0",
    "    jne cofferdam_user_sigreturn",           // rt_sigreturn is the parent's filter's
    // With the syscall guard on (COFFERDAM_SYSCALL_GUARD=on without MPK),
    // rt_sigreturn needs its token, as on the MPK path: the restorer's
    // plain rt_sigreturn would trap, and the trap's return trap again.
    "    push rdi",                               // rsp ≡ 0 (mod 16)
    "    call {token}",
    "    pop rdi",
    "    test rax, rax",
    "    jz 111f",
    "    mov r9, qword ptr [rax]",
    "    add rsp, 8",                             // rsp = &uc, as rt_sigreturn expects
    "    mov eax, {sys_rt_sigreturn}",
    "    syscall",
    "    ud2",
    "111:",
    "    ret",
    "119:",
    "    jmp cofferdam_refuse",
    ".size cofferdam_signal_entry, .-cofferdam_signal_entry",
    "",
    // ─────────────────────────── cofferdam_refuse ───────────────────────────
    // Where every failed check of the trampolines goes: a WRPKRU that wrote a
    // value its trampoline did not mean, a gate return on a state or stack
    // pointer that is not the call's, the landing pad reached without rights,
    // the signal entry called by foreign code. Foreign code got here by
    // jumping into a trampoline (or by returning with a wrong stack pointer).
    //
    // cofferdam_refuse takes P's rights (checked; a failed check starts
    // over), then, as cofferdam_refuse_held (rights held, r11 = where to go if
    // there is no gate call), looks for this thread's gate call the way the
    // gate's return path does: the TLS slot must name an entry in use whose
    // thread id is the caller's (gettid), with a call in progress and no
    // callback running. If there is one, the call ends through the landing
    // pad, on the Rust stack the gate saved, as `Err(Fault)` of kind
    // `integrity`. If there is none, cofferdam_refuse drops the rights again
    // and stops the thread with ud2 (a SIGILL without rights: on a thread
    // foreign code started, the signal entry ends that thread).
    ".type cofferdam_refuse,@function",
    ".p2align 4",
    "cofferdam_refuse:",
    // Without MPK (deny mask 0, on a read-only page) there are no rights to
    // take, and RDPKRU/WRPKRU would fault (#UD) on a CPU without them.
    "    cmp dword ptr [rip + {cfg}], 0",
    "    je 196f",
    "    CD_ALLOW_P cofferdam_refuse",            // (a failed check starts over)
    "196:",
    "    lea r11, [rip + 198f]",
    "cofferdam_refuse_held:",
    "    mov rax, qword ptr [rip + cofferdam_tls_state@GOTTPOFF]",
    "    mov rbx, qword ptr fs:[rax]",
    "    mov rax, rbx",
    "    sub rax, qword ptr [rip + {cfg} + {c_state_base}]",
    "    cmp rax, qword ptr [rip + {cfg} + {c_state_len}]",
    "    jae 197f",
    "    test eax, {state_mask}",
    "    jnz 197f",
    "    cmp qword ptr [rbx + {t_fs_base}], 0",
    "    je 197f",
    "    mov r12, r11",
    "    mov eax, {sys_gettid}",
    "    syscall",                                // (clobbers rcx, r11)
    "    mov r11, r12",
    "    cmp eax, dword ptr [rbx + {t_tid}]",
    "    jne 197f",
    "    mov rdi, qword ptr [rbx + {t_current}]",
    "    test rdi, rdi",
    "    jz 197f",
    "    cmp dword ptr [rdi + {g_cb_active}], 0",
    "    jne 197f",
    "    mov rax, qword ptr [rdi + {g_saved_rsp}]",
    "    test rax, rax",
    "    jz 197f",
    // Everything from here on comes from the checked state, and there is
    // no WRPKRU after this point: whoever jumps into the middle of this
    // routine with rights of their making lands on the Rust stack the gate
    // saved, never on a stack or frame of their own. (PKRU keeps P allowed
    // as it is: the landing pad checks that.)
    "    mov rsp, rax",                           // the gate's saved rsp (≡ 0 mod 16), frame on top
    "    mov rdi, qword ptr [rsp]",
    "    call {forged}",                          // records the fault in the frame
    "    jmp cofferdam_gate_landing",
    "197:",
    "    jmp r11",
    "198:",
    "    cmp dword ptr [rip + {cfg}], 0",
    "    je 199f",
    "    CD_DENY_P cofferdam_refuse",             // (a failed check: back to the top)
    "199:",
    "    ud2",                                    // no gate call to end: stop this thread
    ".size cofferdam_refuse, .-cofferdam_refuse",
    "",
    // ─────────────────────── cofferdam_user_sigreturn ───────────────────────
    // void cofferdam_user_sigreturn(ucontext_t *uc /* rdi */): resumes the
    // context `uc` describes without rt_sigreturn, for signals handled
    // without rights. Restores the signal mask (rt_sigprocmask), the x87/SSE
    // state (FXRSTOR: never PKRU), the general registers, rflags, rsp and
    // rip. PKRU stays as it is: P denied.
    ".globl cofferdam_user_sigreturn",
    ".hidden cofferdam_user_sigreturn",
    ".type cofferdam_user_sigreturn,@function",
    ".p2align 4",
    "cofferdam_user_sigreturn:",
    "    mov rbx, rdi",
    // The handler runs with the interrupted mask plus its own: unblocking
    // what the interrupted code had unblocked restores it (SIG_UNBLOCK never
    // blocks, so the syscall guard lets it through without the token).
    "    mov rax, qword ptr [rbx + {uc_sigmask}]",
    "    not rax",
    "    push rax",
    "    mov eax, {sys_rt_sigprocmask}",
    "    mov edi, 1",                             // SIG_UNBLOCK
    "    mov rsi, rsp",
    "    xor edx, edx",
    "    mov r10d, 8",
    "    syscall",
    "    pop rax",
    "    mov rax, qword ptr [rbx + {uc_fpregs}]",
    "    test rax, rax",
    "    jz 141f",
    "    fxrstor64 [rax]",
    "141:",
    // rflags and rip below the interrupted code's red zone, then `ret 128`.
    "    mov rcx, qword ptr [rbx + {uc_gregs} + 15*8]", // rsp
    "    sub rcx, 144",
    "    mov rax, qword ptr [rbx + {uc_gregs} + 16*8]", // rip
    "    mov qword ptr [rcx + 8], rax",
    "    mov rax, qword ptr [rbx + {uc_gregs} + 17*8]", // rflags
    "    mov qword ptr [rcx], rax",
    "    mov r8,  qword ptr [rbx + {uc_gregs} + 0*8]",
    "    mov r9,  qword ptr [rbx + {uc_gregs} + 1*8]",
    "    mov r10, qword ptr [rbx + {uc_gregs} + 2*8]",
    "    mov r11, qword ptr [rbx + {uc_gregs} + 3*8]",
    "    mov r12, qword ptr [rbx + {uc_gregs} + 4*8]",
    "    mov r13, qword ptr [rbx + {uc_gregs} + 5*8]",
    "    mov r14, qword ptr [rbx + {uc_gregs} + 6*8]",
    "    mov r15, qword ptr [rbx + {uc_gregs} + 7*8]",
    "    mov rdi, qword ptr [rbx + {uc_gregs} + 8*8]",
    "    mov rsi, qword ptr [rbx + {uc_gregs} + 9*8]",
    "    mov rbp, qword ptr [rbx + {uc_gregs} + 10*8]",
    "    mov rdx, qword ptr [rbx + {uc_gregs} + 12*8]",
    "    mov rax, qword ptr [rbx + {uc_gregs} + 13*8]",
    "    mov rsp, rcx",
    "    mov rcx, qword ptr [rbx + {uc_gregs} + 14*8]",
    "    mov rbx, qword ptr [rbx + {uc_gregs} + 11*8]",
    "    popfq",
    "    ret 128",
    ".size cofferdam_user_sigreturn, .-cofferdam_user_sigreturn",
    "",
    // ─────────────────────────── callback stubs ───────────────────────────
    ".globl cofferdam_cb_stubs",
    ".type cofferdam_cb_stubs,@function",
    ".p2align 4",
    "cofferdam_cb_stubs:",
    ".set cofferdam_cb_i, 0",
    ".rept {nslots}",
    "    .p2align 4",
    "    mov r11d, cofferdam_cb_i",
    "    jmp cofferdam_callback_entry",
    "    .set cofferdam_cb_i, cofferdam_cb_i + 1",
    ".endr",
    ".size cofferdam_cb_stubs, .-cofferdam_cb_stubs",
    "",
    // ────────────────────── cofferdam_callback_entry ──────────────────────
    // Reached from a stub with r11d = slot, C's arguments in rdi..r9 and
    // xmm0..7, on C's stack, without P's rights.
    ".type cofferdam_callback_entry,@function",
    ".p2align 4",
    "cofferdam_callback_entry:",
    "    mov r10, rdx",
    "    push rcx",                               // WRPKRU needs ecx; C's stack holds it
    "    cmp dword ptr [rip + {cfg}], 0",
    "    je 41f",
    "    CD_ALLOW_P 49f",                         // ── rights on P taken ──
    "41:",
    "    pop rcx",
    "    mov rdx, r10",
    // The thread's state, checked as on the gate's return path; without one,
    // or without a call in progress, refuse.
    "    mov rax, qword ptr [rip + cofferdam_tls_state@GOTTPOFF]",
    "    mov rax, qword ptr fs:[rax]",
    "    mov r10, rax",
    "    sub r10, qword ptr [rip + {cfg} + {c_state_base}]",
    "    cmp r10, qword ptr [rip + {cfg} + {c_state_len}]",
    "    jae 50f",
    "    test r10d, {state_mask}",
    "    jnz 50f",
    "    cmp dword ptr [rip + {cfg} + {c_fsgsbase}], 0",
    "    je 42f",
    "    rdfsbase r10",
    "    cmp r10, qword ptr [rax + {t_fs_base}]",
    "    jne 50f",
    "42:",
    "    cmp dword ptr [rax + {t_verify}], 0",    // the thread id too, where the
    "    jne 52f",                                // FS base proves nothing
    "53:",
    "    mov r10, qword ptr [rax + {t_current}]", // the innermost gate call
    "    test r10, r10",
    "    jz 50f",
    // A callback frame on the Rust stack, below the suspended gate call
    // (256 bytes of room, then the 192-byte CbFrame, 16-aligned).
    "    mov r10, qword ptr [r10 + {g_saved_rsp}]",
    "    sub r10, {cb_room}",
    "    and r10, -16",
    "    mov qword ptr [r10 + {cb_gpr}], rdi",
    "    mov qword ptr [r10 + {cb_gpr} + 8], rsi",
    "    mov qword ptr [r10 + {cb_gpr} + 16], rdx",
    "    mov qword ptr [r10 + {cb_gpr} + 24], rcx",
    "    mov qword ptr [r10 + {cb_gpr} + 32], r8",
    "    mov qword ptr [r10 + {cb_gpr} + 40], r9",
    "    movq qword ptr [r10 + {cb_sse}], xmm0",
    "    movq qword ptr [r10 + {cb_sse} + 8], xmm1",
    "    movq qword ptr [r10 + {cb_sse} + 16], xmm2",
    "    movq qword ptr [r10 + {cb_sse} + 24], xmm3",
    "    movq qword ptr [r10 + {cb_sse} + 32], xmm4",
    "    movq qword ptr [r10 + {cb_sse} + 40], xmm5",
    "    movq qword ptr [r10 + {cb_sse} + 48], xmm6",
    "    movq qword ptr [r10 + {cb_sse} + 56], xmm7",
    "    mov qword ptr [r10 + {cb_foreign_rsp}], rsp",         // C's stack pointer (its return address)
    "    mov qword ptr [r10 + {cb_state}], rax",         // the state
    "    mov rcx, qword ptr [rax + {t_foreign_top}]",
    "    mov qword ptr [r10 + {cb_old_top}], rcx",         // state.foreign_top, restored after
    "    lea rcx, [rsp - 128]",                   // gate calls the callback makes go below
    "    and rcx, -16",                           // C's frames and red zone
    "    mov qword ptr [rax + {t_foreign_top}], rcx",
    "    mov qword ptr [r10 + {cb_slot}], r11",         // the slot
    "    stmxcsr dword ptr [r10 + {cb_mxcsr}]",          // C's control words
    "    fnstcw word ptr [r10 + {cb_fpucw}]",
    "    mov rcx, qword ptr [rax + {t_current}]", // Rust's, as the outer call saved them:
    "    cmp dword ptr [rip + {cfg} + {c_cw_reload}], 0",
    "    je 47f",
    "    ldmxcsr dword ptr [rcx + {g_mxcsr}]",    // reloaded (see the gate's return path)
    "    fldcw word ptr [rcx + {g_fpucw}]",
    "    jmp 44f",
    "47:",
    "    mov edx, dword ptr [r10 + {cb_mxcsr}]",         // or loaded only where C's differ
    "    cmp edx, dword ptr [rcx + {g_mxcsr}]",
    "    je 43f",
    "    ldmxcsr dword ptr [rcx + {g_mxcsr}]",
    "43:",
    "    mov dx, word ptr [r10 + {cb_fpucw}]",
    "    cmp dx, word ptr [rcx + {g_fpucw}]",
    "    je 44f",
    "    fldcw word ptr [rcx + {g_fpucw}]",
    "44:",
    // ── onto the Rust stack ──
    "    mov rsp, r10",
    "    cld",
    "    mov rdi, r11",
    "    mov rsi, r10",
    "    call {cb_dispatch}",
    "    mov r10, rsp",
    "    mov rax, qword ptr [r10 + {cb_state}]",
    "    mov rcx, qword ptr [r10 + {cb_old_top}]",
    "    mov qword ptr [rax + {t_foreign_top}], rcx",
    "    cmp dword ptr [rip + {cfg} + {c_cw_reload}], 0", // C's control words back:
    "    je 48f",
    "    ldmxcsr dword ptr [r10 + {cb_mxcsr}]",   // reloaded,
    "    fldcw word ptr [r10 + {cb_fpucw}]",
    "    jmp 46f",
    "48:",
    "    sub rsp, 8",                             // or only if they differ
    "    stmxcsr dword ptr [rsp]",
    "    fnstcw word ptr [rsp + 4]",
    "    mov edx, dword ptr [rsp]",
    "    cmp edx, dword ptr [r10 + {cb_mxcsr}]",
    "    je 45f",
    "    ldmxcsr dword ptr [r10 + {cb_mxcsr}]",
    "45:",
    "    mov dx, word ptr [rsp + 4]",
    "    cmp dx, word ptr [r10 + {cb_fpucw}]",
    "    je 58f",
    "    fldcw word ptr [r10 + {cb_fpucw}]",
    "58:",
    "    add rsp, 8",
    "46:",
    "    mov r8, qword ptr [r10 + {cb_ret}]",          // results
    "    mov r9, qword ptr [r10 + {cb_ret} + 8]",
    "    movq xmm0, qword ptr [r10 + {cb_ret} + 16]",
    "    movq xmm1, qword ptr [r10 + {cb_ret} + 24]",
    "    mov r11, qword ptr [r10 + {cb_foreign_rsp}]",         // C's stack pointer
    "    jmp 60f",
    "50:",
    // Refused without running: the slot's error value, one more refusal.
    "    xor r8d, r8d",
    "    xor r9d, r9d",
    "    pxor xmm0, xmm0",
    "    pxor xmm1, xmm1",
    "    mov eax, r11d",
    "    cmp rax, qword ptr [rip + {cfg} + {c_nslots}]",  // slot < nslots
    "    jae 51f",
    "    shl rax, {slot_shift}",
    "    add rax, qword ptr [rip + {cfg} + {c_slot_base}]",
    "    lock inc qword ptr [rax + {s_refused}]", // slot.refused
    "    mov r8, qword ptr [rax + {s_error}]",    // slot.error (rax)
    "    movq xmm0, qword ptr [rax + {s_error} + 8]", // slot.error (xmm0)
    "51:",
    "    mov r11, rsp",
    "60:",
    // r8/r9/xmm0/xmm1: the results; r11: C's stack pointer. Drop the rights.
    "    cmp dword ptr [rip + {cfg}], 0",
    "    je 61f",
    "    CD_DENY_P 49f",                          // ── rights on P dropped ──
    "61:",
    "    mov rsp, r11",
    "    mov rax, r8",
    "    mov rdx, r9",
    "    xor ecx, ecx",
    "    xor esi, esi",
    "    xor edi, edi",
    "    xor r8d, r8d",
    "    xor r9d, r9d",
    "    xor r10d, r10d",
    "    xor r11d, r11d",
    "    ret",
    "49:",
    "    jmp cofferdam_refuse",
    "52:",
    // gettid clobbers rcx (C's fourth argument) and r11 (the slot): kept in
    // xmm8/xmm9, which the C ABI lets any call clobber.
    "    mov r10, rax",
    "    movq xmm8, rcx",
    "    movq xmm9, r11",
    "    mov eax, {sys_gettid}",
    "    syscall",
    "    movq rcx, xmm8",
    "    movq r11, xmm9",
    "    cmp eax, dword ptr [r10 + {t_tid}]",
    "    mov rax, r10",
    "    jne 50b",                                // another thread: refused without running
    "    jmp 53b",
    ".size cofferdam_callback_entry, .-cofferdam_callback_entry",
    "",
    // ───────────────────────── cofferdam_try_copy ─────────────────────────
    // u64 cofferdam_try_copy(void *dst, const void *src, size_t n): copies
    // n bytes and returns 0, or returns 1 if reading `src` faulted (the fault
    // handler resumes a fault between cofferdam_try_copy and
    // cofferdam_try_copy_insn at the fixup). For trusted code reading memory
    // foreign code pointed to.
    ".globl cofferdam_try_copy",
    ".type cofferdam_try_copy,@function",
    ".p2align 4",
    "cofferdam_try_copy:",
    "    xor eax, eax",
    "    cmp rdx, 8",
    "    jne 81f",
    "    mov rcx, qword ptr [rsi]",               // the common small cases: one load
    "    mov qword ptr [rdi], rcx",
    "    ret",
    "81:",
    "    cmp rdx, 4",
    "    jne 82f",
    "    mov ecx, dword ptr [rsi]",
    "    mov dword ptr [rdi], ecx",
    "    ret",
    "82:",
    "    mov rcx, rdx",
    "    rep movsb",
    "    ret",
    ".globl cofferdam_try_copy_insn",
    "cofferdam_try_copy_insn:",               // end of the instructions that may fault
    ".globl cofferdam_try_copy_fixup",
    "cofferdam_try_copy_fixup:",
    "    mov eax, 1",
    "    ret",
    ".size cofferdam_try_copy, .-cofferdam_try_copy",
    "",
    // ──────────────────────── cofferdam_direct_call ────────────────────────
    // void cofferdam_direct_call(GateFrame *frame): the `none` backend's
    // plain call, loading the same registers as the gate, without any switch.
    ".globl cofferdam_direct_call",
    ".type cofferdam_direct_call,@function",
    ".p2align 4",
    "cofferdam_direct_call:",
    ".cfi_startproc",
    "    push rbp",
    ".cfi_def_cfa_offset 16",
    "    push rbx",
    ".cfi_def_cfa_offset 24",
    "    push r12",
    ".cfi_def_cfa_offset 32",
    "    mov rbx, rdi",
    "    sub rsp, 128",
    ".cfi_def_cfa_offset 160",
    "    mov rcx, qword ptr [rbx + {g_nstack}]",
    "    mov rsi, qword ptr [rbx + {g_stack_args}]",
    "    xor eax, eax",
    "70:",
    "    cmp rax, rcx",
    "    jae 71f",
    "    mov rdx, qword ptr [rsi + rax*8]",
    "    mov qword ptr [rsp + rax*8], rdx",
    "    inc rax",
    "    jmp 70b",
    "71:",
    "    movq xmm0, qword ptr [rbx + {g_fargs}]",
    "    movq xmm1, qword ptr [rbx + {g_fargs} + 8]",
    "    movq xmm2, qword ptr [rbx + {g_fargs} + 16]",
    "    movq xmm3, qword ptr [rbx + {g_fargs} + 24]",
    "    movq xmm4, qword ptr [rbx + {g_fargs} + 32]",
    "    movq xmm5, qword ptr [rbx + {g_fargs} + 40]",
    "    movq xmm6, qword ptr [rbx + {g_fargs} + 48]",
    "    movq xmm7, qword ptr [rbx + {g_fargs} + 56]",
    "    mov rdi, qword ptr [rbx + {g_args}]",
    "    mov rsi, qword ptr [rbx + {g_args} + 8]",
    "    mov rdx, qword ptr [rbx + {g_args} + 16]",
    "    mov rcx, qword ptr [rbx + {g_args} + 24]",
    "    mov r8,  qword ptr [rbx + {g_args} + 32]",
    "    mov r9,  qword ptr [rbx + {g_args} + 40]",
    "    mov eax, dword ptr [rbx + {g_nsse}]",
    "    call qword ptr [rbx + {g_func}]",
    "    add rsp, 128",
    ".cfi_def_cfa_offset 32",
    "    mov qword ptr [rbx + {g_ret}], rax",
    "    mov qword ptr [rbx + {g_ret} + 8], rdx",
    "    movq qword ptr [rbx + {g_fret}], xmm0",
    "    movq qword ptr [rbx + {g_fret} + 8], xmm1",
    "    mov dword ptr [rbx + {g_status}], 0",
    "    pop r12",
    ".cfi_def_cfa_offset 24",
    "    pop rbx",
    ".cfi_def_cfa_offset 16",
    "    pop rbp",
    ".cfi_def_cfa_offset 8",
    "    ret",
    ".cfi_endproc",
    ".size cofferdam_direct_call, .-cofferdam_direct_call",
    "",
    ".globl cofferdam_gate_code_end",
    ".type cofferdam_gate_code_end,@function",
    "cofferdam_gate_code_end:",
    "    ud2",
    cfg = sym CONFIG,
    dispatch = sym crate::fault::cofferdam_signal_dispatch,
    untrusted = sym crate::fault::cofferdam_signal_untrusted,
    forged = sym crate::fault::cofferdam_signal_forged,
    token = sym crate::fault::cofferdam_sigreturn_token,
    cb_dispatch = sym crate::callback::cofferdam_callback_dispatch,
    nslots = const crate::callback::NSLOTS,
    c_state_base = const offset_of!(GateConfig, state_base),
    c_state_len = const offset_of!(GateConfig, state_len),
    c_alt_base = const offset_of!(GateConfig, alt_base),
    c_alt_len = const offset_of!(GateConfig, alt_len),
    c_inherited = const offset_of!(GateConfig, inherited_guard),
    c_frames_tagged = const offset_of!(GateConfig, frames_tagged),
    sys_exit = const libc::SYS_exit,
    c_cw_reload = const offset_of!(GateConfig, cw_reload),
    t_verify = const offset_of!(ThreadState, verify_tid),
    t_fs_base = const offset_of!(ThreadState, fs_base),
    t_current = const offset_of!(ThreadState, current),
    t_tid = const offset_of!(ThreadState, tid),
    g_saved_rsp = const offset_of!(GateFrame, saved_rsp),
    g_cb_active = const offset_of!(GateFrame, cb_active),
    g_func = const offset_of!(GateFrame, func),
    g_args = const offset_of!(GateFrame, args),
    g_status = const offset_of!(GateFrame, status),
    g_ret = const offset_of!(GateFrame, ret),
    g_nstack = const offset_of!(GateFrame, nstack),
    g_stack_args = const offset_of!(GateFrame, stack_args),
    g_foreign_sp = const offset_of!(GateFrame, foreign_sp),
    g_fargs = const offset_of!(GateFrame, fargs),
    g_fret = const offset_of!(GateFrame, fret),
    g_nsse = const offset_of!(GateFrame, nsse),
    g_mxcsr = const offset_of!(GateFrame, mxcsr),
    g_fpucw = const offset_of!(GateFrame, fpucw),
    t_foreign_top = const offset_of!(ThreadState, foreign_top),
    c_fsgsbase = const offset_of!(GateConfig, fsgsbase),
    c_slot_base = const offset_of!(GateConfig, slot_base),
    c_nslots = const offset_of!(GateConfig, nslots),
    cb_gpr = const offset_of!(CbFrame, gpr),
    cb_sse = const offset_of!(CbFrame, sse),
    cb_foreign_rsp = const offset_of!(CbFrame, foreign_rsp),
    cb_state = const offset_of!(CbFrame, state),
    cb_old_top = const offset_of!(CbFrame, old_top),
    cb_slot = const offset_of!(CbFrame, slot),
    cb_mxcsr = const offset_of!(CbFrame, c_mxcsr),
    cb_fpucw = const offset_of!(CbFrame, c_fpucw),
    cb_ret = const offset_of!(CbFrame, ret),
    // Room left below the suspended call's saved registers before the
    // callback frame: 256 bytes, then the frame.
    cb_room = const 256 + core::mem::size_of::<CbFrame>(),
    s_error = const offset_of!(Slot, error),
    s_refused = const offset_of!(Slot, refused),
    slot_shift = const crate::callback::SLOT_SIZE.trailing_zeros(),
    g_trusted_pkru = const offset_of!(GateFrame, trusted_pkru),
    alt_shift = const super::thread::ALT_SHIFT,
    state_shift = const super::thread::STATE_SIZE.trailing_zeros(),
    state_mask = const super::thread::STATE_SIZE - 1,
    f_uc = const FRAME_UC,
    f_info = const FRAME_INFO,
    f_mark = const FRAME_INFO + SIGINFO_MARK,
    uc_gregs = const UC_GREGS,
    uc_fpregs = const UC_FPREGS,
    uc_sigmask = const UC_SIGMASK,
    sys_gettid = const libc::SYS_gettid,
    sys_rt_sigreturn = const libc::SYS_rt_sigreturn,
    sys_rt_sigprocmask = const libc::SYS_rt_sigprocmask,
);
