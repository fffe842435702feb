//! Cofferdam's own code, scanned (issue 9): every WRPKRU in this test
//! executable is one of the trampolines' checked sequences, and there is no
//! XRSTOR/XRSTORS at all; and the signal frame layout the signal entry
//! relies on is the one the kernel delivers.
//!
//! This binary does not link the attack suite (whose C code has WRPKRUs of
//! its own on purpose): the executable scanned is Cofferdam, the standard
//! library and this file. The attacks themselves are tested in
//! `tests/integrity_attacks.rs`.

mod common;

use std::collections::BTreeSet;

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, OpKind, Register};

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

extern "C" {
    // The trampolines' code runs from `cofferdam_gate_call` to the label
    // `cofferdam_gate_code_end` (gate/asm.rs). Found by address, not by name:
    // the linker resolves these to Cofferdam's own definitions.
    fn cofferdam_gate_call();
    fn cofferdam_gate_code_end();
}

/// The link-time address of a function of this executable.
fn link_vaddr(f: *const (), exec: bool) -> u64 {
    if exec {
        // ET_EXEC: loaded where it was linked.
        return f as u64;
    }
    // SAFETY: a zeroed Dl_info is a valid out-parameter; dladdr only reads
    // the loader's tables.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let ok = unsafe { libc::dladdr(f.cast(), &mut info) };
    assert_ne!(ok, 0, "dladdr failed for {f:p}");
    f as u64 - info.dli_fbase as u64
}

/// How the instructions after one WRPKRU check it.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    /// CD_WRPKRU_DENIED: `mov ecx, [rip+cfg]; and ecx, eax; cmp ecx,
    /// [rip+cfg]; jne fail`.
    Denied { cfg: u64, fail: u64 },
    /// CD_WRPKRU_ALLOWED: `test [rip+cfg], eax; jne fail`.
    Allowed { cfg: u64, fail: u64 },
}

fn rip_mem(i: &Instruction, op: u32) -> Option<u64> {
    (i.op_kind(op) == OpKind::Memory
        && i.memory_base() == Register::RIP
        && i.memory_index() == Register::None)
        .then(|| i.ip_rel_memory_address())
}

fn reg(i: &Instruction, op: u32, r: Register) -> bool {
    i.op_kind(op) == OpKind::Register && i.op_register(op) == r
}

fn is_jne(i: &Instruction) -> Option<u64> {
    matches!(i.code(), Code::Jne_rel8_64 | Code::Jne_rel32_64).then(|| i.near_branch_target())
}

/// Decodes what follows the WRPKRU at `vaddr` (file bytes at `off`).
fn check_after(data: &[u8], off: usize, vaddr: u64) -> Result<Check, String> {
    let mut d = Decoder::with_ip(
        64,
        &data[off..(off + 64).min(data.len())],
        vaddr,
        DecoderOptions::NONE,
    );
    let w = d.decode();
    if w.code() != Code::Wrpkru {
        return Err(format!("{vaddr:#x} does not decode as WRPKRU"));
    }
    let i: Vec<Instruction> = (0..4).map(|_| d.decode()).collect();
    let text = format!(
        "{:?} ; {:?} ; {:?} ; {:?}",
        i[0].code(),
        i[1].code(),
        i[2].code(),
        i[3].code()
    );
    // CD_WRPKRU_ALLOWED
    if i[0].code() == Code::Test_rm32_r32 && reg(&i[0], 1, Register::EAX) {
        if let (Some(cfg), Some(fail)) = (rip_mem(&i[0], 0), is_jne(&i[1])) {
            return Ok(Check::Allowed { cfg, fail });
        }
    }
    // CD_WRPKRU_DENIED
    if i[0].code() == Code::Mov_r32_rm32
        && reg(&i[0], 0, Register::ECX)
        && matches!(i[1].code(), Code::And_rm32_r32 | Code::And_r32_rm32)
        && reg(&i[1], 0, Register::ECX)
        && reg(&i[1], 1, Register::EAX)
        && i[2].code() == Code::Cmp_r32_rm32
        && reg(&i[2], 0, Register::ECX)
    {
        if let (Some(a), Some(b), Some(fail)) =
            (rip_mem(&i[0], 1), rip_mem(&i[2], 1), is_jne(&i[3]))
        {
            if a == b {
                return Ok(Check::Denied { cfg: a, fail });
            }
        }
    }
    Err(format!(
        "WRPKRU at {vaddr:#x} is not followed by a check: {text}"
    ))
}

/// Whether the page holding runtime address `addr` is mapped without write
/// permission (from /proc/self/maps).
fn mapped_read_only(addr: u64) -> Option<bool> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (range, perms) = (f.next()?, f.next()?);
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).ok()?,
            u64::from_str_radix(hi, 16).ok()?,
        );
        if lo <= addr && addr < hi {
            return Some(perms.starts_with('r') && perms.as_bytes()[1] == b'-');
        }
    }
    None
}

