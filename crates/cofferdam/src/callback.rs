//! Callbacks: Rust functions that foreign code may call, through a reverse
//! gate.
//!
//! C gets the address of a small stub (one per slot, in `gate/asm.rs`), never
//! a Rust function. When C calls it, the stub's entry takes P's rights back,
//! checks the thread's state, switches to the Rust stack below the frame of
//! the gate call in progress, and calls `cofferdam_callback_dispatch`,
//! which runs the Rust function only if
//!
//! * the thread is inside the very gate call the [`Callback`] was passed to
//!   (it is *armed* for that call's id only: calling it later, from a
//!   different call, or after the outer call returned is refused), and
//! * it is that call's thread (a thread of C's own has no state, or another
//!   one: refused), and
//! * every argument is valid for its Rust type: a [`ForeignPtr`] must not
//!   point into protected memory (the Rust heap, any tagged Rust stack,
//!   Cofferdam's own tables), a `bool` must be 0 or 1.
//!
//! A refused call returns the callback's error value to C without running
//! Rust code, and counts in [`Callback::refusals`]. A Rust panic is caught
//! before it can unwind into C: C gets the error value and the outer call
//! returns [`Error::Callback`]. Rights are dropped again and C continues on
//! its own stack either way.
//!
//! ```
//! # #[global_allocator]
//! # static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
//! use cofferdam::{Callback, Compartment, ForeignPtr, ForeignVec};
//! use core::ffi::c_int;
//!
//! let libc = Compartment::new("libc")?;
//! let mut v = ForeignVec::<c_int>::from_slice(&[3, 1, 2])?;
//! let cmp = Callback::<fn(ForeignPtr<c_int>, ForeignPtr<c_int>) -> c_int>::new(|a, b| {
//!     // Reading through a pointer C passed is checked and fault-tolerant.
//!     let (a, b) = (a.read().unwrap_or(0), b.read().unwrap_or(0));
//!     a.cmp(&b) as c_int
//! })?;
//! // SAFETY: qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)).
//! let _: () = unsafe {
//!     libc.call_with_callbacks(
//!         "qsort",
//!         libc::qsort as *const (),
//!         (v.as_foreign_ptr(), v.len(), 4usize, cmp.stub()),
//!         &[&cmp],
//!     )?
//! };
//! assert_eq!(v.to_vec(), [1, 2, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::ffi::c_void;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::Error;
use crate::foreign::ForeignPtr;
use crate::gate::{self, config, thread::ThreadState};

/// How many callbacks can exist at once (one stub each).
pub const NSLOTS: usize = 256;
/// Bytes per slot (the asm indexes slots with `shl rax, 6`).
pub(crate) const SLOT_SIZE: usize = 64;

/// One callback slot, in the P-tagged control area. Offsets 16, 24 and 32
/// are used by the stub entry's refusal path.
#[repr(C, align(64))]
pub(crate) struct Slot {
    /// 0: the thread state the slot is armed for (0: not armed).
    owner: AtomicUsize,
    /// 8: the gate call it is armed for.
    call_id: AtomicU64,
    /// 16, 24: what C gets when the call is refused (rax, xmm0).
    pub(crate) error: u64,
    error_sse: u64,
    /// 32: refusals so far.
    pub(crate) refused: AtomicU64,
    /// 40: the erased Rust function (`*mut Erased`), 0 when free.
    invoke: AtomicUsize,
    /// 48: 1 while allocated; 52: 1 while the function runs.
    in_use: AtomicU32,
    busy: AtomicU32,
    _pad: u64,
}

