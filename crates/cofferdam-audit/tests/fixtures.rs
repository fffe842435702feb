//! The audit over small fixture crates written for the purpose
//! (`tests/fixtures/<name>/`), with exact expected counts. The comments in
//! the fixtures say where each count comes from.

mod common;

use common::{audit, fixture};

use cofferdam_audit::{
    audit_path, render, run, ArgKind, AuditArgs, AuditOptions, Class, CrateReport, DenyRule, Error,
    Format, Report,
};
use std::path::PathBuf;

fn krate<'a>(r: &'a Report, name: &str) -> &'a CrateReport {
    r.crates
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("crate {name} in report"))
}

fn args(path: PathBuf, deps: bool, deny: Vec<DenyRule>) -> AuditArgs {
    AuditArgs {
        path,
        deps,
        format: Format::Json,
        deny,
    }
}

#[test]
fn unsafe_counts_follow_mods_paths_and_includes() {
    let r = audit("ffi_basic", false);
    assert_eq!(r.schema_version, 1);
    assert_eq!(r.crates.len(), 1);
    let c = krate(&r, "ffi_basic");
    assert_eq!(c.source, "workspace");
    // Blocks: exercise(), sandboxed::hash(), renamed::version(), build.rs.
    // Not the one inside macro_rules!.
    assert_eq!(c.unsafe_code.blocks, 4);
    // S::method, T::required, helper, renamed::raw_copy; not the #[cfg(test)] one.
    assert_eq!(c.unsafe_code.fns, 4);
    assert_eq!(c.unsafe_code.impls, 1);
    assert_eq!(c.unsafe_code.traits, 1);
    assert_eq!(c.unsafe_code_build_script.blocks, 1);
    assert_eq!(c.unsafe_code_build_script.total(), 1);

    let files: Vec<(&str, &str, &str)> = c
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.target.as_str(), f.via.as_str()))
        .collect();
    assert_eq!(
        files,
        vec![
            ("build.rs", "build-script", "root"),
            ("gen/bindings.rs", "lib", "include"),
            ("src/broken.rs", "lib", "mod"),
            ("src/lib.rs", "lib", "root"),
            ("src/other/renamed.rs", "lib", "mod"),
            ("src/sandboxed.rs", "lib", "mod"),
        ]
    );
    // The OUT_DIR include is a note, not an error: the fixture is never built.
    assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
    assert!(c.notes[0].contains("OUT_DIR/generated.rs not found"));
    assert!(c.notes[0].contains("not been built"));
}

#[test]
fn unparsable_file_is_named_and_skipped() {
    let r = audit("ffi_basic", false);
    assert_eq!(r.errors.len(), 1);
    let e = &r.errors[0];
    assert_eq!(e.krate, "ffi_basic");
    assert_eq!(e.file, "src/broken.rs");
    assert_eq!(e.line, Some(3));
    assert!(
        e.message.contains("expected"),
        "parser message: {}",
        e.message
    );
    assert_eq!(r.summary.errors, 1);
    // The rest of the crate is still audited.
    assert_eq!(krate(&r, "ffi_basic").foreign_functions.len(), 12);
}

