//! The report: data types (serialized as the JSON schema documented in
//! `docs/audit.md`) and the three renderings (table, JSON, SARIF).

use serde::Serialize;
use std::fmt::Write as _;

/// Where the rules are documented (SARIF `informationUri` and `helpUri`).
pub const INFORMATION_URI: &str = "https://docs.rs/cofferdam-audit";

/// Version of the JSON schema. Bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// What a foreign function can do to Rust memory, judged from its signature.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// A parameter is a `*mut` pointer (or `&mut`, `NonNull`, `Box`): C may write through it.
    WritesThroughPointer,
    /// A parameter is a `*const` pointer (or `&`): C may read through it.
    ReadsThroughPointer,
    /// A parameter is a function pointer: C may call back into Rust.
    TakesCallback,
    /// The return type is a pointer.
    ReturnsPointer,
    /// The function is variadic (`...`): its arguments cannot be checked.
    Variadic,
    /// Only scalars in and out: the class the seed paper calls safe to call.
    ScalarsOnly,
}

impl Class {
    /// The kebab-case name used in JSON and in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::WritesThroughPointer => "writes-through-pointer",
            Class::ReadsThroughPointer => "reads-through-pointer",
            Class::TakesCallback => "takes-callback",
            Class::ReturnsPointer => "returns-pointer",
            Class::Variadic => "variadic",
            Class::ScalarsOnly => "scalars-only",
        }
    }

    /// All classes, in report order.
    pub const ALL: [Class; 6] = [
        Class::WritesThroughPointer,
        Class::ReadsThroughPointer,
        Class::TakesCallback,
        Class::ReturnsPointer,
        Class::Variadic,
        Class::ScalarsOnly,
    ];
}

/// What an argument passed to a pointer parameter points at, when it can be
/// seen from the syntax of the call.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum ArgKind {
    /// Rust memory (a `Vec`, `String`, slice, `Box`, array or a reference) handed to C.
    RustMemory,
    /// Memory owned by Cofferdam's foreign heap (`ForeignBox`, `ForeignVec`, ...).
    ForeignMemory,
    /// A null pointer.
    Null,
    /// Cannot be told from the syntax.
    Unknown,
}

impl ArgKind {
    /// The kebab-case name used in JSON and in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            ArgKind::RustMemory => "rust-memory",
            ArgKind::ForeignMemory => "foreign-memory",
            ArgKind::Null => "null",
            ArgKind::Unknown => "unknown",
        }
    }
}

/// The whole audit.
#[derive(Serialize, Debug, Clone)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Name and version of the tool that wrote the report.
    pub tool: ToolInfo,
    /// The directory that was audited (absolute).
    pub root: String,
    /// Whether dependencies were audited (`--deps`).
    pub deps: bool,
    /// Totals over all crates.
    pub summary: Summary,
    /// One entry per audited crate, ranked by exposure score (highest first),
    /// then by name and version.
    pub crates: Vec<CrateReport>,
    /// Every file that could not be read or parsed, over all crates.
    pub errors: Vec<FileError>,
}

/// Name and version of the tool.
#[derive(Serialize, Debug, Clone)]
pub struct ToolInfo {
    /// `cofferdam-audit`.
    pub name: String,
    /// The crate version.
    pub version: String,
}

/// Totals over all crates.
#[derive(Serialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Number of audited crates.
    pub crates: usize,
    /// Crates that declare foreign functions, call them, export functions to C or compile C.
    pub crates_with_foreign_code: usize,
    /// Sum of the per-crate unsafe counts.
    pub unsafe_code: UnsafeCounts,
    /// Number of foreign functions declared.
    pub foreign_functions: usize,
    /// Number of call sites of foreign functions.
    pub call_sites: usize,
    /// Call sites handing Rust memory to a foreign function outside a sandbox.
    pub unprotected_pointer_calls: usize,
    /// Functions exported to C.
    pub exported_functions: usize,
    /// Files that could not be read or parsed.
    pub errors: usize,
}

