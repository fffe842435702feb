//! Compartments: a named foreign library (or part of one) behind the gate.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::backend::{self, Backend};
use crate::callback::Callback;
use crate::error::{Access, Error, Fault, FaultKind};
use crate::foreign::{CChar, ForeignPtr, ForeignVec, Pod};
#[cfg(doc)]
use crate::gate::MAX_STACK_ARGS;
use crate::gate::{self, FaultRecord, GateFrame};
use crate::heap::{Heap, HeapOwner};
use crate::validate::ForeignArg;

/// A group of foreign functions that fail together: the first fault in any
/// of them poisons the compartment, and later calls return
/// [`Error::Poisoned`] without running foreign code, until
/// [`Compartment::renew`] replaces it with a fresh one.
///
/// Cloning gives another handle to the same compartment: a fault through
/// one handle poisons them all, and renewing through one renews them all.
#[derive(Clone, Debug)]
pub struct Compartment {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    backend: Backend,
    poisoned: AtomicBool,
    /// The most recent fault (written before `poisoned` is set).
    last_fault: Mutex<Option<Fault>>,
    /// How many times [`Compartment::renew`] has run.
    renewals: AtomicU64,
    /// Held while renewing: one renewal at a time.
    renewing: Mutex<()>,
    /// The helper process, on the `process` backend.
    process: Option<backend::process::Engine>,
    /// The compartment's C heap (`crate::heap`) on `mpk` and `split`;
    /// `None` on `none` (glibc's heap) and for a process compartment (the
    /// helper has its own; foreign memory is in the shared arena).
    heap: Mutex<Option<Arc<Heap>>>,
    /// Its base: the word set for foreign code's `malloc` during calls.
    heap_base: AtomicUsize,
    /// A buffer in the heap that [`Compartment::read_foreign`] copies
    /// through, reused so that a read costs one gate crossing, not three
    /// (an allocation and a free in a heap run through the gate too).
    scratch: Mutex<Option<ForeignVec<u8>>>,
}

/// The largest read that goes through the reused scratch buffer.
const SCRATCH_MAX: usize = 64 * 1024;

impl Drop for Inner {
    fn drop(&mut self) {
        // The scratch buffer first: it is a block of the heap.
        drop(
            self.scratch
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let heap = self
            .heap
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = heap {
            h.retire();
        }
    }
}

impl Inner {
    /// Makes this compartment the owner its current heap reports faults to.
    fn adopt_heap(self: &Arc<Self>) {
        if let Some(h) = &*self.heap.lock().unwrap_or_else(PoisonError::into_inner) {
            let weak: std::sync::Weak<Inner> = Arc::downgrade(self);
            let owner: std::sync::Weak<dyn HeapOwner> = weak;
            h.set_owner(owner);
        }
    }
}

impl HeapOwner for Inner {
    fn heap_faulted(self: Arc<Self>, heap: &Heap, function: &'static str, record: &FaultRecord) {
        if self.heap_base.load(Ordering::Acquire) != heap.base() {
            // A heap of an earlier generation: the compartment was renewed.
            return;
        }
        let c = Compartment { inner: self };
        let fault = c.fault(function, record);
        c.poison(fault);
    }
}

/// Options of a new [`Compartment`]: [`Compartment::builder`].
#[derive(Clone, Debug)]
pub struct CompartmentBuilder {
    name: String,
    backend: Option<Backend>,
    limits: backend::process::Limits,
    policy: Option<crate::SyscallPolicy>,
}

impl CompartmentBuilder {
    /// Runs this compartment on `backend` rather than the one in force.
    /// Only [`Backend::Process`] may differ from the backend in force (a
    /// compartment in a helper process beside in-process ones); asking for
    /// another is [`Error::Unavailable`] at [`CompartmentBuilder::build`].
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = Some(backend);
        self
    }

    /// As [`CompartmentBuilder::backend`], by name (`"process"`, `"mpk"`,
    /// ...): what `#[cofferdam::sandbox(backend = "...")]` uses. An unknown
    /// name is [`Error::Unavailable`] at build.
    pub fn backend_named(mut self, name: &str) -> Self {
        self.backend = Some(Backend::from_name(name).unwrap_or(Backend::None));
        if Backend::from_name(name).is_none() {
            self.limits.unknown_backend = true;
        }
        self
    }

    /// A call that runs longer than `t` kills the helper process and
    /// returns [`Error::Timeout`]; the compartment is poisoned. Process
    /// backend only.
    pub fn timeout(mut self, t: core::time::Duration) -> Self {
        self.limits.timeout = Some(t);
        self
    }

    /// Caps the helper process's private writable memory (its `malloc` heap,
    /// thread stacks and private mappings: `RLIMIT_DATA`) at `bytes`; the
    /// library's allocations beyond it fail. The shared foreign arena is not
    /// counted. Process backend only.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.limits.memory = Some(bytes);
        self
    }

    /// Spin iterations before a futex sleep on the process backend (for
    /// benchmarks: 0 measures the futex round trip alone).
    #[doc(hidden)]
    pub fn spin(mut self, iterations: u32) -> Self {
        self.limits.spin = Some(iterations);
        self
    }

    /// The syscall list for foreign code, changed by `policy` (see
    /// [`Compartment::with_syscalls`]: the list is process-wide, fixed by
    /// the first compartment).
    pub fn syscalls(mut self, policy: &crate::SyscallPolicy) -> Self {
        self.policy = Some(policy.clone());
        self
    }

    /// The compartment ([`Compartment::new`]'s errors, and
    /// [`Error::Process`] if its helper process cannot start).
    pub fn build(self) -> Result<Compartment, Error> {
        Compartment::build(self)
    }
}

impl Compartment {
    /// A new compartment. Fails if the requested protection cannot be given
    /// ([`Error::Unavailable`]) or if [`crate::ProtectedAlloc`] is not the
    /// global allocator while a protecting backend is in force
    /// ([`Error::HeapNotProtected`]).
    pub fn new(name: &str) -> Result<Compartment, Error> {
        Compartment::builder(name).build()
    }

