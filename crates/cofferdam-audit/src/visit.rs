//! The per-file syn visitor: collects unsafe counts, extern blocks, foreign
//! functions, type aliases, exported functions, call candidates, module and
//! `include!` requests, and build-script signals.

use crate::classify::{self, Scope, VarHint};
use crate::report::{ArgKind, ExportedFnEntry, ExternBlockEntry, LinkEntry, UnsafeCounts};
use proc_macro2::{Span, TokenStream, TokenTree};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, Token};

/// Where a file sits, for resolving `mod foo;` and `include!`.
#[derive(Debug, Clone)]
pub struct FileCtx {
    /// Path shown in the report.
    pub display: String,
    /// Directory of the file (`include!("x")` and `#[path]` are relative to it).
    pub dir: PathBuf,
    /// Directory where `mod foo;` looks for `foo.rs` / `foo/mod.rs`.
    pub mod_dir: PathBuf,
    /// The package directory (`env!("CARGO_MANIFEST_DIR")`).
    pub manifest_dir: PathBuf,
    /// Part of the build script.
    pub is_build: bool,
    /// Reached through a `mod` with a sandbox attribute.
    pub sandboxed: bool,
}

/// A foreign function as declared (classified later, once the crate's type
/// aliases are known).
pub struct RawForeignFn {
    /// Rust name.
    pub name: String,
    /// Line.
    pub line: usize,
    /// ABI.
    pub abi: String,
    /// `#[link(name)]` of the block.
    pub link: Option<String>,
    /// Behind a sandbox attribute.
    pub sandboxed: bool,
    /// The signature.
    pub sig: syn::Signature,
}

/// A call through a path (`ffi::deflate(..)`), a candidate foreign call.
#[derive(Debug, Clone)]
pub struct RawCall {
    /// Last path segment.
    pub name: String,
    /// The path as written.
    pub path: String,
    /// Number of path segments.
    pub segments: usize,
    /// The segment before the last, if any.
    pub qualifier: Option<String>,
    /// Line.
    pub line: usize,
    /// Kind of every argument, as if it were passed to a pointer parameter.
    pub args: Vec<ArgKind>,
    /// The first segment of the path after expanding the file's `use`
    /// declarations (`thread::sleep` with `use std::thread;` gives `std`);
    /// `None` for a bare name that no `use` names.
    pub root: Option<String>,
}

/// A `mod foo;` to follow.
#[derive(Debug, Clone)]
pub struct ModRequest {
    /// Module name.
    pub name: String,
    /// Line of the declaration.
    pub line: usize,
    /// Files to try, in order.
    pub candidates: Vec<PathBuf>,
    /// Whether the found file owns its directory (mod.rs-like).
    pub path_attr: bool,
    /// Files named by `#[cfg_attr(.., path = "..")]`: each is followed when
    /// it exists (cfg is not evaluated).
    pub alternatives: Vec<PathBuf>,
    /// The module (or an enclosing one) carries a sandbox attribute.
    pub sandboxed: bool,
}

/// The target of an `include!`.
#[derive(Debug, Clone)]
pub enum IncludeTarget {
    /// A literal path (resolved).
    File(PathBuf),
    /// `concat!(env!("OUT_DIR"), "/x.rs")`: the part after `OUT_DIR`.
    OutDir(String),
    /// Anything else: the tokens as written.
    Unresolved(String),
}

/// An `include!` to follow.
#[derive(Debug, Clone)]
pub struct IncludeRequest {
    /// Line.
    pub line: usize,
    /// What it includes.
    pub target: IncludeTarget,
}

