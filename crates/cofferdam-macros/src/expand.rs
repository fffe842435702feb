//! Emits the private module holding the raw declarations and the lazily
//! created compartment, and one wrapper per function.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::LitStr;

use crate::attr::Args;
use crate::check::{Checked, Param, Ret, MAX_ARGS, REG_ARGS};
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
    let handle = args.handle.as_ref().map(|(vis, name)| {
        let doc = format!(
            " The compartment `{}` that the functions of this `#[cofferdam::sandbox]` block are called through, created at first use.",
            compartment.value()
        );
        quote! {
            #(#cfgs)*
            #[doc = #doc]
            #vis fn #name() -> ::core::result::Result<&'static ::cofferdam::Compartment, ::cofferdam::Error> {
                #module::__cofferdam_compartment()
            }
        }
    });
    let wrappers = fns.iter().map(|c| wrapper(&module, cfgs, c, compartment));
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
            /// creating it is returned by every call.
            pub(super) fn __cofferdam_compartment(
            ) -> ::core::result::Result<&'static ::cofferdam::Compartment, ::cofferdam::Error> {
                static COMPARTMENT: ::std::sync::OnceLock<
                    ::core::result::Result<::cofferdam::Compartment, ::cofferdam::Error>,
                > = ::std::sync::OnceLock::new();
                match COMPARTMENT.get_or_init(|| ::cofferdam::Compartment::new(#compartment)) {
                    ::core::result::Result::Ok(c) => ::core::result::Result::Ok(c),
                    ::core::result::Result::Err(e) => {
                        ::core::result::Result::Err(::core::clone::Clone::clone(e))
                    }
                }
            }
        }
        #handle
        #(#wrappers)*
    }
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
    let mut words = Vec::new();
    for p in &c.params {
        let pname = p.name();
        match p {
            Param::Ptr { pointee, .. } => {
                let span = pointee.span();
                inputs.push(quote_spanned! {span=>
                    #pname: impl ::cofferdam::validate::IntoForeignPtr<#pointee>
                });
                words.push(quote_spanned! {span=>
                    ::cofferdam::validate::IntoForeignPtr::<#pointee>::into_foreign_ptr(#pname).addr() as u64
                });
            }
            Param::Void { span, .. } => {
                let span = *span;
                inputs.push(quote_spanned! {span=>
                    #pname: impl ::cofferdam::validate::IntoForeignAddr
                });
                words.push(quote_spanned! {span=>
                    ::cofferdam::validate::IntoForeignAddr::into_foreign_addr(#pname).addr() as u64
                });
            }
            Param::Callback { ty, optional, .. } => {
                inputs.push(quote! { #pname: #ty });
                words.push(if *optional {
                    quote! {
                        match #pname {
                            ::core::option::Option::Some(f) => f as usize as u64,
                            ::core::option::Option::None => 0u64,
                        }
                    }
                } else {
                    quote! { #pname as usize as u64 }
                });
            }
            Param::Scalar { ty, .. } => {
                let span = ty.span();
                inputs.push(quote! { #pname: #ty });
                words.push(quote_spanned! {span=>
                    ::cofferdam::validate::ForeignArg::into_word(#pname)
                });
            }
        }
    }
    // Too many parameters were reported by the checks; never go past the
    // gate's limit. The first six travel in registers, the rest on the stack.
    words.truncate(MAX_ARGS);
    let stack_words: Vec<_> = if words.len() > REG_ARGS {
        words.split_off(REG_ARGS)
    } else {
        Vec::new()
    };
    while words.len() < REG_ARGS {
        words.push(quote! { 0u64 });
    }
    let (ret_ty, ret_span) = match &c.ret {
        Ret::Unit => (quote! { () }, Span::call_site()),
        Ret::Ptr(t) => (quote! { ::cofferdam::ForeignPtr<#t> }, t.span()),
        Ret::Value(t) => (quote! { #t }, t.span()),
    };
    let validate = quote_spanned! {ret_span=>
        ::cofferdam::validate::check::<#ret_ty>(#name_str, __cofferdam_ret)
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
            let __cofferdam_words: [u64; 6] = [#(#words),*];
            let __cofferdam_stack: [u64; #n_stack] = [#(#stack_words),*];
            let __cofferdam_compartment = #module::__cofferdam_compartment()?;
            // SAFETY (argued in cofferdam-macros/src/expand.rs): the address
            // is that of the foreign function declared with this very
            // signature; the words were converted from the wrapper's
            // parameters in order, one per declared parameter (integers or
            // pointers: six in registers, the rest on the stack, within the
            // gate's limits), and the return is read as the declared
            // type through `FromForeign`, which validates it. What the
            // function does with its arguments is the contract of this
            // wrapper: `unsafe fn`, or safe only for integer parameters.
            #[allow(unused_unsafe)]
            let __cofferdam_ret = unsafe {
                __cofferdam_compartment.call_words_stack(
                    #name_str,
                    #module::#name as *const (),
                    __cofferdam_words,
                    &__cofferdam_stack,
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
        d.push(" Pointer arguments must be foreign memory (`ForeignPtr`, `&ForeignBox`, `&ForeignVec`): a Rust pointer does not compile. With the `mpk` backend a breach of the contract therefore reaches foreign memory or faults, and cannot reach the Rust heap; Rust thread stacks and statics are not protected yet, and the `split` and `none` backends protect nothing, which is why this wrapper is `unsafe`.".into());
        if c.params.iter().any(|p| matches!(p, Param::Callback { .. })) {
            d.push(String::new());
            d.push(" A callback is called by the foreign code without the rights to the Rust heap: a Rust function passed here faults at its first access to the heap (callbacks through the gate are a later step).".into());
        }
    }
    d
}