    /// A compartment with options: its own backend (`process` beside
    /// in-process compartments), a call timeout, a memory limit.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
    /// let decoder = cofferdam::Compartment::builder("decoder")
    ///     .backend(cofferdam::Backend::Process)
    ///     .timeout(std::time::Duration::from_secs(5))
    ///     .memory_limit(256 << 20)
    ///     .build()?;
    /// assert_eq!(decoder.backend(), cofferdam::Backend::Process);
    /// # Ok::<(), cofferdam::Error>(())
    /// ```
    pub fn builder(name: &str) -> CompartmentBuilder {
        CompartmentBuilder {
            name: name.to_owned(),
            backend: None,
            limits: Default::default(),
            policy: None,
        }
    }

    /// A new compartment whose foreign code gets the syscall list changed by
    /// `policy` ([`crate::SyscallPolicy`]: allow more calls, or deny some
    /// the default list allows). The same as
    /// `Compartment::builder(name).syscalls(policy).build()`.
    ///
    /// There is one seccomp filter per process, so the list is
    /// process-wide: it is fixed by the first compartment, and a later
    /// compartment asking for a different list gets
    /// [`Error::Unavailable`]. Call this for the first compartment.
    ///
    /// ```no_run
    /// # #[global_allocator]
    /// # static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
    /// let policy = cofferdam::SyscallPolicy::new()
    ///     .deny(libc::SYS_socket)?
    ///     .allow(libc::SYS_memfd_create)?;
    /// let c = cofferdam::Compartment::with_syscalls("codec", &policy)?;
    /// # Ok::<(), cofferdam::Error>(())
    /// ```
    pub fn with_syscalls(name: &str, policy: &crate::SyscallPolicy) -> Result<Compartment, Error> {
        Compartment::builder(name).syscalls(policy).build()
    }

    fn build(b: CompartmentBuilder) -> Result<Compartment, Error> {
        let rt = backend::runtime();
        if let Some(reason) = rt.refused {
            return Err(Error::Unavailable { reason });
        }
        if b.limits.unknown_backend {
            return Err(Error::Unavailable {
                reason: "unknown backend name (use mpk, process, split or none)",
            });
        }
        let chosen = b.backend.unwrap_or(rt.backend);
        if chosen != rt.backend && chosen != Backend::Process {
            return Err(Error::Unavailable {
                reason: "only the process backend can be chosen per compartment; the others are chosen for the whole program (COFFERDAM_BACKEND)",
            });
        }
        if chosen != Backend::Process && (b.limits.timeout.is_some() || b.limits.memory.is_some()) {
            return Err(Error::Unavailable {
                reason: "call timeouts and memory limits need the process backend",
            });
        }
        crate::statics::check_at_compartment(rt.backend)?;
        if rt.backend != Backend::None {
            let probe = Box::new(0u64);
            if !crate::alloc::is_protected_region(&*probe as *const u64 as usize) {
                return Err(Error::HeapNotProtected);
            }
        }
        if rt.backend != Backend::None {
            // The syscall guard and inspection (crate::guard), installed at
            // the first compartment so programs without foreign calls never
            // carry them.
            crate::guard::ensure_with(b.policy.as_ref())?;
        }
        let process = if chosen == Backend::Process {
            Some(backend::process::Engine::new(b.limits)?)
        } else {
            None
        };
        let heap = match chosen {
            Backend::Mpk | Backend::Split => {
                Some(Heap::new().map_err(|reason| Error::Unavailable { reason })?)
            }
            Backend::None | Backend::Process => None,
        };
        let inner = Arc::new(Inner {
            name: b.name,
            backend: chosen,
            poisoned: AtomicBool::new(false),
            last_fault: Mutex::new(None),
            renewals: AtomicU64::new(0),
            renewing: Mutex::new(()),
            process,
            heap_base: AtomicUsize::new(heap.as_ref().map_or(0, |h| h.base())),
            heap: Mutex::new(heap),
            scratch: Mutex::new(None),
        });
        inner.adopt_heap();
        Ok(Compartment { inner })
    }

    /// The heap foreign memory made for this compartment comes from (`None`
    /// on `none`, glibc's, and for a process compartment, the shared
    /// arena). Fails while the compartment is poisoned: its heap is
    /// quarantined until [`Compartment::renew`].
    pub(crate) fn heap(&self) -> Result<Option<Arc<Heap>>, ()> {
        let h = self
            .inner
            .heap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match h {
            Some(h) if h.is_quarantined() => Err(()),
            h => Ok(h),
        }
    }