/// What the stub entry saves on the Rust stack and hands to the dispatcher.
/// Layout shared with `asm.rs`.
#[repr(C)]
pub(crate) struct CbFrame {
    /// rdi, rsi, rdx, rcx, r8, r9 as C passed them.
    pub(crate) gpr: [u64; 6],
    /// xmm0..xmm7 (low 8 bytes).
    pub(crate) sse: [u64; 8],
    /// 112: C's stack pointer at the call (its return address there).
    pub(crate) foreign_rsp: usize,
    /// 120: the thread's state (checked by the entry).
    pub(crate) state: usize,
    pub(crate) old_top: usize,
    pub(crate) slot: u64,
    pub(crate) c_mxcsr: u32,
    pub(crate) c_fpucw: u16,
    _pad: u16,
    /// 152: rax, rdx, xmm0, xmm1 to return to C.
    pub(crate) ret: [u64; 4],
    _pad2: u64,
}

type Erased<'a> = dyn FnMut(&CbFrame) -> Result<[u64; 4], String> + 'a;

fn slot(i: usize) -> Option<&'static Slot> {
    let c = config::get();
    if i >= c.nslots || c.slot_base == 0 {
        return None;
    }
    // SAFETY: slot_base..+nslots*SLOT_SIZE is the mapped, zero-initialised
    // slot area; every field of Slot is valid when zero.
    Some(unsafe { &*((c.slot_base + i * SLOT_SIZE) as *const Slot) })
}

/// Arms slot `i` for call `call_id` on the thread whose state is `state`,
/// returning what it was armed for before (restored by [`restore`]).
pub(crate) fn arm(i: u32, state: usize, call_id: u64) -> (usize, u64) {
    match slot(i as usize) {
        Some(s) => {
            let o = s.owner.swap(state, Ordering::AcqRel);
            let c = s.call_id.swap(call_id, Ordering::AcqRel);
            (o, c)
        }
        None => (0, 0),
    }
}

/// Puts back what [`arm`] replaced.
pub(crate) fn restore(i: u32, owner: usize, call_id: u64) {
    if let Some(s) = slot(i as usize) {
        s.call_id.store(call_id, Ordering::Release);
        s.owner.store(owner, Ordering::Release);
    }
}

