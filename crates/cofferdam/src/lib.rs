//! Cofferdam lets a Rust program call C libraries through FFI without handing
//! them its memory.
//!
//! * [`ProtectedAlloc`] puts the Rust heap in a protection-key domain (key P)
//!   that foreign code cannot read or write.
//! * [`ForeignBox`] and [`ForeignVec`] hold what C may touch, in a C heap:
//!   the heap of the compartment they are made for ([`ForeignBox::new_in`]),
//!   or Cofferdam's own; Rust reads them back by copy, as untrusted data.
//! * Each compartment's C code allocates from a heap of its own: `malloc` and
//!   friends are interposed, and a poisoned compartment's heap is
//!   quarantined (trusted code never runs its allocator again) and its
//!   memory released once everything made in it is gone
//!   ([`Compartment::heap_range`]).
//! * [`Compartment`] calls foreign functions through a verified call gate that
//!   drops P's rights for the duration of the call; a fault in foreign code
//!   becomes [`Error::Fault`] and poisons the compartment until
//!   [`Compartment::renew`] renews it.
//! * [`ForeignBox`] of a `#[derive(Pod)]` struct mirrors a C struct, its
//!   pointers as [`ForeignPtr`] fields.
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
//!
//! extern "C" {
//!     fn strlen(s: *const u8) -> usize;
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let libc = cofferdam::Compartment::new("libc")?;
//!     let text = cofferdam::ForeignBuf::from_str_nul("cofferdam")?;
//!     // SAFETY: strlen takes one pointer to a NUL-terminated string and
//!     // returns a size_t; `text` is one.
//!     let n: usize = unsafe { libc.call("strlen", strlen as *const (), (text.as_foreign_ptr(),))? };
//!     assert_eq!(n, 9);
//!     println!("{}", cofferdam::info());
//!     Ok(())
//! }
//! ```
//!
//! * Foreign code runs on a stack of its own; on the `mpk` backend the Rust
//!   thread stacks carry key P too (tagged at a thread's first gate call).
//! * A [`Callback`] hands a Rust function to C through a reverse gate that
//!   checks who calls it, when, and with what.
//!
//! * Foreign code is inspected before it runs (`Compartment::load`, and the
//!   object of each function at its first call), and a seccomp guard refuses
//!   the syscalls that would retag or unmap protected memory.
//!
//! What is and is not protected, per backend, is in the README (and in
//! `docs/stacks.md` and `docs/guard.md`). In short: the `mpk` backend keeps
//! foreign code out of the Rust heap and (below their top page) the Rust
//! stacks, turns its faults into errors, and stops it from granting itself
//! rights by the means listed there. Rust's statics and thread-locals carry P
//! too when the binary is linked with Cofferdam's layout (one line in its
//! build script: `cofferdam_build::protect_statics();`).

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod alloc;
mod backend;
pub mod callback;
mod compartment;
mod error;
mod fault;
mod foreign;
mod gate;
mod guard;
mod heap;
mod interpose;
mod state;
mod statics;
mod sys;
pub mod validate;

pub use alloc::{is_protected_region, ProtectedAlloc};
pub use backend::Backend;
pub use backend::DEFAULT_FOREIGN_STACK_KIB;
pub use callback::{Callback, CallbackArg, CallbackRef, CallbackRet, CallbackSig};
pub use cofferdam_macros::{sandbox, ForeignEnum, Pod};
#[doc(hidden)]
pub use compartment::InspectedOnce;
pub use compartment::{
    ArmedCallback, CallRegs, Compartment, CompartmentBuilder, GateArg, GateArgs, GateReturn,
    LazyCompartment, Returned,
};
pub use error::{Access, Error, Fault, FaultKind};
pub use fault::is_wrapped as signal_is_wrapped;
pub use foreign::{
    CChar, ForeignAllocError, ForeignBox, ForeignBuf, ForeignPtr, ForeignVec, OutOfBounds, Pod,
};
pub use gate::thread::is_protected;
#[cfg(feature = "bench-floor")]
#[doc(hidden)]
pub use gate::wrpkru_pair_call;
pub use gate::{read_pkru, MAX_STACK_ARGS};
pub use guard::inspect::{Library, ScannedObject};
pub use guard::{GuardInfo, SyscallPolicy};

