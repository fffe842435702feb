//! `ProtectedAlloc`: the global allocator whose memory carries key P.
//!
//! # Design
//!
//! The allocator is mimalloc, confined through its arena API: Cofferdam
//! reserves an address region (`PROT_NONE`, `MAP_NORESERVE`: no memory is
//! committed until mimalloc commits it with `mprotect`, which keeps the page's
//! key), tags the whole region with P using `pkey_mprotect`, and hands it to
//! mimalloc as an *exclusive* arena (`mi_manage_os_memory_ex`). Allocation goes
//! through a heap bound to that arena (`mi_heap_new_in_arena`); mimalloc never
//! falls back to OS memory for such a heap, so every block it returns lies in
//! the tagged region. mimalloc keeps its thread caches, frees from any thread,
//! and purges unused pages back to the OS (`MADV_DONTNEED`, after
//! `mi_option_purge_delay`, 10 ms by default).
//!
//! One reservation: at the first allocation Cofferdam reserves ONE large
//! range of address space (1 TiB, `PROT_NONE`, `MAP_NORESERVE`, at the fixed
//! hint `0x2000_0000_0000` so that child processes, whose loaders and heaps
//! work far from there, never map into it; falling back to the kernel's
//! choice and to smaller sizes under `ulimit -v`), and tags all of it with P.
//! Everything the allocator hands out is carved from it, so "protected
//! memory" is one address interval: the syscall guard (`crate::guard`) checks
//! `mprotect`/`munmap`/`madvise`/`mremap` arguments against it with one
//! comparison pair. Layout: the first 64 KiB hold Cofferdam's own protected
//! state (the guard's token), mimalloc regions grow upwards after it, direct
//! mappings are carved downwards from the top.
//!
//! Growth: a region is 8 GiB of address space (mimalloc's arenas top out
//! just below 16 GiB with their bookkeeping); when a heap's arena is
//! exhausted the allocator carves another, binds a new heap to it and makes
//! that the current heap. Blocks of older regions are still freed by
//! `mi_free`.
//!
//! Two kinds of request bypass mimalloc, because an exclusive arena cannot
//! serve them: alignment above 64 KiB, and sizes above 1 GiB. Those get an
//! extent of the reservation of their own (made read-write with `mprotect`,
//! which keeps the key); `dealloc` returns the memory to the OS
//! (`MADV_DONTNEED`), puts `PROT_NONE` back and keeps the extent for reuse.
//!
//! # Modes
//!
//! The mode is fixed at the first allocation, from the runtime's backend
//! (see [`crate::backend`]): `mpk` tags the region with P; `split` (no MPK
//! available) keeps the same region, untagged, so Rust's heap is at least
//! separate from C's `malloc`; `none` passes every call to the system
//! allocator, so that the unprotected baseline is an ordinary Rust program.
//!
//! # What is not in the region
//!
//! mimalloc's own bookkeeping outside the arenas (its per-thread heap
//! descriptors and the global page map) lives in ordinary memory. Foreign code
//! that finds and corrupts it can make a later Rust allocation misbehave; the
//! README lists this among the gaps.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};
use std::alloc::System;

use libmimalloc_sys as mi;

use crate::state::{self, Backend};
use crate::sys;

/// The global allocator whose memory foreign code cannot touch.
///
/// Opt in with one line:
///
/// ```no_run
/// #[global_allocator]
/// static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
/// ```
///
/// Every allocation then comes from a region tagged, at the first allocation,
/// with the protection key P that Cofferdam allocates for the process. While a
/// thread is inside a compartment's gate, P's rights are dropped, so foreign
/// code that reads or writes a Rust allocation faults instead.
///
/// Where the CPU or kernel has no protection keys it still allocates, from
/// the same (untagged) region; [`crate::info`] says that protection is off and
/// why.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProtectedAlloc;

