//! Discovery: which crates to audit, where their sources are, which targets
//! they have, and how they depend on each other (`cargo metadata`).

use crate::Error;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<MPackage>,
    workspace_members: Vec<String>,
    resolve: Option<MResolve>,
    target_directory: PathBuf,
    workspace_root: PathBuf,
}

#[derive(Deserialize)]
struct MPackage {
    id: String,
    name: String,
    version: String,
    manifest_path: PathBuf,
    targets: Vec<MTarget>,
    #[serde(default)]
    dependencies: Vec<MDependency>,
}

#[derive(Deserialize)]
struct MDependency {
    name: String,
    #[serde(default)]
    rename: Option<String>,
}

#[derive(Deserialize)]
struct MTarget {
    kind: Vec<String>,
    src_path: PathBuf,
}

#[derive(Deserialize)]
struct MResolve {
    nodes: Vec<MNode>,
}

#[derive(Deserialize)]
struct MNode {
    id: String,
    #[serde(default)]
    deps: Vec<MNodeDep>,
    #[serde(default)]
    dependencies: Vec<String>,
}

#[derive(Deserialize)]
struct MNodeDep {
    pkg: String,
}

/// The kind of target a source file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetKind {
    /// The build script (`build.rs`), analysed first.
    BuildScript,
    /// A library (lib, rlib, cdylib, staticlib, dylib, proc-macro).
    Lib,
    /// A binary.
    Bin,
}

impl TargetKind {
    /// Name used in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::BuildScript => "build-script",
            TargetKind::Lib => "lib",
            TargetKind::Bin => "bin",
        }
    }
}

/// One crate to audit.
#[derive(Debug, Clone)]
pub struct CrateInput {
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: String,
    /// Directory of the `Cargo.toml`.
    pub manifest_dir: PathBuf,
    /// Targets to start from, build script first.
    pub targets: Vec<(TargetKind, PathBuf)>,
    /// Member of the audited workspace.
    pub is_member: bool,
    /// The workspace's target directory (for `OUT_DIR` files).
    pub target_dir: PathBuf,
    /// Indices (into [`Plan::crates`]) of the crate's direct dependencies that are audited too.
    pub deps: Vec<usize>,
}

/// What to audit.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The audited directory.
    pub root: PathBuf,
    /// Crates, sorted by name and version.
    pub crates: Vec<CrateInput>,
}

/// Finds the manifest for `path` (a directory or a `Cargo.toml`).
pub fn find_manifest(path: &Path) -> Result<PathBuf, Error> {
    if path.is_file() {
        if path.file_name().is_some_and(|f| f == "Cargo.toml") {
            return Ok(path.to_path_buf());
        }
        return Err(Error::NoManifest(path.to_path_buf()));
    }
    if !path.exists() {
        return Err(Error::NoSuchPath(path.to_path_buf()));
    }
    let m = path.join("Cargo.toml");
    if m.is_file() {
        Ok(m)
    } else {
        Err(Error::NoManifest(path.to_path_buf()))
    }
}

