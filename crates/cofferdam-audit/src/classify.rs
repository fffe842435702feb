//! Classification of foreign-function signatures and of the arguments passed
//! to pointer parameters at call sites. Everything here is syntactic.

use crate::report::{ArgKind, Class};
use std::collections::HashMap;
use syn::{Expr, Type};

/// Type aliases of a crate, by name (`pub type z_streamp = *mut z_stream;`).
pub type Aliases = HashMap<String, Type>;

/// What a type lets C do.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// Can write through it.
    pub write: bool,
    /// Can read through it.
    pub read: bool,
    /// Is (or contains) a function pointer.
    pub callback: bool,
}

impl Effects {
    fn union(self, o: Effects) -> Effects {
        Effects {
            write: self.write || o.write,
            read: self.read || o.read,
            callback: self.callback || o.callback,
        }
    }

    /// A pointer of any kind.
    pub fn pointer(&self) -> bool {
        self.write || self.read
    }
}

const MAX_ALIAS_DEPTH: usize = 16;

/// The effects of a type, resolving the crate's type aliases by name.
pub fn type_effects(ty: &Type, aliases: &Aliases) -> Effects {
    effects(ty, aliases, 0)
}

fn effects(ty: &Type, aliases: &Aliases, depth: usize) -> Effects {
    if depth > MAX_ALIAS_DEPTH {
        return Effects::default();
    }
    match ty {
        Type::Ptr(p) => {
            let own = Effects {
                write: p.mutability.is_some(),
                read: p.mutability.is_none(),
                callback: false,
            };
            own.union(effects(&p.elem, aliases, depth + 1))
        }
        Type::Reference(r) => {
            let own = Effects {
                write: r.mutability.is_some(),
                read: r.mutability.is_none(),
                callback: false,
            };
            own.union(effects(&r.elem, aliases, depth + 1))
        }
        Type::BareFn(_) => Effects {
            callback: true,
            ..Effects::default()
        },
        Type::Array(a) => effects(&a.elem, aliases, depth + 1),
        Type::Slice(s) => effects(&s.elem, aliases, depth + 1),
        Type::Paren(p) => effects(&p.elem, aliases, depth + 1),
        Type::Group(g) => effects(&g.elem, aliases, depth + 1),
        Type::Tuple(t) => t.elems.iter().fold(Effects::default(), |acc, e| {
            acc.union(effects(e, aliases, depth + 1))
        }),
        Type::Path(tp) => {
            let Some(last) = tp.path.segments.last() else {
                return Effects::default();
            };
            let name = last.ident.to_string();
            let mut acc = Effects::default();
            if matches!(name.as_str(), "NonNull" | "Box") {
                acc.write = true;
            }
            if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
                for a in &args.args {
                    if let syn::GenericArgument::Type(t) = a {
                        acc = acc.union(effects(t, aliases, depth + 1));
                    }
                }
            } else if tp.qself.is_none() {
                if let Some(target) = aliases.get(&name) {
                    // Guard against `type A = A;`-style self references.
                    let self_ref = matches!(target, Type::Path(t) if t.path == tp.path);
                    if !self_ref {
                        acc = acc.union(effects(target, aliases, depth + 1));
                    }
                }
            }
            acc
        }
        _ => Effects::default(),
    }
}

/// Classification of one foreign function.
#[derive(Debug, Clone)]
pub struct FnShape {
    /// Classes in [`Class::ALL`] order.
    pub classes: Vec<Class>,
    /// Number of parameters.
    pub params: usize,
    /// Index set of pointer parameters.
    pub pointer_params: Vec<usize>,
    /// Number of callback parameters.
    pub callback_params: usize,
}

/// Classifies a foreign function from its signature.
pub fn classify_signature(sig: &syn::Signature, aliases: &Aliases) -> FnShape {
    let mut write = false;
    let mut read = false;
    let mut callback = false;
    let mut pointer_params = Vec::new();
    let mut callback_params = 0;
    let mut params = 0;
    for (i, input) in sig.inputs.iter().enumerate() {
        let syn::FnArg::Typed(pt) = input else {
            continue;
        };
        params += 1;
        let e = type_effects(&pt.ty, aliases);
        write |= e.write;
        read |= e.read;
        if e.pointer() {
            pointer_params.push(i);
        }
        if e.callback {
            callback = true;
            callback_params += 1;
        }
    }
    let returns_pointer = match &sig.output {
        syn::ReturnType::Default => false,
        syn::ReturnType::Type(_, ty) => type_effects(ty, aliases).pointer(),
    };
    let variadic = sig.variadic.is_some();
    let mut classes = Vec::new();
    for (flag, class) in [
        (write, Class::WritesThroughPointer),
        (read, Class::ReadsThroughPointer),
        (callback, Class::TakesCallback),
        (returns_pointer, Class::ReturnsPointer),
        (variadic, Class::Variadic),
    ] {
        if flag {
            classes.push(class);
        }
    }
    if classes.is_empty() {
        classes.push(Class::ScalarsOnly);
    }
    FnShape {
        classes,
        params,
        pointer_params,
        callback_params,
    }
}

