//! `malloc` and friends, defined in the executable: foreign code inside a
//! gate call allocates from its compartment's heap; everyone else gets the
//! C library's allocator, as before.
//!
//! Like `sigaction` (`crate::fault::signals`), these definitions take
//! precedence over glibc's for every caller that links against them: the C
//! code linked into the program (a statically linked library resolves
//! `malloc` to them at link time), glibc itself (its internal calls from
//! `strdup`, `fopen`, `qsort`, … go through its GOT, as glibc's manual
//! promises for replaced allocators), and shared libraries, because a
//! symbol that a linked shared object (libc) also defines is exported in
//! the executable's dynamic symbol table (checked by `tests/heaps.rs`).
//!
//! Which heap: the per-thread current-heap word (a C thread-local, see
//! `c/heapword.c`) that the compartment sets around a gate call, and only
//! while foreign code runs: on `mpk` PKRU decides (a thread whose PKRU
//! allows P is trusted code, e.g. a callback or a signal handler inside the
//! call, and gets glibc), on `split` the word alone. Foreign code that
//! rewrites the word allocates from another heap, which it could write
//! anyway.
//!
//! `free`, `realloc` and `malloc_usable_size` go by the address: a block in
//! a heap's span goes to that heap (wherever the call comes from: foreign
//! code runs the allocator directly, trusted code through the gate), any
//! other block to glibc. A block of a quarantined heap is left alone.
//! Foreign callers are told apart first (PKRU), and decided from the C copy
//! of the registry; trusted callers from Rust's own (module docs of
//! `crate::heap`).
//!
//! glibc's allocator is reached through its `__libc_*` entry points (no
//! `dlsym` on the hot path, and no recursion through `dlsym`'s own
//! allocations); only `malloc_usable_size` has none and is looked up with
//! `dlsym(RTLD_NEXT)`.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

use super::{
    base_of, current, foreign_slot_of, foreign_state, op_alloc, op_free, op_realloc, op_usable,
    slot_of, LIVE,
};
use crate::gate::{self, config};

extern "C" {
    fn __libc_malloc(n: usize) -> *mut c_void;
    fn __libc_calloc(n: usize, m: usize) -> *mut c_void;
    fn __libc_realloc(p: *mut c_void, n: usize) -> *mut c_void;
    fn __libc_free(p: *mut c_void);
    fn __libc_memalign(align: usize, n: usize) -> *mut c_void;
    fn __libc_valloc(n: usize) -> *mut c_void;
    fn __libc_pvalloc(n: usize) -> *mut c_void;
}

/// glibc's `malloc_usable_size`, once looked up (0: not yet): trusted
/// code's copy.
static LIBC_USABLE: AtomicUsize = AtomicUsize::new(0);

extern "C" {
    /// The same, for foreign callers (c/heapword.c: Rust statics carry P).
    static mut cofferdam_libc_usable: usize;
}

/// Called when the first heap is made (trusted code, outside any gate).
pub(super) fn start_routing() {
    libc_usable();
}

fn libc_usable() -> usize {
    let f = LIBC_USABLE.load(Ordering::Acquire);
    if f != 0 {
        return f;
    }
    // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT from the
    // executable finds the C library's definition.
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"malloc_usable_size".as_ptr()) } as usize;
    // SAFETY: a store into a C global.
    unsafe { core::ptr::addr_of_mut!(cofferdam_libc_usable).write_volatile(f) };
    LIBC_USABLE.store(f, Ordering::Release);
    f
}

/// Whether foreign code is running on this thread (see the module docs).
#[inline(always)]
fn running_foreign() -> bool {
    let m = config::get().deny_mask;
    if m != 0 {
        // SAFETY: a non-zero deny mask: the mpk backend is in force.
        unsafe { gate::pkru_denies(m) }
    } else {
        current() != 0
    }
}

/// The heap foreign code running now allocates from, or 0 for glibc.
#[inline(always)]
fn foreign_heap() -> usize {
    let h = current();
    if h == 0 {
        return 0;
    }
    let m = config::get().deny_mask;
    // SAFETY: a non-zero deny mask: the mpk backend is in force.
    if m != 0 && !unsafe { gate::pkru_denies(m) } {
        return 0;
    }
    h
}

#[inline]
fn enomem() -> *mut c_void {
    // SAFETY: errno is this thread's.
    unsafe { *libc::__errno_location() = libc::ENOMEM };
    core::ptr::null_mut()
}

#[inline]
fn heap_alloc(h: usize, n: usize, align: usize, zero: bool) -> *mut c_void {
    // SAFETY: `h` is the current heap word (a heap's base, or whatever
    // foreign code put there, in which case this runs without rights).
    let p = unsafe { op_alloc(h, n, align, zero as usize) };
    if p == 0 {
        enomem()
    } else {
        p as *mut c_void
    }
}

