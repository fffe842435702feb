//! Foreign memory: what C may read, write and free.
//!
//! [`ForeignBox`] and [`ForeignVec`] live in a C heap (never in
//! [`crate::ProtectedAlloc`]'s region), so C may use them and even `free`
//! them. Which heap (`docs/heaps.md`): made for a compartment (`new_in`,
//! `zeroed_in`, `from_slice_in`, `from_str_nul_in`), that compartment's own
//! heap, or the shared arena for a compartment on the `process` backend;
//! made without one (`new`, `zeroed`, …), Cofferdam's own heap, which
//! foreign code of *every* compartment can read and write (on `mpk` all
//! heaps carry key 0; on `split` nothing is protected), or the shared arena
//! once the process backend is in use. On the `none` backend both come from
//! the C library's `malloc`. Rust writes into them through safe methods. What Rust
//! reads back is untrusted, because foreign code may change it at any time,
//! from any thread: reads are copies (no `&T` into foreign memory is ever
//! handed out), bounds-checked, and only of [`Pod`] types, for which every bit
//! pattern is a valid value.

pub(crate) mod arena;

use core::ffi::c_void;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::{self, NonNull};
use std::sync::Arc;

use crate::heap::Heap;

/// Plain old data: `Copy`, no padding-sensitive invariants, and *every* bit
/// pattern of `size_of::<T>()` bytes is a valid `T`. Only such types can be
/// read back from memory foreign code controls.
///
/// For a `#[repr(C)]` struct, `#[derive(cofferdam::Pod)]` implements it
/// after checking, at compile time, that every field is `Pod` and that the
/// struct has no padding. [`ForeignPtr`] is `Pod`, so a C struct that holds
/// pointers mirrors field for field.
///
/// # Safety
/// Implement it only for types for which any byte content is a valid value
/// (integers, floats, arrays and `#[repr(C)]` structs of those, without
/// padding). Not for `bool`, `char`, enums, references or anything with a
/// niche.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not `Pod`: not every bit pattern is a valid `{Self}`",
    label = "cannot be read back from foreign memory",
    note = "foreign memory may hold any bytes: only integers, floats, `ForeignPtr<T>`, arrays of those and structs deriving `cofferdam::Pod` can live there",
    note = "a C `bool` or enum is mirrored as its integer type; a C pointer as `cofferdam::ForeignPtr<T>`"
)]
pub unsafe trait Pod: Copy + 'static {}

macro_rules! pod {
    ($($t:ty),*) => { $(
        // SAFETY: every bit pattern is a valid value of this primitive.
        unsafe impl Pod for $t {}
    )* };
}
pod!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);
// SAFETY: an array of Pod has no padding between elements and every bit
// pattern of each element is valid.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

// SAFETY: a zero-sized type: there are no bytes, so no invalid ones.
unsafe impl<T: 'static> Pod for PhantomData<T> {}

/// A C character: `u8` or `i8` (`c_char` on x86_64). Sealed.
pub trait CChar: Pod + sealed::Sealed {}
impl CChar for u8 {}
impl CChar for i8 {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for i8 {}
}

/// A pointer into foreign memory, as C gave it or as a foreign allocation
/// exposes it. It cannot be dereferenced from Rust; it can be passed to a
/// foreign function, compared, or adopted by [`ForeignBox::from_foreign`].
///
/// It is an address and nothing more: it promises nothing about what is
/// there, so any value is a valid `ForeignPtr` (it is [`Pod`], laid out as
/// a `usize`, `#[repr(transparent)]`). That is what lets a `#[repr(C)]`
/// struct mirror a C struct that holds pointers field for field
/// (`#[derive(cofferdam::Pod)]`), and be read back from foreign memory.
/// A `ForeignPtr` read back that way is whatever foreign code left there:
/// untrusted. It is used only through the checked paths: passed to foreign
/// code through the gate, read with [`ForeignPtr::read`] or
/// [`crate::Compartment::read_foreign`] (both refuse protected memory and
/// turn a bad address into an error), or adopted with the `unsafe`
/// [`ForeignBox::from_foreign`], whose caller vouches for it.
#[repr(transparent)]
pub struct ForeignPtr<T> {
    addr: usize,
    _t: PhantomData<*mut T>,
}

