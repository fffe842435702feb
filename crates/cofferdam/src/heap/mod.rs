//! C heaps: one per compartment, and one of Cofferdam's own.
//!
//! Foreign memory used to live in the C library's `malloc` heap, shared by
//! every compartment, by every `ForeignBox`/`ForeignVec` and by the program's
//! ungated C code: one overflow in one library corrupted glibc's metadata and
//! the *next* `free`, anywhere in the program, aborted it. Here each
//! compartment gets a heap of its own, a region whose whole allocator state
//! lives inside it, with `PROT_NONE` gaps around it.
//!
//! # Layout
//!
//! At the first heap, one range of address space is reserved
//! (`PROT_NONE`, `MAP_NORESERVE`): [`MAX_HEAPS`] slots of [`STRIDE`] bytes.
//! Slot `i` holds heap `i`: a [`GAP`] of `PROT_NONE` first, then [`SPAN`]
//! bytes made read-write (no memory is committed until touched), then the
//! next slot's gap. A linear overflow runs off the end of its heap into a
//! gap and faults; it never reaches another heap. Finding the heap that owns
//! an address is one subtraction and one division.
//!
//! # The allocator
//!
//! TLSF (the `rlsf` crate): its control block (free-list heads and bitmaps)
//! is placed at the start of the heap's own region, and block headers are
//! in-band, so **all of a heap's state is inside the heap**. A smashed heap
//! can corrupt nothing outside itself, and a heap is dropped by discarding
//! its region: no global allocator structure remembers it. mimalloc arenas
//! (what [`crate::ProtectedAlloc`] uses) were rejected for this: a heap bound
//! to an arena keeps its descriptor and per-thread page queues in
//! mimalloc's global memory, which mimalloc walks with the caller's rights
//! (at thread exit, when collecting), following page headers that live in
//! the (smashable) arena; and an arena cannot be unregistered (mimalloc
//! 3.3's `mi_arena_unload` is not built), so a quarantined heap could
//! never be returned to the OS.
//!
//! A spin lock in the heap's header serialises its users; its owner word is
//! a per-thread token, so that after a fault Cofferdam can tell which heaps
//! the faulting thread was inside (those are quarantined too).
//!
//! # Who runs the allocator, with which rights
//!
//! The allocator's code runs **only without P's rights**: foreign code's
//! `malloc` and `free` (the interposed symbols, `interpose.rs`) run it as
//! foreign code, and trusted code (a `ForeignBox` made or dropped, `free`
//! called by ungated code) runs it *through the gate* ([`gated`]), on the
//! thread's foreign stack with P denied. So corrupted metadata can at worst
//! make the allocator write where foreign code could write anyway; a write
//! it is steered into Rust memory faults, and the fault is contained:
//! the heap is quarantined and its compartment poisoned.
//!
//! # Quarantine
//!
//! A heap is quarantined when its compartment is poisoned, when an
//! operation on it faults, or when a fault ends a call on a thread that was
//! inside its lock. From then on trusted code never runs its allocator
//! again: drops and frees of its blocks do nothing, allocations in it fail,
//! and foreign code that calls `free` on one of its blocks is ignored. Once
//! its compartment and every `ForeignBox`/`ForeignVec` made in it are gone
//! (the last `Arc<Heap>`), its region is discarded (replaced by a fresh
//! mapping of zero pages: the memory goes back to the OS, the address range
//! stays reserved so that nothing else is mapped into a range foreign code
//! or glibc may still point at, and such pointers find zeros) and its slot
//! is reused, after every other free slot. A heap that is healthy when
//! its compartment goes is discarded the same way if no block is live in
//! it, and otherwise kept for the C code that may still hold its blocks.
//!
//! # What foreign code can change
//!
//! Everything here that foreign code reads is also writable by foreign code
//! of every compartment on `mpk` (they share key 0: per-compartment keys are
//! not implemented, see `docs/heaps.md`): heap headers, the thread's
//! current-heap word, the foreign-side copy of the slot registry. Changing
//! them only changes which foreign memory the allocator (running without
//! rights) works on. Trusted code decides from its own state: the
//! `Arc<Heap>` a `ForeignBox` holds, the [`Heap`] table and the slot
//! registry in Rust statics (tagged with P on `mpk`), and PKRU.
//!
//! # What the foreign side may read
//!
//! On `mpk` Rust's statics and thread-locals carry P (`crate::statics`), so
//! nothing that runs without P's rights (the interposed `malloc` called by
//! foreign code, and the heap operations [`op_alloc`] & co.) reads them.
//! What those need lives in C (`c/heapword.c`, outside the tagged pages):
//! the per-thread current-heap word, and a copy of the slot registry (base,
//! slot count, slot states). They also read the gate's configuration page
//! (untagged, read-only) and PKRU.