/// What a local variable is known to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarHint {
    /// A Rust-owned value or a reference to one (`Vec`, `String`, array, `&mut T`, ...).
    Rust,
    /// A Cofferdam foreign-heap value (`ForeignBox`, `ForeignVec`, ...).
    Foreign,
    /// A raw pointer whose origin was classified.
    Ptr(ArgKind),
}

/// Local variables of the function being visited.
pub type Scope = HashMap<String, VarHint>;

const RUST_CONTAINERS: &[&str] = &[
    "Vec", "String", "Box", "CString", "CStr", "OsString", "OsStr", "PathBuf", "Path", "str",
    "VecDeque", "Rc", "Arc", "BString", "BStr",
];

/// Whether `name` names a Cofferdam foreign type.
pub fn is_foreign_type_name(name: &str) -> bool {
    matches!(
        name,
        "ForeignBox" | "ForeignVec" | "ForeignBuf" | "ForeignBytes" | "ForeignPtr" | "ForeignSlice"
    )
}

/// What a declared type tells about the value (for `let x: T` and parameters).
pub fn hint_from_type(ty: &Type) -> Option<VarHint> {
    match ty {
        Type::Reference(r) => match hint_from_type(&r.elem) {
            Some(VarHint::Foreign) => Some(VarHint::Foreign),
            // A reference always points at memory the Rust side owns or borrows.
            _ => Some(VarHint::Rust),
        },
        Type::Array(_) | Type::Slice(_) => Some(VarHint::Rust),
        Type::Paren(p) => hint_from_type(&p.elem),
        Type::Group(g) => hint_from_type(&g.elem),
        Type::Path(tp) => {
            let last = tp.path.segments.last()?.ident.to_string();
            if is_foreign_type_name(&last) {
                Some(VarHint::Foreign)
            } else if RUST_CONTAINERS.contains(&last.as_str()) {
                Some(VarHint::Rust)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn path_segments(path: &syn::Path) -> Vec<String> {
    path.segments.iter().map(|s| s.ident.to_string()).collect()
}

fn macro_name(mac: &syn::Macro) -> String {
    mac.path
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default()
}

/// Strips `?`, `.unwrap()`, `.expect(..)`, parentheses and groups.
fn strip_wrappers(mut e: &Expr) -> &Expr {
    loop {
        match e {
            Expr::Paren(p) => e = &p.expr,
            Expr::Group(g) => e = &g.expr,
            Expr::Try(t) => e = &t.expr,
            Expr::MethodCall(m)
                if matches!(
                    m.method.to_string().as_str(),
                    "unwrap" | "expect" | "unwrap_unchecked"
                ) =>
            {
                e = &m.receiver
            }
            _ => return e,
        }
    }
}

/// What value an expression produces, as far as Rust/foreign ownership goes
/// (used for the receiver of `.as_ptr()` and for `let` initialisers).
pub fn value_hint(expr: &Expr, scope: &Scope) -> Option<VarHint> {
    let e = strip_wrappers(expr);
    match e {
        Expr::Lit(l) => match l.lit {
            syn::Lit::Str(_) | syn::Lit::ByteStr(_) | syn::Lit::CStr(_) => Some(VarHint::Rust),
            _ => None,
        },
        Expr::Array(_) | Expr::Repeat(_) => Some(VarHint::Rust),
        Expr::Macro(m) => match macro_name(&m.mac).as_str() {
            "vec" | "format" | "concat" | "c_str" | "cstr" => Some(VarHint::Rust),
            _ => None,
        },
        Expr::Path(p) if p.path.segments.len() == 1 && p.qself.is_none() => {
            match scope.get(&p.path.segments[0].ident.to_string()) {
                Some(VarHint::Ptr(_)) => None,
                other => other.copied(),
            }
        }
        Expr::Reference(r) => match value_hint(&r.expr, scope) {
            Some(VarHint::Foreign) => Some(VarHint::Foreign),
            _ => Some(VarHint::Rust),
        },
        Expr::Index(i) => value_hint(&i.expr, scope),
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => value_hint(&u.expr, scope),
        Expr::Cast(c) => hint_from_type(&c.ty),
        Expr::MethodCall(m) => {
            let method = m.method.to_string();
            match method.as_str() {
                "as_slice" | "as_mut_slice" | "as_bytes" | "as_bytes_mut" | "as_str"
                | "as_mut_str" | "as_ref" | "as_mut" | "borrow" | "borrow_mut" | "deref"
                | "deref_mut" | "as_c_str" | "to_bytes" | "to_bytes_with_nul" | "as_os_str"
                | "as_path" | "get_mut" | "get" | "iter" | "iter_mut" => {
                    value_hint(&m.receiver, scope)
                }
                "to_vec" | "to_string" | "to_owned" | "into_bytes" | "into_boxed_slice"
                | "into_boxed_str" | "to_str" | "into_string" | "to_string_lossy" | "collect"
                | "into_vec" => Some(VarHint::Rust),
                _ => None,
            }
        }
        Expr::Call(c) => {
            let Expr::Path(p) = strip_wrappers(&c.func) else {
                return None;
            };
            let segs = path_segments(&p.path);
            // `Type::constructor(..)`: judge by the type segment.
            if segs.len() >= 2 {
                let ty = &segs[segs.len() - 2];
                if is_foreign_type_name(ty) {
                    return Some(VarHint::Foreign);
                }
                if RUST_CONTAINERS.contains(&ty.as_str()) {
                    return Some(VarHint::Rust);
                }
            }
            None
        }
        Expr::Struct(_) | Expr::Tuple(_) => Some(VarHint::Rust),
        _ => None,
    }
}

/// What an expression passed to a pointer parameter points at.
pub fn classify_arg(expr: &Expr, scope: &Scope) -> ArgKind {
    let e = strip_wrappers(expr);
    match e {
        Expr::Cast(c) => {
            if let Expr::Lit(l) = strip_wrappers(&c.expr) {
                if let syn::Lit::Int(i) = &l.lit {
                    if i.base10_digits() == "0" {
                        return ArgKind::Null;
                    }
                }
            }
            classify_arg(&c.expr, scope)
        }
        Expr::Lit(l) => match &l.lit {
            syn::Lit::Int(i) if i.base10_digits() == "0" => ArgKind::Null,
            syn::Lit::Str(_) | syn::Lit::ByteStr(_) | syn::Lit::CStr(_) => ArgKind::RustMemory,
            _ => ArgKind::Unknown,
        },
        Expr::Reference(r) => reference_kind(&r.expr, scope),
        Expr::RawAddr(r) => reference_kind(&r.expr, scope),
        Expr::Macro(m) => {
            let name = macro_name(&m.mac);
            match name.as_str() {
                "addr_of" | "addr_of_mut" => match m.mac.parse_body::<Expr>() {
                    Ok(inner) => reference_kind(&inner, scope),
                    Err(_) => ArgKind::RustMemory,
                },
                "c_str" | "cstr" | "c" => ArgKind::RustMemory,
                _ => ArgKind::Unknown,
            }
        }
        Expr::Call(c) => {
            let Expr::Path(p) = strip_wrappers(&c.func) else {
                return ArgKind::Unknown;
            };
            let segs = path_segments(&p.path);
            let last = segs.last().map(String::as_str).unwrap_or("");
            match last {
                "null" | "null_mut" => return ArgKind::Null,
                "from_ref" | "from_mut" => {
                    return match c.args.first() {
                        Some(a) => match value_hint(a, scope) {
                            Some(VarHint::Foreign) => ArgKind::ForeignMemory,
                            _ => ArgKind::RustMemory,
                        },
                        None => ArgKind::RustMemory,
                    }
                }
                "as_foreign_ptr" => return ArgKind::ForeignMemory,
                _ => {}
            }
            if segs.len() >= 2 && is_foreign_type_name(&segs[segs.len() - 2]) {
                return ArgKind::ForeignMemory;
            }
            ArgKind::Unknown
        }
        Expr::MethodCall(m) => {
            let method = m.method.to_string();
            match method.as_str() {
                "as_foreign_ptr" | "as_foreign_mut_ptr" => ArgKind::ForeignMemory,
                "as_ptr" | "as_mut_ptr" => match value_hint(&m.receiver, scope) {
                    Some(VarHint::Rust) => ArgKind::RustMemory,
                    Some(VarHint::Foreign) => ArgKind::ForeignMemory,
                    _ => ArgKind::Unknown,
                },
                "cast" | "cast_mut" | "cast_const" | "add" | "offset" | "wrapping_add"
                | "wrapping_offset" | "byte_add" | "sub" | "wrapping_sub" => {
                    classify_arg(&m.receiver, scope)
                }
                _ => ArgKind::Unknown,
            }
        }
        Expr::Path(p) if p.path.segments.len() == 1 && p.qself.is_none() => {
            match scope.get(&p.path.segments[0].ident.to_string()) {
                Some(VarHint::Ptr(k)) => *k,
                // A Rust value (a reference, typically) coerced to a pointer.
                Some(VarHint::Rust) => ArgKind::RustMemory,
                Some(VarHint::Foreign) => ArgKind::ForeignMemory,
                None => ArgKind::Unknown,
            }
        }
        _ => ArgKind::Unknown,
    }
}

/// `&x`, `&mut x`, `&raw const x`, `addr_of!(x)`: Rust memory unless `x` is
/// the pointee of a foreign value (`&mut *foreign_box`).
fn reference_kind(inner: &Expr, scope: &Scope) -> ArgKind {
    let e = strip_wrappers(inner);
    if let Expr::Unary(u) = e {
        if matches!(u.op, syn::UnOp::Deref(_))
            && value_hint(&u.expr, scope) == Some(VarHint::Foreign)
        {
            return ArgKind::ForeignMemory;
        }
    }
    ArgKind::RustMemory
}

/// The hint a `let` initialiser gives its binding: a classified pointer when
/// the expression is pointer-like, otherwise the value's ownership.
pub fn let_hint(init: &Expr, scope: &Scope) -> Option<VarHint> {
    let e = strip_wrappers(init);
    let pointer_like = match e {
        Expr::Cast(c) => matches!(*c.ty, Type::Ptr(_)),
        Expr::RawAddr(_) => true,
        Expr::Macro(m) => matches!(macro_name(&m.mac).as_str(), "addr_of" | "addr_of_mut"),
        Expr::MethodCall(m) => matches!(
            m.method.to_string().as_str(),
            "as_ptr" | "as_mut_ptr" | "as_foreign_ptr" | "cast" | "cast_mut" | "cast_const"
        ),
        Expr::Call(c) => match strip_wrappers(&c.func) {
            Expr::Path(p) => matches!(
                p.path
                    .segments
                    .last()
                    .map(|s| s.ident.to_string())
                    .as_deref(),
                Some("null" | "null_mut" | "from_ref" | "from_mut")
            ),
            _ => false,
        },
        _ => false,
    };
    if pointer_like {
        match classify_arg(e, scope) {
            ArgKind::Unknown => None,
            k => Some(VarHint::Ptr(k)),
        }
    } else {
        value_hint(e, scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(s: &str) -> syn::Signature {
        let f: syn::ForeignItemFn = syn::parse_str(s).unwrap();
        f.sig
    }

    #[test]
    fn classes_from_signatures() {
        let mut aliases = Aliases::new();
        aliases.insert("z_streamp".into(), syn::parse_str("*mut z_stream").unwrap());
        aliases.insert(
            "cb_t".into(),
            syn::parse_str("Option<unsafe extern \"C\" fn(x: *mut u8)>").unwrap(),
        );
        let c = classify_signature(&sig("fn f(a: c_int) -> c_int;"), &aliases);
        assert_eq!(c.classes, vec![Class::ScalarsOnly]);
        let c = classify_signature(&sig("fn f(a: z_streamp, n: c_int) -> c_int;"), &aliases);
        assert_eq!(c.classes, vec![Class::WritesThroughPointer]);
        assert_eq!(c.pointer_params, vec![0]);
        let c = classify_signature(&sig("fn f(a: cb_t) -> *const u8;"), &aliases);
        assert_eq!(c.classes, vec![Class::TakesCallback, Class::ReturnsPointer]);
        assert!(c.pointer_params.is_empty());
        let c = classify_signature(&sig("fn f(a: *const c_char, ...);"), &aliases);
        assert_eq!(c.classes, vec![Class::ReadsThroughPointer, Class::Variadic]);
    }

    #[test]
    fn argument_kinds() {
        let mut scope = Scope::new();
        scope.insert("v".into(), VarHint::Rust);
        scope.insert("fb".into(), VarHint::Foreign);
        let k = |s: &str| classify_arg(&syn::parse_str::<Expr>(s).unwrap(), &scope);
        assert_eq!(k("v.as_mut_ptr()"), ArgKind::RustMemory);
        assert_eq!(k("&mut x as *mut _"), ArgKind::RustMemory);
        assert_eq!(k("ptr::addr_of!(x)"), ArgKind::RustMemory);
        assert_eq!(k("std::ptr::null_mut()"), ArgKind::Null);
        assert_eq!(k("0 as *const u8"), ArgKind::Null);
        assert_eq!(k("fb.as_ptr()"), ArgKind::ForeignMemory);
        assert_eq!(k("fb.as_foreign_ptr()"), ArgKind::ForeignMemory);
        assert_eq!(k("&mut *fb"), ArgKind::ForeignMemory);
        assert_eq!(k("self.p"), ArgKind::Unknown);
        assert_eq!(k("q.as_ptr()"), ArgKind::Unknown);
    }
}
