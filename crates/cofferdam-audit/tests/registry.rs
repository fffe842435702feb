//! The audit over the real sources of libz-sys, libsqlite3-sys, flate2 and
//! rusqlite at the versions pinned in `tests/registry/Cargo.toml` (with a
//! committed Cargo.lock). Nothing is compiled: the test runs `cargo fetch`
//! and audits the sources where cargo keeps them.
//!
//! The extern-function and pointer-parameter counts are checked against a
//! count made here by a different method: a scan of the raw token trees
//! (proc_macro2 only, no syn AST, no code of the crate under test).
//!
//! The SARIF rendering of that audit is validated against the SARIF 2.1.0
//! schema (`tests/common`).

mod common;

use cofferdam_audit::{audit_path, render, ArgKind, AuditOptions, CrateReport, Format, Report};
use proc_macro2::{Delimiter, TokenStream, TokenTree};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn registry_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/registry/Cargo.toml")
}

fn fetch() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["fetch", "--locked", "--manifest-path"])
        .arg(registry_manifest())
        .output()
        .expect("run cargo fetch");
    assert!(
        out.status.success(),
        "`cargo fetch` of the pinned registry crates failed (this test needs crates.io, \
         or the crates already in ~/.cargo/registry):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn report() -> Report {
    fetch();
    audit_path(
        registry_manifest().parent().unwrap(),
        &AuditOptions { deps: true },
    )
    .expect("audit of the registry fixture")
}

fn krate<'a>(r: &'a Report, name: &str) -> &'a CrateReport {
    r.crates
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{name} audited"))
}

// ---------------------------------------------------------------------------
// The independent count: raw tokens.

#[derive(Default, Debug, PartialEq, Eq)]
struct TokenCount {
    fns: usize,
    pointer_params: usize,
}

/// `type NAME = * ...;` / `type NAME = & ...;` anywhere in the tokens.
fn pointer_aliases(ts: &TokenStream, out: &mut HashSet<String>) {
    let toks: Vec<TokenTree> = ts.clone().into_iter().collect();
    for i in 0..toks.len() {
        if let TokenTree::Group(g) = &toks[i] {
            pointer_aliases(&g.stream(), out);
        }
        let is_type = matches!(&toks[i], TokenTree::Ident(id) if id == "type");
        if !is_type || i + 3 >= toks.len() {
            continue;
        }
        if let (TokenTree::Ident(name), TokenTree::Punct(eq), TokenTree::Punct(first)) =
            (&toks[i + 1], &toks[i + 2], &toks[i + 3])
        {
            if eq.as_char() == '=' && (first.as_char() == '*' || first.as_char() == '&') {
                out.insert(name.to_string());
            }
        }
    }
}

/// Splits a parameter list on top-level commas.
fn split_params(ts: TokenStream) -> Vec<Vec<TokenTree>> {
    let mut params = vec![Vec::new()];
    let mut angle = 0i32;
    for tt in ts {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == '<' => angle += 1,
            TokenTree::Punct(p) if p.as_char() == '>' && angle > 0 => angle -= 1,
            TokenTree::Punct(p) if p.as_char() == ',' && angle == 0 => {
                params.push(Vec::new());
                continue;
            }
            _ => {}
        }
        params.last_mut().unwrap().push(tt);
    }
    params.retain(|p| !p.is_empty());
    params
}

fn count_block(ts: TokenStream, aliases: &HashSet<String>, c: &mut TokenCount) {
    let toks: Vec<TokenTree> = ts.into_iter().collect();
    for i in 0..toks.len() {
        let is_fn = matches!(&toks[i], TokenTree::Ident(id) if id == "fn");
        if !is_fn {
            continue;
        }
        let Some(TokenTree::Group(params)) = toks.get(i + 2) else {
            continue;
        };
        if params.delimiter() != Delimiter::Parenthesis {
            continue;
        }
        c.fns += 1;
        for p in split_params(params.stream()) {
            // `name: Type`: the type starts after the first lone `:`.
            let Some(colon) = p
                .iter()
                .position(|t| matches!(t, TokenTree::Punct(pc) if pc.as_char() == ':'))
            else {
                continue; // `...`
            };
            match p.get(colon + 1) {
                Some(TokenTree::Punct(pc)) if pc.as_char() == '*' || pc.as_char() == '&' => {
                    c.pointer_params += 1
                }
                Some(TokenTree::Ident(id)) if aliases.contains(&id.to_string()) => {
                    c.pointer_params += 1
                }
                _ => {}
            }
        }
    }
}