/// Everything learned from one file.
#[derive(Default)]
pub struct FileFacts {
    /// Unsafe counts.
    pub unsafe_counts: UnsafeCounts,
    /// Extern blocks (file filled in).
    pub extern_blocks: Vec<ExternBlockEntry>,
    /// Foreign functions.
    pub foreign: Vec<RawForeignFn>,
    /// Type aliases.
    pub aliases: Vec<(String, syn::Type)>,
    /// Names of free Rust functions defined here.
    pub rust_fns: Vec<String>,
    /// Functions exported to C.
    pub exported: Vec<ExportedFnEntry>,
    /// Call candidates.
    pub calls: Vec<RawCall>,
    /// Modules to follow.
    pub mods: Vec<ModRequest>,
    /// Includes to follow.
    pub includes: Vec<IncludeRequest>,
    /// Link libraries.
    pub links: Vec<LinkEntry>,
    /// Tools used to compile C (build script only).
    pub c_tools: BTreeSet<String>,
    /// String literals passed together to one call (build script only), for
    /// finding pre-generated bindings the build script copies.
    pub literal_groups: Vec<Vec<String>>,
    /// Notes.
    pub notes: Vec<String>,
}

/// Line of a span (1-based).
pub fn line_of(span: Span) -> usize {
    span.start().line
}

/// Visits a parsed file.
pub fn visit_file(file: &syn::File, ctx: &FileCtx) -> FileFacts {
    let mut v = Visitor::new(ctx);
    v.visit_file(file);
    v.facts
}

/// Visits a file that is one expression (an `include!` in expression position).
pub fn visit_expr_file(expr: &Expr, ctx: &FileCtx) -> FileFacts {
    let mut v = Visitor::new(ctx);
    v.visit_expr(expr);
    v.facts
}

struct Visitor<'a> {
    ctx: &'a FileCtx,
    facts: FileFacts,
    /// Depth of enclosing modules with a sandbox attribute.
    sandbox_depth: usize,
    /// Inline modules we are in (for `mod foo;` inside `mod a { .. }`).
    mod_stack: Vec<String>,
    /// Inside a macro invocation body (unsafe is not counted there, as in cargo-geiger).
    in_macro: usize,
    scope: Scope,
    /// `use` declarations of the file: local name -> full path segments.
    uses: std::collections::HashMap<String, Vec<String>>,
}

fn ident_name(i: &syn::Ident) -> String {
    let s = i.to_string();
    s.strip_prefix("r#").map(str::to_string).unwrap_or(s)
}

fn path_string(p: &syn::Path) -> String {
    let segs: Vec<String> = p.segments.iter().map(|s| ident_name(&s.ident)).collect();
    let s = segs.join("::");
    if p.leading_colon.is_some() {
        format!("::{}", s)
    } else {
        s
    }
}

/// Attribute path ending in `sandbox` (`#[cofferdam::sandbox]`, `#[sandbox]`).
pub fn has_sandbox_attr(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "sandbox")
    })
}

/// `#[cfg(test)]` or `#[test]`: skipped, as cargo-geiger skips tests by default.
fn is_test_item(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        if a.path().is_ident("test") {
            return true;
        }
        if a.path().is_ident("cfg") {
            if let syn::Meta::List(l) = &a.meta {
                return l.tokens.to_string().trim() == "test";
            }
        }
        false
    })
}

fn str_value(e: &Expr) -> Option<String> {
    match e {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Some(s.value()),
        Expr::Group(g) => str_value(&g.expr),
        Expr::Paren(p) => str_value(&p.expr),
        _ => None,
    }
}

/// Export reasons and symbol of a function's attributes.
fn export_info(attrs: &[Attribute], name: &str) -> (Vec<String>, String) {
    let mut reasons = Vec::new();
    let mut symbol = name.to_string();
    let mut metas: Vec<syn::Meta> = Vec::new();
    for a in attrs {
        if a.path().is_ident("unsafe") {
            if let Ok(m) = a.parse_args::<syn::Meta>() {
                metas.push(m);
            }
        } else {
            metas.push(a.meta.clone());
        }
    }
    for m in metas {
        if m.path().is_ident("no_mangle") {
            reasons.push("no_mangle".to_string());
        } else if m.path().is_ident("export_name") {
            reasons.push("export_name".to_string());
            if let syn::Meta::NameValue(nv) = &m {
                if let Some(s) = str_value(&nv.value) {
                    symbol = s;
                }
            }
        }
    }
    (reasons, symbol)
}

