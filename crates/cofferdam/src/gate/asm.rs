//! The trampolines, in assembly (Intel syntax, System V x86_64).
//!
//! ```text
//!  cofferdam_gate_call(frame)              Rust stack while foreign code runs
//!  ─────────────────────────              ┌──────────────────────────────┐ high
//!   push rbp, rbx, r12..r15, frame  ────▶ │ return address into Rust     │
//!   frame.saved_rsp = rsp                 │ rbp rbx r12 r13 r14 r15      │
//!   copy stack arguments (≤ 16)           │ frame pointer      ◀─ saved_rsp (16-aligned)
//!   load every argument register          │ 128 bytes: arguments 7..22   │
//!   PKRU |= deny_mask   (WRPKRU)          ├──────────────────────────────┤
//!   check PKRU denies P else ud2          │ return address into the gate │
//!   call frame.func(args…)  ────────────▶ │ foreign frames …             │ low
//!   PKRU &= ~deny_mask  (WRPKRU)          └──────────────────────────────┘
//!   check PKRU allows P else ud2
//!   pop frame, store rax/rdx, status = 0, pop registers, ret
//!
//!  fault inside the call: the signal handler sets rip = cofferdam_gate_landing,
//!  rsp = frame.saved_rsp and PKRU (in the signal frame) = frame.trusted_pkru;
//!  the landing pad checks PKRU, sets status = 1 and returns as above.
//! ```
//!
//! ERIM's discipline: every WRPKRU is followed by a check, against the
//! read-only configuration page, that the value written is the one this
//! trampoline means at that point. A jump straight onto a WRPKRU with a value
//! of the attacker's choosing therefore either fails the check (`ud2`, the
//! process dies) or writes what the gate would have written anyway.
//!
//! Limits until stacks are isolated (a later capability): the saved registers
//! and return address above live on the Rust stack, which foreign code can
//! still write; a corrupted stack defeats the return path.
//!
//! When the configuration's deny mask is 0 (no MPK), the PKRU steps are
//! skipped: WRPKRU would fault where the OS has not enabled protection keys.

use super::config::CONFIG;

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
}

#[cfg(feature = "bench-floor")]
extern "C" {
    /// The benchmark floor: `f(x)` between two bare WRPKRUs.
    pub(crate) fn cofferdam_wrpkru_pair_call(f: extern "C" fn(i32) -> i32, x: i32) -> i32;
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
    "    push rbx",
    "    mov rbx, rdi",
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
    "    pop rbx",
    "    ret",
    ".size cofferdam_wrpkru_pair_call, .-cofferdam_wrpkru_pair_call",
    cfg = sym CONFIG,
);

