//! Rust's writable statics and thread-locals in the protected domain.
//!
//! `cofferdam-build`'s linker script (one line in the binary's build script)
//! gathers every Rust object's `.data`/`.bss` onto pages of their own,
//! `[__cofferdam_rust_data_start, __cofferdam_rust_data_end)`, and its
//! `.tdata`/`.tbss` into a page-aligned part of the executable's TLS block.
//! At start-up the runtime tags the statics' pages with P, except the gate's
//! read-only configuration page, which code running without P reads (the
//! signal and callback entries, before they take the rights). Each thread's
//! Rust TLS pages are tagged at its first gate call and untagged when it
//! exits (`gate/thread.rs`), like its stack.
//!
//! Where the TLS pages are: the executable's TLS block sits right below the
//! thread pointer (x86_64 uses TLS variant II), at
//! `tp - roundup(p_memsz, p_align)`; a thread-local at link-time address `v`
//! lives at `tp - roundup(p_memsz, p_align) + (v - p_vaddr)`. The layout
//! aligns Rust's part to pages at both ends, so glibc's TCB (at `tp`, with
//! the stack canary at `fs:0x28`), libc's own TLS (errno, further down) and
//! rseq (outside the executable's block) never share a page with it. The
//! computation is checked against Cofferdam's own TLS slot, whose offset the
//! linker wrote into the GOT.
//!
//! Without the layout nothing is tagged, and [`problem`] says why; the
//! program runs as before.

use core::ffi::c_void;
use core::sync::atomic::{AtomicIsize, AtomicU8, AtomicUsize, Ordering};

use crate::backend::Runtime;
use crate::gate::layout;
use crate::sys;

const NOT_STARTED: u8 = 1;
const NO_LAYOUT: u8 = 3;
/// The layout version this runtime understands (`QUAD(1)` in the script).
const LAYOUT_VERSION: u64 = 1;

static PROBLEMS: [&str; 10] = [
    "",
    "the runtime has not started",
    "not the mpk backend",
    "the binary was linked without Cofferdam's layout: add `cofferdam_build::protect_statics();` to the binary's build script (build.rs)",
    "the layout's symbols are not page-aligned or its version is unknown (another linker script in the way, or a cofferdam-build of another version?)",
    "the kernel refused pkey_mprotect on the statics' pages",
    "the executable has no TLS segment",
    "the executable's TLS block is not laid out as expected (segment not aligned, or the Rust TLS range misses Cofferdam's own slot)",
    "statics are not protected",
    "disabled by COFFERDAM_STATICS=off",
];

/// Why statics are not tagged (index into `PROBLEMS`; 0: they are).
static PROBLEM: AtomicU8 = AtomicU8::new(NOT_STARTED);
/// Why thread-locals are not tagged (same indices).
static TLS_PROBLEM: AtomicU8 = AtomicU8::new(NOT_STARTED);
/// The tagged statics, `[start, end)` (the config page inside stays
/// untagged).
static DATA: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
/// Rust's TLS pages relative to the thread pointer: `[tp + lo, tp + hi)`.
static TLS: [AtomicIsize; 2] = [AtomicIsize::new(0), AtomicIsize::new(0)];