fn abi_name(abi: &syn::Abi) -> String {
    abi.name
        .as_ref()
        .map(|n| n.value())
        .unwrap_or_else(|| "C".to_string())
}

fn link_name(attrs: &[Attribute]) -> Option<String> {
    let mut found = None;
    for a in attrs {
        if !a.path().is_ident("link") {
            continue;
        }
        let _ = a.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let s: syn::LitStr = meta.value()?.parse()?;
                found = Some(s.value());
            } else if meta.input.peek(Token![=]) {
                let _: Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                let _content;
                syn::parenthesized!(_content in meta.input);
            }
            Ok(())
        });
    }
    found
}

/// All string literals in a token stream, recursively.
fn string_literals(tokens: TokenStream, out: &mut Vec<(String, usize)>) {
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => string_literals(g.stream(), out),
            TokenTree::Literal(l) => {
                let lit = syn::Lit::new(l.clone());
                if let syn::Lit::Str(s) = lit {
                    out.push((s.value(), line_of(l.span())));
                }
            }
            _ => {}
        }
    }
}

fn collect_uses(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut std::collections::HashMap<String, Vec<String>>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(ident_name(&p.ident));
            collect_uses(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = ident_name(&n.ident);
            if name == "self" {
                if let Some(last) = prefix.last() {
                    out.insert(last.clone(), prefix.clone());
                }
            } else {
                let mut full = prefix.clone();
                full.push(name.clone());
                out.insert(name, full);
            }
        }
        syn::UseTree::Rename(r) => {
            let name = ident_name(&r.ident);
            let mut full = prefix.clone();
            if name != "self" {
                full.push(name);
            }
            out.insert(ident_name(&r.rename), full);
        }
        syn::UseTree::Glob(_) => {}
        syn::UseTree::Group(g) => {
            for t in &g.items {
                collect_uses(t, prefix, out);
            }
        }
    }
}

fn fn_scope(sig: &syn::Signature) -> Scope {
    let mut s = Scope::new();
    for input in &sig.inputs {
        if let syn::FnArg::Typed(pt) = input {
            if let syn::Pat::Ident(pi) = &*pt.pat {
                if let Some(h) = classify::hint_from_type(&pt.ty) {
                    s.insert(ident_name(&pi.ident), h);
                }
            }
        }
    }
    s
}

impl<'a> Visitor<'a> {
    fn new(ctx: &'a FileCtx) -> Self {
        Visitor {
            ctx,
            facts: FileFacts::default(),
            sandbox_depth: usize::from(ctx.sandboxed),
            mod_stack: Vec::new(),
            in_macro: 0,
            scope: Scope::new(),
            uses: std::collections::HashMap::new(),
        }
    }

    fn record_export(&mut self, attrs: &[Attribute], sig: &syn::Signature, allow_extern_fn: bool) {
        let name = ident_name(&sig.ident);
        let (mut reasons, symbol) = export_info(attrs, &name);
        let abi = sig.abi.as_ref().map(abi_name);
        if allow_extern_fn && abi.as_deref().is_some_and(|a| a != "Rust") {
            reasons.push("extern-fn".to_string());
        }
        if reasons.is_empty() {
            return;
        }
        self.facts.exported.push(ExportedFnEntry {
            name,
            symbol,
            file: self.ctx.display.clone(),
            line: line_of(sig.ident.span()),
            abi: abi.unwrap_or_else(|| "Rust".to_string()),
            reasons,
        });
    }

