//! Procedural macros of [Cofferdam](https://docs.rs/cofferdam): use them
//! through the `cofferdam` crate, as `#[cofferdam::sandbox]`,
//! `#[derive(cofferdam::ForeignEnum)]` and `#[derive(cofferdam::Pod)]`. The generated code names only
//! `::cofferdam::...` paths.
//!
//! The macro works in phases, one file each: `attr` reads the attribute's
//! arguments, `parse` the `extern` block, `check` decides how each
//! parameter and return crosses the gate and refuses what cannot, and
//! `expand` writes the code. Every problem found is reported, each at its
//! own tokens, in one compilation.

#![deny(missing_docs)]

mod attr;
mod check;
mod expand;
mod foreign_enum;
mod parse;
mod pod;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput, ItemForeignMod};

/// Wraps the functions of an `extern "C"` block so that every call goes
/// through a Cofferdam compartment, with arguments restricted to foreign
/// memory and returns validated.
///
/// ```ignore
/// use core::ffi::{c_char, c_int, c_void};
/// use cofferdam::{ForeignBuf, ForeignPtr};
///
/// #[cofferdam::sandbox(compartment = "libc", safe(abs), handle = pub libc_compartment)]
/// extern "C" {
///     pub fn strlen(s: *const c_char) -> usize;
///     pub fn memset(s: *mut c_void, c: c_int, n: usize) -> *mut c_void;
///     pub fn abs(x: c_int) -> c_int;
///     #[cofferdam(safe)]
///     pub fn getpid() -> c_int;
/// }
///
/// let text = ForeignBuf::from_str_nul("cofferdam")?;
/// // SAFETY: `text` is a NUL-terminated string in foreign memory.
/// let n: usize = unsafe { strlen(&text) }?;       // Result<usize, cofferdam::Error>
/// let a: c_int = abs(-3)?;                         // safe: integers only
/// // SAFETY: `text` holds at least the 4 bytes memset writes.
/// let p: ForeignPtr<c_void> = unsafe { memset(&text, 0, 4) }?;
/// ```
///
/// (A version that runs is in the documentation of `cofferdam::validate`.)
///
/// # What is generated
///
/// * The declarations, unchanged but for the markers below, in a private
///   module (`__cofferdam_sandbox_<first function>`) that `use super::*`
///   and keeps the block's attributes (`#[link(..)]`), so linking is as
///   before. The block must therefore be at module level, not in a function
///   body.
/// * One compartment per block, created at the first call (in a
///   `cofferdam::LazyCompartment`). If creating it fails, that call returns
///   the error and the next call tries again: a failure is not kept.
/// * The block's *handle*, a function returning
///   `Result<&'static cofferdam::Compartment, cofferdam::Error>` (the
///   compartment, created if it was not). Through it a program reads the
///   compartment's state (`is_poisoned()`, `last_fault()`, `renewals()`) and
///   renews it after a fault (`renew()`), so that one bad input does not
///   stop a server:
///
///   ```ignore
///   #[cofferdam::sandbox(compartment = "parser")]
///   extern "C" { pub fn parse(buf: *const u8, len: usize) -> c_int; }
///
///   match unsafe { parse(&input, input.len()) } {
///       Ok(n) => reply(n),
///       Err(cofferdam::Error::Fault(f)) => {
///           log(&f);                          // the fault, also in last_fault()
///           parser_compartment()?.renew()?;   // the next request is served
///       }
///       Err(e) => return Err(e.into()),
///   }
///   ```
///
///   Its name is `handle = [vis] name` if given; otherwise
///   `<compartment>_compartment`, the compartment's name in lower case with
///   every character that cannot be in an identifier made `_` (`"zlib"`:
///   `zlib_compartment`, `"libc-2024"`: `libc_2024_compartment`), with the
///   visibility of the block's first function. Two blocks in one module
///   with the same compartment name (two compartments: one per block) need
///   a `handle` for at least one of them. What renewal restores, and what
///   it cannot (on `mpk` the library's own statics are not reset), is in
///   the docs of `Compartment::renew`.
/// * For each function, a wrapper of the same name and visibility in the
///   surrounding scope, returning `Result<T, cofferdam::Error>`:
///   * a `*const T` / `*mut T` parameter takes
///     `impl cofferdam::validate::IntoForeignPtr<T>` (`*const c_void`:
///     `impl IntoForeignAddr`): a `ForeignPtr<T>`, `&ForeignBox<T>` or
///     `&ForeignVec<T>`. `&mut x`, `v.as_mut_ptr()` or a `Vec` do not
///     compile, with a message saying what to use instead;
///   * an integer parameter (`c_int`, `usize`, `bool`, an enum deriving
///     [`ForeignEnum`], ...) is passed as is (`cofferdam::validate::ForeignArg`);
///   * an `unsafe extern "C" fn` (or `Option` of one) is passed as is;
///   * a `*const T` / `*mut T` return becomes `ForeignPtr<T>`, refused if it
///     points into the protected heap; any other return is validated through
///     `cofferdam::validate::FromForeign` (a `bool` of 2, an enum
///     discriminant that names no variant: `Err(Error::Invalid { .. })`).
///   * Docs, `cfg` and lint attributes of the declaration are copied to it.
///
/// # Arguments
///
/// * `compartment = "name"`: the compartment's name (in errors and fault
///   reports). Without it, the `name` of the block's `#[link(name = "..")]`;
///   one of the two is required.
/// * `safe(f, g, ..)`: functions whose wrappers are safe `fn`s. The same
///   per function: `#[safe]` or `#[cofferdam(safe)]` on the declaration
///   (removed from the raw declaration), or `safe fn` in an
///   `unsafe extern "C"` block (edition 2024).
/// * `handle = [vis] name`: the name and visibility of the block's handle
///   (above), instead of `<compartment>_compartment`.
///
/// # Which wrappers are safe
///
/// Every wrapper is an `unsafe fn` unless declared safe: the foreign
/// function's contract on its pointer arguments (lengths, terminators,
/// lifetimes) is the caller's to uphold. A safe wrapper is allowed only
/// for a function whose parameters are all integers (or none): no caller
/// can then hand it memory, and what remains is the function's own
/// contract, which declaring it safe asserts has no precondition that
/// could break Rust's invariants (`abs`, `getpid`, `compressBound`: yes;
/// `close`, which could close a descriptor Rust owns: no). A function with
/// a pointer or callback parameter cannot be declared safe (compile
/// error): safe code can build a `ForeignPtr` of any address, and the
/// backends do not yet protect everything such an address may name (Rust
/// stacks and statics with `mpk`; anything with `split` or `none`). Write
/// a safe function around it instead, owning its buffers.
///
/// # What is refused at compile time, naming the function
///
/// More parameters than the gate carries (six integer or pointer and eight
/// `f32`/`f64` arguments in registers, at most 16 more on the stack),
/// variadic functions (`...`), x87 `long double` and other non-standard
/// floats, 128-bit integers, Rust references, arrays and tuples, returned
/// function pointers, `!`, foreign statics, and an ABI other than `"C"`. Types the macro cannot see through
/// (aliases, structs by value) are checked by the traits above, whose
/// errors point at the declaration; a pointer hidden behind an alias
/// (`pub type z_streamp = *mut z_stream;`) is refused there too: write
/// `*mut z_stream` in the block.
#[proc_macro_attribute]
pub fn sandbox(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = parse_macro_input!(input as ItemForeignMod);
    let mut errors = Errors::default();
    let args = match attr::parse(args.into()) {
        Ok(a) => a,
        Err(e) => {
            errors.push(e);
            attr::Args::default()
        }
    };
    let block = parse::block(item, &mut errors);
    let (block, fns, compartment) = check::block(&args, block, &mut errors);
    if let Some(e) = errors.combine() {
        return e.to_compile_error().into();
    }
    let compartment = compartment.expect("a name, or an error was reported");
    expand::expand(&args, &block, &fns, &compartment).into()
}

