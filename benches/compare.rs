//! Criterion benchmarks for the comparison engine: exact, json and text modes
//! over realistic bodies. Throughput counts the bytes of both bodies.
//!
//! Instruction counts (repeatable on a loaded machine, unlike times): with
//! `COMPARE_LOOPS=n` the binary runs one json case `n` times and exits, so
//! callgrind counting only inside `compare` gives the cost per pair as its
//! total divided by `n`:
//!
//! ```text
//! cargo bench --bench compare --no-run    # prints target/release/deps/compare-<hash>
//! COMPARE_LOOPS=10000 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     --toggle-collect='understudy::compare::compare' \
//!     target/release/deps/compare-<hash> json/loadbench_answer
//! ```
//!
//! (`json/equal/4096` and the other `json/<case>/<size>` names work too.)

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use std::fmt::Write as _;
use std::hint::black_box;
use understudy::compare::{Observation, compare};
use understudy::config::{Compare, JsonCompare, TextCompare};
use understudy::pointer::Pointer;

fn ok(body: String) -> Observation {
    Observation {
        status: Some(200),
        body: Bytes::from(body),
        ..Observation::default()
    }
}

/// A lead-score-like answer of about `target` bytes. `variant` changes the
/// request id and timestamps (ignored) and, when `differ`, the score and
/// every fourth item's weight (beyond tolerance).
fn document(target: usize, variant: u32, differ: bool) -> String {
    let score = if differ { 0.61 } else { 0.87 };
    let mut out = format!(
        r#"{{"request_id":"req-{variant:08}","score":{score},"label":"hot","model":"v1","items":["#
    );
    let mut i = 0u32;
    while out.len() + 2 < target {
        if i > 0 {
            out.push(',');
        }
        let weight = if differ && i.is_multiple_of(4) {
            9.5
        } else {
            1.25 + f64::from(i % 7)
        };
        write!(
            out,
            r#"{{"id":{i},"name":"feature-{i}","weight":{weight},"ts":{}}}"#,
            1_700_000_000 + variant * 1000 + i
        )
        .expect("writing to a String cannot fail");
        i += 1;
    }
    out.push_str("]}");
    out
}

fn sentence_text(target: usize, seed: usize) -> String {
    const WORDS: [&str; 24] = [
        "the",
        "account",
        "shows",
        "strong",
        "intent",
        "signals",
        "and",
        "a",
        "recent",
        "pricing",
        "page",
        "visit",
        "suggests",
        "budget",
        "approval",
        "is",
        "likely",
        "within",
        "this",
        "quarter",
        "so",
        "we",
        "recommend",
        "outreach",
    ];
    let mut out = String::with_capacity(target + 16);
    let mut k = seed;
    while out.len() < target {
        out.push_str(WORDS[k % WORDS.len()]);
        out.push(if k % 11 == 10 { '.' } else { ' ' });
        k = k * 7 + 3;
    }
    out
}

fn json_mode() -> Compare {
    Compare::Json(JsonCompare {
        ignore: ["/request_id", "/items/*/ts"]
            .iter()
            .map(|p| Pointer::parse(p).expect("valid pointer"))
            .collect(),
        tolerance: 0.05,
        ..JsonCompare::default()
    })
}

fn bench_exact(c: &mut Criterion) {
    let mut group = c.benchmark_group("exact");
    for size in [1024, 16 * 1024] {
        let a = ok(document(size, 1, false));
        let b = ok(document(size, 1, false));
        group.throughput(Throughput::Bytes((a.body.len() + b.body.len()) as u64));
        group.bench_with_input(BenchmarkId::new("equal", size), &(a, b), |bench, (a, b)| {
            bench.iter(|| compare(&Compare::Exact, black_box(a), black_box(b), &[]));
        });
    }
    group.finish();
}

/// The load benchmark's answer (`scripts/loadbench`, ~190 bytes), with a
/// request id that its route ignores.
fn answer(request_id: &str) -> String {
    format!(
        r#"{{"request_id":"{request_id}","score":0.87,"label":"hot","model":"v1","reasons":["recent visit","enterprise domain","pricing page"],"items":[{{"id":1,"w":0.5}},{{"id":2,"w":0.25}},{{"id":3,"w":0.125}}]}}"#
    )
}

