fn main() {
    println!("cargo:rerun-if-changed=c/attacks.c");
    println!("cargo:rerun-if-changed=c/stacks.c");
    cc::Build::new()
        .file("c/attacks.c")
        .file("c/stacks.c")
        // The attacks must do exactly what they say: no optimiser cleverness
        // about out-of-bounds accesses, and warnings are errors.
        .opt_level(1)
        .flag("-fno-builtin")
        .warnings_into_errors(true)
        .compile("cofferdam_attacks");
}