use core::fmt;

/// The backend in force (starting the runtime if it has not started).
pub fn backend() -> Backend {
    state::runtime().backend
}

/// Starts the runtime now rather than at first use, and reports an error if
/// the requested protection is not available (including Rust statics and
/// thread-locals under `COFFERDAM_REQUIRE_STATICS=1`).
pub fn init() -> Result<Info, Error> {
    let i = info();
    match i.refused {
        Some(reason) => Err(Error::Unavailable { reason }),
        None => {
            statics::require()?;
            Ok(i)
        }
    }
}

/// What Cofferdam does in this process, and why.
#[derive(Clone, Debug)]
pub struct Info {
    /// The backend in force.
    pub backend: Backend,
    /// Why this backend.
    pub reason: &'static str,
    /// Set when a backend was requested that cannot run here; calls refuse.
    pub refused: Option<&'static str>,
    /// CPUID reports protection keys (`pku`).
    pub cpu_pku: bool,
    /// The OS enabled them (`ospke`).
    pub os_pke: bool,
    /// `pkey_alloc` works.
    pub kernel_pkeys: bool,
    /// The errno of a refused `pkey_alloc`.
    pub kernel_errno: Option<i32>,
    /// The key P tagging the Rust heap.
    pub pkey: Option<u32>,
    /// The global allocator is [`ProtectedAlloc`], serving from its region.
    pub protected_alloc_active: bool,
    /// The Rust heap carries key P: foreign code cannot touch it.
    pub heap_protected: bool,
    /// Address space reserved for the heap, in bytes.
    pub heap_reserved: usize,
    /// Bytes in large allocations that have mappings of their own.
    pub heap_direct: usize,
    /// This thread's PKRU, where readable.
    pub pkru: Option<u32>,
    /// Rust thread stacks are tagged with P at each thread's first gate
    /// call; `None` when they are, else why not.
    pub stacks_unprotected: Option<&'static str>,
    /// Signal frames are authenticated (on mpk: a kernel frame on the
    /// thread's P-tagged alternate stack) before any handler runs with
    /// rights; `None` when they are, else why not (docs/signals.md).
    pub signal_frames_unprotected: Option<&'static str>,
    /// Bytes of foreign stack each thread gets.
    pub foreign_stack: usize,
    /// Rust's writable statics (`.data`, `.bss`) carry P; `None` when they
    /// do, else why not (naming the linker when it is the cause).
    pub statics_unprotected: Option<String>,
    /// Bytes of Rust statics tagged with P.
    pub statics_bytes: usize,
    /// Rust's thread-locals carry P from each thread's first gate call;
    /// `None` when they do, else why not.
    pub thread_locals_unprotected: Option<String>,
    /// How the gate gives Rust back its MXCSR and x87 control word after a
    /// call: `"reload"` (the words saved on entry, unconditionally: chosen
    /// on AMD) or `"compare"` (reloaded only if foreign code changed them:
    /// chosen elsewhere). `COFFERDAM_CONTROL_WORDS` overrides the choice;
    /// both restore the words, they differ only in cost.
    pub control_words: &'static str,
    /// How the gate's return path and the callback entry tell threads apart
    /// (`gate::thread::ident`).
    pub thread_identity: String,
    /// The protected address interval `(start, length)`: the one
    /// reservation everything the allocator hands out is carved from.
    pub protected_range: Option<(usize, usize)>,
    /// The syscall guard and the inspection of foreign code.
    pub guard: GuardInfo,
}