// SAFETY: an address with no invariant (see above): every bit pattern of a
// `usize` is a valid `ForeignPtr`, there is no padding, and
// `#[repr(transparent)]` makes its layout a `usize`'s.
unsafe impl<T: 'static> Pod for ForeignPtr<T> {}

// SAFETY: it is an address only: Rust never dereferences it directly (every
// access goes through the gate or a fault-tolerant, checked copy), so moving
// or sharing it between threads makes nothing reachable that was not.
unsafe impl<T> Send for ForeignPtr<T> {}
// SAFETY: as for Send; `&ForeignPtr` gives only a copy of the address.
unsafe impl<T> Sync for ForeignPtr<T> {}

/// Null.
impl<T> Default for ForeignPtr<T> {
    fn default() -> Self {
        Self::null()
    }
}

impl<T> ForeignPtr<T> {
    /// A null foreign pointer.
    pub const fn null() -> Self {
        ForeignPtr {
            addr: 0,
            _t: PhantomData,
        }
    }
    /// Wraps an address that foreign code returned. Nothing is claimed about
    /// it: it is not dereferenced by Rust.
    pub const fn from_addr(addr: usize) -> Self {
        ForeignPtr {
            addr,
            _t: PhantomData,
        }
    }
    /// The address.
    pub fn addr(self) -> usize {
        self.addr
    }
    /// Whether it is null.
    pub fn is_null(self) -> bool {
        self.addr == 0
    }
    /// As a raw pointer, for passing to foreign code.
    pub fn as_raw(self) -> *mut T {
        self.addr as *mut T
    }
}

impl<T: Pod> ForeignPtr<T> {
    /// Copies the `T` this pointer names out of foreign memory, as untrusted
    /// data: refused if it is null or points into protected Rust memory (the
    /// heap, a tagged stack, Cofferdam's tables), and an unmapped address
    /// is an error, not a crash (the copy is fault-tolerant). For callbacks
    /// reading what C passed them, and anywhere a foreign pointer must be
    /// looked through.
    pub fn read(self) -> Result<T, crate::Error> {
        self.read_at(0)
    }

    /// As [`ForeignPtr::read`], for element `index` of an array this pointer
    /// starts.
    pub fn read_at(self, index: usize) -> Result<T, crate::Error> {
        let size = core::mem::size_of::<T>();
        let invalid = |detail: String| crate::Error::Invalid {
            function: "ForeignPtr::read",
            detail,
        };
        let addr = index
            .checked_mul(size)
            .and_then(|o| self.addr.checked_add(o))
            .ok_or_else(|| invalid(format!("{:#x}[{index}] overflows", self.addr)))?;
        if addr == 0 {
            return Err(invalid("null pointer".into()));
        }
        if !arena::parent_may_read(addr, size) {
            return Err(invalid(format!(
                "{addr:#x} is not in the shared foreign arena: on the process backend the library's own memory is read through Compartment::read_foreign"
            )));
        }
        if crate::gate::thread::is_protected(addr, size) {
            return Err(invalid(format!(
                "{addr:#x} points into protected Rust memory"
            )));
        }
        let mut out = core::mem::MaybeUninit::<T>::uninit();
        // SAFETY: `out` is writable for size bytes and is Rust memory, apart
        // from the foreign source; the source is not protected (checked).
        if unsafe { crate::gate::try_copy(out.as_mut_ptr().cast(), addr, size) } {
            // SAFETY: fully written, and every bit pattern is a valid T (Pod).
            Ok(unsafe { out.assume_init() })
        } else {
            Err(invalid(format!("{addr:#x} is not readable")))
        }
    }
}

impl<T> Clone for ForeignPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for ForeignPtr<T> {}
impl<T> PartialEq for ForeignPtr<T> {
    fn eq(&self, o: &Self) -> bool {
        self.addr == o.addr
    }
}
impl<T> Eq for ForeignPtr<T> {}
impl<T> fmt::Debug for ForeignPtr<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ForeignPtr({:#x})", self.addr)
    }
}

/// A foreign allocation failed: its heap is exhausted, or quarantined
/// because its compartment is poisoned (renew the compartment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignAllocError {
    /// Bytes requested.
    pub bytes: usize,
}

