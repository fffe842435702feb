//! Foreign code runs on a stack of its own; on the mpk backend the Rust
//! stacks carry key P; the gate keeps the ABI's control registers.

mod common;

use cofferdam::{CallRegs, Compartment, Error, FaultKind};
use cofferdam_attacks::ffi;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

fn comp(name: &str) -> Compartment {
    Compartment::new(name).expect("compartment")
}

fn fn_addr(f: *const ()) -> *const () {
    f
}

/// The mapping (from /proc/self/maps) that holds `addr`.
fn mapping_of(addr: usize) -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().find_map(|l| {
        let range = l.split_whitespace().next()?;
        let (a, b) = range.split_once('-')?;
        let (a, b) = (
            usize::from_str_radix(a, 16).ok()?,
            usize::from_str_radix(b, 16).ok()?,
        );
        (a <= addr && addr < b).then_some((a, b))
    })
}

/// The /proc/self/smaps header and protection key of the mapping holding
/// `addr`, for failure messages.
fn smaps_entry(addr: usize) -> String {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut out = String::new();
    let mut inside = false;
    for l in smaps.lines() {
        if let Some((range, _)) = l.split_once(' ') {
            if let Some((a, b)) = range.split_once('-') {
                if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                {
                    inside = a <= addr && addr < b;
                    if inside {
                        out.push_str(l);
                    }
                    continue;
                }
            }
        }
        if inside && l.starts_with("ProtectionKey") {
            out.push_str(" / ");
            out.push_str(l);
        }
    }
    out
}

#[test]
fn foreign_code_runs_on_a_stack_of_its_own() {
    if !common::in_process_or_skip(
        "foreign_code_runs_on_a_stack_of_its_own",
        "foreign code runs in the helper process, on the helper's stacks: there is no address of C's stack in this process to compare",
    ) {
        return;
    }
    let c = comp("frames");
    let local = 0u64;
    let here = &local as *const u64 as usize;
    // SAFETY: cd_frame_address(void) -> uintptr_t.
    let there: usize = unsafe {
        c.call(
            "cd_frame_address",
            fn_addr(ffi::cd_frame_address as *const ()),
            (),
        )
    }
    .unwrap();
    if cofferdam::backend() == cofferdam::Backend::None {
        return; // the baseline calls C on this stack, by definition
    }
    let rust = mapping_of(here).expect("the Rust stack is mapped");
    let foreign = mapping_of(there).expect("the foreign frame is mapped");
    assert_ne!(
        rust, foreign,
        "foreign code ran on the Rust stack ({there:#x} is in {rust:x?})"
    );
}

#[test]
fn a_frame_overrun_finds_no_rust_frame_and_hits_the_guard() {
    if cofferdam::backend() == cofferdam::Backend::None {
        return;
    }
    let c = comp("overrun");
    let canary: u64 = 0x0c0f_fe4d_a11c_a4a7 ^ std::process::id() as u64;
    let keep = std::hint::black_box([canary; 4]);
    // cd_smash_up scans 4 MiB upward from its own frame for the canary and
    // overwrites what it finds: above the foreign stack is a guard page.
    // SAFETY: cd_smash_up(uint64_t, size_t) -> int; the overrun is the test.
    let r: Result<i32, Error> = unsafe {
        c.call(
            "cd_smash_up",
            fn_addr(ffi::cd_smash_up as *const ()),
            (canary ^ 0xA5A5_A5A5_A5A5_A5A5u64, 4usize << 20),
        )
    };
    match r {
        // The guard page is mapped PROT_NONE: an access-rights fault.
        Err(Error::Fault(f)) => assert_eq!(f.kind, FaultKind::AccessRights, "{f}"),
        other => panic!("the overrun did not end on the guard page: {other:?}"),
    }
    assert_eq!(
        std::hint::black_box(keep),
        [canary; 4],
        "a Rust local changed"
    );
}

#[test]
fn foreign_writes_to_a_leaked_rust_stack_address_fault() {
    if !common::mpk_or_skip("foreign_writes_to_a_leaked_rust_stack_address_fault") {
        return;
    }
    // Below the thread's first page (which it shares with its TLS and which
    // stays untagged), as any frame but the outermost few is.
    deeper(16 << 10, leaked_write);
}

fn deeper(bytes: usize, f: fn()) {
    let pad = vec![0u8; 0];
    let mut room = [0u8; 4096];
    std::hint::black_box(&mut room);
    if bytes > 4096 {
        deeper(bytes - 4096, f);
    } else {
        f();
    }
    drop(pad);
}