/// Unsafe code, counted the way cargo-geiger counts it.
#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnsafeCounts {
    /// `unsafe { .. }` blocks (expressions).
    pub blocks: usize,
    /// `unsafe fn`: free functions, methods in impls and in traits.
    pub fns: usize,
    /// `unsafe impl`.
    pub impls: usize,
    /// `unsafe trait`.
    pub traits: usize,
}

impl UnsafeCounts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &UnsafeCounts) {
        self.blocks += other.blocks;
        self.fns += other.fns;
        self.impls += other.impls;
        self.traits += other.traits;
    }

    /// Sum of all four counts.
    pub fn total(&self) -> usize {
        self.blocks + self.fns + self.impls + self.traits
    }
}

/// The audit of one crate (package).
#[derive(Serialize, Debug, Clone)]
pub struct CrateReport {
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: String,
    /// `workspace` for members of the audited workspace, `dependency` otherwise.
    pub source: String,
    /// Directory of the package's `Cargo.toml` (absolute).
    pub root: String,
    /// The exposure score (see `docs/audit.md`).
    pub exposure_score: u64,
    /// The terms the score is made of.
    pub exposure: Exposure,
    /// Unsafe code in all audited files of the crate (build script included).
    pub unsafe_code: UnsafeCounts,
    /// Unsafe code in the build script alone (included in `unsafe_code`).
    pub unsafe_code_build_script: UnsafeCounts,
    /// Files read, relative to `root` when inside it.
    pub files: Vec<FileEntry>,
    /// Native libraries the crate links.
    pub links: Vec<LinkEntry>,
    /// Tools the build script uses to compile C into the crate (`cc`, `cmake`, `make`, ...).
    pub compiles_c: Vec<String>,
    /// `extern` blocks.
    pub extern_blocks: Vec<ExternBlockEntry>,
    /// Foreign functions declared in `extern` blocks.
    pub foreign_functions: Vec<ForeignFnEntry>,
    /// Calls of foreign functions (of this crate or of its dependencies).
    pub call_sites: Vec<CallSiteEntry>,
    /// Functions C can call: `#[no_mangle]`, `#[export_name]`, `extern "C" fn` with a body.
    pub exported_functions: Vec<ExportedFnEntry>,
    /// Things the reader should know (e.g. the crate has not been built, so its
    /// `OUT_DIR` files could not be read).
    pub notes: Vec<String>,
    /// Files of this crate that could not be read or parsed.
    pub errors: Vec<FileError>,
}

impl CrateReport {
    /// Whether the crate has any foreign surface at all.
    pub fn has_foreign_code(&self) -> bool {
        !self.foreign_functions.is_empty()
            || !self.call_sites.is_empty()
            || !self.exported_functions.is_empty()
            || !self.compiles_c.is_empty()
            || !self.links.is_empty()
    }
}

/// The terms of the exposure score.
#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exposure {
    /// Call sites handing Rust memory to a foreign function outside a sandbox (weight 10).
    pub unprotected_pointer_calls: usize,
    /// Call sites passing an unknown pointer to a foreign function outside a sandbox (weight 4).
    pub unknown_pointer_calls: usize,
    /// Foreign functions declared outside a sandbox that write through a pointer
    /// or take a callback (weight 3).
    pub unsandboxed_writing_fns: usize,
    /// Other foreign functions declared outside a sandbox that are not scalars-only (weight 1).
    pub unsandboxed_other_pointer_fns: usize,
    /// Functions exported to C (weight 1).
    pub exported_functions: usize,
}

impl Exposure {
    /// The score: the weighted sum documented in `docs/audit.md`.
    pub fn score(&self) -> u64 {
        10 * self.unprotected_pointer_calls as u64
            + 4 * self.unknown_pointer_calls as u64
            + 3 * self.unsandboxed_writing_fns as u64
            + self.unsandboxed_other_pointer_fns as u64
            + self.exported_functions as u64
    }
}

/// A file that was read.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileEntry {
    /// Path, relative to the crate root when inside it.
    pub path: String,
    /// `lib`, `bin` or `build-script`: the target through which it was reached first.
    pub target: String,
    /// How it was reached: `root`, `mod`, `include`, `out-dir` (an `include!` of a
    /// file in the build's `OUT_DIR`) or `pre-generated` (see `docs/audit.md`).
    pub via: String,
}

