//! Shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

/// Whether the mpk backend is in force. Where it is not, says why and returns
/// false so the caller can skip; with `COFFERDAM_REQUIRE_MPK=1` (set by CI on
/// machines whose CPU has `pku`) it fails instead, so a broken detection can
/// never pass as a skip.
pub fn mpk_or_skip(test: &str) -> bool {
    if cofferdam::backend() == cofferdam::Backend::Mpk {
        return true;
    }
    let info = cofferdam::info();
    if std::env::var("COFFERDAM_REQUIRE_MPK").as_deref() == Ok("1") {
        panic!(
            "{test}: COFFERDAM_REQUIRE_MPK=1 but the mpk backend is not in force: {}",
            info.reason
        );
    }
    eprintln!("skipping {test}: needs MPK ({})", info.reason);
    false
}

/// Runs this test binary again, only test `name`, with `env` set; returns
/// the child's output.
pub fn rerun(name: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut c = std::process::Command::new(std::env::current_exe().expect("test binary"));
    c.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("rerun the test binary")
}

/// Whether foreign code runs in this process. On the `process` backend it
/// runs in a helper process instead, where a test of in-process semantics
/// (the address of C's stack, a signal C raises reaching this program's
/// handler, C freeing memory with this process's `free`) has no meaning:
/// says why on stderr and returns false, so the caller skips. `why` says
/// what the test needs.
pub fn in_process_or_skip(test: &str, why: &str) -> bool {
    if cofferdam::backend() != cofferdam::Backend::Process {
        return true;
    }
    eprintln!("skipping {test} on the process backend: {why}");
    false
}