/// Start-up (the runtime's one-time setup; must not allocate): tag the
/// statics' pages with P and work out where each thread's Rust TLS is.
pub(crate) fn protect(rt: &Runtime) {
    let Some(key) = rt.pkey else {
        PROBLEM.store(2, Ordering::Relaxed);
        TLS_PROBLEM.store(2, Ordering::Relaxed);
        return;
    };
    if sys::getenv_bytes(c"COFFERDAM_STATICS") == Some(b"off") {
        PROBLEM.store(9, Ordering::Relaxed);
        TLS_PROBLEM.store(9, Ordering::Relaxed);
        return;
    }
    let s = layout::symbols();
    if s.data_start == 0 || s.data_end == 0 || s.tls_bounds == 0 || s.version == 0 {
        PROBLEM.store(NO_LAYOUT, Ordering::Relaxed);
        TLS_PROBLEM.store(NO_LAYOUT, Ordering::Relaxed);
        return;
    }
    // SAFETY: the layout writes its version as one word at this symbol.
    if unsafe { (s.version as *const u64).read() } != LAYOUT_VERSION {
        PROBLEM.store(4, Ordering::Relaxed);
        TLS_PROBLEM.store(8, Ordering::Relaxed);
        return;
    }
    let page = sys::page_size();
    let (start, end) = (s.data_start, s.data_end);
    if start % page != 0 || end % page != 0 || end <= start {
        PROBLEM.store(4, Ordering::Relaxed);
        TLS_PROBLEM.store(8, Ordering::Relaxed);
        return;
    }
    // The gate's configuration page stays untagged: the signal and callback
    // entries read it before they take P's rights.
    let cfg = crate::gate::config::CONFIG.0.get() as usize;
    let parts = if start <= cfg && cfg < end {
        [(start, cfg), (cfg + page, end)]
    } else {
        [(start, end), (end, end)]
    };
    for (i, &(lo, hi)) in parts.iter().enumerate() {
        if hi <= lo {
            continue;
        }
        // SAFETY: [lo, hi) is a page-aligned part of the executable's Rust
        // `.data`/`.bss` (the layout's own symbols), mapped read-write;
        // tagging changes who may access it, not what it holds, and this
        // thread keeps P's rights (it allocated the key).
        let r = unsafe {
            sys::pkey_mprotect(
                lo as *mut c_void,
                hi - lo,
                libc::PROT_READ | libc::PROT_WRITE,
                key,
            )
        };
        if r.is_err() {
            for &(lo, hi) in &parts[..i] {
                if hi > lo {
                    // SAFETY: as above; back to key 0.
                    let _ = unsafe {
                        sys::pkey_mprotect(
                            lo as *mut c_void,
                            hi - lo,
                            libc::PROT_READ | libc::PROT_WRITE,
                            0,
                        )
                    };
                }
            }
            PROBLEM.store(5, Ordering::Relaxed);
            TLS_PROBLEM.store(8, Ordering::Relaxed);
            return;
        }
    }
    DATA[0].store(start, Ordering::Relaxed);
    DATA[1].store(end, Ordering::Release);
    PROBLEM.store(0, Ordering::Release);
    match tls_offsets(s.tls_bounds, page) {
        Ok((lo, hi)) => {
            TLS[0].store(lo, Ordering::Relaxed);
            TLS[1].store(hi, Ordering::Relaxed);
            TLS_PROBLEM.store(0, Ordering::Release);
        }
        Err(i) => TLS_PROBLEM.store(i, Ordering::Release),
    }
}

/// Rust's TLS pages relative to the thread pointer (see the module docs).
fn tls_offsets(bounds: usize, page: usize) -> Result<(isize, isize), u8> {
    // SAFETY: the layout writes two words at `__cofferdam_rust_tls_bounds`
    // in the (readable) data section: the link-time start and end of Rust's
    // TLS section.
    let (lo, hi) = unsafe {
        (
            (bounds as *const usize).read(),
            (bounds as *const usize).add(1).read(),
        )
    };
    let (vaddr, memsz, align) = sys::exe_tls_segment().ok_or(6u8)?;
    if align == 0 || vaddr % align != 0 || lo < vaddr || hi < lo || hi > vaddr + memsz {
        return Err(7);
    }
    let off = memsz.div_ceil(align) * align;
    let lo_off = (lo - vaddr) as isize - off as isize;
    let hi_off = (hi - vaddr) as isize - off as isize;
    let p = page as isize;
    if lo_off % p != 0 || hi_off % p != 0 || hi_off > 0 {
        return Err(7);
    }
    // Cofferdam's own slot is a Rust thread-local (inside), the anchor is
    // not (outside): the computation matches what the linker did.
    let own = layout::state_tpoff();
    let anchor = layout::anchor_tpoff();
    if !(lo_off <= own && own < hi_off) || (lo_off <= anchor && anchor < hi_off) {
        return Err(7);
    }
    Ok((lo_off, hi_off))
}

/// Why Rust statics are not protected, or `None` if they are.
pub(crate) fn problem() -> Option<&'static str> {
    match PROBLEM.load(Ordering::Acquire) {
        0 => None,
        i => Some(PROBLEMS[i as usize]),
    }
}

