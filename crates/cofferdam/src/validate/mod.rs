//! Checks on values crossing the gate: what foreign code returns is
//! validated for its Rust type before Rust sees it, and what Rust passes is
//! limited to integers and pointers into foreign memory.
//!
//! A C function can return anything in `rax`: a `bool` of 2, an enum
//! discriminant that names no variant, a pointer into the Rust heap. Turning
//! such bits into the Rust type unchecked would be undefined behaviour, so
//! every return of a [`sandbox`](crate::sandbox)ed function goes through
//! [`FromForeign`] and a value that fails becomes
//! [`Error::Invalid`], naming the function.
//!
//! | Rust type | accepted |
//! | --- | --- |
//! | `()` | anything (nothing is read) |
//! | `u8`..`u64`, `i8`..`i64`, `usize`, `isize` | any value; only the low bits the ABI defines are kept |
//! | `bool` | 0 or 1 in the low 8 bits (`al`) |
//! | `char` | a Unicode scalar value in the low 32 bits |
//! | `NonZeroU32` and the other `NonZero*` | anything but 0 |
//! | [`ForeignPtr<T>`] (a `*const T`/`*mut T` return) | null, or an address outside the protected heap |
//! | `Option<ForeignPtr<T>>` | null as `None`; otherwise as above |
//! | an enum with `#[derive(`[`ForeignEnum`](crate::ForeignEnum)`)]` | one of its discriminants |
//!
//! Not validated: whether a returned pointer points at a live object of the
//! right type (it stays a [`ForeignPtr`], which Rust never dereferences),
//! pointers into large direct mappings of the protected allocator, Rust
//! thread stacks and Rust statics (which are not isolated yet).
//!
//! # Example
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;
//!
//! use core::ffi::{c_char, c_int, c_void};
//! use cofferdam::{ForeignBuf, ForeignPtr};
//!
//! #[cofferdam::sandbox(compartment = "libc", safe(abs))]
//! extern "C" {
//!     /// The length of a NUL-terminated string.
//!     pub fn strlen(s: *const c_char) -> usize;
//!     pub fn abs(x: c_int) -> c_int;
//!     pub fn malloc(size: usize) -> *mut c_void;
//!     pub fn free(p: *mut c_void);
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A function of integers only, declared safe: no `unsafe` at the call.
//! assert_eq!(abs(-7)?, 7);
//!
//! let text = ForeignBuf::from_str_nul("cofferdam")?;
//! // SAFETY: `text` is a NUL-terminated string in foreign memory.
//! assert_eq!(unsafe { strlen(&text) }?, 9);
//!
//! // A returned pointer is a `ForeignPtr`, checked to lie outside the
//! // protected heap.
//! // SAFETY: malloc's contract has no precondition.
//! let p: ForeignPtr<c_void> = unsafe { malloc(16) }?;
//! assert!(!p.is_null());
//! // SAFETY: `p` came from malloc and is freed once.
//! unsafe { free(p) }?;
//!
//! // A Rust pointer does not compile:
//! // let mut local = 0u8;
//! // unsafe { strlen(&mut local) }?;   // error: a Rust pointer cannot be passed ...
//! # Ok(())
//! # }
//! ```

mod args;

pub use args::{ForeignArg, IntoForeignAddr, IntoForeignPtr};

use core::num::{
    NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI8, NonZeroIsize, NonZeroU16, NonZeroU32,
    NonZeroU64, NonZeroU8, NonZeroUsize,
};

use crate::compartment::{Compartment, GateArgs};
use crate::error::Error;
use crate::foreign::ForeignPtr;