/// Largest alignment served by mimalloc inside an exclusive arena.
const MI_MAX_ALIGN: usize = 64 * 1024;
/// Requests larger than this get a mapping of their own.
const DIRECT_THRESHOLD: usize = 1 << 30;
const _: () = assert!(DIRECT_THRESHOLD + (256 << 20) <= MIN_REGION);
/// mimalloc's natural alignment: below it, the unaligned entry points suffice.
const MI_NATURAL_ALIGN: usize = 16;
/// Address space of one region. mimalloc's arenas hold at most 16 GiB
/// including their bookkeeping (which for 16 GiB no longer fits the arena's
/// largest object), so regions are 8 GiB; more are added as needed.
const REGION_SIZE: usize = 8 << 30;
/// The smallest region worth trying when address space is limited: it
/// still holds the largest request mimalloc serves, plus its bookkeeping.
const MIN_REGION: usize = 2 << 30;
/// mimalloc needs arenas aligned to its slice size.
const ARENA_ALIGN: usize = 64 * 1024;
/// 128 regions of 8 GiB: 1 TiB of heap.
const MAX_REGIONS: usize = 128;

const MODE_UNINIT: u8 = 0;
const MODE_SYSTEM: u8 = 1;
const MODE_REGION: u8 = 2;
const MODE_BUSY: u8 = 3;

static MODE: AtomicU8 = AtomicU8::new(MODE_UNINIT);

/// The reserved regions, their heaps, and the key they carry.
struct Regions {
    grow_lock: AtomicBool,
    count: AtomicUsize,
    starts: [AtomicUsize; MAX_REGIONS],
    lens: [AtomicUsize; MAX_REGIONS],
    current: AtomicPtr<mi::mi_heap_t>,
    /// Bytes currently held by direct mappings (for `info`).
    direct_bytes: AtomicUsize,
}

static REGIONS: Regions = Regions {
    grow_lock: AtomicBool::new(false),
    count: AtomicUsize::new(0),
    starts: [const { AtomicUsize::new(0) }; MAX_REGIONS],
    lens: [const { AtomicUsize::new(0) }; MAX_REGIONS],
    current: AtomicPtr::new(ptr::null_mut()),
    direct_bytes: AtomicUsize::new(0),
};

/// Where the one reservation is tried first: far below the kernel's
/// top-down mmap area (0x7f..) and far above PIE executables and brk heaps
/// (0x55.., 0x56..), so that no other mapping (in this process or in a
/// child, which inherits the seccomp filter) lands there.
const RESERVATION_HINT: usize = 0x2000_0000_0000;
/// 1 TiB; smaller sizes are tried when address space is limited.
const RESERVATION_SIZE: usize = 1 << 40;
/// Cofferdam's own protected state at the start of the reservation.
const STATE_SIZE: usize = 64 * 1024;
/// Free extents of direct mappings kept for reuse.
const MAX_FREE_EXTENTS: usize = 64;

/// The one reservation and how it is carved.
struct Reservation {
    start: AtomicUsize,
    len: AtomicUsize,
    /// Next free byte for regions (grows up).
    bump: AtomicUsize,
    /// Lowest byte used by direct mappings (grows down).
    low: AtomicUsize,
    lock: AtomicBool,
    free_start: [AtomicUsize; MAX_FREE_EXTENTS],
    free_len: [AtomicUsize; MAX_FREE_EXTENTS],
}

static RESERVATION: Reservation = Reservation {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    bump: AtomicUsize::new(0),
    low: AtomicUsize::new(0),
    lock: AtomicBool::new(false),
    free_start: [const { AtomicUsize::new(0) }; MAX_FREE_EXTENTS],
    free_len: [const { AtomicUsize::new(0) }; MAX_FREE_EXTENTS],
};

struct ResLock;
fn res_lock() -> ResLock {
    while RESERVATION.lock.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    ResLock
}
impl Drop for ResLock {
    fn drop(&mut self) {
        RESERVATION.lock.store(false, Ordering::Release);
    }
}

/// The protected address interval `[start, start + len)`: everything the
/// allocator hands out lies in it. `None` before the first allocation or when
/// the system allocator is in use (backend `none`).
pub(crate) fn reservation() -> Option<(usize, usize)> {
    let len = RESERVATION.len.load(Ordering::Acquire);
    (len != 0).then(|| (RESERVATION.start.load(Ordering::Acquire), len))
}