    /// The address range `[start, end)` of this compartment's C heap (the
    /// current one: after [`Compartment::renew`], the fresh heap): what
    /// foreign code `malloc`s inside a call through this compartment, and
    /// what [`crate::ForeignBox::new_in`] and friends make for it, lives
    /// there. `None` on the `none` backend (glibc's heap) and for a
    /// compartment on the `process` backend (its foreign memory is the
    /// shared arena; the library's own `malloc` is the helper's).
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
    /// let c = cofferdam::Compartment::new("owner")?;
    /// let mine = cofferdam::ForeignBuf::zeroed_in(&c, 16)?;
    /// if let Some(r) = c.heap_range() {
    ///     assert!(r.contains(&mine.as_foreign_ptr().addr()));
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn heap_range(&self) -> Option<core::ops::Range<usize>> {
        self.inner
            .heap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|h| h.range())
    }

    /// Whether `p` lies in this compartment's current C heap
    /// ([`Compartment::heap_range`]); always `false` where it has none.
    pub fn owns<T>(&self, p: ForeignPtr<T>) -> bool {
        self.heap_range().is_some_and(|r| r.contains(&p.addr()))
    }

    /// Poisons the compartment with `fault` and quarantines its heap: the
    /// fault first, then the flag, so that whoever sees the compartment
    /// poisoned finds the fault that did it.
    fn poison(&self, fault: Fault) {
        *self
            .inner
            .last_fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(fault);
        self.inner.poisoned.store(true, Ordering::Release);
        if let Some(h) = &*self
            .inner
            .heap
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            h.quarantine();
        }
    }

    /// The helper process's id, on the `process` backend (while one runs).
    pub fn helper_pid(&self) -> Option<i32> {
        self.inner.process.as_ref().and_then(|p| p.pid())
    }

    /// A compartment for a shared library loaded from `path`: the file's
    /// executable segments are scanned first and the library is refused with
    /// [`Error::UnsafeCode`] (listing each occurrence) if they contain a
    /// WRPKRU, XRSTOR or XRSTORS anywhere (intended or hidden inside another
    /// instruction) outside `cofferdam_*` trampolines; a missing file, a file
    /// that is not an ELF64 x86_64 object or a failing `dlopen` is
    /// [`Error::Load`]. Then it is `dlopen`ed with `RTLD_NOW | RTLD_LOCAL`
    /// (its constructors run now, outside any gate: they are the library's
    /// code, but ran only after the scan).
    ///
    /// ```no_run
    /// # #[global_allocator]
    /// # static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
    /// let z = cofferdam::Compartment::load("zlib", "libz.so.1")?;
    /// // SAFETY: zlibVersion() -> const char *.
    /// let v: *const u8 = unsafe { z.call("zlibVersion", ()) }?;
    /// # Ok::<(), cofferdam::Error>(())
    /// ```
    ///
    /// A bare file name is looked up as `dlopen` would (the loader's search
    /// path), and the file found is the one scanned.
    pub fn load(name: &str, path: impl AsRef<std::path::Path>) -> Result<crate::Library, Error> {
        let c = Compartment::new(name)?;
        let path = resolve_library(path.as_ref());
        crate::guard::inspect::Library::open(&path, c)
    }

    /// The compartment's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The backend its calls go through.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Whether an earlier fault poisoned it (and it has not been renewed
    /// since).
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
    }

    /// The most recent fault of a call through this compartment, if there
    /// was one: the fault that poisoned it while [`Compartment::is_poisoned`]
    /// is true. It is kept after [`Compartment::renew`], for the record
    /// (until the next fault replaces it); [`Compartment::renewals`] tells
    /// whether a renewal came after it.
    pub fn last_fault(&self) -> Option<Fault> {
        self.inner
            .last_fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many times [`Compartment::renew`] has run on this compartment.
    pub fn renewals(&self) -> u64 {
        self.inner.renewals.load(Ordering::Acquire)
    }

    /// Replaces the compartment's state by a fresh one and lifts the
    /// poisoning, so calls run again: for a server that must keep serving
    /// after one bad input. Every handle (clone) of the compartment sees the
    /// renewed one, including the handle of a `#[cofferdam::sandbox]` block.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
    /// use cofferdam::{Compartment, Error, ForeignBuf, ForeignPtr};
    /// extern "C" {
    ///     fn strlen(s: *const u8) -> usize;
    /// }
    /// let c = Compartment::new("parser")?;
    /// let bad = ForeignPtr::<u8>::from_addr(1); // a bad input
    /// // SAFETY: strlen(const char *) -> size_t; address 1 faults, inside the gate.
    /// let r: Result<usize, Error> = unsafe { c.call("strlen", strlen as *const (), (bad,)) };
    /// assert!(matches!(r, Err(Error::Fault(_))));
    /// assert!(c.is_poisoned());
    ///
    /// eprintln!("renewing after {}", c.last_fault().unwrap());
    /// c.renew()?;
    /// let s = ForeignBuf::from_str_nul("fine")?;
    /// // SAFETY: as above, with a NUL-terminated foreign string.
    /// let n: usize = unsafe { c.call("strlen", strlen as *const (), (s.as_foreign_ptr(),)) }?;
    /// assert_eq!(n, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// What renewal restores, and what it cannot:
    ///
    /// * It restores the compartment's ability to run calls, and whatever
    ///   the backend keeps per compartment.
    /// * With the `mpk`, `split` and `none` backends the library runs in this
    ///   process, so its own state is **not** reset: its statics and globals,
    ///   the memory it allocated, and foreign objects (`ForeignBox`,
    ///   `ForeignVec`, pointers C returned) made before the fault stay as the
    ///   faulting call left them, possibly corrupt. Drop and remake those
    ///   objects, and re-run the library's own initialisation where it has
    ///   one; a library whose global state a fault may have broken needs a
    ///   backend that restarts it: the `process` backend.
    /// * With the `process` backend renewal is a real reset: the helper
    ///   process is killed and a fresh one started, so the library's
    ///   statics and heap start over (foreign memory in the shared arena
    ///   stays as it is).
    /// * A call already running on another thread when the compartment is
    ///   renewed finishes (or faults, poisoning the renewed compartment).
    ///
    /// Renewing a compartment that is not poisoned is allowed: it replaces
    /// the state all the same.
    ///
    /// # Errors
    /// The errors of creating a compartment ([`Error::Unavailable`]), if
    /// the backend cannot make the fresh state; the compartment then stays
    /// as it was (poisoned if it was).
    pub fn renew(&self) -> Result<(), Error> {
        let _one = self
            .inner
            .renewing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.renew_backend()?;
        self.inner.renewals.fetch_add(1, Ordering::AcqRel);
        self.inner.poisoned.store(false, Ordering::Release);
        Ok(())
    }

    /// The backend's part of [`Compartment::renew`]: make the state the
    /// backend keeps for this compartment fresh. In-process backends keep
    /// none today (a fault leaves no per-compartment state behind: the
    /// gate's per-thread state is restored by the fault path itself); a
    /// backend that runs the library elsewhere restarts it here.
    ///
    /// On `mpk` and `split` the compartment gets a fresh C heap; the old
    /// one (quarantined if the compartment was poisoned) is discarded once
    /// the foreign memory made in it is gone (see `crate::heap`).
    fn renew_backend(&self) -> Result<(), Error> {
        match (&self.inner.process, self.inner.backend) {
            // A fresh helper process: the library's statics and heap start
            // over (foreign memory in the shared arena stays).
            (Some(p), _) => p.renew(),
            (None, Backend::Mpk | Backend::Split) => {
                let fresh = Heap::new().map_err(|reason| Error::Unavailable { reason })?;
                // The scratch buffer is a block of the old heap.
                drop(
                    self.inner
                        .scratch
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take(),
                );
                let old = {
                    let mut h = self
                        .inner
                        .heap
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    self.inner.heap_base.store(fresh.base(), Ordering::Release);
                    h.replace(fresh)
                };
                self.inner.adopt_heap();
                if let Some(old) = old {
                    old.retire();
                }
                Ok(())
            }
            (None, Backend::None | Backend::Process) => Ok(()),
        }
    }

    /// Calls foreign function `f` (named `function` in errors) with up to six
    /// integer or pointer arguments, through the gate.
    ///
    /// # Safety
    /// `f` must be the address of a function with the C ABI whose parameters
    /// are integers or pointers matching `args` in number and width, and whose
    /// return is an integer, a pointer or void matching `R`. Memory safety of
    /// what the function does with its arguments is what the backend
    /// provides (see the crate docs); the types of the arguments are the
    /// caller's responsibility.
    #[inline]
    pub unsafe fn call<A: GateArgs, R: GateReturn>(
        &self,
        function: &'static str,
        f: *const (),
        args: A,
    ) -> Result<R, Error> {
        // SAFETY: forwarded contract.
        let words = unsafe { self.call_words(function, f, args.into_words()) }?;
        Ok(R::from_words(words[0], words[1]))
    }

    /// As [`Compartment::call`], with the arguments as six machine words and
    /// the result as rax and rdx. The entry point generated wrappers use.
    ///
    /// # Safety
    /// As for [`Compartment::call`].
    #[inline]
    pub unsafe fn call_words(
        &self,
        function: &'static str,
        f: *const (),
        args: [u64; 6],
    ) -> Result<[u64; 2], Error> {
        // SAFETY: forwarded contract.
        unsafe { self.call_words_stack(function, f, args, &[]) }
    }

    /// As [`Compartment::call_words`], for functions with more than six
    /// integer or pointer parameters: `stack` holds the 7th and later
    /// arguments, in order, at most [`MAX_STACK_ARGS`] of them.
    ///
    /// # Safety
    /// As for [`Compartment::call`]; `args` and `stack` together must match
    /// the function's parameters.
    ///
    /// # Panics
    /// If `stack` holds more than [`MAX_STACK_ARGS`] words.
    #[inline]
    pub unsafe fn call_words_stack(
        &self,
        function: &'static str,
        f: *const (),
        args: [u64; 6],
        stack: &[u64],
    ) -> Result<[u64; 2], Error> {
        let regs = CallRegs {
            ints: args,
            stack,
            ..CallRegs::default()
        };
        // SAFETY: forwarded contract.
        let r = unsafe { self.call_regs(function, f, &regs) }?;
        Ok([r.rax, r.rdx])
    }

    /// As [`Compartment::call`], with callbacks armed for this call (and only
    /// this call): pass each [`Callback`]'s [`Callback::stub`] among the
    /// arguments and the callback itself in `callbacks`. A callback C calls
    /// that is not in `callbacks` is refused.
    ///
    /// # Safety
    /// As for [`Compartment::call`].
    pub unsafe fn call_with_callbacks<A: GateArgs, R: GateReturn>(
        &self,
        function: &'static str,
        f: *const (),
        args: A,
        callbacks: &[&dyn ArmedCallback],
    ) -> Result<R, Error> {
        let mut slots = [0u32; 6];
        assert!(callbacks.len() <= 6, "at most six callbacks per call");
        for (s, c) in slots.iter_mut().zip(callbacks) {
            *s = c.slot_index();
        }
        let regs = CallRegs {
            ints: args.into_words(),
            callbacks: &slots[..callbacks.len()],
            ..CallRegs::default()
        };
        // SAFETY: forwarded contract.
        let r = unsafe { self.call_regs(function, f, &regs) }?;
        Ok(R::from_words(r.rax, r.rdx))
    }

    /// The general entry point: integer and SSE argument registers, stack
    /// arguments, callbacks to arm; returns rax, rdx, xmm0 and xmm1.
    ///
    /// # Safety
    /// `f` must be a C-ABI function whose parameters are passed exactly in
    /// these registers and stack words (System V classification: integers
    /// and pointers in `ints` in order, `f32`/`f64` in `sse` in order, what
    /// does not fit in `stack` in parameter order), and whose return is read
    /// from the matching register. Memory safety of what the function does
    /// is what the backend provides.
    ///
    /// # Panics
    /// If `stack` holds more than [`MAX_STACK_ARGS`] words, `nsse` is over 8
    /// or more than six callbacks are given.
    #[inline]
    pub unsafe fn call_regs(
        &self,
        function: &'static str,
        f: *const (),
        regs: &CallRegs<'_>,
    ) -> Result<Returned, Error> {
        // SAFETY: forwarded contract.
        if let Some(r) = unsafe { self.before_gate(function, f, regs) } {
            return r;
        }
        if crate::guard::INSPECT.load(Ordering::Relaxed) {
            // First call into this object: scan it (crate::guard::inspect).
            crate::guard::inspect::check_function(f)?;
        }
        // SAFETY: forwarded contract; the function's object was inspected.
        unsafe { self.call_gated(function, f, regs) }
    }

    /// [`Compartment::call_regs`] for a call site that always calls the same
    /// function `f` (a `#[cofferdam::sandbox]` wrapper): whether `f`'s
    /// object passed inspection is remembered in the call site's `once`,
    /// so later calls pay one relaxed load for it instead of a search of
    /// the inspected objects.
    ///
    /// # Safety
    /// As for [`Compartment::call_regs`]; and `once` belongs to this call
    /// site and is used with no other function than `f`.
    #[doc(hidden)]
    #[inline]
    pub unsafe fn call_regs_once(
        &self,
        function: &'static str,
        f: *const (),
        regs: &CallRegs<'_>,
        once: &InspectedOnce,
    ) -> Result<Returned, Error> {
        // SAFETY: forwarded contract.
        if let Some(r) = unsafe { self.before_gate(function, f, regs) } {
            return r;
        }
        if !once.0.load(Ordering::Relaxed) {
            once.inspect(f)?;
        }
        // SAFETY: forwarded contract; the function's object was inspected
        // (by this call site, once).
        unsafe { self.call_gated(function, f, regs) }
    }

    /// What every call checks before the gate, shared by
    /// [`Compartment::call_regs`] and [`Compartment::call_regs_once`]: the
    /// poisoned flag and the register limits; then the backends that do not
    /// use the gate (`process`, `none`) make the call here. `None`: on to
    /// the gate.
    ///
    /// # Safety
    /// As for [`Compartment::call_regs`].
    #[inline(always)]
    unsafe fn before_gate(
        &self,
        function: &'static str,
        f: *const (),
        regs: &CallRegs<'_>,
    ) -> Option<Result<Returned, Error>> {
        if self.is_poisoned() {
            return Some(Err(self.poisoned()));
        }
        assert!(regs.nsse <= 8, "at most eight SSE argument registers");
        assert!(regs.callbacks.len() <= 6, "at most six callbacks per call");
        assert!(
            regs.stack.len() <= crate::gate::MAX_STACK_ARGS,
            "the gate carries at most {} stack arguments",
            crate::gate::MAX_STACK_ARGS
        );
        if let Some(p) = &self.inner.process {
            return Some(self.call_process(p, function, f, regs));
        }
        if self.inner.backend == Backend::None {
            // SAFETY: forwarded contract.
            return Some(Ok(unsafe { call_direct(f, regs) }));
        }
        None
    }

    #[cold]
    #[inline(never)]
    fn poisoned(&self) -> Error {
        Error::Poisoned {
            compartment: self.inner.name.clone(),
        }
    }

    /// The gate call itself, after the compartment's checks.
    ///
    /// # Safety
    /// As for [`Compartment::call_regs`]; the backend is not `none` and `f`
    /// passed inspection where inspection is on.
    #[inline(always)]
    unsafe fn call_gated(
        &self,
        function: &'static str,
        f: *const (),
        regs: &CallRegs<'_>,
    ) -> Result<Returned, Error> {
        let mut frame = GateFrame::new(f as usize, regs.ints, regs.stack);
        if regs.nsse != 0 {
            frame.set_sse(&regs.sse[..regs.nsse]);
        }
        // Foreign code's `malloc` during the call: this compartment's heap.
        let prev_heap = crate::heap::enter(self.inner.heap_base.load(Ordering::Relaxed));
        // SAFETY: the runtime is configured (Compartment::new ran it); the
        // frame and `stack` outlive the call; the function's contract is the
        // caller's.
        let returned = unsafe { gate::call(&mut frame, regs.callbacks) };
        crate::heap::leave(prev_heap);
        let returned = returned.map_err(|reason| Error::Unavailable { reason })?;
        if returned && frame.callback_error.is_none() {
            Ok(Returned {
                rax: frame.ret[0],
                rdx: frame.ret[1],
                xmm0: frame.fret[0],
                xmm1: frame.fret[1],
            })
        } else {
            Err(self.failed(function, &mut frame, returned))
        }
    }

    /// A call on the process backend; a fault or timeout poisons.
    #[inline(never)]
    fn call_process(
        &self,
        p: &backend::process::Engine,
        function: &'static str,
        f: *const (),
        regs: &CallRegs<'_>,
    ) -> Result<Returned, Error> {
        let r = p.call(&self.inner.name, function, f, regs);
        match &r {
            Err(Error::Fault(fault)) => {
                // As in `failed`: the fault first, then the flag.
                *self
                    .inner
                    .last_fault
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(fault.clone());
                self.inner.poisoned.store(true, Ordering::Release);
            }
            Err(Error::Timeout { .. }) => self.inner.poisoned.store(true, Ordering::Release),
            _ => {}
        }
        r
    }

    /// The error of a call that faulted (`returned` false) or whose callback
    /// failed.
    #[cold]
    #[inline(never)]
    fn failed(&self, function: &'static str, frame: &mut GateFrame, returned: bool) -> Error {
        if returned {
            let detail = frame.callback_error.take().unwrap_or_default();
            return Error::Callback { function, detail };
        }
        // SAFETY: status 1 is only set by the landing pad, which the fault
        // handler reaches after writing the record.
        let record = unsafe { frame.fault.assume_init_ref() };
        let fault = self.fault(function, record);
        self.poison(fault.clone());
        // Heaps this thread was inside when the fault came (foreign code
        // faulted in the allocator, maybe in another compartment's heap or
        // Cofferdam's own) are quarantined too, and their owners told.
        for h in crate::heap::heaps_held_by_this_thread() {
            h.report_fault(function, record);
        }
        Error::Fault(fault)
    }

    /// Copies `count` elements out of memory that foreign code pointed to
    /// (a returned string, a field of a foreign struct), safely: the copy is
    /// made by C's `memcpy` *through this compartment's gate* into a fresh
    /// foreign buffer, so a wild pointer faults inside the gate and comes
    /// back as [`Error::Fault`] (poisoning the compartment) instead of
    /// undefined behaviour; then the bytes are copied into Rust. A pointer
    /// into the protected heap is refused with [`Error::Invalid`] without
    /// being touched, whatever the backend.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
    /// let c = cofferdam::Compartment::new("reader")?;
    /// let buf = cofferdam::ForeignBuf::from_str_nul("hello")?;
    /// assert_eq!(c.read_foreign(buf.as_foreign_ptr(), 5)?, b"hello");
    /// assert!(c.read_foreign(cofferdam::ForeignPtr::<u8>::from_addr(8), 4).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_foreign<T: Pod>(&self, p: ForeignPtr<T>, count: usize) -> Result<Vec<T>, Error> {
        const FUNCTION: &str = "memcpy (Compartment::read_foreign)";
        let bytes = count
            .checked_mul(core::mem::size_of::<T>())
            .ok_or_else(|| Error::Invalid {
                function: FUNCTION,
                detail: format!(
                    "{count} elements of {} bytes overflow",
                    core::mem::size_of::<T>()
                ),
            })?;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let end = p.addr().checked_add(bytes).ok_or_else(|| Error::Invalid {
            function: FUNCTION,
            detail: format!("{:#x} + {bytes} bytes wraps around", p.addr()),
        })?;
        if crate::is_protected(p.addr(), bytes) {
            return Err(Error::Invalid {
                function: FUNCTION,
                detail: format!("{:#x}..{end:#x} touches protected memory", p.addr()),
            });
        }
        if bytes <= SCRATCH_MAX && self.inner.heap_base.load(Ordering::Relaxed) != 0 {
            if self.is_poisoned() {
                return Err(self.poisoned());
            }
            if let Ok(mut slot) = self.inner.scratch.try_lock() {
                if slot.as_ref().is_none_or(|s| s.len() < bytes) {
                    *slot = None;
                    *slot = Some(ForeignVec::zeroed_in(
                        self,
                        bytes.next_power_of_two().max(256),
                    )?);
                }
                let out = slot.as_ref().expect("made above");
                // SAFETY: as below; `out` holds at least `bytes` bytes.
                let _: *mut u8 = unsafe {
                    self.call(
                        FUNCTION,
                        libc::memcpy as *const (),
                        (out.as_foreign_ptr(), p.addr(), bytes),
                    )
                }?;
                return Ok(out.read_pod(count));
            }
        }
        let out = ForeignVec::<T>::zeroed(count)?;
        // SAFETY: memcpy(void *dst, const void *src, size_t n) -> void*:
        // `out` holds `bytes` bytes of foreign memory; the source is whatever
        // foreign code gave us: a bad one faults inside the gate and is
        // contained (or, on the `none` backend, behaves as C would).
        let _: *mut u8 = unsafe {
            self.call(
                FUNCTION,
                libc::memcpy as *const (),
                (out.as_foreign_ptr(), p.addr(), bytes),
            )
        }?;
        Ok(out.to_vec())
    }

    /// Copies a NUL-terminated string out of foreign memory, at most `max`
    /// bytes of it (without the NUL), through the gate like
    /// [`Compartment::read_foreign`]: `strnlen` and the copy both run as
    /// foreign code, so a wild pointer is [`Error::Fault`], never undefined
    /// behaviour.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
    /// let c = cofferdam::Compartment::new("strings")?;
    /// let s = cofferdam::ForeignBuf::from_str_nul("zlib 1.3")?;
    /// assert_eq!(c.read_foreign_cstr(s.as_foreign_ptr(), 64)?, b"zlib 1.3");
    /// assert_eq!(c.read_foreign_cstr(s.as_foreign_ptr(), 4)?, b"zlib");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// `p` may be a `ForeignPtr<u8>` or a `ForeignPtr<c_char>` (`i8`): what
    /// a `*const c_char` return of a `#[cofferdam::sandbox]` function
    /// becomes, so `c.read_foreign_cstr(zlibVersion()?, 64)` works as is.
    pub fn read_foreign_cstr<C: CChar>(
        &self,
        p: ForeignPtr<C>,
        max: usize,
    ) -> Result<Vec<u8>, Error> {
        let p = ForeignPtr::<u8>::from_addr(p.addr());
        if p.is_null() {
            return Err(Error::Invalid {
                function: "strnlen (Compartment::read_foreign_cstr)",
                detail: "null string".into(),
            });
        }
        if crate::is_protected(p.addr(), max.max(1)) {
            return Err(Error::Invalid {
                function: "strnlen (Compartment::read_foreign_cstr)",
                detail: format!(
                    "{:#x}..{:#x} touches protected memory",
                    p.addr(),
                    p.addr().wrapping_add(max)
                ),
            });
        }
        // SAFETY: strnlen(const char *s, size_t maxlen) -> size_t; it reads
        // at most `max` bytes of whatever `p` names, inside the gate.
        let n: usize = unsafe {
            self.call(
                "strnlen (Compartment::read_foreign_cstr)",
                libc::strnlen as *const (),
                (p, max),
            )
        }?;
        self.read_foreign(p, n.min(max))
    }

    #[cold]
    fn fault(&self, function: &'static str, r: &FaultRecord) -> Fault {
        let (kind, access, address, ip, pkey) = match *r {
            FaultRecord::Memory {
                signal,
                code,
                address,
                ip,
                err,
                pkey,
            } => {
                let kind = match (signal, code) {
                    (libc::SIGBUS, _) => FaultKind::Bus,
                    (_, crate::fault::SEGV_PKUERR) => FaultKind::ProtectionKey,
                    (_, SEGV_MAPERR) => FaultKind::Unmapped,
                    (_, SEGV_ACCERR) => FaultKind::AccessRights,
                    (_, c) => FaultKind::Other(c),
                };
                let access = if signal == libc::SIGBUS {
                    Access::Unknown
                } else if err & 0x10 != 0 {
                    Access::Execute
                } else if err & 0x2 != 0 {
                    Access::Write
                } else {
                    Access::Read
                };
                (
                    kind,
                    access,
                    address,
                    ip,
                    (pkey >= 0).then_some(pkey as u32),
                )
            }
            FaultRecord::Instruction { signal, code, ip } => {
                let kind = match signal {
                    libc::SIGFPE => FaultKind::Arithmetic { code },
                    libc::SIGILL => FaultKind::IllegalInstruction { code },
                    _ => FaultKind::Breakpoint,
                };
                (kind, Access::Execute, ip, ip, None)
            }
            FaultRecord::Sent { signal, ip } => {
                let kind = if signal == libc::SIGABRT {
                    FaultKind::Abort
                } else {
                    FaultKind::Signal { signal }
                };
                (kind, Access::Unknown, 0, ip, None)
            }
            FaultRecord::Syscall { nr, i386, arg0, ip } => {
                let name = crate::guard::syscall_name(nr, i386);
                let kind = if !i386 && nr == libc::SYS_exit_group as u32 {
                    FaultKind::Exit
                } else {
                    FaultKind::Syscall { nr, name }
                };
                (kind, Access::Unknown, arg0 as usize, ip, None)
            }
            FaultRecord::Integrity => (FaultKind::Integrity, Access::Unknown, 0, 0, None),
        };
        Fault {
            compartment: self.inner.name.clone(),
            function,
            kind,
            access,
            address,
            ip,
            pkey,
        }
    }
}

