//! Which protection is in force, and why: the runtime's one-time setup.
//!
//! The runtime starts at the first allocation through [`crate::ProtectedAlloc`]
//! (or at the first use of [`crate::info`], [`crate::Compartment`] or
//! [`crate::init`], whichever comes first). It reads `COFFERDAM_BACKEND`,
//! probes the CPU and kernel, allocates the protection key P, writes and seals
//! the gate's configuration page, and puts signal handling in place
//! (`crate::fault`). Nothing here allocates from the global allocator: it runs
//! inside it.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::sys::{self, PkeySupport};

/// A protection backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Memory protection keys: the Rust heap carries key P, which foreign code
    /// runs without. Reads and writes of Rust memory by foreign code fault.
    Mpk,
    /// No MPK on this machine: Rust's heap is a region of its own, apart from
    /// C's `malloc` (so C never receives recycled Rust memory), and faults in
    /// foreign code are contained, but foreign code that knows a Rust address
    /// can read and write it. Named "split (unprotected)" in output.
    Split,
    /// Nothing: calls go straight to the foreign function and the allocator
    /// is the system's. Exists to measure the others; always reported as
    /// unprotected.
    None,
}

impl Backend {
    /// The name used in output and in `COFFERDAM_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Mpk => "mpk",
            Backend::Split => "split",
            Backend::None => "none",
        }
    }

    /// Whether foreign code is kept out of Rust memory by this backend.
    pub fn protects_memory(self) -> bool {
        self == Backend::Mpk
    }
}

impl core::fmt::Display for Backend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The runtime's decisions, made once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Runtime {
    /// The backend in force.
    pub backend: Backend,
    /// Why that backend (static text).
    pub reason: &'static str,
    /// What the probe found.
    pub support: PkeySupport,
    /// The protection key P, when the mpk backend is in force.
    pub pkey: Option<u32>,
    /// Set when the user asked for a backend that cannot run here: gates
    /// refuse to run rather than silently give less protection.
    pub refused: Option<&'static str>,
}

const UNINIT: u8 = 0;
const BUSY: u8 = 1;
const READY: u8 = 2;

struct Cell(UnsafeCell<MaybeUninit<Runtime>>, AtomicU8);
// SAFETY: the value is written once, by the thread that moved the state from
// UNINIT to BUSY, and read only after the state is READY (release/acquire).
unsafe impl Sync for Cell {}

static RUNTIME: Cell = Cell(
    UnsafeCell::new(MaybeUninit::uninit()),
    AtomicU8::new(UNINIT),
);

/// The runtime, initialised on first use.
pub(crate) fn runtime() -> &'static Runtime {
    if RUNTIME.1.load(Ordering::Acquire) != READY {
        init_slow();
    }
    // SAFETY: READY means the value was written (see `Cell`).
    unsafe { (*RUNTIME.0.get()).assume_init_ref() }
}

#[cold]
fn init_slow() {
    match RUNTIME
        .1
        .compare_exchange(UNINIT, BUSY, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => {
            let rt = decide();
            // SAFETY: we hold BUSY: no one else writes or reads the value.
            unsafe { (*RUNTIME.0.get()).write(rt) };
            RUNTIME.1.store(READY, Ordering::Release);
            // Signal handling needs `runtime()` to answer: after READY.
            crate::fault::install(&rt);
        }
        Err(_) => {
            while RUNTIME.1.load(Ordering::Acquire) != READY {
                core::hint::spin_loop();
            }
        }
    }
}

