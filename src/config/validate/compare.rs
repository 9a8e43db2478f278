//! Checks a route's `compare` table: picks the mode and hands each to its
//! checker ([`super::policy`] for `json` and `judge`, [`super::llm`] for
//! `llm`). Each key that belongs to another compare mode is an issue, never
//! silently ignored.

use super::Checker;
use super::policy::{json_compare, judge_compare};
use crate::config::file::{CompareFile, ModeFile};
use crate::config::{Compare, TextCompare};
use toml::Spanned;

const TEXT_THRESHOLD: f64 = 0.8;

pub(super) fn compare(c: &mut Checker<'_>, f: &CompareFile) -> Compare {
    let mode = *f.mode.get_ref();
    reject_foreign_keys(c, f, mode);
    match mode {
        ModeFile::Exact => Compare::Exact,
        ModeFile::Json => Compare::Json(json_compare(c, f)),
        ModeFile::Text => Compare::Text(TextCompare {
            field: (f.field.as_ref()).and_then(|p| c.pointer("compare.field", p)),
            threshold: f
                .threshold
                .as_ref()
                .map_or(TEXT_THRESHOLD, |t| c.fraction("compare.threshold", t)),
        }),
        ModeFile::Judge => Compare::Judge(judge_compare(c, f)),
        ModeFile::Llm => Compare::Llm(Box::new(super::llm::compare(c, f))),
    }
}

/// A mode-specific key: its name, the modes it belongs to, where it was given.
type Owned<'a> = (&'a str, &'a [ModeFile], Option<std::ops::Range<usize>>);

/// Reports each mode-specific key given with another mode, at the key's value.
fn reject_foreign_keys(c: &mut Checker<'_>, f: &CompareFile, mode: ModeFile) {
    use ModeFile::{Json, Judge, Llm, Text};
    let keys: [Owned<'_>; 15] = [
        ("ignore", &[Json, Llm], f.ignore.as_ref().map(Spanned::span)),
        ("only", &[Json, Llm], f.only.as_ref().map(Spanned::span)),
        (
            "tolerance",
            &[Json, Llm],
            f.tolerance.as_ref().map(Spanned::span),
        ),
        (
            "abs_tolerance",
            &[Json, Llm],
            f.abs_tolerance.as_ref().map(Spanned::span),
        ),
        (
            "unordered_arrays",
            &[Json, Llm],
            f.unordered_arrays.as_ref().map(Spanned::span),
        ),
        ("field", &[Text], f.field.as_ref().map(Spanned::span)),
        (
            "threshold",
            &[Text, Llm],
            f.threshold.as_ref().map(Spanned::span),
        ),
        ("url", &[Judge, Llm], f.url.as_ref().map(Spanned::span)),
        (
            "judge_timeout",
            &[Judge, Llm],
            f.judge_timeout.as_ref().map(Spanned::span),
        ),
        (
            "judge_max_in_flight",
            &[Judge, Llm],
            f.judge_max_in_flight.as_ref().map(Spanned::span),
        ),
        ("noise", &[Json], f.noise.as_ref().map(Spanned::span)),
        ("protocol", &[Llm], f.protocol.as_ref().map(Spanned::span)),
        ("text", &[Llm], f.text.as_ref().map(Spanned::span)),
        ("bands", &[Llm], f.bands.as_ref().map(Spanned::span)),
        ("embedding", &[Llm], f.embedding.as_ref().map(Spanned::span)),
    ];
    for (key, owners, span) in keys {
        let Some(span) = span else { continue };
        if !owners.contains(&mode) {
            let names: Vec<String> = owners
                .iter()
                .map(|o| format!("\"{}\"", o.as_str()))
                .collect();
            let msg = format!(
                "`{key}` belongs to mode {}, but mode is \"{}\"",
                names.join(" or "),
                mode.as_str()
            );
            c.issue(span, format!("compare.{key}"), msg);
        }
    }
}