/// Whether `[addr, end)` overlaps protected memory the allocator manages:
/// the reservation (everything it hands out is carved from it), or, without
/// one, its regions.
#[inline]
pub(crate) fn overlaps_protected(addr: usize, end: usize) -> bool {
    let len = RESERVATION.len.load(Ordering::Acquire);
    if len != 0 {
        let start = RESERVATION.start.load(Ordering::Relaxed);
        return addr < start + len && end > start;
    }
    is_protected_region(addr) || is_protected_region(end - 1)
}

/// Cofferdam's protected state area (64 KiB, read-write, carries P), or
/// `None` when there is no reservation.
pub(crate) fn state_area() -> Option<*mut u8> {
    reservation().map(|(s, _)| s as *mut u8)
}

/// Reserves the interval, tags it with P, opens the state area.
fn reserve() -> bool {
    let mut size = RESERVATION_SIZE;
    let base = loop {
        // Under an inherited guard the hint is the parent's protected range,
        // which the inherited filter watches: let the kernel choose.
        let hint = if sys::inherited_guard() {
            0
        } else {
            RESERVATION_HINT
        };
        let hinted = sys::map_anon_hint(hint, size, libc::PROT_NONE);
        match hinted {
            Ok(p) if (p as usize) % ARENA_ALIGN == 0 => break p,
            Ok(p) => {
                // SAFETY: the mapping just made; nothing uses it.
                unsafe { sys::unmap(p, size) };
            }
            Err(_) => {}
        }
        match sys::map_aligned(size, ARENA_ALIGN, libc::PROT_NONE) {
            Ok(p) => break p,
            Err(_) if size / 4 >= MIN_REGION + STATE_SIZE => size /= 4,
            Err(_) if size > MIN_REGION + STATE_SIZE => size = MIN_REGION + STATE_SIZE,
            Err(_) => return false,
        }
    };
    if let Some(key) = tag_key() {
        // SAFETY: the whole range is the mapping just made; nothing uses it.
        if unsafe { sys::pkey_mprotect(base.cast(), size, libc::PROT_NONE, key) }.is_err() {
            // SAFETY: as above.
            unsafe { sys::unmap(base, size) };
            return false;
        }
    }
    // SAFETY: the first STATE_SIZE bytes are ours; mprotect keeps the key.
    if unsafe { sys::mprotect(base.cast(), STATE_SIZE, libc::PROT_READ | libc::PROT_WRITE) }
        .is_err()
    {
        // SAFETY: as above.
        unsafe { sys::unmap(base, size) };
        return false;
    }
    let b = base as usize;
    RESERVATION.bump.store(b + STATE_SIZE, Ordering::Relaxed);
    RESERVATION.low.store(b + size, Ordering::Relaxed);
    RESERVATION.start.store(b, Ordering::Release);
    RESERVATION.len.store(size, Ordering::Release);
    true
}

/// Carves `len` bytes (a multiple of `align`, itself a power of two) for a
/// region from the bottom. Returns the start.
fn carve_region(len: usize, align: usize) -> Option<usize> {
    let _g = res_lock();
    let bump = RESERVATION.bump.load(Ordering::Relaxed);
    let start = bump.checked_add(align - 1)? & !(align - 1);
    let end = start.checked_add(len)?;
    if end > RESERVATION.low.load(Ordering::Relaxed) {
        return None;
    }
    RESERVATION.bump.store(end, Ordering::Relaxed);
    Some(start)
}