impl fmt::Display for ForeignAllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not allocate {} bytes of foreign memory (the heap is exhausted, or quarantined: its compartment is poisoned until renewed)",
            self.bytes
        )
    }
}
impl std::error::Error for ForeignAllocError {}

/// An index outside a foreign buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    /// The first index asked for.
    pub index: usize,
    /// How many elements were asked for.
    pub count: usize,
    /// The buffer's length.
    pub len: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "elements {}..{} are outside a foreign buffer of {}",
            self.index,
            self.index + self.count,
            self.len
        )
    }
}
impl std::error::Error for OutOfBounds {}

/// Copies `src` (Rust memory) into foreign memory at `dst`, with volatile
/// stores on the foreign side: 16-byte SSE2 stores, four per step, once
/// `dst` is 16-aligned, so bulk copies cost about what `memcpy` does while
/// every foreign access stays volatile (foreign code may look at the bytes
/// at any time); bytes before and after one at a time.
///
/// # Safety
/// `dst` is valid for `src.len()` bytes of writes and does not overlap `src`.
unsafe fn volatile_copy_to_foreign(dst: *mut u8, src: &[u8]) {
    use core::arch::x86_64::__m128i;
    let n = src.len();
    let head = dst.align_offset(16).min(n);
    let blocks = (n - head) / 64;
    // SAFETY: every store is inside dst..dst+n (contract); vector stores are
    // 16-aligned (after `head` bytes), 64 bytes per step within `blocks`;
    // loads from `src` stay inside it and are unaligned reads of Rust memory.
    unsafe {
        for (i, b) in src[..head].iter().enumerate() {
            dst.add(i).write_volatile(*b);
        }
        let vsrc = src.as_ptr().add(head) as *const [__m128i; 4];
        let vdst = dst.add(head) as *mut __m128i;
        for k in 0..blocks {
            let x = vsrc.add(k).read_unaligned();
            vdst.add(4 * k).write_volatile(x[0]);
            vdst.add(4 * k + 1).write_volatile(x[1]);
            vdst.add(4 * k + 2).write_volatile(x[2]);
            vdst.add(4 * k + 3).write_volatile(x[3]);
        }
        let tail = head + 64 * blocks;
        for (i, b) in src[tail..].iter().enumerate() {
            dst.add(tail + i).write_volatile(*b);
        }
    }
}

/// Copies foreign memory at `src` into `dst` (Rust memory) with volatile
/// loads on the foreign side: 16-byte SSE2 loads (baseline on x86_64), four
/// per step, once `src` is 16-aligned; bytes before and after one at a time.
///
/// # Safety
/// `src` is valid for `dst.len()` bytes of reads and does not overlap `dst`.
unsafe fn volatile_copy_from_foreign(dst: &mut [u8], src: *const u8) {
    use core::arch::x86_64::__m128i;
    let n = dst.len();
    let head = src.align_offset(16).min(n);
    let blocks = (n - head) / 64;
    // SAFETY: every load is inside src..src+n (contract); vector loads are
    // 16-aligned (after `head` bytes) and read 64 bytes per step within
    // `blocks`; stores stay inside `dst`, unaligned writes to Rust memory.
    unsafe {
        for (i, b) in dst[..head].iter_mut().enumerate() {
            *b = src.add(i).read_volatile();
        }
        let vsrc = src.add(head) as *const __m128i;
        let vdst = dst.as_mut_ptr().add(head) as *mut __m128i;
        for k in 0..blocks {
            let v = 4 * k;
            let x = [
                vsrc.add(v).read_volatile(),
                vsrc.add(v + 1).read_volatile(),
                vsrc.add(v + 2).read_volatile(),
                vsrc.add(v + 3).read_volatile(),
            ];
            (vdst.add(v) as *mut [__m128i; 4]).write_unaligned(x);
        }
        let tail = head + 64 * blocks;
        for (i, b) in dst[tail..].iter_mut().enumerate() {
            *b = src.add(tail + i).read_volatile();
        }
    }
}

/// The bytes of a slice of Pod values.
fn pod_bytes<T: Pod>(data: &[T]) -> &[u8] {
    // SAFETY: Pod values are plain bytes (no padding-sensitive invariants,
    // as the Pod contract requires); the byte view covers exactly the slice.
    unsafe { core::slice::from_raw_parts(data.as_ptr().cast(), core::mem::size_of_val(data)) }
}

