//! The fuzz targets' bodies (`fuzz/src/bodies.rs`), replayed on stable over each
//! target's seed corpus (`fuzz/corpus/<target>/`) and deterministic mutations of
//! it: a short smoke run in the test command. `scripts/fuzz` runs the same bodies
//! under libFuzzer on nightly, for as long as asked.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

#[path = "../../../fuzz/src/bodies.rs"]
mod bodies;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

/// Mutants per seed.
const MUTANTS: usize = 300;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!seeds.is_empty(), "{target} has no seeds");
    seeds
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that tend to matter to these parsers.
const INTERESTING: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\n",
    b"\r\n",
    b",",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"-",
    b"0",
    b"9",
    b"99999999999999999999",
    b"\xd0\xb0",
    b"\xff",
    b"\x00",
    b"P",
    b"T",
    b"h",
    b"d",
    b"*",
    b"null",
    b"true",
    b"  ",
    b"#",
    b"&",
    b"!",
];

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            2 if !out.is_empty() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 => out.truncate(at),
            4 if !out.is_empty() => {
                let end = (at + rng.below(32)).min(out.len());
                let piece: Vec<u8> = out[at.min(end)..end].to_vec();
                out.splice(end..end, piece);
            }
            _ => {
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
        }
    }
    out
}

fn smoke(target: &str, body: fn(&[u8])) {
    let seeds = seeds(target);
    let mut rng = Rng(0x5EED_0F1A_95E5);
    let mut inputs: Vec<Vec<u8>> = seeds.clone();
    for (i, seed) in seeds.iter().enumerate() {
        for _ in 0..MUTANTS {
            let other = &seeds[(i + 1 + rng.below(seeds.len())) % seeds.len()];
            inputs.push(mutate(&mut rng, seed, other));
        }
    }
    for input in &inputs {
        if catch_unwind(AssertUnwindSafe(|| body(input))).is_err() {
            let saved = std::env::temp_dir().join(format!("lapse-fuzz-{target}.bin"));
            std::fs::write(&saved, input).unwrap();
            panic!(
                "{target} failed on {:?} (saved to {}; replay: cargo +nightly fuzz run {target} {} --fuzz-dir fuzz)",
                String::from_utf8_lossy(input),
                saved.display(),
                saved.display()
            );
        }
    }
}

#[test]
fn hr_event_bodies() {
    smoke("hr_event", bodies::hr_event);
}

#[test]
fn batch_csv_rows() {
    smoke("batch_csv", bodies::batch_csv);
}

#[test]
fn durations() {
    smoke("duration", bodies::duration);
}

#[test]
fn policy_files() {
    smoke("policy", bodies::policy);
}