/// Derives `cofferdam::validate::FromForeign` and
/// `cofferdam::validate::ForeignArg` for a fieldless enum with an integer
/// `#[repr(..)]` (or `#[repr(C)]`, read as C's `int`), so that a sandboxed
/// function may return it, or take it, by value.
///
/// A returned value that is none of the enum's discriminants is
/// `Err(cofferdam::Error::Invalid { .. })`, never an invalid enum.
///
/// ```ignore
/// #[derive(Clone, Copy, Debug, PartialEq, cofferdam::ForeignEnum)]
/// #[repr(i32)]
/// pub enum Status {
///     Ok = 0,
///     Busy = 5,
/// }
/// ```
#[proc_macro_derive(ForeignEnum)]
pub fn derive_foreign_enum(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    foreign_enum::derive(input).into()
}

/// Derives `cofferdam::Pod` for a `#[repr(C)]` (or `#[repr(transparent)]`)
/// struct, so that it can live in foreign memory (`ForeignBox<T>`,
/// `ForeignVec<T>`) and be read back: the mirror of a C struct, field for
/// field.
///
/// ```ignore
/// use cofferdam::{ForeignBox, ForeignPtr};
///
/// // struct header { unsigned char *buf; unsigned len; int flags; };
/// #[derive(Clone, Copy, Debug, Default, cofferdam::Pod)]
/// #[repr(C)]
/// pub struct Header {
///     pub buf: ForeignPtr<u8>,
///     pub len: u32,
///     pub flags: i32,
/// }
///
/// let h = ForeignBox::new(Header::default())?;
/// ```
///
/// Refused at compile time, with an error that says why:
///
/// * a struct without `#[repr(C)]` or `#[repr(transparent)]` (Rust's own
///   layout is not C's); enums (a bad discriminant would be an invalid
///   value: mirror the field as an integer, or use `ForeignEnum` to
///   validate it), unions and generic structs;
/// * a field that is not `Pod` (`bool`, `char`, references, raw pointers,
///   enums, `Option`s; a pointer field is a `cofferdam::ForeignPtr<T>`),
///   reported at the field;
/// * padding: the struct's size must be the sum of its fields' sizes
///   (checked by a constant assertion), because padding bytes are not
///   values the derive can vouch for. Declare C's padding as fields
///   (`_pad: [u8; 4]`).
///
/// The struct must also be `Copy` (derive `Clone, Copy`).
///
/// A `Pod` value read back from foreign memory is whatever foreign code
/// left there: always a valid value, never a trusted one. In particular a
/// `ForeignPtr` field is only an address; it is used through the gate or
/// `ForeignPtr::read` / `Compartment::read_foreign`, which check it.
#[proc_macro_derive(Pod)]
pub fn derive_pod(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    pod::derive(input).into()
}

/// Errors collected over all phases, reported together.
#[derive(Default)]
struct Errors(Vec<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        self.0.push(e);
    }

    /// One error carrying all of them, if there were any.
    fn combine(self) -> Option<syn::Error> {
        let mut it = self.0.into_iter();
        let mut first = it.next()?;
        for e in it {
            first.combine(e);
        }
        Some(first)
    }
}