/// Called by the stub entry on the Rust stack with P's rights, for slot
/// `slot`, with C's registers in `f`; writes the result into `f.ret`.
pub(crate) extern "C" fn cofferdam_callback_dispatch(slot_index: u64, f: *mut CbFrame) {
    // SAFETY: the entry passes the CbFrame it built on the Rust stack.
    let f = unsafe { &mut *f };
    let Some(s) = slot(slot_index as usize) else {
        f.ret = [0; 4];
        return;
    };
    f.ret = [s.error, 0, s.error_sse, 0];
    let st = f.state as *mut ThreadState;
    // SAFETY: the entry checked that `state` is this thread's entry of the
    // table and that it has a call in progress.
    let frame = unsafe { (*st).current };
    // SAFETY: the innermost frame is live while its call runs.
    let call_id = unsafe { (*frame).call_id };
    let armed = s.in_use.load(Ordering::Acquire) == 1
        && s.owner.load(Ordering::Acquire) == f.state
        && s.call_id.load(Ordering::Acquire) == call_id;
    // Only the thread the slot is armed for gets past `armed`, so `busy` is
    // only ever touched by that thread: no atomic read-modify-write needed.
    if !armed || s.busy.load(Ordering::Relaxed) == 1 {
        s.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    s.busy.store(1, Ordering::Relaxed);
    let inv = s.invoke.load(Ordering::Acquire) as *mut Box<Erased<'static>>;
    // SAFETY: as above.
    unsafe { (*frame).cb_active += 1 };
    // SAFETY: `invoke` is set while the slot is in use, and the Callback that
    // owns it cannot be dropped while it runs (busy, and the Callback lives
    // in the frame that made the outer call, which is suspended below us).
    let r = catch_unwind(AssertUnwindSafe(|| unsafe { (**inv)(f) }));
    // SAFETY: as above.
    unsafe { (*frame).cb_active -= 1 };
    s.busy.store(0, Ordering::Relaxed);
    match r {
        Ok(Ok(words)) => f.ret = words,
        Ok(Err(why)) => {
            s.refused.fetch_add(1, Ordering::Relaxed);
            // SAFETY: as above.
            unsafe { (*frame).callback_error.get_or_insert(why) };
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".into());
            // SAFETY: as above.
            unsafe {
                (*frame)
                    .callback_error
                    .get_or_insert(format!("the callback panicked: {msg}"))
            };
        }
    }
}

/// Runs callback `slot_index` for a call on the `process` backend: foreign
/// code in the helper called that slot's stub while the call that armed
/// `armed` (the slots it passed) was in progress on this thread. The same
/// checks as [`cofferdam_callback_dispatch`]: the slot must be one of
/// `armed` (so only during the call that passed it: a stub kept and called
/// in a later call, or during a nested call that did not pass it, is
/// refused), allocated, not already running, and every argument valid for
/// its Rust type. Runs on the calling thread (the one waiting for the
/// helper), with a panic caught.
///
/// Returns the words for C (rax, rdx, xmm0, xmm1: the error value when
/// refused) and, when the callback failed (an invalid argument, a panic),
/// why: the call then returns [`Error::Callback`].
pub(crate) fn run_for_process(
    slot_index: u32,
    armed: &[u32],
    gpr: [u64; 6],
    sse: [u64; 8],
) -> ([u64; 4], Option<String>) {
    let Some(s) = slot(slot_index as usize) else {
        return ([0; 4], None);
    };
    let error = [s.error, 0, s.error_sse, 0];
    // `busy` is only touched by the thread that armed the slot (a Callback
    // is not Send): a plain load and store suffice, as in the gate's
    // dispatcher.
    if !armed.contains(&slot_index)
        || s.in_use.load(Ordering::Acquire) != 1
        || s.busy.load(Ordering::Relaxed) == 1
    {
        s.refused.fetch_add(1, Ordering::Relaxed);
        return (error, None);
    }
    let f = CbFrame {
        gpr,
        sse,
        foreign_rsp: 0,
        state: 0,
        old_top: 0,
        slot: slot_index as u64,
        c_mxcsr: 0,
        c_fpucw: 0,
        _pad: 0,
        ret: [0; 4],
        _pad2: 0,
    };
    s.busy.store(1, Ordering::Relaxed);
    let inv = s.invoke.load(Ordering::Acquire) as *mut Box<Erased<'static>>;
    // SAFETY: `invoke` is set while the slot is in use (checked above), and
    // the Callback that owns it cannot be dropped while it runs: it is armed
    // for the call in progress, which its owner made on this thread and
    // which is suspended below us (its `Drop` leaks the function when
    // `busy`).
    let r = catch_unwind(AssertUnwindSafe(|| unsafe { (**inv)(&f) }));
    s.busy.store(0, Ordering::Relaxed);
    match r {
        Ok(Ok(words)) => (words, None),
        Ok(Err(why)) => {
            s.refused.fetch_add(1, Ordering::Relaxed);
            (error, Some(why))
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".into());
            (error, Some(format!("the callback panicked: {msg}")))
        }
    }
}

/// What C gets from slot `i` when a call is refused: rax and xmm0.
pub(crate) fn error_words(i: u32) -> [u64; 2] {
    slot(i as usize).map_or([0; 2], |s| [s.error, s.error_sse])
}

/// Counts `n` refusals that happened elsewhere (in a helper process) on
/// slot `i`.
pub(crate) fn add_refusals(i: u32, n: u64) {
    if let Some(s) = slot(i as usize) {
        s.refused.fetch_add(n, Ordering::Relaxed);
    }
}

/// The address of slot `i`'s stub in this process.
pub(crate) fn stub_addr(i: u32) -> usize {
    stub_of(i).addr()
}

/// The register class of a callback parameter: an integer register.
#[derive(Debug)]
pub enum Int {}
/// The register class of a callback parameter: an SSE register.
#[derive(Debug)]
pub enum Sse {}

/// A value C passes to a callback, checked before Rust sees it.
pub trait CallbackArg: Sized {
    /// Passed in an SSE register (`f32`, `f64`) rather than an integer one.
    const SSE: bool = false;
    /// [`Int`] or [`Sse`], as `SSE` says: generated wrappers compare the
    /// classes of a callback's parameters with the C declaration's at
    /// compile time.
    type Class;
    /// Builds the value from its register, or says why it is invalid.
    fn from_word(w: u64) -> Result<Self, String>;
}

macro_rules! cb_int {
    ($($t:ty),*) => { $(
        impl CallbackArg for $t {
            type Class = Int;
            /// The low bits, as the ABI defines them.
            #[inline]
            fn from_word(w: u64) -> Result<Self, String> { Ok(w as $t) }
        }
    )* };
}
cb_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl CallbackArg for bool {
    type Class = Int;
    fn from_word(w: u64) -> Result<Self, String> {
        match w as u8 {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("{b} is not a bool")),
        }
    }
}
impl CallbackArg for f64 {
    const SSE: bool = true;
    type Class = Sse;
    fn from_word(w: u64) -> Result<Self, String> {
        Ok(f64::from_bits(w))
    }
}
impl CallbackArg for f32 {
    const SSE: bool = true;
    type Class = Sse;
    fn from_word(w: u64) -> Result<Self, String> {
        Ok(f32::from_bits(w as u32))
    }
}
impl<T> CallbackArg for ForeignPtr<T> {
    type Class = Int;
    /// Null, or an address whose `size_of::<T>()` bytes (at least one) are
    /// outside protected memory.
    fn from_word(w: u64) -> Result<Self, String> {
        let addr = w as usize;
        if addr != 0 && gate::thread::is_protected(addr, core::mem::size_of::<T>()) {
            return Err(format!("{addr:#x} points into protected Rust memory"));
        }
        Ok(ForeignPtr::from_addr(addr))
    }
}

