//! Decides what each parameter and return is, and refuses what the gate
//! cannot carry, naming the function and pointing at the offending tokens.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, Ident, LitStr, Pat, PathArguments, ReturnType, Type};

use crate::attr::Args;
use crate::parse::{Block, Func};
use crate::Errors;

/// Integer or pointer arguments in registers (`rdi`, `rsi`, `rdx`, `rcx`,
/// `r8`, `r9`).
pub(crate) const REG_ARGS: usize = 6;
/// Floating-point arguments in registers (`xmm0`..`xmm7`).
pub(crate) const SSE_ARGS: usize = 8;
/// Arguments that did not fit in registers, on the stack
/// (`cofferdam::MAX_STACK_ARGS`).
pub(crate) const STACK_ARGS: usize = 16;
/// Parameters of a callback (all in registers).
pub(crate) const CALLBACK_ARGS: usize = 6;

/// A parameter, as the wrapper takes it.
pub(crate) enum Param {
    /// `*const T` / `*mut T`: the wrapper asks for foreign memory holding `T`.
    Ptr { name: Ident, pointee: Type },
    /// `*const c_void` / `*mut c_void`: any foreign pointer (`span`: the
    /// pointee's, for errors).
    Void { name: Ident, span: Span },
    /// `unsafe extern "C" fn(..)`, or `Option` of one: the wrapper takes a
    /// `&cofferdam::Callback` whose parameters are floating-point exactly
    /// where `sse` says (and as many).
    Callback {
        name: Ident,
        optional: bool,
        sse: Vec<bool>,
    },
    /// `f32`/`f64` (`c_float`/`c_double`): an SSE register.
    Float { name: Ident, ty: Type },
    /// Anything else: passed by value if it implements `ForeignArg`.
    Scalar { name: Ident, ty: Type },
}

impl Param {
    pub(crate) fn name(&self) -> &Ident {
        match self {
            Param::Ptr { name, .. }
            | Param::Void { name, .. }
            | Param::Callback { name, .. }
            | Param::Float { name, .. }
            | Param::Scalar { name, .. } => name,
        }
    }
}

/// A return, as the wrapper gives it back.
pub(crate) enum Ret {
    /// Nothing.
    Unit,
    /// `*const T` / `*mut T`: a validated `ForeignPtr<T>`.
    Ptr(Type),
    /// `f32`/`f64`: from xmm0 (`single`: an `f32`).
    Float { ty: Type, single: bool },
    /// Anything else: validated by `FromForeign`.
    Value(Type),
}

/// A function ready to be wrapped.
pub(crate) struct Checked {
    pub(crate) func: Func,
    pub(crate) params: Vec<Param>,
    pub(crate) ret: Ret,
    pub(crate) safe: bool,
}

/// Checks the whole block against the attribute's arguments.
pub(crate) fn block(
    args: &Args,
    block: Block,
    errors: &mut Errors,
) -> (Block, Vec<Checked>, Option<LitStr>) {
    if let Some(name) = &block.abi.name {
        if name.value() != "C" {
            errors.push(syn::Error::new_spanned(
                name,
                format!(
                    "the gate calls functions with the C calling convention, not `extern \"{}\"`",
                    name.value()
                ),
            ));
        }
    }
    let compartment = match (&args.compartment, &block.link_name) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(l)) => Some(l.clone()),
        (None, None) => {
            errors.push(syn::Error::new(
                block.span,
                "name the compartment: `#[cofferdam::sandbox(compartment = \"name\")]`, or give the block `#[link(name = \"..\")]`",
            ));
            None
        }
    };
    for s in &args.safe {
        if !block.fns.iter().any(|f| f.sig.ident == *s) {
            errors.push(syn::Error::new_spanned(
                s,
                format!("`safe({s})`: this block declares no function `{s}`"),
            ));
        }
    }
    let mut block = block;
    let fns = std::mem::take(&mut block.fns);
    let checked = fns
        .into_iter()
        .map(|func| function(args, func, errors))
        .collect();
    (block, checked, compartment)
}