fn decide() -> Runtime {
    let support = sys::probe_pkeys();
    let offset = sys::pkru_xsave_offset().unwrap_or(0);
    let requested = sys::getenv_bytes(c"COFFERDAM_BACKEND");
    let mut rt = Runtime {
        backend: Backend::Split,
        reason: "",
        support,
        pkey: None,
        refused: None,
    };
    let no_mpk_reason = match support {
        PkeySupport::Available if offset == 0 => {
            Some("the CPU does not report where XSAVE keeps PKRU")
        }
        PkeySupport::Available => None,
        PkeySupport::NoCpu => Some("the CPU has no protection keys (no `pku` in CPUID)"),
        PkeySupport::NoOs => Some("the kernel did not enable protection keys (OSPKE clear)"),
        PkeySupport::KernelRefused(_) => Some("the kernel refused pkey_alloc"),
        PkeySupport::Guarded => Some(
            "this process inherited the syscall guard of a parent Cofferdam process, which traps pkey_alloc: protection keys are unusable here",
        ),
    };
    match requested {
        Some(b"none") => {
            rt.backend = Backend::None;
            rt.reason = "forced by COFFERDAM_BACKEND=none: no protection";
        }
        Some(b"split") => {
            rt.reason = "forced by COFFERDAM_BACKEND=split: separate heap, no memory protection";
        }
        Some(b"process") => {
            rt.refused =
                Some("COFFERDAM_BACKEND=process: the process backend is not implemented yet");
            rt.reason = "the requested process backend is not available";
        }
        Some(b"mpk") | Some(b"") | Some(b"auto") | None => {
            let forced = matches!(requested, Some(b"mpk"));
            match no_mpk_reason {
                None => {
                    rt.backend = Backend::Mpk;
                    rt.reason = if forced {
                        "forced by COFFERDAM_BACKEND=mpk"
                    } else {
                        "the CPU and kernel support protection keys"
                    };
                }
                Some(why) if forced => {
                    rt.refused =
                        Some("COFFERDAM_BACKEND=mpk, but protection keys are unavailable here");
                    rt.reason = why;
                }
                Some(why) => rt.reason = why,
            }
        }
        Some(_) => {
            rt.refused = Some("COFFERDAM_BACKEND has an unknown value (use mpk, split or none)");
            rt.reason = "unknown backend requested";
        }
    }
    if rt.backend == Backend::Mpk {
        match sys::pkey_alloc() {
            Ok(k) => rt.pkey = Some(k),
            Err(_) => {
                rt.backend = Backend::Split;
                rt.reason = "pkey_alloc failed (all 15 keys taken?)";
                if matches!(requested, Some(b"mpk")) {
                    rt.refused =
                        Some("COFFERDAM_BACKEND=mpk, but no protection key could be allocated");
                }
            }
        }
    }
    let slots_len = crate::callback::NSLOTS * crate::callback::SLOT_SIZE;
    let (state_base, state_len) = crate::gate::thread::reserve_table(rt.pkey, slots_len);
    // The alternate signal stacks: on every backend but `none` (whose
    // signals Cofferdam leaves alone), P-tagged where the kernel can write
    // frames onto tagged memory.
    let frames_tagged = crate::gate::thread::frames_can_be_tagged(rt.pkey);
    let alt = if rt.backend == Backend::None {
        (0, 0)
    } else {
        crate::gate::thread::reserve_alt_arena(rt.pkey, frames_tagged)
    };
    let foreign_stack = sys::getenv_bytes(c"COFFERDAM_FOREIGN_STACK_KIB")
        .and_then(|v| core::str::from_utf8(v).ok()?.parse::<usize>().ok())
        .filter(|&k| (64..=(1 << 20)).contains(&k))
        .unwrap_or(DEFAULT_FOREIGN_STACK_KIB)
        << 10;
    crate::gate::config::configure(&crate::gate::config::Settings {
        pkey: rt.pkey,
        pkru_xsave_offset: offset,
        fsgsbase: sys::has_fsgsbase(),
        control: (state_base, state_len),
        slots: (state_base + state_len, crate::callback::NSLOTS),
        foreign_stack,
        tag_stacks: rt.backend != Backend::None && crate::gate::thread::stacks_enabled(rt.pkey),
        frames_tagged,
        alt,
        control_words: crate::gate::config::ControlWords::choose(),
    });
    rt
}

/// The foreign stack's size when `COFFERDAM_FOREIGN_STACK_KIB` does not say
/// (64 KiB to 1 GiB accepted).
pub const DEFAULT_FOREIGN_STACK_KIB: usize = 1024;