/// A native library the crate links.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkEntry {
    /// Library name as written (`z`, `sqlite3`), or the pattern when it is
    /// formatted at build time (`{}`).
    pub name: String,
    /// `link-attribute`, `build-script` or `pkg-config`/`vcpkg` (probed at build time).
    pub source: String,
    /// File and line where it was seen.
    pub file: String,
    /// Line number (1-based).
    pub line: usize,
}

/// An `extern` block.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExternBlockEntry {
    /// File, relative to the crate root.
    pub file: String,
    /// Line of the `extern` keyword.
    pub line: usize,
    /// The ABI string (`C` when omitted).
    pub abi: String,
    /// `#[link(name = ..)]` on the block, if any.
    pub link: Option<String>,
    /// Whether the block (or an enclosing module) carries a `sandbox` attribute.
    pub sandboxed: bool,
    /// Number of functions declared in the block.
    pub functions: usize,
}

/// A foreign function.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ForeignFnEntry {
    /// Function name (the symbol unless `#[link_name]` says otherwise).
    pub name: String,
    /// File, relative to the crate root.
    pub file: String,
    /// Line of the declaration.
    pub line: usize,
    /// ABI of the block.
    pub abi: String,
    /// `#[link(name = ..)]` of the block, if any.
    pub link: Option<String>,
    /// Whether the block is behind a `sandbox` attribute.
    pub sandboxed: bool,
    /// Classes, in [`Class::ALL`] order; `scalars-only` appears alone.
    pub classes: Vec<Class>,
    /// Number of parameters (the `...` of a variadic function not counted).
    pub params: usize,
    /// Parameters that are pointers or references (after resolving the crate's type aliases).
    pub pointer_params: usize,
    /// Parameters that are function pointers.
    pub callback_params: usize,
}

/// What is passed to one pointer parameter at a call site.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PointerArg {
    /// 0-based argument index.
    pub index: usize,
    /// What it points at.
    pub kind: ArgKind,
}

/// A call of a foreign function.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CallSiteEntry {
    /// File, relative to the crate root.
    pub file: String,
    /// Line of the call.
    pub line: usize,
    /// Callee name.
    pub function: String,
    /// The path as written (`ffi::deflate`).
    pub path: String,
    /// Crate that declares the callee.
    pub declared_in: String,
    /// Classes of the callee.
    pub classes: Vec<Class>,
    /// Whether the callee is declared behind a `sandbox` attribute.
    pub sandboxed: bool,
    /// What is passed to each pointer parameter.
    pub pointer_args: Vec<PointerArg>,
    /// Rust memory is handed to the callee outside a sandbox.
    pub unprotected: bool,
}

/// A function C can call.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExportedFnEntry {
    /// Rust name of the function.
    pub name: String,
    /// Symbol name (the `export_name` when given).
    pub symbol: String,
    /// File, relative to the crate root.
    pub file: String,
    /// Line.
    pub line: usize,
    /// ABI (`Rust` when none is written).
    pub abi: String,
    /// Why it is exported: `no_mangle`, `export_name`, `extern-fn`.
    pub reasons: Vec<String>,
}

/// A file that could not be read or parsed; it was skipped.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileError {
    /// Crate name.
    #[serde(rename = "crate")]
    pub krate: String,
    /// File path (relative to the crate root when inside it).
    pub file: String,
    /// Line of the error, when the parser gave one.
    pub line: Option<usize>,
    /// The parser's (or the OS's) message.
    pub message: String,
}

/// Output formats.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A readable table (fits 100 columns).
    #[default]
    Table,
    /// The JSON schema documented in `docs/audit.md`.
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

/// Renders the report as JSON.
pub fn to_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("report serializes")
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

