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