fn function(args: &Args, func: Func, errors: &mut Errors) -> Checked {
    let sig = &func.sig;
    let fname = &sig.ident;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!("`{fname}`: a foreign function cannot be generic"),
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            v,
            format!(
                "`{fname}` is variadic (`...`); the gate passes a fixed list of arguments, so a variadic function cannot be sandboxed: declare a non-variadic function for each use"
            ),
        ));
    }
    let mut params = Vec::new();
    for (i, input) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(pt) = input else {
            errors.push(syn::Error::new_spanned(input, "unexpected `self`"));
            continue;
        };
        let name = match &*pt.pat {
            Pat::Ident(p) if p.ident != "_" => p.ident.clone(),
            _ => Ident::new(&format!("__cofferdam_arg{i}"), Span::call_site()),
        };
        let what = format!("`{fname}`: parameter `{}`", name);
        if let Some(p) = param(&what, name, &pt.ty, errors) {
            params.push(p);
        }
    }
    let floats = params
        .iter()
        .filter(|p| matches!(p, Param::Float { .. }))
        .count();
    let ints = params.len() - floats;
    let on_stack = ints.saturating_sub(REG_ARGS) + floats.saturating_sub(SSE_ARGS);
    if on_stack > STACK_ARGS {
        errors.push(syn::Error::new_spanned(
            &sig.inputs,
            format!(
                "`{fname}` has {} parameters, {on_stack} of which would go on the stack; the gate carries {REG_ARGS} integer or pointer and {SSE_ARGS} floating-point arguments in registers and at most {STACK_ARGS} more on the stack",
                sig.inputs.len()
            ),
        ));
    }
    let ret = match &sig.output {
        ReturnType::Default => Ret::Unit,
        ReturnType::Type(_, ty) => ret(&format!("`{fname}`: the return"), fname, ty, errors),
    };
    let listed = args.safe.iter().any(|s| s == fname);
    let marker = func.safe_marker;
    let safe = listed || marker.is_some();
    if safe {
        let pointer = params
            .iter()
            .find(|p| !matches!(p, Param::Scalar { .. } | Param::Float { .. }));
        if let Some(p) = pointer {
            let at = marker.unwrap_or_else(|| {
                args.safe
                    .iter()
                    .find(|s| *s == fname)
                    .map(|s| s.span())
                    .unwrap_or_else(Span::call_site)
            });
            let kind = match p {
                Param::Callback { .. } => "a callback",
                _ => "a pointer",
            };
            errors.push(syn::Error::new(
                at,
                format!(
                    "`{fname}` cannot have a safe wrapper: its parameter `{}` is {kind}, and safe code can make a `ForeignPtr` of any address (`ForeignPtr::from_addr`), so a safe caller could make it reach Rust memory the backend does not protect (Rust stacks and statics; everything under the `split` and `none` backends). Keep it `unsafe` and write a safe function around it that owns the buffers",
                    p.name()
                ),
            ));
        }
    }
    Checked {
        func,
        params,
        ret,
        safe,
    }
}

/// The last segment's name of a path type (`c_double` of
/// `::std::os::raw::c_double`).
fn last_ident(ty: &Type) -> Option<&Ident> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| &s.ident),
        _ => None,
    }
}

fn unparen(ty: &Type) -> &Type {
    match ty {
        Type::Paren(p) => unparen(&p.elem),
        Type::Group(g) => unparen(&g.elem),
        t => t,
    }
}

/// `Option<T>`'s `T`.
fn option_of(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    if seg.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(a) = &seg.arguments else {
        return None;
    };
    match a.args.first()? {
        GenericArgument::Type(t) if a.args.len() == 1 => Some(unparen(t)),
        _ => None,
    }
}

/// Refuses what no register carries; `what` names the function and the slot.
fn unsupported(what: &str, ty: &Type) -> Option<syn::Error> {
    let msg = match unparen(ty) {
        Type::Reference(_) => format!(
            "{what} is a Rust reference; declare it as a pointer (`*const T` or `*mut T`): the wrapper then takes foreign memory"
        ),
        Type::Array(_) | Type::Slice(_) => format!(
            "{what} is an array; C passes arrays as pointers: declare it `*const T` or `*mut T`"
        ),
        Type::Tuple(t) if !t.elems.is_empty() => {
            format!("{what} is a tuple; the gate carries integers, pointers, `f32` and `f64` only")
        }
        Type::TraitObject(_) | Type::ImplTrait(_) | Type::Infer(_) | Type::Macro(_) => {
            format!("{what} has a type the gate cannot carry")
        }
        t => match last_ident(t).map(|i| i.to_string()).as_deref() {
            Some("c_longdouble" | "f128" | "f16") => format!(
                "{what} is an x87 `long double` or a non-standard float; the gate carries `f32` and `f64` in SSE registers only"
            ),
            Some("u128" | "i128") => format!(
                "{what} is a 128-bit integer; the gate carries values of at most 64 bits"
            ),
            _ => return None,
        },
    };
    Some(syn::Error::new_spanned(ty, msg))
}