    fn handle_macro(&mut self, mac: &syn::Macro) {
        let name = mac
            .path
            .segments
            .last()
            .map(|s| ident_name(&s.ident))
            .unwrap_or_default();
        if self.ctx.is_build {
            self.build_literals(mac.tokens.clone());
        }
        match name.as_str() {
            // Macro definitions are not looked into (as cargo-geiger).
            "macro_rules" => {}
            "include" => self.handle_include(mac),
            _ => {
                // Try the body as expressions (println!, assert!, vec!, ...),
                // then as items (item-wrapping macros), then look for brace
                // groups holding items (cfg_if!-style).
                self.in_macro += 1;
                if let Ok(exprs) =
                    mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
                {
                    for e in &exprs {
                        self.visit_expr(e);
                    }
                } else if let Ok(file) = syn::parse2::<syn::File>(mac.tokens.clone()) {
                    for item in &file.items {
                        self.visit_item(item);
                    }
                } else {
                    self.brace_groups_as_items(mac.tokens.clone(), 0);
                }
                self.in_macro -= 1;
            }
        }
    }

    fn brace_groups_as_items(&mut self, tokens: TokenStream, depth: usize) {
        if depth > 8 {
            return;
        }
        for tt in tokens {
            if let TokenTree::Group(g) = tt {
                if g.delimiter() == proc_macro2::Delimiter::Brace {
                    if let Ok(file) = syn::parse2::<syn::File>(g.stream()) {
                        for item in &file.items {
                            self.visit_item(item);
                        }
                        continue;
                    }
                }
                self.brace_groups_as_items(g.stream(), depth + 1);
            }
        }
    }

    fn build_literals(&mut self, tokens: TokenStream) {
        let mut lits = Vec::new();
        string_literals(tokens, &mut lits);
        for (s, line) in lits {
            for prefix in ["cargo::rustc-link-lib=", "cargo:rustc-link-lib="] {
                if let Some(rest) = s.strip_prefix(prefix) {
                    self.facts.links.push(LinkEntry {
                        name: rest.to_string(),
                        source: "build-script".to_string(),
                        file: self.ctx.display.clone(),
                        line,
                    });
                }
            }
        }
    }

    fn handle_include(&mut self, mac: &syn::Macro) {
        let line = line_of(mac.path.span());
        let target = match mac.parse_body::<Expr>() {
            Ok(e) => self.include_target(&e),
            Err(_) => IncludeTarget::Unresolved(mac.tokens.to_string()),
        };
        self.facts.includes.push(IncludeRequest { line, target });
    }

