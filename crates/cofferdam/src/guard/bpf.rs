//! The seccomp filter, as classic BPF, written by hand (a few hundred
//! instructions; no dependency).
//!
//! Classic BPF has a 32-bit accumulator, so every 64-bit argument is handled
//! as two halves; conditional jumps go forward at most 255 instructions, so
//! far targets are reached through an unconditional `ja`.
//!
//! What it does (x86_64 ABI):
//!
//! | syscall | verdict |
//! | --- | --- |
//! | any, with the guard's token in `args[5]` | allow (the SIGSYS handler's re-issue) |
//! | `rt_sigreturn`, `pkey_mprotect`, `pkey_alloc`, `pkey_free`, `process_vm_writev` | trap (`rt_sigreturn`: only the signal entry returns, and it passes the token; a frame foreign code built never restores a PKRU) |
//! | `mprotect` | trap if `PROT_EXEC`, or if `[addr, addr+len)` meets a protected range |
//! | `munmap`, `madvise` | trap if `[addr, addr+len)` meets a protected range |
//! | `mremap` | trap if the old range, or (with `MREMAP_FIXED`) the new one, meets a protected range |
//! | `mmap` | trap if `PROT_EXEC`, or if `MAP_FIXED(_NOREPLACE)` and the range meets a protected range |
//! | `shmat` | trap if `SHM_EXEC` or `SHM_REMAP` |
//! | `io_uring_setup` | `ENOSYS` (its requests bypass this filter) |
//! | x32 ABI (`nr & 0x4000_0000`) | `ENOSYS` |
//! | everything else | allow |
//!
//! The i386 ABI (`int 0x80` from this 64-bit process) gets the same argument
//! checks under its own numbers; its `pkey_*`, `process_vm_writev`, old
//! `mmap` (arguments in memory) and `ipc`/`shmat` trap always.

use crate::sys::SockFilter;

const LD_W_ABS: u16 = 0x20;
const LD_MEM: u16 = 0x60;
const LDX_MEM: u16 = 0x61;
const ST: u16 = 0x02;
const ALU_ADD_K: u16 = 0x04;
const ALU_ADD_X: u16 = 0x0c;
const TAX: u16 = 0x07;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const JGE_X: u16 = 0x3d;
const RET_K: u16 = 0x06;

pub(crate) const RET_ALLOW: u32 = 0x7fff_0000;
pub(crate) const RET_TRAP: u32 = 0x0003_0000;
pub(crate) const RET_ERRNO: u32 = 0x0005_0000;

pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
pub(crate) const AUDIT_ARCH_I386: u32 = 0x4000_0003;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
fn arg_hi(i: u32) -> u32 {
    16 + 8 * i + 4
}

/// Cofferdam's signals: their handlers stay Cofferdam's entry
/// (`fault::is_fault_signal`, and SIGSYS).
const RESERVED_SIGNALS: [u32; 7] = [4, 5, 6, 7, 8, 11, 31]; // ILL TRAP ABRT BUS FPE SEGV SYS
const EPERM: u32 = 1;

/// x86_64 syscall numbers the filter looks at.
pub(crate) mod nr {
    pub const RT_SIGRETURN: u32 = 15;
    pub const EXIT_GROUP: u32 = 231;
    pub const RT_SIGACTION: u32 = 13;
    pub const SIGALTSTACK: u32 = 131;
    pub const MMAP: u32 = 9;
    pub const MPROTECT: u32 = 10;
    pub const MUNMAP: u32 = 11;
    pub const MREMAP: u32 = 25;
    pub const MADVISE: u32 = 28;
    pub const SHMAT: u32 = 30;
    pub const PROCESS_VM_WRITEV: u32 = 311;
    pub const PKEY_MPROTECT: u32 = 329;
    pub const PKEY_ALLOC: u32 = 330;
    pub const PKEY_FREE: u32 = 331;
    pub const IO_URING_SETUP: u32 = 425;
}

