//! JSON mode: a structural walk over both documents that lists the concrete JSON
//! pointers where they differ, honouring `ignore`, `only`, number tolerances and
//! unordered arrays.
//!
//! The walk keeps the current path as a stack of borrowed segments and only
//! renders a pointer string when it records a difference, so an agreeing pair
//! costs the two parses and one pass without further allocation. It stops after
//! [`MAX_DIFFS`] differences.
//!
//! Unordered arrays are matched greedily, which is quadratic in their length
//! (and multiplies with nesting), so the matching has a budget of
//! [`MAX_UNORDERED_WORK`] values visited per comparison. An array met after
//! the budget is spent is compared in order and the outcome says so: equal
//! in order is equal as a multiset, so a fallback can only turn a match into
//! a mismatch, never the reverse.

use super::{Outcome, Verdict};
use crate::config::JsonCompare;
use crate::pointer::{self, Pointer, Token};
use serde_json::{Number, Value};
use std::cell::Cell;
use std::fmt::Write as _;
use std::ops::ControlFlow;

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
    let Ok(inc) = serde_json::from_slice::<Value>(incumbent) else {
        return Outcome {
            note: Some("incumbent body is not JSON; compared as bytes".to_string()),
            ..Outcome::mismatch(vec![String::new()])
        };
    };
    let Ok(cand) = serde_json::from_slice::<Value>(candidate) else {
        return Outcome {
            note: Some("candidate body is not JSON".to_string()),
            ..Outcome::mismatch(vec![String::new()])
        };
    };
    let walk = Walk {
        ignore: &spec.ignore,
        noise,
        only: &spec.only,
        tolerance: spec.tolerance,
        abs_tolerance: spec.abs_tolerance,
        unordered_arrays: spec.unordered_arrays,
        work: Cell::new(MAX_UNORDERED_WORK),
        ordered_from: Cell::new(None),
    };
    let (diffs, capped) = walk.diffs(&inc, &cand);
    if diffs.is_empty() {
        return Outcome::new(Verdict::Match);
    }
    let mut outcome = Outcome::mismatch(diffs);
    if let Some(at) = walk.ordered_from.take() {
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
pub fn differing_pointers(a: &Value, b: &Value) -> Vec<String> {
    Walk {
        ignore: &[],
        noise: &[],
        only: &[],
        tolerance: 0.0,
        abs_tolerance: 0.0,
        unordered_arrays: false,
        work: Cell::new(0),
        ordered_from: Cell::new(None),
    }
    .diffs(a, b)
    .0
}

/// The differing pointers of two values found at `prefix` (a concrete JSON
/// pointer such as `/tool_calls/0/arguments`) under `spec`'s rules: its
/// `ignore`, `only`, tolerances and unordered arrays apply to the full
/// pointers (`/tool_calls/*/arguments/request_id`), which the result names.
/// For the llm mode's tool-call arguments.
pub fn diffs_at(spec: &JsonCompare, prefix: &str, a: &Value, b: &Value) -> Vec<String> {
    let tokens: Vec<String> = prefix
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let walk = Walk {
        ignore: &spec.ignore,
        noise: &[],
        only: &spec.only,
        tolerance: spec.tolerance,
        abs_tolerance: spec.abs_tolerance,
        unordered_arrays: spec.unordered_arrays,
        work: Cell::new(MAX_UNORDERED_WORK),
        ordered_from: Cell::new(None),
    };
    let mut path: Vec<Seg<'_>> = tokens.iter().map(|t| Seg::Key(t)).collect();
    let mut sink = Sink {
        probe: false,
        diffs: Vec::new(),
        capped: false,
    };
    // With `only`, the prefix itself may be outside every listed pointer.
    let covered = spec.only.is_empty() || spec.only.iter().any(|p| covers(p, &path));
    // Break only means "stop collecting"; what was collected stands.
    let _stopped = walk.node(a, b, &mut path, covered, &mut sink);
    let mut diffs = sink.diffs;
    diffs.sort_unstable();
    diffs.dedup();
    diffs
}

/// One step of a concrete path: an object key (borrowed from a document) or an
/// array index (kept as a number, so no string is built per element).
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The comparison rules, borrowed from the config for one walk.
struct Walk<'s> {
    ignore: &'s [Pointer],
    noise: &'s [Pointer],
    only: &'s [Pointer],
    tolerance: f64,
    abs_tolerance: f64,
    unordered_arrays: bool,
    /// What is left of [`MAX_UNORDERED_WORK`]: one per value a probe visits.
    work: Cell<u64>,
    /// The first array compared in order because `work` ran out.
    ordered_from: Cell<Option<String>>,
}

