//! The seccomp filter, as classic BPF, written by hand (no dependency).
//!
//! Classic BPF has a 32-bit accumulator, so every 64-bit argument is handled
//! as two halves; conditional jumps go forward at most 255 instructions, so
//! far targets are reached through an unconditional `ja`.
//!
//! What it does (the list itself is `policy.rs`):
//!
//! | syscall | verdict |
//! | --- | --- |
//! | not the x86_64 ABI (`int 0x80`, i386) | trap (refused) |
//! | x32 ABI (`nr & 0x4000_0000`) | `ENOSYS` |
//! | [`Rule::Allow`] | allow, without loading an argument (the kernel caches the verdict) |
//! | `mmap` | allow unless `PROT_EXEC` or `MAP_FIXED(_NOREPLACE)`; trap, unless the token is in the high halves of `prot` and `flags` |
//! | `clone` | allow without `CLONE_VM`; with `CLONE_VM` and `CLONE_SETTLS` or `CLONE_VFORK`: to the supervisor, which notes who makes it and lets it run (allowed where there is no listener); else trap |
//! | `rt_sigaction` | allow a query, or a handler for a signal other than SIGSEGV, SIGBUS, SIGSYS; else trap |
//! | `ioctl` | allow `TCGETS`, `TIOCGWINSZ`, `FIONREAD`, `FIONBIO`, `FIOCLEX`, `FIONCLEX`; else trap |
//! | `prlimit64` | allow when it only reads (`new == NULL`); else trap |
//! | [`Rule::Enosys`] | `ENOSYS` |
//! | everything else, [`Rule::Check`] included | allow with the guard's token in `args[5]` (the handler's re-issue), else trap |

use super::policy::{self, Rule};
use crate::sys::SockFilter;

const LD_W_ABS: u16 = 0x20;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const LD_MEM: u16 = 0x60;
const LDX_MEM: u16 = 0x61;
const ST: u16 = 0x02;
const ALU_ADD_K: u16 = 0x04;
const ALU_ADD_X: u16 = 0x0c;
const TAX: u16 = 0x07;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JGE_X: u16 = 0x3d;
const RET_K: u16 = 0x06;

pub(crate) const RET_ALLOW: u32 = 0x7fff_0000;
pub(crate) const RET_TRAP: u32 = 0x0003_0000;
pub(crate) const RET_ERRNO: u32 = 0x0005_0000;
/// Handed to the guard's supervisor thread (`notify.rs`) through the
/// filter's listener; without a listener the kernel fails the call with
/// `ENOSYS`.
pub(crate) const RET_USER_NOTIF: u32 = 0x7fc0_0000;

pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
#[cfg(test)]
pub(crate) const AUDIT_ARCH_I386: u32 = 0x4000_0003;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
fn arg_hi(i: u32) -> u32 {
    16 + 8 * i + 4
}

const PROT_EXEC: u32 = 0x4;
const MAP_FIXED: u32 = 0x10;
const MAP_FIXED_NOREPLACE: u32 = 0x10_0000;
const CLONE_VM: u32 = 0x100;
const CLONE_SETTLS: u32 = 0x8_0000;
const CLONE_VFORK: u32 = 0x4000;
const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
/// `ioctl` requests foreign code may make: `TCGETS` (isatty), `TIOCGWINSZ`,
/// `FIONREAD`, `FIONBIO`, `FIONCLEX`, `FIOCLEX`.
const IOCTLS: [u32; 6] = [0x5401, 0x5413, 0x541B, 0x5421, 0x5450, 0x5451];
/// Cofferdam's signals: their handlers stay Cofferdam's entry
/// (`fault::is_fault_signal`, and SIGSYS).
const KEPT_SIGNALS: [u32; 7] = [
    libc::SIGILL as u32,
    libc::SIGTRAP as u32,
    libc::SIGABRT as u32,
    libc::SIGBUS as u32,
    libc::SIGFPE as u32,
    libc::SIGSEGV as u32,
    libc::SIGSYS as u32,
];