/// Runs a heap operation on heap slot `i` from trusted code: through the
/// gate, quarantining the heap if it faults.
fn trusted_op(i: usize, function: &'static str, f: usize, args: [u64; 6]) -> Option<u64> {
    let heap = super::TABLE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(i)
        .cloned();
    // Upgraded without the table's lock: dropping the last reference
    // locks it again.
    match heap.and_then(|w| w.upgrade()) {
        Some(h) if !h.is_quarantined() => h.gated(function, f, args),
        Some(_) => None,
        // A heap no trusted code holds any more: discarded (or being
        // discarded). Nothing to do.
        None => None,
    }
}

/// Cofferdam's `malloc` (see the module docs).
///
/// # Safety
/// As for `malloc(3)`.
#[no_mangle]
pub unsafe extern "C" fn malloc(n: usize) -> *mut c_void {
    let h = foreign_heap();
    if h != 0 {
        return heap_alloc(h, n, 16, false);
    }
    // SAFETY: forwarded contract.
    unsafe { __libc_malloc(n) }
}

/// Cofferdam's `calloc`.
///
/// # Safety
/// As for `calloc(3)`.
#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, m: usize) -> *mut c_void {
    let h = foreign_heap();
    if h != 0 {
        return match n.checked_mul(m) {
            Some(b) => heap_alloc(h, b, 16, true),
            None => enomem(),
        };
    }
    // SAFETY: forwarded contract.
    unsafe { __libc_calloc(n, m) }
}

/// Cofferdam's `free`.
///
/// # Safety
/// As for `free(3)`.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    if running_foreign() {
        let Some((i, base)) = foreign_slot_of(p as usize) else {
            // SAFETY: forwarded contract: a block of glibc's.
            return unsafe { __libc_free(p) };
        };
        if foreign_state(i) == LIVE {
            // SAFETY: without rights; a block of heap `base` (or foreign
            // code's mistake, which stays in foreign memory).
            unsafe { op_free(base, p as usize) };
        }
        // Otherwise quarantined (or discarded): dropped on the floor.
        return;
    }
    let Some(i) = slot_of(p as usize) else {
        // SAFETY: forwarded contract: a block of glibc's.
        return unsafe { __libc_free(p) };
    };
    trusted_op(
        i,
        "free",
        op_free as *const () as usize,
        [base_of(i) as u64, p as u64, 0, 0, 0, 0],
    );
}

/// Cofferdam's `realloc`.
///
/// # Safety
/// As for `realloc(3)`.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, n: usize) -> *mut c_void {
    if p.is_null() {
        // SAFETY: forwarded contract.
        return unsafe { malloc(n) };
    }
    let foreign = running_foreign();
    let slot = if foreign {
        foreign_slot_of(p as usize)
    } else {
        slot_of(p as usize).map(|i| (i, base_of(i)))
    };
    let Some((i, base)) = slot else {
        // SAFETY: forwarded contract: a block of glibc's.
        return unsafe { __libc_realloc(p, n) };
    };
    if n == 0 {
        // SAFETY: forwarded contract (glibc's realloc(p, 0) frees).
        unsafe { free(p) };
        return core::ptr::null_mut();
    }
    let q = if foreign {
        if foreign_state(i) != LIVE {
            return move_out(p as usize, n, base, true);
        }
        // SAFETY: as in `free`.
        unsafe { op_realloc(base, p as usize, n) }
    } else {
        let q = trusted_op(
            i,
            "realloc",
            op_realloc as *const () as usize,
            [base as u64, p as u64, n as u64, 0, 0, 0],
        )
        .unwrap_or(0) as usize;
        if q == 0 && !super::heap_is_live(i) {
            return move_out(p as usize, n, base, false);
        }
        q
    };
    if q == 0 {
        enomem()
    } else {
        q as *mut c_void
    }
}

