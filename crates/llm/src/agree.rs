//! Agreement of two completions' tool calls (names in order, arguments through
//! a pluggable comparison), plus the exact text check.
//!
//! Text agreement beyond [`exact_text`] (similarity, embedding, judge) is the
//! caller's: it reads [`Completion::text`] of both sides.
//!
//! The finish reason is compared on the common [`Finish`](crate::Finish)
//! vocabulary (so `stop` and `end_turn` agree) and a difference is reported as
//! `/finish_reason` in [`ToolAgreement::informational`], not as a mismatch: a
//! model that stops for tools where the other answers in text already differs
//! in `/tool_calls`, one cut by `length` differs in its text, and providers
//! disagree on the reason for the same outcome (Responses says `completed`
//! for both text and tool calls).

use crate::completion::Completion;
use serde_json::Value;

/// At most this many differing pointers are listed by [`structural_diff`].
pub const MAX_DIFFS: usize = 64;

/// The outcome of comparing two completions' tool calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolAgreement {
    /// Pointers that make the pair disagree: `/tool_calls` (different
    /// count), `/tool_calls/N/name`, or pointers under
    /// `/tool_calls/N/arguments` from the argument comparison.
    pub diffs: Vec<String>,
    /// Pointers that differ but do not decide: `/finish_reason`.
    pub informational: Vec<String>,
}

impl ToolAgreement {
    /// The tool calls agree (informational differences aside).
    pub fn agrees(&self) -> bool {
        self.diffs.is_empty()
    }
}

/// Compares tool calls in order. A different count is `/tool_calls` (the
/// common prefix is still compared); a different name at position `N` is
/// `/tool_calls/N/name` (its arguments are then not compared); equal names
/// have their arguments compared by `args_equal(prefix, incumbent,
/// candidate)`, which returns the differing pointers (each starting with
/// `prefix`, e.g. `/tool_calls/0/arguments/city`) so the json mode's
/// ignore/tolerance rules can apply. [`structural_diff`] is a plain one.
pub fn agree(
    incumbent: &Completion,
    candidate: &Completion,
    args_equal: &dyn Fn(&str, &Value, &Value) -> Vec<String>,
) -> ToolAgreement {
    let mut out = ToolAgreement::default();
    let (a, b) = (&incumbent.tool_calls, &candidate.tool_calls);
    if a.len() != b.len() {
        out.diffs.push("/tool_calls".to_string());
    }
    for (n, (x, y)) in a.iter().zip(b).enumerate() {
        if x.name != y.name {
            out.diffs.push(format!("/tool_calls/{n}/name"));
            continue;
        }
        let prefix = format!("/tool_calls/{n}/arguments");
        out.diffs
            .extend(args_equal(&prefix, &x.arguments, &y.arguments));
    }
    if incumbent.finish() != candidate.finish() {
        out.informational.push("/finish_reason".to_string());
    }
    out
}

/// Whether the two texts are byte for byte equal.
pub fn exact_text(incumbent: &Completion, candidate: &Completion) -> bool {
    incumbent.text == candidate.text
}

/// A plain structural comparison for [`agree`]: every pointer (under
/// `prefix`) where `a` and `b` differ, objects by key, arrays by position,
/// numbers by value (`1` equals `1.0`); at most [`MAX_DIFFS`].
pub fn structural_diff(prefix: &str, a: &Value, b: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = prefix.to_string();
    walk(&mut path, a, b, &mut out);
    out
}

fn walk(path: &mut String, a: &Value, b: &Value, out: &mut Vec<String>) {
    if out.len() >= MAX_DIFFS {
        return;
    }
    let len = path.len();
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (key, xv) in x {
                push_key(path, key);
                match y.get(key) {
                    Some(yv) => walk(path, xv, yv, out),
                    None => record(path, out),
                }
                path.truncate(len);
            }
            for key in y.keys().filter(|k| !x.contains_key(*k)) {
                push_key(path, key);
                record(path, out);
                path.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for n in 0..x.len().max(y.len()) {
                path.push('/');
                path.push_str(&n.to_string());
                match (x.get(n), y.get(n)) {
                    (Some(xv), Some(yv)) => walk(path, xv, yv, out),
                    _ => record(path, out),
                }
                path.truncate(len);
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let same = x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q);
            if !same {
                record(path, out);
            }
        }
        _ => {
            if a != b {
                record(path, out);
            }
        }
    }
}

fn record(path: &str, out: &mut Vec<String>) {
    if out.len() < MAX_DIFFS {
        out.push(path.to_string());
    }
}

/// Appends `/key`, escaped per RFC 6901 (`~` as `~0`, `/` as `~1`).
fn push_key(path: &mut String, key: &str) {
    path.push('/');
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}