/// Who answers `munmap` and `madvise` outside the ranges fixed at install
/// (those inside them always trap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notify {
    /// The supervisor thread, through the filter's listener (`notify.rs`):
    /// no signal, so glibc's thread exit, which unmaps stacks with every
    /// signal blocked, is decided like any other call.
    Listener,
    /// No listener could be had (a filter above this process already holds
    /// one: `EBUSY`): `munmap` traps, `madvise` fails with `ENOSYS` (the
    /// thread-exit `MADV_DONTNEED` only returns memory early).
    Trap,
    /// A layer for a later executable mapping (`cover`): both trap.
    Cover,
}

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

    /// `if args[a] & bit goto l` (low half).
    fn jset_far(&mut self, a: u32, bit: u32, l: usize) {
        self.ld(arg_lo(a));
        let skip = self.label();
        self.j(JSET_K, bit, T::Next, T::L(skip));
        self.ja(l);
        self.bind(skip);
    }

    /// Go to `trap` if `[args[a], args[a] + args[l])` meets any of
    /// `ranges`, else to `miss`. A length that wraps around traps.
    fn range(&mut self, a: u32, l: u32, ranges: &[(u64, u64)], miss: usize, trap: usize) {
        // Conditional jumps reach at most 255 instructions: every jump to
        // `trap` goes through an unconditional `ja` placed next to it.
        let nocarry = self.label();
        let start = self.label();
        let hit0 = self.label();
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
        self.j(JGE_X, 0, T::Next, T::L(hit0));
        // Carry from the low halves.
        self.op(LD_MEM, 0);
        self.op(LDX_MEM, 2);
        self.j(JGE_X, 0, T::L(nocarry), T::Next);
        self.op(LD_MEM, 1);
        self.op(ALU_ADD_K, 1);
        self.j(JEQ_K, 0, T::L(hit0), T::Next);
        self.op(ST, 1);
        self.bind(nocarry);
        self.ja(start);
        self.bind(hit0);
        self.ja(trap);
        self.bind(start);
        for &(s, e) in ranges {
            let next = self.label();
            let below_e = self.label();
            let hit = self.label();
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
            self.bind(hit);
            self.ja(trap);
            self.bind(next);
        }
        self.ja(miss);
    }
}

/// `if args[a] == 0 goto l` (both halves).
fn zero_goto(b: &mut B, a: u32, l: usize) {
    let no = b.label();
    b.ld(arg_lo(a));
    b.j(JEQ_K, 0, T::Next, T::L(no));
    b.ld(arg_hi(a));
    let yes = b.label();
    b.j(JEQ_K, 0, T::L(yes), T::L(no));
    b.bind(yes);
    b.ja(l);
    b.bind(no);
}