/// Carves `len` bytes aligned to `align` for a direct mapping: a free extent
/// first (first fit), else from the top.
fn carve_direct(len: usize, align: usize) -> Option<usize> {
    let _g = res_lock();
    for i in 0..MAX_FREE_EXTENTS {
        let (s, l) = (
            RESERVATION.free_start[i].load(Ordering::Relaxed),
            RESERVATION.free_len[i].load(Ordering::Relaxed),
        );
        if l == 0 {
            continue;
        }
        let Some(a) = s.checked_add(align - 1).map(|x| x & !(align - 1)) else {
            continue;
        };
        if a.checked_add(len).is_some_and(|e| e <= s + l) {
            // Take [a, a+len); keep the tail in this slot, and the head in a
            // free slot if there is one (else it is leaked address space).
            let tail = s + l - (a + len);
            RESERVATION.free_start[i].store(a + len, Ordering::Relaxed);
            RESERVATION.free_len[i].store(tail, Ordering::Relaxed);
            if a > s {
                put_free(a - s, s);
            }
            return Some(a);
        }
    }
    let low = RESERVATION.low.load(Ordering::Relaxed);
    let start = low.checked_sub(len)? & !(align - 1);
    if start < RESERVATION.bump.load(Ordering::Relaxed) {
        return None;
    }
    if low > start + len {
        put_free(low - (start + len), start + len);
    }
    RESERVATION.low.store(start, Ordering::Relaxed);
    Some(start)
}

/// Records a free extent (lock held by the caller).
fn put_free(len: usize, start: usize) {
    for i in 0..MAX_FREE_EXTENTS {
        if RESERVATION.free_len[i].load(Ordering::Relaxed) == 0 {
            RESERVATION.free_start[i].store(start, Ordering::Relaxed);
            RESERVATION.free_len[i].store(len, Ordering::Relaxed);
            return;
        }
    }
}

/// The key the regions are tagged with, if any.
fn tag_key() -> Option<u32> {
    state::runtime().pkey
}

/// Reserves a region, tags it, and registers it with mimalloc as an
/// exclusive arena with a heap of its own. Returns the heap. Must be called
/// with `grow_lock` held (or during initialisation).
fn add_region() -> Option<*mut mi::mi_heap_t> {
    let n = REGIONS.count.load(Ordering::Acquire);
    if n >= MAX_REGIONS {
        return None;
    }
    // Carve from the reservation; smaller regions when it is nearly full.
    // Every request that reaches mimalloc is at most DIRECT_THRESHOLD, which
    // even the smallest region holds.
    let mut size = REGION_SIZE;
    let base = loop {
        match carve_region(size, ARENA_ALIGN) {
            Some(p) => break p as *mut u8,
            None if size / 2 >= MIN_REGION => size /= 2,
            None => return None,
        }
    };
    let mut arena: mi::mi_arena_id_t = ptr::null_mut();
    // SAFETY: `base..base+size` is a fresh reservation owned by us from now
    // on, aligned to mimalloc's slice size; mimalloc commits it with mprotect
    // (which keeps the key) and decommits with MADV_DONTNEED.
    let ok = unsafe {
        mi::mi_manage_os_memory_ex(
            base.cast(),
            size,
            false, // not committed: PROT_NONE until mimalloc commits
            false, // not pinned: may be decommitted (returned to the OS)
            true,  // zero: fresh anonymous memory
            -1,    // any NUMA node
            true,  // exclusive: only heaps bound to it allocate here
            &mut arena,
        )
    };
    if !ok {
        // mimalloc refused it: the carved range stays reserved, unused.
        return None;
    }
    // SAFETY: `arena` is the id mimalloc just returned.
    let heap = unsafe { mi::mi_heap_new_in_arena(arena) };
    if heap.is_null() {
        return None;
    }
    REGIONS.starts[n].store(base as usize, Ordering::Release);
    REGIONS.lens[n].store(size, Ordering::Release);
    REGIONS.count.store(n + 1, Ordering::Release);
    REGIONS.current.store(heap, Ordering::Release);
    Some(heap)
}

/// Whether `addr` lies in one of the allocator's arena regions (the Rust
/// heap). For the question "may foreign code be pointed here?", use
/// [`crate::is_protected`], which covers every protected range.
pub fn is_protected_region(addr: usize) -> bool {
    let n = REGIONS.count.load(Ordering::Acquire);
    (0..n).any(|i| {
        let s = REGIONS.starts[i].load(Ordering::Acquire);
        addr >= s && addr - s < REGIONS.lens[i].load(Ordering::Acquire)
    })
}