/// The bytes of a mutable slice of Pod values.
fn pod_bytes_mut<T: Pod>(data: &mut [T]) -> &mut [u8] {
    // SAFETY: as above; and any bytes written through the view form valid
    // values, because every bit pattern is a valid Pod value.
    unsafe {
        core::slice::from_raw_parts_mut(data.as_mut_ptr().cast(), core::mem::size_of_val(data))
    }
}

/// The heap a foreign block lives in: `Some` for a compartment's heap or
/// Cofferdam's own (freed through the gate, or not at all once the heap is
/// quarantined; the `Arc` keeps a quarantined heap's memory until the block
/// is gone), `None` for the shared arena or the C library's heap (freed by
/// address).
type Owner = Option<Arc<Heap>>;

/// Frees a block of foreign memory owned by `owner`.
///
/// # Safety
/// `p` was allocated for that owner (or adopted with `from_foreign`) and is
/// not used again.
unsafe fn release(owner: &Owner, p: *mut c_void) {
    if let Some(h) = owner {
        // SAFETY: forwarded contract. Nothing happens for a quarantined heap.
        return unsafe { h.free(p.cast()) };
    }
    if arena::free_foreign(p as usize) {
        return;
    }
    // SAFETY: forwarded contract: a block of the C library's.
    unsafe { libc::free(p) }
}

/// Allocates `n` zero-filled elements of `T`, aligned for `T`: in
/// compartment `c`'s heap (the shared arena for a process compartment), or
/// without one in Cofferdam's own heap (the shared arena once the process
/// backend is in use), or with the C library's allocator on `none`.
fn c_alloc<T>(
    c: Option<&crate::Compartment>,
    n: usize,
) -> Result<(NonNull<T>, Owner), ForeignAllocError> {
    let bytes = n
        .checked_mul(size_of::<T>())
        .ok_or(ForeignAllocError { bytes: usize::MAX })?
        .max(1);
    let arena = match c {
        Some(c) if c.backend() == crate::Backend::Process => Some(arena::get()),
        Some(_) => None,
        None => arena::arena_for_alloc(),
    };
    if let Some(arena) = arena {
        // The process backend: the shared arena, mapped at the same address
        // in every helper (zero-filled, aligned).
        let a = arena.map_err(|_| ForeignAllocError { bytes })?;
        let p = a
            .alloc(bytes, align_of::<T>())
            .ok_or(ForeignAllocError { bytes })?;
        let p = NonNull::new(p.cast()).ok_or(ForeignAllocError { bytes })?;
        return Ok((p, None));
    }
    let heap = match c {
        // Fails while `c` is poisoned: its heap is quarantined.
        Some(c) => c.heap().map_err(|()| ForeignAllocError { bytes })?,
        None if crate::state::runtime().backend == crate::Backend::None => None,
        None => Some(Heap::own().map_err(|_| ForeignAllocError { bytes })?),
    };
    if let Some(h) = heap {
        let p = h
            .alloc_zeroed(bytes, align_of::<T>().max(16))
            .ok_or(ForeignAllocError { bytes })?;
        return Ok((p.cast(), Some(h)));
    }
    let p = if align_of::<T>() <= 16 {
        // SAFETY: calloc with a non-zero size; glibc aligns to 16.
        unsafe { libc::calloc(1, bytes) }
    } else {
        let mut p: *mut c_void = ptr::null_mut();
        // SAFETY: valid out-pointer; the alignment is a power of two and a
        // multiple of the pointer size.
        if unsafe { libc::posix_memalign(&mut p, align_of::<T>(), bytes) } != 0 {
            ptr::null_mut()
        } else {
            // SAFETY: p holds `bytes` bytes.
            unsafe { ptr::write_bytes(p.cast::<u8>(), 0, bytes) };
            p
        }
    };
    debug_assert!(p.is_null() || !crate::alloc::is_protected_region(p as usize));
    let p = NonNull::new(p.cast()).ok_or(ForeignAllocError { bytes })?;
    Ok((p, None))
}

/// One `T` in foreign memory, owned by Rust until given away.
pub struct ForeignBox<T: Pod> {
    ptr: NonNull<T>,
    owner: Owner,
}

