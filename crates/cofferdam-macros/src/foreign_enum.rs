//! `#[derive(ForeignEnum)]`: validation of a fieldless `#[repr(..)]` enum
//! returned by foreign code, and passing it by value.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Fields, Ident};

use crate::Errors;

/// The integer types an enum's `#[repr]` may name.
const INTS: [&str; 10] = [
    "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
];

pub(crate) fn derive(input: DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.generics,
            "`ForeignEnum` cannot be derived for a generic enum",
        ));
    }
    // The integer the discriminant travels as: the repr's, or C's `int` for
    // `#[repr(C)]` (checked below to be the enum's size).
    let mut repr: Option<Ident> = None;
    let mut repr_c = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        let r = attr.parse_nested_meta(|m| {
            if let Some(id) = m.path.get_ident() {
                if INTS.iter().any(|i| id == i) {
                    repr = Some(id.clone());
                } else if id == "C" {
                    repr_c = true;
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            errors.push(e);
        }
    }
    let int = match (repr, repr_c) {
        (Some(i), _) => i,
        (None, true) => format_ident!("i32"),
        (None, false) => {
            errors.push(syn::Error::new_spanned(
                name,
                format!("`{name}` needs a `#[repr(..)]` (an integer type such as `#[repr(i32)]`, or `#[repr(C)]`) to derive `ForeignEnum`: its layout must be the C type's"),
            ));
            format_ident!("i32")
        }
    };
    let variants: Vec<&Ident> = match &input.data {
        Data::Enum(e) => {
            for v in &e.variants {
                if !matches!(v.fields, Fields::Unit) {
                    errors.push(syn::Error::new_spanned(
                        &v.fields,
                        format!("`{name}::{}` has fields; `ForeignEnum` is for fieldless enums, whose values are their discriminants", v.ident),
                    ));
                }
            }
            e.variants.iter().map(|v| &v.ident).collect()
        }
        _ => {
            errors.push(syn::Error::new_spanned(
                name,
                "`ForeignEnum` can only be derived for an enum",
            ));
            Vec::new()
        }
    };
    if let Some(e) = errors.combine() {
        return e.to_compile_error();
    }
    let name_str = name.to_string();
    let size_check = repr_c_size_check(name, &int);
    quote! {
        #size_check
        impl ::cofferdam::validate::FromForeign for #name {
            /// One of the enum's discriminants, in the low bits of `rax`
            /// that its representation occupies.
            fn from_foreign(rax: u64, _rdx: u64) -> ::core::result::Result<Self, ::std::string::String> {
                let v = rax as #int;
                #(
                    if v == #name::#variants as #int {
                        return ::core::result::Result::Ok(#name::#variants);
                    }
                )*
                ::core::result::Result::Err(::std::format!(
                    "{} is not a discriminant of `{}`",
                    v,
                    #name_str,
                ))
            }
        }
        impl ::cofferdam::validate::ForeignArg for #name {
            fn into_word(self) -> u64 {
                ::cofferdam::validate::ForeignArg::into_word(self as #int)
            }
        }
    }
}

/// For `#[repr(C)]`, the discriminant is read as C's `int`: refuse at
/// compile time an enum whose size is not that.
fn repr_c_size_check(name: &Ident, int: &Ident) -> TokenStream {
    if int != "i32" {
        return quote! {};
    }
    let msg = format!("`{name}` is not the size of its `#[repr]` integer: give it an explicit integer `#[repr(..)]`");
    quote! {
        const _: () = ::core::assert!(
            ::core::mem::size_of::<#name>() == ::core::mem::size_of::<i32>(),
            #msg
        );
    }
}
