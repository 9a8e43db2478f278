//! JSON mode: a structural walk over both documents that lists the concrete JSON
//! pointers where they differ, honouring `ignore`, `only`, number tolerances and
//! unordered arrays.
//!
//! The bodies are parsed into tapes ([`Tape`], through serde_json's own
//! parser: the same numbers and the same errors): strings and keys point into
//! the bodies and every container is a range of one vector, so an agreeing
//! pair costs two parses of two allocations each, and one pass ([`walk`])
//! that allocates only its two stacks. The same walk reads
//! `serde_json::Value`s ([`diffs_at`], [`differing_pointers`]): one rule, two
//! kinds of document ([`Doc`]). It stops after [`MAX_DIFFS`] differences.
//!
//! Unordered arrays are matched greedily, which is quadratic in their length
//! (and multiplies with nesting), so the matching has a budget of
//! [`MAX_UNORDERED_WORK`] values visited per comparison. An array met after
//! the budget is spent is compared in order and the outcome says so: equal
//! in order is equal as a multiset, so a fallback can only turn a match into
//! a mismatch, never the reverse.

mod doc;
mod tape;
mod walk;

pub use doc::{Doc, View};
pub use tape::{Node, Tape};

use super::{Outcome, Verdict};
use crate::config::JsonCompare;
use crate::pointer::Pointer;
use walk::{Seg, Walk};

/// At most this many differing pointers are kept per comparison.
pub const MAX_DIFFS: usize = 64;

/// Values visited while matching unordered arrays, per comparison: about
/// what a shuffled array of 1,400 numbers needs, a few milliseconds.
pub const MAX_UNORDERED_WORK: u64 = 1_000_000;

/// Compares two bodies under `spec`; `noise` pointers are ignored like `spec.ignore`.
///
/// An incumbent body that is not JSON falls back to a byte comparison of the
/// bodies (the status code was already held to its class by the caller). A
/// candidate body that is not JSON when the incumbent's is: `mismatch` on `""`.
pub fn compare(
    spec: &JsonCompare,
    noise: &[Pointer],
    incumbent: &[u8],
    candidate: &[u8],
) -> Outcome {
    // Identical bytes parse to identical documents (or are equal as bytes).
    if incumbent == candidate {
        return Outcome::new(Verdict::Match);
    }
    let Some(inc) = parse(incumbent) else {
        return Outcome {
            note: Some("incumbent body is not JSON; compared as bytes".to_string()),
            ..Outcome::mismatch(vec![String::new()])
        };
    };
    let Some(cand) = parse(candidate) else {
        return Outcome {
            note: Some("candidate body is not JSON".to_string()),
            ..Outcome::mismatch(vec![String::new()])
        };
    };
    let walk = Walk::new(spec, noise);
    let (diffs, capped) = walk.diffs(&inc, &cand, Vec::with_capacity(16));
    if diffs.is_empty() {
        return Outcome::new(Verdict::Match);
    }
    let mut outcome = Outcome::mismatch(diffs);
    if let Some(at) = walk.ordered_from() {
        outcome.note = Some(format!(
            "unordered_arrays: matching took more than {MAX_UNORDERED_WORK} steps; \
             arrays from {at:?} on compared in order"
        ));
    } else if capped {
        outcome.note = Some(format!(
            "more than {MAX_DIFFS} differing pointers; list capped"
        ));
    }
    outcome
}

/// Every pointer where `a` and `b` differ: a plain structural diff with no
/// ignore, no tolerance and ordered arrays (sorted, at most [`MAX_DIFFS`]).
///
/// Used to learn noise from two answers of the incumbent to the same request.
pub fn differing_pointers<D: Doc>(a: &D, b: &D) -> Vec<String> {
    Walk::plain().diffs(a, b, Vec::new()).0
}

/// Parses a body into the tree [`compare`] walks: `None` when it is not JSON.
///
/// The body is checked to be UTF-8 once, whole, so that the parser need not
/// check each string again: the same bodies fail (a byte that is not UTF-8
/// is an error inside a string and outside one alike), in fewer instructions.
pub fn parse(body: &[u8]) -> Option<Tape<'_>> {
    let text = std::str::from_utf8(body).ok()?;
    Tape::parse(text).ok()
}

/// The differing pointers of two values found at `prefix` (a concrete JSON
/// pointer such as `/tool_calls/0/arguments`) under `spec`'s rules: its
/// `ignore`, `only`, tolerances and unordered arrays apply to the full
/// pointers (`/tool_calls/*/arguments/request_id`), which the result names.
/// For the llm mode's tool-call arguments.
pub fn diffs_at<D: Doc>(spec: &JsonCompare, prefix: &str, a: &D, b: &D) -> Vec<String> {
    let tokens: Vec<String> = prefix
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let path = tokens.iter().map(|t| Seg::Key(t)).collect();
    Walk::new(spec, &[]).diffs(a, b, path).0
}

/// A document's node as a `serde_json::Value` (the last of equal keys kept).
#[cfg(test)]
pub(crate) fn to_value<D: Doc>(doc: &D, node: &D::Node) -> serde_json::Value {
    use serde_json::Value as V;
    match doc.view(node) {
        View::Null => V::Null,
        View::Bool(b) => V::Bool(b),
        View::Number(n) => V::Number(n),
        View::Str(s) => V::String(s.to_string()),
        View::Array(items) => V::Array(items.iter().map(|n| to_value(doc, n)).collect()),
        View::Object => {
            let mut members = Vec::new();
            doc.members(node, &mut members);
            V::Object(
                members
                    .into_iter()
                    .map(|(k, n)| (k.to_string(), to_value(doc, n)))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differing_pointers_is_a_plain_diff() {
        let a = json!({"id": "x1", "score": 0.5, "tags": ["a", "b"], "only_a": 1});
        let b = json!({"id": "x2", "score": 0.5000001, "tags": ["a"], "only_b": {"k": 1}});
        assert_eq!(
            differing_pointers(&a, &b),
            ["/id", "/only_a", "/only_b", "/score", "/tags/1"]
        );
        assert!(differing_pointers(&a, &a).is_empty());
    }

    #[test]
    fn big_integers_do_not_merge_through_f64() {
        let a = json!({"n": 9_007_199_254_740_993_u64});
        let b = json!({"n": 9_007_199_254_740_992_u64});
        assert_eq!(differing_pointers(&a, &b), ["/n"]);
        assert!(differing_pointers(&json!(1), &json!(1.0)).is_empty());
        // The same through the tapes a comparison parses.
        let spec = JsonCompare::default();
        let (a, b) = (br#"{"n": 9007199254740993}"#, br#"{"n": 9007199254740992}"#);
        assert_eq!(compare(&spec, &[], a, b).diffs, ["/n"]);
        assert!(compare(&spec, &[], b"[1]", b"[1.0]").is_match());
        let big = br#"[18446744073709551615, -9223372036854775808]"#;
        let near = br#"[18446744073709551614, -9223372036854775807]"#;
        assert_eq!(compare(&spec, &[], big, near).diffs, ["/0", "/1"]);
    }
}
