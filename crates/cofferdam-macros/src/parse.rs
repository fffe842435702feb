//! Reads the `extern "C"` block: its attributes, its functions, and the
//! per-function markers (`#[safe]`, `#[cofferdam(safe)]`) that are taken off
//! before the declarations are emitted again.

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Abi, Attribute, ForeignItem, ForeignItemFn, Ident, ItemForeignMod, LitStr, Meta, Signature,
    Token, Visibility,
};

use crate::Errors;

/// The block, as written.
pub(crate) struct Block {
    /// Attributes of the block (`#[link(..)]` and any other), kept on the
    /// raw declarations.
    pub(crate) attrs: Vec<Attribute>,
    /// `#[cfg(..)]` attributes of the block, also put on what is generated.
    pub(crate) cfgs: Vec<Attribute>,
    /// `unsafe` of `unsafe extern "C"` (edition 2024).
    pub(crate) unsafety: Option<Token![unsafe]>,
    /// `extern "C"`.
    pub(crate) abi: Abi,
    /// `name` of `#[link(name = "..")]`.
    pub(crate) link_name: Option<LitStr>,
    /// The functions.
    pub(crate) fns: Vec<Func>,
    /// Where the block starts, for errors about the whole block.
    pub(crate) span: Span,
}

/// One foreign function.
pub(crate) struct Func {
    /// Attributes kept on the raw declaration (`#[link_name]`, docs, ...).
    pub(crate) raw_attrs: Vec<Attribute>,
    /// Attributes copied to the wrapper (docs, `cfg`, `deprecated`, lints).
    pub(crate) wrapper_attrs: Vec<Attribute>,
    /// The `#[safe]` or `#[cofferdam(safe)]` marker, if any.
    pub(crate) safe_marker: Option<Span>,
    /// The declared visibility (the wrapper's).
    pub(crate) vis: Visibility,
    /// The declaration.
    pub(crate) sig: Signature,
}

/// Reads the block; problems go to `errors`, and what could be read is
/// returned.
pub(crate) fn block(item: ItemForeignMod, errors: &mut Errors) -> Block {
    let span = item.abi.extern_token.span;
    let mut link_name = None;
    let mut cfgs = Vec::new();
    for attr in &item.attrs {
        if attr.path().is_ident("link") {
            match attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated) {
                Ok(metas) => {
                    for m in metas {
                        if let Meta::NameValue(nv) = m {
                            if nv.path.is_ident("name") {
                                match &nv.value {
                                    syn::Expr::Lit(syn::ExprLit {
                                        lit: syn::Lit::Str(s),
                                        ..
                                    }) => link_name = Some(s.clone()),
                                    other => errors.push(syn::Error::new_spanned(
                                        other,
                                        "expected a string literal",
                                    )),
                                }
                            }
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        } else if attr.path().is_ident("cfg") {
            cfgs.push(attr.clone());
        }
    }
    let mut fns = Vec::new();
    for it in item.items {
        // `safe fn` of an edition-2024 `unsafe extern` block: syn leaves it
        // as tokens; it is read as a function with a safe marker.
        let (it, mut safe_marker) = match it {
            ForeignItem::Verbatim(tokens) => match safe_fn(tokens.clone()) {
                Some((f, span)) => (ForeignItem::Fn(f), Some(span)),
                None => (ForeignItem::Verbatim(tokens), None),
            },
            other => (other, None),
        };
        match it {
            ForeignItem::Fn(f) => {
                let mut raw_attrs = Vec::new();
                let mut wrapper_attrs = Vec::new();
                for attr in f.attrs {
                    let path = attr.path();
                    if path.is_ident("safe") {
                        if let Err(e) = attr.meta.require_path_only() {
                            errors.push(e);
                        }
                        safe_marker = Some(attr.span());
                        continue;
                    }
                    if path.is_ident("cofferdam") {
                        let r = attr.parse_nested_meta(|m| {
                            if m.path.is_ident("safe") {
                                safe_marker = Some(m.path.span());
                                Ok(())
                            } else {
                                Err(m.error("unknown option: the only one is `#[cofferdam(safe)]`"))
                            }
                        });
                        if let Err(e) = r {
                            errors.push(e);
                        }
                        continue;
                    }
                    let copied = ["doc", "cfg", "cfg_attr", "deprecated", "allow", "expect", "warn", "deny"];
                    if copied.iter().any(|c| path.is_ident(c)) {
                        wrapper_attrs.push(attr.clone());
                    }
                    raw_attrs.push(attr);
                }
                fns.push(Func {
                    raw_attrs,
                    wrapper_attrs,
                    safe_marker,
                    vis: f.vis,
                    sig: f.sig,
                });
            }
            ForeignItem::Static(s) => errors.push(syn::Error::new_spanned(
                &s,
                format!(
                    "foreign static `{}` cannot be sandboxed: Rust would read foreign memory directly; declare it in an `extern` block of its own",
                    s.ident
                ),
            )),
            other => errors.push(syn::Error::new_spanned(
                &other,
                "only foreign functions can be sandboxed",
            )),
        }
    }
    Block {
        attrs: item.attrs,
        cfgs,
        unsafety: item.unsafety,
        abi: item.abi,
        link_name,
        fns,
        span,
    }
}

/// Reads `#[attrs] vis safe fn name(..) -> T;` as a function declaration
/// and the span of `safe`.
fn safe_fn(tokens: proc_macro2::TokenStream) -> Option<(ForeignItemFn, Span)> {
    let parser = |input: syn::parse::ParseStream| {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let safe: Ident = input.parse()?;
        if safe != "safe" {
            return Err(syn::Error::new(safe.span(), "expected `safe`"));
        }
        let sig: Signature = input.parse()?;
        let semi_token: Token![;] = input.parse()?;
        Ok((
            ForeignItemFn {
                attrs,
                vis,
                sig,
                semi_token,
            },
            safe.span(),
        ))
    };
    syn::parse::Parser::parse2(parser, tokens).ok()
}