// SAFETY: the box owns its allocation; T is Pod (no thread-affine state), and
// all access is by copy through volatile reads and writes.
unsafe impl<T: Pod + Send> Send for ForeignBox<T> {}
// SAFETY: as above; `&ForeignBox` only allows copies and volatile writes.
unsafe impl<T: Pod + Sync> Sync for ForeignBox<T> {}

impl<T: Pod> ForeignBox<T> {
    /// Allocates a `T` in Cofferdam's own heap (see the module docs: every
    /// compartment's foreign code can reach it) and writes `value` into it.
    pub fn new(value: T) -> Result<Self, ForeignAllocError> {
        Self::make(None, value)
    }
    /// Allocates a `T` in compartment `c`'s heap and writes `value` into
    /// it: memory for that compartment's functions. Fails while `c` is
    /// poisoned (its heap is quarantined until [`crate::Compartment::renew`]).
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
    /// let zlib = cofferdam::Compartment::new("zlib")?;
    /// let n = cofferdam::ForeignBox::new_in(&zlib, 42u64)?;
    /// assert_eq!(n.get(), 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new_in(c: &crate::Compartment, value: T) -> Result<Self, ForeignAllocError> {
        Self::make(Some(c), value)
    }
    fn make(c: Option<&crate::Compartment>, value: T) -> Result<Self, ForeignAllocError> {
        let (ptr, owner) = c_alloc::<T>(c, 1)?;
        // SAFETY: freshly allocated, aligned, sized for one T.
        unsafe { ptr.as_ptr().write_volatile(value) };
        Ok(ForeignBox { ptr, owner })
    }
    /// Allocates a zero-filled `T` in Cofferdam's own heap.
    pub fn zeroed() -> Result<Self, ForeignAllocError> {
        let (ptr, owner) = c_alloc::<T>(None, 1)?;
        Ok(ForeignBox { ptr, owner })
    }
    /// Allocates a zero-filled `T` in compartment `c`'s heap (fails while
    /// `c` is poisoned).
    pub fn zeroed_in(c: &crate::Compartment) -> Result<Self, ForeignAllocError> {
        let (ptr, owner) = c_alloc::<T>(Some(c), 1)?;
        Ok(ForeignBox { ptr, owner })
    }
    /// A copy of the current value (which foreign code may have changed).
    pub fn get(&self) -> T {
        // SAFETY: the allocation is live and aligned; T is Pod, so whatever
        // bytes foreign code left there form a valid T.
        unsafe { self.ptr.as_ptr().read_volatile() }
    }
    /// Writes a new value.
    pub fn set(&self, value: T) {
        // SAFETY: live, aligned allocation of one T.
        unsafe { self.ptr.as_ptr().write_volatile(value) }
    }
    /// The pointer to pass to foreign code.
    pub fn as_foreign_ptr(&self) -> ForeignPtr<T> {
        ForeignPtr::from_addr(self.ptr.as_ptr() as usize)
    }
    /// Gives the allocation to foreign code, which must `free` it.
    pub fn into_foreign(self) -> ForeignPtr<T> {
        let p = self.as_foreign_ptr();
        let mut this = core::mem::ManuallyDrop::new(self);
        // The reference to its heap goes; the block stays.
        drop(this.owner.take());
        p
    }
    /// Takes ownership of a block foreign code allocated with `malloc`
    /// (inside a gate call, in its compartment's heap; outside, in the C
    /// library's): dropping the box frees it where it came from.
    ///
    /// # Safety
    /// `p` must be non-null, aligned for `T`, point to at least
    /// `size_of::<T>()` bytes obtained from `malloc`, and no one else may
    /// free it.
    ///
    /// # Panics
    /// If `p` is null, or if the process backend is in force and `p` is not
    /// in the shared foreign arena (it names the helper's memory, which the
    /// parent never dereferences).
    pub unsafe fn from_foreign(p: ForeignPtr<T>) -> Self {
        assert!(
            arena::parent_may_read(p.addr(), size_of::<T>()),
            "ForeignBox::from_foreign: {:#x} is the helper process's memory, not the shared arena (read it with Compartment::read_foreign)",
            p.addr()
        );
        ForeignBox {
            ptr: NonNull::new(p.as_raw()).expect("ForeignBox::from_foreign: null pointer"),
            owner: crate::heap::owner_of(p.addr()),
        }
    }
}

