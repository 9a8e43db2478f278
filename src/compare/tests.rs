//! Crafted pairs through [`compare`]: the order of the rules, then each mode.

use super::*;
use crate::config::{JsonCompare, TextCompare};
use bytes::Bytes;
use std::time::Duration;

fn ok(status: u16, body: &str) -> Observation {
    Observation {
        status: Some(status),
        body: Bytes::copy_from_slice(body.as_bytes()),
        ..Observation::default()
    }
}

fn pointers(list: &[&str]) -> Vec<Pointer> {
    list.iter().map(|p| Pointer::parse(p).unwrap()).collect()
}

fn json(spec: JsonCompare) -> Compare {
    Compare::Json(spec)
}

fn json_default() -> Compare {
    json(JsonCompare::default())
}

fn run(mode: &Compare, a: &str, b: &str) -> Outcome {
    compare(mode, &ok(200, a), &ok(200, b), &[])
}

// === order of the rules ===

#[test]
fn incumbent_5xx_is_incumbent_error_even_when_the_candidate_failed_too() {
    let out = compare(
        &Compare::Exact,
        &ok(500, "boom"),
        &Observation::failed("connect refused", Duration::from_millis(3)),
        &[],
    );
    assert_eq!(out.verdict, Verdict::IncumbentError);
    assert_eq!(out.note.as_deref(), Some("status 500"));
}

#[test]
fn candidate_transport_error_and_5xx_are_candidate_errors() {
    let failed = Observation::failed("timeout after 2s", Duration::from_secs(2));
    let out = compare(&json_default(), &ok(200, "{}"), &failed, &[]);
    assert_eq!(out.verdict, Verdict::CandidateError);
    assert_eq!(out.note.as_deref(), Some("timeout after 2s"));

    let out = compare(&json_default(), &ok(200, "{}"), &ok(503, "{}"), &[]);
    assert_eq!(out.verdict, Verdict::CandidateError);
    assert_eq!(out.note.as_deref(), Some("status 503"));
}

#[test]
fn different_status_classes_mismatch_on_status() {
    let out = compare(&json_default(), &ok(200, "{}"), &ok(404, "{}"), &[]);
    assert_eq!(out.verdict, Verdict::Mismatch);
    assert_eq!(out.diffs, ["/status"]);
}