mod interpose;

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::backend::{self, Backend};
use crate::gate::{self, FaultRecord, GateFrame};
use crate::sys;

/// Bytes of address space of one heap (its largest allocation is a little
/// less).
pub(crate) const SPAN: usize = 1 << 30;
/// `PROT_NONE` bytes before each heap (and so after the previous one).
pub(crate) const GAP: usize = 2 << 20;
/// One slot: a gap and a heap.
pub(crate) const STRIDE: usize = GAP + SPAN;
/// Heaps that can exist at once (compartments, renewed generations still
/// referenced, Cofferdam's own). The C registry holds this many states.
pub(crate) const MAX_HEAPS: usize = 1024;
/// Every block is aligned at least this much: TLSF's granularity, so that
/// one `deallocate` alignment serves every block whatever it was allocated
/// with (blocks aligned to the granularity or more all keep their header
/// pointer in the same place).
const MIN_ALIGN: usize = rlsf::GRANULARITY;

/// The TLSF control block: first-level classes up to `32 << 26` bytes.
type Pool = rlsf::Tlsf<'static, u32, u32, 26, 32>;

/// The start of each heap's region (foreign memory).
#[repr(C)]
struct Header {
    /// 0 when free, else the token of the thread inside.
    lock: AtomicUsize,
    /// Blocks allocated and not yet freed (as foreign memory says).
    live: usize,
    pool: Pool,
}

/// Where the pool's memory starts, from the heap's base.
const POOL_OFFSET: usize = (core::mem::size_of::<Header>() + 4095) & !4095;

const FREE: u8 = 0;
const LIVE: u8 = 1;
const QUARANTINED: u8 = 2;

extern "C" {
    // c/heapword.c: the foreign side's view (see the module docs).
    fn cofferdam_heap_current() -> usize;
    fn cofferdam_heap_swap(v: usize) -> usize;
    fn cofferdam_heap_token() -> usize;
    static mut cofferdam_heap_base: usize;
    static mut cofferdam_heap_slots: usize;
    static mut cofferdam_heap_states: [u8; MAX_HEAPS];
}

/// The reservation (written once, when the first heap is made): trusted
/// code's copy.
static BASE: AtomicUsize = AtomicUsize::new(0);
static SLOTS: AtomicUsize = AtomicUsize::new(0);

/// The current-heap word: the base of the heap foreign code running on
/// this thread allocates from, or 0.
#[inline(always)]
fn current() -> usize {
    // SAFETY: reads this thread's C thread-local; no arguments.
    unsafe { cofferdam_heap_current() }
}

/// This thread's token for heap locks (never 0).
#[inline]
fn token() -> usize {
    // SAFETY: the address of this thread's C thread-local.
    unsafe { cofferdam_heap_token() }
}

/// Sets this thread's current heap for a gate call; returns the previous
/// value, for [`leave`].
#[inline]
pub(crate) fn enter(base: usize) -> usize {
    // SAFETY: writes this thread's C thread-local.
    unsafe { cofferdam_heap_swap(base) }
}

/// Restores the current heap after a gate call.
#[inline]
pub(crate) fn leave(prev: usize) {
    // SAFETY: as in `enter`.
    unsafe { cofferdam_heap_swap(prev) };
}

