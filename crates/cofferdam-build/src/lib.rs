//! Build-script helper for Cofferdam: puts Rust's writable statics and
//! thread-locals on pages of their own, so that the runtime can tag them with
//! the protection key P (the `mpk` backend).
//!
//! One line in the build script of each **binary** package:
//!
//! ```text
//! // build.rs
//! fn main() {
//!     cofferdam_build::protect_statics();
//! }
//! ```
//!
//! with `cofferdam-build` under `[build-dependencies]`. It hands the final
//! link of the package's binaries, tests, examples and benchmarks (and a
//! cdylib, if it has one) a linker
//! script (`-T`, with `INSERT`, so the linker's default layout stays in
//! force) that gathers every Rust object's `.data`, `.bss`, `.tdata` and
//! `.tbss` onto page-aligned ranges apart from the C objects' globals.
//!
//! Why it cannot be automatic: a link argument from a *dependency's* build
//! script does not reach the final link (Cargo passes `rustc-link-arg` only
//! to the package's own targets), so the cofferdam library cannot add it.
//!
//! Without the line the program builds and runs; `cofferdam info` and the
//! first `Compartment::new` then say that statics are not protected, and
//! `COFFERDAM_REQUIRE_STATICS=1` makes that an error.
//!
//! Linkers: rust-lld (the default since Rust 1.90) and GNU ld take the
//! script. gold (no `INSERT`) and mold (no `SECTIONS`) cannot: when the
//! flags ask for one of them, this function leaves the layout out and says
//! so in a cargo warning, rather than break the build.

use std::path::PathBuf;

/// The linker script (also in the crate as `src/layout.ld`).
pub const LAYOUT: &str = include_str!("layout.ld");

/// One initialised thread-local in a retained section of its own (see
/// `protect_statics`).
const ANCHOR_ASM: &str = "\
\t.section .tdata.cofferdam_build_anchor,\"awTR\",@progbits
\t.p2align 3
\t.globl cofferdam_build_tls_anchor
\t.hidden cofferdam_build_tls_anchor
\t.type cofferdam_build_tls_anchor,@object
\t.size cofferdam_build_tls_anchor, 8
cofferdam_build_tls_anchor:
\t.quad 1
\t.section .note.GNU-stack,\"\",@progbits
";

/// Why the layout cannot be used with these flags, if it cannot.
fn unsupported(flags: &str) -> Option<&'static str> {
    if flags.contains("mold") {
        Some("mold has no SECTIONS/INSERT linker scripts")
    } else if flags.contains("gold") {
        Some("gold does not support INSERT in linker scripts")
    } else {
        None
    }
}

/// Writes the layout to `OUT_DIR` and passes it to the link of this
/// package's binaries, tests, examples and benchmarks. Call from `build.rs`.
pub fn protect_statics() {
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os != "linux" || arch != "x86_64" {
        return; // Cofferdam's mpk backend exists only there
    }
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_default();
    if let Some(why) = unsupported(&flags).or_else(|| unsupported(&linker)) {
        println!(
            "cargo:warning=cofferdam-build: Rust statics will NOT be protected: {why} \
             (use rust-lld, the default, or GNU ld)"
        );
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set for build scripts"));
    let path = out.join("cofferdam-statics.ld");
    std::fs::write(&path, LAYOUT).expect("write the cofferdam linker script to OUT_DIR");
    // rust-lld refuses to insert after a `.tdata` that does not exist, and a
    // Rust binary often has none once the script has taken Rust's own: one
    // retained 8-byte thread-local (not a Rust object's) keeps it there.
    let anchor = out.join("cofferdam-tls-anchor.o");
    let src = out.join("cofferdam-tls-anchor.s");
    std::fs::write(&src, ANCHOR_ASM).expect("write the TLS anchor to OUT_DIR");
    let cc = std::env::var("TARGET_CC")
        .or_else(|_| std::env::var("CC"))
        .unwrap_or_else(|_| "cc".to_string());
    let status = std::process::Command::new(&cc)
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&anchor)
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "cofferdam-build: assembling the TLS anchor with `{cc}` failed ({other:?}); \
             set CC to a working C compiler"
        ),
    }
    println!("cargo:rustc-link-arg={}", anchor.display());
    // All of the package's linked targets (Cargo refuses `-bins` in a
    // package without binaries, so not per kind).
    println!("cargo:rustc-link-arg=-T{}", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_the_symbols_the_runtime_reads() {
        for sym in [
            "__cofferdam_rust_data_start",
            "__cofferdam_rust_data_end",
            "__cofferdam_rust_tls_bounds",
            "__cofferdam_layout_version",
        ] {
            assert!(LAYOUT.contains(&format!("{sym} = .")), "{sym}");
        }
        let inserts = LAYOUT
            .lines()
            .filter(|l| l.starts_with("INSERT "))
            .collect::<Vec<_>>();
        assert_eq!(
            inserts,
            [
                "INSERT AFTER .data;",
                "INSERT BEFORE .bss;",
                "INSERT AFTER .tdata;"
            ]
        );
    }

    #[test]
    fn refuses_linkers_without_insert() {
        assert!(unsupported("-Clink-arg=-fuse-ld=mold").is_some());
        assert!(unsupported("-Clink-arg=-fuse-ld=gold").is_some());
        assert!(unsupported("-Copt-level=3").is_none());
    }
}