/// A Rust type that a foreign function may return, built from the two
/// return registers (`rax`, `rdx`) only after checking that their content is
/// a valid value of the type.
///
/// The trait is safe to implement: `from_foreign` builds its value with safe
/// code, so a wrong implementation gives a wrong value, never an invalid one.
/// For enums, derive [`ForeignEnum`](crate::ForeignEnum) rather than
/// implementing it by hand.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by a sandboxed foreign function",
    label = "no validation for this return type",
    note = "returns are validated before Rust sees them: use an integer, `bool`, `char`, a `NonZero` integer, a pointer written `*const T`/`*mut T` (returned as `ForeignPtr<T>`), `f32`/`f64` (written `f32`, `f64`, `c_float` or `c_double`, not through an alias), or an enum that derives `cofferdam::ForeignEnum`",
    note = "128-bit integers and structs returned by value do not travel through the gate"
)]
pub trait FromForeign: Sized {
    /// The value in `rax` (and `rdx`), or why those bits are not one.
    fn from_foreign(rax: u64, rdx: u64) -> Result<Self, String>;
}

/// Validates a foreign function's return registers as an `R`: the form the
/// [`sandbox`](crate::sandbox) wrappers use after
/// [`Compartment::call_words`].
///
/// ```
/// use cofferdam::{validate, Error};
/// assert_eq!(validate::check::<bool>("f", [1, 0]), Ok(true));
/// assert!(matches!(
///     validate::check::<bool>("f", [2, 0]),
///     Err(Error::Invalid { function: "f", .. })
/// ));
/// ```
#[inline]
pub fn check<R: FromForeign>(function: &'static str, words: [u64; 2]) -> Result<R, Error> {
    R::from_foreign(words[0], words[1]).map_err(|detail| Error::Invalid { function, detail })
}

/// As [`Compartment::call`], with the return validated through
/// [`FromForeign`]: a value that is invalid for `R` is
/// [`Error::Invalid`], never undefined behaviour.
///
/// # Safety
/// As for [`Compartment::call`]: `f` must be a C function whose parameters
/// match `args` in number and width and whose return travels in `rax` (and
/// `rdx`). Unlike with `Compartment::call`, the *value* it returns need not
/// be valid for `R`.
#[inline]
pub unsafe fn call<A: GateArgs, R: FromForeign>(
    compartment: &Compartment,
    function: &'static str,
    f: *const (),
    args: A,
) -> Result<R, Error> {
    // SAFETY: forwarded contract.
    let words = unsafe { compartment.call_words(function, f, args.into_words()) }?;
    check(function, words)
}

/// Whether `addr` may be handed to Rust as a foreign pointer: it must not
/// point into protected memory ([`crate::is_protected`]: the Rust heap, a
/// tagged Rust stack, Cofferdam's own state).
pub fn check_foreign_addr(addr: usize) -> Result<(), String> {
    if crate::is_protected(addr, 1) {
        Err(format!("pointer {addr:#x} points into protected memory"))
    } else {
        Ok(())
    }
}

impl FromForeign for () {
    #[inline]
    fn from_foreign(_: u64, _: u64) -> Result<Self, String> {
        Ok(())
    }
}

macro_rules! ret_int {
    ($($t:ty),*) => { $(
        impl FromForeign for $t {
            /// Every value is valid; only the low bits the ABI defines for
            /// the type are kept (the rest of `rax` is unspecified).
            #[inline]
            fn from_foreign(rax: u64, _: u64) -> Result<Self, String> {
                Ok(rax as $t)
            }
        }
    )* };
}
ret_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl FromForeign for bool {
    /// `_Bool` is returned in `al`: 0 is `false`, 1 is `true`, anything else
    /// is invalid.
    #[inline]
    fn from_foreign(rax: u64, _: u64) -> Result<Self, String> {
        match rax as u8 {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("{b} is not a bool (0 or 1)")),
        }
    }
}

impl FromForeign for char {
    /// A Unicode scalar value in `eax`.
    #[inline]
    fn from_foreign(rax: u64, _: u64) -> Result<Self, String> {
        let v = rax as u32;
        char::from_u32(v).ok_or_else(|| format!("{v:#x} is not a Unicode scalar value"))
    }
}

