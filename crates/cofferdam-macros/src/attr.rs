//! The arguments of `#[cofferdam::sandbox(...)]`.

use proc_macro2::TokenStream;
use syn::{Ident, LitStr, Visibility};

/// What the attribute asked for.
#[derive(Default)]
pub(crate) struct Args {
    /// `compartment = "name"`.
    pub(crate) compartment: Option<LitStr>,
    /// `safe(f, g)`: the functions whose wrappers are safe.
    pub(crate) safe: Vec<Ident>,
    /// `handle = [vis] name`: a function returning the block's compartment.
    pub(crate) handle: Option<(Visibility, Ident)>,
    /// `backend = "process"`: the block's compartment runs on this backend.
    pub(crate) backend: Option<LitStr>,
    /// `timeout_ms = N`: a call longer than N ms kills the helper (process).
    pub(crate) timeout_ms: Option<syn::LitInt>,
    /// `memory_limit = N`: the helper's private memory in bytes (process).
    pub(crate) memory_limit: Option<syn::LitInt>,
}

/// Parses the attribute's tokens. Unknown keys are errors.
pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Args> {
    let mut args = Args::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("compartment") {
            if args.compartment.is_some() {
                return Err(meta.error("`compartment` is given twice"));
            }
            let name: LitStr = meta.value()?.parse()?;
            if name.value().is_empty() {
                return Err(syn::Error::new_spanned(
                    &name,
                    "the compartment's name must not be empty",
                ));
            }
            args.compartment = Some(name);
            Ok(())
        } else if meta.path.is_ident("safe") {
            meta.parse_nested_meta(|f| match f.path.get_ident() {
                Some(id) => {
                    args.safe.push(id.clone());
                    Ok(())
                }
                None => Err(f.error("expected the name of a function of this block")),
            })
        } else if meta.path.is_ident("handle") {
            if args.handle.is_some() {
                return Err(meta.error("`handle` is given twice"));
            }
            let input = meta.value()?;
            let vis: Visibility = input.parse()?;
            let name: Ident = input.parse()?;
            args.handle = Some((vis, name));
            Ok(())
        } else if meta.path.is_ident("backend") {
            if args.backend.is_some() {
                return Err(meta.error("`backend` is given twice"));
            }
            let b: LitStr = meta.value()?.parse()?;
            if !matches!(b.value().as_str(), "process" | "mpk" | "split" | "none") {
                return Err(syn::Error::new_spanned(
                    &b,
                    "unknown backend: expected \"process\", \"mpk\", \"split\" or \"none\"",
                ));
            }
            args.backend = Some(b);
            Ok(())
        } else if meta.path.is_ident("timeout_ms") {
            if args.timeout_ms.is_some() {
                return Err(meta.error("`timeout_ms` is given twice"));
            }
            let n: syn::LitInt = meta.value()?.parse()?;
            n.base10_parse::<u64>()?;
            args.timeout_ms = Some(n);
            Ok(())
        } else if meta.path.is_ident("memory_limit") {
            if args.memory_limit.is_some() {
                return Err(meta.error("`memory_limit` is given twice"));
            }
            let n: syn::LitInt = meta.value()?.parse()?;
            n.base10_parse::<u64>()?;
            args.memory_limit = Some(n);
            Ok(())
        } else {
            Err(meta.error(
                "unknown argument: expected `compartment = \"name\"`, `safe(f, ..)`, `handle = [pub] name`, `backend = \"process\"`, `timeout_ms = N` or `memory_limit = N`",
            ))
        }
    });
    syn::parse::Parser::parse2(parser, tokens)?;
    Ok(args)
}