/// Reports the backend, the CPU's and kernel's support for protection keys,
/// and the state of the heap.
pub fn info() -> Info {
    let rt = state::runtime();
    let (cpu_pku, os_pke) = sys::cpu_pkeys();
    let active = alloc::serves_region();
    Info {
        backend: rt.backend,
        reason: rt.reason,
        refused: rt.refused,
        cpu_pku,
        os_pke,
        kernel_pkeys: rt.support == sys::PkeySupport::Available,
        kernel_errno: match rt.support {
            sys::PkeySupport::KernelRefused(e) => Some(e),
            _ => None,
        },
        pkey: rt.pkey,
        protected_alloc_active: active,
        heap_protected: active && rt.pkey.is_some(),
        heap_reserved: alloc::reserved_bytes(),
        heap_direct: alloc::direct_bytes(),
        pkru: read_pkru(),
        stacks_unprotected: gate::thread::stack_problem(),
        signal_frames_unprotected: gate::thread::frames_problem(),
        foreign_stack: gate::config::get().foreign_stack,
        statics_unprotected: statics::problem().map(statics::explain),
        statics_bytes: statics::data_range().map_or(0, |(s, e)| e - s),
        thread_locals_unprotected: statics::tls_problem().map(statics::explain),
        control_words: gate::config::control_words().name(),
        thread_identity: gate::thread::ident::describe(),
        protected_range: alloc::reservation(),
        guard: guard::info(),
    }
}