core::arch::global_asm!(
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
    "    mov rbp, rsp",
    ".cfi_def_cfa_register rbp",
    "    push rbx",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    // The frame pointer goes on the stack too: foreign code may break the ABI
    // and clobber callee-saved registers, so nothing is kept in them across
    // the call.
    "    push rdi",
    // Seven pushes after the return address: rsp ≡ 0 (mod 16).
    "    mov qword ptr [rdi + 56], rsp",          // frame.saved_rsp: where a fault resumes
    // Room for up to 16 stack arguments (the 7th and later), 16-aligned,
    // filled from frame.stack_args[0..frame.nstack] (nstack <= 16, checked
    // by the Rust side).
    "    sub rsp, 128",
    "    mov rcx, qword ptr [rdi + 88]",          // frame.nstack
    "    mov rsi, qword ptr [rdi + 96]",          // frame.stack_args
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
    "    mov dword ptr [rdi + 64], eax",          // frame.trusted_pkru
    "    mov r13d, eax",
    "    or r13d, r12d",                          // r13d = the value that denies P
    "22:",
    "    mov rbx, qword ptr [rdi]",               // the foreign function
    "    mov rsi, qword ptr [rdi + 16]",          // argument 2
    "    mov r10, qword ptr [rdi + 24]",          // argument 3 (rdx after WRPKRU)
    "    mov r11, qword ptr [rdi + 32]",          // argument 4 (rcx after WRPKRU)
    "    mov r8,  qword ptr [rdi + 40]",          // argument 5
    "    mov r9,  qword ptr [rdi + 48]",          // argument 6
    "    mov rdi, qword ptr [rdi + 8]",           // argument 1
    "    test r12d, r12d",
    "    jz 23f",
    "    mov eax, r13d",
    "    xor ecx, ecx",
    "    xor edx, edx",
    "    wrpkru",                                 // ── rights on P dropped ──
    // Check the value written, against the mask re-read from the read-only
    // page: a jump onto the WRPKRU above with another eax ends here.
    "    mov r13d, dword ptr [rip + {cfg}]",
    "    mov r12d, eax",
    "    and r12d, r13d",
    "    cmp r12d, r13d",
    "    jne 9f",
    "23:",
    "    mov rdx, r10",
    "    mov rcx, r11",
    "    call rbx",
    // Back from foreign code: rax/rdx hold its return value; keep them in
    // caller-saved registers the PKRU dance does not touch. The ABI says DF
    // is clear on return; foreign code may not keep to it, and Rust's
    // string operations depend on it.
    "    cld",
    "    add rsp, 128",                           // drop the stack-argument area
    "    mov r8, rax",
    "    mov r9, rdx",
    "    mov r11d, dword ptr [rip + {cfg}]",
    "    test r11d, r11d",
    "    jz 3f",
    "    xor ecx, ecx",
    "    rdpkru",                                 // eax = PKRU as foreign code left it
    "    not r11d",
    "    and eax, r11d",                          // allow P, keep every other key as it was
    "    xor ecx, ecx",
    "    xor edx, edx",
    "    wrpkru",                                 // ── rights on P taken back ──
    "    test eax, dword ptr [rip + {cfg}]",      // the value written must allow P
    "    jnz 9f",
    "3:",
    "    pop rdi",                                // frame
    "    mov qword ptr [rdi + 72], r8",           // frame.ret[0] = rax
    "    mov qword ptr [rdi + 80], r9",           // frame.ret[1] = rdx
    "    mov dword ptr [rdi + 68], 0",            // frame.status = returned
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbx",
    "    pop rbp",
    ".cfi_def_cfa rsp, 8",
    "    ret",
    "9:",
    // A WRPKRU wrote a value this gate did not mean: stop the process here,
    // with the rights in whatever state the attacker left them.
    "    ud2",
    ".cfi_endproc",
    ".size cofferdam_gate_call, .-cofferdam_gate_call",
    "",
    // ─────────────────────── cofferdam_gate_landing ───────────────────────
    // Resumed at (never called) by the fault handler with rsp = saved_rsp and
    // PKRU = the trusted value restored by sigreturn.
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
    "    mov dword ptr [rdi + 68], 1",            // frame.status = faulted
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbx",
    "    pop rbp",
    "    ret",
    "8:",
    "    ud2",
    ".size cofferdam_gate_landing, .-cofferdam_gate_landing",
    "",
    // ─────────────────────── cofferdam_signal_entry ───────────────────────
    // void cofferdam_signal_entry(int sig, siginfo_t *info, void *ctx)
    // The kernel enters every handler with its default PKRU, which denies P.
    // Take P's rights (trusted handlers need the heap), dispatch, and deny P
    // again before returning: the legitimate return goes to rt_sigreturn,
    // which restores the interrupted PKRU from the signal frame anyway, and a
    // direct call by foreign code gets no rights back.
    ".globl cofferdam_signal_entry",
    ".type cofferdam_signal_entry,@function",
    ".p2align 4",
    "cofferdam_signal_entry:",
    ".cfi_startproc",
    "    push rbx",                               // rsp ≡ 0 (mod 16) now
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbx, -16",
    "    mov ebx, dword ptr [rip + {cfg}]",
    "    test ebx, ebx",
    "    jz 5f",
    "    mov r10, rdx",                           // rdpkru/wrpkru clobber edx
    "    xor ecx, ecx",
    "    rdpkru",
    "    mov r11d, dword ptr [rip + {cfg}]",
    "    not r11d",
    "    and eax, r11d",                          // allow P
    "    xor ecx, ecx",
    "    xor edx, edx",
    "    wrpkru",
    "    mov rdx, r10",
    "5:",
    "    call {dispatch}",
    "    mov ebx, dword ptr [rip + {cfg}]",
    "    test ebx, ebx",
    "    jz 6f",
    "    xor ecx, ecx",
    "    rdpkru",
    "    or eax, ebx",                            // deny P
    "    xor ecx, ecx",
    "    xor edx, edx",
    "    wrpkru",
    "6:",
    "    pop rbx",
    ".cfi_def_cfa_offset 8",
    "    ret",
    ".cfi_endproc",
    ".size cofferdam_signal_entry, .-cofferdam_signal_entry",
    cfg = sym CONFIG,
    dispatch = sym crate::fault::cofferdam_signal_dispatch,
);
