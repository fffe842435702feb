//! The shared control mapping between a parent and its helper process: one
//! header page, then one page per calling thread (a *slot*).
//!
//! Everything here is writable by the helper, which runs foreign code: the
//! parent reads it as untrusted data (returns are validated like any foreign
//! return, counters only decide when to stop waiting, and every wait is
//! bounded), never as pointers.

use core::sync::atomic::{AtomicU32, AtomicU64};

/// "cofferdm" as a little-endian word.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"cofferdm");
/// Slots per helper: parent threads calling one compartment at the same time.
pub(crate) const NSLOTS: usize = 64;
/// Bytes of a page.
pub(crate) const PAGE: usize = 4096;
/// Bytes of the control mapping.
pub(crate) const CONTROL_LEN: usize = PAGE * (1 + NSLOTS);
/// Bytes of an object path in a slot.
pub(crate) const PATH_MAX: usize = 2048;

/// The header page.
#[repr(C)]
pub(crate) struct Header {
    pub magic: u64,
    /// The shared foreign arena: the helper maps fd 5 here.
    pub arena_addr: u64,
    pub arena_len: u64,
    /// RLIMIT_DATA for the helper, or 0.
    pub memory_limit: u64,
    /// Stack bytes of each helper thread.
    pub thread_stack: u64,
    /// Spin iterations before sleeping on a request.
    pub spin: u32,
    /// Slots the parent has handed out (the helper starts a thread for
    /// each, futex).
    pub threads_wanted: AtomicU32,
    /// Set by the helper once it is ready (futex); 2 if it failed, with
    /// `message`.
    pub ready: AtomicU32,
    pub message: [u8; 512],
}

/// Request states of a slot.
pub(crate) const STATUS_OK: u32 = 0;
/// The function faulted; `fault` holds what the helper's handler saw.
pub(crate) const STATUS_FAULT: u32 = 1;
/// The helper could not resolve the function; `message` says why.
pub(crate) const STATUS_UNRESOLVED: u32 = 2;

/// One calling thread's slot.
#[repr(C)]
pub(crate) struct Slot {
    /// Call number, written by the parent (the helper thread waits on it).
    pub req: AtomicU32,
    /// The number of the call the helper finished (the parent waits on it).
    pub resp: AtomicU32,
    /// The helper thread is (about to be) asleep on `req`.
    pub child_sleeping: AtomicU32,
    /// The parent is (about to be) asleep on `resp`.
    pub parent_sleeping: AtomicU32,
    pub status: AtomicU32,
    /// Object index of the function.
    pub obj: u32,
    /// Offset of the function from its object's load bias.
    pub off: u64,
    pub ints: [u64; 6],
    pub sse: [u64; 8],
    pub nsse: u64,
    pub nstack: u64,
    pub stack: [u64; crate::gate::MAX_STACK_ARGS],
    /// rax, rdx, xmm0, xmm1.
    pub ret: [u64; 4],
    /// signal, si_code, address, ip, error code / syscall number.
    pub fault_signal: i32,
    pub fault_code: i32,
    pub fault_addr: AtomicU64,
    pub fault_ip: u64,
    pub fault_err: u64,
    /// Object path (when `path_len` is not 0): the helper resolves `obj`
    /// from it the first time.
    pub path_len: u32,
    pub path: [u8; PATH_MAX],
    pub message: [u8; 256],
}

const _: () = assert!(core::mem::size_of::<Header>() <= PAGE);
const _: () = assert!(core::mem::size_of::<Slot>() <= PAGE);

/// The header of a control mapping at `base`.
///
/// # Safety
/// `base` is a live control mapping of [`CONTROL_LEN`] bytes.
pub(crate) unsafe fn header<'a>(base: usize) -> &'a Header {
    // SAFETY: forwarded contract; the header is at the start, aligned.
    unsafe { &*(base as *const Header) }
}

/// Slot `i` of a control mapping at `base`, as a raw pointer: its plain
/// fields are written by one side and read by the other, ordered by the
/// atomics.
///
/// # Safety
/// `base` is a live control mapping; `i < NSLOTS`.
pub(crate) unsafe fn slot(base: usize, i: usize) -> *mut Slot {
    debug_assert!(i < NSLOTS);
    (base + PAGE * (1 + i)) as *mut Slot
}