/// A compartment created at first use, for a `static`: what each
/// `#[cofferdam::sandbox]` block keeps its compartment in, and usable by
/// hand the same way.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
/// static ZLIB: cofferdam::LazyCompartment = cofferdam::LazyCompartment::new("zlib");
///
/// let c: &'static cofferdam::Compartment = ZLIB.get()?;
/// assert_eq!(c.name(), "zlib");
/// assert!(std::ptr::eq(c, ZLIB.get()?)); // created once
/// # Ok::<(), cofferdam::Error>(())
/// ```
///
/// A failed creation is not kept: [`LazyCompartment::get`] returns its
/// error, and the next `get` tries again (the environment may have changed,
/// e.g. [`crate::ProtectedAlloc`] installed, or a transient failure passed).
/// Once created, the compartment stays: a poisoned one is renewed in place
/// with [`Compartment::renew`], so `&'static` references to it stay valid.
#[derive(Debug)]
pub struct LazyCompartment {
    name: &'static str,
    /// `backend = ".."`, `timeout_ms = N`, `memory_limit = N` of the
    /// `sandbox` attribute.
    backend: Option<&'static str>,
    timeout_ms: Option<u64>,
    memory_limit: Option<u64>,
    cell: OnceLock<Compartment>,
    /// Serialises creation, so that racing first calls make one
    /// compartment.
    creating: Mutex<()>,
}