/// i386 numbers (`int 0x80`).
mod nr32 {
    pub const EXIT_GROUP: u32 = 252;
    pub const SIGRETURN: u32 = 119;
    pub const RT_SIGRETURN: u32 = 173;
    pub const OLD_MMAP: u32 = 90;
    pub const MUNMAP: u32 = 91;
    pub const IPC: u32 = 117;
    pub const MPROTECT: u32 = 125;
    pub const MREMAP: u32 = 163;
    pub const MMAP2: u32 = 192;
    pub const MADVISE: u32 = 219;
    pub const PROCESS_VM_WRITEV: u32 = 348;
    pub const PKEY_MPROTECT: u32 = 380;
    pub const PKEY_ALLOC: u32 = 381;
    pub const PKEY_FREE: u32 = 382;
    pub const SHMAT: u32 = 397;
    pub const IO_URING_SETUP: u32 = 425;
}

const PROT_EXEC: u32 = 0x4;
const MAP_FIXED: u32 = 0x10;
const MAP_ANONYMOUS: u32 = 0x20;
const MAP_FIXED_NOREPLACE: u32 = 0x10_0000;
const MREMAP_FIXED: u32 = 0x2;
const SHM_REMAP: u32 = 0o40000;
const SHM_EXEC: u32 = 0o100000;
const ENOSYS: u32 = 38;

#[derive(Clone, Copy)]
enum T {
    Next,
    L(usize),
}

struct Insn {
    f: SockFilter,
    jt: T,
    jf: T,
    ja: Option<usize>,
}

struct B {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
}

