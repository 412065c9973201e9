//! Compiles the policy catalog the binaries embed (`infra/policy/catalog.yaml`):
//! validated here, so an invalid catalog fails the build, and written as JSON, so a
//! function reads it at start-up without the YAML parser.

use std::path::PathBuf;

fn main() {
    let source = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("../../infra/policy/catalog.yaml");
    println!("cargo::rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(&source)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", source.display()));
    let compiled = lapse_core::policy::Catalog::compile(&text, "infra/policy/catalog.yaml")
        .unwrap_or_else(|err| panic!("{err}"));
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("catalog.json");
    std::fs::write(&out, compiled)
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", out.display()));
}
