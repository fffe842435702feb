//! Per-crate analysis: walks the module tree of every target (following
//! `mod foo;` and `include!`), parses each file with syn and gathers the
//! facts of [`crate::visit`] into plain data that can leave the thread.

use crate::classify::{self, Aliases};
use crate::discover::{find_out_dir_file, CrateInput, TargetKind};
use crate::report::{
    Class, ExportedFnEntry, ExternBlockEntry, FileEntry, FileError, LinkEntry, UnsafeCounts,
};
use crate::visit::{self, FileCtx, FileFacts, IncludeTarget, RawCall, RawForeignFn};
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};

/// A classified foreign function (plain data).
#[derive(Debug, Clone)]
pub struct ForeignFn {
    /// Name.
    pub name: String,
    /// File, for the report.
    pub file: String,
    /// Line.
    pub line: usize,
    /// ABI.
    pub abi: String,
    /// `#[link(name)]`.
    pub link: Option<String>,
    /// Behind a sandbox.
    pub sandboxed: bool,
    /// Classes.
    pub classes: Vec<Class>,
    /// Number of parameters.
    pub params: usize,
    /// Indices of pointer parameters.
    pub pointer_params: Vec<usize>,
    /// Number of callback parameters.
    pub callback_params: usize,
}

/// A call candidate with its file.
#[derive(Debug, Clone)]
pub struct Call {
    /// File, for the report.
    pub file: String,
    /// The call.
    pub raw: RawCall,
}

/// Everything learned about one crate, before call resolution.
#[derive(Debug, Default)]
pub struct CrateFacts {
    /// Unsafe counts over all files.
    pub unsafe_code: UnsafeCounts,
    /// Unsafe counts of build-script files.
    pub unsafe_build: UnsafeCounts,
    /// Files read.
    pub files: Vec<FileEntry>,
    /// Link libraries.
    pub links: Vec<LinkEntry>,
    /// Tools compiling C.
    pub compiles_c: Vec<String>,
    /// Extern blocks.
    pub extern_blocks: Vec<ExternBlockEntry>,
    /// Classified foreign functions (not build-script ones).
    pub foreign: Vec<ForeignFn>,
    /// Call candidates (not in the build script).
    pub calls: Vec<Call>,
    /// Rust free functions defined in the crate.
    pub rust_fns: HashSet<String>,
    /// Exported functions.
    pub exported: Vec<ExportedFnEntry>,
    /// Notes.
    pub notes: Vec<String>,
    /// Errors.
    pub errors: Vec<FileError>,
}

struct Pending {
    path: PathBuf,
    kind: TargetKind,
    via: &'static str,
    /// Owns its directory (lib.rs, main.rs, mod.rs, `#[path]`, includes).
    mod_root: bool,
    sandboxed: bool,
}

fn display_path(manifest_dir: &Path, p: &Path) -> String {
    match p.strip_prefix(manifest_dir) {
        Ok(rel) => rel.to_string_lossy().replace('\\', "/"),
        Err(_) => p.to_string_lossy().to_string(),
    }
}

