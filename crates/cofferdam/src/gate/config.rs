//! The gate's constants, on a page of their own that is made read-only once
//! written.
//!
//! The gate compares the PKRU value it wrote against `deny_mask`. If that mask
//! lived in ordinary writable memory, foreign code could set it to zero and
//! the check would pass with full rights. The page is written exactly once,
//! when the runtime starts, and then `mprotect`ed read-only; foreign code
//! would need a syscall to undo that, which is the syscall guard's business.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// Gate constants. `repr(C)` and page-sized so the page holds nothing else.
#[repr(C, align(4096))]
pub(crate) struct GateConfig {
    /// PKRU bits that deny key P (access- and write-disable), or 0 when the
    /// gate does not switch PKRU (no MPK). Read by the asm at offset 0.
    pub deny_mask: u32,
    /// The protection key P, or 0 when there is none.
    pub pkey: u32,
    /// Offset of PKRU in a signal frame's XSAVE area.
    pub pkru_xsave_offset: u32,
    _pad: [u8; 4096 - 12],
}

/// The one instance, referenced by symbol from `asm.rs`.
#[repr(transparent)]
pub(crate) struct ConfigPage(pub(crate) UnsafeCell<GateConfig>);

// SAFETY: the page is written once, by `configure`, before any gate call or
// wrapped signal handler can read it (callers order this through the runtime's
// initialisation state), and is read-only afterwards.
unsafe impl Sync for ConfigPage {}

pub(crate) static CONFIG: ConfigPage = ConfigPage(UnsafeCell::new(GateConfig {
    deny_mask: 0,
    pkey: 0,
    pkru_xsave_offset: 0,
    _pad: [0; 4096 - 12],
}));

static SEALED: AtomicBool = AtomicBool::new(false);

/// Writes the gate constants and seals the page read-only. Called once.
pub(crate) fn configure(pkey: Option<u32>, pkru_xsave_offset: u32) {
    assert!(
        !SEALED.swap(true, Ordering::SeqCst),
        "gate configured twice"
    );
    let page = CONFIG.0.get();
    // SAFETY: not sealed yet and called once (asserted above), so nothing else
    // writes; readers only start after the runtime's init state says ready.
    unsafe {
        (*page).deny_mask = pkey.map_or(0, |k| 0b11 << (2 * k));
        (*page).pkey = pkey.unwrap_or(0);
        (*page).pkru_xsave_offset = pkru_xsave_offset;
    }
    // SAFETY: `CONFIG` is page-aligned and page-sized, so the range is exactly
    // its own page; making it read-only affects nothing else.
    let r = unsafe { crate::sys::mprotect(page.cast(), 4096, libc::PROT_READ) };
    if r.is_err() {
        crate::sys::write_stderr(b"cofferdam: cannot seal the gate configuration page read-only\n");
        std::process::abort();
    }
}

/// The current constants.
pub(crate) fn get() -> &'static GateConfig {
    // SAFETY: after `configure` the page is immutable; before it, it holds
    // the zero constants and nothing writes it concurrently with readers
    // (see `ConfigPage`'s Sync argument).
    unsafe { &*CONFIG.0.get() }
}
