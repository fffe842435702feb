fn main() {
    // Rust's statics and thread-locals on pages of their own, tagged with
    // the protection key at start-up (see the cofferdam-build crate).
    cofferdam_build::protect_statics();
}