#[test]
fn every_wrpkru_in_the_executable_is_checked_and_there_is_no_xrstor() {
    // The runtime is up (the configuration page written and made read-only).
    let _ = cofferdam::info();
    let exe = std::env::current_exe().expect("the test binary");
    let data = std::fs::read(&exe).expect("read the test binary");
    // Every occurrence, gates included, intended or hidden.
    let report = cofferdam_scan::scan_bytes_with(
        &exe.display().to_string(),
        &data,
        cofferdam_scan::ScanOptions { allow_gates: false },
    )
    .expect("the test binary is an ELF64 x86-64 file");
    assert!(
        report.has_symtab || report.has_dynsym,
        "no symbols: the scan could not tell instruction boundaries"
    );
    let exec = report.elf_type == "EXEC";
    let lo = link_vaddr(cofferdam_gate_call as *const (), exec);
    let hi = link_vaddr(cofferdam_gate_code_end as *const (), exec);
    assert!(
        lo < hi && hi - lo < 64 * 1024,
        "trampolines {lo:#x}..{hi:#x}"
    );
    let bias = cofferdam_gate_call as *const () as u64 - lo;

    let mut problems = Vec::new();
    let mut checks = Vec::new();
    let mut cfgs = BTreeSet::new();
    for o in &report.occurrences {
        let inside = (lo..hi).contains(&o.vaddr);
        let bench = cfg!(feature = "bench-floor")
            && o.symbol.as_deref() == Some(cofferdam_scan::BENCHMARK_ONLY_GATE);
        match o.kind {
            // XRSTORS is a supervisor instruction: at CPL 3 it raises #GP,
            // so its bytes hidden inside another instruction (the compiler
            // made them) are no gadget. Reported, not failed.
            cofferdam_scan::Kind::Xrstors if !o.intended => eprintln!(
                "note: hidden xrstors bytes at {:#x} in {:?} (faults in user mode)",
                o.vaddr, o.symbol
            ),
            // No WRFSBASE/WRGSBASE may stand in the executable either, hidden
            // or not: with one, foreign code on one Rust thread could take
            // another's FS base (the gate's thread check).
            cofferdam_scan::Kind::Wrfsbase | cofferdam_scan::Kind::Wrgsbase => {
                problems.push(format!(
                    "{} at {:#x} ({}, in {:?}): no FS/GS-base write may stand in the executable",
                    o.mnemonic,
                    o.vaddr,
                    if o.intended { "intended" } else { "hidden" },
                    o.symbol
                ))
            }
            cofferdam_scan::Kind::Xrstor | cofferdam_scan::Kind::Xrstors => problems.push(format!(
                "{} at {:#x} ({}, in {:?}): no XRSTOR may stand in the executable",
                o.mnemonic,
                o.vaddr,
                if o.intended { "intended" } else { "hidden" },
                o.symbol
            )),
            cofferdam_scan::Kind::Wrpkru if bench => {
                // The benchmark floor (feature `bench-floor`, on only when a
                // benchmark crate is built alongside): unchecked on purpose.
                eprintln!(
                    "note: bench-floor WRPKRU at {:#x} in {:?} (feature on)",
                    o.vaddr, o.symbol
                );
            }
            cofferdam_scan::Kind::Wrpkru if !inside || !o.intended => problems.push(format!(
                "WRPKRU at {:#x} ({}, in {:?}) outside Cofferdam's trampolines {lo:#x}..{hi:#x}",
                o.vaddr,
                if o.intended { "intended" } else { "hidden" },
                o.symbol
            )),
            cofferdam_scan::Kind::Wrpkru => match check_after(&data, o.offset as usize, o.vaddr) {
                Ok(c) => {
                    let (cfg, fail) = match c {
                        Check::Denied { cfg, fail } | Check::Allowed { cfg, fail } => (cfg, fail),
                    };
                    if !(lo..hi).contains(&fail) {
                        problems.push(format!(
                                "WRPKRU at {:#x}: its check fails to {fail:#x}, outside the trampolines",
                                o.vaddr
                            ));
                    }
                    cfgs.insert(cfg);
                    checks.push((o.vaddr, c));
                }
                Err(e) => problems.push(e),
            },
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Not vacuous: the gate, the signal entry, cofferdam_refuse and the
    // callback entry each have their WRPKRUs, and both checks occur.
    assert!(
        checks.len() >= 6,
        "only {} checked WRPKRUs found: {checks:?}",
        checks.len()
    );
    assert!(checks
        .iter()
        .any(|(_, c)| matches!(c, Check::Denied { .. })));
    assert!(checks
        .iter()
        .any(|(_, c)| matches!(c, Check::Allowed { .. })));
    // Every check compares against the same word, on a read-only page.
    assert_eq!(cfgs.len(), 1, "checks against different words: {cfgs:x?}");
    let cfg = *cfgs.first().unwrap() + bias;
    assert_eq!(
        mapped_read_only(cfg),
        Some(true),
        "the checks' configuration word {cfg:#x} is not on a read-only page"
    );
    eprintln!(
        "{} WRPKRUs in Cofferdam's trampolines, each checked against {cfg:#x} (read-only); no XRSTOR/XRSTORS in {}",
        checks.len(),
        exe.display()
    );
}

// ─────────────────────── the signal frame's layout ───────────────────────

/// What the raw handler below saw at its entry.
static mut SEEN: [u64; 6] = [0; 6];

extern "C" {
    fn cd_test_frame_handler();
    fn cd_test_restorer();
}

// A handler installed with a raw rt_sigaction (past Cofferdam's sigaction):
// records rsp, rsi (siginfo) and rdx (ucontext) as the kernel entered it,
// and what the frame holds at rsp + 312 (si_signo), at rsp + 312 + 120 (the
// mark word) and at rsp (the restorer's address).
core::arch::global_asm!(
    ".globl cd_test_frame_handler",
    "cd_test_frame_handler:",
    "    lea rax, [rip + {seen}]",
    "    mov qword ptr [rax], rsp",
    "    mov qword ptr [rax + 8], rsi",
    "    mov qword ptr [rax + 16], rdx",
    "    mov ecx, dword ptr [rsp + 312]",
    "    mov qword ptr [rax + 24], rcx",
    "    mov rcx, qword ptr [rsp + 432]",
    "    mov qword ptr [rax + 32], rcx",
    "    mov rcx, qword ptr [rsp]",
    "    mov qword ptr [rax + 40], rcx",
    "    ret",
    ".globl cd_test_restorer",
    "cd_test_restorer:",
    "    mov eax, 15",
    "    syscall",
    "    ud2",
    seen = sym SEEN,
);

/// The kernel's `struct sigaction` for rt_sigaction.
#[repr(C)]
struct KSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

#[test]
fn the_kernel_frame_is_laid_out_as_the_signal_entry_expects() {
    // Run in a child of its own, before any compartment (so no syscall
    // guard: this handler returns through an ordinary rt_sigreturn).
    if std::env::var_os("CD_FRAME_CHILD").is_none() {
        let out = common::rerun(
            "the_kernel_frame_is_laid_out_as_the_signal_entry_expects",
            // Statics untagged in the child: the raw handler below runs
            // without P's rights and writes a Rust static.
            &[("CD_FRAME_CHILD", "1"), ("COFFERDAM_STATICS", "off")],
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("frame layout checked"), "{text}");
        return;
    }
    let act = KSigaction {
        handler: cd_test_frame_handler as *const () as usize,
        flags: (libc::SA_SIGINFO | 0x0400_0000) as u64, // SA_RESTORER
        restorer: cd_test_restorer as *const () as usize,
        mask: 0,
    };
    // SAFETY: installs the handler above for SIGUSR2 (it only stores three
    // words), raises the signal, and puts the default action back.
    unsafe {
        assert_eq!(
            libc::syscall(
                libc::SYS_rt_sigaction,
                libc::SIGUSR2,
                &act as *const KSigaction,
                core::ptr::null_mut::<KSigaction>(),
                8
            ),
            0
        );
        libc::raise(libc::SIGUSR2);
        let dfl = KSigaction {
            handler: 0,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        libc::syscall(
            libc::SYS_rt_sigaction,
            libc::SIGUSR2,
            &dfl as *const KSigaction,
            core::ptr::null_mut::<KSigaction>(),
            8,
        );
    }
    // SAFETY: written by the handler, which has returned.
    let [rsp, info, uc, signo, mark, restorer] = unsafe { core::ptr::addr_of!(SEEN).read() };
    assert_ne!(rsp, 0, "the handler did not run");
    // gate/asm.rs: FRAME_UC = 8 (after the restorer's address), FRAME_INFO =
    // FRAME_UC + 304 (the kernel's ucontext), SIGINFO_MARK = 120 (a siginfo
    // word the kernel zeroes at every delivery).
    assert_eq!(uc - rsp, 8, "ucontext at rsp + 8");
    assert_eq!(info - rsp, 8 + 304, "siginfo at rsp + 312");
    assert_eq!(signo, libc::SIGUSR2 as u64, "si_signo at rsp + 312");
    assert_eq!(mark, 0, "the mark word at siginfo + 120");
    assert_eq!(
        restorer, cd_test_restorer as *const () as usize as u64,
        "restorer at rsp"
    );
    println!("frame layout checked: rsp {rsp:#x}, ucontext +8, siginfo +312");
}
