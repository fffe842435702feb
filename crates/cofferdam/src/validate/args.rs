//! What may be handed to a sandboxed foreign function: integers by value,
//! and pointers only into foreign memory.

use core::ffi::c_void;

use crate::foreign::{ForeignBox, ForeignPtr, ForeignVec, Pod};

/// A value passed by value, in one integer register, to a foreign function
/// wrapped by [`crate::sandbox`].
///
/// Implemented for the integer types (and so for `c_int`, `size_t` and the
/// other C aliases of them), `bool`, `char`, and enums that derive
/// [`crate::ForeignEnum`]. Deliberately *not* implemented for raw pointers
/// (a pointer parameter must be spelled `*const T`/`*mut T` in the block, so
/// that the wrapper asks for foreign memory), floats (they travel in SSE
/// registers: the macro recognises `f32`, `f64`, `c_float` and `c_double`
/// written as such), 128-bit integers and structs (they do not fit one
/// register).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed by value to a sandboxed foreign function",
    label = "not an integer, `bool`, `char` or a `ForeignEnum`",
    note = "the gate carries integers and pointers (six in registers) and `f32`/`f64` (eight in registers), up to 16 more on the stack: 128-bit integers and structs passed by value cannot cross it",
    note = "a float parameter must be written `f32`, `f64`, `c_float` or `c_double` in the `extern` block (not through a type alias) so the wrapper passes it in an SSE register",
    note = "a pointer parameter must be written `*const T` or `*mut T` in the `extern` block (not through a type alias) so the wrapper can require foreign memory for it"
)]
pub trait ForeignArg {
    /// The register's content.
    fn into_word(self) -> u64;
}

macro_rules! arg_int {
    ($($t:ty),*) => { $(
        impl ForeignArg for $t {
            /// Signed values are sign-extended, unsigned ones zero-extended.
            #[inline]
            fn into_word(self) -> u64 { self as u64 }
        }
    )* };
}
arg_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl ForeignArg for bool {
    #[inline]
    fn into_word(self) -> u64 {
        self as u64
    }
}

impl ForeignArg for char {
    #[inline]
    fn into_word(self) -> u64 {
        self as u64
    }
}

/// A pointer argument for a parameter declared `*const T` or `*mut T`: only
/// memory foreign code may already touch qualifies.
///
/// Implemented for [`ForeignPtr<T>`] (what C returned, or
/// [`ForeignBox::as_foreign_ptr`]), `&ForeignBox<T>` and `&ForeignVec<T>`
/// (borrowed for the duration of the call). Because C's `char` is signed on
/// x86_64 while Rust's bytes are not, `&ForeignBox<u8>` and
/// `&ForeignVec<u8>` (a [`ForeignBuf`](crate::ForeignBuf)) also pass for an
/// `i8` (`c_char`) pointee, and the other way round; a [`ForeignPtr`] must
/// have the exact pointee (so that `ForeignPtr::null()` needs no
/// annotation); retype one with `ForeignPtr::from_addr(p.addr())`. For an
/// out-parameter of pointer type (`T **`), `&ForeignBox<ForeignPtr<T>>`
/// (and `&ForeignVec<ForeignPtr<T>>`) pass: C writes the pointer into the
/// box, and Rust reads it back as an untrusted `ForeignPtr<T>`. A
/// reference to Rust memory (`&mut x`), a raw pointer (`v.as_mut_ptr()`) or
/// a `Vec` is refused at compile time.
///
/// This keeps *mistakes* out; it is not a proof: [`ForeignPtr::from_addr`]
/// can name any address. That is why wrappers with pointer parameters are
/// `unsafe fn` (see [`crate::sandbox`]).
#[diagnostic::on_unimplemented(
    message = "a Rust pointer cannot be passed to a sandboxed foreign function (`{Self}` is not foreign memory holding `{T}`)",
    label = "expected a pointer into foreign memory",
    note = "allocate it in foreign memory: `ForeignBox::new(..)`, `ForeignVec::zeroed(..)` or `ForeignBuf::from_str_nul(..)` and pass `&it`, or pass a `ForeignPtr<{T}>` that C returned",
    note = "foreign code runs without the rights to Rust's heap: it could not use Rust memory, and must not be given it"
)]
pub trait IntoForeignPtr<T> {
    /// The foreign pointer.
    fn into_foreign_ptr(self) -> ForeignPtr<T>;
}