/// Address space reserved by the allocator's regions, in bytes.
pub(crate) fn reserved_bytes() -> usize {
    let n = REGIONS.count.load(Ordering::Acquire);
    (0..n)
        .map(|i| REGIONS.lens[i].load(Ordering::Acquire))
        .sum()
}

/// Whether the allocator serves from its region (rather than the system).
pub(crate) fn serves_region() -> bool {
    MODE.load(Ordering::Acquire) == MODE_REGION
}

/// First allocation: decide the mode, create the first region.
#[cold]
fn init_mode() -> u8 {
    match MODE.compare_exchange(MODE_UNINIT, MODE_BUSY, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            let rt = state::runtime();
            let mode = if rt.backend == Backend::None {
                MODE_SYSTEM
            } else if reserve() && add_region().is_some() {
                MODE_REGION
            } else {
                sys::write_stderr(
                    b"cofferdam: cannot reserve the protected heap region; aborting\n",
                );
                std::process::abort();
            };
            MODE.store(mode, Ordering::Release);
            mode
        }
        Err(_) => loop {
            let m = MODE.load(Ordering::Acquire);
            if m != MODE_BUSY {
                return m;
            }
            core::hint::spin_loop();
        },
    }
}

#[inline]
fn mode() -> u8 {
    let m = MODE.load(Ordering::Acquire);
    if m == MODE_SYSTEM || m == MODE_REGION {
        m
    } else {
        init_mode()
    }
}

#[inline]
fn is_direct(layout: &Layout) -> bool {
    layout.align() > MI_MAX_ALIGN || layout.size() > DIRECT_THRESHOLD
}

fn page_round(size: usize) -> Option<usize> {
    let p = sys::page_size();
    size.checked_add(p - 1).map(|s| s & !(p - 1))
}

/// An extent of the reservation of its own for a huge or over-aligned
/// request.
#[cold]
fn direct_alloc(layout: Layout) -> *mut u8 {
    let Some(len) = page_round(layout.size()) else {
        return ptr::null_mut();
    };
    let align = layout.align().max(sys::page_size());
    let Some(p) = carve_direct(len, align) else {
        return ptr::null_mut();
    };
    // SAFETY: the extent is ours (just carved) and PROT_NONE; mprotect keeps
    // the key the reservation carries. Its pages are zero: fresh, or given
    // back with MADV_DONTNEED by direct_free.
    if unsafe { sys::mprotect(p as *mut c_void, len, libc::PROT_READ | libc::PROT_WRITE) }.is_err()
    {
        let _g = res_lock();
        put_free(len, p);
        return ptr::null_mut();
    }
    REGIONS.direct_bytes.fetch_add(len, Ordering::Relaxed);
    p as *mut u8
}

/// # Safety
/// `p` came from [`direct_alloc`] with this layout.
#[cold]
unsafe fn direct_free(p: *mut u8, layout: Layout) {
    let len = page_round(layout.size()).unwrap_or(0);
    REGIONS.direct_bytes.fetch_sub(len, Ordering::Relaxed);
    // SAFETY: the extent is exactly `p..p+len` (direct_alloc) and the caller
    // gives up the block: its memory goes back to the OS and the extent back
    // to PROT_NONE (the key stays), ready for reuse. A failure would leave
    // the memory committed but unused: harmless.
    unsafe {
        let _ = sys::madvise(p, len, libc::MADV_DONTNEED);
        let _ = sys::mprotect(p.cast(), len, libc::PROT_NONE);
    }
    let _g = res_lock();
    put_free(len, p as usize);
}

/// Bytes held in direct mappings.
pub(crate) fn direct_bytes() -> usize {
    REGIONS.direct_bytes.load(Ordering::Relaxed)
}

/// Allocates from the current heap; on exhaustion grows once and retries.
#[inline]
fn region_alloc(layout: Layout, zero: bool) -> *mut u8 {
    let heap = REGIONS.current.load(Ordering::Acquire);
    let p = mi_alloc(heap, layout, zero);
    if !p.is_null() {
        return p;
    }
    grow_and_alloc(heap, layout, zero)
}