impl B {
    fn new() -> B {
        B {
            insns: Vec::new(),
            labels: Vec::new(),
        }
    }
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        assert!(self.labels[l].is_none(), "label bound twice");
        self.labels[l] = Some(self.insns.len());
    }
    fn op(&mut self, code: u16, k: u32) {
        self.insns.push(Insn {
            f: SockFilter {
                code,
                jt: 0,
                jf: 0,
                k,
            },
            jt: T::Next,
            jf: T::Next,
            ja: None,
        });
    }
    fn j(&mut self, code: u16, k: u32, jt: T, jf: T) {
        self.insns.push(Insn {
            f: SockFilter {
                code,
                jt: 0,
                jf: 0,
                k,
            },
            jt,
            jf,
            ja: None,
        });
    }
    fn ja(&mut self, l: usize) {
        self.insns.push(Insn {
            f: SockFilter {
                code: JA,
                jt: 0,
                jf: 0,
                k: 0,
            },
            jt: T::Next,
            jf: T::Next,
            ja: Some(l),
        });
    }
    /// `if A == k goto l` for a far `l`.
    fn jeq_far(&mut self, k: u32, l: usize) {
        let skip = self.label();
        self.j(JEQ_K, k, T::Next, T::L(skip));
        self.ja(l);
        self.bind(skip);
    }
    fn ld(&mut self, off: u32) {
        self.op(LD_W_ABS, off);
    }
    fn ret(&mut self, k: u32) {
        self.op(RET_K, k);
    }
    fn finish(self) -> Vec<SockFilter> {
        let at = |l: usize| self.labels[l].expect("unbound label");
        self.insns
            .iter()
            .enumerate()
            .map(|(i, ins)| {
                let mut f = ins.f;
                let rel = |t: T| -> u8 {
                    match t {
                        T::Next => 0,
                        T::L(l) => {
                            let d = at(l).checked_sub(i + 1).expect("BPF jumps go forward only");
                            u8::try_from(d).expect("conditional jump too far")
                        }
                    }
                };
                f.jt = rel(ins.jt);
                f.jf = rel(ins.jf);
                if let Some(l) = ins.ja {
                    f.k = (at(l) - (i + 1)) as u32;
                }
                f
            })
            .collect()
    }

    /// `if args[5] == token goto allow`.
    fn token(&mut self, token: u64, allow: usize) {
        let no = self.label();
        let yes = self.label();
        self.ld(arg_lo(5));
        self.j(JEQ_K, token as u32, T::Next, T::L(no));
        self.ld(arg_hi(5));
        self.j(JEQ_K, (token >> 32) as u32, T::L(yes), T::L(no));
        self.bind(yes);
        self.ja(allow);
        self.bind(no);
    }

    /// `if args[a] == 0 goto null else goto set` (both halves).
    fn null_or(&mut self, a: u32, null: usize, set: usize) {
        let nonzero = self.label();
        self.ld(arg_lo(a));
        self.j(JEQ_K, 0, T::Next, T::L(nonzero));
        self.ld(arg_hi(a));
        self.j(JEQ_K, 0, T::Next, T::L(nonzero));
        self.ja(null);
        self.bind(nonzero);
        self.ja(set);
    }

    /// `if args[a] & bit goto l` (low half).
    fn jset_far(&mut self, a: u32, bit: u32, l: usize) {
        self.ld(arg_lo(a));
        let skip = self.label();
        self.j(JSET_K, bit, T::Next, T::L(skip));
        self.ja(l);
        self.bind(skip);
    }

    /// Trap if `[args[a], args[a] + args[l])` meets any of `ranges`, else go
    /// to `miss`. A length that wraps around the address space traps.
    fn range(&mut self, a: u32, l: u32, ranges: &[(u64, u64)], miss: usize, trap: usize) {
        let hit = self.label();
        let nocarry = self.label();
        // M2 = addr_lo, M3 = addr_hi, M0 = end_lo, M1 = end_hi.
        self.ld(arg_lo(a));
        self.op(ST, 2);
        self.ld(arg_hi(a));
        self.op(ST, 3);
        self.ld(arg_lo(l));
        self.op(TAX, 0);
        self.op(LD_MEM, 2);
        self.op(ALU_ADD_X, 0);
        self.op(ST, 0);
        self.ld(arg_hi(l));
        self.op(TAX, 0);
        self.op(LD_MEM, 3);
        self.op(ALU_ADD_X, 0);
        self.op(ST, 1);
        // The high halves wrapped: end < addr.
        self.op(LDX_MEM, 3);
        self.j(JGE_X, 0, T::Next, T::L(hit));
        // Carry from the low halves.
        self.op(LD_MEM, 0);
        self.op(LDX_MEM, 2);
        self.j(JGE_X, 0, T::L(nocarry), T::Next);
        self.op(LD_MEM, 1);
        self.op(ALU_ADD_K, 1);
        self.j(JEQ_K, 0, T::L(hit), T::Next);
        self.op(ST, 1);
        self.bind(nocarry);
        for &(s, e) in ranges {
            let next = self.label();
            let below_e = self.label();
            // addr < e ?
            self.op(LD_MEM, 3);
            self.j(JGT_K, (e >> 32) as u32, T::L(next), T::Next);
            self.j(JEQ_K, (e >> 32) as u32, T::Next, T::L(below_e));
            self.op(LD_MEM, 2);
            self.j(JGE_K, e as u32, T::L(next), T::Next);
            self.bind(below_e);
            // end > s ?
            self.op(LD_MEM, 1);
            self.j(JGT_K, (s >> 32) as u32, T::L(hit), T::Next);
            self.j(JEQ_K, (s >> 32) as u32, T::Next, T::L(next));
            self.op(LD_MEM, 0);
            self.j(JGT_K, s as u32, T::L(hit), T::L(next));
            self.bind(next);
        }
        self.ja(miss);
        self.bind(hit);
        self.ja(trap);
    }
}

