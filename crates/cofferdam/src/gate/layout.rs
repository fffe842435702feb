//! The linker-defined symbols of Cofferdam's static layout
//! (`cofferdam-build`'s linker script), looked up weakly, and the TLS
//! offsets the runtime checks that layout against.
//!
//! A binary linked without the layout still links: the symbols are weak and
//! read through the GOT, where an undefined weak symbol is 0.

core::arch::global_asm!(
    ".weak __cofferdam_rust_data_start",
    ".weak __cofferdam_rust_data_end",
    ".weak __cofferdam_rust_tls_bounds",
    ".weak __cofferdam_layout_version",
    // An initialised thread-local outside the patterns the layout gathers
    // (`.tdata._*`, Rust's mangled names): the start-up check
    // (`statics::tls_offsets`) wants one thread-local that must fall
    // outside the Rust TLS range, next to Cofferdam's own slot that must
    // fall inside. (`cofferdam-build` links a retained one of its own too,
    // so that `INSERT AFTER .tdata` always finds a `.tdata`.)
    ".pushsection .tdata.cofferdam_anchor,\"awT\",@progbits",
    ".p2align 3",
    ".globl cofferdam_tls_anchor",
    ".hidden cofferdam_tls_anchor",
    ".type cofferdam_tls_anchor,@object",
    ".size cofferdam_tls_anchor, 8",
    "cofferdam_tls_anchor:",
    "    .quad 1",
    ".popsection",
);

macro_rules! weak_addr {
    ($name:literal) => {{
        let v: usize;
        // SAFETY: loads the GOT entry of a weak symbol: its address, or 0
        // when the binary does not define it. Reads only the GOT.
        unsafe {
            core::arch::asm!(
                concat!("mov {v}, qword ptr [rip + ", $name, "@GOTPCREL]"),
                v = out(reg) v,
                options(nostack, readonly, preserves_flags),
            );
        }
        v
    }};
}

/// What the layout's symbols say, as run-time addresses (0 where absent).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Symbols {
    /// `[data_start, data_end)`: Rust's `.data` and `.bss`, page-aligned.
    pub data_start: usize,
    pub data_end: usize,
    /// Two words: the link-time start and end of Rust's TLS section.
    pub tls_bounds: usize,
    /// One word: the layout's version.
    pub version: usize,
}

/// The layout's symbols in this binary.
pub(crate) fn symbols() -> Symbols {
    Symbols {
        data_start: weak_addr!("__cofferdam_rust_data_start"),
        data_end: weak_addr!("__cofferdam_rust_data_end"),
        tls_bounds: weak_addr!("__cofferdam_rust_tls_bounds"),
        version: weak_addr!("__cofferdam_layout_version"),
    }
}

/// The offset from the thread pointer of the anchor thread-local (also
/// keeps it from being garbage-collected).
pub(crate) fn anchor_tpoff() -> isize {
    let v: isize;
    // SAFETY: reads the GOT entry holding the anchor's TP offset
    // (initial-exec TLS); no memory is written.
    unsafe {
        core::arch::asm!(
            "mov {v}, qword ptr [rip + cofferdam_tls_anchor@GOTTPOFF]",
            v = out(reg) v,
            options(nostack, readonly, preserves_flags),
        );
    }
    v
}

/// The offset from the thread pointer of Cofferdam's own TLS slot
/// (`cofferdam_tls_state`, a Rust object's `.tbss`): inside the Rust TLS
/// range when the layout is in force.
pub(crate) fn state_tpoff() -> isize {
    let v: isize;
    // SAFETY: as in `anchor_tpoff`.
    unsafe {
        core::arch::asm!(
            "mov {v}, qword ptr [rip + cofferdam_tls_state@GOTTPOFF]",
            v = out(reg) v,
            options(nostack, readonly, preserves_flags),
        );
    }
    v
}