/// The slot of heap memory `p` (inside a heap's span) by trusted code's
/// registry, if any.
#[inline]
fn slot_of(p: usize) -> Option<usize> {
    slot_in(
        p,
        BASE.load(Ordering::Acquire),
        SLOTS.load(Ordering::Acquire),
    )
}

#[inline(always)]
fn slot_in(p: usize, base: usize, slots: usize) -> Option<usize> {
    if base == 0 {
        return None;
    }
    let off = p.wrapping_sub(base);
    let i = off / STRIDE;
    (i < slots && off % STRIDE >= GAP).then_some(i)
}

/// The slot of `p` by the foreign side's registry (the C copy), and that
/// slot's heap base.
#[inline(always)]
fn foreign_slot_of(p: usize) -> Option<(usize, usize)> {
    // SAFETY: plain reads of C globals (the registry copy), whatever
    // foreign code wrote there.
    let (base, slots) = unsafe {
        (
            ptr::addr_of!(cofferdam_heap_base).read_volatile(),
            ptr::addr_of!(cofferdam_heap_slots)
                .read_volatile()
                .min(MAX_HEAPS),
        )
    };
    slot_in(p, base, slots).map(|i| (i, base + i * STRIDE + GAP))
}

/// Slot `i`'s state as the foreign side sees it.
#[inline(always)]
fn foreign_state(i: usize) -> u8 {
    if i >= MAX_HEAPS {
        return FREE;
    }
    // SAFETY: `i` is in bounds; a read of a C global.
    unsafe {
        ptr::addr_of!(cofferdam_heap_states)
            .cast::<u8>()
            .add(i)
            .read_volatile()
    }
}

#[inline]
fn base_of(i: usize) -> usize {
    BASE.load(Ordering::Acquire) + i * STRIDE + GAP
}

/// Slot states as trusted code keeps them (under [`TABLE`]'s lock).
static STATES: Mutex<[u8; MAX_HEAPS]> = Mutex::new([FREE; MAX_HEAPS]);

/// Changes slot `i`'s state, in trusted code's copy and the foreign side's.
fn set_state(i: usize, v: u8) {
    let mut s = STATES.lock().unwrap_or_else(PoisonError::into_inner);
    s[i] = v;
    // SAFETY: `i < MAX_HEAPS`; a store into a C global.
    unsafe {
        ptr::addr_of_mut!(cofferdam_heap_states)
            .cast::<u8>()
            .add(i)
            .write_volatile(v)
    };
}

fn state(i: usize) -> u8 {
    STATES.lock().unwrap_or_else(PoisonError::into_inner)[i]
}

/// One heap, as trusted code knows it (protected memory).
pub(crate) struct Heap {
    index: usize,
    base: usize,
    quarantined: AtomicBool,
    /// Told when an operation on this heap faults (its compartment).
    owner: Mutex<Option<Weak<dyn HeapOwner>>>,
}

/// Whoever a heap belongs to, told when an operation on it faults.
pub(crate) trait HeapOwner: Send + Sync {
    /// The heap `heap` (quarantined already) faulted in `function`.
    fn heap_faulted(self: Arc<Self>, heap: &Heap, function: &'static str, record: &FaultRecord);
}

impl core::fmt::Debug for Heap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Heap")
            .field("index", &self.index)
            .field("base", &format_args!("{:#x}", self.base))
            .field("quarantined", &self.is_quarantined())
            .finish()
    }
}

/// Live heaps by slot (trusted: for adopting foreign blocks and for the
/// fault-time lock scan).
static TABLE: Mutex<Vec<Weak<Heap>>> = Mutex::new(Vec::new());
/// Healthy heaps whose compartment is gone while blocks were still live in
/// them: kept for the C code that may free them later.
static ORPHANS: Mutex<Vec<Arc<Heap>>> = Mutex::new(Vec::new());
/// Cofferdam's own heap (compartment-less foreign memory).
static OWN: Mutex<Option<Arc<Heap>>> = Mutex::new(None);

