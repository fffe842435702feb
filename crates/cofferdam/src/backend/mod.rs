//! Which protection is in force, and why: the runtime's one-time setup,
//! and the backends behind one small interface.
//!
//! The runtime starts at the first allocation through [`crate::ProtectedAlloc`]
//! (or at the first use of [`crate::info`], [`crate::Compartment`] or
//! [`crate::init`], whichever comes first). It reads `COFFERDAM_BACKEND`,
//! probes the CPU and kernel, allocates the protection key P, writes and seals
//! the gate's configuration page, and puts signal handling in place
//! (`crate::fault`). Nothing here allocates from the global allocator: it runs
//! inside it. What it decides is kept in `crate::state`, a leaf every layer
//! reads; this module is the top that calls every layer.
//!
//! # The backend interface
//!
//! A compartment needs four things of its backend:
//!
//! | operation | `mpk` / `split` | `none` | `process` |
//! | --- | --- | --- | --- |
//! | call | the gate (`crate::gate::call`) | `crate::gate::call_direct` | [`process::Engine::call`]: a slot in the helper's shared page |
//! | alloc foreign | the compartment's C heap, or Cofferdam's own (`crate::heap`) | C's `malloc` | the shared arena (`crate::foreign::arena`) |
//! | read foreign | `memcpy` through the call | the same | the same, run in the helper |
//! | renew | clears the poison | the same | [`process::Engine::renew`]: a fresh helper |
//! | callbacks | the reverse gate (`crate::callback`) | the same | the helper's stubs, run here by `crate::callback::run_for_process` |
//!
//! `Compartment` holds the per-compartment part (`process::Engine` for
//! process compartments) and dispatches to it; allocation dispatches in
//! `crate::foreign` (`arena::arena_for_alloc`, `arena::free_foreign`).

pub use crate::state::Backend;
pub(crate) use crate::state::{runtime, Runtime};
use crate::sys::{self, PkeySupport};

pub(crate) mod process;

/// After the state is ready: signal handling (which needs `runtime()` to
/// answer).
pub(crate) fn started(rt: &Runtime) {
    crate::fault::install(rt);
    // Rust's statics into the protected domain (needs the gate configured:
    // its page stays untagged).
    crate::statics::protect(rt);
    crate::interpose::keep();
}

/// The start-up: decides the backend, allocates the key, seals the gate's
/// configuration page. Called once, by [`crate::state::runtime`].
pub(crate) fn decide() -> Runtime {
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
    // Why MPK cannot run here: (the reason alone, for a refusal of
    // COFFERDAM_BACKEND=mpk; the reason with the default it leads to).
    let no_mpk_reason: Option<(&'static str, &'static str)> = match support {
        PkeySupport::Available if offset == 0 => Some((
            "the CPU does not report where XSAVE keeps PKRU",
            "the CPU does not report where XSAVE keeps PKRU, so MPK cannot run: the default is the process backend (each compartment in a helper process of its own)",
        )),
        PkeySupport::Available => None,
        PkeySupport::NoCpu => Some((
            "the CPU has no protection keys (no `pku` in CPUID)",
            "the CPU has no protection keys (no `pku` in CPUID): the default is the process backend (each compartment in a helper process of its own)",
        )),
        PkeySupport::NoOs => Some((
            "the kernel did not enable protection keys (OSPKE clear)",
            "the kernel did not enable protection keys (OSPKE clear): the default is the process backend (each compartment in a helper process of its own)",
        )),
        PkeySupport::KernelRefused(_) => Some((
            "the kernel refused pkey_alloc",
            "the kernel refused pkey_alloc: the default is the process backend (each compartment in a helper process of its own)",
        )),
        PkeySupport::Guarded => Some((
            "this process inherited the syscall guard of a parent Cofferdam process, which traps pkey_alloc: protection keys are unusable here",
            "this process inherited the syscall guard of a parent Cofferdam process, which traps pkey_alloc: the default is the process backend (each compartment in a helper process of its own)",
        )),
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
            rt.backend = Backend::Process;
            rt.reason = "forced by COFFERDAM_BACKEND=process: each compartment in a helper process of its own";
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
                Some((why, _)) if forced => {
                    rt.refused =
                        Some("COFFERDAM_BACKEND=mpk, but protection keys are unavailable here");
                    rt.reason = why;
                }
                // No keys: the kernel's process boundary instead (never
                // `split`, which protects nothing, unless asked for).
                Some((_, default)) => {
                    rt.backend = Backend::Process;
                    rt.reason = default;
                }
            }
        }
        Some(_) => {
            rt.refused =
                Some("COFFERDAM_BACKEND has an unknown value (use mpk, process, split or none)");
            rt.reason = "unknown backend requested";
        }
    }
    if rt.backend == Backend::Mpk {
        match sys::pkey_alloc() {
            Ok(k) => rt.pkey = Some(k),
            Err(_) => {
                rt.backend = Backend::Process;
                rt.reason = "pkey_alloc failed (all 15 keys taken?): the default is the process backend (each compartment in a helper process of its own)";
                if matches!(requested, Some(b"mpk")) {
                    rt.refused =
                        Some("COFFERDAM_BACKEND=mpk, but no protection key could be allocated");
                }
            }
        }
    }
    let slots_len = crate::callback::NSLOTS * crate::callback::SLOT_SIZE;
    // The callback slots follow the table, then the identity word's page.
    let (state_base, state_len) = crate::gate::thread::reserve_table(rt.pkey, slots_len + 4096);
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
        ident: state_base + state_len + slots_len,
    });
    if matches!(sys::getenv_bytes(c"COFFERDAM_CHECK_THREAD_IDS"), Some(b"1")) {
        crate::gate::thread::ident::require(crate::gate::thread::ident::ASKED);
    }
    rt
}

/// The foreign stack's size when `COFFERDAM_FOREIGN_STACK_KIB` does not say
/// (64 KiB to 1 GiB accepted).
pub const DEFAULT_FOREIGN_STACK_KIB: usize = 1024;