impl<T> IntoForeignPtr<T> for ForeignPtr<T> {
    #[inline]
    fn into_foreign_ptr(self) -> ForeignPtr<T> {
        self
    }
}
impl<T: Pod> IntoForeignPtr<T> for &ForeignBox<T> {
    #[inline]
    fn into_foreign_ptr(self) -> ForeignPtr<T> {
        self.as_foreign_ptr()
    }
}
impl<T: Pod> IntoForeignPtr<T> for &ForeignVec<T> {
    #[inline]
    fn into_foreign_ptr(self) -> ForeignPtr<T> {
        self.as_foreign_ptr()
    }
}

macro_rules! bytes_as {
    ($from:ty => $to:ty) => {
        impl IntoForeignPtr<$to> for &ForeignBox<$from> {
            #[inline]
            fn into_foreign_ptr(self) -> ForeignPtr<$to> {
                ForeignPtr::from_addr(self.as_foreign_ptr().addr())
            }
        }
        impl IntoForeignPtr<$to> for &ForeignVec<$from> {
            #[inline]
            fn into_foreign_ptr(self) -> ForeignPtr<$to> {
                ForeignPtr::from_addr(self.as_foreign_ptr().addr())
            }
        }
    };
}
bytes_as!(u8 => i8);
bytes_as!(i8 => u8);

// An out-parameter of pointer type (`sqlite3 **ppDb`, `char **endptr`): a
// foreign slot holding a `ForeignPtr<T>`, which C fills in. What C writes
// there is read back as a `ForeignPtr<T>`: an untrusted address (see
// `ForeignPtr`).
macro_rules! slot_of_ptr {
    ($($ptr:ty),*) => { $(
        impl<T: 'static> IntoForeignPtr<$ptr> for &ForeignBox<ForeignPtr<T>> {
            #[inline]
            fn into_foreign_ptr(self) -> ForeignPtr<$ptr> {
                ForeignPtr::from_addr(self.as_foreign_ptr().addr())
            }
        }
        impl<T: 'static> IntoForeignPtr<$ptr> for &ForeignVec<ForeignPtr<T>> {
            #[inline]
            fn into_foreign_ptr(self) -> ForeignPtr<$ptr> {
                ForeignPtr::from_addr(self.as_foreign_ptr().addr())
            }
        }
    )* };
}
slot_of_ptr!(*mut T, *const T);

/// A pointer argument for a parameter declared `*const c_void` or
/// `*mut c_void`: any foreign pointer, whatever it points to.
///
/// Implemented for [`ForeignPtr<T>`], `&ForeignBox<T>` and `&ForeignVec<T>`
/// for every `T`.
#[diagnostic::on_unimplemented(
    message = "a Rust pointer cannot be passed to a sandboxed foreign function (`{Self}` is not foreign memory)",
    label = "expected a pointer into foreign memory",
    note = "allocate it in foreign memory: `ForeignBox::new(..)`, `ForeignVec::zeroed(..)` or `ForeignBuf::from_str_nul(..)` and pass `&it`, or pass a `ForeignPtr` that C returned",
    note = "foreign code runs without the rights to Rust's heap: it could not use Rust memory, and must not be given it"
)]
pub trait IntoForeignAddr {
    /// The foreign pointer, untyped (`void *`).
    fn into_foreign_addr(self) -> ForeignPtr<c_void>;
}

impl<T> IntoForeignAddr for ForeignPtr<T> {
    #[inline]
    fn into_foreign_addr(self) -> ForeignPtr<c_void> {
        ForeignPtr::from_addr(self.addr())
    }
}
impl<T: Pod> IntoForeignAddr for &ForeignBox<T> {
    #[inline]
    fn into_foreign_addr(self) -> ForeignPtr<c_void> {
        ForeignPtr::from_addr(self.as_foreign_ptr().addr())
    }
}
impl<T: Pod> IntoForeignAddr for &ForeignVec<T> {
    #[inline]
    fn into_foreign_addr(self) -> ForeignPtr<c_void> {
        ForeignPtr::from_addr(self.as_foreign_ptr().addr())
    }
}