/// Where the search for a free slot starts (under [`TABLE`]'s lock).
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Why a heap could not be made.
pub(crate) const NO_HEAP: &str =
    "no compartment heap available (all slots in use, or the address space is exhausted)";

/// Reserves the slots (once; under [`TABLE`]'s lock).
fn reserve() -> bool {
    if BASE.load(Ordering::Acquire) != 0 {
        return true;
    }
    let mut slots = MAX_HEAPS;
    let base = loop {
        match sys::map_anon(slots * STRIDE + GAP, libc::PROT_NONE) {
            Ok(p) => break p as usize,
            Err(_) if slots > 8 => slots /= 2,
            Err(_) => return false,
        }
    };
    // SAFETY: stores into C globals (the foreign side's copy), before any
    // heap exists.
    unsafe {
        ptr::addr_of_mut!(cofferdam_heap_slots).write_volatile(slots);
        ptr::addr_of_mut!(cofferdam_heap_base).write_volatile(base);
    }
    SLOTS.store(slots, Ordering::Release);
    BASE.store(base, Ordering::Release);
    true
}

impl Heap {
    /// A fresh heap in a free slot.
    pub(crate) fn new() -> Result<Arc<Heap>, &'static str> {
        let mut table = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
        if !reserve() {
            return Err(NO_HEAP);
        }
        interpose::start_routing();
        let slots = SLOTS.load(Ordering::Acquire);
        // The next free slot after the last one handed out, cyclically: a
        // discarded heap's range stays dead zero pages for as long as
        // possible, so a stale pointer into it does not reach a new heap.
        let start = NEXT.load(Ordering::Relaxed);
        let index = (0..slots)
            .map(|k| (start + k) % slots)
            .find(|&i| state(i) == FREE && table.get(i).is_none_or(|w| w.strong_count() == 0))
            .ok_or(NO_HEAP)?;
        NEXT.store(index + 1, Ordering::Relaxed);
        let base = base_of(index);
        // SAFETY: the span is inside our reservation and belongs to this
        // free slot: no trusted code uses it; it is still PROT_NONE, or a
        // discarded heap's fresh zero pages (whatever stale foreign
        // pointers wrote into those since is foreign memory, and the
        // allocator's header and pool are written afresh below).
        unsafe { sys::trusted_mprotect(base, SPAN, libc::PROT_READ | libc::PROT_WRITE) }
            .map_err(|_| NO_HEAP)?;
        // SAFETY: the header's pages are ours, read-write and zero; the
        // pool's memory is the rest of the span, which stays mapped until
        // the heap is discarded (after every use of it).
        unsafe {
            let h = base as *mut Header;
            ptr::write(
                h,
                Header {
                    lock: AtomicUsize::new(0),
                    live: 0,
                    pool: Pool::new(),
                },
            );
            let pool =
                ptr::slice_from_raw_parts_mut((base + POOL_OFFSET) as *mut u8, SPAN - POOL_OFFSET);
            (*h).pool
                .insert_free_block_ptr(NonNull::new_unchecked(pool));
        }
        let heap = Arc::new(Heap {
            index,
            base,
            quarantined: AtomicBool::new(false),
            owner: Mutex::new(None),
        });
        if table.len() <= index {
            table.resize(index + 1, Weak::new());
        }
        table[index] = Arc::downgrade(&heap);
        set_state(index, LIVE);
        Ok(heap)
    }

    /// Cofferdam's own heap (made at first use, and again after it was
    /// quarantined): what compartment-less foreign memory comes from.
    pub(crate) fn own() -> Result<Arc<Heap>, &'static str> {
        let mut own = OWN.lock().unwrap_or_else(PoisonError::into_inner);
        match &*own {
            Some(h) if !h.is_quarantined() => Ok(h.clone()),
            _ => {
                let h = Heap::new()?;
                *own = Some(h.clone());
                Ok(h)
            }
        }
    }

    /// Tells the heap whom to report its faults to.
    pub(crate) fn set_owner(&self, owner: Weak<dyn HeapOwner>) {
        *self.owner.lock().unwrap_or_else(PoisonError::into_inner) = Some(owner);
    }

    /// The heap's base: what the current-heap word names.
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// Whether trusted code has given up on it.
    pub(crate) fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::Acquire)
    }

    /// Gives up on the heap: no trusted code runs its allocator again.
    pub(crate) fn quarantine(&self) {
        if !self.quarantined.swap(true, Ordering::AcqRel) {
            set_state(self.index, QUARANTINED);
        }
    }

    /// The heap's address range.
    pub(crate) fn range(&self) -> core::ops::Range<usize> {
        self.base..self.base + SPAN
    }

    /// Whether `p` lies in this heap.
    pub(crate) fn contains(&self, p: usize) -> bool {
        p.wrapping_sub(self.base) < SPAN
    }

    /// Allocates `size` bytes aligned to `align` (a power of two), zeroed,
    /// running the allocator through the gate. `None` if it is out of
    /// memory, quarantined, or the operation faulted (which quarantines it).
    pub(crate) fn alloc_zeroed(&self, size: usize, align: usize) -> Option<NonNull<u8>> {
        if self.is_quarantined() {
            return None;
        }
        let p = self.gated(
            "malloc (Cofferdam's foreign allocation)",
            op_alloc as *const () as usize,
            [self.base as u64, size as u64, align as u64, 1, 0, 0],
        )?;
        // A pointer outside the heap means its metadata lies.
        if p == 0 {
            return None;
        }
        let p = p as usize;
        let fits = self.contains(p) && p.checked_add(size).is_some_and(|e| e <= self.base + SPAN);
        if !fits || p & (align - 1) != 0 {
            self.quarantine();
            return None;
        }
        NonNull::new(p as *mut u8)
    }

    /// Frees a block of this heap (nothing if it is quarantined).
    ///
    /// # Safety
    /// `p` was allocated from this heap and is not used again.
    pub(crate) unsafe fn free(&self, p: *mut u8) {
        if self.is_quarantined() {
            return;
        }
        let _ = self.gated(
            "free (Cofferdam's foreign allocation)",
            op_free as *const () as usize,
            [self.base as u64, p as u64, 0, 0, 0, 0],
        );
    }

    /// Runs heap operation `f` without P's rights (through the gate; a
    /// direct call on the `none` backend, which has no heaps). A fault
    /// quarantines the heap and is reported to its owner.
    fn gated(&self, function: &'static str, f: usize, args: [u64; 6]) -> Option<u64> {
        match gated(f, args) {
            Ok(v) => Some(v),
            Err(record) => {
                self.quarantine();
                if let Some(r) = record {
                    self.report_fault(function, &r);
                }
                None
            }
        }
    }

    /// Quarantines the heap and tells its owner (if it has one and it is
    /// still there) that `function` faulted while working on it.
    pub(crate) fn report_fault(&self, function: &'static str, record: &FaultRecord) {
        self.quarantine();
        let owner = self
            .owner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(o) = owner.and_then(|w| w.upgrade()) {
            o.heap_faulted(self, function, record);
        }
    }

    /// Blocks live in the heap, as its header says (foreign memory: only
    /// used to decide whether to keep a healthy heap mapped).
    /// The read is fault-tolerant: foreign code may have unmapped the
    /// header (then the heap counts as in use, and is kept).
    fn live(&self) -> usize {
        read_word(self.base + core::mem::offset_of!(Header, live)).unwrap_or(usize::MAX)
    }

    /// Called when the compartment that owns it goes: a healthy heap with
    /// live blocks is kept (C code may still free them).
    pub(crate) fn retire(self: Arc<Self>) {
        if !self.is_quarantined() && self.live() != 0 {
            ORPHANS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(self);
        }
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        let healthy_in_use = !self.is_quarantined() && self.live() != 0;
        if healthy_in_use {
            // Reached only for a heap whose owner forgot to `retire` it;
            // keep it rather than pull memory from under C.
            return;
        }
        let _t = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
        set_state(self.index, QUARANTINED);
        // SAFETY: the span is this heap's, and no trusted user is left (the
        // last Arc is going). A fresh mapping of zero pages over it gives
        // its memory back and keeps the range reserved: unmapping it
        // instead would let the next mmap of the process land where foreign
        // code may still hold pointers, and glibc itself may hold one: a
        // stream foreign code `fopen`ed inside a gate is a block of this
        // heap linked into glibc's list of streams, which glibc walks at
        // exit, reading each stream's link and writing its mode
        // (`_IO_unbuffer_all`). A zeroed stream ends the walk; a read-only
        // or PROT_NONE page would kill the program at exit.
        let ok = unsafe { sys::release_keep_reserved(self.base, SPAN) }.is_ok();
        if ok {
            set_state(self.index, FREE);
        }
    }
}

