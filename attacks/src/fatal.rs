//! Class `fatal-signal` (issue 11): a fault in C that ends an ordinary
//! program (a division by zero, `ud2`, `int3`, `abort`, a failed `assert`,
//! a raised SIGSEGV, `exit`, `_exit`, a return with its stack pointer off
//! by 8). Contained means: the call returns `Err(Fault)` of the right kind,
//! the compartment is poisoned, and the program carries on: another
//! compartment answers, the heap works, the faulting compartment is renewed
//! and answers again, and the program ends when it decides to.

use cofferdam::{Compartment, Error, FaultKind};

use super::{compartment_named, ffi, observation, Mode, Observation};

/// One fault: the C function that raises it, and the kind it must become.
pub(crate) struct Fatal {
    pub call: fn(&Compartment) -> Result<(), Error>,
    pub kind_ok: fn(FaultKind) -> bool,
    pub what: &'static str,
}

/// The fault named by `attack` (its name without the `fatal-` prefix).
fn case(name: &str) -> Fatal {
    match name {
        "div-zero" => Fatal {
            // SAFETY: cd_div_zero(int) -> int.
            call: |c| {
                unsafe { c.call::<_, i32>("cd_div_zero", ffi::cd_div_zero as *const (), (1,)) }
                    .map(drop)
            },
            kind_ok: |k| matches!(k, FaultKind::Arithmetic { .. }),
            what: "an integer division by zero (SIGFPE)",
        },
        "ud2" => Fatal {
            // SAFETY: cd_ud2(void).
            call: |c| unsafe { c.call::<_, ()>("cd_ud2", ffi::cd_ud2 as *const (), ()) },
            kind_ok: |k| matches!(k, FaultKind::IllegalInstruction { .. }),
            what: "an illegal instruction, ud2 (SIGILL)",
        },
        "int3" => Fatal {
            // SAFETY: cd_int3(void).
            call: |c| unsafe { c.call::<_, ()>("cd_int3", ffi::cd_int3 as *const (), ()) },
            kind_ok: |k| k == FaultKind::Breakpoint,
            what: "a breakpoint, int3 (SIGTRAP)",
        },
        "abort" => Fatal {
            // SAFETY: cd_abort(void).
            call: |c| unsafe { c.call::<_, ()>("cd_abort", ffi::cd_abort as *const (), ()) },
            kind_ok: |k| k == FaultKind::Abort,
            what: "abort() (SIGABRT)",
        },
        "assert" => Fatal {
            // SAFETY: cd_assert_positive(int) -> int.
            call: |c| {
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
            what: "a failed assert() (SIGABRT)",
        },
        "raise-segv" => Fatal {
            // Twice: in an ordinary Rust program the standard library's
            // SIGSEGV handler (stack-overflow detection) lets the first
            // raise through and restores the default action; the second
            // ends the program. Protected, the first already faults and
            // the second is refused on the poisoned compartment.
            // SAFETY: cd_raise_segv(void).
            call: |c| unsafe {
                c.call::<_, ()>("cd_raise_segv", ffi::cd_raise_segv as *const (), ())?;
                c.call::<_, ()>("cd_raise_segv", ffi::cd_raise_segv as *const (), ())
            },
            kind_ok: |k| {
                k == FaultKind::Signal {
                    signal: libc::SIGSEGV,
                }
            },
            what: "raise(SIGSEGV), twice",
        },
        "exit" => Fatal {
            // SAFETY: cd_exit(int).
            call: |c| unsafe { c.call::<_, ()>("cd_exit", ffi::cd_exit as *const (), (3,)) },
            kind_ok: |k| k == FaultKind::Exit,
            what: "exit(3)",
        },
        "_exit" => Fatal {
            // SAFETY: cd__exit(int).
            call: |c| unsafe { c.call::<_, ()>("cd__exit", ffi::cd__exit as *const (), (3,)) },
            kind_ok: |k| k == FaultKind::Exit,
            what: "_exit(3)",
        },
        "bad-sp" => Fatal {
            // SAFETY: cd_bad_sp(void); the wrong stack pointer is the attack.
            call: |c| unsafe { c.call::<_, ()>("cd_bad_sp", ffi::cd_bad_sp as *const (), ()) },
            kind_ok: |k| k == FaultKind::Integrity,
            what: "a return with the stack pointer off by 8",
        },
        other => panic!("no fatal case {other}"),
    }
}

/// Runs fault `name`. Unprotected (backend `none`, a direct call) the
/// program ends here: the child's death is the attack's effect.
pub(crate) fn run(name: &str, mode: Mode) -> Observation {
    let f = case(name);
    let bad = match compartment_named("fatal") {
        Ok(c) => c,
        Err(o) => return o,
    };
    let good = match compartment_named("fatal-other") {
        Ok(c) => c,
        Err(o) => return o,
    };
    let r = (f.call)(&bad);
    let mut steps = Vec::new();
    // On the process backend a return with a wrong stack pointer happens
    // in the helper, which returns onto a wrong address and faults there:
    // the parent sees that fault, not the stack pointer.
    let process = cofferdam::backend() == cofferdam::Backend::Process;
    let kind_right = matches!(&r, Err(Error::Fault(x))
        if (f.kind_ok)(x.kind) || (process && name == "bad-sp"));
    steps.push(format!(
        "{}: {}",
        f.what,
        match &r {
            Ok(()) => "the call returned normally".to_string(),
            Err(e) => format!("Err: {e}"),
        }
    ));
    let poisoned = bad.is_poisoned();
    // The program carries on: another compartment, the heap, renewal.
    // SAFETY: cd_noop(int) -> int.
    let other: Result<i32, Error> =
        unsafe { good.call("cd_noop", ffi::cd_noop as *const (), (41,)) };
    let heap = Box::new([7u8; 100]);
    let heap_ok = heap.iter().all(|&b| b == 7);
    let renewed = bad.renew().map_err(|e| e.to_string());
    // SAFETY: cd_noop(int) -> int.
    let again: Result<i32, Error> = unsafe { bad.call("cd_noop", ffi::cd_noop as *const (), (1,)) };
    let carried_on =
        matches!(other, Ok(42)) && heap_ok && renewed.is_ok() && matches!(again, Ok(2));
    steps.push(format!(
        "compartment poisoned: {poisoned}; another compartment answered {other:?}; the heap {}; renewed: {renewed:?}, then answered {again:?}; the program carries on",
        if heap_ok { "works" } else { "is broken" },
    ));
    let contained = kind_right && poisoned && carried_on;
    let evidence = steps.join("; ");
    // Unprotected, the program is still alive here only if the fault did
    // not end it: the attack did not work. (Where it works, the child dies
    // before this line, and that death is the evidence.)
    let effect = match mode {
        Mode::Unprotected => false,
        Mode::Protected => !contained,
    };
    observation(effect, heap_ok, r.as_ref().err(), evidence)
}

macro_rules! fatal_attacks {
    ($($f:ident => $name:literal),* $(,)?) => {
        $(pub(crate) fn $f(mode: Mode) -> Observation { run($name, mode) })*
    };
}

fatal_attacks! {
    div_zero => "div-zero",
    ud2 => "ud2",
    int3 => "int3",
    abort => "abort",
    assert => "assert",
    raise_segv => "raise-segv",
    exit => "exit",
    exit_now => "_exit",
    bad_sp => "bad-sp",
}
