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
        } else {
            Err(meta.error(
                "unknown argument: expected `compartment = \"name\"`, `safe(f, ..)` or `handle = [pub] name`",
            ))
        }
    });
    syn::parse::Parser::parse2(parser, tokens)?;
    Ok(args)
}