/// Heaps whose lock the current thread holds: after a fault that ended a
/// gate call, those were being worked on when it happened, and are
/// quarantined (returned so that their owners can be told).
pub(crate) fn heaps_held_by_this_thread() -> Vec<Arc<Heap>> {
    let t = token();
    // Upgraded without the table's lock: dropping the last reference locks
    // it again.
    let weak: Vec<Weak<Heap>> = TABLE.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut out = Vec::new();
    for h in weak.iter().filter_map(Weak::upgrade) {
        let held = read_word(h.base + core::mem::offset_of!(Header, lock)) == Some(t);
        if held && !h.is_quarantined() {
            h.quarantine();
            out.push(h);
        }
    }
    out
}

/// Whether slot `i` holds a heap trusted code still runs the allocator of
/// (one that exists and is not quarantined).
pub(crate) fn heap_is_live(i: usize) -> bool {
    let weak = TABLE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(i)
        .cloned();
    // Upgraded without the table's lock: dropping the last reference locks
    // it again.
    weak.and_then(|w| w.upgrade())
        .is_some_and(|h| !h.is_quarantined())
}

/// A word of foreign memory, read by trusted code without trusting that it
/// is mapped (`None` if it is not).
fn read_word(addr: usize) -> Option<usize> {
    crate::ForeignPtr::<usize>::from_addr(addr).read().ok()
}