impl LazyCompartment {
    /// A compartment named `name`, not created yet.
    pub const fn new(name: &'static str) -> Self {
        Self::with_options(name, None, None, None)
    }

    /// A compartment named `name` with the options of
    /// [`Compartment::builder`]: a backend by name (`"process"`), a call
    /// timeout in milliseconds, a memory limit in bytes.
    pub const fn with_options(
        name: &'static str,
        backend: Option<&'static str>,
        timeout_ms: Option<u64>,
        memory_limit: Option<u64>,
    ) -> Self {
        LazyCompartment {
            name,
            backend,
            timeout_ms,
            memory_limit,
            cell: OnceLock::new(),
            creating: Mutex::new(()),
        }
    }

    /// The compartment, created now if it was not (see
    /// [`Compartment::new`] for the errors).
    #[inline]
    pub fn get(&self) -> Result<&Compartment, Error> {
        match self.cell.get() {
            Some(c) => Ok(c),
            None => self.create(),
        }
    }

    /// The compartment if it has been created, without creating it.
    pub fn get_if_created(&self) -> Option<&Compartment> {
        self.cell.get()
    }

    #[cold]
    #[inline(never)]
    fn create(&self) -> Result<&Compartment, Error> {
        let _one = self.creating.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = self.cell.get() {
            return Ok(c);
        }
        let mut b = Compartment::builder(self.name);
        if let Some(name) = self.backend {
            b = b.backend_named(name);
        }
        if let Some(ms) = self.timeout_ms {
            b = b.timeout(core::time::Duration::from_millis(ms));
        }
        if let Some(bytes) = self.memory_limit {
            b = b.memory_limit(bytes);
        }
        let c = b.build()?;
        Ok(self.cell.get_or_init(|| c))
    }
}