impl fmt::Display for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let label = match self.backend {
            Backend::Mpk => "mpk (protected)",
            Backend::Split => {
                "split (unprotected: separate heap, contained faults, no memory protection)"
            }
            Backend::None => "none (unprotected)",
            Backend::Process => {
                "process (protected: each compartment in a helper process of its own)"
            }
        };
        writeln!(f, "backend:          {label}")?;
        writeln!(f, "why:              {}", self.reason)?;
        if let Some(r) = self.refused {
            writeln!(f, "refused:          {r}")?;
        }
        writeln!(f, "cpu pku:          {}", yes(self.cpu_pku))?;
        writeln!(f, "os pke:           {}", yes(self.os_pke))?;
        match self.kernel_errno {
            Some(e) => writeln!(
                f,
                "kernel pkeys:     no (pkey_alloc: {})",
                std::io::Error::from_raw_os_error(e)
            )?,
            None => writeln!(f, "kernel pkeys:     {}", yes(self.kernel_pkeys))?,
        }
        match self.pkey {
            Some(k) => writeln!(f, "protection key:   {k}")?,
            None => writeln!(f, "protection key:   none")?,
        }
        let heap = if self.backend == Backend::Process {
            "out of foreign code's reach: foreign code runs in a helper process per compartment, which shares only the foreign arena (ForeignBox/ForeignVec) with this one".to_string()
        } else if !self.protected_alloc_active {
            "not in use: ProtectedAlloc is not the global allocator (or the none backend is in force)".to_string()
        } else if self.heap_protected {
            format!(
                "protected (key {}), {} GiB reserved",
                self.pkey.unwrap_or(0),
                self.heap_reserved >> 30
            )
        } else {
            format!(
                "separate region, NOT protected, {} GiB reserved",
                self.heap_reserved >> 30
            )
        };
        writeln!(f, "heap:             {heap}")?;
        if self.backend == Backend::Process {
            writeln!(
                f,
                "helpers:          /proc/self/exe started fresh per compartment; seccomp allowlist, no new privileges, not dumpable, own session; this process made non-dumpable (no ptrace, no /proc/<pid>/mem from a helper)"
            )?;
        }
        match self.stacks_unprotected {
            _ if self.backend == Backend::Process => writeln!(
                f,
                "rust stacks:      out of foreign code's reach (helper processes; statics too)"
            )?,
            None => writeln!(
                f,
                "rust stacks:      protected (key {}), tagged at each thread's first gate call",
                self.pkey.unwrap_or(0)
            )?,
            Some(why) => writeln!(f, "rust stacks:      NOT protected: {why}")?,
        }
        match self.signal_frames_unprotected {
            None => writeln!(
                f,
                "signal frames:    authenticated (on P-tagged alternate stacks) before handlers get rights"
            )?,
            Some(why) => writeln!(f, "signal frames:    NOT authenticated: {why}")?,
        }
        match &self.statics_unprotected {
            None => writeln!(
                f,
                "statics:          protected (key {}), {} KiB of Rust .data/.bss",
                self.pkey.unwrap_or(0),
                self.statics_bytes >> 10
            )?,
            Some(why) => writeln!(f, "statics:          NOT protected: {why}")?,
        }
        match &self.thread_locals_unprotected {
            None => writeln!(
                f,
                "thread-locals:    protected (key {}), tagged at each thread's first gate call",
                self.pkey.unwrap_or(0)
            )?,
            Some(why) => writeln!(f, "thread-locals:    NOT protected: {why}")?,
        }
        writeln!(
            f,
            "foreign stack:    {} KiB per thread, guard page below",
            self.foreign_stack >> 10
        )?;
        writeln!(
            f,
            "control words:    {} (MXCSR and x87 control word given back after each call)",
            self.control_words
        )?;
        if self.backend != Backend::Process && self.backend != Backend::None {
            writeln!(f, "thread identity:  {}", self.thread_identity)?;
        }
        if let Some(p) = self.pkru {
            writeln!(f, "pkru:             {p:#010x}")?;
        }
        if let Some((s, l)) = self.protected_range {
            writeln!(f, "protected range:  {s:#x}..{:#x}", s + l)?;
        }
        let g = &self.guard;
        writeln!(
            f,
            "syscall guard:    {} ({})",
            yes(g.syscall_guard),
            g.reason
        )?;
        if g.decided {
            writeln!(f, "inspection:       {}", yes(g.inspection))?;
            writeln!(f, "libc pkey_set:    {}", g.pkey_set)?;
            writeln!(
                f,
                "syscalls:         allowlist; {} refused, {} foreign checked and run, {} trusted re-issued",
                g.refused_syscalls, g.checked_syscalls, g.reissued_syscalls
            )?;
            if g.syscall_guard {
                if g.supervisor {
                    writeln!(
                        f,
                        "munmap/madvise:   decided by the supervisor thread; {} let run, {} refused",
                        g.supervisor_answers.0, g.supervisor_answers.1
                    )?;
                } else {
                    writeln!(
                        f,
                        "munmap/madvise:   no supervisor (a filter above this process holds the listener): munmap traps, madvise fails with ENOSYS"
                    )?;
                }
            }
            for o in &g.scanned {
                let verdict = if o.refused.is_empty() {
                    "calls allowed"
                } else {
                    "calls REFUSED"
                };
                writeln!(
                    f,
                    "scanned:          {} ({} occurrence(s), {verdict})",
                    o.path, o.occurrences
                )?;
                for r in o.refused.iter().chain(&o.reported) {
                    writeln!(f, "                    {r}")?;
                }
            }
        }
        Ok(())
    }
}

/// Makes the gate check the kernel's thread id on this thread's crossings
/// back from now on, as it does where foreign code handed this thread's FS
/// base to a thread of its own (a mark that cannot be undone; it only adds
/// a check). For `cofferdam bench`, which times both side by side, and for
/// tests. `Err` where this thread cannot have state (the runtime has no
/// thread table, or it is full).
#[doc(hidden)]
pub fn check_thread_id_on_this_thread() -> Result<(), &'static str> {
    gate::thread::ident::mark_this_thread()
}

/// The runtime's control pages (the thread-state table, the callback
/// slots and the identity word, tagged with P): `(start, len)`, or `None` before the runtime has
/// them. For the attack suite and tests.
#[doc(hidden)]
pub fn control_pages() -> Option<(usize, usize)> {
    let c = gate::config::get();
    (c.state_len != 0).then(|| (c.state_base, c.control_end() - c.state_base))
}