/// The heap a foreign block `p` was allocated in, if it lies in one.
pub(crate) fn owner_of(p: usize) -> Option<Arc<Heap>> {
    let i = slot_of(p)?;
    let weak = TABLE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(i)?
        .clone();
    weak.upgrade().filter(|h| h.contains(p))
}

/// Runs `f(args)` without P's rights: through the gate on `mpk` and
/// `split` (on the thread's foreign stack, faults contained), directly on
/// `none`. `Err` if it faulted (with the record, or `None` if the gate was
/// not available on this thread).
pub(crate) fn gated(f: usize, args: [u64; 6]) -> Result<u64, Option<FaultRecord>> {
    let mut frame = GateFrame::new(f, args, &[]);
    if backend::runtime().backend == Backend::None {
        // SAFETY: `f` is one of this module's `extern "C"` operations,
        // which take six words and return one.
        unsafe { gate::call_direct(&mut frame) };
        return Ok(frame.ret[0]);
    }
    // SAFETY: the runtime is configured (a heap exists only after it
    // started); `f` is one of this module's operations, which touch only
    // heap memory (foreign) and their arguments; the frame outlives the
    // call.
    match unsafe { gate::call(&mut frame, &[]) } {
        Ok(true) => Ok(frame.ret[0]),
        // SAFETY: status 1: the fault handler wrote the record.
        Ok(false) => Err(Some(unsafe { *frame.fault.assume_init_ref() })),
        Err(_) => Err(None),
    }
}

