//! Every synchronous fault in foreign code becomes `Err(Fault)` of its own
//! kind and poisons the compartment, and the program carries on: SIGFPE,
//! SIGILL, SIGTRAP, SIGABRT (`abort`, a failed `assert`), a fault signal the
//! library sends itself, a return with a wrong stack pointer, and (where the
//! syscall guard is on: mpk) `exit` and `_exit`. Each case
//! first shows, in a child process that calls the function bare, that it
//! ends an ordinary program; then that it is contained, on the backend in
//! force (mpk where the CPU has keys) and on `split`.

mod common;

use cofferdam::{Compartment, Error, FaultKind};
use cofferdam_attacks::ffi;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

/// One case: its name, how to call it bare, how to call it through a
/// compartment, and whether a fault kind is the right one.
struct Case {
    name: &'static str,
    bare: fn(),
    gated: fn(&Compartment) -> Result<(), Error>,
    kind_ok: fn(FaultKind) -> bool,
    /// Contained only where the syscall guard is on (mpk): `exit` ends in
    /// the `exit_group` system call, which only the guard sees.
    mpk_only: bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "div_zero",
            // SAFETY: the division by zero is the test.
            bare: || {
                unsafe { ffi::cd_div_zero(1) };
            },
            // SAFETY: cd_div_zero(int) -> int.
            gated: |c| {
                unsafe { c.call::<_, i32>("cd_div_zero", ffi::cd_div_zero as *const (), (1,)) }
                    .map(drop)
            },
            kind_ok: |k| matches!(k, FaultKind::Arithmetic { .. }),
            mpk_only: false,
        },
        Case {
            name: "ud2",
            // SAFETY: the illegal instruction is the test.
            bare: || unsafe { ffi::cd_ud2() },
            // SAFETY: cd_ud2(void).
            gated: |c| unsafe { c.call::<_, ()>("cd_ud2", ffi::cd_ud2 as *const (), ()) },
            kind_ok: |k| matches!(k, FaultKind::IllegalInstruction { .. }),
            mpk_only: false,
        },
        Case {
            name: "int3",
            // SAFETY: the trap is the test.
            bare: || unsafe { ffi::cd_int3() },
            // SAFETY: cd_int3(void).
            gated: |c| unsafe { c.call::<_, ()>("cd_int3", ffi::cd_int3 as *const (), ()) },
            kind_ok: |k| k == FaultKind::Breakpoint,
            mpk_only: false,
        },
        Case {
            name: "abort",
            // SAFETY: the abort is the test.
            bare: || unsafe { ffi::cd_abort() },
            // SAFETY: cd_abort(void).
            gated: |c| unsafe { c.call::<_, ()>("cd_abort", ffi::cd_abort as *const (), ()) },
            kind_ok: |k| k == FaultKind::Abort,
            mpk_only: false,
        },
        Case {
            name: "assert",
            // SAFETY: the failed assert is the test.
            bare: || {
                unsafe { ffi::cd_assert_positive(-1) };
            },
            // SAFETY: cd_assert_positive(int) -> int.
            gated: |c| {
                unsafe {
                    c.call::<_, i32>(
                        "cd_assert_positive",
                        ffi::cd_assert_positive as *const (),
                        (-1,),
                    )
                }
                .map(drop)
            },
            kind_ok: |k| k == FaultKind::Abort,
            mpk_only: false,
        },
        Case {
            name: "raise_segv",
            // SAFETY: the signal is the test. Twice: in an ordinary Rust
            // program the standard library's handler takes the first (not
            // a stack overflow), puts the default back and returns; the
            // second kills.
            bare: || unsafe {
                ffi::cd_raise_segv();
                ffi::cd_raise_segv();
            },
            // SAFETY: cd_raise_segv(void).
            gated: |c| unsafe {
                c.call::<_, ()>("cd_raise_segv", ffi::cd_raise_segv as *const (), ())
            },
            kind_ok: |k| {
                k == FaultKind::Signal {
                    signal: libc::SIGSEGV,
                }
            },
            mpk_only: false,
        },
        Case {
            name: "bad_sp",
            // SAFETY: the wrong stack pointer is the test (bare, the caller's
            // frame is then off by 8 and the program crashes or misbehaves).
            bare: || unsafe { ffi::cd_bad_sp() },
            // SAFETY: cd_bad_sp(void).
            gated: |c| unsafe { c.call::<_, ()>("cd_bad_sp", ffi::cd_bad_sp as *const (), ()) },
            kind_ok: |k| k == FaultKind::Integrity,
            mpk_only: false,
        },
        Case {
            name: "exit",
            // SAFETY: the exit is the test.
            bare: || unsafe { ffi::cd_exit(3) },
            // SAFETY: cd_exit(int).
            gated: |c| unsafe { c.call::<_, ()>("cd_exit", ffi::cd_exit as *const (), (3,)) },
            kind_ok: |k| k == FaultKind::Exit,
            mpk_only: true,
        },
        Case {
            name: "_exit",
            // SAFETY: the exit is the test.
            bare: || unsafe { ffi::cd__exit(3) },
            // SAFETY: cd__exit(int).
            gated: |c| unsafe { c.call::<_, ()>("cd__exit", ffi::cd__exit as *const (), (3,)) },
            kind_ok: |k| k == FaultKind::Exit,
            mpk_only: true,
        },
    ]
}