fn is_void(ty: &Type) -> bool {
    last_ident(unparen(ty)).is_some_and(|i| i == "c_void")
}

/// `f32`, `f64`, `c_float`, `c_double`: `Some(single)`.
fn float_kind(ty: &Type) -> Option<bool> {
    match last_ident(unparen(ty))?.to_string().as_str() {
        "f32" | "c_float" => Some(true),
        "f64" | "c_double" => Some(false),
        _ => None,
    }
}

/// A callback parameter's shape, from its `extern "C" fn` type.
fn callback(
    what: &str,
    name: Ident,
    f: &syn::TypeBareFn,
    optional: bool,
    errors: &mut Errors,
) -> Option<Param> {
    if let Some(v) = &f.variadic {
        errors.push(syn::Error::new_spanned(
            v,
            format!(
                "{what} is a variadic callback; a Rust callback takes a fixed list of parameters"
            ),
        ));
        return None;
    }
    if f.inputs.len() > CALLBACK_ARGS {
        errors.push(syn::Error::new_spanned(
            &f.inputs,
            format!(
                "{what} is a callback with {} parameters; callbacks take at most {CALLBACK_ARGS}",
                f.inputs.len()
            ),
        ));
        return None;
    }
    let sse = f
        .inputs
        .iter()
        .map(|a| float_kind(&a.ty).is_some())
        .collect();
    Some(Param::Callback {
        name,
        optional,
        sse,
    })
}

fn param(what: &str, name: Ident, ty: &Type, errors: &mut Errors) -> Option<Param> {
    if let Some(e) = unsupported(what, ty) {
        errors.push(e);
        return None;
    }
    let t = unparen(ty);
    Some(match t {
        Type::Ptr(p) if is_void(&p.elem) => Param::Void {
            name,
            span: p.elem.span(),
        },
        Type::Ptr(p) => Param::Ptr {
            name,
            pointee: (*p.elem).clone(),
        },
        Type::BareFn(f) => return callback(what, name, f, false, errors),
        _ if matches!(option_of(t), Some(Type::BareFn(_))) => {
            let Some(Type::BareFn(f)) = option_of(t) else {
                unreachable!()
            };
            return callback(what, name, f, true, errors);
        }
        _ if float_kind(t).is_some() => Param::Float {
            name,
            ty: ty.clone(),
        },
        Type::Never(_) => {
            errors.push(syn::Error::new_spanned(ty, format!("{what} cannot be `!`")));
            return None;
        }
        _ => Param::Scalar {
            name,
            ty: ty.clone(),
        },
    })
}

fn ret(what: &str, fname: &Ident, ty: &Type, errors: &mut Errors) -> Ret {
    if let Some(e) = unsupported(what, ty) {
        errors.push(e);
        return Ret::Unit;
    }
    let t = unparen(ty);
    match t {
        Type::Tuple(_) => Ret::Unit,
        Type::Ptr(p) => Ret::Ptr((*p.elem).clone()),
        Type::Never(_) => {
            errors.push(syn::Error::new_spanned(
                ty,
                format!("`{fname}` is declared not to return (`!`), which the gate cannot check: declare it without a return type"),
            ));
            Ret::Unit
        }
        Type::BareFn(_) => fn_ptr_error(fname, ty, errors),
        _ if matches!(option_of(t), Some(Type::BareFn(_))) => fn_ptr_error(fname, ty, errors),
        _ => match float_kind(t) {
            Some(single) => Ret::Float {
                ty: ty.clone(),
                single,
            },
            None => Ret::Value(ty.clone()),
        },
    }
}

fn fn_ptr_error(fname: &Ident, ty: &Type, errors: &mut Errors) -> Ret {
    errors.push(syn::Error::new_spanned(
        ty,
        format!("`{fname}` returns a function pointer; calling it from Rust would bypass the gate: declare the return as `*mut c_void` (a `ForeignPtr`)"),
    ));
    Ret::Unit
}