/// A library path as `dlopen` would find it: paths with a `/` as they are;
/// a bare name through `LD_LIBRARY_PATH` and the usual system directories.
fn resolve_library(p: &std::path::Path) -> std::path::PathBuf {
    if p.as_os_str().as_encoded_bytes().contains(&b'/') {
        return p.to_path_buf();
    }
    let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    for d in [
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib64",
        "/usr/lib64",
        "/lib",
        "/usr/lib",
        "/usr/local/lib",
    ] {
        dirs.push(d.into());
    }
    dirs.into_iter()
        .map(|d| d.join(p))
        .find(|c| c.is_file())
        .unwrap_or_else(|| p.to_path_buf())
}

/// `si_code`s of SIGSEGV (`<asm-generic/siginfo.h>`).
const SEGV_MAPERR: i32 = 1;
const SEGV_ACCERR: i32 = 2;

/// Whether one call site's function passed inspection
/// ([`Compartment::call_regs_once`]): one per `#[cofferdam::sandbox]`
/// wrapper, in a `static`.
#[doc(hidden)]
#[derive(Debug)]
pub struct InspectedOnce(AtomicBool);

impl InspectedOnce {
    /// Not inspected yet.
    pub const fn new() -> Self {
        InspectedOnce(AtomicBool::new(false))
    }

