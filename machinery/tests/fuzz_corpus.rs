//! The fuzz targets of `faros_machinery::fuzzing` on stable Rust: every input checked in
//! under `fuzz/seeds/<target>/`, then a fixed number of deterministic mutations of them
//! (built from the same dictionaries libFuzzer uses), so `cargo test` proves the targets
//! neither panic nor break their properties on those inputs. The work is bounded by
//! counts, not time; a failure names the input so it can be replayed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use faros_machinery::fuzzing::{TARGETS, Target};

/// Mutated inputs per target. Chosen so the whole file stays within a few seconds in a
/// debug build; the seeds are what carries the coverage, the mutations add breadth.
const MUTATIONS: usize = 10_000;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn target(name: &str) -> Target {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
        .1
}

/// The files of `fuzz/seeds/<name>/`, sorted so the mutations are the same everywhere.
fn seeds(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("seeds").join(name);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (path.file_name().unwrap().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{} holds no seeds", dir.display());
    out
}

/// The tokens of a libFuzzer dictionary (`name="value"` or `"value"` lines, with `\\`,
/// `\"` and `\xNN` escapes).
fn dictionary(name: &str) -> Vec<Vec<u8>> {
    let path = fuzz_dir().join("dict").join(format!("{name}.dict"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let quoted = &l[l.find('"')?..];
            let inner = quoted.strip_prefix('"')?.strip_suffix('"')?.as_bytes();
            let mut token = Vec::new();
            let mut i = 0;
            while i < inner.len() {
                match (inner[i], inner.get(i + 1)) {
                    (b'\\', Some(b'x')) => {
                        let hex = std::str::from_utf8(&inner[i + 2..i + 4]).expect("hex escape");
                        token.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                        i += 4;
                    }
                    (b'\\', Some(&c)) => {
                        token.push(c);
                        i += 2;
                    }
                    (c, _) => {
                        token.push(c);
                        i += 1;
                    }
                }
            }
            Some(token)
        })
        .collect()
}

/// xorshift64*: deterministic, and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One to four of libFuzzer's basic mutations: bit flips, interesting bytes, dictionary
/// tokens, deletions, duplications, and splices with another seed.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8], dict: &[Vec<u8>]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\x00\x01\x7f\x80\xff\n\"\\{}[](),:=!.$@*'-0 ";
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if !dict.is_empty() => {
                let token = &dict[rng.below(dict.len())];
                out.splice(at..at, token.iter().copied());
            }
            3 if !out.is_empty() => {
                let len = 1 + rng.below(8);
                out.drain(at.min(out.len() - 1)..(at + len).min(out.len()));
            }
            4 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(16)).min(out.len());
                let copy = out[start..end].to_vec();
                out.splice(at..at, copy);
            }
            5 => {
                let cut = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[cut..]);
            }
            _ => out.insert(at, rng.next() as u8),
        }
    }
    out
}

fn run(name: &str, origin: &str, input: &[u8]) {
    let target = target(name);
    if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
        panic!(
            "fuzz target {name} failed on {origin}; input (escaped): \"{}\"",
            input.escape_ascii()
        );
    }
}

fn replay(name: &str) {
    let seeds = seeds(name);
    for (file, input) in &seeds {
        run(name, &format!("seed {file}"), input);
    }
    let dict = dictionary(name);
    // Seeded by the target's name so that every target gets its own sequence.
    let mut rng = Rng(name.bytes().fold(0x9e37_79b9_7f4a_7c15, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }));
    for i in 0..MUTATIONS {
        let (file, input) = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())].1;
        let mutated = mutate(&mut rng, input, other, &dict);
        run(name, &format!("mutation {i} of seed {file}"), &mutated);
    }
}

#[test]
fn every_target_has_seeds_and_a_dictionary() {
    for (name, _) in TARGETS {
        assert!(!seeds(name).is_empty());
        assert!(
            !dictionary(name).is_empty(),
            "fuzz/dict/{name}.dict is missing or empty"
        );
    }
}

#[test]
fn label_selector() {
    replay("label_selector");
}

#[test]
fn field_selector() {
    replay("field_selector");
}

#[test]
fn jsonpath() {
    replay("jsonpath");
}

#[test]
fn strategic_merge() {
    replay("strategic_merge");
}

#[test]
fn schema() {
    replay("schema");
}

#[test]
fn protobuf() {
    replay("protobuf");
}

#[test]
fn body() {
    replay("body");
}

#[test]
fn json_patch() {
    replay("json_patch");
}
