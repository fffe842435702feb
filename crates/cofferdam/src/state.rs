//! The runtime's state: which backend is in force and why, decided once.
//!
//! This is a leaf that every layer may read (the allocator, the gate, the
//! fault handler, the guard, the backends, the compartment). The decision
//! itself is made by the start-up (`crate::backend`), the top layer, which
//! `runtime()` calls exactly once, on first use.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::sys::PkeySupport;

/// A protection backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Memory protection keys: the Rust heap carries key P, which foreign code
    /// runs without. Reads and writes of Rust memory by foreign code fault.
    Mpk,
    /// Only on request (`COFFERDAM_BACKEND=split`; where MPK is missing the
    /// default is [`Backend::Process`]): Rust's heap is a region of its own, apart from
    /// C's `malloc` (so C never receives recycled Rust memory), and faults in
    /// foreign code are contained, but foreign code that knows a Rust address
    /// can read and write it. Named "split (unprotected)" in output.
    Split,
    /// Nothing: calls go straight to the foreign function and the allocator
    /// is the system's. Exists to measure the others; always reported as
    /// unprotected.
    None,
    /// A helper process per compartment, started from this executable:
    /// foreign code runs in another address space (it has none of the Rust
    /// heap, stacks or statics), buffers are shared by mapping, calls
    /// travel over shared memory, with call timeouts and memory limits
    /// (`crate::backend::process`).
    Process,
}

impl Backend {
    /// The name used in output and in `COFFERDAM_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Mpk => "mpk",
            Backend::Split => "split",
            Backend::None => "none",
            Backend::Process => "process",
        }
    }

    /// Whether foreign code is kept out of Rust memory by this backend.
    pub fn protects_memory(self) -> bool {
        matches!(self, Backend::Mpk | Backend::Process)
    }

    /// The backend named `name` (`mpk`, `split`, `none`, `process`).
    pub fn from_name(name: &str) -> Option<Backend> {
        Some(match name {
            "mpk" => Backend::Mpk,
            "split" => Backend::Split,
            "none" => Backend::None,
            "process" => Backend::Process,
            _ => return None,
        })
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
            let rt = crate::backend::decide();
            // SAFETY: we hold BUSY: no one else writes or reads the value.
            unsafe { (*RUNTIME.0.get()).write(rt) };
            RUNTIME.1.store(READY, Ordering::Release);
            // Signal handling needs `runtime()` to answer: after READY.
            crate::backend::started(&rt);
        }
        Err(_) => {
            while RUNTIME.1.load(Ordering::Acquire) != READY {
                core::hint::spin_loop();
            }
        }
    }
}
