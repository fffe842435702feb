//! `cofferdam audit`: reports the unsafe code and the foreign (FFI) surface
//! of a crate or a workspace, and optionally of all its dependencies, by
//! parsing the sources with `syn` (nothing is built).
//!
//! Phases: [`discover`] (cargo metadata) → [`parse`] (module tree, syn
//! visitor of [`visit`], signatures classified by [`classify`]) → call
//! resolution and scoring (here) → [`report`] (table, JSON, SARIF).
//! See `docs/audit.md` for what is reported, the JSON schema and the limits.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod classify;
pub mod discover;
pub mod parse;
pub mod report;
pub mod visit;

use parse::CrateFacts;
pub use report::{
    ArgKind, CallSiteEntry, Class, CrateReport, Exposure, FileError, ForeignFnEntry, Format,
    PointerArg, Report, Summary, UnsafeCounts, SCHEMA_VERSION,
};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Arguments of `cofferdam audit`.
#[derive(clap::Args, Debug, Clone)]
pub struct AuditArgs {
    /// Crate or workspace directory (or its Cargo.toml) to audit.
    #[arg(value_name = "PATH", default_value = ".")]
    pub path: PathBuf,
    /// Audit every dependency in Cargo.lock too (their sources, as cargo keeps them).
    #[arg(long)]
    pub deps: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Exit with status 1 when a finding of this rule is present (repeatable).
    #[arg(long, value_enum, value_name = "RULE")]
    pub deny: Vec<DenyRule>,
}

/// Rules `--deny` can turn into a non-zero exit status.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyRule {
    /// A call hands Rust memory to a foreign function outside a sandbox.
    UnprotectedPointerCalls,
    /// A call passes a pointer of unknown origin to a foreign function outside a sandbox.
    UnknownPointerCalls,
    /// A foreign function that is not scalars-only is declared outside a sandbox.
    UnsandboxedForeignFunctions,
    /// A function is exported to C.
    ExportedFunctions,
    /// A file could not be parsed.
    ParseErrors,
}

impl DenyRule {
    /// Number of findings of this rule in `report`.
    pub fn count(self, report: &Report) -> usize {
        report
            .crates
            .iter()
            .map(|c| match self {
                DenyRule::UnprotectedPointerCalls => {
                    c.call_sites.iter().filter(|cs| cs.unprotected).count()
                }
                DenyRule::UnknownPointerCalls => c
                    .call_sites
                    .iter()
                    .filter(|cs| {
                        !cs.sandboxed && cs.pointer_args.iter().any(|a| a.kind == ArgKind::Unknown)
                    })
                    .count(),
                DenyRule::UnsandboxedForeignFunctions => c
                    .foreign_functions
                    .iter()
                    .filter(|f| !f.sandboxed && f.classes != [Class::ScalarsOnly])
                    .count(),
                DenyRule::ExportedFunctions => c.exported_functions.len(),
                DenyRule::ParseErrors => c.errors.len(),
            })
            .sum()
    }

    /// The rule's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            DenyRule::UnprotectedPointerCalls => "unprotected-pointer-calls",
            DenyRule::UnknownPointerCalls => "unknown-pointer-calls",
            DenyRule::UnsandboxedForeignFunctions => "unsandboxed-foreign-functions",
            DenyRule::ExportedFunctions => "exported-functions",
            DenyRule::ParseErrors => "parse-errors",
        }
    }
}

/// Options of [`audit_path`].
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// Audit dependencies too.
    pub deps: bool,
}

/// Errors that stop the audit (bad files do not: they are listed in the report).
#[derive(Debug)]
pub enum Error {
    /// The directory has no `Cargo.toml`.
    NoManifest(PathBuf),
    /// The path does not exist.
    NoSuchPath(PathBuf),
    /// `cargo metadata` failed.
    Metadata(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoManifest(p) => write!(
                f,
                "no Cargo.toml in {} (give a crate or workspace directory)",
                p.display()
            ),
            Error::NoSuchPath(p) => write!(f, "{}: no such file or directory", p.display()),
            Error::Metadata(m) => write!(f, "cargo metadata failed: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Exit status for this error (2: usage error).
    pub fn exit_code(&self) -> i32 {
        2
    }
}

/// Audits the crate or workspace at `path`.
pub fn audit_path(path: &Path, options: &AuditOptions) -> Result<Report, Error> {
    let plan = discover::plan(path, options.deps)?;
    let facts = analyze_all(&plan.crates);
    Ok(build_report(&plan, facts, options.deps))
}

/// Analyses crates on all cores (each crate on one thread).
fn analyze_all(crates: &[discover::CrateInput]) -> Vec<CrateFacts> {
    let n = crates.len();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16)
        .min(n.max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<CrateFacts>>> =
        std::sync::Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let f = parse::analyze_crate(&crates[i]);
                results.lock().expect("no panics while holding the lock")[i] = Some(f);
            });
        }
    });
    results
        .into_inner()
        .expect("no panics while holding the lock")
        .into_iter()
        .map(|f| f.expect("every crate analysed"))
        .collect()
}

