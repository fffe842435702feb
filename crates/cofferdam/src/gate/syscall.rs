//! The syscall guard's trusted re-issue (see `crate::guard`): a raw
//! `syscall` whose sixth argument register (r9) is loaded with the guard's
//! token straight from protected memory and cleared again right after, so
//! the token is never written to a stack or any other unprotected memory.
//!
//! Kept apart from the call gate (`asm.rs`): no PKRU handling here.

/// Issues syscall `nr` with arguments `a[0..5]` and the token at `token` as
/// the sixth argument. Returns the kernel's result (negative errno on error).
///
/// # Safety
/// `token` must point to a readable `u64`. The syscall itself must be one the
/// caller is entitled to make with these arguments (the guard only re-issues
/// calls that trusted code made).
pub(crate) unsafe fn syscall_with_token(nr: i64, a: [u64; 5], token: *const u64) -> i64 {
    let ret: i64;
    // SAFETY: `syscall` clobbers rcx and r11 and returns in rax; r9 is loaded
    // from `token` (readable: caller's contract) and zeroed afterwards. The
    // kernel reads no memory of ours beyond what the syscall's own contract
    // says (caller's contract).
    unsafe {
        core::arch::asm!(
            "mov r9, qword ptr [{tok}]",
            "syscall",
            "xor r9d, r9d",
            tok = in(reg) token,
            inlateout("rax") nr => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            out("r9") _,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Issues `mmap(a[0], …, a[5])` with the guard's token in the high halves of
/// `prot` (the token's high 32 bits) and `flags` (its low 32 bits), which the
/// kernel ignores for `mmap`: the offset stays the caller's, so file-backed
/// mappings can be re-issued. Returns the kernel's result.
///
/// # Safety
/// As [`syscall_with_token`]; `a[2]` and `a[3]` must fit in 32 bits.
pub(crate) unsafe fn mmap_with_token(a: [u64; 6], token: *const u64) -> i64 {
    let ret: i64;
    // SAFETY: as in `syscall_with_token`; the token is loaded into two
    // scratch registers, merged into rdx and r10, and every register that
    // held any of it is cleared right after the call (rdx and r10 are
    // declared clobbered).
    unsafe {
        core::arch::asm!(
            "mov {t}, qword ptr [{tok}]",
            "mov {h}, {t}",
            "shr {h}, 32",
            "shl {h}, 32",
            "or rdx, {h}",
            "shl {t}, 32",
            "or r10, {t}",
            "syscall",
            "xor {t:e}, {t:e}",
            "xor {h:e}, {h:e}",
            "xor edx, edx",
            "xor r10d, r10d",
            tok = in(reg) token,
            t = out(reg) _,
            h = out(reg) _,
            inlateout("rax") libc::SYS_mmap => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            inout("rdx") a[2] => _,
            inout("r10") a[3] => _,
            in("r8") a[4],
            in("r9") a[5],
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Where [`syscall_with_token_off_stack`] points the stack pointer: nothing
/// is ever written there (the caller blocks signals).
static SCRATCH: [u64; 8] = [0; 8];

/// [`syscall_with_token`] with the stack pointer moved off the current
/// stack for the duration of the `syscall` instruction. The kernel refuses
/// `sigaltstack` changes while the stack pointer lies on the alternate
/// stack, which is where the guard's handler runs: this makes the change
/// as the interrupted code would have.
///
/// # Safety
/// As [`syscall_with_token`]; every signal must be blocked (a signal
/// delivered during the call would be framed at the scratch address).
pub(crate) unsafe fn syscall_with_token_off_stack(nr: i64, a: [u64; 5], token: *const u64) -> i64 {
    let ret: i64;
    let sp = SCRATCH.as_ptr() as usize + core::mem::size_of_val(&SCRATCH);
    // SAFETY: as in `syscall_with_token`; rsp is saved in a register that
    // `syscall` preserves (rcx and r11 are declared clobbered, so `save` is
    // neither) and restored right after; nothing uses the stack in between
    // and signals are blocked (contract).
    unsafe {
        core::arch::asm!(
            "mov {save}, rsp",
            "mov rsp, {sp}",
            "mov r9, qword ptr [{tok}]",
            "syscall",
            "xor r9d, r9d",
            "mov rsp, {save}",
            save = out(reg) _,
            sp = in(reg) sp,
            tok = in(reg) token,
            inlateout("rax") nr => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            out("r9") _,
            out("rcx") _,
            out("r11") _,
        );
    }
    ret
}