/// Renders the report as a table of at most 100 columns.
pub fn to_table(report: &Report) -> String {
    let mut o = String::new();
    let s = &report.summary;
    let _ = writeln!(
        o,
        "cofferdam audit of {}{}",
        report.root,
        if report.deps {
            " (with dependencies)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        o,
        "{} crates, {} with foreign code; {} foreign fns, {} call sites, {} unprotected \
         pointer calls, {} exported fns, {} errors",
        s.crates,
        s.crates_with_foreign_code,
        s.foreign_functions,
        s.call_sites,
        s.unprotected_pointer_calls,
        s.exported_functions,
        s.errors
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<24} {:<10} {:>6} {:>17} {:>6} {:>5} {:>6} {:>6} {:>5} {:>4}",
        "CRATE",
        "VERSION",
        "SCORE",
        "UNSAFE blk/fn/i/t",
        "EXTERN",
        "PTR",
        "CALLS",
        "RUSTM",
        "UNPR",
        "EXP"
    );
    for c in &report.crates {
        let ptr = c
            .foreign_functions
            .iter()
            .filter(|f| f.pointer_params > 0)
            .count();
        let rustm = c
            .call_sites
            .iter()
            .filter(|cs| {
                cs.pointer_args
                    .iter()
                    .any(|a| a.kind == ArgKind::RustMemory)
            })
            .count();
        let unpr = c.call_sites.iter().filter(|cs| cs.unprotected).count();
        let u = &c.unsafe_code;
        let _ = writeln!(
            o,
            "{:<24} {:<10} {:>6} {:>17} {:>6} {:>5} {:>6} {:>6} {:>5} {:>4}",
            truncate(&c.name, 24),
            truncate(&c.version, 10),
            c.exposure_score,
            format!("{}/{}/{}/{}", u.blocks, u.fns, u.impls, u.traits),
            c.foreign_functions.len(),
            ptr,
            c.call_sites.len(),
            rustm,
            unpr,
            c.exported_functions.len()
        );
    }
    let _ = writeln!(
        o,
        "\nEXTERN: foreign fns declared; PTR: of which take pointers; CALLS: foreign call sites;\n\
         RUSTM: calls passing Rust memory; UNPR: of which outside a sandbox; EXP: exported to C."
    );

    for c in report.crates.iter().filter(|c| {
        c.has_foreign_code()
            || !c.errors.is_empty()
            || !c.notes.is_empty() && c.source == "workspace"
    }) {
        let _ = writeln!(o, "\n== {} {} ({}) ==", c.name, c.version, c.source);
        if !c.links.is_empty() {
            let mut names: Vec<String> = c
                .links
                .iter()
                .map(|l| format!("{} [{}]", l.name, l.source))
                .collect();
            names.dedup();
            let _ = writeln!(o, "  links: {}", truncate(&names.join(", "), 90));
        }
        if !c.compiles_c.is_empty() {
            let _ = writeln!(o, "  compiles C with: {}", c.compiles_c.join(", "));
        }
        if !c.extern_blocks.is_empty() {
            let sandboxed = c.extern_blocks.iter().filter(|b| b.sandboxed).count();
            let _ = writeln!(
                o,
                "  extern blocks: {} ({} sandboxed)",
                c.extern_blocks.len(),
                sandboxed
            );
            let mut counts = Vec::new();
            for class in Class::ALL {
                let n = c
                    .foreign_functions
                    .iter()
                    .filter(|f| f.classes.contains(&class))
                    .count();
                if n > 0 {
                    let short = match class {
                        Class::WritesThroughPointer => "writes",
                        Class::ReadsThroughPointer => "reads",
                        Class::TakesCallback => "callback",
                        Class::ReturnsPointer => "returns-ptr",
                        Class::Variadic => "variadic",
                        Class::ScalarsOnly => "scalars-only",
                    };
                    counts.push(format!("{} {}", short, n));
                }
            }
            let _ = writeln!(o, "  classes: {}", counts.join(", "));
        }
        let flagged: Vec<&CallSiteEntry> = c
            .call_sites
            .iter()
            .filter(|cs| {
                !cs.sandboxed
                    && cs
                        .pointer_args
                        .iter()
                        .any(|a| matches!(a.kind, ArgKind::RustMemory | ArgKind::Unknown))
            })
            .collect();
        if !flagged.is_empty() {
            let _ = writeln!(o, "  pointer calls outside a sandbox:");
            for cs in flagged.iter().take(20) {
                let args: Vec<String> = cs
                    .pointer_args
                    .iter()
                    .map(|a| format!("#{}={}", a.index, a.kind.as_str()))
                    .collect();
                let loc = format!("{}:{}", cs.file, cs.line);
                let _ = writeln!(
                    o,
                    "    {:<34} {:<24} {}",
                    truncate(&loc, 34),
                    truncate(&cs.function, 24),
                    truncate(&args.join(" "), 36)
                );
            }
            if flagged.len() > 20 {
                let _ = writeln!(
                    o,
                    "    ... and {} more (see --format json)",
                    flagged.len() - 20
                );
            }
        }
        if !c.exported_functions.is_empty() {
            let names: Vec<&str> = c
                .exported_functions
                .iter()
                .map(|e| e.symbol.as_str())
                .collect();
            let _ = writeln!(o, "  exported: {}", truncate(&names.join(", "), 88));
        }
        for n in &c.notes {
            let _ = writeln!(o, "  note: {}", n);
        }
        for e in &c.errors {
            let _ = writeln!(
                o,
                "  error: {}{}: {}",
                e.file,
                e.line.map(|l| format!(":{}", l)).unwrap_or_default(),
                e.message
            );
        }
    }
    wrap_lines(&o, 100)
}