/// Finds `extern "ABI" { .. }` / `extern { .. }` groups, at any depth.
fn count_extern_blocks(ts: TokenStream, aliases: &HashSet<String>, c: &mut TokenCount) {
    let toks: Vec<TokenTree> = ts.into_iter().collect();
    for i in 0..toks.len() {
        let is_extern = matches!(&toks[i], TokenTree::Ident(id) if id == "extern");
        if is_extern {
            let mut j = i + 1;
            if matches!(toks.get(j), Some(TokenTree::Literal(_))) {
                j += 1;
            }
            if let Some(TokenTree::Group(g)) = toks.get(j) {
                if g.delimiter() == Delimiter::Brace {
                    count_block(g.stream(), aliases, c);
                    continue;
                }
            }
        }
        if let TokenTree::Group(g) = &toks[i] {
            count_extern_blocks(g.stream(), aliases, c);
        }
    }
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Token count over every `.rs` file under `src/` of the crate, plus `extra`.
fn token_count(root: &Path, extra: &[&str]) -> TokenCount {
    let mut files = Vec::new();
    rs_files(&root.join("src"), &mut files);
    files.extend(extra.iter().map(|e| root.join(e)));
    let streams: Vec<TokenStream> = files
        .iter()
        .map(|f| {
            let src = std::fs::read_to_string(f).unwrap();
            src.parse::<TokenStream>()
                .unwrap_or_else(|e| panic!("tokenize {}: {e}", f.display()))
        })
        .collect();
    let mut aliases = HashSet::new();
    for s in &streams {
        pointer_aliases(s, &mut aliases);
    }
    let mut c = TokenCount::default();
    for s in streams {
        count_extern_blocks(s, &aliases, &mut c);
    }
    c
}

fn audit_count(c: &CrateReport) -> TokenCount {
    TokenCount {
        fns: c.foreign_functions.len(),
        pointer_params: c.foreign_functions.iter().map(|f| f.pointer_params).sum(),
    }
}

// ---------------------------------------------------------------------------

#[test]
fn registry_crates() {
    let r = report();

    // libz-sys: the declarations are in src/lib.rs.
    let z = krate(&r, "libz-sys");
    assert_eq!(z.version, "1.1.31");
    let expected = token_count(Path::new(&z.root), &[]);
    assert_eq!(audit_count(z), expected, "libz-sys");
    assert!(
        z.foreign_functions.len() > 40,
        "{}",
        z.foreign_functions.len()
    );
    assert!(z.compiles_c.contains(&"cc".to_string()));
    assert!(z.links.iter().any(|l| l.name == "z"));
    assert!(z
        .foreign_functions
        .iter()
        .any(|f| f.name == "deflate" && f.pointer_params == 1));

    // libsqlite3-sys: the bindings are pre-generated, copied to OUT_DIR by
    // build.rs and include!d from there; not built here, so the audit must
    // find sqlite3/bindgen_bundled_version.rs itself.
    let s = krate(&r, "libsqlite3-sys");
    assert_eq!(s.version, "0.40.0");
    let expected = token_count(Path::new(&s.root), &["sqlite3/bindgen_bundled_version.rs"]);
    assert_eq!(audit_count(s), expected, "libsqlite3-sys");
    assert!(
        s.foreign_functions.len() > 200,
        "{}",
        s.foreign_functions.len()
    );
    assert!(s
        .files
        .iter()
        .any(|f| f.path == "sqlite3/bindgen_bundled_version.rs" && f.via == "pre-generated"));
    assert!(s.compiles_c.contains(&"cc".to_string()));

    // flate2 and rusqlite declare (almost) nothing themselves but call their
    // -sys crate's functions.
    for name in ["flate2", "rusqlite"] {
        let c = krate(&r, name);
        let expected = token_count(Path::new(&c.root), &[]);
        assert_eq!(audit_count(c), expected, "{name}");
    }
    let flate2 = krate(&r, "flate2");
    let to_z = flate2
        .call_sites
        .iter()
        .filter(|c| c.declared_in == "libz-sys")
        .count();
    assert!(to_z >= 5, "flate2 calls into libz-sys: {to_z}");
    assert!(flate2
        .call_sites
        .iter()
        .any(|c| c.function == "deflateSetDictionary"
            && c.pointer_args.iter().any(|a| a.kind == ArgKind::RustMemory)));

    let rusqlite = krate(&r, "rusqlite");
    let to_sqlite = rusqlite
        .call_sites
        .iter()
        .filter(|c| c.declared_in == "libsqlite3-sys")
        .count();
    assert!(
        to_sqlite > 150,
        "rusqlite calls into libsqlite3-sys: {to_sqlite}"
    );
    assert!(rusqlite.exposure.unprotected_pointer_calls > 10);
    assert!(rusqlite
        .call_sites
        .iter()
        .any(|c| c.function == "sqlite3_blob_read" && c.unprotected));

    // Every file parsed.
    for name in ["libz-sys", "libsqlite3-sys", "flate2", "rusqlite"] {
        assert!(krate(&r, name).errors.is_empty(), "{name}");
    }

    // The SARIF of the whole audit (hundreds of results, absolute `file://`
    // URIs into the cargo registry) is valid SARIF 2.1.0.
    let sarif =
        common::SarifSchema::load().assert_valid("registry crates", &render(&r, Format::Sarif));
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(results.len() > 300, "{}", results.len());
    assert!(results.iter().any(
        |x| x["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("file:///")
    ));
}