/// Runs `cargo metadata` and decides which crates to audit.
pub fn plan(path: &Path, deps: bool) -> Result<Plan, Error> {
    let manifest = find_manifest(path)?;
    let manifest = manifest.canonicalize().unwrap_or(manifest);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&manifest);
    if !deps {
        cmd.arg("--no-deps");
    }
    let out = cmd
        .output()
        .map_err(|e| Error::Metadata(format!("cannot run cargo: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let msg = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Error::Metadata(msg));
    }
    let md: Metadata = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Metadata(format!("unexpected `cargo metadata` output: {e}")))?;

    let by_id: HashMap<&str, usize> = md
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let members: BTreeSet<&str> = md.workspace_members.iter().map(String::as_str).collect();

    // The roots: the package whose manifest was given, or every member when
    // the workspace root (or a virtual manifest) was given.
    let ws_manifest = md.workspace_root.join("Cargo.toml");
    let ws_manifest = ws_manifest.canonicalize().unwrap_or(ws_manifest);
    let roots: Vec<usize> = if manifest == ws_manifest {
        members
            .iter()
            .filter_map(|id| by_id.get(id).copied())
            .collect()
    } else {
        md.packages
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.manifest_path
                    .canonicalize()
                    .unwrap_or(p.manifest_path.clone())
                    == manifest
            })
            .map(|(i, _)| i)
            .collect()
    };

    // Dependency edges between packages.
    let mut edges: HashMap<usize, Vec<usize>> = HashMap::new();
    if let Some(resolve) = &md.resolve {
        for n in &resolve.nodes {
            let Some(&from) = by_id.get(n.id.as_str()) else {
                continue;
            };
            let mut to: Vec<usize> = n
                .deps
                .iter()
                .map(|d| d.pkg.as_str())
                .chain(n.dependencies.iter().map(String::as_str))
                .filter_map(|id| by_id.get(id).copied())
                .collect();
            to.sort();
            to.dedup();
            edges.insert(from, to);
        }
    } else {
        // `--no-deps`: link members to members by dependency name.
        let by_name: HashMap<&str, usize> = md
            .packages
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        for (i, p) in md.packages.iter().enumerate() {
            let to: Vec<usize> = p
                .dependencies
                .iter()
                .filter_map(|d| {
                    by_name
                        .get(d.name.as_str())
                        .or_else(|| d.rename.as_deref().and_then(|r| by_name.get(r)))
                        .copied()
                })
                .collect();
            edges.insert(i, to);
        }
    }

    let mut selected: BTreeSet<usize> = roots.iter().copied().collect();
    if deps {
        let mut stack: Vec<usize> = roots.clone();
        while let Some(i) = stack.pop() {
            for &d in edges.get(&i).map(Vec::as_slice).unwrap_or(&[]) {
                if selected.insert(d) {
                    stack.push(d);
                }
            }
        }
    }

    let mut order: Vec<usize> = selected.into_iter().collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (&md.packages[a], &md.packages[b]);
        (pa.name.as_str(), pa.version.as_str(), pa.id.as_str()).cmp(&(
            pb.name.as_str(),
            pb.version.as_str(),
            pb.id.as_str(),
        ))
    });
    let index: BTreeMap<usize, usize> = order.iter().enumerate().map(|(k, &i)| (i, k)).collect();

    let crates = order
        .iter()
        .map(|&i| {
            let p = &md.packages[i];
            let is_member = members.contains(p.id.as_str());
            let mut targets = Vec::new();
            for t in &p.targets {
                let kind = if t.kind.iter().any(|k| k == "custom-build") {
                    Some(TargetKind::BuildScript)
                } else if t.kind.iter().any(|k| {
                    matches!(
                        k.as_str(),
                        "lib" | "rlib" | "dylib" | "cdylib" | "staticlib" | "proc-macro"
                    )
                }) {
                    Some(TargetKind::Lib)
                } else if t.kind.iter().any(|k| k == "bin") && is_member {
                    // Binaries of dependencies are not built by a dependent.
                    Some(TargetKind::Bin)
                } else {
                    None
                };
                if let Some(k) = kind {
                    targets.push((k, t.src_path.clone()));
                }
            }
            targets.sort();
            let deps = edges
                .get(&i)
                .map(|v| v.iter().filter_map(|d| index.get(d).copied()).collect())
                .unwrap_or_default();
            CrateInput {
                name: p.name.clone(),
                version: p.version.clone(),
                manifest_dir: p
                    .manifest_path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default(),
                targets,
                is_member,
                target_dir: md.target_directory.clone(),
                deps,
            }
        })
        .collect();

    let root = manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| path.to_path_buf());
    Ok(Plan { root, crates })
}

/// Finds `file` in an `OUT_DIR` of `crate_name` under `target_dir`
/// (`target/<profile>/build/<crate>-<hash>/out/`, also under a target
/// triple directory). The most recently modified match wins.
pub fn find_out_dir_file(target_dir: &Path, crate_name: &str, file: &str) -> Option<PathBuf> {
    let mut build_dirs = Vec::new();
    let entries = std::fs::read_dir(target_dir).ok()?;
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        build_dirs.push(p.join("build"));
        // `target/<triple>/<profile>/build`
        if let Ok(sub) = std::fs::read_dir(&p) {
            for s in sub.flatten() {
                let sp = s.path();
                if sp.is_dir() && sp.join("build").is_dir() {
                    build_dirs.push(sp.join("build"));
                }
            }
        }
    }
    let prefix = format!("{crate_name}-");
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for b in build_dirs {
        let Ok(rd) = std::fs::read_dir(&b) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(hash) = name.strip_prefix(&prefix) else {
                continue;
            };
            // `<crate>-<hash>`: the hash has no dashes, so `foo-sys-1a2b` does
            // not match crate `foo`.
            if hash.contains('-') {
                continue;
            }
            let candidate = e.path().join("out").join(file);
            if let Ok(meta) = std::fs::metadata(&candidate) {
                let t = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                if best.as_ref().is_none_or(|(bt, _)| t > *bt) {
                    best = Some((t, candidate));
                }
            }
        }
    }
    best.map(|(_, p)| p)
}