/// Why Rust thread-locals will not be tagged, or `None` if they will be.
pub(crate) fn tls_problem() -> Option<&'static str> {
    match TLS_PROBLEM.load(Ordering::Acquire) {
        0 if TLS_FAILED.load(Ordering::Relaxed) => Some(
            "a thread's Rust TLS pages could not be tagged (the kernel refused, or its thread pointer is not page-aligned)",
        ),
        0 => None,
        i => Some(PROBLEMS[i as usize]),
    }
}

/// Set when tagging one thread's TLS pages failed (others still are).
static TLS_FAILED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Records that a thread's TLS pages could not be tagged.
pub(crate) fn note_tls_failure() {
    TLS_FAILED.store(true, Ordering::Relaxed);
}

/// The tagged statics `[start, end)` (the config page inside them excepted),
/// or `None`.
pub(crate) fn data_range() -> Option<(usize, usize)> {
    let end = DATA[1].load(Ordering::Acquire);
    (end != 0).then(|| (DATA[0].load(Ordering::Relaxed), end))
}

/// The Rust TLS pages of the thread whose thread pointer is `tp`, when
/// thread-locals are to be tagged.
pub(crate) fn tls_range(tp: usize) -> Option<(usize, usize)> {
    if TLS_PROBLEM.load(Ordering::Acquire) != 0 {
        return None;
    }
    let (lo, hi) = (
        TLS[0].load(Ordering::Relaxed),
        TLS[1].load(Ordering::Relaxed),
    );
    (hi > lo).then(|| (tp.wrapping_add_signed(lo), tp.wrapping_add_signed(hi)))
}

/// Whether `[addr, end)` meets the tagged statics.
#[inline]
pub(crate) fn overlaps(addr: usize, end: usize) -> bool {
    let hi = DATA[1].load(Ordering::Acquire);
    hi != 0 && addr < hi && end > DATA[0].load(Ordering::Relaxed)
}

/// The linker that produced this executable, when it is one that cannot
/// take the layout (gold, mold), read from the `.comment` section.
pub(crate) fn unsupported_linker() -> Option<&'static str> {
    let bytes = std::fs::read("/proc/self/exe").ok()?;
    let file = object::read::elf::ElfFile64::<object::Endianness>::parse(&*bytes).ok()?;
    use object::{Object, ObjectSection};
    // gold leaves a note of its own; mold signs `.comment`.
    if file.section_by_name(".note.gnu.gold-version").is_some() {
        return Some("linked by gold, which does not support INSERT and cannot take the layout");
    }
    let comment = file.section_by_name(".comment")?.data().ok()?;
    let has = |needle: &[u8]| comment.windows(needle.len()).any(|w| w == needle);
    has(b"mold ").then_some(
        "linked by mold, which has no SECTIONS/INSERT linker scripts and cannot take the layout",
    )
}

/// The full reason statics are unprotected, naming the linker if that is
/// the cause (may read the executable: not for the allocator's path).
pub(crate) fn explain(why: &'static str) -> String {
    match (why == PROBLEMS[NO_LAYOUT as usize], unsupported_linker()) {
        (true, Some(l)) => format!("{l}: link with rust-lld (the default) or GNU ld"),
        _ => why.to_string(),
    }
}

/// `COFFERDAM_REQUIRE_STATICS=1`: an error when statics or thread-locals
/// are not protected.
pub(crate) fn require() -> Result<(), crate::Error> {
    let unprotected = problem().or_else(tls_problem).is_some();
    if unprotected && sys::getenv_bytes(c"COFFERDAM_REQUIRE_STATICS") == Some(b"1") {
        return Err(crate::Error::Unavailable {
            reason: "COFFERDAM_REQUIRE_STATICS=1, but Rust statics and thread-locals are not protected (see `cofferdam info`)",
        });
    }
    Ok(())
}

/// At each new compartment: `COFFERDAM_REQUIRE_STATICS=1` refuses when
/// statics or thread-locals are not protected; otherwise, on the mpk
/// backend, the first compartment says so on standard error.
pub(crate) fn check_at_compartment(backend: crate::Backend) -> Result<(), crate::Error> {
    require()?;
    let Some(why) = problem().or_else(tls_problem) else {
        return Ok(());
    };
    static WARNED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if backend == crate::Backend::Mpk && !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!(
            "cofferdam: warning: Rust statics and thread-locals are NOT protected: {} (COFFERDAM_REQUIRE_STATICS=1 makes this an error)",
            explain(why)
        );
    }
    Ok(())
}
