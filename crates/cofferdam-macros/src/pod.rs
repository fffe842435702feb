//! `#[derive(Pod)]`: a `#[repr(C)]` (or `#[repr(transparent)]`) struct whose
//! every bit pattern is a valid value, so that it may be read back from
//! foreign memory.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput};

use crate::Errors;

pub(crate) fn derive(input: DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &input.generics,
            format!("`Pod` cannot be derived for a generic struct: write `unsafe impl cofferdam::Pod for {name}<..>` by hand, with the checks it needs"),
        ));
    }
    // The layout must be fixed: C's, or that of the one field.
    let mut c_layout = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        let r = attr.parse_nested_meta(|m| {
            if m.path.is_ident("C") || m.path.is_ident("transparent") {
                c_layout = true;
            }
            // `packed`, `align(N)`: allowed beside `C`; their effect on
            // padding is what the size check below sees.
            if m.input.peek(syn::token::Paren) {
                let _content;
                syn::parenthesized!(_content in m.input);
            }
            Ok(())
        });
        if let Err(e) = r {
            errors.push(e);
        }
    }
    let fields = match &input.data {
        Data::Struct(s) => s.fields.iter().collect::<Vec<_>>(),
        Data::Enum(e) => {
            errors.push(syn::Error::new(
                e.enum_token.span(),
                format!("`Pod` cannot be derived for the enum `{name}`: a discriminant that names no variant would be an invalid value. Mirror the C field as its integer type, or derive `cofferdam::ForeignEnum` to validate it"),
            ));
            Vec::new()
        }
        Data::Union(u) => {
            errors.push(syn::Error::new(
                u.union_token.span(),
                format!("`Pod` cannot be derived for the union `{name}`: mirror it as a struct holding its largest member, or as bytes (`[u8; N]`)"),
            ));
            Vec::new()
        }
    };
    if !c_layout && matches!(input.data, Data::Struct(_)) {
        errors.push(syn::Error::new_spanned(
            name,
            format!("`{name}` needs `#[repr(C)]` (or `#[repr(transparent)]`) to derive `Pod`: Rust's own layout may reorder fields and is not the C struct's"),
        ));
    }
    if let Some(e) = errors.combine() {
        return e.to_compile_error();
    }
    // Every field is Pod: one check per field, reported at its type.
    let field_checks = fields.iter().map(|f| {
        let ty = &f.ty;
        quote_spanned! {ty.span()=>
            __cofferdam_is_pod::<#ty>();
        }
    });
    let sizes = fields.iter().map(|f| {
        let ty = &f.ty;
        quote! { + ::core::mem::size_of::<#ty>() }
    });
    let padding = format!(
        "`{name}` has padding: its size is more than the sum of its fields' sizes. Padding bytes are not `Pod` (foreign code may leave anything there and Rust must not assume it initialised): declare them as fields (`_pad: [u8; N]`) where the C compiler puts them"
    );
    // At the struct's name, so that is where the error points.
    let no_padding = quote_spanned! {name.span()=>
        const _: () = ::core::assert!(
            ::core::mem::size_of::<#name>() == 0 #(#sizes)*,
            #padding
        );
    };
    quote! {
        const _: () = {
            fn __cofferdam_is_pod<T: ::cofferdam::Pod>() {}
            #[allow(dead_code)]
            fn __cofferdam_fields_are_pod() {
                #(#field_checks)*
            }
        };
        #no_padding
        // SAFETY: the struct is `#[repr(C)]` or `#[repr(transparent)]`
        // (checked by the derive), each of its fields is `Pod` (the bound
        // above) and its size is the sum of its fields' sizes (the assertion
        // above), so it has no padding: every byte belongs to a field, and
        // any bit pattern of those bytes is a valid value of each field,
        // hence of the struct.
        unsafe impl ::cofferdam::Pod for #name {}
    }
}