fn is_type_like(segment: &str) -> bool {
    segment
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase())
}

fn build_report(plan: &discover::Plan, facts: Vec<CrateFacts>, deps: bool) -> Report {
    // Foreign functions by name, per crate.
    let by_name: Vec<HashMap<&str, usize>> = facts
        .iter()
        .map(|f| {
            let mut m = HashMap::new();
            for (i, ff) in f.foreign.iter().enumerate() {
                m.entry(ff.name.as_str()).or_insert(i);
            }
            m
        })
        .collect();

    // Crates by the name code uses for them (`libz_sys`).
    let mut by_crate_name: HashMap<String, usize> = HashMap::new();
    for (i, c) in plan.crates.iter().enumerate() {
        by_crate_name.entry(c.name.replace('-', "_")).or_insert(i);
    }

    let mut crates = Vec::new();
    for (ci, (input, f)) in plan.crates.iter().zip(&facts).enumerate() {
        let mut call_sites = Vec::new();
        for call in &f.calls {
            let raw = &call.raw;
            // `Type::method(..)` is not a foreign function.
            if raw.qualifier.as_deref().is_some_and(is_type_like) {
                continue;
            }
            // A bare `name(..)` that the crate also defines as a Rust function
            // is taken to be the Rust function.
            if raw.segments == 1 && f.rust_fns.contains(&raw.name) {
                continue;
            }
            // A path rooted in the standard library, or in a known crate,
            // only resolves there.
            let only: Option<usize> = match raw.root.as_deref() {
                Some("std" | "core" | "alloc") => continue,
                Some(r) => by_crate_name.get(r).copied(),
                None => None,
            };
            let mut candidates: Box<dyn Iterator<Item = usize>> = match only {
                Some(k) => Box::new(std::iter::once(k)),
                None => Box::new(std::iter::once(ci).chain(input.deps.iter().copied())),
            };
            // The number of arguments must fit the declaration.
            let fits = |c: usize, fi: usize| {
                let ff = &facts[c].foreign[fi];
                if ff.classes.contains(&Class::Variadic) {
                    raw.args.len() >= ff.params
                } else {
                    raw.args.len() == ff.params
                }
            };
            let Some((owner, fi)) = candidates.find_map(|c| {
                by_name[c]
                    .get(raw.name.as_str())
                    .map(|&fi| (c, fi))
                    .filter(|&(c, fi)| fits(c, fi))
            }) else {
                continue;
            };
            let callee = &facts[owner].foreign[fi];
            let pointer_args: Vec<PointerArg> = callee
                .pointer_params
                .iter()
                .filter_map(|&i| raw.args.get(i).map(|&kind| PointerArg { index: i, kind }))
                .collect();
            let unprotected =
                !callee.sandboxed && pointer_args.iter().any(|a| a.kind == ArgKind::RustMemory);
            call_sites.push(CallSiteEntry {
                file: call.file.clone(),
                line: raw.line,
                function: raw.name.clone(),
                path: raw.path.clone(),
                declared_in: plan.crates[owner].name.clone(),
                classes: callee.classes.clone(),
                sandboxed: callee.sandboxed,
                pointer_args,
                unprotected,
            });
        }
        call_sites.sort();

        let mut foreign_functions: Vec<ForeignFnEntry> = f
            .foreign
            .iter()
            .map(|ff| ForeignFnEntry {
                name: ff.name.clone(),
                file: ff.file.clone(),
                line: ff.line,
                abi: ff.abi.clone(),
                link: ff.link.clone(),
                sandboxed: ff.sandboxed,
                classes: ff.classes.clone(),
                params: ff.params,
                pointer_params: ff.pointer_params.len(),
                callback_params: ff.callback_params,
            })
            .collect();
        foreign_functions.sort();

        let exposure = Exposure {
            unprotected_pointer_calls: call_sites.iter().filter(|c| c.unprotected).count(),
            unknown_pointer_calls: call_sites
                .iter()
                .filter(|c| {
                    !c.sandboxed && c.pointer_args.iter().any(|a| a.kind == ArgKind::Unknown)
                })
                .count(),
            unsandboxed_writing_fns: foreign_functions
                .iter()
                .filter(|f| {
                    !f.sandboxed
                        && (f.classes.contains(&Class::WritesThroughPointer)
                            || f.classes.contains(&Class::TakesCallback))
                })
                .count(),
            unsandboxed_other_pointer_fns: foreign_functions
                .iter()
                .filter(|f| {
                    !f.sandboxed
                        && f.classes != [Class::ScalarsOnly]
                        && !f.classes.contains(&Class::WritesThroughPointer)
                        && !f.classes.contains(&Class::TakesCallback)
                })
                .count(),
            exported_functions: f.exported.len(),
        };
        let mut unsafe_code = f.unsafe_code;
        unsafe_code.add(&f.unsafe_build);

        crates.push(CrateReport {
            name: input.name.clone(),
            version: input.version.clone(),
            source: if input.is_member {
                "workspace"
            } else {
                "dependency"
            }
            .to_string(),
            root: input.manifest_dir.to_string_lossy().to_string(),
            exposure_score: exposure.score(),
            exposure,
            unsafe_code,
            unsafe_code_build_script: f.unsafe_build,
            files: f.files.clone(),
            links: f.links.clone(),
            compiles_c: f.compiles_c.clone(),
            extern_blocks: f.extern_blocks.clone(),
            foreign_functions,
            call_sites,
            exported_functions: f.exported.clone(),
            notes: f.notes.clone(),
            errors: f.errors.clone(),
        });
    }
    crates.sort_by(|a, b| {
        b.exposure_score
            .cmp(&a.exposure_score)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.version.cmp(&b.version))
            .then_with(|| a.root.cmp(&b.root))
    });

    let mut summary = Summary {
        crates: crates.len(),
        ..Summary::default()
    };
    let mut errors = Vec::new();
    for c in &crates {
        if c.has_foreign_code() {
            summary.crates_with_foreign_code += 1;
        }
        summary.unsafe_code.add(&c.unsafe_code);
        summary.foreign_functions += c.foreign_functions.len();
        summary.call_sites += c.call_sites.len();
        summary.unprotected_pointer_calls += c.exposure.unprotected_pointer_calls;
        summary.exported_functions += c.exported_functions.len();
        errors.extend(c.errors.iter().cloned());
    }
    summary.errors = errors.len();
    errors.sort();

    Report {
        schema_version: SCHEMA_VERSION,
        tool: report::ToolInfo {
            name: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        root: plan.root.to_string_lossy().to_string(),
        deps,
        summary,
        crates,
        errors,
    }
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => report::to_table(report),
        Format::Json => report::to_json(report),
        Format::Sarif => report::to_sarif(report),
    }
}

/// Runs the audit and prints the report to stdout (errors/warnings to
/// stderr). Returns the process exit code: 0, 1 when a `--deny` rule has
/// findings, 2 on usage errors (no `Cargo.toml`, `cargo metadata` failing).
pub fn run(args: &AuditArgs) -> i32 {
    let options = AuditOptions { deps: args.deps };
    let report = match audit_path(&args.path, &options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cofferdam audit: {e}");
            return e.exit_code();
        }
    };
    for e in &report.errors {
        eprintln!(
            "cofferdam audit: warning: skipped {} ({}): {}{}",
            e.file,
            e.krate,
            e.line.map(|l| format!("line {l}: ")).unwrap_or_default(),
            e.message
        );
    }
    let out = render(&report, args.format);
    println!("{}", out.trim_end());
    let mut code = 0;
    let mut seen = Vec::new();
    for rule in &args.deny {
        if seen.contains(rule) {
            continue;
        }
        seen.push(*rule);
        let n = rule.count(&report);
        if n > 0 {
            eprintln!(
                "cofferdam audit: denied: {} finding(s) of rule `{}`",
                n,
                rule.name()
            );
            code = 1;
        }
    }
    code
}