/// Wraps lines longer than `width` at spaces, indenting continuations.
fn wrap_lines(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut rest = line.to_string();
        let mut first = true;
        loop {
            let prefix = if first { "" } else { "      " };
            let avail = width - prefix.len();
            if rest.chars().count() <= avail {
                out.push_str(prefix);
                out.push_str(&rest);
                out.push('\n');
                break;
            }
            let cut: String = rest.chars().take(avail).collect();
            let at = cut
                .rfind(' ')
                .filter(|&i| i > avail / 3)
                .unwrap_or(cut.len());
            out.push_str(prefix);
            out.push_str(rest[..at].trim_end());
            out.push('\n');
            rest = rest[at..].trim_start().to_string();
            first = false;
        }
    }
    out
}

/// The SARIF rules: id, default level, short description.
pub const SARIF_RULES: [(&str, &str, &str); 5] = [
    (
        "unprotected-pointer-call",
        "error",
        "Rust memory is handed to a foreign function outside a Cofferdam sandbox",
    ),
    (
        "unknown-pointer-call",
        "warning",
        "A pointer of unknown origin is passed to a foreign function outside a sandbox",
    ),
    (
        "unsandboxed-foreign-function",
        "note",
        "A foreign function that can touch Rust memory is declared outside a sandbox",
    ),
    (
        "exported-function",
        "note",
        "A function is exported to C (C can call into Rust)",
    ),
    (
        "parse-error",
        "warning",
        "A source file could not be parsed and was skipped",
    ),
];

/// Percent-encodes a path for a URI (RFC 3986): every byte of its UTF-8 form
/// but the unreserved characters and `/` becomes `%XX`, so spaces, `#`, `?`,
/// `%`, `[`, non-ASCII and the like give a valid URI. `:` is kept only in
/// absolute paths (`file:///C:/..`): in a relative reference a `:` in the
/// first segment would read as a scheme.
fn percent_encode_path(path: &str, keep_colon: bool) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            b':' if keep_colon => out.push(':'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// `file://` URI of an absolute path (`\` read as `/`; a Windows path like
/// `C:/x` gets the leading `/` of `file:///C:/x`).
fn file_uri(abs: &str) -> String {
    let path = abs.replace('\\', "/");
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!("file://{slash}{}", percent_encode_path(&path, true))
}

/// The URI of `file` (relative to `crate_root` unless absolute): relative to
/// the audited `root` (to be read against `%SRCROOT%`) when inside it, `true`;
/// else an absolute `file://` URI, `false`. Both percent-encoded.
fn uri_for(root: &str, crate_root: &str, file: &str) -> (String, bool) {
    let abs = if std::path::Path::new(file).is_absolute() {
        std::path::PathBuf::from(file)
    } else {
        std::path::Path::new(crate_root).join(file)
    };
    if let Ok(rel) = abs.strip_prefix(root) {
        let rel = rel.to_string_lossy().replace('\\', "/");
        (percent_encode_path(&rel, false), true)
    } else {
        (file_uri(&abs.to_string_lossy()), false)
    }
}

fn sarif_result(
    report: &Report,
    crate_root: &str,
    rule: &str,
    level: &str,
    text: String,
    file: &str,
    line: usize,
) -> serde_json::Value {
    let (uri, relative) = uri_for(&report.root, crate_root, file);
    let mut artifact = serde_json::json!({ "uri": uri });
    if relative {
        artifact["uriBaseId"] = serde_json::json!("%SRCROOT%");
    }
    serde_json::json!({
        "ruleId": rule,
        "level": level,
        "message": { "text": text },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": artifact,
                "region": { "startLine": line.max(1) }
            }
        }]
    })
}