/// The filter for protected `ranges` (`[start, end)` each) and `token`.
pub(crate) fn program(ranges: &[(u64, u64)], token: u64) -> Vec<SockFilter> {
    let mut b = B::new();
    let allow = b.label();
    let trap = b.label();
    let enosys = b.label();
    let i386 = b.label();

    b.ld(OFF_ARCH);
    let x64 = b.label();
    b.j(JEQ_K, AUDIT_ARCH_X86_64, T::L(x64), T::Next);
    b.ja(i386);
    b.bind(x64);
    b.ld(OFF_NR);
    let not_x32 = b.label();
    b.j(JSET_K, 0x4000_0000, T::Next, T::L(not_x32));
    b.ja(enosys);
    b.bind(not_x32);
    let always = b.label();
    let mprotect = b.label();
    let plain = b.label();
    let mremap = b.label();
    let mmap = b.label();
    let shmat = b.label();
    let uring = b.label();
    // Most frequent first among the watched ones; everything else falls
    // through to allow after at most a dozen comparisons.
    b.jeq_far(nr::MPROTECT, mprotect);
    b.jeq_far(nr::MADVISE, plain);
    b.jeq_far(nr::MUNMAP, plain);
    b.jeq_far(nr::MMAP, mmap);
    b.jeq_far(nr::MREMAP, mremap);
    b.jeq_far(nr::RT_SIGRETURN, always);
    // exit_group: trusted code's is re-issued; foreign code's ends its gate
    // call (the program, not the library, decides when to exit).
    b.jeq_far(nr::EXIT_GROUP, always);
    let sigaction = b.label();
    let altstack = b.label();
    b.jeq_far(nr::RT_SIGACTION, sigaction);
    b.jeq_far(nr::SIGALTSTACK, altstack);
    b.jeq_far(nr::PKEY_MPROTECT, always);
    b.jeq_far(nr::PKEY_ALLOC, always);
    b.jeq_far(nr::PKEY_FREE, always);
    b.jeq_far(nr::PROCESS_VM_WRITEV, always);
    b.jeq_far(nr::SHMAT, shmat);
    b.jeq_far(nr::IO_URING_SETUP, uring);
    b.ja(allow);

    b.bind(always);
    b.token(token, allow);
    b.ja(trap);

    // rt_sigaction with an action, sigaltstack with a new stack: the
    // handler decides (queries pass). Cofferdam's entries stay in front of
    // the fault signals and the thread keeps its alternate stack whatever
    // foreign code asks (docs/signals.md).
    //
    // rt_sigaction of one of Cofferdam's signals fails with EPERM rather
    // than trapping: glibc's posix_spawn child resets every handled signal
    // with all signals blocked, where a trap would kill it (the reset is
    // pointless there anyway: execve resets handlers). Other signals pass;
    // a handler foreign code installs that way still cannot return through
    // a frame of its making (rt_sigreturn needs the token).
    let eperm = b.label();
    b.bind(sigaction);
    b.token(token, allow);
    let set = b.label();
    b.null_or(1, allow, set);
    b.bind(set);
    b.ld(arg_lo(0));
    for sig in RESERVED_SIGNALS {
        b.jeq_far(sig, eperm);
    }
    b.ja(allow);
    b.bind(altstack);
    b.token(token, allow);
    let set = b.label();
    b.null_or(0, allow, set);
    b.bind(set);
    b.ja(trap);
    b.bind(eperm);
    b.ret(RET_ERRNO | EPERM);

    b.bind(mprotect);
    b.token(token, allow);
    b.jset_far(2, PROT_EXEC, trap);
    b.range(0, 1, ranges, allow, trap);

    b.bind(plain);
    b.token(token, allow);
    b.range(0, 1, ranges, allow, trap);

    b.bind(mremap);
    b.token(token, allow);
    let old_ok = b.label();
    b.range(0, 1, ranges, old_ok, trap);
    b.bind(old_ok);
    let fixed = b.label();
    b.jset_far(3, MREMAP_FIXED, fixed);
    b.ja(allow);
    b.bind(fixed);
    b.range(4, 2, ranges, allow, trap);

    // mmap: the token is only ever passed for anonymous mappings (whose
    // offset the kernel ignores).
    b.bind(mmap);
    b.token(token, allow);
    // Any executable mapping goes to the handler: trusted code's is re-issued
    // and its range added to the filter's scope (`scope.rs`); foreign code's
    // is refused.
    b.jset_far(2, PROT_EXEC, trap);
    let mfixed = b.label();
    b.jset_far(3, MAP_FIXED | MAP_FIXED_NOREPLACE, mfixed);
    b.ja(allow);
    b.bind(mfixed);
    b.range(0, 1, ranges, allow, trap);

    b.bind(shmat);
    b.token(token, allow);
    b.jset_far(2, SHM_EXEC | SHM_REMAP, trap);
    b.ja(allow);

    b.bind(uring);
    b.token(token, allow);
    b.ja(enosys);

    // i386 ABI: no token (trusted code never uses it).
    b.bind(i386);
    let is32 = b.label();
    b.j(JEQ_K, AUDIT_ARCH_I386, T::L(is32), T::Next);
    b.ja(allow);
    b.bind(is32);
    b.ld(OFF_NR);
    let m32 = b.label();
    let plain32 = b.label();
    let mremap32 = b.label();
    let mmap32 = b.label();
    for n in [
        nr32::EXIT_GROUP,
        nr32::SIGRETURN,
        nr32::RT_SIGRETURN,
        nr32::OLD_MMAP,
        nr32::IPC,
        nr32::SHMAT,
        nr32::PROCESS_VM_WRITEV,
        nr32::PKEY_MPROTECT,
        nr32::PKEY_ALLOC,
        nr32::PKEY_FREE,
    ] {
        b.jeq_far(n, trap);
    }
    b.jeq_far(nr32::IO_URING_SETUP, enosys);
    b.jeq_far(nr32::MPROTECT, m32);
    b.jeq_far(nr32::MUNMAP, plain32);
    b.jeq_far(nr32::MADVISE, plain32);
    b.jeq_far(nr32::MREMAP, mremap32);
    b.jeq_far(nr32::MMAP2, mmap32);
    b.ja(allow);
    b.bind(m32);
    b.jset_far(2, PROT_EXEC, trap);
    b.range(0, 1, ranges, allow, trap);
    b.bind(plain32);
    b.range(0, 1, ranges, allow, trap);
    b.bind(mremap32);
    let old_ok32 = b.label();
    b.range(0, 1, ranges, old_ok32, trap);
    b.bind(old_ok32);
    let fixed32 = b.label();
    b.jset_far(3, MREMAP_FIXED, fixed32);
    b.ja(allow);
    b.bind(fixed32);
    b.range(4, 2, ranges, allow, trap);
    b.bind(mmap32);
    let not_exec32 = b.label();
    b.ld(arg_lo(2));
    b.j(JSET_K, PROT_EXEC, T::Next, T::L(not_exec32));
    b.jset_far(3, MAP_ANONYMOUS, trap);
    b.bind(not_exec32);
    let mfixed32 = b.label();
    b.jset_far(3, MAP_FIXED | MAP_FIXED_NOREPLACE, mfixed32);
    b.ja(allow);
    b.bind(mfixed32);
    b.range(0, 1, ranges, allow, trap);

    b.bind(allow);
    b.ret(RET_ALLOW);
    b.bind(trap);
    b.ret(RET_TRAP);
    b.bind(enosys);
    b.ret(RET_ERRNO | ENOSYS);
    b.finish()
}

