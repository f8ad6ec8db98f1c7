//! The fuzz targets' quick mode, in the normal test suite: every seed in
//! `fuzz/corpus/<target>/`, every input in `fuzz/regressions/<target>/` (each
//! crash the fuzzer ever found), and a few thousand deterministic mutations
//! of them, through the same properties libFuzzer checks
//! (`roster::fuzzing`). The full mode is `cargo fuzz run` (RELIABILITY.md).
//! A failing input is written to `target/fuzz-quick/<target>-failure.bin`.

use std::path::{Path, PathBuf};

/// Mutations per target; `ROSTER_FUZZ_QUICK_N` overrides.
const MUTATIONS: usize = 20_000;

/// Fragments the mutator splices in: the grammar's sharp edges.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b"(",
    b")",
    b",",
    b":",
    b".",
    b" and ",
    b" or ",
    b" not ",
    b" eq ",
    b" pr",
    b" co ",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"\"op\":",
    b"\"path\":",
    b"\"value\":",
    b"emails[type eq \"work\"]",
    b"urn:ietf:params:scim:schemas:core:2.0:User:",
    b"\n[",
    b"=",
    b"\x00",
    b"\xff",
    "é".as_bytes(),
    "＠".as_bytes(),
];

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut d = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(d.len() + 1);
        match rng.below(6) {
            0 if !d.is_empty() => {
                let i = rng.below(d.len());
                d[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                d.splice(at..at, t.iter().copied());
            }
            2 if !d.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(d.len());
                d.drain(at.min(d.len() - 1)..end);
            }
            3 if !d.is_empty() => {
                // Repeat a chunk: nesting and long inputs.
                let start = rng.below(d.len());
                let end = (start + 1 + rng.below(32)).min(d.len());
                let chunk = d[start..end].to_vec();
                for _ in 0..=rng.below(50) {
                    d.splice(at..at, chunk.iter().copied());
                }
            }
            4 => {
                // Splice in part of another seed.
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let s = rng.below(other.len());
                    let e = (s + 1 + rng.below(64)).min(other.len());
                    d.splice(at..at, other[s..e].iter().copied());
                }
            }
            _ => d.truncate(at),
        }
    }
    d
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn run_one(name: &str, check: fn(&[u8]), input: &[u8]) {
    if std::panic::catch_unwind(|| check(input)).is_err() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-quick");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}-failure.bin"));
        let _ = std::fs::write(&path, input);
        panic!(
            "fuzz target {name} failed on the input saved as {} (replay: cargo fuzz run -s none {name} {})",
            path.display(),
            path.display()
        );
    }
}

#[test]
fn fuzz_targets_hold_on_corpus_regressions_and_mutations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let n: usize = std::env::var("ROSTER_FUZZ_QUICK_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MUTATIONS);
    for (name, check) in roster::fuzzing::TARGETS {
        let mut seeds = Vec::new();
        for f in files_in(&root.join("corpus").join(name))
            .into_iter()
            .chain(files_in(&root.join("regressions").join(name)))
        {
            seeds.push(std::fs::read(&f).unwrap());
        }
        assert!(seeds.len() >= 5, "fuzz/corpus/{name} has {} seeds", seeds.len());
        for s in &seeds {
            run_one(name, check, s);
        }
        let mut rng = Rng(0x5eed_0000 ^ name.len() as u64 ^ (name.as_bytes()[0] as u64) << 32);
        for _ in 0..n {
            let input = mutate(&mut rng, &seeds);
            run_one(name, check, &input);
        }
        println!(
            "fuzz quick: {name}: {} seeds and regressions, {n} mutations, no failure",
            seeds.len()
        );
    }
}

#[test]
fn the_regression_inputs_are_real_and_still_pass() {
    // The filter regressions are inputs near the length limit whose printed
    // form is longer than the limit (RELIABILITY.md, finding 1).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/filter");
    let files = files_in(&dir);
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let data = std::fs::read(&f).unwrap();
        roster::fuzzing::filter(&data);
    }
}
