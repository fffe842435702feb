fn main() {
    // The crate's own tests and examples get Rust's statics and
    // thread-locals on pages of their own (tagged with P at start-up).
    cofferdam_build::protect_statics();

    // The state foreign-side `malloc` reads (crate::heap): C globals and a C
    // thread-local, outside the pages that carry P.
    println!("cargo:rerun-if-changed=c/heapword.c");
    cc::Build::new()
        .file("c/heapword.c")
        .opt_level(2)
        .warnings_into_errors(true)
        .compile("cofferdam_heapword");
}