/// A value a callback returns to C.
pub trait CallbackRet: Sized {
    /// Returned in xmm0 rather than rax.
    const SSE: bool = false;
    /// The register content.
    fn into_word(self) -> u64;
}
macro_rules! cb_ret_int {
    ($($t:ty),*) => { $(
        impl CallbackRet for $t {
            #[inline]
            fn into_word(self) -> u64 { self as u64 }
        }
    )* };
}
cb_ret_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);
impl CallbackRet for () {
    fn into_word(self) -> u64 {
        0
    }
}
impl CallbackRet for bool {
    fn into_word(self) -> u64 {
        self as u64
    }
}
impl CallbackRet for f64 {
    const SSE: bool = true;
    fn into_word(self) -> u64 {
        self.to_bits()
    }
}
impl CallbackRet for f32 {
    const SSE: bool = true;
    fn into_word(self) -> u64 {
        self.to_bits() as u64
    }
}
impl<T> CallbackRet for ForeignPtr<T> {
    fn into_word(self) -> u64 {
        self.addr() as u64
    }
}

fn ret_words<R: CallbackRet>(r: R) -> [u64; 4] {
    let w = r.into_word();
    if R::SSE {
        [0, 0, w, 0]
    } else {
        [w, 0, 0, 0]
    }
}

/// The signature of a callback, written as a Rust `fn` pointer type whose
/// parameters are [`CallbackArg`]s: `fn(ForeignPtr<c_int>, ForeignPtr<c_int>) -> c_int`.
/// At most six parameters.
pub trait CallbackSig: 'static {
    /// What the callback returns.
    type Ret: CallbackRet;
    /// How many parameters.
    const ARITY: usize;
    /// Which parameters travel in SSE registers.
    const SSE: [bool; 6];
    /// The parameters' register classes as a tuple (`(Int, Int)` for
    /// `fn(ForeignPtr<c_int>, ForeignPtr<c_int>) -> c_int`).
    type Shape;
}