macro_rules! ret_nonzero {
    ($($nz:ty => $t:ty),*) => { $(
        impl FromForeign for $nz {
            /// Any value but zero.
            #[inline]
            fn from_foreign(rax: u64, _: u64) -> Result<Self, String> {
                <$nz>::new(rax as $t).ok_or_else(|| {
                    format!("0 is not a valid `{}`", stringify!($nz))
                })
            }
        }
    )* };
}
ret_nonzero!(
    NonZeroU8 => u8, NonZeroU16 => u16, NonZeroU32 => u32, NonZeroU64 => u64,
    NonZeroUsize => usize, NonZeroI8 => i8, NonZeroI16 => i16, NonZeroI32 => i32,
    NonZeroI64 => i64, NonZeroIsize => isize
);

impl<T> FromForeign for ForeignPtr<T> {
    /// Null, or an address outside the protected heap.
    #[inline]
    fn from_foreign(rax: u64, _: u64) -> Result<Self, String> {
        let addr = rax as usize;
        check_foreign_addr(addr)?;
        Ok(ForeignPtr::from_addr(addr))
    }
}

impl<T> FromForeign for Option<ForeignPtr<T>> {
    /// `None` for null; otherwise an address outside the protected heap.
    #[inline]
    fn from_foreign(rax: u64, rdx: u64) -> Result<Self, String> {
        if rax == 0 {
            Ok(None)
        } else {
            ForeignPtr::from_foreign(rax, rdx).map(Some)
        }
    }
}

/// A floating-point argument (`f32`, `f64`): travels in an SSE register.
pub trait FloatArg: Copy {
    /// The register's low 8 bytes (an `f32` in the low 4).
    fn float_word(self) -> u64;
}
impl FloatArg for f64 {
    #[inline]
    fn float_word(self) -> u64 {
        self.to_bits()
    }
}
impl FloatArg for f32 {
    #[inline]
    fn float_word(self) -> u64 {
        self.to_bits() as u64
    }
}

/// What generated wrappers call for a floating-point parameter.
#[inline]
pub fn float_word<T: FloatArg>(v: T) -> u64 {
    v.float_word()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bool_reads_al_only() {
        assert_eq!(bool::from_foreign(0xffff_ff00, 0), Ok(false));
        assert_eq!(bool::from_foreign(0x1_0000_0001, 0), Ok(true));
        assert!(bool::from_foreign(2, 0).is_err());
        assert!(bool::from_foreign(0xff, 0).is_err());
    }

    #[test]
    fn integers_keep_their_low_bits() {
        assert_eq!(i32::from_foreign(0xdead_beef_ffff_fffe, 0), Ok(-2));
        assert_eq!(u8::from_foreign(0x1234, 0), Ok(0x34));
        assert_eq!(u64::from_foreign(u64::MAX, 0), Ok(u64::MAX));
    }

    #[test]
    fn char_must_be_a_scalar_value() {
        assert_eq!(char::from_foreign(0x41, 0), Ok('A'));
        assert!(char::from_foreign(0xd800, 0).is_err());
        assert!(char::from_foreign(0x11_0000, 0).is_err());
    }

    #[test]
    fn nonzero_refuses_zero() {
        assert!(NonZeroU32::from_foreign(0x1_0000_0000, 0).is_err());
        assert_eq!(
            NonZeroI8::from_foreign(0xff, 0),
            Ok(NonZeroI8::new(-1).unwrap())
        );
    }

    #[test]
    fn null_pointers() {
        assert_eq!(ForeignPtr::<u8>::from_foreign(0, 0), Ok(ForeignPtr::null()));
        assert_eq!(Option::<ForeignPtr<u8>>::from_foreign(0, 0), Ok(None));
        assert_eq!(
            Option::<ForeignPtr<u8>>::from_foreign(0x1000, 0),
            Ok(Some(ForeignPtr::from_addr(0x1000)))
        );
    }
}
