//! Errors of calls through a compartment.

use core::fmt;

/// What kind of fault ended a foreign call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The access hit memory whose protection key the foreign code has no
    /// rights to: Rust's protected memory (`SEGV_PKUERR`).
    ProtectionKey,
    /// Nothing is mapped at the address (`SEGV_MAPERR`).
    Unmapped,
    /// The page's permissions forbid the access (`SEGV_ACCERR`).
    AccessRights,
    /// A bus error (SIGBUS), e.g. a truncated file mapping.
    Bus,
    /// Another SIGSEGV code.
    Other(i32),
    /// An arithmetic exception (SIGFPE): division by zero, overflow of a
    /// division. `code` is the kernel's `si_code` (`FPE_INTDIV`, ...).
    Arithmetic {
        /// `si_code`.
        code: i32,
    },
    /// An illegal instruction (SIGILL): `ud2`, an instruction the CPU lacks.
    IllegalInstruction {
        /// `si_code`.
        code: i32,
    },
    /// A breakpoint or trace trap (SIGTRAP): `int3`.
    Breakpoint,
    /// Foreign code called `abort` (a failed `assert`, ...): SIGABRT raised
    /// on its thread.
    Abort,
    /// Foreign code raised a fault signal itself (`raise`, `tgkill`):
    /// `si_code <= 0`, not a fault of the CPU. On the `process` backend
    /// also: the helper process was ended by this signal with no fault of
    /// its own to report (SIGKILL from anyone: the OOM killer, a timeout of
    /// another call).
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// Foreign code called `exit`, `_exit` or `exit_group` inside the call:
    /// the program, not the library, decides when to exit. On the `process`
    /// backend: the helper process exited.
    Exit,
    /// Foreign code jumped into one of Cofferdam's trampolines: onto a
    /// WRPKRU with a value of its own, into the signal entry with a frame the
    /// kernel did not deliver, onto the landing pad; or it returned with a
    /// stack pointer other than the one it was called with. The trampoline's
    /// check refused it before anything ran with rights.
    Integrity,
    /// The syscall guard refused a system call that the foreign code made
    /// (one that would change protection keys, touch protected memory or
    /// create executable memory). The call was not executed.
    Syscall {
        /// The system call number (x86_64 numbering, or i386 for `int 0x80`).
        nr: u32,
        /// Its name (`pkey_mprotect`, `mprotect`, ...).
        name: &'static str,
    },
}

impl FaultKind {
    /// A short lower-case name (`pkey`, `unmapped`, `access`, `bus`, `other`).
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ProtectionKey => "pkey",
            FaultKind::Unmapped => "unmapped",
            FaultKind::AccessRights => "access",
            FaultKind::Bus => "bus",
            FaultKind::Other(_) => "other",
            FaultKind::Syscall { .. } => "syscall",
            FaultKind::Integrity => "integrity",
            FaultKind::Arithmetic { .. } => "arithmetic",
            FaultKind::IllegalInstruction { .. } => "illegal-instruction",
            FaultKind::Breakpoint => "breakpoint",
            FaultKind::Abort => "abort",
            FaultKind::Signal { .. } => "signal",
            FaultKind::Exit => "exit",
        }
    }
}

/// Whether the faulting access was a read, a write or an instruction fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
    /// An instruction fetch.
    Execute,
    /// The CPU did not say (SIGBUS).
    Unknown,
}

impl Access {
    /// `read`, `write`, `execute` or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Execute => "execute",
            Access::Unknown => "unknown",
        }
    }
}

/// A fault raised by foreign code during a call, contained by the gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The compartment whose function faulted.
    pub compartment: String,
    /// The foreign function that was called.
    pub function: &'static str,
    /// What went wrong.
    pub kind: FaultKind,
    /// Read, write or execute.
    pub access: Access,
    /// The address that was accessed.
    pub address: usize,
    /// The instruction that faulted.
    pub ip: usize,
    /// The protection key the kernel reported, for [`FaultKind::ProtectionKey`].
    pub pkey: Option<u32>,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == FaultKind::Integrity {
            return write!(
                f,
                "foreign function `{}` in compartment `{}` jumped into a Cofferdam trampoline (a WRPKRU, the signal entry, the landing pad) or returned with the wrong stack pointer: refused by the trampoline's check",
                self.function, self.compartment
            );
        }
        let what = match self.kind {
            FaultKind::Arithmetic { .. } => Some("an arithmetic exception (SIGFPE)"),
            FaultKind::IllegalInstruction { .. } => Some("an illegal instruction (SIGILL)"),
            FaultKind::Breakpoint => Some("a breakpoint trap (SIGTRAP)"),
            FaultKind::Abort => Some("abort() (SIGABRT)"),
            FaultKind::Signal { .. } => {
                Some("a signal (one it sent itself; on the process backend, the signal that ended its helper process)")
            }
            FaultKind::Exit => Some("an exit (of the whole program; on the process backend, of its helper process)"),
            _ => None,
        };
        if let Some(what) = what {
            return write!(
                f,
                "foreign function `{}` in compartment `{}` ended in {what}, at ip {:#x}",
                self.function, self.compartment, self.ip
            );
        }
        if let FaultKind::Syscall { nr, name } = self.kind {
            return write!(
                f,
                "foreign function `{}` in compartment `{}` was stopped by the syscall guard: {name} (syscall {nr}) with first argument {:#x}, at ip {:#x}",
                self.function, self.compartment, self.address, self.ip
            );
        }
        write!(
            f,
            "foreign function `{}` in compartment `{}` faulted: {} of {:#x} ({}",
            self.function,
            self.compartment,
            self.access.name(),
            self.address,
            self.kind.name()
        )?;
        if let Some(k) = self.pkey {
            write!(f, ", protection key {k}")?;
        }
        write!(f, ", at ip {:#x})", self.ip)
    }
}