/// `realloc` of block `p` of a heap that is quarantined or discarded (heap
/// `base`): its allocator never runs again, so the block stays where it is
/// and its bytes are copied into a fresh one, allocated as `malloc` routes
/// the caller. glibc needs this: it reallocates bookkeeping that foreign
/// code's calls made it allocate (a thread's DTV, kept with a cached stack
/// and reused for later threads) long after. How long the old block was is
/// written in its untrusted header, so `n` bytes are copied, or up to the
/// heap's end if that comes first: bytes past the old block are junk of the
/// same heap, which the caller of `realloc` does not read.
fn move_out(p: usize, n: usize, base: usize, foreign: bool) -> *mut c_void {
    // SAFETY: a plain allocation, routed as for the caller.
    let q = unsafe { malloc(n) };
    if q.is_null() {
        return q;
    }
    let len = n.min((base + super::SPAN).saturating_sub(p));
    if foreign {
        // SAFETY: foreign code copying foreign memory, without rights: the
        // source lies in a heap's span (kept mapped), the destination is
        // fresh and `n` bytes long.
        unsafe { libc::memcpy(q, p as *const c_void, len) };
        return q;
    }
    // Trusted code copies through the gate: foreign code may have unmapped
    // the old heap, and a fault there is contained.
    let copied = super::gated(
        libc::memcpy as *const () as usize,
        [q as u64, p as u64, len as u64, 0, 0, 0],
    );
    if copied.is_err() {
        // SAFETY: `q` is the fresh block, unused.
        unsafe { free(q) };
        return enomem();
    }
    q
}

/// Cofferdam's `reallocarray`.
///
/// # Safety
/// As for `reallocarray(3)`.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, m: usize) -> *mut c_void {
    match n.checked_mul(m) {
        // SAFETY: forwarded contract.
        Some(b) => unsafe { realloc(p, b) },
        None => enomem(),
    }
}

fn aligned(
    align: usize,
    n: usize,
    fallback: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut c_void {
    if !align.is_power_of_two() {
        // SAFETY: errno is this thread's.
        unsafe { *libc::__errno_location() = libc::EINVAL };
        return core::ptr::null_mut();
    }
    let h = foreign_heap();
    if h != 0 {
        return heap_alloc(h, n, align, false);
    }
    // SAFETY: a valid alignment; glibc's own checks apply.
    unsafe { fallback(align, n) }
}

/// Cofferdam's `posix_memalign`.
///
/// # Safety
/// As for `posix_memalign(3)`.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, n: usize) -> c_int {
    if !align.is_power_of_two() || align % core::mem::size_of::<usize>() != 0 {
        return libc::EINVAL;
    }
    let p = aligned(align, n, __libc_memalign);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a writable out-pointer.
    unsafe { *out = p };
    0
}

/// Cofferdam's `aligned_alloc`.
///
/// # Safety
/// As for `aligned_alloc(3)`.
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, n: usize) -> *mut c_void {
    aligned(align, n, __libc_memalign)
}

/// Cofferdam's `memalign`.
///
/// # Safety
/// As for `memalign(3)`.
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, n: usize) -> *mut c_void {
    aligned(align, n, __libc_memalign)
}

/// Cofferdam's `valloc`.
///
/// # Safety
/// As for `valloc(3)`.
#[no_mangle]
pub unsafe extern "C" fn valloc(n: usize) -> *mut c_void {
    let h = foreign_heap();
    if h != 0 {
        return heap_alloc(h, n, 4096, false);
    }
    // SAFETY: forwarded contract.
    unsafe { __libc_valloc(n) }
}

/// Cofferdam's `pvalloc`.
///
/// # Safety
/// As for `pvalloc(3)`.
#[no_mangle]
pub unsafe extern "C" fn pvalloc(n: usize) -> *mut c_void {
    let h = foreign_heap();
    if h != 0 {
        return match n.checked_add(4095) {
            Some(r) => heap_alloc(h, r & !4095, 4096, false),
            None => enomem(),
        };
    }
    // SAFETY: forwarded contract.
    unsafe { __libc_pvalloc(n) }
}

/// Cofferdam's `malloc_usable_size`.
///
/// # Safety
/// As for `malloc_usable_size(3)`.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    let foreign = running_foreign();
    let slot = if foreign {
        foreign_slot_of(p as usize)
    } else {
        slot_of(p as usize).map(|i| (i, base_of(i)))
    };
    let Some((i, _)) = slot else {
        let f = if foreign {
            // SAFETY: a read of a C global (whatever foreign code put there
            // is what foreign code calls).
            unsafe { core::ptr::addr_of!(cofferdam_libc_usable).read_volatile() }
        } else {
            libc_usable()
        };
        if f == 0 {
            return 0;
        }
        // SAFETY: glibc's malloc_usable_size, for a block of glibc's.
        let f: unsafe extern "C" fn(*mut c_void) -> usize = unsafe { core::mem::transmute(f) };
        // SAFETY: forwarded contract.
        return unsafe { f(p) };
    };
    if foreign {
        if foreign_state(i) != LIVE {
            return 0;
        }
        // SAFETY: without rights; a block of a heap.
        unsafe { op_usable(p as usize) }
    } else {
        trusted_op(
            i,
            "malloc_usable_size",
            op_usable as *const () as usize,
            [p as u64, 0, 0, 0, 0, 0],
        )
        .unwrap_or(0) as usize
    }
}
