fn main() {
    // The crate's own tests and examples get Rust's statics and
    // thread-locals on pages of their own (tagged with P at start-up).
    cofferdam_build::protect_statics();
}