/// Why a call through a compartment did not return a value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The foreign function faulted; the compartment is now poisoned.
    Fault(Fault),
    /// An earlier call faulted: the compartment's state can no longer be
    /// trusted, so it refuses further calls until
    /// [`crate::Compartment::renew`] renews it
    /// ([`crate::Compartment::last_fault`] says what happened).
    Poisoned {
        /// The compartment's name.
        compartment: String,
    },
    /// The call ran longer than the compartment's timeout (process backend):
    /// its helper process was killed and the compartment is poisoned.
    Timeout {
        /// The compartment's name.
        compartment: String,
        /// The foreign function.
        function: &'static str,
        /// How long it had run.
        after: core::time::Duration,
    },
    /// The helper process of a `process` compartment could not be started
    /// or set up.
    Process {
        /// Why.
        reason: String,
    },
    /// The protection that was asked for cannot be given here (for example
    /// `COFFERDAM_BACKEND=mpk` on a CPU without protection keys). Cofferdam
    /// never silently falls back to less protection.
    Unavailable {
        /// Why.
        reason: &'static str,
    },
    /// [`crate::ProtectedAlloc`] is not the program's global allocator, so the
    /// Rust heap is not in the protected domain.
    HeapNotProtected,
    /// A foreign function returned a value that is not valid for its Rust
    /// type (a `bool` that is neither 0 nor 1, an enum discriminant that names
    /// no variant, a pointer into protected memory, ...). Rust never sees it.
    Invalid {
        /// The foreign function.
        function: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A [`crate::Callback`] passed to this call refused what C passed it
    /// (a pointer into protected memory, an invalid `bool`) or panicked; C
    /// got the callback's error value and the call ran to its end.
    Callback {
        /// The foreign function that called it.
        function: &'static str,
        /// What happened.
        detail: String,
    },
    /// The code that would run as foreign code contains an instruction that
    /// can change PKRU (WRPKRU, XRSTOR, XRSTORS) outside Cofferdam's own
    /// verified gates: [`crate::Compartment::load`] refuses such a library,
    /// and a call into a linked-in object that holds one is refused before
    /// any of its code runs.
    UnsafeCode {
        /// The file that holds it.
        path: String,
        /// Each occurrence, one line each (file offset, instruction bytes,
        /// intended or hidden, symbol).
        findings: Vec<String>,
    },
    /// A library could not be loaded or inspected: missing file, not an ELF
    /// x86_64 object, `dlopen` failed, unknown symbol.
    Load {
        /// The file (or symbol) concerned.
        path: String,
        /// Why.
        reason: String,
    },
    /// Foreign memory could not be allocated ([`crate::ForeignBox::new`],
    /// [`crate::ForeignVec::zeroed`], ...).
    Alloc(crate::foreign::ForeignAllocError),
    /// An index outside a foreign buffer ([`crate::ForeignVec::write`],
    /// [`crate::ForeignVec::read`], ...).
    OutOfBounds(crate::foreign::OutOfBounds),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Fault(fault) => fault.fmt(f),
            Error::Poisoned { compartment } => {
                write!(f, "compartment `{compartment}` is poisoned by an earlier fault and refuses calls until it is renewed")
            }
            Error::Unavailable { reason } => write!(f, "protection unavailable: {reason}"),
            Error::Timeout {
                compartment,
                function,
                after,
            } => write!(
                f,
                "foreign function `{function}` in compartment `{compartment}` timed out after {after:?}; its helper process was killed and the compartment is poisoned"
            ),
            Error::Process { reason } => write!(f, "process backend: {reason}"),
            Error::Invalid { function, detail } => {
                write!(f, "foreign function `{function}` returned an invalid value: {detail}")
            }
            Error::Callback { function, detail } => {
                write!(f, "a callback of `{function}` failed: {detail}")
            }
            Error::UnsafeCode { path, findings } => {
                write!(
                    f,
                    "{path} contains {} instruction(s) that can change PKRU outside Cofferdam's gates; refused: {}",
                    findings.len(),
                    findings.join("; ")
                )
            }
            Error::Load { path, reason } => write!(f, "cannot load {path}: {reason}"),
            Error::Alloc(e) => e.fmt(f),
            Error::OutOfBounds(e) => e.fmt(f),
            Error::HeapNotProtected => f.write_str(
                "the Rust heap is not protected: add `#[global_allocator] static A: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;`",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Alloc(e) => Some(e),
            Error::OutOfBounds(e) => Some(e),
            _ => None,
        }
    }
}

/// A foreign allocation that failed, as [`Error::Alloc`]: so that `?` works
/// on `ForeignBox::new` and friends in a function returning
/// `Result<_, cofferdam::Error>`.
impl From<crate::foreign::ForeignAllocError> for Error {
    fn from(e: crate::foreign::ForeignAllocError) -> Self {
        Error::Alloc(e)
    }
}

/// An index outside a foreign buffer, as [`Error::OutOfBounds`].
impl From<crate::foreign::OutOfBounds> for Error {
    fn from(e: crate::foreign::OutOfBounds) -> Self {
        Error::OutOfBounds(e)
    }
}