#[test]
fn foreign_functions_and_classes() {
    let r = audit("ffi_basic", false);
    let c = krate(&r, "ffi_basic");
    assert_eq!(c.extern_blocks.len(), 4);
    assert_eq!(c.extern_blocks.iter().filter(|b| b.sandboxed).count(), 2);
    let demo_block = c
        .extern_blocks
        .iter()
        .find(|b| b.link.is_some())
        .expect("block with #[link]");
    assert_eq!(demo_block.link.as_deref(), Some("demo"));
    assert_eq!(demo_block.functions, 7);
    assert_eq!(demo_block.abi, "C");

    assert_eq!(c.foreign_functions.len(), 12);
    let class_of = |name: &str| -> Vec<Class> {
        c.foreign_functions
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name} declared"))
            .classes
            .clone()
    };
    use Class::*;
    assert_eq!(class_of("demo_write"), vec![WritesThroughPointer]);
    assert_eq!(class_of("demo_read"), vec![ReadsThroughPointer]);
    assert_eq!(
        class_of("demo_callback"),
        vec![WritesThroughPointer, TakesCallback]
    );
    // handle_t is an alias of *mut Handle.
    assert_eq!(class_of("demo_new"), vec![ReturnsPointer]);
    assert_eq!(class_of("demo_free"), vec![WritesThroughPointer]);
    assert_eq!(class_of("demo_printf"), vec![ReadsThroughPointer, Variadic]);
    assert_eq!(class_of("demo_add"), vec![ScalarsOnly]);
    assert_eq!(class_of("gen_version"), vec![ScalarsOnly]);

    let count = |class: Class| {
        c.foreign_functions
            .iter()
            .filter(|f| f.classes.contains(&class))
            .count()
    };
    assert_eq!(count(WritesThroughPointer), 5);
    assert_eq!(count(ReadsThroughPointer), 3);
    assert_eq!(count(TakesCallback), 1);
    assert_eq!(count(ReturnsPointer), 1);
    assert_eq!(count(Variadic), 1);
    assert_eq!(count(ScalarsOnly), 3);
    let pointer_params: usize = c.foreign_functions.iter().map(|f| f.pointer_params).sum();
    assert_eq!(pointer_params, 8);
    let callback_params: usize = c.foreign_functions.iter().map(|f| f.callback_params).sum();
    assert_eq!(callback_params, 1);
    let sandboxed: Vec<&str> = c
        .foreign_functions
        .iter()
        .filter(|f| f.sandboxed)
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(sandboxed, vec!["sb_hash", "sb_process"]);
}

#[test]
fn call_sites_and_argument_kinds() {
    let r = audit("ffi_basic", false);
    let c = krate(&r, "ffi_basic");
    // 12 calls in exercise() (not the wrong-arity demo_add(1), not
    // thread::sleep), sb_hash in sandboxed.rs, gen_version in renamed.rs.
    assert_eq!(c.call_sites.len(), 14, "{:#?}", c.call_sites);
    let kinds_at = |line: usize| -> Vec<(usize, ArgKind)> {
        let cs = c
            .call_sites
            .iter()
            .find(|cs| cs.file == "src/lib.rs" && cs.line == line)
            .unwrap_or_else(|| panic!("call at src/lib.rs:{line}"));
        cs.pointer_args.iter().map(|a| (a.index, a.kind)).collect()
    };
    use ArgKind::*;
    assert_eq!(kinds_at(61), vec![(0, RustMemory)]); // v.as_mut_ptr()
    assert_eq!(kinds_at(62), vec![(0, RustMemory)]); // input.as_ptr(), input: &[u8]
    assert_eq!(kinds_at(63), vec![(0, RustMemory)]); // &mut x as *mut u32 as *mut u8
    assert_eq!(kinds_at(64), vec![(0, RustMemory)]); // ptr::addr_of!(x).cast()
    assert_eq!(kinds_at(65), vec![(0, ForeignMemory)]); // fb.as_foreign_ptr()
    assert_eq!(kinds_at(66), vec![(1, Null)]); // ptr::null_mut()
    assert_eq!(kinds_at(67), vec![(0, Unknown)]); // FMT.as_ptr()
    assert_eq!(kinds_at(68), vec![]); // demo_new(): no pointer parameter
    assert_eq!(kinds_at(69), vec![(0, Unknown)]); // demo_free(h)
    assert_eq!(kinds_at(70), vec![]); // demo_add(1, 2)
    assert_eq!(kinds_at(71), vec![(0, RustMemory)]); // sandboxed
    assert_eq!(kinds_at(72), vec![(0, Null)]); // std::ptr::null_mut()

    let unprotected: Vec<usize> = c
        .call_sites
        .iter()
        .filter(|cs| cs.unprotected)
        .map(|cs| cs.line)
        .collect();
    assert_eq!(unprotected, vec![61, 62, 63, 64]);
    let sandboxed_calls: Vec<&str> = c
        .call_sites
        .iter()
        .filter(|cs| cs.sandboxed)
        .map(|cs| cs.function.as_str())
        .collect();
    // Sorted by file, then line.
    assert_eq!(sandboxed_calls, vec!["sb_process", "sb_hash"]);
    // The sandboxed call passes Rust memory but is not unprotected.
    let sb_hash = c
        .call_sites
        .iter()
        .find(|cs| cs.function == "sb_hash")
        .unwrap();
    assert_eq!(sb_hash.pointer_args[0].kind, RustMemory);
    assert!(!sb_hash.unprotected);
    assert!(c.call_sites.iter().all(|cs| cs.declared_in == "ffi_basic"));
    assert!(!c.call_sites.iter().any(|cs| cs.function == "sleep"));
}