/// A Rust function that foreign code may call during the gate calls it is
/// passed to. See the [module docs](self). Not `Send`: it is armed on the
/// thread that makes the call.
pub struct Callback<'a, S: CallbackSig> {
    slot: u32,
    _p: Marker<'a, S>,
}

/// Variance and auto traits of a [`Callback`]: covariant in `S`, borrows
/// for `'a`, neither `Send` nor `Sync`.
type Marker<'a, S> = PhantomData<(fn() -> S, &'a mut (), *const ())>;

impl<S: CallbackSig> core::fmt::Debug for Callback<'_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Callback")
            .field("slot", &self.slot)
            .field("refusals", &self.refusals())
            .finish()
    }
}

impl<'a, S: CallbackSig> Callback<'a, S> {
    fn install(error: S::Ret, f: Box<Erased<'a>>) -> Result<Self, Error> {
        // Start the runtime (the slot area) if nothing has yet.
        if let Some(reason) = crate::state::runtime().refused {
            return Err(Error::Unavailable { reason });
        }
        let c = config::get();
        for i in 0..c.nslots {
            let Some(s) = slot(i) else { break };
            if s.in_use
                .compare_exchange(0, 2, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                let words = ret_words(error);
                // SAFETY: slot i is ours (in_use 2: being set up); the slot
                // area is written only by trusted code.
                unsafe {
                    let p = s as *const Slot as *mut Slot;
                    (*p).error = words[0];
                    (*p).error_sse = words[2];
                }
                s.refused.store(0, Ordering::Relaxed);
                s.owner.store(0, Ordering::Relaxed);
                s.call_id.store(0, Ordering::Relaxed);
                // The lifetime is erased here and restored by `Drop`, which
                // frees the function before 'a ends.
                let boxed: Box<Box<Erased<'a>>> = Box::new(f);
                s.invoke
                    .store(Box::into_raw(boxed) as usize, Ordering::Release);
                s.in_use.store(1, Ordering::Release);
                return Ok(Callback {
                    slot: i as u32,
                    _p: PhantomData,
                });
            }
        }
        Err(Error::Unavailable {
            reason: "all 256 callback slots are in use",
        })
    }

    /// The address C is given: the slot's stub.
    pub fn stub(&self) -> ForeignPtr<c_void> {
        ForeignPtr::from_addr(
            gate::cofferdam_cb_stubs as *const () as usize + 16 * self.slot as usize,
        )
    }

    /// The slot, for arming (what `Compartment::call_regs` takes).
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// This callback as an argument of a `#[cofferdam::sandbox]` wrapper
    /// (for an `Option<..>` callback parameter: `Some(cb.as_arg())`).
    pub fn as_arg(&self) -> CallbackRef<'_, S::Shape> {
        CallbackRef {
            slot: self.slot,
            _p: PhantomData,
        }
    }

    /// How many calls were refused so far (not armed, wrong thread, invalid
    /// arguments, re-entered while running).
    pub fn refusals(&self) -> u64 {
        slot(self.slot as usize).map_or(0, |s| s.refused.load(Ordering::Relaxed))
    }
}

/// A borrowed [`Callback`], typed by its parameters' register classes only
/// (`Shape`): what generated wrappers take, so that a callback of another
/// shape does not compile and `None` needs no annotation.
pub struct CallbackRef<'a, Shape> {
    slot: u32,
    _p: RefMarker<'a, Shape>,
}

/// Borrows for `'a`; covariant in `Shape`.
type RefMarker<'a, Shape> = PhantomData<(&'a (), fn() -> Shape)>;

impl<Shape> Clone for CallbackRef<'_, Shape> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Shape> Copy for CallbackRef<'_, Shape> {}

impl<Shape> core::fmt::Debug for CallbackRef<'_, Shape> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CallbackRef")
            .field("slot", &self.slot)
            .finish()
    }
}