fn leaked_write() {
    let c = comp("leak");
    let mut local: u64 = 0x1111_2222_3333_4444;
    let p = &mut local as *mut u64;
    // SAFETY: cd_write_u64(uint64_t *, uint64_t); the write is the test.
    let r: Result<(), Error> = unsafe {
        c.call(
            "cd_write_u64",
            fn_addr(ffi::cd_write_u64 as *const ()),
            (p, 0x5858_5858_5858_5858u64),
        )
    };
    match r {
        Err(Error::Fault(f)) => {
            assert_eq!(f.kind, FaultKind::ProtectionKey, "{f}");
            assert_eq!(f.address, p as usize);
            assert_eq!(f.pkey, cofferdam::info().pkey);
        }
        other => panic!(
            "the write to the Rust stack was not stopped: {other:?} (stacks: {:?}; {:#x} in {})",
            cofferdam::info().stacks_unprotected,
            p as usize,
            smaps_entry(p as usize)
        ),
    }
    assert_eq!(
        std::hint::black_box(local),
        0x1111_2222_3333_4444,
        "the Rust local changed"
    );
    assert_eq!(cofferdam::info().stacks_unprotected, None);
}

#[test]
fn threads_get_their_own_foreign_stacks_and_tagged_stacks() {
    // All six alive at once (a thread that exited gives its foreign stack
    // back, and the next may get the same addresses).
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|t| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let c = comp("threads");
                let mut sum = 0i64;
                for i in 0..500 {
                    // SAFETY: cd_noop(int) -> int.
                    let r: i32 = unsafe {
                        c.call(
                            "cd_noop",
                            fn_addr(ffi::cd_noop as *const ()),
                            (t * 1000 + i,),
                        )
                    }
                    .unwrap();
                    assert_eq!(r, t * 1000 + i + 1);
                    sum += r as i64;
                }
                // SAFETY: cd_frame_address(void) -> uintptr_t.
                let frame: usize = unsafe {
                    c.call(
                        "cd_frame_address",
                        fn_addr(ffi::cd_frame_address as *const ()),
                        (),
                    )
                }
                .unwrap();
                barrier.wait();
                (sum, frame)
            })
        })
        .collect();
    let results: Vec<(i64, usize)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut frames: Vec<usize> = results.iter().map(|r| r.1).collect();
    frames.sort();
    frames.dedup();
    if cofferdam::backend() != cofferdam::Backend::None {
        assert_eq!(frames.len(), 6, "two threads shared a foreign stack");
    }
}

#[test]
fn a_foreign_thread_can_reuse_the_stack_of_an_exited_rust_thread() {
    // glibc caches the stacks of exited threads and hands them to new ones.
    // A Rust thread's stack is tagged at its first gate call; if it were not
    // untagged at exit, a thread that foreign code starts (without P's
    // rights) on that cached stack would fault at its first push.
    let c = comp("reuse");
    for _ in 0..4 {
        std::thread::spawn(|| {
            let c = comp("short-lived");
            // SAFETY: cd_noop(int) -> int.
            let _: i32 =
                unsafe { c.call("cd_noop", fn_addr(ffi::cd_noop as *const ()), (1,)) }.unwrap();
        })
        .join()
        .unwrap();
        // SAFETY: cd_run_thread(void) -> int: starts and joins a pthread.
        let r: i32 = unsafe {
            c.call(
                "cd_run_thread",
                fn_addr(ffi::cd_run_thread as *const ()),
                (),
            )
        }
        .unwrap();
        assert_eq!(r, 0, "the foreign thread could not use its stack");
    }
}

fn mxcsr() -> u32 {
    let mut v: u32 = 0;
    // SAFETY: stores MXCSR into a local.
    unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack)) };
    v
}

#[test]
fn mxcsr_changed_by_foreign_code_is_restored() {
    if cofferdam::backend() == cofferdam::Backend::None {
        return;
    }
    let c = comp("mxcsr");
    let before = mxcsr();
    // SAFETY: cd_clobber_mxcsr(void) -> unsigned.
    let theirs: u32 = unsafe {
        c.call(
            "cd_clobber_mxcsr",
            fn_addr(ffi::cd_clobber_mxcsr as *const ()),
            (),
        )
    }
    .unwrap();
    assert_eq!(theirs, before, "C saw Rust's MXCSR");
    assert_eq!(
        mxcsr(),
        before,
        "foreign code's rounding mode leaked into Rust"
    );
}

fn fpucw() -> u16 {
    let mut v: u16 = 0;
    // SAFETY: stores the x87 control word into a local.
    unsafe { core::arch::asm!("fnstcw [{}]", in(reg) &mut v, options(nostack)) };
    v
}

