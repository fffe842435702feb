//! The shared foreign arena (for the `process` backend): where `ForeignBox`, `ForeignVec` and
//! `ForeignBuf` live once a process compartment exists. One memfd, mapped
//! at the same address in the parent and in every helper, so a pointer into
//! it means the same thing on both sides and buffers cross without copies.
//!
//! The allocator's bookkeeping (which ranges are free, which are in use)
//! lives in the parent's own heap, never in the arena: a helper can write
//! every byte of the arena and still cannot steer the parent's allocator.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};

use crate::sys;

/// Bytes reserved for the arena (sparse: only touched pages cost memory).
const ARENA_LEN: usize = 16 << 30;
/// Allocation granule.
const GRANULE: usize = 16;
/// Frees at least this large give their whole pages back to the kernel.
const DISCARD_MIN: usize = 256 << 10;

/// The arena: its mapping and descriptor, and the parent-private free map.
pub(crate) struct Arena {
    pub base: usize,
    pub len: usize,
    pub fd: i32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Free ranges by start.
    free: BTreeMap<usize, usize>,
    /// Free ranges by (length, start), for best fit.
    by_len: BTreeSet<(usize, usize)>,
    /// Ranges in use: start of the block handed out -> (range start, range length).
    used: HashMap<usize, (usize, usize)>,
}

impl State {
    fn insert_free(&mut self, start: usize, len: usize) {
        self.free.insert(start, len);
        self.by_len.insert((len, start));
    }
    fn remove_free(&mut self, start: usize, len: usize) {
        self.free.remove(&start);
        self.by_len.remove(&(len, start));
    }
}

static ARENA: OnceLock<Result<Arena, String>> = OnceLock::new();
static ACTIVE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The arena, created on first use.
pub(crate) fn get() -> Result<&'static Arena, String> {
    let r = ARENA.get_or_init(create);
    if r.is_ok() {
        ACTIVE.store(true, core::sync::atomic::Ordering::Release);
    }
    r.as_ref().map_err(Clone::clone)
}

/// The arena, if it exists.
pub(crate) fn existing() -> Option<&'static Arena> {
    if !ACTIVE.load(core::sync::atomic::Ordering::Acquire) {
        return None;
    }
    ARENA.get().and_then(|r| r.as_ref().ok())
}

/// Whether `[addr, addr + len)` lies inside the arena.
pub(crate) fn contains(addr: usize, len: usize) -> bool {
    existing().is_some_and(|a| {
        addr >= a.base && addr.checked_add(len).is_some_and(|e| e <= a.base + a.len)
    })
}

/// A place for the arena that helpers will find free at start-up: far
/// below the area where the kernel puts shared libraries and mappings
/// (0x7f..), above where it puts a PIE executable and its brk heap (0x55..).
fn create() -> Result<Arena, String> {
    let fd = sys::memfd_sealed(c"cofferdam-foreign", ARENA_LEN)
        .map_err(|e| format!("memfd for the foreign arena: {e}"))?;
    let mut last = String::new();
    for _ in 0..16 {
        let r = sys::random_u64().map_err(|e| e.to_string())? as usize;
        // 1 GiB-aligned, with the whole arena in [0x1000_0000_0000,
        // 0x4000_0000_0000): 0x3000_0000_0000 bytes are 0xc000 slots of
        // 1 GiB, less the arena's own length. (Out of this range the arena
        // could land where a helper's PIE executable or heap is, and the
        // helper could not map it.)
        let slots = (0x3000_0000_0000 - ARENA_LEN) >> 30;
        let addr = 0x1000_0000_0000 + (r % slots) * (1 << 30);
        match sys::map_shared(addr, ARENA_LEN, fd, true) {
            Ok(p) => {
                let mut st = State::default();
                st.insert_free(p as usize, ARENA_LEN);
                return Ok(Arena {
                    base: p as usize,
                    len: ARENA_LEN,
                    fd,
                    state: Mutex::new(st),
                });
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("cannot map the foreign arena: {last}"))
}

impl Arena {
    /// `bytes` zero-filled bytes aligned to `align` (a power of two), or
    /// `None` when the arena is full.
    pub(crate) fn alloc(&self, bytes: usize, align: usize) -> Option<*mut u8> {
        let align = align.max(GRANULE);
        let size = bytes.max(1).checked_add(GRANULE - 1)? & !(GRANULE - 1);
        let need = size.checked_add(align - GRANULE)?;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let &(len, start) = st.by_len.range((need, 0)..).next()?;
        st.remove_free(start, len);
        let block = (start + align - 1) & !(align - 1);
        if block > start {
            st.insert_free(start, block - start);
        }
        let end = block + size;
        if start + len > end {
            st.insert_free(end, start + len - end);
        }
        st.used.insert(block, (block, size));
        drop(st);
        // SAFETY: [block, block+size) lies in the arena's live mapping and is
        // ours alone now; memset does not keep the pointer. The helper may
        // write the same bytes at the same time: that is foreign memory,
        // never read by Rust except by volatile copy.
        unsafe { libc::memset(block as *mut libc::c_void, 0, size) };
        Some(block as *mut u8)
    }

    /// Frees a block from [`Arena::alloc`]; `false` if `p` is not one.
    pub(crate) fn free(&self, p: usize) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some((mut start, mut len)) = st.used.remove(&p) else {
            return false;
        };
        if let Some((&ps, &pl)) = st.free.range(..start).next_back() {
            if ps + pl == start {
                st.remove_free(ps, pl);
                start = ps;
                len += pl;
            }
        }
        if let Some(&nl) = st.free.get(&(start + len)) {
            st.remove_free(start + len, nl);
            len += nl;
        }
        if len >= DISCARD_MIN {
            let lo = (start + 4095) & !4095;
            let hi = (start + len) & !4095;
            if hi > lo {
                // SAFETY: the pages are free arena memory, and stay free
                // while we hold the lock: nothing of ours uses them.
                unsafe { sys::discard_shared(lo, hi - lo) };
            }
        }
        st.insert_free(start, len);
        true
    }
}

/// Whether foreign allocations go to the shared arena, and which: always
/// under `COFFERDAM_BACKEND=process`, else once a process compartment exists.
pub(crate) fn arena_for_alloc() -> Option<Result<&'static Arena, String>> {
    if crate::state::runtime().backend == crate::Backend::Process {
        return Some(get());
    }
    existing().map(Ok)
}

/// Frees `p` if it is an arena block; `false` if it is not one.
pub(crate) fn free_foreign(p: usize) -> bool {
    match existing() {
        Some(a) if contains(p, 1) => {
            if !a.free(p) {
                // Not a block we handed out (a pointer adopted with
                // `from_foreign`): leaked rather than freed.
                sys::write_stderr(b"cofferdam: not a block of the foreign arena; leaked\n");
            }
            true
        }
        _ => false,
    }
}

/// Whether Rust may read `[addr, addr + len)` directly: always on the
/// in-process backends; under `COFFERDAM_BACKEND=process` only inside the
/// shared arena (anything else names the helper's memory, or the parent's).
pub(crate) fn parent_may_read(addr: usize, len: usize) -> bool {
    crate::state::runtime().backend != crate::Backend::Process || contains(addr, len)
}
