//! `lapse-dev demo`, the binary `scripts/demo` runs, on an emulator of its own (its
//! cast has fixed names): it must end well, and nothing it prints for a person may
//! be Rust `Debug` text.

use std::process::Command;

use lapse_testkit::{Emulator, debug_shaped, workspace_root};

#[test]
fn the_demo_runs_and_speaks_to_people_not_to_rust() {
    let emulator = Emulator::start().unwrap();
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join("lapse-dev");
    let out = Command::new(bin)
        .arg("demo")
        .current_dir(workspace_root())
        .envs(emulator.env())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Demo complete"), "{text}");
    let shaped = debug_shaped(&text);
    assert!(shaped.is_empty(), "Debug text in the demo: {shaped:#?}");
}