impl<T: Pod> Drop for ForeignBox<T> {
    fn drop(&mut self) {
        // SAFETY: allocated for this owner, owned by this box.
        unsafe { release(&self.owner, self.ptr.as_ptr().cast()) }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ForeignBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ForeignBox").field(&self.get()).finish()
    }
}

/// A fixed-length array of `T` in foreign memory.
pub struct ForeignVec<T: Pod> {
    ptr: NonNull<T>,
    len: usize,
    owner: Owner,
}

/// A byte buffer in foreign memory.
pub type ForeignBuf = ForeignVec<u8>;

// SAFETY: as for ForeignBox.
unsafe impl<T: Pod + Send> Send for ForeignVec<T> {}
// SAFETY: as for ForeignBox.
unsafe impl<T: Pod + Sync> Sync for ForeignVec<T> {}

impl<T: Pod> ForeignVec<T> {
    /// `len` zero-filled elements in Cofferdam's own heap (see the module
    /// docs: every compartment's foreign code can reach it).
    pub fn zeroed(len: usize) -> Result<Self, ForeignAllocError> {
        let (ptr, owner) = c_alloc::<T>(None, len)?;
        Ok(ForeignVec { ptr, len, owner })
    }
    /// `len` zero-filled elements in compartment `c`'s heap. Fails while
    /// `c` is poisoned (its heap is quarantined until
    /// [`crate::Compartment::renew`]).
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
    /// let c = cofferdam::Compartment::new("codec")?;
    /// let out = cofferdam::ForeignBuf::zeroed_in(&c, 4096)?;
    /// assert_eq!(out.len(), 4096);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn zeroed_in(c: &crate::Compartment, len: usize) -> Result<Self, ForeignAllocError> {
        let (ptr, owner) = c_alloc::<T>(Some(c), len)?;
        Ok(ForeignVec { ptr, len, owner })
    }
    /// A copy of `data` in Cofferdam's own heap.
    pub fn from_slice(data: &[T]) -> Result<Self, ForeignAllocError> {
        let v = Self::zeroed(data.len())?;
        v.write(0, data).expect("length matches");
        Ok(v)
    }
    /// A copy of `data` in compartment `c`'s heap.
    pub fn from_slice_in(c: &crate::Compartment, data: &[T]) -> Result<Self, ForeignAllocError> {
        let v = Self::zeroed_in(c, data.len())?;
        v.write(0, data).expect("length matches");
        Ok(v)
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    fn check(&self, index: usize, count: usize) -> Result<(), OutOfBounds> {
        match index.checked_add(count) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(OutOfBounds {
                index,
                count,
                len: self.len,
            }),
        }
    }
    /// A copy of element `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<T> {
        self.check(index, 1).ok()?;
        // SAFETY: index < len; T is Pod, so any content is a valid T.
        Some(unsafe { self.ptr.as_ptr().add(index).read_volatile() })
    }
    /// Writes element `index`.
    pub fn set(&self, index: usize, value: T) -> Result<(), OutOfBounds> {
        self.check(index, 1)?;
        // SAFETY: index < len.
        unsafe { self.ptr.as_ptr().add(index).write_volatile(value) };
        Ok(())
    }
    /// Copies `data` in, starting at element `index` (volatile stores, a
    /// word at a time).
    pub fn write(&self, index: usize, data: &[T]) -> Result<(), OutOfBounds> {
        self.check(index, data.len())?;
        // SAFETY: elements index..index+len are inside the allocation
        // (checked above); `data` is Rust memory, so they cannot overlap.
        unsafe { volatile_copy_to_foreign(self.ptr.as_ptr().add(index).cast(), pod_bytes(data)) };
        Ok(())
    }
    /// Copies `out.len()` elements out, starting at element `index`
    /// (volatile loads, a word at a time).
    pub fn read(&self, index: usize, out: &mut [T]) -> Result<(), OutOfBounds> {
        self.check(index, out.len())?;
        // SAFETY: as in `write`; T is Pod, so whatever bytes foreign code left
        // there are valid values.
        unsafe {
            volatile_copy_from_foreign(pod_bytes_mut(out), self.ptr.as_ptr().add(index).cast())
        };
        Ok(())
    }
    /// A copy of the whole buffer.
    pub fn to_vec(&self) -> Vec<T> {
        let mut v: Vec<T> = Vec::with_capacity(self.len);
        // SAFETY: the spare capacity holds `len` elements; it is filled below
        // through a byte view before `set_len`, and T is Pod, so any bytes
        // are valid values.
        unsafe {
            let bytes = core::slice::from_raw_parts_mut(
                v.as_mut_ptr().cast::<u8>(),
                self.len * size_of::<T>(),
            );
            volatile_copy_from_foreign(bytes, self.ptr.as_ptr().cast());
            v.set_len(self.len);
        }
        v
    }
    /// Appends the first `count` elements to `out`, without zero-filling
    /// first.
    pub fn append_to(&self, count: usize, out: &mut Vec<T>) -> Result<(), OutOfBounds> {
        self.check(0, count)?;
        out.reserve(count);
        let start = out.len();
        // SAFETY: the reserved spare capacity holds `count` more elements;
        // it is filled through a byte view before `set_len`; T is Pod.
        unsafe {
            let bytes = core::slice::from_raw_parts_mut(
                out.as_mut_ptr().add(start).cast::<u8>(),
                count * size_of::<T>(),
            );
            volatile_copy_from_foreign(bytes, self.ptr.as_ptr().cast());
            out.set_len(start + count);
        }
        Ok(())
    }
    /// Fills every element with `value`.
    pub fn fill(&self, value: T) {
        for i in 0..self.len {
            // SAFETY: i < len.
            unsafe { self.ptr.as_ptr().add(i).write_volatile(value) };
        }
    }
    /// The pointer to pass to foreign code.
    pub fn as_foreign_ptr(&self) -> ForeignPtr<T> {
        ForeignPtr::from_addr(self.ptr.as_ptr() as usize)
    }
}