#[cfg(test)]
pub(crate) mod tests {
    //! A classic-BPF interpreter for the subset used, to test the program's
    //! verdicts without installing it.
    use super::*;

    pub(crate) fn run(prog: &[SockFilter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut a, mut x, mut m) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        loop {
            let f = prog[pc];
            pc += 1;
            match f.code {
                LD_W_ABS => {
                    let k = f.k as usize;
                    a = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                }
                LD_MEM => a = m[f.k as usize],
                LDX_MEM => x = m[f.k as usize],
                ST => m[f.k as usize] = a,
                ALU_ADD_K => a = a.wrapping_add(f.k),
                ALU_ADD_X => a = a.wrapping_add(x),
                TAX => x = a,
                JA => pc += f.k as usize,
                JEQ_K | JGT_K | JGE_K | JSET_K | JGE_X => {
                    let c = match f.code {
                        JEQ_K => a == f.k,
                        JGT_K => a > f.k,
                        JGE_K => a >= f.k,
                        JSET_K => a & f.k != 0,
                        _ => a >= x,
                    };
                    pc += if c { f.jt } else { f.jf } as usize;
                }
                RET_K => return f.k,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    const R: (u64, u64) = (0x2000_0000_0000, 0x2100_0000_0000);
    const PAGE: (u64, u64) = (0x5555_5555_7000, 0x5555_5555_8000);
    const TOK: u64 = 0x1234_5678_9abc_d000;

    fn v(nr: u32, args: [u64; 6]) -> u32 {
        run(&program(&[R, PAGE], TOK), nr, AUDIT_ARCH_X86_64, args)
    }

    #[test]
    fn verdicts() {
        let p = program(&[R, PAGE], TOK);
        assert!(p.len() < 4096);
        // Ordinary calls pass.
        assert_eq!(v(0, [0; 6]), RET_ALLOW);
        assert_eq!(
            v(nr::MPROTECT, [0x7f00_0000_0000, 4096, 3, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(v(nr::MUNMAP, [0x1000, 0x1000, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(v(nr::MADVISE, [R.1, 0x1000, 4, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            v(nr::MADVISE, [R.0 - 0x1000, 0x1000, 4, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(v(nr::MMAP, [0, 4096, 5, 0x2, 3, 0]), RET_TRAP); // file-backed r-x
        assert_eq!(v(nr::MMAP, [0, 4096, 1, 0x2, 3, 0]), RET_ALLOW); // file-backed r--
        assert_eq!(v(nr::MMAP, [0, 4096, 3, 0x22, u64::MAX, 0]), RET_ALLOW);
        // Protected ranges trap, at every edge.
        assert_eq!(v(nr::MADVISE, [R.0, 0x1000, 4, 0, 0, 0]), RET_TRAP);
        assert_eq!(v(nr::MADVISE, [R.0 - 0x1000, 0x1001, 4, 0, 0, 0]), RET_TRAP);
        assert_eq!(v(nr::MADVISE, [R.1 - 1, 1, 4, 0, 0, 0]), RET_TRAP);
        assert_eq!(
            v(nr::MUNMAP, [0x1000, 0x7fff_ffff_0000, 0, 0, 0, 0]),
            RET_TRAP
        );
        assert_eq!(
            v(nr::MUNMAP, [0x1000, u64::MAX - 0x10, 0, 0, 0, 0]),
            RET_TRAP
        );
        assert_eq!(v(nr::MPROTECT, [PAGE.0, 4096, 3, 0, 0, 0]), RET_TRAP);
        assert_eq!(
            v(nr::MPROTECT, [PAGE.0 - 0x800, 0x801, 3, 0, 0, 0]),
            RET_TRAP
        );
        assert_eq!(
            v(nr::MPROTECT, [PAGE.0 - 0x800, 0x800, 3, 0, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(v(nr::MPROTECT, [PAGE.1, 0x800, 3, 0, 0, 0]), RET_ALLOW);
        // Carry from the low half: 0x..._ffff_f000 + 0x2000.
        assert_eq!(v(nr::MUNMAP, [R.0 - 0x1000, 0x2000, 0, 0, 0, 0]), RET_TRAP);
        assert_eq!(
            v(nr::MUNMAP, [0x1fff_ffff_f000, 0x1000, 0, 0, 0, 0]),
            RET_ALLOW
        );
        // Executable memory.
        assert_eq!(
            v(nr::MPROTECT, [0x7f00_0000_0000, 4096, 4, 0, 0, 0]),
            RET_TRAP
        );
        assert_eq!(v(nr::MMAP, [0, 4096, 7, 0x22, u64::MAX, 0]), RET_TRAP);
        assert_eq!(v(nr::MMAP, [R.0, 4096, 3, 0x32, u64::MAX, 0]), RET_TRAP);
        assert_eq!(
            v(nr::MMAP, [R.0, 4096, 3, 0x10_0022, u64::MAX, 0]),
            RET_TRAP
        );
        assert_eq!(
            v(nr::MREMAP, [0x7f00_0000_0000, 4096, 4096, 3, R.0, 0]),
            RET_TRAP
        );
        assert_eq!(
            v(nr::MREMAP, [0x7f00_0000_0000, 4096, 8192, 1, R.0, 0]),
            RET_ALLOW
        );
        // Always.
        assert_eq!(v(nr::RT_SIGACTION, [11, 0, 0x1000, 8, 0, 0]), RET_ALLOW);
        assert_eq!(
            v(nr::RT_SIGACTION, [11, 0x1000, 0, 8, 0, 0]),
            RET_ERRNO | EPERM
        );
        assert_eq!(v(nr::RT_SIGACTION, [10, 0x1000, 0, 8, 0, 0]), RET_ALLOW);
        assert_eq!(v(nr::RT_SIGACTION, [11, 0x1000, 0, 8, 0, TOK]), RET_ALLOW);
        assert_eq!(v(nr::SIGALTSTACK, [0, 0x1000, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(v(nr::SIGALTSTACK, [0x1000, 0, 0, 0, 0, 0]), RET_TRAP);
        for n in [
            nr::EXIT_GROUP,
            nr::RT_SIGRETURN,
            nr::PKEY_MPROTECT,
            nr::PKEY_ALLOC,
            nr::PKEY_FREE,
            nr::PROCESS_VM_WRITEV,
        ] {
            assert_eq!(v(n, [0; 6]), RET_TRAP);
            assert_eq!(v(n, [0, 0, 0, 0, 0, TOK]), RET_ALLOW);
            assert_eq!(v(n, [0, 0, 0, 0, 0, TOK ^ 1]), RET_TRAP);
            assert_eq!(v(n, [0, 0, 0, 0, 0, TOK ^ (1 << 40)]), RET_TRAP);
        }
        assert_eq!(v(nr::MADVISE, [R.0, 0x1000, 4, 0, 0, TOK]), RET_ALLOW);
        assert_eq!(v(nr::MMAP, [0, 4096, 7, 0x22, u64::MAX, TOK]), RET_ALLOW);
        assert_eq!(v(nr::SHMAT, [1, 0, SHM_EXEC as u64, 0, 0, 0]), RET_TRAP);
        assert_eq!(v(nr::SHMAT, [1, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            v(nr::IO_URING_SETUP, [8, 0, 0, 0, 0, 0]),
            RET_ERRNO | ENOSYS
        );
        assert_eq!(v(0x4000_0000 | 10, [0; 6]), RET_ERRNO | ENOSYS);
        // i386.
        let r32 = |n, a| run(&p, n, AUDIT_ARCH_I386, a);
        assert_eq!(r32(3, [0; 6]), RET_ALLOW);
        assert_eq!(r32(nr32::MPROTECT, [0x1000, 4096, 7, 0, 0, 0]), RET_TRAP);
        assert_eq!(r32(nr32::MPROTECT, [0x1000, 4096, 3, 0, 0, 0]), RET_ALLOW);
        assert_eq!(r32(nr32::MMAP2, [0, 4096, 7, 0x22, 0, 0]), RET_TRAP);
        assert_eq!(r32(nr32::PKEY_MPROTECT, [0, 0, 0, 0, 0, TOK]), RET_TRAP);
        assert_eq!(r32(nr32::OLD_MMAP, [0; 6]), RET_TRAP);
    }
}
