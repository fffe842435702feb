//! Compile-fail tests of `#[cofferdam::sandbox]`, `#[derive(ForeignEnum)]` and
//! `#[derive(Pod)]`:
//! what must not compile, and the messages that say why.
//! Regenerate the expected output with `TRYBUILD=overwrite` and review it.

#[test]
fn ui() {
    // What compiles does not depend on the CPU: the MPK VM pass
    // (scripts/test-in-mpk-vm), which has no writable cargo, skips this.
    if std::env::var_os("COFFERDAM_MPK_VM").is_some() {
        eprintln!("skipping ui: compile-fail tests run on the host only");
        return;
    }
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