/// The load benchmark's pair and its route's rules.
fn answer_pair() -> (Compare, Observation, Observation) {
    let mode = Compare::Json(JsonCompare {
        ignore: vec![Pointer::parse("/request_id").expect("valid pointer")],
        ..JsonCompare::default()
    });
    (mode, ok(answer("r-1")), ok(answer("r-2")))
}

/// One pair as the load benchmark's mirrored requests compare it:
/// `compare = { mode = "json", ignore = ["/request_id"] }`, equal but for the id.
fn bench_answer(c: &mut Criterion) {
    let (mode, a, b) = answer_pair();
    assert!(compare(&mode, &a, &b, &[]).is_match());
    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Bytes((a.body.len() + b.body.len()) as u64));
    group.bench_function("loadbench_answer", |bench| {
        bench.iter(|| compare(&mode, black_box(&a), black_box(&b), &[]));
    });
    group.finish();
}

const JSON_SIZES: [usize; 4] = [200, 1024, 4 * 1024, 16 * 1024];
const JSON_CASES: [&str; 3] = ["identical", "equal", "differing"];

/// The bodies of the json group's case `name` (one of [`JSON_CASES`]).
fn json_pair(name: &str, size: usize) -> (Observation, Observation) {
    let (variant, differ) = match name {
        "identical" => (1, false),
        "equal" => (2, false),
        _ => (2, true),
    };
    (
        ok(document(size, 1, false)),
        ok(document(size, variant, differ)),
    )
}

fn bench_json(c: &mut Criterion) {
    let mode = json_mode();
    let mut group = c.benchmark_group("json");
    for size in JSON_SIZES {
        for name in JSON_CASES {
            let (a, b) = json_pair(name, size);
            let expect_match = name != "differing";
            assert_eq!(
                compare(&mode, &a, &b, &[]).is_match(),
                expect_match,
                "{name}"
            );
            group.throughput(Throughput::Bytes((a.body.len() + b.body.len()) as u64));
            group.bench_with_input(BenchmarkId::new(name, size), &(a, b), |bench, (a, b)| {
                bench.iter(|| compare(&mode, black_box(a), black_box(b), &[]));
            });
        }
    }
    group.finish();
}

fn bench_text(c: &mut Criterion) {
    let mode = Compare::Text(TextCompare {
        field: None,
        threshold: 0.8,
    });
    let mut group = c.benchmark_group("text");
    let a = ok(sentence_text(1024, 1));
    let cases = [
        ("paraphrase", {
            // Every tenth word changed.
            let words: Vec<&str> = std::str::from_utf8(&a.body)
                .expect("ascii text")
                .split(' ')
                .collect();
            let changed: Vec<&str> = words
                .iter()
                .enumerate()
                .map(|(i, w)| if i % 10 == 0 { "different" } else { *w })
                .collect();
            changed.join(" ")
        }),
        ("unrelated", sentence_text(1024, 5)),
    ];
    for (name, b) in cases {
        let b = ok(b);
        group.throughput(Throughput::Bytes((a.body.len() + b.body.len()) as u64));
        group.bench_with_input(BenchmarkId::new(name, 1024), &b, |bench, b| {
            bench.iter(|| compare(&mode, black_box(&a), black_box(b), &[]));
        });
    }
    group.finish();
}

/// Runs the json case named `id` (`json/loadbench_answer`,
/// `json/<case>/<size>`) `loops` times, for an instruction count.
fn count(id: &str, loops: u64) {
    let (mode, a, b) = if id == "json/loadbench_answer" {
        answer_pair()
    } else {
        let found = JSON_SIZES.iter().find_map(|&size| {
            let name = JSON_CASES
                .into_iter()
                .find(|name| id == format!("json/{name}/{size}"))?;
            Some(json_pair(name, size))
        });
        let Some((a, b)) = found else {
            eprintln!("no json case {id:?}");
            std::process::exit(2);
        };
        (json_mode(), a, b)
    };
    for _ in 0..loops {
        black_box(compare(&mode, black_box(&a), black_box(&b), &[]));
    }
}

criterion_group!(benches, bench_exact, bench_answer, bench_json, bench_text);

fn main() {
    if let Ok(loops) = std::env::var("COMPARE_LOOPS") {
        let Ok(loops) = loops.parse() else {
            eprintln!("COMPARE_LOOPS: not a number: {loops:?}");
            std::process::exit(2);
        };
        let id = std::env::args().nth(1).unwrap_or_default();
        count(&id, loops);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