/// Removes `.` and `..` components without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Analyses one crate. Runs entirely on the calling thread (syn values are
/// not `Send`); returns plain data.
pub fn analyze_crate(input: &CrateInput) -> CrateFacts {
    let mut facts = CrateFacts::default();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut raw_foreign: Vec<(String, RawForeignFn)> = Vec::new();
    let mut aliases = Aliases::new();
    let mut c_tools: BTreeSet<String> = BTreeSet::new();
    let mut literal_groups: Vec<Vec<String>> = Vec::new();
    let mut out_dir_requests: Vec<(String, String, usize, TargetKind)> = Vec::new();
    let mut missing_mods: Vec<String> = Vec::new();

    // Build script first, so that its facts are known when `OUT_DIR`
    // includes of the library need a fallback.
    let mut targets = input.targets.clone();
    targets.sort();
    let mut pending_targets: VecDeque<(TargetKind, PathBuf)> = targets.into();

    loop {
        // `OUT_DIR` includes: once the current target's files are all read,
        // queue the generated files (or pre-generated fallbacks).
        if queue.is_empty() && !out_dir_requests.is_empty() {
            for (from, rel, line, kind) in std::mem::take(&mut out_dir_requests) {
                if let Some(p) = find_out_dir_file(&input.target_dir, &input.name, &rel) {
                    queue.push_back(Pending {
                        path: p,
                        kind,
                        via: "out-dir",
                        mod_root: true,
                        sandboxed: false,
                    });
                    continue;
                }
                match pre_generated(input, &rel, &literal_groups) {
                    Some(p) => {
                        facts.notes.push(format!(
                            "{}:{}: OUT_DIR/{} not found (crate not built); read the \
                             pre-generated bindings {} that the build script copies there",
                            from,
                            line,
                            rel,
                            display_path(&input.manifest_dir, &p)
                        ));
                        queue.push_back(Pending {
                            path: p,
                            kind,
                            via: "pre-generated",
                            mod_root: true,
                            sandboxed: false,
                        });
                    }
                    None => facts.notes.push(format!(
                        "{}:{}: OUT_DIR/{} not found: the crate has not been built, so its \
                         generated code is not audited",
                        from, line, rel
                    )),
                }
            }
        }
        if queue.is_empty() {
            match pending_targets.pop_front() {
                Some((kind, path)) => queue.push_back(Pending {
                    path,
                    kind,
                    via: "root",
                    mod_root: true,
                    sandboxed: false,
                }),
                None => break,
            }
        }
        let Some(item) = queue.pop_front() else {
            continue;
        };
        let path = normalize(&item.path);
        let key = path.canonicalize().unwrap_or_else(|_| path.clone());
        if !seen.insert(key) {
            continue;
        }
        let display = display_path(&input.manifest_dir, &path);
        facts.files.push(FileEntry {
            path: display.clone(),
            target: item.kind.as_str().to_string(),
            via: item.via.to_string(),
        });
        let source = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                facts.errors.push(FileError {
                    krate: input.name.clone(),
                    file: display,
                    line: None,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mod_dir = if item.mod_root {
            dir.clone()
        } else {
            dir.join(path.file_stem().unwrap_or_default())
        };
        let ctx = FileCtx {
            display: display.clone(),
            dir: dir.clone(),
            mod_dir,
            manifest_dir: input.manifest_dir.clone(),
            is_build: item.kind == TargetKind::BuildScript,
            sandboxed: item.sandboxed,
        };
        let ff: FileFacts = match syn::parse_file(&source) {
            Ok(file) => visit::visit_file(&file, &ctx),
            Err(file_err) => {
                // An `include!` in expression position holds an expression.
                match syn::parse_str::<syn::Expr>(&source) {
                    Ok(expr) if item.via != "root" && item.via != "mod" => {
                        visit::visit_expr_file(&expr, &ctx)
                    }
                    _ => {
                        let line = file_err.span().start().line;
                        facts.errors.push(FileError {
                            krate: input.name.clone(),
                            file: display,
                            line: Some(line),
                            message: file_err.to_string(),
                        });
                        proc_macro2::extra::invalidate_current_thread_spans();
                        continue;
                    }
                }
            }
        };

        // Fold the file's facts in.
        let target = if ctx.is_build {
            &mut facts.unsafe_build
        } else {
            &mut facts.unsafe_code
        };
        target.add(&ff.unsafe_counts);
        facts.links.extend(ff.links);
        c_tools.extend(ff.c_tools);
        literal_groups.extend(ff.literal_groups);
        facts.notes.extend(ff.notes);
        if !ctx.is_build {
            facts.extern_blocks.extend(ff.extern_blocks);
            raw_foreign.extend(ff.foreign.into_iter().map(|f| (display.clone(), f)));
            for (n, t) in ff.aliases {
                aliases.entry(n).or_insert(t);
            }
            facts.rust_fns.extend(ff.rust_fns);
            facts.exported.extend(ff.exported);
            facts.calls.extend(ff.calls.into_iter().map(|raw| Call {
                file: display.clone(),
                raw,
            }));
        }
        for m in ff.mods {
            for alt in m.alternatives.iter().filter(|a| a.is_file()) {
                queue.push_back(Pending {
                    path: alt.clone(),
                    kind: item.kind,
                    via: "mod",
                    mod_root: true,
                    sandboxed: m.sandboxed,
                });
            }
            let has_alternative = m.alternatives.iter().any(|a| a.is_file());
            match m.candidates.iter().find(|c| c.is_file()) {
                Some(found) => {
                    let mod_root = m.path_attr || found.file_name().is_some_and(|f| f == "mod.rs");
                    queue.push_back(Pending {
                        path: found.clone(),
                        kind: item.kind,
                        via: "mod",
                        mod_root,
                        sandboxed: m.sandboxed,
                    });
                }
                None if has_alternative => {}
                None => missing_mods.push(format!(
                    "{}:{}: `mod {};` has no file ({})",
                    display,
                    m.line,
                    m.name,
                    m.candidates
                        .iter()
                        .map(|c| display_path(&input.manifest_dir, c))
                        .collect::<Vec<_>>()
                        .join(" or ")
                )),
            }
        }
        for inc in ff.includes {
            match inc.target {
                IncludeTarget::File(p) => {
                    if p.is_file() {
                        queue.push_back(Pending {
                            path: p,
                            kind: item.kind,
                            via: "include",
                            mod_root: true,
                            sandboxed: item.sandboxed,
                        });
                    } else {
                        facts.notes.push(format!(
                            "{}:{}: include! of {} not found",
                            display,
                            inc.line,
                            display_path(&input.manifest_dir, &p)
                        ));
                    }
                }
                IncludeTarget::OutDir(rel) => {
                    out_dir_requests.push((display.clone(), rel, inc.line, item.kind))
                }
                IncludeTarget::Unresolved(tokens) => facts.notes.push(format!(
                    "{}:{}: include!({}) not followed (path is not literal)",
                    display, inc.line, tokens
                )),
            }
        }
        proc_macro2::extra::invalidate_current_thread_spans();
    }

    facts.notes.extend(missing_mods);

    // Classify foreign functions with the crate's type aliases.
    for (file, f) in raw_foreign {
        let shape = classify::classify_signature(&f.sig, &aliases);
        facts.foreign.push(ForeignFn {
            name: f.name,
            file,
            line: f.line,
            abi: f.abi,
            link: f.link,
            sandboxed: f.sandboxed,
            classes: shape.classes,
            params: shape.params,
            pointer_params: shape.pointer_params,
            callback_params: shape.callback_params,
        });
    }
    facts.compiles_c = c_tools.into_iter().collect();
    facts.links.sort();
    facts.links.dedup();
    facts.notes.sort();
    facts.notes.dedup();
    facts.files.sort();
    facts.extern_blocks.sort();
    facts.exported.sort();
    facts.errors.sort();
    facts
}

/// When `OUT_DIR/<rel>` does not exist (the crate was not built), looks for
/// bindings shipped pre-generated in the package that the build script
/// copies there: a `.rs` file `<dir>/<stem>.rs` of the package such that some
/// call in the build script has both `"<dir>"` and `"<stem>"` among its
/// string-literal arguments (libsqlite3-sys:
/// `copy_bindings("sqlite3", "bindgen_bundled_version", out_path)`), or, if no
/// call pairs them, the only package file whose stem is such a literal.
fn pre_generated(input: &CrateInput, rel: &str, groups: &[Vec<String>]) -> Option<PathBuf> {
    if groups.is_empty() || !rel.ends_with(".rs") {
        return None;
    }
    let mut files = Vec::new();
    collect_rs_files(&input.manifest_dir, 0, &mut files);
    files.sort();
    let mut paired = Vec::new();
    let mut stem_only = Vec::new();
    for f in &files {
        let Ok(relp) = f.strip_prefix(&input.manifest_dir) else {
            continue;
        };
        let stem = f
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let parent = relp
            .parent()
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        if parent.starts_with("src") || parent.starts_with("tests") || parent.starts_with("target")
        {
            continue;
        }
        for g in groups {
            if g.contains(&stem) {
                if !parent.is_empty() && g.contains(&parent) {
                    paired.push(f.clone());
                } else {
                    stem_only.push(f.clone());
                }
            }
        }
    }
    paired.dedup();
    stem_only.dedup();
    if paired.len() == 1 {
        return paired.pop();
    }
    if paired.is_empty() && stem_only.len() == 1 {
        return stem_only.pop();
    }
    None
}

fn collect_rs_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > 4 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target" || n == ".git") {
                continue;
            }
            collect_rs_files(&p, depth + 1, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}