/// Where differences go: collected (up to [`MAX_DIFFS`]), or, for a probe,
/// only noticed (unordered-array matching wants a yes or no).
struct Sink {
    probe: bool,
    diffs: Vec<String>,
    capped: bool,
}

impl Sink {
    fn probe() -> Sink {
        Sink {
            probe: true,
            diffs: Vec::new(),
            capped: false,
        }
    }

    /// Records a difference at `path`; `Break` when the walk should stop.
    fn record(&mut self, path: &[Seg<'_>]) -> ControlFlow<()> {
        if self.probe {
            return ControlFlow::Break(());
        }
        if self.diffs.len() == MAX_DIFFS {
            self.capped = true;
            return ControlFlow::Break(());
        }
        self.diffs.push(render(path));
        ControlFlow::Continue(())
    }
}

// === impl Walk ===

impl Walk<'_> {
    /// The sorted, deduplicated differing pointers and whether the list was capped.
    fn diffs(&self, a: &Value, b: &Value) -> (Vec<String>, bool) {
        let mut sink = Sink {
            probe: false,
            diffs: Vec::new(),
            capped: false,
        };
        let mut path = Vec::with_capacity(16);
        // Break only means "stop collecting"; what was collected stands.
        let _stopped = self.node(a, b, &mut path, self.only.is_empty(), &mut sink);
        let Sink {
            mut diffs, capped, ..
        } = sink;
        diffs.sort_unstable();
        diffs.dedup();
        (diffs, capped)
    }

    /// Whether `path` takes part in the comparison: `None` when it is ignored
    /// (or noise) or outside every `only` pointer; otherwise whether an `only`
    /// pointer covers it (then its whole subtree is in, and `only` need not be
    /// checked again below it).
    fn scope(&self, path: &[Seg<'_>], covered: bool) -> Option<bool> {
        if self
            .ignore
            .iter()
            .chain(self.noise)
            .any(|p| covers(p, path))
        {
            return None;
        }
        if covered || self.only.iter().any(|p| covers(p, path)) {
            return Some(true);
        }
        self.only.iter().any(|p| touches(p, path)).then_some(false)
    }

    fn node<'a>(
        &self,
        a: &'a Value,
        b: &'a Value,
        path: &mut Vec<Seg<'a>>,
        covered: bool,
        sink: &mut Sink,
    ) -> ControlFlow<()> {
        let Some(covered) = self.scope(path, covered) else {
            return ControlFlow::Continue(());
        };
        if sink.probe {
            self.work.set(self.work.get().saturating_sub(1));
        }
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for (key, va) in x {
                    path.push(Seg::Key(key));
                    let flow = match y.get(key) {
                        Some(vb) => self.node(va, vb, path, covered, sink),
                        None => self.missing(path, covered, sink),
                    };
                    path.pop();
                    flow?;
                }
                for key in y.keys().filter(|k| !x.contains_key(*k)) {
                    path.push(Seg::Key(key));
                    let flow = self.missing(path, covered, sink);
                    path.pop();
                    flow?;
                }
                ControlFlow::Continue(())
            }
            (Value::Array(x), Value::Array(y)) if self.unordered_arrays => {
                match self.unordered(x, y, path, covered, sink) {
                    Some(flow) => flow,
                    None => self.ordered(x, y, path, covered, sink),
                }
            }
            (Value::Array(x), Value::Array(y)) => self.ordered(x, y, path, covered, sink),
            (Value::Number(x), Value::Number(y)) if self.numbers_equal(x, y) => {
                ControlFlow::Continue(())
            }
            // Type differences and different scalars.
            _ if a != b => sink.record(path),
            _ => ControlFlow::Continue(()),
        }
    }

    /// A value present on one side only, at `path`.
    fn missing(&self, path: &[Seg<'_>], covered: bool, sink: &mut Sink) -> ControlFlow<()> {
        match self.scope(path, covered) {
            Some(_) => sink.record(path),
            None => ControlFlow::Continue(()),
        }
    }

    /// Arrays element by element.
    fn ordered<'a>(
        &self,
        x: &'a [Value],
        y: &'a [Value],
        path: &mut Vec<Seg<'a>>,
        covered: bool,
        sink: &mut Sink,
    ) -> ControlFlow<()> {
        for i in 0..x.len().max(y.len()) {
            path.push(Seg::Index(i));
            let flow = match (x.get(i), y.get(i)) {
                (Some(va), Some(vb)) => self.node(va, vb, path, covered, sink),
                _ => self.missing(path, covered, sink),
            };
            path.pop();
            flow?;
        }
        ControlFlow::Continue(())
    }

    /// Arrays as multisets: each incumbent element is matched to a distinct
    /// candidate element equal under the same rules (greedily, trying the same
    /// index first). Different lengths or any unmatched element is one
    /// difference at the array's pointer. `None` when the work budget runs
    /// out (before or during): the caller compares the array in order.
    fn unordered<'a>(
        &self,
        x: &'a [Value],
        y: &'a [Value],
        path: &mut Vec<Seg<'a>>,
        covered: bool,
        sink: &mut Sink,
    ) -> Option<ControlFlow<()>> {
        if x.len() != y.len() {
            return Some(sink.record(path));
        }
        let spent = |walk: &Self, path: &[Seg<'_>]| {
            if walk.work.get() > 0 {
                return false;
            }
            let first = walk.ordered_from.take();
            walk.ordered_from
                .set(Some(first.unwrap_or_else(|| render(path))));
            true
        };
        if spent(self, path) {
            return None;
        }
        let mut used = vec![false; y.len()];
        for (i, va) in x.iter().enumerate() {
            // Elements are judged at the incumbent's index, so `/items/*/ts` applies.
            path.push(Seg::Index(i));
            let mut equal = |j: usize| {
                !used[j]
                    && self
                        .node(va, &y[j], path, covered, &mut Sink::probe())
                        .is_continue()
            };
            let found = if equal(i) {
                Some(i)
            } else {
                (0..y.len()).find(|&j| j != i && equal(j))
            };
            path.pop();
            // An answer found on a spent budget may be wrong (a nested array
            // fell back to order): start over, in order.
            if spent(self, path) {
                return None;
            }
            match found {
                Some(j) => used[j] = true,
                None => return Some(sink.record(path)),
            }
        }
        Some(ControlFlow::Continue(()))
    }

    /// Equal when `|a-b| <= abs_tolerance` or `|a-b| <= tolerance * max(|a|,|b|)`.
    /// `1` and `1.0` are equal.
    fn numbers_equal(&self, x: &Number, y: &Number) -> bool {
        if x == y {
            return true;
        }
        // Two different integers stay different without a tolerance, even
        // above 2^53 where their f64 images could coincide.
        if self.tolerance == 0.0 && self.abs_tolerance == 0.0 && !x.is_f64() && !y.is_f64() {
            return false;
        }
        let (Some(a), Some(b)) = (x.as_f64(), y.as_f64()) else {
            return false;
        };
        let d = (a - b).abs();
        d <= self.abs_tolerance || d <= self.tolerance * a.abs().max(b.abs())
    }
}

