//! A program linked WITHOUT Cofferdam's statics layout: this package's build
//! script does not call `cofferdam_build::protect_statics()` (on purpose:
//! the attack children run inside the `cofferdam` CLI, which does). It
//! builds and runs; Cofferdam says plainly that statics are not protected,
//! and `COFFERDAM_REQUIRE_STATICS=1` makes that an error.

use cofferdam::{Compartment, Error};

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

fn rerun(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = std::process::Command::new(std::env::current_exe().expect("test binary"));
    c.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    c.env_remove("COFFERDAM_REQUIRE_STATICS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("rerun the test binary")
}

/// Child: makes a compartment and a call, reports the outcome on stdout.
#[test]
fn child_makes_a_compartment() {
    if std::env::var("CD_LAYOUT_CHILD").is_err() {
        return;
    }
    println!("CHILD init {:?}", cofferdam::init().map(|_| ()));
    match Compartment::new("no-layout") {
        Ok(c) => {
            // SAFETY: cd_noop(int) -> int.
            let r: Result<i32, Error> = unsafe {
                c.call(
                    "cd_noop",
                    cofferdam_attacks::ffi::cd_noop as *const (),
                    (1i32,),
                )
            };
            println!("CHILD compartment ok, call {r:?}");
        }
        Err(e) => println!("CHILD compartment refused: {e}"),
    }
}

#[test]
fn without_the_layout_statics_are_reported_unprotected() {
    if !cofferdam_attacks::mpk_or_skip("without_the_layout_statics_are_reported_unprotected") {
        return;
    }
    let i = cofferdam::info();
    let why = i
        .statics_unprotected
        .clone()
        .expect("statics must be reported unprotected");
    assert!(why.contains("linked without Cofferdam's layout"), "{why}");
    assert!(why.contains("cofferdam_build::protect_statics()"), "{why}");
    assert!(i.thread_locals_unprotected.is_some());
    let shown = i.to_string();
    assert!(
        shown.contains("statics:          NOT protected:"),
        "{shown}"
    );
    // The program runs, and its first compartment warns on stderr.
    let out = rerun("child_makes_a_compartment", &[("CD_LAYOUT_CHILD", "1")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("CHILD init Ok(())") && stdout.contains("CHILD compartment ok, call Ok(2)"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("cofferdam: warning: Rust statics and thread-locals are NOT protected"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("cofferdam: warning: Rust statics").count(),
        1,
        "warned once: {stderr}"
    );
}

#[test]
fn require_statics_refuses_a_program_without_the_layout() {
    if !cofferdam_attacks::mpk_or_skip("require_statics_refuses_a_program_without_the_layout") {
        return;
    }
    let out = rerun(
        "child_makes_a_compartment",
        &[("CD_LAYOUT_CHILD", "1"), ("COFFERDAM_REQUIRE_STATICS", "1")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CHILD init Err(Unavailable")
            && stdout.contains("CHILD compartment refused:")
            && stdout.contains("COFFERDAM_REQUIRE_STATICS=1"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
