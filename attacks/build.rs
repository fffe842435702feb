fn main() {
    println!("cargo:rerun-if-changed=c/attacks.c");
    println!("cargo:rerun-if-changed=c/stacks.c");
    println!("cargo:rerun-if-changed=c/fatal.c");
    println!("cargo:rerun-if-changed=c/integrity.c");
    println!("cargo:rerun-if-changed=c/statics.c");
    println!("cargo:rerun-if-changed=c/syscalls.c");
    println!("cargo:rerun-if-changed=c/heap.c");
    println!("cargo:rerun-if-changed=c/lib/wrpkru_lib.c");
    cc::Build::new()
        .file("c/attacks.c")
        .file("c/stacks.c")
        .file("c/fatal.c")
        .file("c/integrity.c")
        .file("c/statics.c")
        .file("c/syscalls.c")
        .file("c/heap.c")
        // The attacks must do exactly what they say: no optimiser cleverness
        // about out-of-bounds accesses, and warnings are errors.
        .opt_level(1)
        .flag("-fno-builtin")
        .warnings_into_errors(true)
        .compile("cofferdam_attacks");

    // A separate shared library with a WRPKRU of its own, in OUT_DIR: the
    // rights-escalation attack loads it (refused by Compartment::load, and
    // by the first-call inspection when loaded behind Cofferdam's back).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let so = out.join("libcd_wrpkru.so");
    let cc = cc::Build::new().get_compiler();
    let status = std::process::Command::new(cc.path())
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&so)
        .arg("c/lib/wrpkru_lib.c")
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "building libcd_wrpkru.so failed");
    println!("cargo:rustc-env=CD_WRPKRU_SO={}", so.display());

    // A library with syscall instructions of its own, loaded after the
    // guard: the guard's policy must cover its code too.
    println!("cargo:rerun-if-changed=c/lib/syscall_lib.c");
    let so = out.join("libcd_syscall.so");
    let status = std::process::Command::new(cc.path())
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&so)
        .arg("c/lib/syscall_lib.c")
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "building libcd_syscall.so failed");
    println!("cargo:rustc-env=CD_SYSCALL_SO={}", so.display());
}