#[inline]
fn mi_alloc(heap: *mut mi::mi_heap_t, layout: Layout, zero: bool) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    // SAFETY: `heap` is a live heap bound to one of our arenas (heaps are
    // never deleted); mimalloc's heap functions are thread-safe.
    unsafe {
        let p = match (zero, align <= MI_NATURAL_ALIGN) {
            (false, true) => mi::mi_heap_malloc(heap, size),
            (true, true) => mi::mi_heap_zalloc(heap, size),
            (false, false) => mi::mi_heap_malloc_aligned(heap, size, align),
            (true, false) => mi::mi_heap_zalloc_aligned(heap, size, align),
        };
        p.cast()
    }
}

#[cold]
fn grow_and_alloc(seen: *mut mi::mi_heap_t, layout: Layout, zero: bool) -> *mut u8 {
    while REGIONS.grow_lock.swap(true, Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // Another thread may have grown the heap while we waited.
    let current = REGIONS.current.load(Ordering::Acquire);
    let heap = if current != seen {
        Some(current)
    } else {
        add_region()
    };
    REGIONS.grow_lock.store(false, Ordering::Release);
    match heap {
        Some(h) => mi_alloc(h, layout, zero),
        None => ptr::null_mut(),
    }
}

// SAFETY: every method upholds GlobalAlloc's contract: blocks are at least
// `layout.size()` bytes, aligned to `layout.align()`, distinct while live;
// `dealloc`/`realloc` receive blocks this allocator returned with the same
// layout (the caller's contract), which is what routes them to the right
// path (system, mimalloc or direct mapping) since the mode never changes
// after the first allocation.
unsafe impl GlobalAlloc for ProtectedAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match mode() {
            // SAFETY: forwarded contract.
            MODE_SYSTEM => unsafe { System.alloc(layout) },
            _ if is_direct(&layout) => direct_alloc(layout),
            _ => region_alloc(layout, false),
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match mode() {
            // SAFETY: forwarded contract.
            MODE_SYSTEM => unsafe { System.alloc_zeroed(layout) },
            // Fresh mappings are zero-filled.
            _ if is_direct(&layout) => direct_alloc(layout),
            _ => region_alloc(layout, true),
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        match mode() {
            // SAFETY: forwarded contract.
            MODE_SYSTEM => unsafe { System.dealloc(p, layout) },
            // SAFETY: a direct layout means direct_alloc made it.
            _ if is_direct(&layout) => unsafe { direct_free(p, layout) },
            // SAFETY: mimalloc made it (region mode, not direct); mi_free
            // accepts blocks of any heap from any thread.
            _ => unsafe { mi::mi_free(p.cast::<c_void>()) },
        }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if mode() == MODE_SYSTEM {
            // SAFETY: forwarded contract.
            return unsafe { System.realloc(p, layout, new_size) };
        }
        // SAFETY: the caller guarantees `new_size`, rounded up to the
        // alignment, does not overflow isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if is_direct(&layout) || is_direct(&new_layout) {
            // Different paths: move by hand.
            // SAFETY: new_layout is valid and non-zero (caller's contract).
            let q = unsafe { self.alloc(new_layout) };
            if !q.is_null() {
                // SAFETY: both blocks are live and at least min(old, new) long;
                // they are distinct allocations.
                unsafe {
                    ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                    self.dealloc(p, layout);
                }
            }
            return q;
        }
        let heap = REGIONS.current.load(Ordering::Acquire);
        // SAFETY: `p` is a live mimalloc block (region mode, not direct); the
        // realloc keeps its contents and alignment, possibly moving it into
        // `heap` (which is bound to one of our arenas).
        let q = unsafe {
            if layout.align() <= MI_NATURAL_ALIGN {
                mi::mi_heap_realloc(heap, p.cast(), new_size)
            } else {
                mi::mi_heap_realloc_aligned(heap, p.cast(), new_size, layout.align())
            }
        };
        if !q.is_null() {
            return q.cast();
        }
        // The current arena is full: grow, then move by hand.
        let q = grow_and_alloc(heap, new_layout, false);
        if !q.is_null() {
            // SAFETY: as in the direct case above.
            unsafe {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                mi::mi_free(p.cast());
            }
        }
        q
    }
}
