//! Which fields of one exchange its route's compare settings let through:
//! numbers within the tolerance, ignored pointers, fields outside `only`.
//!
//! `show` marks them beside the answers, so that a tolerance never hides a
//! gap unseen (a 5 % tolerance on a price of 6,000 lets 299 through). The
//! rule is the comparison's own ([`crate::compare::json::diffs_at`]), never
//! a second version of it.

use crate::config::JsonCompare;
use serde_json::Value;
use std::collections::BTreeMap;

/// Why a field did not count against the candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The two numbers differ, within the tolerance.
    Tolerated,
    /// Under a `compare.ignore` pointer.
    Ignored,
    /// Outside every `compare.only` pointer.
    NotCompared,
}

/// The marks of one exchange, by JSON pointer.
#[derive(Debug, Default)]
pub struct Marks {
    by_pointer: BTreeMap<String, Mark>,
    /// `±5%`, `±0.05` or `±5% or ±0.05`.
    tolerance: String,
}

impl Marks {
    /// Marks both answers' fields under `spec`; `diffs` are the row's
    /// differing pointers (a field that counted is never marked tolerated).
    pub fn of(
        spec: &JsonCompare,
        incumbent: Option<&[u8]>,
        candidate: Option<&[u8]>,
        diffs: &[String],
    ) -> Marks {
        let parse = |b: Option<&[u8]>| b.and_then(|b| serde_json::from_slice::<Value>(b).ok());
        let (Some(a), Some(b)) = (parse(incumbent), parse(candidate)) else {
            return Marks::default();
        };
        let mut pointers = Vec::new();
        walk(&a, String::new(), &mut pointers);
        walk(&b, String::new(), &mut pointers);
        pointers.sort();
        pointers.dedup();
        let mut by_pointer = BTreeMap::new();
        for p in &pointers {
            let tokens = tokens(p);
            let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
            let parent = &tokens[..tokens.len().saturating_sub(1)];
            let ignored = |path: &[&str]| spec.ignore.iter().any(|i| i.covers(path));
            let outside =
                |path: &[&str]| !spec.only.is_empty() && !spec.only.iter().any(|o| o.touches(path));
            // Only the topmost field of an ignored or left-out subtree is marked.
            if ignored(&tokens) {
                if tokens.is_empty() || !ignored(parent) {
                    by_pointer.insert(p.clone(), Mark::Ignored);
                }
                continue;
            }
            if outside(&tokens) {
                if tokens.is_empty() || !outside(parent) {
                    by_pointer.insert(p.clone(), Mark::NotCompared);
                }
                continue;
            }
            let (Some(x), Some(y)) = (a.pointer(p), b.pointer(p)) else {
                continue;
            };
            let counted = diffs
                .iter()
                .any(|d| d == p || p.starts_with(&format!("{d}/")));
            if x.is_number()
                && y.is_number()
                && x != y
                && !counted
                && crate::compare::json::diffs_at(spec, p, x, y).is_empty()
            {
                by_pointer.insert(p.clone(), Mark::Tolerated);
            }
        }
        Marks {
            by_pointer,
            tolerance: tolerance(spec),
        }
    }

    /// The label shown beside a field's line, if it has a mark.
    pub fn label(&self, pointer: &str) -> Option<String> {
        self.by_pointer.get(pointer).map(|m| self.describe(*m))
    }

    fn describe(&self, mark: Mark) -> String {
        match mark {
            Mark::Tolerated => format!("tolerated ({})", self.tolerance),
            Mark::Ignored => "ignored".to_string(),
            Mark::NotCompared => "not compared (outside `only`)".to_string(),
        }
    }

    /// One line per kind of mark: `tolerated (±5%): /total, /tax`.
    pub fn summary(&self) -> Vec<String> {
        [Mark::Tolerated, Mark::Ignored, Mark::NotCompared]
            .into_iter()
            .filter_map(|mark| {
                let fields: Vec<&str> = (self.by_pointer.iter())
                    .filter(|(_, m)| **m == mark)
                    .map(|(p, _)| {
                        if p.is_empty() {
                            "(whole body)"
                        } else {
                            p.as_str()
                        }
                    })
                    .collect();
                (!fields.is_empty())
                    .then(|| format!("{}: {}", self.describe(mark), fields.join(", ")))
            })
            .collect()
    }
}

/// `±5%`, `±0.05`, or both.
fn tolerance(spec: &JsonCompare) -> String {
    let number = |v: f64| {
        let rounded = (v * 1e6).round() / 1e6;
        format!("{rounded}")
    };
    match (spec.tolerance > 0.0, spec.abs_tolerance > 0.0) {
        (true, true) => format!(
            "±{}% or ±{}",
            number(spec.tolerance * 100.0),
            number(spec.abs_tolerance)
        ),
        (false, true) => format!("±{}", number(spec.abs_tolerance)),
        _ => format!("±{}%", number(spec.tolerance * 100.0)),
    }
}

/// Every pointer in `v`, containers included.
fn walk(v: &Value, ptr: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                walk(v, format!("{ptr}/{}", crate::pointer::escape(k)), out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                walk(v, format!("{ptr}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(ptr);
}

/// A concrete pointer's unescaped tokens.
fn tokens(ptr: &str) -> Vec<String> {
    ptr.split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pointer::Pointer;

    #[test]
    fn tolerated_ignored_and_left_out_fields_are_marked() {
        let spec = JsonCompare {
            ignore: vec![Pointer::parse("/meta").unwrap()],
            tolerance: 0.05,
            ..JsonCompare::default()
        };
        let a = br#"{"total": 6000, "discount": 100, "meta": {"id": 1}, "n": 1}"#;
        let b = br#"{"total": 6299, "discount": 50, "meta": {"id": 2}, "n": 1}"#;
        let marks = Marks::of(&spec, Some(a), Some(b), &["/discount".into()]);
        assert_eq!(marks.label("/total").as_deref(), Some("tolerated (±5%)"));
        assert_eq!(marks.label("/meta").as_deref(), Some("ignored"));
        assert_eq!(marks.label("/meta/id"), None, "only the topmost is marked");
        assert_eq!(marks.label("/discount"), None);
        assert_eq!(marks.label("/n"), None);
        assert_eq!(
            marks.summary(),
            ["tolerated (±5%): /total", "ignored: /meta"]
        );
        // Beyond the tolerance a number is not tolerated (it counted).
        let c = br#"{"total": 7000}"#;
        let marks = Marks::of(&spec, Some(a), Some(c), &[]);
        assert_eq!(marks.label("/total"), None);

        let only = JsonCompare {
            only: vec![Pointer::parse("/total").unwrap()],
            abs_tolerance: 0.5,
            ..JsonCompare::default()
        };
        let d = br#"{"total": 6000.25, "discount": 100, "meta": {"id": 1}, "n": 1}"#;
        let marks = Marks::of(&only, Some(a), Some(d), &[]);
        assert_eq!(marks.label("/total").as_deref(), Some("tolerated (±0.5)"));
        assert_eq!(
            marks.label("/meta").as_deref(),
            Some("not compared (outside `only`)")
        );
        assert_eq!(marks.label("/meta/id"), None);
        assert!(
            Marks::of(&spec, Some(b"not json"), Some(b), &[])
                .summary()
                .is_empty()
        );
    }
}
