//! Scoping the seccomp filter to this process's code.
//!
//! A seccomp filter is inherited by every child, across `fork` and
//! `execve`, and can never be removed. A policy written for this process
//! (deny by default, `rt_sigreturn` only with the token, `exit_group` ends the
//! gate call) would break any other program this process starts: its signal
//! handlers could not return, it could not even exit.
//!
//! The filter therefore applies its policy only to system calls made from
//! code at the addresses where this process has executable code: the ranges
//! of every executable mapping when the filter is installed, plus a layer
//! for each executable mapping made later (`Guard::cover`, called when the
//! trap handler re-issues a trusted `mmap`/`mprotect` with `PROT_EXEC`;
//! foreign code cannot make executable mappings at all). Seccomp runs every
//! layer and keeps the most restrictive verdict, so a call from any of those
//! ranges meets the policy, and a call from anywhere else is allowed.
//!
//! In a child that ran `execve`, address-space layout randomisation puts the
//! new program's code elsewhere: its calls are outside every range and the
//! filter lets them through. (With randomisation turned off, e.g. under
//! `setarch -R`, a child of the same executable and libraries would sit at
//! the same addresses and meet the policy.) A child made by `fork` alone
//! keeps this process's code and meets the policy, as it should: it runs
//! the same foreign code.
//!
//! The prologue reads `seccomp_data.instruction_pointer` (offsets 8 and 12:
//! the address after the `syscall` instruction) in two 32-bit halves.

use crate::sys::SockFilter;

const LD_W_ABS: u16 = 0x20;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;

const IP_LO: u32 = 8;
const IP_HI: u32 = 12;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// Instructions per range in the prologue.
const BLOCK: usize = 11;

/// `policy`, run only when the instruction pointer lies in one of `ranges`
/// (`[start, end)` each); any other call is allowed. The policy's own jumps
/// are relative, so it is appended unchanged.
pub(crate) fn scoped(
    prelude: &[SockFilter],
    policy: &[SockFilter],
    ranges: &[(u64, u64)],
) -> Vec<SockFilter> {
    let mut out = Vec::with_capacity(prelude.len() + ranges.len() * BLOCK + 1 + policy.len());
    scoped_into(prelude, policy, ranges, &mut out);
    out
}

/// Instructions [`scoped`] needs for one range.
pub(crate) fn one_range_len(prelude: &[SockFilter], policy: &[SockFilter]) -> usize {
    prelude.len() + BLOCK + 1 + policy.len()
}

/// The calls allowed to everyone, whatever their arguments (`always`, x86_64
/// numbers), let through before anything else, in particular before the
/// instruction pointer is read: the kernel can then work out once that the
/// filter allows them and skip it for them from then on (its per-syscall
/// action cache, which gives up on a syscall number as soon as the filter
/// reads an argument or the instruction pointer for it). Allowed inside the
/// scope or outside, the verdict is the same.
pub(crate) fn prelude(always: &[u32]) -> Vec<SockFilter> {
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
    let always = &always[..always.len().min(250)];
    let n = always.len();
    let mut p = Vec::with_capacity(n + 5);
    // 0: arch; 1: not x86_64 → past the prelude (n + 5).
    p.push(insn(LD_W_ABS, 0, 0, 4));
    p.push(insn(JEQ_K, 0, (n + 3) as u8, AUDIT_ARCH_X86_64));
    // 2: nr; 3..3+n: listed → the RET at 4+n; 3+n: past it.
    p.push(insn(LD_W_ABS, 0, 0, 0));
    for (i, &nr) in always.iter().enumerate() {
        p.push(insn(JEQ_K, (n - i) as u8, 0, nr));
    }
    p.push(insn(JA, 0, 0, 1));
    p.push(insn(RET_K, 0, 0, RET_ALLOW));
    p
}

/// [`scoped`] into `out` (cleared first): no allocation when `out` has the
/// capacity, so the trap handler can build a layer.
pub(crate) fn scoped_into(
    prelude: &[SockFilter],
    policy: &[SockFilter],
    ranges: &[(u64, u64)],
    out: &mut Vec<SockFilter>,
) {
    out.clear();
    out.extend_from_slice(prelude);
    let policy_start = ranges.len() * BLOCK + 1;
    for (i, &(s, e)) in ranges.iter().enumerate() {
        let base = i * BLOCK;
        let (s_hi, s_lo) = ((s >> 32) as u32, s as u32);
        let (e_hi, e_lo) = ((e >> 32) as u32, e as u32);
        // 0..4: ip >= s, else the next block (11).
        out.push(insn(LD_W_ABS, 0, 0, IP_HI));
        out.push(insn(JGT_K, 3, 0, s_hi)); // hi > s_hi: ip >= s → 5
        out.push(insn(JEQ_K, 0, 8, s_hi)); // hi < s_hi → 11
        out.push(insn(LD_W_ABS, 0, 0, IP_LO));
        out.push(insn(JGE_K, 0, 6, s_lo)); // lo < s_lo → 11
                                           // 5..9: ip < e → 10 (in), else the next block.
        out.push(insn(LD_W_ABS, 0, 0, IP_HI));
        out.push(insn(JGT_K, 4, 0, e_hi)); // hi > e_hi → 11
        out.push(insn(JEQ_K, 0, 2, e_hi)); // hi < e_hi → 10
        out.push(insn(LD_W_ABS, 0, 0, IP_LO));
        out.push(insn(JGE_K, 1, 0, e_lo)); // lo >= e_lo → 11, else 10
                                           // 10: in range: on to the policy.
        out.push(insn(JA, 0, 0, (policy_start - (base + 10 + 1)) as u32));
    }
    out.push(insn(RET_K, 0, 0, RET_ALLOW));
    out.extend_from_slice(policy);
}