/// In a child: run case `FATAL_CASE` bare or gated, print what happened.
#[test]
fn child() {
    let Ok(name) = std::env::var("FATAL_CASE") else {
        return;
    };
    let case = cases().into_iter().find(|c| c.name == name).expect("case");
    if std::env::var("FATAL_BARE").is_ok() {
        (case.bare)();
        println!("FATAL-SURVIVED");
        return;
    }
    let bad = Compartment::new("fatal").unwrap();
    let good = Compartment::new("other").unwrap();
    let r = (case.gated)(&bad);
    match &r {
        Err(Error::Fault(f)) if (case.kind_ok)(f.kind) => {}
        other => panic!("{name}: expected a contained fault of the right kind, got {other:?}"),
    }
    assert!(bad.is_poisoned(), "{name}: the compartment is poisoned");
    assert!(matches!((case.gated)(&bad), Err(Error::Poisoned { .. })));
    // The rest of the program carries on: another compartment, the heap.
    // SAFETY: cd_noop(int) -> int.
    let v: i32 = unsafe { good.call("cd_noop", ffi::cd_noop as *const (), (41,)) }.unwrap();
    assert_eq!(v, 42);
    let boxed = Box::new([7u8; 100]);
    assert!(boxed.iter().all(|&b| b == 7));
    // And after renewal the compartment works again.
    bad.renew().expect("renewal works after a contained fault");
    // SAFETY: cd_noop(int) -> int.
    let v: i32 = unsafe { bad.call("cd_noop", ffi::cd_noop as *const (), (1,)) }.unwrap();
    assert_eq!(v, 2);
    println!("FATAL-CONTAINED {}", r.unwrap_err());
}

fn run(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut all = vec![("FATAL_CASE", name)];
    all.extend_from_slice(env);
    common::rerun("child", &all)
}

#[test]
fn each_fatal_signal_kills_an_ordinary_program() {
    for case in cases() {
        let out = run(
            case.name,
            &[("FATAL_BARE", "1"), ("COFFERDAM_BACKEND", "none")],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success() && !stdout.contains("FATAL-SURVIVED"),
            "{}: the bare call should end the program, but: {:?} {stdout}",
            case.name,
            out.status
        );
    }
}

fn contained_on(backend: Option<&str>) {
    for case in cases() {
        if case.mpk_only && backend.is_some() {
            continue;
        }
        let env: Vec<(&str, &str)> = backend
            .map(|b| ("COFFERDAM_BACKEND", b))
            .into_iter()
            .collect();
        let out = run(case.name, &env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("FATAL-CONTAINED"),
            "{} on {:?}: {:?}\n{stdout}\n{stderr}",
            case.name,
            backend,
            out.status
        );
    }
}

#[test]
fn each_fatal_signal_is_contained_on_mpk() {
    if !common::mpk_or_skip("each_fatal_signal_is_contained_on_mpk") {
        return;
    }
    contained_on(None);
}

#[test]
fn each_fatal_signal_is_contained_on_split() {
    contained_on(Some("split"));
}