// === path helpers ===

/// The JSON pointer text of a concrete path.
fn render(path: &[Seg<'_>]) -> String {
    let mut out = String::with_capacity(path.len() * 8);
    for seg in path {
        out.push('/');
        match seg {
            Seg::Key(k) => out.push_str(&pointer::escape(k)),
            Seg::Index(i) => {
                // Writing to a String cannot fail.
                let _infallible = write!(out, "{i}");
            }
        }
    }
    out
}

/// [`Pointer::covers`] over a path whose indices are numbers.
fn covers(p: &Pointer, path: &[Seg<'_>]) -> bool {
    p.tokens().len() <= path.len() && touches(p, path)
}

/// [`Pointer::touches`] over a path whose indices are numbers.
fn touches(p: &Pointer, path: &[Seg<'_>]) -> bool {
    p.tokens().iter().zip(path).all(|(t, s)| match (t, s) {
        (Token::Any, _) => true,
        (Token::Key(k), Seg::Key(s)) => k == s,
        (Token::Key(k), Seg::Index(i)) => is_index(k, *i),
    })
}

/// Whether the pointer token `k` is the array index `i` (RFC 6901: digits, no
/// leading zero).
fn is_index(k: &str, i: usize) -> bool {
    !k.is_empty()
        && k.bytes().all(|b| b.is_ascii_digit())
        && (k.len() == 1 || !k.starts_with('0'))
        && k.parse::<usize>() == Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn render_escapes_keys_and_writes_indices() {
        let path = [Seg::Key("a/b"), Seg::Index(12), Seg::Key("m~n")];
        assert_eq!(render(&path), "/a~1b/12/m~0n");
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn index_tokens_are_canonical() {
        assert!(is_index("0", 0));
        assert!(is_index("12", 12));
        assert!(!is_index("012", 12));
        assert!(!is_index("+1", 1));
        assert!(!is_index("", 0));
        let p = Pointer::parse("/items/1/ts").unwrap();
        assert!(covers(
            &p,
            &[Seg::Key("items"), Seg::Index(1), Seg::Key("ts")]
        ));
        assert!(!covers(
            &p,
            &[Seg::Key("items"), Seg::Index(2), Seg::Key("ts")]
        ));
        assert!(touches(&p, &[Seg::Key("items")]));
    }

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
    }
}