    /// The first call's inspection: the object holding `f` is scanned (or
    /// found scanned) and refused if unsafe. The flag is set only once it
    /// passed; the function's address never changes for a call site (it is
    /// the address of the block's own declaration), so a pass holds for
    /// every later call. Relaxed is enough: the flag publishes nothing
    /// else, and a thread that does not see it yet only inspects again.
    #[cold]
    #[inline(never)]
    fn inspect(&self, f: *const ()) -> Result<(), Error> {
        // INSPECT is final here: `Compartment::new` decided it (guard::ensure)
        // before this compartment existed.
        if crate::guard::INSPECT.load(Ordering::Relaxed) {
            crate::guard::inspect::check_function(f)?;
        }
        self.0.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl Default for InspectedOnce {
    fn default() -> Self {
        Self::new()
    }
}

/// The registers and stack words of one call ([`Compartment::call_regs`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct CallRegs<'s> {
    /// rdi, rsi, rdx, rcx, r8, r9.
    pub ints: [u64; 6],
    /// xmm0..xmm7 (low 8 bytes; an `f32` in the low 4).
    pub sse: [u64; 8],
    /// How many of `sse` carry arguments.
    pub nsse: usize,
    /// Arguments 7.. in parameter order (at most [`MAX_STACK_ARGS`]).
    pub stack: &'s [u64],
    /// Callback slots to arm for this call ([`Callback::slot`]).
    pub callbacks: &'s [u32],
}

/// The registers a foreign function returned in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Returned {
    /// rax.
    pub rax: u64,
    /// rdx.
    pub rdx: u64,
    /// xmm0 (low 8 bytes).
    pub xmm0: u64,
    /// xmm1 (low 8 bytes).
    pub xmm1: u64,
}