#[test]
fn truncated_body_is_skipped() {
    let mut long = ok(200, r#"{"a":1"#);
    long.truncated = true;
    let out = compare(&json_default(), &ok(200, r#"{"a":1}"#), &long, &[]);
    assert_eq!(out.verdict, Verdict::Skipped);
    assert_eq!(out.note.as_deref(), Some("body truncated"));
}

#[test]
fn judge_mode_is_pending() {
    let mode = Compare::Judge(crate::config::JudgeCompare {
        url: "http://127.0.0.1:1/judge".parse().unwrap(),
        timeout: Duration::from_secs(1),
        max_in_flight: 1,
    });
    let out = run(&mode, "{}", "{}");
    assert_eq!(out.verdict, Verdict::Skipped);
    assert_eq!(out.note.as_deref(), Some("judge pending"));
}

// === exact ===

#[test]
fn exact_compares_bytes_and_status_code() {
    assert!(run(&Compare::Exact, "same", "same").is_match());
    assert_eq!(run(&Compare::Exact, "a", "b").diffs, [""]);
    let out = compare(&Compare::Exact, &ok(200, "x"), &ok(201, "x"), &[]);
    assert_eq!(out.verdict, Verdict::Mismatch);
    assert_eq!(out.diffs, ["/status"]);
}

// === json ===

#[test]
fn equal_json_matches_regardless_of_key_order_and_spacing() {
    let out = run(
        &json_default(),
        r#"{"score": 0.9, "label": "hot", "tags": ["a", "b"]}"#,
        r#"{"tags":["a","b"],"label":"hot","score":0.9}"#,
    );
    assert_eq!(out, Outcome::new(Verdict::Match));
}

#[test]
fn relative_tolerance_for_numbers() {
    let mode = json(JsonCompare {
        tolerance: 0.05,
        ..JsonCompare::default()
    });
    assert!(run(&mode, r#"{"score": 0.90}"#, r#"{"score": 0.93}"#).is_match());
    let out = run(
        &mode,
        r#"{"score": 0.90, "n": 1}"#,
        r#"{"score": 0.80, "n": 1.0}"#,
    );
    assert_eq!(out.verdict, Verdict::Mismatch);
    assert_eq!(out.diffs, ["/score"]);
    // No tolerance: any difference counts.
    assert_eq!(
        run(
            &json_default(),
            r#"{"score": 0.90}"#,
            r#"{"score": 0.9000001}"#
        )
        .diffs,
        ["/score"]
    );
}

#[test]
fn absolute_tolerance_for_numbers_near_zero() {
    let mode = json(JsonCompare {
        tolerance: 0.05,
        abs_tolerance: 0.01,
        ..JsonCompare::default()
    });
    assert!(run(&mode, r#"[0.0]"#, r#"[0.009]"#).is_match());
    assert_eq!(run(&mode, r#"[0.0]"#, r#"[0.02]"#).diffs, ["/0"]);
}

#[test]
fn ignore_with_wildcards() {
    let mode = json(JsonCompare {
        ignore: pointers(&["/request_id", "/items/*/ts"]),
        ..JsonCompare::default()
    });
    let a = r#"{"request_id": "r1", "items": [{"id": 1, "ts": 100}, {"id": 2, "ts": 101}]}"#;
    let b = r#"{"request_id": "r2", "items": [{"id": 1, "ts": 200}, {"id": 2}]}"#;
    assert!(run(&mode, a, b).is_match());
    let c = r#"{"items": [{"id": 1, "ts": 5}, {"id": 3, "ts": 6}]}"#;
    assert_eq!(run(&mode, a, c).diffs, ["/items/1/id"]);
}

#[test]
fn noise_pointers_are_ignored_like_ignore() {
    let noise = pointers(&["/generated_at", "/debug"]);
    let a = ok(
        200,
        r#"{"score": 1, "generated_at": "10:00", "debug": {"host": "a"}}"#,
    );
    let b = ok(200, r#"{"score": 1, "generated_at": "10:01"}"#);
    assert!(compare(&json_default(), &a, &b, &noise).is_match());
    let out = compare(&json_default(), &a, &b, &[]);
    assert_eq!(out.diffs, ["/debug", "/generated_at"]);
}

#[test]
fn only_compares_the_listed_subtrees() {
    let mode = json(JsonCompare {
        only: pointers(&["/score", "/label"]),
        ..JsonCompare::default()
    });
    let a = r#"{"score": {"value": 0.9, "model": "v1"}, "label": "hot", "explain": "x"}"#;
    let b = r#"{"score": {"value": 0.9, "model": "v2"}, "label": "hot", "extra": 1}"#;
    assert_eq!(run(&mode, a, b).diffs, ["/score/model"]);
    let c = r#"{"score": {"value": 0.9, "model": "v1"}, "explain": "y"}"#;
    assert_eq!(run(&mode, a, c).diffs, ["/label"]);

    let items = json(JsonCompare {
        only: pointers(&["/items/*/score"]),
        ..JsonCompare::default()
    });
    let a = r#"{"items": [{"score": 1, "why": "a"}, {"score": 2}], "total": 3}"#;
    let b = r#"{"items": [{"score": 1, "why": "b"}, {"score": 5}], "total": 4}"#;
    assert_eq!(run(&items, a, b).diffs, ["/items/1/score"]);
}

#[test]
fn unordered_arrays_compare_as_multisets() {
    let mode = json(JsonCompare {
        unordered_arrays: true,
        tolerance: 0.01,
        ignore: pointers(&["/tags/*/at"]),
        ..JsonCompare::default()
    });
    let a =
        r#"{"tags": [{"k": "a", "w": 1.0, "at": 1}, {"k": "b", "w": 2.0}, {"k": "a", "w": 1.0}]}"#;
    let b = r#"{"tags": [{"k": "b", "w": 2.001}, {"k": "a", "w": 1.0}, {"k": "a", "w": 1.0, "at": 9}]}"#;
    assert!(run(&mode, a, b).is_match());
    // Same length, but one "a" became a "c": one diff at the array.
    let c = r#"{"tags": [{"k": "b", "w": 2.0}, {"k": "a", "w": 1.0}, {"k": "c", "w": 1.0}]}"#;
    assert_eq!(run(&mode, a, c).diffs, ["/tags"]);
    // Multiplicity counts: [a, a, b] is not [a, b, b].
    assert_eq!(run(&mode, r#"[1, 1, 2]"#, r#"[1, 2, 2]"#).diffs, [""]);
    assert_eq!(
        run(&mode, r#"{"x": [1, 2]}"#, r#"{"x": [2]}"#).diffs,
        ["/x"]
    );
    // Ordered (the default): element by element, extra elements by index.
    let ordered = json_default();
    assert_eq!(
        run(&ordered, r#"{"x": [1, 2]}"#, r#"{"x": [2, 1, 3]}"#).diffs,
        ["/x/0", "/x/1", "/x/2"]
    );
}

#[test]
fn missing_keys_both_ways_and_type_differences() {
    let out = run(
        &json_default(),
        r#"{"a": 1, "gone": true, "t": "1", "nested": {"x": null}}"#,
        r#"{"a": 1, "new": false, "t": 1, "nested": {"y": null}, "a/b": 0}"#,
    );
    assert_eq!(
        out.diffs,
        ["/a~1b", "/gone", "/nested/x", "/nested/y", "/new", "/t"]
    );
}

#[test]
fn non_json_bodies() {
    let out = run(&json_default(), r#"{"a": 1}"#, "<html>oops</html>");
    assert_eq!(out.verdict, Verdict::Mismatch);
    assert_eq!(out.diffs, [""]);
    assert_eq!(out.note.as_deref(), Some("candidate body is not JSON"));
    // An incumbent that is not JSON falls back to bytes.
    assert!(run(&json_default(), "plain", "plain").is_match());
    assert_eq!(run(&json_default(), "plain", "other").diffs, [""]);
    // Empty bodies (204) agree.
    assert!(compare(&json_default(), &ok(204, ""), &ok(204, ""), &[]).is_match());
}

#[test]
fn diffs_are_capped() {
    let a: Vec<u32> = (0..100).collect();
    let b: Vec<u32> = (1..101).collect();
    let out = run(
        &json_default(),
        &serde_json::to_string(&a).unwrap(),
        &serde_json::to_string(&b).unwrap(),
    );
    assert_eq!(out.diffs.len(), json::MAX_DIFFS);
    assert!(out.diffs.windows(2).all(|w| w[0] < w[1]));
    assert!(out.note.unwrap().contains("capped"));
}

// === text ===

#[test]
fn text_mode_scores_through_compare() {
    let mode = Compare::Text(TextCompare {
        field: None,
        threshold: 0.6,
    });
    let a = "Paris is the capital of France.";
    let same = run(&mode, a, a);
    assert_eq!(same.score, Some(1.0));
    let reordered = run(&mode, a, "The capital of France is Paris.");
    assert_eq!(reordered.verdict, Verdict::Match);
    let unrelated = run(&mode, a, "Bananas grow in tropical climates.");
    assert_eq!(unrelated.verdict, Verdict::Mismatch);
    assert!(unrelated.score.unwrap() < 0.1);
}

/// Issue 10: unordered matching is quadratic (and multiplies with nesting);
/// its work is capped per comparison. Within the cap a shuffled array still
/// matches; beyond it arrays are compared in order, quickly, and the outcome
/// says so. A fallback never turns a mismatch into a match.
#[test]
fn unordered_matching_has_a_bounded_cost() {
    let mode = json(JsonCompare {
        unordered_arrays: true,
        ..JsonCompare::default()
    });
    let array = |v: &[u64]| serde_json::to_string(v).unwrap();
    let shuffled = |n: u64| {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(n);
        let mut v: Vec<u64> = (0..n).collect();
        rand::seq::SliceRandom::shuffle(v.as_mut_slice(), &mut rng);
        v
    };
    let sorted = |n: u64| (0..n).collect::<Vec<u64>>();
    // Within the budget: a shuffled array of 1,000 matches.
    let out = run(&mode, &array(&sorted(1000)), &array(&shuffled(1000)));
    assert!(out.is_match(), "{out:?}");

    // Beyond it: 20,000 reversed elements would take 2·10^8 probes.
    let big = sorted(20_000);
    let reversed: Vec<u64> = big.iter().rev().copied().collect();
    let t0 = std::time::Instant::now();
    let out = run(&mode, &array(&big), &array(&reversed));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(!out.is_match());
    let note = out.note.unwrap_or_default();
    assert!(note.contains("compared in order"), "{note}");
    // Identical order is still a match, whatever the size.
    assert!(run(&mode, &array(&big), &array(&big.clone())).is_match());

    // Nested: 300 arrays of 300, each shuffled, the outer one reversed.
    let nested = |flip: bool| {
        let mut outer: Vec<Vec<u64>> = (0..300)
            .map(|i| {
                if flip {
                    shuffled(300 + i)
                } else {
                    sorted(300 + i)
                }
            })
            .collect();
        if flip {
            outer.reverse();
        }
        serde_json::to_string(&outer).unwrap()
    };
    let t0 = std::time::Instant::now();
    let out = run(&mode, &nested(false), &nested(true));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(out.note.unwrap_or_default().contains("compared in order"));
    // A real difference past the budget is still a mismatch.
    let mut other = big.clone();
    other[19_999] = 7;
    assert!(!run(&mode, &array(&big), &array(&other)).is_match());
}

/// Issue 10, found by `cargo fuzz run json_compare`: serde_json's default
/// float parsing is best-effort, so `20E200` and `2e201` (one number, two
/// spellings) could parse 1 ULP apart and mismatch with no tolerance. With
/// `float_roundtrip` every spelling of a number parses to the same f64.
#[test]
fn one_number_spelt_two_ways_matches() {
    for (a, b) in [
        ("20E200", "2e201"),
        (r#"{"x": 20E200}"#, r#"{"x": 2e201}"#),
        ("0.1", "1e-1"),
        ("123456789012345678e-20", "1.23456789012345678e-3"),
    ] {
        let out = run(&json_default(), a, b);
        assert!(out.is_match(), "{a} vs {b}: {out:?}");
    }
}

// === json: parsing details the comparison must keep ===

/// A key given twice counts once, with its last value: what serde_json's
/// `Value` (and most JSON readers) make of it.
#[test]
fn duplicate_keys_last_one_wins() {
    let parsed: serde_json::Value = serde_json::from_str(r#"{"a": 1, "a": 2}"#).unwrap();
    assert_eq!(parsed, serde_json::json!({"a": 2}), "serde_json's own rule");
    let mode = json_default();
    assert!(run(&mode, r#"{"a": 1, "a": 2}"#, r#"{"a": 2}"#).is_match());
    assert_eq!(
        run(&mode, r#"{"a": 2, "a": 1}"#, r#"{"a": 2}"#).diffs,
        ["/a"]
    );
    // On the candidate's side, nested, and the earlier value differing in type.
    assert!(
        run(
            &mode,
            r#"{"x": {"k": [1], "b": 0}}"#,
            r#"{"x": {"b": 0, "k": "junk", "k": {"z": 1}, "k": [1]}}"#
        )
        .is_match()
    );
    assert_eq!(
        run(
            &mode,
            r#"{"x": {"k": 1, "k": 3}, "y": 1}"#,
            r#"{"y": 1, "x": {"k": 3, "k": 1}}"#
        )
        .diffs,
        ["/x/k"]
    );
    // A key duplicated on one side only is still one member.
    assert_eq!(
        run(&mode, r#"{"a": 1, "a": 1, "b": 1}"#, r#"{"a": 1}"#).diffs,
        ["/b"]
    );
}

/// Strings and keys compare by their text, not their spelling.
#[test]
fn escaped_strings_equal_their_plain_spelling() {
    let mode = json_default();
    assert!(run(&mode, r#"{"s": "a\u0041"}"#, r#"{"s": "aA"}"#).is_match());
    assert!(run(&mode, r#"["\"q\"", "\u00e9"]"#, r#"["\u0022q\u0022", "é"]"#).is_match());
    assert!(run(&mode, r#""\ud83d\ude00""#, r#""😀""#).is_match());
    // Escaped keys too, and the pointer names the key's text.
    assert!(
        run(
            &mode,
            r#"{"\u0061": 1, "a\/b": 2}"#,
            r#"{"a": 1, "a/b": 2}"#
        )
        .is_match()
    );
    assert_eq!(
        run(&mode, r#"{"a\/b\u0041": 1}"#, r#"{"a/bA": 2}"#).diffs,
        ["/a~1bA"]
    );
    assert_eq!(
        run(&mode, r#"{"s": "a\u0041"}"#, r#"{"s": "a\u0042"}"#).diffs,
        ["/s"]
    );
    // An escaped key matches `ignore` by its text.
    let ignore = json(JsonCompare {
        ignore: pointers(&["/request_id"]),
        ..JsonCompare::default()
    });
    assert!(
        run(
            &ignore,
            r#"{"request\u005fid": "r1"}"#,
            r#"{"request_id": "r2"}"#
        )
        .is_match()
    );
}

// === json: a model test against serde_json's `Value` ===

/// Spellings of one JSON value: any of them parses to the same thing.
const SCALARS: &[&[&str]] = &[
    &["1", "1.0", "1e0", "10E-1"],
    &["0", "0.0"],
    &["-0"],
    &["2.5", "25e-1"],
    &["2.6"],
    &["100"],
    &["103"],
    &["0.009"],
    &["9007199254740993"],
    &["9007199254740992"],
    &["18446744073709551615"],
    &["-9223372036854775808"],
    &["1e300", "10e299"],
    &["true"],
    &["false"],
    &["null"],
    &[r#""aA""#, r#""a\u0041""#, r#""\u0061A""#],
    &[r#""x""#],
    &[r#""\"q\"""#, r#""\u0022q\u0022""#],
    &[r#""é""#, r#""\u00e9""#],
    &[r#""😀""#, r#""\ud83d\ude00""#],
    &[r#""""#],
];

/// Spellings of the keys, written between quotes.
const KEYS: &[&[&str]] = &[
    &["a", r"\u0061"],
    &["b"],
    &["a/b", r"a\/b"],
    &["m~n"],
    &["0"],
    &["10"],
    &["ts"],
    &["id"],
    &["items"],
];

/// A document as the generator builds it: leaves and keys are indices
/// into [`SCALARS`] and [`KEYS`], written out in a random spelling.
#[derive(Clone, Debug)]
enum Gen {
    Leaf(usize),
    Array(Vec<Gen>),
    Object(Vec<(usize, Gen)>),
}

fn gen_doc(rng: &mut impl rand::Rng, depth: u32) -> Gen {
    gen_value(rng, depth, 0..10)
}

/// A value of one of the kinds `kinds` draws (0–3 a leaf, 4–6 an array,
/// 7–9 an object).
fn gen_value(rng: &mut impl rand::Rng, depth: u32, kinds: std::ops::Range<u32>) -> Gen {
    match rng.gen_range(if depth == 0 { 0..1 } else { kinds }) {
        0..=3 => Gen::Leaf(rng.gen_range(0..SCALARS.len())),
        4 if rng.gen_bool(0.2) => {
            // Wide enough to pass MAX_DIFFS when every element changes.
            Gen::Array(
                (0..rng.gen_range(60..90))
                    .map(|i| Gen::Leaf(i % 14))
                    .collect(),
            )
        }
        4..=6 => Gen::Array(
            (0..rng.gen_range(0..5))
                .map(|_| gen_doc(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut keys: Vec<usize> = (0..KEYS.len()).collect();
            rand::seq::SliceRandom::shuffle(keys.as_mut_slice(), rng);
            keys.truncate(rng.gen_range(0..6));
            Gen::Object(
                keys.into_iter()
                    .map(|k| (k, gen_value(rng, depth - 1, 0..10)))
                    .collect(),
            )
        }
    }
}

/// A copy of `doc` with a few changes: leaves replaced, members dropped or
/// added, arrays shuffled or cut, wide arrays shifted.
fn mutate(rng: &mut impl rand::Rng, doc: &Gen) -> Gen {
    if rng.gen_bool(0.7) {
        return match doc {
            Gen::Leaf(i) => Gen::Leaf(*i),
            Gen::Array(items) => Gen::Array(items.iter().map(|d| mutate(rng, d)).collect()),
            Gen::Object(members) => {
                Gen::Object(members.iter().map(|(k, d)| (*k, mutate(rng, d))).collect())
            }
        };
    }
    match doc {
        Gen::Leaf(i) => Gen::Leaf((i + rng.gen_range(1..4)) % SCALARS.len()),
        Gen::Array(items) if items.len() > 40 => {
            Gen::Array(items.iter().map(|d| mutate(rng, d)).rev().collect())
        }
        Gen::Array(items) => {
            let mut items = items.clone();
            match rng.gen_range(0..3) {
                0 => rand::seq::SliceRandom::shuffle(items.as_mut_slice(), rng),
                1 => items.truncate(items.len().saturating_sub(1)),
                _ => items.push(gen_doc(rng, 1)),
            }
            Gen::Array(items)
        }
        Gen::Object(members) => {
            let mut members = members.clone();
            if rng.gen_bool(0.5) && !members.is_empty() {
                members.remove(rng.gen_range(0..members.len()));
            } else {
                let k = rng.gen_range(0..KEYS.len());
                members.retain(|(m, _)| *m != k);
                members.push((k, gen_doc(rng, 1)));
            }
            Gen::Object(members)
        }
    }
}

/// `doc` as JSON text: members in a random order, some preceded by a
/// duplicate that the later one overrides, every value in a random spelling.
fn write_doc(rng: &mut impl rand::Rng, doc: &Gen, out: &mut String) {
    let pick = |rng: &mut _, options: &[&'static str]| {
        *rand::seq::SliceRandom::choose(options, rng).expect("never empty")
    };
    match doc {
        Gen::Leaf(i) => out.push_str(pick(rng, SCALARS[*i])),
        Gen::Array(items) => {
            out.push('[');
            for (n, d) in items.iter().enumerate() {
                if n > 0 {
                    out.push_str(if rng.gen_bool(0.5) { "," } else { ", " });
                }
                write_doc(rng, d, out);
            }
            out.push(']');
        }
        Gen::Object(members) => {
            let mut order: Vec<&(usize, Gen)> = members.iter().collect();
            rand::seq::SliceRandom::shuffle(order.as_mut_slice(), rng);
            out.push('{');
            let mut first = true;
            for (k, d) in order {
                let shadowed = rng
                    .gen_bool(0.15)
                    .then(|| Gen::Leaf(rng.gen_range(0..SCALARS.len())));
                for value in shadowed.iter().chain([d]) {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push('"');
                    out.push_str(pick(rng, KEYS[*k]));
                    out.push_str("\": ");
                    write_doc(rng, value, out);
                }
            }
            out.push('}');
        }
    }
}

/// The new path (bytes parsed into borrowed trees) gives exactly what the
/// same bodies give once parsed into `serde_json::Value` and written back
/// (one spelling, sorted keys, no duplicates), and what the walk gives over
/// the `serde_json::Value`s themselves: verdict, pointers and note.
#[test]
fn borrowed_parse_agrees_with_serde_json_values() {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(25);
    let pool = [
        "/a",
        "/b/*",
        "/*/id",
        "/0",
        "/a~1b",
        "/items/*/ts",
        "/*/*/a",
    ];
    let choose = |rng: &mut rand::rngs::StdRng, p: f64| -> Vec<Pointer> {
        let picked: Vec<&str> = pool.iter().copied().filter(|_| rng.gen_bool(p)).collect();
        pointers(&picked)
    };
    use rand::Rng as _;
    let (mut matched, mut mismatched, mut capped) = (0, 0, 0);
    for case in 0..3000 {
        let doc = gen_value(&mut rng, 4, 4..10);
        let other = mutate(&mut rng, &doc);
        let (mut a, mut b) = (String::new(), String::new());
        write_doc(&mut rng, &doc, &mut a);
        write_doc(&mut rng, &other, &mut b);
        let spec = JsonCompare {
            ignore: choose(&mut rng, 0.15),
            only: if rng.gen_bool(0.2) {
                choose(&mut rng, 0.3)
            } else {
                Vec::new()
            },
            tolerance: if rng.gen_bool(0.3) { 0.05 } else { 0.0 },
            abs_tolerance: if rng.gen_bool(0.3) { 0.01 } else { 0.0 },
            unordered_arrays: rng.gen_bool(0.3),
            ..JsonCompare::default()
        };
        let noise = choose(&mut rng, 0.1);
        let (va, vb): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&a).unwrap_or_else(|e| panic!("{e}: {a}")),
            serde_json::from_str(&b).unwrap_or_else(|e| panic!("{e}: {b}")),
        );
        let got = json::compare(&spec, &noise, a.as_bytes(), b.as_bytes());
        let (ra, rb) = (va.to_string(), vb.to_string());
        let want = json::compare(&spec, &noise, ra.as_bytes(), rb.as_bytes());
        assert_eq!(got, want, "case {case}: {spec:?}\n{a}\n{b}");
        if noise.is_empty() {
            assert_eq!(
                json::diffs_at(&spec, "", &va, &vb),
                got.diffs,
                "case {case}: {spec:?}\n{a}\n{b}"
            );
        }
        matched += usize::from(a != b && got.is_match());
        mismatched += usize::from(!got.is_match());
        capped += usize::from(got.diffs.len() == json::MAX_DIFFS);
    }
    // The generator reaches the cases that matter.
    assert!(
        matched > 300 && mismatched > 1500 && capped > 20,
        "{matched} matched (different bytes), {mismatched} mismatched, {capped} capped"
    );
}

/// The tape a comparison parses a body into reads as the `serde_json::Value`
/// of the same body, on the model test's generated documents (escaped keys
/// and strings, duplicate keys, every spelling of a number).
#[test]
fn tape_reads_as_serde_json_value() {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(26);
    for case in 0..2000 {
        let doc = gen_value(&mut rng, 4, 0..10);
        let mut text = String::new();
        write_doc(&mut rng, &doc, &mut text);
        let want: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let tape = json::parse(text.as_bytes()).unwrap_or_else(|| panic!("case {case}: {text}"));
        let got = json::to_value(&tape, json::Doc::root(&tape));
        // Written out: `-0.0` and `0.0`, `1` and `1.0` stay apart.
        assert_eq!(got.to_string(), want.to_string(), "case {case}: {text}");
    }
}