/// The x86_64 calls the list allows to everyone without a look at their
/// arguments (`Rule::Allow`, widened by `allow`, narrowed by `deny`).
pub(crate) fn always_allowed(allow: &[u32], deny: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = policy::DEFAULT.iter().map(|e| e.nr).collect();
    for &n in allow {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out.retain(|&nr| policy::rule(nr, allow, deny) == Some(Rule::Allow));
    out
}

/// The filter for `token` under the default list widened by `allow` and
/// narrowed by `deny` (see [`policy::rule`]).
pub(crate) fn program(
    token: u64,
    ranges: &[(u64, u64)],
    allow: &[u32],
    deny: &[u32],
    notify: Notify,
) -> Vec<SockFilter> {
    let mut b = B::new();
    let allow_l = b.label();
    let trap = b.label();
    let enosys = b.label();
    let checked = b.label();

    b.ld(OFF_ARCH);
    let x64 = b.label();
    b.j(JEQ_K, AUDIT_ARCH_X86_64, T::L(x64), T::Next);
    b.ja(trap);
    b.bind(x64);
    b.ld(OFF_NR);
    let not_x32 = b.label();
    b.j(JSET_K, 0x4000_0000, T::Next, T::L(not_x32));
    b.ja(enosys);
    b.bind(not_x32);

    let mmap = b.label();
    let clone = b.label();
    let sigaction = b.label();
    let ioctl = b.label();
    let prlimit = b.label();
    let sigmask = b.label();
    let madvise = b.label();
    let munmap = b.label();
    let rseq = b.label();
    let tgkill = b.label();
    let altstack = b.label();
    let arg_target = |nr: u32| -> usize {
        match nr {
            n if n == libc::SYS_mmap as u32 => mmap,
            n if n == libc::SYS_clone as u32 => clone,
            n if n == libc::SYS_rt_sigaction as u32 => sigaction,
            n if n == libc::SYS_ioctl as u32 => ioctl,
            n if n == libc::SYS_prlimit64 as u32 => prlimit,
            n if n == libc::SYS_rt_sigprocmask as u32 => sigmask,
            n if n == libc::SYS_madvise as u32 => madvise,
            n if n == libc::SYS_rseq as u32 => rseq,
            n if n == libc::SYS_munmap as u32 => munmap,
            n if n == libc::SYS_tgkill as u32 => tgkill,
            n if n == libc::SYS_sigaltstack as u32 => altstack,
            _ => checked,
        }
    };
    // Numbers the filter names, in the list's order (most frequent first);
    // then the extra allowed ones.
    let mut listed: Vec<u32> = policy::DEFAULT.iter().map(|e| e.nr).collect();
    for &n in allow {
        if !listed.contains(&n) {
            listed.push(n);
        }
    }
    for nr in listed {
        match policy::rule(nr, allow, deny) {
            Some(Rule::Allow) => b.jeq_far(nr, allow_l),
            Some(Rule::Args) => b.jeq_far(nr, arg_target(nr)),
            Some(Rule::Enosys) => b.jeq_far(nr, enosys),
            Some(Rule::Check) | None => {}
        }
    }
    b.ja(checked);

    // mmap: the handler's re-issue carries the token in the high halves of
    // `prot` and `flags` (the kernel ignores them), so that the offset stays
    // the caller's.
    b.bind(mmap);
    {
        let no = b.label();
        b.ld(arg_hi(2));
        b.j(JEQ_K, (token >> 32) as u32, T::Next, T::L(no));
        b.ld(arg_hi(3));
        let yes = b.label();
        b.j(JEQ_K, token as u32, T::L(yes), T::L(no));
        b.bind(yes);
        b.ja(allow_l);
        b.bind(no);
        b.jset_far(2, PROT_EXEC, trap);
        b.jset_far(3, MAP_FIXED | MAP_FIXED_NOREPLACE, trap);
        b.ja(allow_l);
    }

    // clone: a process (no CLONE_VM), a thread with a TLS of its own, or a
    // vfork child (`posix_spawn`), which borrows the caller's thread while
    // the caller is suspended until it execs or exits. A thread sharing the
    // caller's TLS would pass the gate's thread check as the caller: never.
    b.bind(clone);
    {
        b.ld(arg_lo(0));
        let vm = b.label();
        b.j(JSET_K, CLONE_VM, T::L(vm), T::Next);
        b.ja(allow_l);
        b.bind(vm);
        let tls = b.label();
        b.j(JSET_K, CLONE_SETTLS | CLONE_VFORK, T::L(tls), T::Next);
        b.ja(checked);
        b.bind(tls);
        // A thread or vfork child in this address space: the supervisor
        // looks at who makes it (`notify.rs`): one made from inside a gate
        // call could take another thread's FS base, and then the gate checks
        // thread ids. The call itself always goes ahead. Without a listener
        // the gate checks thread ids from the start (`guard::install`).
        if notify == Notify::Listener {
            b.ret(RET_USER_NOTIF);
        } else {
            b.ja(allow_l);
        }
    }

    // rt_sigaction: queries, and handlers for signals Cofferdam does not
    // keep. One of Cofferdam's signals fails with EPERM rather than
    // trapping: glibc's posix_spawn child resets every handled signal with
    // all signals blocked, where a trap would kill it (and the reset is
    // pointless there: execve resets handlers). Cofferdam's own changes
    // carry the token.
    let eperm = b.label();
    b.bind(sigaction);
    {
        b.token(token, allow_l);
        zero_goto(&mut b, 1, allow_l);
        b.ld(arg_lo(0));
        for s in KEPT_SIGNALS {
            b.jeq_far(s, eperm);
        }
        b.ja(allow_l);
    }

    // sigaltstack: a query passes (the kernel writes the old value with the
    // caller's PKRU); a new stack traps (the handler checks it and keeps
    // Cofferdam's own stacks in place).
    b.bind(altstack);
    zero_goto(&mut b, 0, allow_l);
    b.ja(checked);

    // tgkill: to this process's own threads (the pid is fixed at install;
    // a forked child's calls trap and are decided by its handler). Signals
    // to other processes are not foreign code's to send.
    b.bind(tgkill);
    {
        b.ld(arg_hi(0));
        let lo = b.label();
        let other = b.label();
        b.j(JEQ_K, 0, T::L(lo), T::L(other));
        b.bind(lo);
        b.ld(arg_lo(0));
        let me = b.label();
        b.j(JEQ_K, crate::sys::getpid() as u32, T::L(me), T::L(other));
        b.bind(me);
        b.ja(allow_l);
        b.bind(other);
        b.ja(checked);
    }

    b.bind(ioctl);
    {
        b.ld(arg_lo(1));
        for r in IOCTLS {
            b.jeq_far(r, allow_l);
        }
        b.ja(checked);
    }

    b.bind(prlimit);
    zero_goto(&mut b, 2, allow_l);
    b.ja(checked);

    // rt_sigprocmask: a query or SIG_UNBLOCK passes; a call that may block
    // signals is emulated by the handler, which keeps SIGSYS unblocked (a
    // trapped call while SIGSYS is blocked would kill the process, and
    // glibc blocks every signal around thread exit and posix_spawn).
    //
    // Not any more: a trusted thread that Cofferdam has not adopted yet (a
    // new thread in glibc's start code, whose first call restores its mask)
    // would have its trap handled without rights and resume with P denied.
    // Every rt_sigprocmask passes; a trapped call made while SIGSYS is
    // blocked ends the process (docs/guard.md: foreign code can do that on
    // purpose, which is denial of service, not an escape).
    b.bind(sigmask);
    b.ja(allow_l);

    // munmap and madvise: the ranges fixed at install trap (the handler
    // refuses foreign code, re-issues trusted code's); elsewhere the range
    // may still be a tagged Rust stack, made after install, so the
    // supervisor thread decides (`notify.rs`) without a signal: glibc's
    // thread exit unmaps cached stacks and advises its own away with every
    // signal blocked, where a trap would kill the process.
    let (unmap_out, advise_out) = match notify {
        Notify::Listener => (RET_USER_NOTIF, RET_USER_NOTIF),
        Notify::Trap => (RET_TRAP, RET_ERRNO | ENOSYS),
        Notify::Cover => (RET_TRAP, RET_TRAP),
    };
    let unmap_ret = b.label();
    let advise_ret = b.label();
    b.bind(munmap);
    b.token(token, allow_l);
    b.range(0, 1, ranges, unmap_ret, checked);
    b.bind(madvise);
    b.token(token, allow_l);
    b.range(0, 1, ranges, advise_ret, checked);

    // rseq: registration "succeeds" without registering anything (0 without
    // running the call), for everyone: glibc treats a failed registration in
    // a new thread as fatal, and a registered area in TLS would let foreign
    // code redirect the thread. The handler-free unregistration of
    // glibc's area carries the token.
    b.bind(rseq);
    b.token(token, allow_l);
    b.ret(RET_ERRNO);

    // Everything else: the handler's re-issue passes; the rest traps.
    b.bind(checked);
    b.token(token, allow_l);
    b.ja(trap);

    b.bind(unmap_ret);
    b.ret(unmap_out);
    b.bind(advise_ret);
    b.ret(advise_out);
    b.bind(eperm);
    b.ret(RET_ERRNO | EPERM);
    b.bind(allow_l);
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

    const TOK: u64 = 0x1234_5678_9abc_d000;
    const R: (u64, u64) = (0x2000_0000_0000, 0x2100_0000_0000);

    #[test]
    fn many_ranges_fit() {
        let ranges: Vec<(u64, u64)> = (0..200u64)
            .map(|i| {
                (
                    0x5000_0000_0000 + i * 0x10_0000,
                    0x5000_0000_0000 + i * 0x10_0000 + 0x1000,
                )
            })
            .collect();
        let p = program(TOK, &ranges, &[], &[], Notify::Listener);
        let r = |a| run(&p, libc::SYS_madvise as u32, AUDIT_ARCH_X86_64, a);
        assert_eq!(
            r([0x5000_0000_0000 + 199 * 0x10_0000, 1, 4, 0, 0, 0]),
            RET_TRAP
        );
        assert_eq!(
            r([0x5000_0000_0000 + 0x1000, 0x1000, 4, 0, 0, 0]),
            RET_USER_NOTIF
        );
        assert_eq!(
            r([0x5000_0000_0000 + 0x1000, 0xff001, 4, 0, 0, 0]),
            RET_TRAP
        );
    }

    fn v(nr: i64, args: [u64; 6]) -> u32 {
        run(
            &program(TOK, &[R], &[], &[], Notify::Listener),
            nr as u32,
            AUDIT_ARCH_X86_64,
            args,
        )
    }

    #[test]
    fn verdicts() {
        use libc::*;
        const ENOSYS: u32 = super::ENOSYS;
        let p = program(TOK, &[R], &[], &[], Notify::Listener);
        assert!(p.len() < 4096);
        // Listed calls pass, whatever their arguments.
        for n in [
            SYS_read,
            SYS_write,
            SYS_futex,
            SYS_close,
            SYS_exit,
            SYS_fork,
            SYS_vfork,
            SYS_execve,
            SYS_execveat,
        ] {
            assert_eq!(v(n, [u64::MAX; 6]), RET_ALLOW, "{n}");
        }
        // Unlisted ones trap, unless the token is in args[5].
        for n in [
            SYS_process_vm_readv,
            SYS_process_vm_writev,
            SYS_ptrace,
            SYS_pkey_mprotect,
            SYS_pkey_alloc,
            SYS_userfaultfd,
            SYS_perf_event_open,
            SYS_bpf,
            SYS_kill,
            SYS_tkill,
            SYS_rt_sigreturn,
            SYS_exit_group,
            SYS_memfd_create,
            SYS_vmsplice,
            SYS_arch_prctl,
            999,
        ] {
            assert_eq!(v(n, [0; 6]), RET_TRAP, "{n}");
            assert_eq!(v(n, [0, 0, 0, 0, 0, TOK]), RET_ALLOW, "{n}");
            assert_eq!(v(n, [0, 0, 0, 0, 0, TOK ^ 1]), RET_TRAP, "{n}");
            assert_eq!(v(n, [0, 0, 0, 0, 0, TOK ^ (1 << 40)]), RET_TRAP, "{n}");
        }
        // Checked calls always trap (token aside).
        for n in [
            SYS_mprotect,
            SYS_mremap,
            SYS_openat,
            SYS_open,
            SYS_openat2,
            SYS_sigaltstack,
            SYS_prctl,
        ] {
            assert_eq!(v(n, [0x1000, 0x1000, 3, 0, 0, 0]), RET_TRAP, "{n}");
            assert_eq!(v(n, [0x1000, 0x1000, 3, 0, 0, TOK]), RET_ALLOW, "{n}");
        }
        assert_eq!(v(SYS_sigaltstack, [0, 0x1000, 0, 0, 0, 0]), RET_ALLOW);
        // munmap, madvise: the fixed ranges trap, the rest goes to the
        // supervisor; the token passes.
        for n in [SYS_madvise, SYS_munmap] {
            assert_eq!(v(n, [0x1000, 0x1000, 4, 0, 0, 0]), RET_USER_NOTIF);
            assert_eq!(v(n, [R.0 - 0x1000, 0x2000, 4, 0, 0, 0]), RET_TRAP);
            assert_eq!(v(n, [R.1 - 1, 1, 4, 0, 0, 0]), RET_TRAP);
            assert_eq!(v(n, [R.1, 0x1000, 4, 0, 0, 0]), RET_USER_NOTIF);
            assert_eq!(v(n, [0x1000, u64::MAX - 0x10, 4, 0, 0, 0]), RET_TRAP);
            assert_eq!(v(n, [0x1000, 0x1000, 8, 0, 0, 0]), RET_USER_NOTIF);
            assert_eq!(v(n, [R.0, 0x1000, 8, 0, 0, TOK]), RET_ALLOW);
        }
        for (mode, unmap, advise) in [
            (Notify::Trap, RET_TRAP, RET_ERRNO | ENOSYS),
            (Notify::Cover, RET_TRAP, RET_TRAP),
        ] {
            let p = program(TOK, &[R], &[], &[], mode);
            let r = |n: i64, a| run(&p, n as u32, AUDIT_ARCH_X86_64, a);
            assert_eq!(r(SYS_munmap, [0x1000, 0x1000, 0, 0, 0, 0]), unmap);
            assert_eq!(r(SYS_madvise, [0x1000, 0x1000, 4, 0, 0, 0]), advise);
            assert_eq!(r(SYS_madvise, [R.0, 0x1000, 4, 0, 0, 0]), RET_TRAP);
        }
        // tgkill: this process only.
        let me = crate::sys::getpid() as u64;
        assert_eq!(v(SYS_tgkill, [me, 7, 10, 0, 0, 0]), RET_ALLOW);
        assert_eq!(v(SYS_tgkill, [me + 1, 7, 10, 0, 0, 0]), RET_TRAP);
        assert_eq!(v(SYS_tgkill, [me | 1 << 32, 7, 10, 0, 0, 0]), RET_TRAP);
        // rt_sigprocmask: queries and SIG_UNBLOCK pass.
        assert_eq!(v(SYS_rt_sigprocmask, [0, 0, 0x1000, 8, 0, 0]), RET_ALLOW);
        assert_eq!(v(SYS_rt_sigprocmask, [1, 0x1000, 0, 8, 0, 0]), RET_ALLOW);
        assert_eq!(v(SYS_rt_sigprocmask, [0, 0x1000, 0, 8, 0, 0]), RET_ALLOW);
        assert_eq!(v(SYS_rt_sigprocmask, [2, 0x1000, 0, 8, 0, 0]), RET_ALLOW);
        // rseq: a registration returns 0 without running.
        assert_eq!(v(SYS_rseq, [0x1000, 32, 0, 0x5305_3053, 0, 0]), RET_ERRNO);
        assert_eq!(v(SYS_rseq, [0x1000, 32, 1, 0x5305_3053, 0, TOK]), RET_ALLOW);
        // mmap.
        assert_eq!(v(SYS_mmap, [0, 4096, 3, 0x22, u64::MAX, 0]), RET_ALLOW);
        assert_eq!(v(SYS_mmap, [0, 4096, 1, 0x2, 3, 4096]), RET_ALLOW);
        assert_eq!(v(SYS_mmap, [0, 4096, 5, 0x2, 3, 0]), RET_TRAP);
        assert_eq!(v(SYS_mmap, [0, 4096, 7, 0x22, u64::MAX, 0]), RET_TRAP);
        assert_eq!(v(SYS_mmap, [0x1000, 4096, 3, 0x32, u64::MAX, 0]), RET_TRAP);
        assert_eq!(
            v(SYS_mmap, [0x1000, 4096, 3, 0x10_0022, u64::MAX, 0]),
            RET_TRAP
        );
        let hi = |x: u64, t: u64| x | (t << 32);
        assert_eq!(
            v(
                SYS_mmap,
                [
                    0x1000,
                    4096,
                    hi(5, TOK >> 32),
                    hi(0x12, TOK & 0xffff_ffff),
                    3,
                    8192
                ]
            ),
            RET_ALLOW
        );
        assert_eq!(
            v(
                SYS_mmap,
                [0x1000, 4096, hi(5, TOK >> 32), hi(0x12, 1), 3, 8192]
            ),
            RET_TRAP
        );
        assert_eq!(v(SYS_mmap, [0x1000, 4096, 5, 0x12, 3, TOK]), RET_TRAP);
        // clone.
        let thread = (CLONE_VM
            | CLONE_FS
            | CLONE_FILES
            | CLONE_SIGHAND
            | CLONE_THREAD
            | CLONE_SYSVSEM
            | CLONE_SETTLS
            | CLONE_PARENT_SETTID
            | CLONE_CHILD_CLEARTID) as u64;
        // A thread: the supervisor looks at who makes it (and lets it be).
        assert_eq!(v(SYS_clone, [thread, 0x1000, 0, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(
            v(
                SYS_clone,
                [(CLONE_CHILD_SETTID | SIGCHLD) as u64, 0, 0, 0, 0, 0]
            ),
            RET_ALLOW
        );
        assert_eq!(
            v(
                SYS_clone,
                [thread & !(CLONE_SETTLS as u64), 0x1000, 0, 0, 0, 0]
            ),
            RET_TRAP
        );
        // posix_spawn's vfork child.
        assert_eq!(
            v(
                SYS_clone,
                [
                    (CLONE_VM | CLONE_VFORK | SIGCHLD) as u64,
                    0x1000,
                    0,
                    0,
                    0,
                    0
                ]
            ),
            RET_USER_NOTIF
        );
        // Without a listener both go ahead unseen (the gate then checks
        // thread ids from the start).
        for n in [Notify::Trap, Notify::Cover] {
            let p = program(TOK, &[R], &[], &[], n);
            let r = |a| run(&p, SYS_clone as u32, AUDIT_ARCH_X86_64, a);
            assert_eq!(r([thread, 0x1000, 0, 0, 0, 0]), RET_ALLOW);
            assert_eq!(
                r([
                    (CLONE_VM | CLONE_VFORK | SIGCHLD) as u64,
                    0x1000,
                    0,
                    0,
                    0,
                    0
                ]),
                RET_ALLOW
            );
        }
        // rt_sigaction.
        assert_eq!(
            v(SYS_rt_sigaction, [SIGSEGV as u64, 0, 0x1000, 8, 0, 0]),
            RET_ALLOW
        );
        assert_eq!(
            v(SYS_rt_sigaction, [SIGINT as u64, 0x1000, 0, 8, 0, 0]),
            RET_ALLOW
        );
        for s in [SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSYS] {
            assert_eq!(
                v(SYS_rt_sigaction, [s as u64, 0x1000, 0, 8, 0, 0]),
                RET_ERRNO | super::EPERM
            );
            assert_eq!(
                v(SYS_rt_sigaction, [s as u64, 1 << 32, 0, 8, 0, 0]),
                RET_ERRNO | super::EPERM
            );
            assert_eq!(
                v(SYS_rt_sigaction, [s as u64, 0x1000, 0, 8, 0, TOK]),
                RET_ALLOW
            );
        }
        // ioctl, prlimit64.
        assert_eq!(v(SYS_ioctl, [1, 0x5401, 0x1000, 0, 0, 0]), RET_ALLOW);
        assert_eq!(v(SYS_ioctl, [1, 0x5412, 0x1000, 0, 0, 0]), RET_TRAP); // TIOCSTI
        assert_eq!(v(SYS_prlimit64, [0, 3, 0, 0x1000, 0, 0]), RET_ALLOW);
        assert_eq!(v(SYS_prlimit64, [0, 3, 0x1000, 0, 0, 0]), RET_TRAP);
        // ENOSYS.
        assert_eq!(v(SYS_clone3, [0x1000, 88, 0, 0, 0, 0]), RET_ERRNO | ENOSYS);
        assert_eq!(
            v(SYS_io_uring_setup, [8, 0, 0, 0, 0, TOK]),
            RET_ERRNO | ENOSYS
        );
        assert_eq!(v(0x4000_0000 | 10, [0; 6]), RET_ERRNO | ENOSYS);
        // i386: always trapped.
        assert_eq!(run(&p, 3, AUDIT_ARCH_I386, [0; 6]), RET_TRAP);
        assert_eq!(run(&p, 20, AUDIT_ARCH_I386, [0, 0, 0, 0, 0, TOK]), RET_TRAP);
    }

    #[test]
    fn widened_and_narrowed() {
        use libc::*;
        let p = program(
            TOK,
            &[R],
            &[SYS_memfd_create as u32],
            &[SYS_socket as u32],
            Notify::Listener,
        );
        let r = |n: i64, a| run(&p, n as u32, AUDIT_ARCH_X86_64, a);
        assert_eq!(r(SYS_memfd_create, [0; 6]), RET_ALLOW);
        assert_eq!(r(SYS_socket, [2, 1, 0, 0, 0, 0]), RET_TRAP);
        assert_eq!(r(SYS_socket, [2, 1, 0, 0, 0, TOK]), RET_ALLOW);
        assert_eq!(r(SYS_mmap, [0, 4096, 3, 0x22, u64::MAX, 0]), RET_ALLOW);
        assert_eq!(r(SYS_read, [0; 6]), RET_ALLOW);
    }
}