/// A callback that can be armed for a call (every [`Callback`]).
pub trait ArmedCallback {
    /// Its slot.
    fn slot_index(&self) -> u32;
}
impl<S: crate::callback::CallbackSig> ArmedCallback for Callback<'_, S> {
    fn slot_index(&self) -> u32 {
        self.slot()
    }
}

/// The `none` backend: a plain call (no stack switch, no PKRU, callbacks
/// not armed: the `none` backend protects nothing).
///
/// # Safety
/// As for [`Compartment::call_regs`].
#[inline]
unsafe fn call_direct(f: *const (), r: &CallRegs<'_>) -> Returned {
    let mut frame = GateFrame::new(f as usize, r.ints, r.stack);
    frame.set_sse(&r.sse[..r.nsse]);
    // SAFETY: forwarded contract; the frame outlives the call.
    unsafe { gate::call_direct(&mut frame) };
    Returned {
        rax: frame.ret[0],
        rdx: frame.ret[1],
        xmm0: frame.fret[0],
        xmm1: frame.fret[1],
    }
}

/// A value that travels in one integer register.
///
/// Every [`ForeignArg`] (integers, `bool`, `char`, `ForeignEnum`s) is one;
/// this low-level, `unsafe` entry point also takes raw pointers, which the
/// `sandbox` wrappers deliberately refuse.
pub trait GateArg {
    /// The register's content.
    fn into_word(self) -> u64;
}

impl<T: ForeignArg> GateArg for T {
    #[inline]
    fn into_word(self) -> u64 {
        ForeignArg::into_word(self)
    }
}
impl<T> GateArg for *const T {
    #[inline]
    fn into_word(self) -> u64 {
        self as usize as u64
    }
}
impl<T> GateArg for *mut T {
    #[inline]
    fn into_word(self) -> u64 {
        self as usize as u64
    }
}
impl<T> GateArg for ForeignPtr<T> {
    #[inline]
    fn into_word(self) -> u64 {
        self.addr() as u64
    }
}

/// Up to six [`GateArg`]s.
pub trait GateArgs {
    /// The six argument registers (unused ones are zero).
    fn into_words(self) -> [u64; 6];
}

impl GateArgs for () {
    #[inline]
    fn into_words(self) -> [u64; 6] {
        [0; 6]
    }
}

macro_rules! args_tuple {
    ($($name:ident : $idx:tt),+) => {
        impl<$($name: GateArg),+> GateArgs for ($($name,)+) {
            #[inline]
            fn into_words(self) -> [u64; 6] {
                let mut w = [0u64; 6];
                $( w[$idx] = self.$idx.into_word(); )+
                w
            }
        }
    };
}
args_tuple!(A: 0);
args_tuple!(A: 0, B: 1);
args_tuple!(A: 0, B: 1, C: 2);
args_tuple!(A: 0, B: 1, C: 2, D: 3);
args_tuple!(A: 0, B: 1, C: 2, D: 3, E: 4);
args_tuple!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5);

/// A return value carried in rax (and rdx).
pub trait GateReturn {
    /// Builds the value from the registers.
    fn from_words(rax: u64, rdx: u64) -> Self;
}

impl GateReturn for () {
    #[inline]
    fn from_words(_: u64, _: u64) -> Self {}
}

macro_rules! ret_int {
    ($($t:ty),*) => { $(
        impl GateReturn for $t {
            /// Only the low bits are defined by the ABI; they are kept.
            #[inline]
            fn from_words(rax: u64, _: u64) -> Self { rax as $t }
        }
    )* };
}
ret_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl<T> GateReturn for *mut T {
    #[inline]
    fn from_words(rax: u64, _: u64) -> Self {
        rax as usize as *mut T
    }
}
impl<T> GateReturn for *const T {
    #[inline]
    fn from_words(rax: u64, _: u64) -> Self {
        rax as usize as *const T
    }
}
impl<T> GateReturn for ForeignPtr<T> {
    #[inline]
    fn from_words(rax: u64, _: u64) -> Self {
        ForeignPtr::from_addr(rax as usize)
    }
}