/// MXCSR and the x87 control word, changed by foreign code, come back to
/// Rust as they were, after a call and inside a callback; and a callback
/// gives C back its own words. Run on the path the CPU vendor chose, and by
/// `control_words_are_restored_on_both_paths` on each path forced.
#[test]
fn control_words_changed_by_foreign_code_are_restored() {
    if cofferdam::backend() == cofferdam::Backend::None {
        return;
    }
    if let Ok(forced) = std::env::var("COFFERDAM_CONTROL_WORDS") {
        assert_eq!(
            cofferdam::info().control_words,
            forced,
            "the forced path is not in force"
        );
    }
    let c = comp("control-words");
    let (m0, w0) = (mxcsr(), fpucw());
    // SAFETY: cd_clobber_mxcsr(void) -> unsigned.
    let theirs: u32 = unsafe {
        c.call(
            "cd_clobber_mxcsr",
            fn_addr(ffi::cd_clobber_mxcsr as *const ()),
            (),
        )
    }
    .unwrap();
    assert_eq!(theirs, m0, "C saw Rust's MXCSR");
    assert_eq!(mxcsr(), m0, "foreign code's MXCSR leaked into Rust");
    assert_eq!(fpucw(), w0);
    // SAFETY: cd_clobber_fpucw(void) -> unsigned.
    let theirs: u32 = unsafe {
        c.call(
            "cd_clobber_fpucw",
            fn_addr(ffi::cd_clobber_fpucw as *const ()),
            (),
        )
    }
    .unwrap();
    assert_eq!(theirs as u16, w0, "C saw Rust's x87 control word");
    assert_eq!(
        fpucw(),
        w0,
        "foreign code's x87 control word leaked into Rust"
    );
    assert_eq!(mxcsr(), m0);

    // C changes both, then calls a Rust callback.
    let buf = cofferdam::ForeignVec::<u8>::zeroed(16).unwrap();
    let seen = std::cell::Cell::new((0u32, 0u16));
    let cb = cofferdam::Callback::<fn(cofferdam::ForeignPtr<u8>, cofferdam::ForeignPtr<u8>) -> i32>::new(
        |_, _| {
            seen.set((mxcsr(), fpucw()));
            0
        },
    )
    .unwrap();
    // SAFETY: cd_clobber_then_cb(cb, void *a, void *b) -> unsigned long long.
    let after: u64 = unsafe {
        c.call_with_callbacks(
            "cd_clobber_then_cb",
            fn_addr(ffi::cd_clobber_then_cb as *const ()),
            (cb.stub(), buf.as_foreign_ptr(), buf.as_foreign_ptr()),
            &[&cb],
        )
    }
    .unwrap();
    assert_eq!(
        seen.get(),
        (m0, w0),
        "C's control words leaked into the callback"
    );
    assert_eq!(
        after as u32,
        m0 | (3 << 13),
        "the callback took C's MXCSR away"
    );
    assert_eq!(
        (after >> 32) as u16,
        (w0 & !0x0300) | 0x0c00,
        "the callback took C's x87 control word away"
    );
    assert_eq!(
        (mxcsr(), fpucw()),
        (m0, w0),
        "C's control words leaked into Rust"
    );
}

/// Whether the direction flag is set.
fn df_set() -> bool {
    let flags: u64;
    // SAFETY: pushes rflags and pops it into a register.
    unsafe { core::arch::asm!("pushfq", "pop {}", out(reg) flags) };
    flags & 0x400 != 0
}

#[test]
fn direction_flag_set_by_foreign_code_is_cleared() {
    if cofferdam::backend() == cofferdam::Backend::None {
        return;
    }
    let c = comp("direction-flag");
    assert!(!df_set());
    // SAFETY: cd_set_df(void) -> void.
    let () = unsafe { c.call("cd_set_df", fn_addr(ffi::cd_set_df as *const ()), ()) }.unwrap();
    assert!(!df_set(), "foreign code's direction flag leaked into Rust");
}

#[test]
fn control_words_are_restored_on_both_paths() {
    if cofferdam::backend() == cofferdam::Backend::None {
        return;
    }
    // The gate's two ways of restoring (chosen per CPU vendor at start-up),
    // each forced in a child process, so both run on every machine.
    for path in ["reload", "compare"] {
        let out = common::rerun(
            "control_words_changed_by_foreign_code_are_restored",
            &[("COFFERDAM_CONTROL_WORDS", path)],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "COFFERDAM_CONTROL_WORDS={path}:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn floating_point_arguments_and_returns() {
    let c = comp("float");
    let regs = CallRegs {
        ints: [3, 4, 0, 0, 0, 0],
        sse: [
            1.5f64.to_bits(),
            0.5f32.to_bits() as u64,
            2.0f64.to_bits(),
            0,
            0,
            0,
            0,
            0,
        ],
        nsse: 3,
        ..CallRegs::default()
    };
    // SAFETY: double cd_mix(int a, double x, long b, float y, double z):
    // a, b in rdi, rsi; x, y, z in xmm0..2.
    let r = unsafe { c.call_regs("cd_mix", fn_addr(ffi::cd_mix as *const ()), &regs) }.unwrap();
    assert_eq!(f64::from_bits(r.xmm0), 3.0 * 1.5 + 4.0 * 0.5 - 2.0);
    let regs = CallRegs {
        sse: [3.0f32.to_bits() as u64, 0, 0, 0, 0, 0, 0, 0],
        nsse: 1,
        ..CallRegs::default()
    };
    // SAFETY: float cd_halve(float).
    let r = unsafe { c.call_regs("cd_halve", fn_addr(ffi::cd_halve as *const ()), &regs) }.unwrap();
    assert_eq!(f32::from_bits(r.xmm0 as u32), 1.5);
}