/// Renders the report as SARIF 2.1.0.
pub fn to_sarif(report: &Report) -> String {
    let rules: Vec<serde_json::Value> = SARIF_RULES
        .iter()
        .map(|(id, level, text)| {
            serde_json::json!({
                "id": id,
                "shortDescription": { "text": text },
                "defaultConfiguration": { "level": level },
                "helpUri": INFORMATION_URI
            })
        })
        .collect();
    let mut results = Vec::new();
    for c in &report.crates {
        for cs in &c.call_sites {
            if cs.sandboxed {
                continue;
            }
            let kinds: Vec<String> = cs
                .pointer_args
                .iter()
                .map(|a| format!("argument {} is {}", a.index, a.kind.as_str()))
                .collect();
            if cs.unprotected {
                results.push(sarif_result(
                    report,
                    &c.root,
                    "unprotected-pointer-call",
                    "error",
                    format!(
                        "{}: call of foreign function `{}` (declared in {}) hands Rust memory to C \
                         outside a sandbox ({})",
                        c.name,
                        cs.function,
                        cs.declared_in,
                        kinds.join(", ")
                    ),
                    &cs.file,
                    cs.line,
                ));
            } else if cs.pointer_args.iter().any(|a| a.kind == ArgKind::Unknown) {
                results.push(sarif_result(
                    report,
                    &c.root,
                    "unknown-pointer-call",
                    "warning",
                    format!(
                        "{}: call of foreign function `{}` (declared in {}) passes a pointer of \
                         unknown origin outside a sandbox ({})",
                        c.name,
                        cs.function,
                        cs.declared_in,
                        kinds.join(", ")
                    ),
                    &cs.file,
                    cs.line,
                ));
            }
        }
        for f in &c.foreign_functions {
            if f.sandboxed || f.classes == [Class::ScalarsOnly] {
                continue;
            }
            let classes: Vec<&str> = f.classes.iter().map(|c| c.as_str()).collect();
            results.push(sarif_result(
                report,
                &c.root,
                "unsandboxed-foreign-function",
                "note",
                format!(
                    "{}: foreign function `{}` ({}) is declared outside a sandbox",
                    c.name,
                    f.name,
                    classes.join(", ")
                ),
                &f.file,
                f.line,
            ));
        }
        for e in &c.exported_functions {
            results.push(sarif_result(
                report,
                &c.root,
                "exported-function",
                "note",
                format!(
                    "{}: `{}` is exported to C as `{}` ({})",
                    c.name,
                    e.name,
                    e.symbol,
                    e.reasons.join(", ")
                ),
                &e.file,
                e.line,
            ));
        }
        for e in &c.errors {
            results.push(sarif_result(
                report,
                &c.root,
                "parse-error",
                "warning",
                format!("{}: {} was skipped: {}", c.name, e.file, e.message),
                &e.file,
                e.line.unwrap_or(1),
            ));
        }
    }
    // The base URI of the relative result URIs: a directory, so it ends in `/`.
    let mut srcroot = file_uri(&report.root);
    if !srcroot.ends_with('/') {
        srcroot.push('/');
    }
    let sarif = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": report.tool.name,
                    "version": report.tool.version,
                    "informationUri": INFORMATION_URI,
                    "rules": rules
                }
            },
            "originalUriBaseIds": {
                "%SRCROOT%": { "uri": srcroot }
            },
            "results": results
        }]
    });
    serde_json::to_string_pretty(&sarif).expect("sarif serializes")
}
