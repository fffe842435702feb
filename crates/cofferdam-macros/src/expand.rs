//! Emits the private module holding the raw declarations and the lazily
//! created compartment, and one wrapper per function.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::LitStr;

use crate::attr::Args;
use crate::check::{Checked, Param, Ret, REG_ARGS, SSE_ARGS, STACK_ARGS};
use crate::parse::Block;

pub(crate) fn expand(
    args: &Args,
    block: &Block,
    fns: &[Checked],
    compartment: &LitStr,
) -> TokenStream {
    let module = match fns.first() {
        Some(f) => format_ident!("__cofferdam_sandbox_{}", f.func.sig.ident),
        None => format_ident!("__cofferdam_sandbox"),
    };
    let cfgs = &block.cfgs;
    let block_attrs = &block.attrs;
    let unsafety = &block.unsafety;
    let abi = &block.abi;
    let raw = fns.iter().map(|c| {
        let attrs = &c.func.raw_attrs;
        let sig = &c.func.sig;
        quote! { #(#attrs)* pub(super) #sig; }
    });
    let handle = handle(args, fns, cfgs, &module, compartment);
    let wrappers = fns.iter().map(|c| wrapper(&module, cfgs, c, compartment));
    let some_or_none = |t: Option<TokenStream>| match t {
        Some(t) => quote! { ::core::option::Option::Some(#t) },
        None => quote! { ::core::option::Option::None },
    };
    let backend = some_or_none(args.backend.as_ref().map(|b| quote! { #b }));
    let timeout = some_or_none(args.timeout_ms.as_ref().map(|n| quote! { #n }));
    let memory = some_or_none(args.memory_limit.as_ref().map(|n| quote! { #n }));
    quote! {
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_snake_case, non_camel_case_types, dead_code, clippy::all)]
        mod #module {
            #[allow(unused_imports)]
            use super::*;

            #(#block_attrs)*
            #unsafety #abi {
                #(#raw)*
            }

            /// The block's compartment, created at the first call; an error
            /// creating it is returned by that call, and the next one tries
            /// again.
            #[inline]
            pub(super) fn __cofferdam_compartment(
            ) -> ::core::result::Result<&'static ::cofferdam::Compartment, ::cofferdam::Error> {
                static COMPARTMENT: ::cofferdam::LazyCompartment =
                    ::cofferdam::LazyCompartment::with_options(#compartment, #backend, #timeout, #memory);
                COMPARTMENT.get()
            }
        }
        #handle
        #(#wrappers)*
    }
}

/// The block's handle: `handle = [vis] name` as asked, or else
/// `<compartment>_compartment` with the first function's visibility.
fn handle(
    args: &Args,
    fns: &[Checked],
    cfgs: &[syn::Attribute],
    module: &syn::Ident,
    compartment: &LitStr,
) -> TokenStream {
    let (vis, name, allow) = match &args.handle {
        Some((vis, name)) => (quote! { #vis }, name.clone(), quote! {}),
        None => {
            let vis = fns.first().map(|f| &f.func.vis);
            (
                quote! { #vis },
                default_handle(compartment),
                // Not asked for: unused is fine.
                quote! { #[allow(dead_code)] },
            )
        }
    };
    let doc = format!(
        " The compartment `{}` that the functions of this `#[cofferdam::sandbox]` block are called through, created at first use (a failed creation is retried at the next use).",
        compartment.value()
    );
    quote! {
        #(#cfgs)*
        #[doc = #doc]
        #[doc = ""]
        #[doc = " Read its state with `is_poisoned()` and `last_fault()`; after a fault, `renew()` makes it usable again (see `cofferdam::Compartment::renew` for what renewal restores and what it cannot)."]
        #allow
        #vis fn #name() -> ::core::result::Result<&'static ::cofferdam::Compartment, ::cofferdam::Error> {
            #module::__cofferdam_compartment()
        }
    }
}

/// `<compartment>_compartment`: the name in lower case, every character
/// that cannot be in an identifier made `_` (`"libc-2024"`:
/// `libc_2024_compartment`).
fn default_handle(compartment: &LitStr) -> syn::Ident {
    let mut name: String = compartment
        .value()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    name.push_str("_compartment");
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    syn::Ident::new(&name, compartment.span())
}

fn wrapper(
    module: &syn::Ident,
    cfgs: &[syn::Attribute],
    c: &Checked,
    compartment: &LitStr,
) -> TokenStream {
    let sig = &c.func.sig;
    let name = &sig.ident;
    let name_str = name.to_string();
    let vis = &c.func.vis;
    let attrs = &c.func.wrapper_attrs;
    let mut inputs = Vec::new();
    // System V: integers and pointers fill six registers, floats eight;
    // what does not fit goes on the stack in parameter order.
    let mut words = Vec::new();
    let mut sse = Vec::new();
    let mut stack_words = Vec::new();
    let mut callbacks = Vec::new();
    let mut prelude = Vec::new();
    let int_word = |w: TokenStream, words: &mut Vec<TokenStream>, stack: &mut Vec<TokenStream>| {
        if words.len() < REG_ARGS {
            words.push(w);
        } else {
            stack.push(w);
        }
    };
    for p in &c.params {
        let pname = p.name();
        match p {
            Param::Ptr { pointee, .. } => {
                let span = pointee.span();
                inputs.push(quote_spanned! {span=>
                    #pname: impl ::cofferdam::validate::IntoForeignPtr<#pointee>
                });
                int_word(
                    quote_spanned! {span=>
                        ::cofferdam::validate::IntoForeignPtr::<#pointee>::into_foreign_ptr(#pname).addr() as u64
                    },
                    &mut words,
                    &mut stack_words,
                );
            }
            Param::Void { span, .. } => {
                let span = *span;
                inputs.push(quote_spanned! {span=>
                    #pname: impl ::cofferdam::validate::IntoForeignAddr
                });
                int_word(
                    quote_spanned! {span=>
                        ::cofferdam::validate::IntoForeignAddr::into_foreign_addr(#pname).addr() as u64
                    },
                    &mut words,
                    &mut stack_words,
                );
            }
            Param::Callback {
                optional,
                sse: pattern,
                ..
            } => {
                let classes = pattern.iter().map(|&f| {
                    if f {
                        quote! { ::cofferdam::callback::Sse }
                    } else {
                        quote! { ::cofferdam::callback::Int }
                    }
                });
                // The C declaration's parameter classes, as a type: a
                // callback of another shape does not type-check.
                let shape = quote! { (#(#classes,)*) };
                if *optional {
                    inputs.push(quote! {
                        #pname: ::core::option::Option<::cofferdam::CallbackRef<'_, #shape>>
                    });
                    callbacks.push(quote! { #pname.map_or(u32::MAX, |c| c.slot()) });
                    int_word(
                        quote! { #pname.map_or(0u64, |c| c.stub().addr() as u64) },
                        &mut words,
                        &mut stack_words,
                    );
                } else {
                    inputs.push(quote! {
                        #pname: impl ::core::convert::Into<::cofferdam::CallbackRef<'_, #shape>>
                    });
                    prelude.push(quote! {
                        let #pname: ::cofferdam::CallbackRef<'_, #shape> = ::core::convert::Into::into(#pname);
                    });
                    callbacks.push(quote! { #pname.slot() });
                    int_word(
                        quote! { #pname.stub().addr() as u64 },
                        &mut words,
                        &mut stack_words,
                    );
                }
            }
            Param::Float { ty, .. } => {
                inputs.push(quote! { #pname: #ty });
                let w = quote! { ::cofferdam::validate::float_word(#pname) };
                if sse.len() < SSE_ARGS {
                    sse.push(w);
                } else {
                    stack_words.push(w);
                }
            }
            Param::Scalar { ty, .. } => {
                let span = ty.span();
                inputs.push(quote! { #pname: #ty });
                int_word(
                    quote_spanned! {span=>
                        ::cofferdam::validate::ForeignArg::into_word(#pname)
                    },
                    &mut words,
                    &mut stack_words,
                );
            }
        }
    }
    // Too many parameters were reported by the checks; never go past the
    // gate's limit.
    stack_words.truncate(STACK_ARGS);
    while words.len() < REG_ARGS {
        words.push(quote! { 0u64 });
    }
    let nsse = sse.len();
    while sse.len() < SSE_ARGS {
        sse.push(quote! { 0u64 });
    }
    let n_cb = callbacks.len();
    let (ret_ty, ret_span) = match &c.ret {
        Ret::Unit => (quote! { () }, Span::call_site()),
        Ret::Ptr(t) => (quote! { ::cofferdam::ForeignPtr<#t> }, t.span()),
        Ret::Float { ty, .. } => (quote! { #ty }, ty.span()),
        Ret::Value(t) => (quote! { #t }, t.span()),
    };
    let validate = match &c.ret {
        Ret::Float { single: true, .. } => quote! {
            ::core::result::Result::Ok(f32::from_bits(__cofferdam_ret.xmm0 as u32))
        },
        Ret::Float { single: false, .. } => quote! {
            ::core::result::Result::Ok(f64::from_bits(__cofferdam_ret.xmm0))
        },
        _ => quote_spanned! {ret_span=>
            ::cofferdam::validate::check::<#ret_ty>(#name_str, [__cofferdam_ret.rax, __cofferdam_ret.rdx])
        },
    };
    let n_stack = stack_words.len();
    let docs = docs(&name_str, &compartment.value(), c);
    let unsafety = if c.safe {
        quote! {}
    } else {
        quote! { unsafe }
    };
    quote! {
        #(#cfgs)*
        #(#attrs)*
        #(#[doc = #docs])*
        #[inline]
        // The wrapper mirrors the C signature, however long it is.
        #[allow(clippy::too_many_arguments)]
        #vis #unsafety fn #name(#(#inputs),*) -> ::core::result::Result<#ret_ty, ::cofferdam::Error> {
            #(#prelude)*
            let __cofferdam_words: [u64; 6] = [#(#words),*];
            let __cofferdam_sse: [u64; 8] = [#(#sse),*];
            let __cofferdam_stack: [u64; #n_stack] = [#(#stack_words),*];
            let __cofferdam_callbacks: [u32; #n_cb] = [#(#callbacks),*];
            let __cofferdam_compartment = #module::__cofferdam_compartment()?;
            // SAFETY (argued in cofferdam-macros/src/expand.rs): the address
            // is that of the foreign function declared with this very
            // signature; the words were converted from the wrapper's
            // parameters in order and classified as System V does (integers
            // and pointers in six registers, floats in eight, the rest on
            // the stack in parameter order, within the gate's limits), and
            // the return is read from the register its type uses, through
            // `FromForeign` (which validates it) for integers and pointers.
            // Callbacks are Cofferdam stubs armed for this call only. What
            // the function does with its arguments is the contract of this
            // wrapper: `unsafe fn`, or safe only for scalar parameters.
            // `__COFFERDAM_INSPECTED` is this wrapper's own and only ever
            // used with this function: its object is inspected at the
            // first call, and later calls pay one relaxed load for that.
            #[allow(unused_unsafe)]
            let __cofferdam_ret = unsafe {
                static __COFFERDAM_INSPECTED: ::cofferdam::InspectedOnce =
                    ::cofferdam::InspectedOnce::new();
                __cofferdam_compartment.call_regs_once(
                    #name_str,
                    #module::#name as *const (),
                    &::cofferdam::CallRegs {
                        ints: __cofferdam_words,
                        sse: __cofferdam_sse,
                        nsse: #nsse,
                        stack: &__cofferdam_stack,
                        callbacks: &__cofferdam_callbacks,
                    },
                    &__COFFERDAM_INSPECTED,
                )
            }?;
            #validate
        }
    }
}

/// The rustdoc added to a wrapper, line by line.
fn docs(name: &str, compartment: &str, c: &Checked) -> Vec<String> {
    let mut d = Vec::new();
    if !c
        .func
        .wrapper_attrs
        .iter()
        .any(|a| a.path().is_ident("doc"))
    {
        d.push(format!(" Calls the foreign function `{name}`."));
    }
    d.push(String::new());
    d.push(format!(
        " Generated by `#[cofferdam::sandbox]`: the call goes through the gate of compartment `{compartment}`, and the return is validated for its Rust type before it is handed back."
    ));
    d.push(String::new());
    d.push(" # Errors".into());
    d.push(String::new());
    d.push(" `Error::Fault` if the foreign function faulted (the compartment is then poisoned), `Error::Poisoned` if an earlier call did, `Error::Invalid` if it returned a value that is not valid for the return type, and the errors of `Compartment::new` (`Unavailable`, `HeapNotProtected`) if the compartment could not be created.".into());
    d.push(String::new());
    if c.safe {
        d.push(" # Why this wrapper is safe".into());
        d.push(String::new());
        d.push(" It was declared safe, and it takes only integers, so no caller can hand the foreign function memory. With the `mpk` backend the foreign code cannot reach the Rust heap whatever it does, and its faults come back as errors. What remains is the foreign function's own contract: the declaration asserts that it has no precondition on these integers that could break Rust's invariants (not, for example, `close` on a file descriptor Rust owns).".into());
    } else {
        d.push(" # Safety".into());
        d.push(String::new());
        d.push(" The caller upholds the foreign function's contract: every pointer argument points to foreign memory that is valid for what the function does with it (its length, its terminator, its lifetime, who frees it), and every integer is one the function accepts.".into());
        d.push(String::new());
        d.push(" Pointer arguments must be foreign memory (`ForeignPtr`, `&ForeignBox`, `&ForeignVec`): a Rust pointer does not compile. With the `mpk` backend a breach of the contract therefore reaches foreign memory or faults, and cannot reach the Rust heap; Rust stacks are protected below their top page, statics and thread-locals only in binaries built with `cofferdam_build::protect_statics()`, and the `split` and `none` backends protect nothing, which is why this wrapper is `unsafe`.".into());
        if c.params.iter().any(|p| matches!(p, Param::Callback { .. })) {
            d.push(String::new());
            d.push(" Callbacks are `cofferdam::Callback`s: C gets a stub that runs the Rust function only during this call, on this thread, with arguments checked (a `ForeignPtr` into protected memory is refused); a panic comes back as `Error::Callback`.".into());
        }
    }
    d
}