#[test]
fn exports_links_and_build_script() {
    let r = audit("ffi_basic", false);
    let c = krate(&r, "ffi_basic");
    let exported: Vec<(&str, &str, Vec<&str>)> = c
        .exported_functions
        .iter()
        .map(|e| {
            (
                e.name.as_str(),
                e.symbol.as_str(),
                e.reasons.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        exported,
        vec![
            ("callback_impl", "callback_impl", vec!["extern-fn"]),
            (
                "exported_add",
                "exported_add",
                vec!["no_mangle", "extern-fn"]
            ),
            ("exported_plain", "exported_plain", vec!["no_mangle"]),
            (
                "exported_renamed",
                "renamed_symbol",
                vec!["export_name", "extern-fn"]
            ),
        ]
    );
    assert_eq!(c.compiles_c, vec!["cc", "make"]);
    let links: Vec<(&str, &str)> = c
        .links
        .iter()
        .map(|l| (l.name.as_str(), l.source.as_str()))
        .collect();
    assert_eq!(
        links,
        vec![
            ("demo", "link-attribute"),
            ("dylib=m", "build-script"),
            ("static=demo", "build-script"),
        ]
    );
}

#[test]
fn exposure_score_terms() {
    let r = audit("ffi_basic", false);
    let c = krate(&r, "ffi_basic");
    assert_eq!(c.exposure.unprotected_pointer_calls, 4);
    assert_eq!(c.exposure.unknown_pointer_calls, 2);
    // demo_write, demo_callback, demo_free, gen_fill (sb_process is sandboxed).
    assert_eq!(c.exposure.unsandboxed_writing_fns, 4);
    // demo_read, demo_new, demo_printf.
    assert_eq!(c.exposure.unsandboxed_other_pointer_fns, 3);
    assert_eq!(c.exposure.exported_functions, 4);
    assert_eq!(c.exposure_score, 10 * 4 + 4 * 2 + 3 * 4 + 3 + 4);
}

#[test]
fn dependencies_resolve_calls_only_with_deps() {
    // Without --deps the dependency is not audited: its foreign functions
    // are unknown, so the call does not resolve.
    let r = audit("app_uses_dep", false);
    assert_eq!(r.crates.len(), 1);
    assert_eq!(krate(&r, "app_uses_dep").call_sites.len(), 0);

    let r = audit("app_uses_dep", true);
    assert_eq!(r.crates.len(), 2);
    let app = krate(&r, "app_uses_dep");
    assert_eq!(app.source, "workspace");
    assert_eq!(krate(&r, "ffi_basic").source, "dependency");
    assert_eq!(app.call_sites.len(), 1);
    let cs = &app.call_sites[0];
    assert_eq!(cs.file, "src/main.rs");
    assert_eq!(cs.line, 3);
    assert_eq!(cs.path, "ffi_basic::demo_write");
    assert_eq!(cs.declared_in, "ffi_basic");
    assert_eq!(cs.pointer_args.len(), 1);
    assert_eq!(cs.pointer_args[0].kind, ArgKind::RustMemory); // vec![..].as_mut_ptr()
    assert!(cs.unprotected);
    // Ranked by exposure: ffi_basic (67) before app_uses_dep (10).
    assert_eq!(r.crates[0].name, "ffi_basic");
    assert_eq!(app.exposure_score, 10);
    assert_eq!(r.summary.unprotected_pointer_calls, 5);
}

#[test]
fn missing_manifest_is_an_error_not_a_panic() {
    let dir = fixture("no_manifest");
    let err = audit_path(&dir, &AuditOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NoManifest(_)));
    assert_eq!(
        err.to_string(),
        format!(
            "no Cargo.toml in {} (give a crate or workspace directory)",
            dir.display()
        )
    );
    assert_eq!(run(&args(dir, false, vec![])), 2);
    assert_eq!(run(&args(fixture("does-not-exist"), false, vec![])), 2);
}

#[test]
fn deny_gates_the_exit_status() {
    let basic = fixture("ffi_basic");
    assert_eq!(run(&args(basic.clone(), false, vec![])), 0);
    assert_eq!(
        run(&args(
            basic.clone(),
            false,
            vec![DenyRule::UnprotectedPointerCalls]
        )),
        1
    );
    // The app without --deps has no resolved call: nothing to deny.
    assert_eq!(
        run(&args(
            fixture("app_uses_dep"),
            false,
            vec![DenyRule::UnprotectedPointerCalls]
        )),
        0
    );
    assert_eq!(
        run(&args(
            fixture("app_uses_dep"),
            true,
            vec![DenyRule::UnprotectedPointerCalls]
        )),
        1
    );
    let r = audit("ffi_basic", false);
    assert_eq!(DenyRule::UnprotectedPointerCalls.count(&r), 4);
    assert_eq!(DenyRule::UnknownPointerCalls.count(&r), 2);
    assert_eq!(DenyRule::UnsandboxedForeignFunctions.count(&r), 7);
    assert_eq!(DenyRule::ExportedFunctions.count(&r), 4);
    assert_eq!(DenyRule::ParseErrors.count(&r), 1);
}

#[test]
fn json_and_sarif_shapes() {
    let r = audit("ffi_basic", false);
    let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["crates"][0]["name"], "ffi_basic");
    assert_eq!(json["crates"][0]["unsafe_code"]["blocks"], 4);
    assert_eq!(json["errors"][0]["crate"], "ffi_basic");
    let classes = &json["crates"][0]["foreign_functions"][0]["classes"];
    assert!(classes.is_array());

    let sarif: serde_json::Value = serde_json::from_str(&render(&r, Format::Sarif)).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(sarif["$schema"].as_str().unwrap().contains("sarif"));
    let driver = &sarif["runs"][0]["tool"]["driver"];
    assert_eq!(driver["name"], "cofferdam-audit");
    assert!(driver["informationUri"].is_string());
    assert_eq!(driver["rules"].as_array().unwrap().len(), 5);
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let by_rule = |id: &str| results.iter().filter(|r| r["ruleId"] == id).count();
    assert_eq!(by_rule("unprotected-pointer-call"), 4);
    assert_eq!(by_rule("unknown-pointer-call"), 2);
    assert_eq!(by_rule("unsandboxed-foreign-function"), 7);
    assert_eq!(by_rule("exported-function"), 4);
    assert_eq!(by_rule("parse-error"), 1);
    let first = results
        .iter()
        .find(|r| r["ruleId"] == "unprotected-pointer-call")
        .unwrap();
    assert_eq!(first["level"], "error");
    let loc = &first["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "src/lib.rs");
    assert_eq!(loc["region"]["startLine"], 61);
    assert!(first["message"]["text"]
        .as_str()
        .unwrap()
        .contains("demo_write"));

    let table = render(&r, Format::Table);
    assert!(table.lines().all(|l| l.chars().count() <= 100), "{table}");
    assert!(table.contains("ffi_basic"));
}

#[test]
fn report_is_deterministic() {
    let a = render(&audit("app_uses_dep", true), Format::Json);
    let b = render(&audit("app_uses_dep", true), Format::Json);
    assert_eq!(a, b);
}
