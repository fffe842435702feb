//! Validation against the official SARIF 2.1.0 JSON schema
//! (`tests/data/sarif-schema-2.1.0.json`, JSON Schema draft-07; see
//! `tests/data/README.md` for where it comes from), with the `boon`
//! validator. Everything is offline: the schema is registered under its own
//! `$id` and boon carries the draft-07 meta-schema; boon has no HTTP loader.

#![allow(dead_code)] // each test binary uses a different part

use cofferdam_audit::{audit_path, AuditOptions, Report};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A fixture crate's directory.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Audits a fixture crate.
pub fn audit(name: &str, deps: bool) -> Report {
    audit_path(&fixture(name), &AuditOptions { deps }).expect("audit succeeds")
}

/// The schema file, as committed.
pub const SARIF_SCHEMA: &str = include_str!("../data/sarif-schema-2.1.0.json");

/// The SARIF 2.1.0 schema, compiled once per test binary.
pub struct SarifSchema {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl SarifSchema {
    /// Compiles the schema (draft-07, `format` asserted, so `uri` and
    /// `uri-reference` strings are checked too).
    pub fn load() -> SarifSchema {
        let schema: Value = serde_json::from_str(SARIF_SCHEMA).expect("schema is JSON");
        assert_eq!(
            schema["$schema"], "http://json-schema.org/draft-07/schema#",
            "the committed schema is the draft-07 one"
        );
        let id = schema["$id"]
            .as_str()
            .expect("schema has an $id")
            .to_string();
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V7);
        compiler.enable_format_assertions();
        compiler
            .add_resource(&id, schema)
            .expect("schema registered under its $id");
        let mut schemas = boon::Schemas::new();
        let index = compiler
            .compile(&id, &mut schemas)
            .unwrap_or_else(|e| panic!("SARIF schema compiles: {e:#}"));
        SarifSchema { schemas, index }
    }

    /// `Err` with the validator's explanation when `doc` is not valid SARIF 2.1.0.
    pub fn check(&self, doc: &Value) -> Result<(), String> {
        self.schemas
            .validate(doc, self.index)
            .map_err(|e| format!("{e:#}"))
    }

    /// Parses `sarif` and panics with the validator's explanation unless it
    /// is valid SARIF 2.1.0. Returns the parsed document.
    pub fn assert_valid(&self, what: &str, sarif: &str) -> Value {
        let doc: Value = serde_json::from_str(sarif)
            .unwrap_or_else(|e| panic!("{what}: SARIF output is not JSON: {e}"));
        if let Err(e) = self.check(&doc) {
            panic!("{what}: SARIF output does not validate against the 2.1.0 schema:\n{e}");
        }
        doc
    }
}