/// The executable mappings of this process now, from `/proc/self/maps`,
/// merged where adjacent.
pub(crate) fn executable_ranges() -> std::io::Result<Vec<(u64, u64)>> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut out: Vec<(u64, u64)> = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if perms.as_bytes().get(2) != Some(&b'x') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        match out.last_mut() {
            Some(last) if last.1 == a => last.1 = b,
            _ => out.push((a, b)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the subset of classic BPF used here (plus a RET for the policy).
    fn run(prog: &[SockFilter], ip: u64) -> u32 {
        run_call(prog, 0, 0xC000_003E, ip)
    }

    fn run_call(prog: &[SockFilter], nr: u32, arch: u32, ip: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[8..16].copy_from_slice(&ip.to_le_bytes());
        let mut a = 0u32;
        let mut pc = 0usize;
        loop {
            let f = prog[pc];
            pc += 1;
            match f.code {
                LD_W_ABS => {
                    let k = f.k as usize;
                    a = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                }
                JA => pc += f.k as usize,
                JEQ_K | JGT_K | JGE_K => {
                    let c = match f.code {
                        JEQ_K => a == f.k,
                        JGT_K => a > f.k,
                        _ => a >= f.k,
                    };
                    pc += if c { f.jt } else { f.jf } as usize;
                }
                RET_K => return f.k,
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn the_prelude_allows_listed_calls_before_the_scope() {
        const POLICY: u32 = 0x0003_0000;
        let policy = [insn(RET_K, 0, 0, POLICY)];
        let range = (0x5555_5555_0000, 0x5555_5556_0000);
        let always: Vec<u32> = (100..340).collect();
        let p = scoped(&prelude(&always), &policy, &[range]);
        let x86_64 = 0xC000_003E;
        for nr in [100, 101, 250, 339] {
            assert_eq!(run_call(&p, nr, x86_64, range.0), RET_ALLOW, "{nr}");
        }
        // Not listed, in scope: the policy; out of scope: allowed.
        for nr in [0, 99, 340, 0x4000_0000 | 100] {
            assert_eq!(run_call(&p, nr, x86_64, range.0), POLICY, "{nr}");
            assert_eq!(run_call(&p, nr, x86_64, 0x1000), RET_ALLOW, "{nr}");
        }
        // Another architecture never takes the prelude's way.
        assert_eq!(run_call(&p, 100, 0x4000_0003, range.0), POLICY);
        // Nothing listed: straight on to the scope.
        let p = scoped(&prelude(&[]), &policy, &[range]);
        assert_eq!(run_call(&p, 3, x86_64, range.0), POLICY);
        assert_eq!(run_call(&p, 3, x86_64, 0x1000), RET_ALLOW);
    }

    #[test]
    fn only_calls_from_the_ranges_meet_the_policy() {
        const POLICY: u32 = 0x0003_0000; // "trap", as a marker
        let policy = [insn(RET_K, 0, 0, POLICY)];
        let ranges = [
            (0x5555_5555_0000, 0x5555_5556_0000),
            (0x7fff_ffff_f000, 0x8000_0000_1000), // crosses a 32-bit boundary
            (0x7f00_1234_0000, 0x7f00_1235_0000),
        ];
        let p = scoped(&[], &policy, &ranges);
        for &(s, e) in &ranges {
            assert_eq!(run(&p, s), POLICY);
            assert_eq!(run(&p, e - 1), POLICY);
            assert_eq!(run(&p, (s + e) / 2), POLICY);
            assert_eq!(run(&p, s - 1), RET_ALLOW);
            assert_eq!(run(&p, e), RET_ALLOW);
        }
        assert_eq!(run(&p, 0), RET_ALLOW);
        assert_eq!(run(&p, u64::MAX), RET_ALLOW);
        assert_eq!(run(&p, 0x7f00_1236_0000), RET_ALLOW);
        // Many ranges: the jumps to the policy stay in reach.
        let many: Vec<(u64, u64)> = (0..200u64)
            .map(|i| {
                (
                    0x1000_0000 + i * 0x10_0000,
                    0x1000_0000 + i * 0x10_0000 + 0x1000,
                )
            })
            .collect();
        let p = scoped(&[], &policy, &many);
        assert_eq!(run(&p, many[0].0), POLICY);
        assert_eq!(run(&p, many[199].0 + 0x800), POLICY);
        assert_eq!(run(&p, many[199].1), RET_ALLOW);
    }

    #[test]
    fn this_process_has_executable_ranges_covering_its_code() {
        let r = executable_ranges().unwrap();
        let here =
            this_process_has_executable_ranges_covering_its_code as *const () as usize as u64;
        assert!(r.iter().any(|&(s, e)| s <= here && here < e));
    }
}