impl<Shape> CallbackRef<'_, Shape> {
    /// The stub address C is given.
    pub fn stub(self) -> ForeignPtr<c_void> {
        stub_of(self.slot)
    }
    /// The slot to arm.
    pub fn slot(self) -> u32 {
        self.slot
    }
}

impl<'a, S: CallbackSig> From<&'a Callback<'_, S>> for CallbackRef<'a, S::Shape> {
    fn from(c: &'a Callback<'_, S>) -> Self {
        c.as_arg()
    }
}

fn stub_of(slot: u32) -> ForeignPtr<c_void> {
    ForeignPtr::from_addr(gate::cofferdam_cb_stubs as *const () as usize + 16 * slot as usize)
}

impl<S: CallbackSig> Drop for Callback<'_, S> {
    fn drop(&mut self) {
        let Some(s) = slot(self.slot as usize) else {
            return;
        };
        s.owner.store(0, Ordering::Release);
        s.call_id.store(0, Ordering::Release);
        if s.busy.load(Ordering::Acquire) != 0 {
            // Dropped from inside its own run (through another callback):
            // leak the slot and the function rather than free them under it.
            return;
        }
        // SAFETY: the slot is still ours (in_use); trusted code only.
        unsafe {
            let q = s as *const Slot as *mut Slot;
            (*q).error = 0;
            (*q).error_sse = 0;
        }
        let p = s.invoke.swap(0, Ordering::AcqRel) as *mut Box<Erased<'static>>;
        if !p.is_null() {
            // SAFETY: set by `install` from Box::into_raw; swapped out once.
            drop(unsafe { Box::from_raw(p) });
        }
        s.in_use.store(0, Ordering::Release);
    }
}

/// A callback argument taken from the registers in order (integer and SSE
/// registers counted separately, as the System V ABI assigns them).
fn take<A: CallbackArg>(f: &CbFrame, gi: &mut usize, si: &mut usize) -> Result<A, String> {
    let w = if A::SSE {
        let w = f.sse[*si];
        *si += 1;
        w
    } else {
        let w = f.gpr[*gi];
        *gi += 1;
        w
    };
    A::from_word(w)
}

macro_rules! arity {
    ($n:expr; $($a:ident),*) => {
        impl<R: CallbackRet + 'static, $($a: CallbackArg + 'static),*> CallbackSig for fn($($a),*) -> R {
            type Ret = R;
            type Shape = ($(<$a as CallbackArg>::Class,)*);
            const ARITY: usize = $n;
            const SSE: [bool; 6] = {
                let mut s = [false; 6];
                let v: &[bool] = &[$($a::SSE),*];
                let mut i = 0;
                while i < v.len() {
                    s[i] = v[i];
                    i += 1;
                }
                s
            };
        }

        impl<'a, R: CallbackRet + 'static, $($a: CallbackArg + 'static),*> Callback<'a, fn($($a),*) -> R> {
            /// A callback running `f`; C gets `R::default()` when a call
            /// is refused.
            pub fn new<F: FnMut($($a),*) -> R + 'a>(f: F) -> Result<Self, Error>
            where
                R: Default,
            {
                Self::with_error(R::default(), f)
            }

            /// A callback running `f`; C gets `error` when a call is
            /// refused.
            #[allow(non_snake_case, unused_mut, unused_variables)]
            pub fn with_error<F: FnMut($($a),*) -> R + 'a>(error: R, mut f: F) -> Result<Self, Error> {
                let erased: Box<Erased<'a>> = Box::new(move |fr: &CbFrame| {
                    let (mut gi, mut si) = (0usize, 0usize);
                    $( let $a = take::<$a>(fr, &mut gi, &mut si)?; )*
                    Ok(ret_words(f($($a),*)))
                });
                Self::install(error, erased)
            }
        }
    };
}
arity!(0;);
arity!(1; A);
arity!(2; A, B);
arity!(3; A, B, C);
arity!(4; A, B, C, D);
arity!(5; A, B, C, D, E);
arity!(6; A, B, C, D, E, G);