    fn include_target(&self, e: &Expr) -> IncludeTarget {
        if let Some(s) = str_value(e) {
            return IncludeTarget::File(self.ctx.dir.join(s));
        }
        if let Expr::Macro(m) = e {
            let is_concat = m
                .mac
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "concat");
            if is_concat {
                if let Ok(parts) = m
                    .mac
                    .parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
                {
                    let mut base: Option<&str> = None;
                    let mut rest = String::new();
                    for (i, p) in parts.iter().enumerate() {
                        if let Some(s) = str_value(p) {
                            rest.push_str(&s);
                            continue;
                        }
                        if let Expr::Macro(em) = p {
                            if i == 0
                                && em
                                    .mac
                                    .path
                                    .segments
                                    .last()
                                    .is_some_and(|s| s.ident == "env")
                            {
                                if let Ok(var) = em.mac.parse_body::<syn::LitStr>() {
                                    match var.value().as_str() {
                                        "OUT_DIR" => base = Some("OUT_DIR"),
                                        "CARGO_MANIFEST_DIR" => base = Some("CARGO_MANIFEST_DIR"),
                                        _ => {}
                                    }
                                    if base.is_some() {
                                        continue;
                                    }
                                }
                            }
                        }
                        return IncludeTarget::Unresolved(quote::quote!(#e).to_string());
                    }
                    return match base {
                        Some("OUT_DIR") => {
                            IncludeTarget::OutDir(rest.trim_start_matches('/').to_string())
                        }
                        Some(_) => IncludeTarget::File(
                            self.ctx.manifest_dir.join(rest.trim_start_matches('/')),
                        ),
                        None => IncludeTarget::File(self.ctx.dir.join(rest)),
                    };
                }
            }
        }
        IncludeTarget::Unresolved(quote::quote!(#e).to_string())
    }

    fn mod_request(&mut self, node: &syn::ItemMod) {
        let name = ident_name(&node.ident);
        let line = line_of(node.ident.span());
        let path_attr = node.attrs.iter().find_map(|a| {
            if a.path().is_ident("path") {
                if let syn::Meta::NameValue(nv) = &a.meta {
                    return str_value(&nv.value);
                }
            }
            None
        });
        let mut alternatives = Vec::new();
        for a in &node.attrs {
            if !a.path().is_ident("cfg_attr") {
                continue;
            }
            let Ok(list) = a.parse_args_with(Punctuated::<syn::Meta, Token![,]>::parse_terminated)
            else {
                continue;
            };
            for m in list.iter().skip(1) {
                if let syn::Meta::NameValue(nv) = m {
                    if nv.path.is_ident("path") {
                        if let Some(p) = str_value(&nv.value) {
                            alternatives.push(p);
                        }
                    }
                }
            }
        }
        let mut inline_dir = self.ctx.mod_dir.clone();
        for m in &self.mod_stack {
            inline_dir.push(m);
        }
        let (candidates, is_path) = match path_attr {
            Some(p) if self.mod_stack.is_empty() => (vec![self.ctx.dir.join(p)], true),
            Some(p) => (vec![inline_dir.join(p)], true),
            None => (
                vec![
                    inline_dir.join(format!("{}.rs", name)),
                    inline_dir.join(&name).join("mod.rs"),
                ],
                false,
            ),
        };
        let base = if self.mod_stack.is_empty() {
            self.ctx.dir.clone()
        } else {
            inline_dir.clone()
        };
        let alternatives = alternatives.into_iter().map(|p| base.join(p)).collect();
        self.facts.mods.push(ModRequest {
            name,
            line,
            candidates,
            path_attr: is_path,
            alternatives,
            sandboxed: self.sandbox_depth > 0,
        });
    }

    fn build_call_signals(&mut self, path: &syn::Path, args: &Punctuated<Expr, Token![,]>) {
        let segs: Vec<String> = path.segments.iter().map(|s| ident_name(&s.ident)).collect();
        let lits: Vec<String> = args.iter().filter_map(str_value).collect();
        if segs.len() >= 2 && segs[segs.len() - 2] == "Command" && segs[segs.len() - 1] == "new" {
            if let Some(prog) = lits.first() {
                let base = Path::new(prog)
                    .file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_default();
                let tool = match base.as_str() {
                    "make" | "gmake" | "nmake" | "mingw32-make" => Some("make"),
                    "configure" => Some("autotools"),
                    "cmake" => Some("cmake"),
                    "ninja" => Some("ninja"),
                    "meson" => Some("meson"),
                    "cc" | "gcc" | "clang" | "cl" | "cl.exe" | "c++" | "g++" | "clang++" => {
                        Some("compiler")
                    }
                    _ => None,
                };
                if let Some(t) = tool {
                    self.facts.c_tools.insert(t.to_string());
                }
            }
        }
        if let Some(first) = segs.first() {
            let probe = matches!(
                segs.last().map(String::as_str),
                Some("probe_library" | "find_package" | "probe")
            );
            if probe && (first == "pkg_config" || first == "vcpkg") {
                if let Some(lib) = lits.first() {
                    self.facts.links.push(LinkEntry {
                        name: lib.clone(),
                        source: if first == "vcpkg" {
                            "vcpkg"
                        } else {
                            "pkg-config"
                        }
                        .to_string(),
                        file: self.ctx.display.clone(),
                        line: line_of(path.span()),
                    });
                }
            }
        }
        if !lits.is_empty() {
            self.facts.literal_groups.push(lits);
        }
    }

    fn note_tool_path(&mut self, first: &str, len: usize) {
        if len < 2 {
            return;
        }
        let tool = match first {
            "cc" => "cc",
            "cmake" => "cmake",
            "autotools" => "autotools",
            "cc_build" => "cc",
            _ => return,
        };
        self.facts.c_tools.insert(tool.to_string());
    }
}

impl<'ast> Visit<'ast> for Visitor<'_> {
    fn visit_item_foreign_mod(&mut self, node: &'ast syn::ItemForeignMod) {
        if is_test_item(&node.attrs) {
            return;
        }
        let abi = abi_name(&node.abi);
        let link = link_name(&node.attrs);
        let sandboxed = self.sandbox_depth > 0 || has_sandbox_attr(&node.attrs);
        if let Some(l) = &link {
            self.facts.links.push(LinkEntry {
                name: l.clone(),
                source: "link-attribute".to_string(),
                file: self.ctx.display.clone(),
                line: line_of(node.abi.extern_token.span),
            });
        }
        let mut functions = 0;
        for item in &node.items {
            if let syn::ForeignItem::Fn(f) = item {
                if is_test_item(&f.attrs) {
                    continue;
                }
                functions += 1;
                self.facts.foreign.push(RawForeignFn {
                    name: ident_name(&f.sig.ident),
                    line: line_of(f.sig.ident.span()),
                    abi: abi.clone(),
                    link: link.clone(),
                    sandboxed,
                    sig: f.sig.clone(),
                });
            }
        }
        self.facts.extern_blocks.push(ExternBlockEntry {
            file: self.ctx.display.clone(),
            line: line_of(node.abi.extern_token.span),
            abi,
            link,
            sandboxed,
            functions,
        });
    }

    fn visit_item_fn(&mut self, node: &'ast syn::ItemFn) {
        if is_test_item(&node.attrs) {
            return;
        }
        if node.sig.unsafety.is_some() && self.in_macro == 0 {
            self.facts.unsafe_counts.fns += 1;
        }
        self.facts.rust_fns.push(ident_name(&node.sig.ident));
        self.record_export(&node.attrs, &node.sig, true);
        let fresh = fn_scope(&node.sig);
        let saved = std::mem::replace(&mut self.scope, fresh);
        visit::visit_item_fn(self, node);
        self.scope = saved;
    }

    fn visit_impl_item_fn(&mut self, node: &'ast syn::ImplItemFn) {
        if is_test_item(&node.attrs) {
            return;
        }
        if node.sig.unsafety.is_some() && self.in_macro == 0 {
            self.facts.unsafe_counts.fns += 1;
        }
        self.record_export(&node.attrs, &node.sig, true);
        let fresh = fn_scope(&node.sig);
        let saved = std::mem::replace(&mut self.scope, fresh);
        visit::visit_impl_item_fn(self, node);
        self.scope = saved;
    }

    fn visit_trait_item_fn(&mut self, node: &'ast syn::TraitItemFn) {
        if node.sig.unsafety.is_some() && self.in_macro == 0 {
            self.facts.unsafe_counts.fns += 1;
        }
        let fresh = fn_scope(&node.sig);
        let saved = std::mem::replace(&mut self.scope, fresh);
        visit::visit_trait_item_fn(self, node);
        self.scope = saved;
    }

    fn visit_item_impl(&mut self, node: &'ast syn::ItemImpl) {
        if is_test_item(&node.attrs) {
            return;
        }
        if node.unsafety.is_some() && self.in_macro == 0 {
            self.facts.unsafe_counts.impls += 1;
        }
        visit::visit_item_impl(self, node);
    }

    fn visit_item_trait(&mut self, node: &'ast syn::ItemTrait) {
        if is_test_item(&node.attrs) {
            return;
        }
        if node.unsafety.is_some() && self.in_macro == 0 {
            self.facts.unsafe_counts.traits += 1;
        }
        visit::visit_item_trait(self, node);
    }

    fn visit_expr_unsafe(&mut self, node: &'ast syn::ExprUnsafe) {
        if self.in_macro == 0 {
            self.facts.unsafe_counts.blocks += 1;
        }
        visit::visit_expr_unsafe(self, node);
    }

    fn visit_item_mod(&mut self, node: &'ast syn::ItemMod) {
        if is_test_item(&node.attrs) {
            return;
        }
        let sandbox = has_sandbox_attr(&node.attrs);
        if sandbox {
            self.sandbox_depth += 1;
        }
        match &node.content {
            None => {
                // A sandbox attribute on `mod ffi;` covers the file: recorded on the request.
                self.mod_request(node);
            }
            Some(_) => {
                self.mod_stack.push(ident_name(&node.ident));
                visit::visit_item_mod(self, node);
                self.mod_stack.pop();
            }
        }
        if sandbox {
            self.sandbox_depth -= 1;
        }
    }

    fn visit_item_type(&mut self, node: &'ast syn::ItemType) {
        self.facts
            .aliases
            .push((ident_name(&node.ident), (*node.ty).clone()));
        visit::visit_item_type(self, node);
    }

    fn visit_item_use(&mut self, node: &'ast syn::ItemUse) {
        let mut prefix = Vec::new();
        collect_uses(&node.tree, &mut prefix, &mut self.uses);
        if self.ctx.is_build {
            let mut t = &node.tree;
            let mut first = None;
            let mut len = 0;
            loop {
                match t {
                    syn::UseTree::Path(p) => {
                        if first.is_none() {
                            first = Some(ident_name(&p.ident));
                        }
                        len += 1;
                        t = &p.tree;
                    }
                    _ => {
                        len += 1;
                        break;
                    }
                }
            }
            if let Some(f) = first {
                self.note_tool_path(&f, len);
            }
        }
        visit::visit_item_use(self, node);
    }

    fn visit_item_extern_crate(&mut self, node: &'ast syn::ItemExternCrate) {
        if self.ctx.is_build {
            let n = ident_name(&node.ident);
            self.note_tool_path(&n, 2);
        }
    }

    fn visit_path(&mut self, node: &'ast syn::Path) {
        if self.ctx.is_build {
            if let Some(first) = node.segments.first() {
                let f = ident_name(&first.ident);
                self.note_tool_path(&f, node.segments.len());
            }
        }
        visit::visit_path(self, node);
    }

    fn visit_local(&mut self, node: &'ast syn::Local) {
        // The initialiser is evaluated before the binding exists.
        if let Some(init) = &node.init {
            self.visit_expr(&init.expr);
            if let Some((_, diverge)) = &init.diverge {
                self.visit_expr(diverge);
            }
        }
        let (name, ty) = match &node.pat {
            syn::Pat::Ident(pi) => (Some(ident_name(&pi.ident)), None),
            syn::Pat::Type(pt) => match &*pt.pat {
                syn::Pat::Ident(pi) => (Some(ident_name(&pi.ident)), Some(&*pt.ty)),
                _ => (None, None),
            },
            _ => (None, None),
        };
        if let Some(name) = name {
            let by_init = node
                .init
                .as_ref()
                .and_then(|i| classify::let_hint(&i.expr, &self.scope));
            let hint = match (by_init, ty.and_then(classify::hint_from_type)) {
                (Some(VarHint::Ptr(k)), _) => Some(VarHint::Ptr(k)),
                (_, Some(h)) => Some(h),
                (h, None) => h,
            };
            match hint {
                Some(h) => {
                    self.scope.insert(name, h);
                }
                None => {
                    self.scope.remove(&name);
                }
            }
        }
        // Visit the pattern and type for completeness (no calls there).
        self.visit_pat(&node.pat);
    }

    fn visit_expr_call(&mut self, node: &'ast syn::ExprCall) {
        let mut func = &*node.func;
        while let Expr::Paren(p) = func {
            func = &p.expr;
        }
        if let Expr::Path(p) = func {
            if p.qself.is_none() {
                if let Some(last) = p.path.segments.last() {
                    let n = p.path.segments.len();
                    let qualifier = if n >= 2 {
                        Some(ident_name(&p.path.segments[n - 2].ident))
                    } else {
                        None
                    };
                    let args = node
                        .args
                        .iter()
                        .map(|a| classify::classify_arg(a, &self.scope))
                        .collect();
                    let segs: Vec<String> = p
                        .path
                        .segments
                        .iter()
                        .map(|s| ident_name(&s.ident))
                        .collect();
                    let root = if p.path.leading_colon.is_some() {
                        Some(segs[0].clone())
                    } else if let Some(full) = self.uses.get(&segs[0]) {
                        full.first().cloned()
                    } else if n >= 2 {
                        Some(segs[0].clone())
                    } else {
                        None
                    };
                    self.facts.calls.push(RawCall {
                        root,
                        name: ident_name(&last.ident),
                        path: path_string(&p.path),
                        segments: n,
                        qualifier,
                        line: line_of(p.path.segments[0].ident.span()),
                        args,
                    });
                }
            }
            if self.ctx.is_build {
                self.build_call_signals(&p.path, &node.args);
            }
        }
        visit::visit_expr_call(self, node);
    }

    fn visit_expr_method_call(&mut self, node: &'ast syn::ExprMethodCall) {
        if self.ctx.is_build {
            let lits: Vec<String> = node.args.iter().filter_map(str_value).collect();
            let m = node.method.to_string();
            if matches!(m.as_str(), "probe" | "probe_library") {
                // `pkg_config::Config::new()...probe("zlib")`
                let mut recv = &*node.receiver;
                let mut is_pkg = false;
                for _ in 0..16 {
                    match recv {
                        Expr::MethodCall(mc) => recv = &mc.receiver,
                        Expr::Call(c) => {
                            if let Expr::Path(p) = &*c.func {
                                is_pkg = p
                                    .path
                                    .segments
                                    .first()
                                    .is_some_and(|s| s.ident == "pkg_config");
                            }
                            break;
                        }
                        _ => break,
                    }
                }
                if is_pkg {
                    if let Some(lib) = lits.first() {
                        self.facts.links.push(LinkEntry {
                            name: lib.clone(),
                            source: "pkg-config".to_string(),
                            file: self.ctx.display.clone(),
                            line: line_of(node.method.span()),
                        });
                    }
                }
            }
            if !lits.is_empty() {
                self.facts.literal_groups.push(lits);
            }
        }
        visit::visit_expr_method_call(self, node);
    }

    fn visit_expr_closure(&mut self, node: &'ast syn::ExprClosure) {
        let saved = self.scope.clone();
        visit::visit_expr_closure(self, node);
        self.scope = saved;
    }

    fn visit_block(&mut self, node: &'ast syn::Block) {
        // Bindings do not outlive their block.
        let saved = self.scope.clone();
        visit::visit_block(self, node);
        self.scope = saved;
    }

    fn visit_item_macro(&mut self, node: &'ast syn::ItemMacro) {
        if is_test_item(&node.attrs) {
            return;
        }
        self.handle_macro(&node.mac);
    }

    fn visit_stmt_macro(&mut self, node: &'ast syn::StmtMacro) {
        self.handle_macro(&node.mac);
    }

    fn visit_expr_macro(&mut self, node: &'ast syn::ExprMacro) {
        self.handle_macro(&node.mac);
    }

    fn visit_expr_lit(&mut self, node: &'ast syn::ExprLit) {
        if self.ctx.is_build {
            if let syn::Lit::Str(s) = &node.lit {
                let v = s.value();
                for prefix in ["cargo::rustc-link-lib=", "cargo:rustc-link-lib="] {
                    if let Some(rest) = v.strip_prefix(prefix) {
                        self.facts.links.push(LinkEntry {
                            name: rest.to_string(),
                            source: "build-script".to_string(),
                            file: self.ctx.display.clone(),
                            line: line_of(s.span()),
                        });
                    }
                }
            }
        }
    }
}
