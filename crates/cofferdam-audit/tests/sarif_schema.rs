//! The SARIF output of the audit (`--format sarif`) validated against the
//! official SARIF 2.1.0 JSON schema (draft-07), over the fixture crates, with
//! negative checks proving the validator rejects what it must.

mod common;

use common::audit;

use cofferdam_audit::{render, DenyRule, Format};
use common::SarifSchema;
use serde_json::Value;

fn results(doc: &Value) -> &Vec<Value> {
    doc["runs"][0]["results"].as_array().expect("results array")
}

/// `doc` changed by `edit` must fail validation, with an error at the
/// instance location `at` (a JSON pointer), i.e. for the broken part.
fn assert_rejected(schema: &SarifSchema, doc: &Value, at: &str, edit: impl FnOnce(&mut Value)) {
    let mut broken = doc.clone();
    edit(&mut broken);
    assert_ne!(&broken, doc, "{at}: the edit changed nothing");
    match schema.check(&broken) {
        Ok(()) => panic!(
            "{at}: a broken SARIF document passed validation, so the validator is not active"
        ),
        Err(e) => assert!(
            e.contains(&format!("at '{at}'")),
            "{at}: rejected, but not for the broken part:\n{e}"
        ),
    }
}

/// Decodes `%XX` escapes (test-side, independent of the report code).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn ffi_basic_sarif_validates_and_broken_sarif_does_not() {
    let schema = SarifSchema::load();
    let r = audit("ffi_basic", false);
    let doc = schema.assert_valid("ffi_basic", &render(&r, Format::Sarif));

    // Findings of every rule, each as many as the `--deny` rule counts; the
    // unprotected calls (what `--deny unprotected-pointer-calls` fails on)
    // are the error-level results.
    let res = results(&doc);
    let by_rule = |id: &str| res.iter().filter(|x| x["ruleId"] == id).count();
    for (id, rule) in [
        (
            "unprotected-pointer-call",
            DenyRule::UnprotectedPointerCalls,
        ),
        ("unknown-pointer-call", DenyRule::UnknownPointerCalls),
        (
            "unsandboxed-foreign-function",
            DenyRule::UnsandboxedForeignFunctions,
        ),
        ("exported-function", DenyRule::ExportedFunctions),
        ("parse-error", DenyRule::ParseErrors),
    ] {
        assert!(by_rule(id) > 0, "ffi_basic has {id} results");
        assert_eq!(by_rule(id), rule.count(&r), "{id}");
    }
    let errors = res.iter().filter(|x| x["level"] == "error").count();
    assert_eq!(errors, DenyRule::UnprotectedPointerCalls.count(&r));
    assert_eq!(errors, 4);

    // The validator is active: each of these breaks the schema and must fail.
    assert_rejected(&schema, &doc, "/version", |d| d["version"] = "2.0.0".into());
    assert_rejected(&schema, &doc, "/runs/0/results/0/level", |d| {
        d["runs"][0]["results"][0]["level"] = "severe".into()
    });
    assert_rejected(
        &schema,
        &doc,
        "/runs/0/results/0/locations/0/physicalLocation/region/startLine",
        |d| {
            d["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
                0.into()
        },
    );
    assert_rejected(&schema, &doc, "/runs/0/results/0", |d| {
        d["runs"][0]["results"][0]
            .as_object_mut()
            .unwrap()
            .remove("message");
    });
    assert_rejected(&schema, &doc, "/runs/0/tool/driver", |d| {
        d["runs"][0]["tool"]["driver"]
            .as_object_mut()
            .unwrap()
            .remove("name");
    });
    assert_rejected(&schema, &doc, "", |d| d["severity"] = "high".into());
    assert_rejected(
        &schema,
        &doc,
        "/runs/0/tool/driver/rules/0/defaultConfiguration/level",
        |d| {
            d["runs"][0]["tool"]["driver"]["rules"][0]["defaultConfiguration"]["level"] =
                "fatal".into()
        },
    );
    assert_rejected(
        &schema,
        &doc,
        "/runs/0/results/0/locations/0/physicalLocation/artifactLocation/uri",
        |d| {
            d["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
                ["uri"] = "src/my file.rs".into()
        },
    );
}

#[test]
fn app_uses_dep_sarif_validates_with_and_without_deps() {
    let schema = SarifSchema::load();

    let alone = audit("app_uses_dep", false);
    schema.assert_valid("app_uses_dep", &render(&alone, Format::Sarif));

    let r = audit("app_uses_dep", true);
    assert!(r.crates.len() > 1, "dependencies audited");
    let doc = schema.assert_valid("app_uses_dep --deps", &render(&r, Format::Sarif));
    let res = results(&doc);
    assert_eq!(
        res.iter().filter(|x| x["level"] == "error").count(),
        DenyRule::UnprotectedPointerCalls.count(&r)
    );
    assert!(DenyRule::UnprotectedPointerCalls.count(&r) > 0);
}

/// Paths that are not valid in a URI as they are (spaces, `#`, `%`, `[`,
/// non-ASCII) inside the audited root (relative URIs) and outside it
/// (absolute `file://` URIs, as for registry dependencies).
#[test]
fn sarif_uris_of_awkward_paths_validate_and_decode_back() {
    let schema = SarifSchema::load();
    let mut r = audit("ffi_basic", false);
    let root = "/tmp/my work/ws #1";
    r.root = root.to_string();
    let mut inside = r.crates[0].clone();
    inside.root = format!("{root}/crate ä%");
    for f in &mut inside.foreign_functions {
        f.file = "src/a b[1].rs".to_string();
    }
    let mut outside = r.crates[0].clone();
    outside.name = "dep".to_string();
    outside.source = "dependency".to_string();
    outside.root = "/home/u/.cargo/registry/src/index crates/dep?-1.0".to_string();
    r.crates = vec![inside, outside];

    let doc = schema.assert_valid("awkward paths", &render(&r, Format::Sarif));
    let base = doc["runs"][0]["originalUriBaseIds"]["%SRCROOT%"]["uri"]
        .as_str()
        .unwrap();
    assert!(
        base.starts_with("file:///") && base.ends_with('/'),
        "{base}"
    );
    assert_eq!(percent_decode(&base["file://".len()..]), format!("{root}/"));

    let mut relative = 0;
    let mut absolute = 0;
    for res in results(&doc) {
        let loc = &res["locations"][0]["physicalLocation"]["artifactLocation"];
        let uri = loc["uri"].as_str().unwrap();
        let text = res["message"]["text"].as_str().unwrap();
        if text.starts_with("dep:") {
            assert!(loc.get("uriBaseId").is_none(), "{uri}");
            let path = percent_decode(uri.strip_prefix("file://").expect("absolute file URI"));
            assert!(
                path.starts_with("/home/u/.cargo/registry/src/index crates/dep?-1.0/"),
                "{uri} -> {path}"
            );
            absolute += 1;
        } else {
            assert_eq!(loc["uriBaseId"], "%SRCROOT%");
            let path = percent_decode(uri);
            assert!(path.starts_with("crate ä%/"), "{uri} -> {path}");
            if res["ruleId"] == "unsandboxed-foreign-function" {
                assert_eq!(path, "crate ä%/src/a b[1].rs");
            }
            relative += 1;
        }
    }
    assert!(relative > 0 && absolute > 0);
}
