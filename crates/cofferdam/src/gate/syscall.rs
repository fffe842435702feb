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