/// Takes heap `base`'s lock; `None` (after giving up) if the heap is
/// quarantined while waiting.
///
/// # Safety
/// `base` is a heap's base (a mapped header), or foreign code's own guess,
/// in which case this runs without rights.
#[inline]
unsafe fn lock(base: usize) -> Option<&'static mut Header> {
    let h = base as *mut Header;
    let t = token();
    let mut spins = 0u32;
    // SAFETY: `h` is a mapped header (contract).
    while unsafe { &(*h).lock }
        .compare_exchange_weak(0, t, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        spins = spins.wrapping_add(1);
        if spins % 1024 == 0 {
            // The foreign side's registry: this runs without P's rights.
            if let Some((i, _)) = foreign_slot_of(base) {
                if foreign_state(i) != LIVE {
                    return None;
                }
            }
        }
        core::hint::spin_loop();
    }
    // SAFETY: the lock is ours until `unlock`.
    Some(unsafe { &mut *h })
}

#[inline]
fn unlock(h: &mut Header) {
    h.lock.store(0, Ordering::Release);
}

#[inline]
fn layout(size: usize, align: usize) -> Option<Layout> {
    Layout::from_size_align(size.max(1), align.max(MIN_ALIGN)).ok()
}

/// Allocates from heap `base`; 0 on failure. Zeroes the block if `zero`.
///
/// # Safety
/// `base` is a heap's base. Runs without P's rights (foreign code's
/// `malloc`, or through the gate).
pub(crate) unsafe extern "C" fn op_alloc(
    base: usize,
    size: usize,
    align: usize,
    zero: usize,
) -> usize {
    let Some(l) = layout(size, align) else {
        return 0;
    };
    // SAFETY: forwarded contract.
    let Some(h) = (unsafe { lock(base) }) else {
        return 0;
    };
    let p = h.pool.allocate(l);
    if p.is_some() {
        h.live = h.live.wrapping_add(1);
    }
    unlock(h);
    match p {
        Some(p) => {
            if zero != 0 {
                // SAFETY: a fresh block of at least `size` bytes.
                unsafe { ptr::write_bytes(p.as_ptr(), 0, size) };
            }
            p.as_ptr() as usize
        }
        None => 0,
    }
}

/// Frees block `p` of heap `base`.
///
/// # Safety
/// As for [`op_alloc`]; `p` came from that heap.
pub(crate) unsafe extern "C" fn op_free(base: usize, p: usize) -> usize {
    let Some(nn) = NonNull::new(p as *mut u8) else {
        return 0;
    };
    // SAFETY: forwarded contract.
    let Some(h) = (unsafe { lock(base) }) else {
        return 0;
    };
    // SAFETY: the block came from this pool (contract), allocated with
    // MIN_ALIGN or more, which all share one header placement.
    unsafe { h.pool.deallocate(nn, MIN_ALIGN) };
    h.live = h.live.wrapping_sub(1);
    unlock(h);
    0
}

/// Resizes block `p` of heap `base` to `size` bytes; 0 on failure (the
/// block is then unchanged).
///
/// # Safety
/// As for [`op_free`].
pub(crate) unsafe extern "C" fn op_realloc(base: usize, p: usize, size: usize) -> usize {
    let (Some(nn), Some(l)) = (NonNull::new(p as *mut u8), layout(size, MIN_ALIGN)) else {
        return 0;
    };
    // SAFETY: forwarded contract.
    let Some(h) = (unsafe { lock(base) }) else {
        return 0;
    };
    // SAFETY: as in op_free.
    let q = unsafe { h.pool.reallocate(nn, l) };
    unlock(h);
    q.map_or(0, |q| q.as_ptr() as usize)
}

/// The usable size of block `p`.
///
/// # Safety
/// `p` came from a heap. Runs without rights.
pub(crate) unsafe extern "C" fn op_usable(p: usize) -> usize {
    match NonNull::new(p as *mut u8) {
        // SAFETY: forwarded contract.
        Some(nn) => unsafe { Pool::allocation_usable_size(nn) },
        None => 0,
    }
}