impl ForeignVec<u8> {
    /// A NUL-terminated copy of `s` (for C functions taking `const char*`),
    /// in Cofferdam's own heap.
    pub fn from_str_nul(s: &str) -> Result<Self, ForeignAllocError> {
        let v = Self::zeroed(s.len() + 1)?;
        v.write(0, s.as_bytes()).expect("length fits");
        Ok(v)
    }
    /// A NUL-terminated copy of `s` in compartment `c`'s heap.
    pub fn from_str_nul_in(c: &crate::Compartment, s: &str) -> Result<Self, ForeignAllocError> {
        let v = Self::zeroed_in(c, s.len() + 1)?;
        v.write(0, s.as_bytes()).expect("length fits");
        Ok(v)
    }
    /// The first `count` `T`s of the buffer's bytes, copied out.
    ///
    /// # Panics
    /// If the buffer holds fewer than `count * size_of::<T>()` bytes.
    pub(crate) fn read_pod<T: Pod>(&self, count: usize) -> Vec<T> {
        let bytes = count * size_of::<T>();
        assert!(bytes <= self.len, "read_pod past the buffer");
        let mut v: Vec<T> = Vec::with_capacity(count);
        // SAFETY: the spare capacity holds `count` elements, filled through
        // a byte view before `set_len`; the source holds `bytes` bytes
        // (checked); T is Pod, so any bytes are valid values.
        unsafe {
            let dst = core::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), bytes);
            volatile_copy_from_foreign(dst, self.ptr.as_ptr());
            v.set_len(count);
        }
        v
    }
    /// The bytes before the first NUL (or the whole buffer if there is none),
    /// copied out.
    pub fn to_bytes_until_nul(&self) -> Vec<u8> {
        let mut out = self.to_vec();
        if let Some(n) = out.iter().position(|&b| b == 0) {
            out.truncate(n);
        }
        out
    }
}

impl<T: Pod> Drop for ForeignVec<T> {
    fn drop(&mut self) {
        // SAFETY: allocated for this owner, owned by this value.
        unsafe { release(&self.owner, self.ptr.as_ptr().cast()) }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ForeignVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignVec")
            .field("len", &self.len)
            .field("ptr", &self.ptr)
            .finish()
    }
}
