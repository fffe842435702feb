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
    /// Calls of callback stub `i` the helper refused by itself (from a
    /// thread of the library's own, which has no way to the parent): the
    /// parent adds them to the callback's refusals after each call that
    /// armed it. Untrusted counts, like everything here.
    pub cb_refused: [AtomicU32; crate::callback::NSLOTS],
}

/// Request states of a slot.
pub(crate) const STATUS_OK: u32 = 0;
/// The function faulted; `fault` holds what the helper's handler saw.
pub(crate) const STATUS_FAULT: u32 = 1;
/// The helper could not resolve the function; `message` says why.
pub(crate) const STATUS_UNRESOLVED: u32 = 2;

/// What a message on a slot is. The conversation on a slot strictly
/// alternates (the parent posts on `req`, the helper answers on `resp` with
/// the same number), and nests like the calls themselves:
///
/// ```text
/// parent  CALL f ─────────────▶ helper runs f
///                                f calls a callback stub
/// parent  ◀──────────── CB_CALL  (slot, registers)
/// parent runs the Rust callback; it may itself CALL (nested, same slot,
/// served by the same helper thread, which waits inside the stub)
/// parent  CB_RET (words) ─────▶ the stub returns to f
/// parent  ◀──────────────── RET  (status, registers)
/// ```
pub(crate) const MSG_CALL: u32 = 1;
/// The parent's answer to a [`MSG_CB_CALL`]: `cb_ret` holds rax and xmm0.
pub(crate) const MSG_CB_RET: u32 = 2;
/// The helper's answer to a [`MSG_CALL`]: `status` and `ret`.
pub(crate) const MSG_RET: u32 = 3;
/// Foreign code called a callback stub: `cb_slot`, `cb_gpr`, `cb_sse`.
pub(crate) const MSG_CB_CALL: u32 = 4;
/// Callbacks a call may arm.
pub(crate) const MAX_CALLBACKS: usize = 6;

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
    /// The kind of the parent's latest message (`MSG_CALL`, `MSG_CB_RET`).
    pub req_kind: u32,
    /// The kind of the helper's latest message (`MSG_RET`, `MSG_CB_CALL`).
    pub resp_kind: u32,
    /// A call's callbacks: how many, their slots, the address of each slot's
    /// stub in the parent (the helper puts its own stub in place of each
    /// argument word equal to it), and what the helper answers a thread of
    /// the library's own that calls one (rax, xmm0).
    pub ncb: u32,
    pub cb_slots: [u32; MAX_CALLBACKS],
    pub cb_parent: [u64; MAX_CALLBACKS],
    pub cb_error: [[u64; 2]; MAX_CALLBACKS],
    /// A callback call: the stub's slot and the argument registers.
    pub cb_slot: u32,
    pub cb_gpr: [u64; 6],
    pub cb_sse: [u64; 8],
    /// The callback's result: rax, xmm0.
    pub cb_ret: [u64; 2],
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
/// Making the pointer is safe; using it needs `base` to be a live control
/// mapping and `i < NSLOTS`.
pub(crate) fn slot(base: usize, i: usize) -> *mut Slot {
    debug_assert!(i < NSLOTS);
    (base + PAGE * (1 + i)) as *mut Slot
}
