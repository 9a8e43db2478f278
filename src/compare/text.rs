//! Text mode: similarity of generated text (LLM outputs), matched against a threshold.
//!
//! The text is the string at `field` in a JSON body (e.g.
//! `/choices/0/message/content`), or the whole body as UTF-8 (lossy).
//!
//! **Normalisation.** Lowercase (Unicode), ASCII punctuation removed, then the
//! text is split into tokens on Unicode whitespace (which collapses runs of it).
//!
//! **Similarity** in `[0, 1]` is the mean of two measures over the tokens:
//!
//! - *bag of words*: the Dice coefficient (token-multiset F1),
//!   `2·|A ∩ B| / (|A| + |B|)`, blind to order;
//! - *order*: `1 − d / max(|A|, |B|)` where `d` is the Levenshtein distance
//!   over tokens (insert, delete, substitute a whole word). To keep it bounded
//!   (`O(n·m)` time, `O(m)` memory) only the first [`MAX_EDIT_TOKENS`] tokens
//!   of each side enter it.
//!
//! So the same words in the same order score 1, the same words reordered keep
//! the full bag-of-words half and part of the order half, and unrelated texts
//! score near 0. Two empty texts score 1; one empty text scores 0.

use super::{Outcome, Verdict};
use crate::config::TextCompare;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;

/// Tokens per side that enter the edit distance.
pub const MAX_EDIT_TOKENS: usize = 2_000;

/// Scores the two bodies; `match` when the similarity reaches `spec.threshold`.
///
/// When the incumbent has no string at `field` there is nothing to hold the
/// candidate to: `skipped` with a note. When the candidate has none: `mismatch`
/// at `field` with a note.
pub fn compare(spec: &TextCompare, incumbent: &[u8], candidate: &[u8]) -> Outcome {
    let field = spec.field.as_ref().map_or("", |p| p.as_str());
    let inc = match extract(spec, incumbent) {
        Ok(text) => text,
        Err(why) => return Outcome::noted(Verdict::Skipped, format!("incumbent {why}")),
    };
    let cand = match extract(spec, candidate) {
        Ok(text) => text,
        Err(why) => {
            return Outcome {
                note: Some(format!("candidate {why}")),
                ..Outcome::mismatch(vec![field.to_string()])
            };
        }
    };
    let score = similarity(&inc, &cand);
    let mut outcome = if score >= spec.threshold {
        Outcome::new(Verdict::Match)
    } else {
        Outcome::mismatch(vec![field.to_string()])
    };
    outcome.score = Some(score);
    outcome
}

/// The text to score, or why there is none (completes "incumbent ..." / "candidate ...").
fn extract<'b>(spec: &TextCompare, body: &'b [u8]) -> Result<Cow<'b, str>, String> {
    let Some(field) = &spec.field else {
        return Ok(String::from_utf8_lossy(body));
    };
    let doc: Value = serde_json::from_slice(body).map_err(|_| "body is not JSON".to_string())?;
    match field.get(&doc) {
        Some(Value::String(s)) => Ok(Cow::Owned(s.clone())),
        _ => Err(format!("has no string at {field}")),
    }
}

/// Similarity of two texts in `[0, 1]`; see the module documentation.
pub fn similarity(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    let (na, nb) = (normalise(a), normalise(b));
    // Tokens become small integers, so both measures compare u32s, not strings.
    let mut vocabulary: HashMap<&str, u32> = HashMap::new();
    let mut intern = |t| {
        let next = u32::try_from(vocabulary.len()).unwrap_or(u32::MAX);
        *vocabulary.entry(t).or_insert(next)
    };
    let ta: Vec<u32> = na.split_whitespace().map(&mut intern).collect();
    let tb: Vec<u32> = nb.split_whitespace().map(&mut intern).collect();
    match (ta.is_empty(), tb.is_empty()) {
        (true, true) => return 1.0,
        (true, false) | (false, true) => return 0.0,
        (false, false) => {}
    }
    let bag = dice(&ta, &tb, vocabulary.len());
    let (ea, eb) = (
        &ta[..ta.len().min(MAX_EDIT_TOKENS)],
        &tb[..tb.len().min(MAX_EDIT_TOKENS)],
    );
    let order = 1.0 - edit_distance(ea, eb) as f64 / ea.len().max(eb.len()) as f64;
    (bag + order) / 2.0
}

/// Lowercase, ASCII punctuation removed; whitespace is left for the tokenizer.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| !c.is_ascii_punctuation()) {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Dice coefficient of two token multisets (ids below `vocabulary`).
fn dice(a: &[u32], b: &[u32], vocabulary: usize) -> f64 {
    let mut counts = vec![0u32; vocabulary];
    for &t in a {
        counts[t as usize] += 1;
    }
    let mut common = 0usize;
    for &t in b {
        let c = &mut counts[t as usize];
        if *c > 0 {
            *c -= 1;
            common += 1;
        }
    }
    2.0 * common as f64 / (a.len() + b.len()) as f64
}

/// Levenshtein distance over token ids, one DP row; a shared prefix and
/// suffix are stripped first (cheap, and most pairs share a lot).
fn edit_distance(a: &[u32], b: &[u32]) -> usize {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    if a.is_empty() || b.is_empty() {
        return a.len().max(b.len());
    }
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pointer::Pointer;

    fn spec(field: Option<&str>, threshold: f64) -> TextCompare {
        TextCompare {
            field: field.map(|f| Pointer::parse(f).unwrap()),
            threshold,
        }
    }

    #[test]
    fn identical_after_normalisation_scores_one() {
        assert_eq!(similarity("Hello, World!", "hello   world"), 1.0);
        assert_eq!(similarity("ÉCOLE\tà  Paris.", "école à\nparis"), 1.0);
        assert_eq!(similarity("", "  ... "), 1.0);
        assert_eq!(similarity("", "something"), 0.0);
    }

    #[test]
    fn reordered_paraphrase_scores_high_and_unrelated_low() {
        let a = "Paris is the capital of France.";
        let reordered = "The capital of France is Paris.";
        let unrelated = "Bananas grow in tropical climates year round.";
        let close = similarity(a, reordered);
        // All words shared (bag = 1), four of six in order: (1 + 1/3) / 2.
        assert!((close - 2.0 / 3.0).abs() < 1e-9, "{close}");
        assert!(similarity(a, unrelated) < 0.1);
        let one_word = similarity(a, "Paris is the capital city of France.");
        assert!(one_word > 0.85 && one_word < 1.0, "{one_word}");
    }

    #[test]
    fn edit_distance_counts_whole_tokens() {
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 2, 3]), 0);
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 9, 3]), 1);
        assert_eq!(edit_distance(&[1, 2, 3], &[]), 3);
        assert_eq!(edit_distance(&[1, 2, 3, 4], &[2, 3, 4, 1]), 2);
        assert_eq!(edit_distance(&[5, 6], &[7, 8, 9]), 3);
    }

    #[test]
    fn threshold_decides_and_score_is_reported() {
        let a = br#"{"choices":[{"message":{"content":"The answer is 42."}}]}"#;
        let b = br#"{"choices":[{"message":{"content":"the answer is 42"}}]}"#;
        let c = br#"{"choices":[{"message":{"content":"I do not know."}}]}"#;
        let s = spec(Some("/choices/0/message/content"), 0.8);
        let same = compare(&s, a, b);
        assert_eq!(same.verdict, Verdict::Match);
        assert_eq!(same.score, Some(1.0));
        let other = compare(&s, a, c);
        assert_eq!(other.verdict, Verdict::Mismatch);
        assert_eq!(other.diffs, ["/choices/0/message/content"]);
        assert!(other.score.unwrap() < 0.8);
        // The whole body when no field is set.
        let whole = compare(&spec(None, 0.99), b"Yes.", b"yes");
        assert_eq!(whole.verdict, Verdict::Match);
    }

    #[test]
    fn missing_field_is_noted() {
        let s = spec(Some("/text"), 0.5);
        let cand = compare(&s, br#"{"text":"hi"}"#, br#"{"text":3}"#);
        assert_eq!(cand.verdict, Verdict::Mismatch);
        assert_eq!(
            cand.note.as_deref(),
            Some("candidate has no string at /text")
        );
        let cand = compare(&s, br#"{"text":"hi"}"#, b"plain hi");
        assert_eq!(cand.note.as_deref(), Some("candidate body is not JSON"));
        let inc = compare(&s, br#"{}"#, br#"{"text":"hi"}"#);
        assert_eq!(inc.verdict, Verdict::Skipped);
        assert_eq!(
            inc.note.as_deref(),
            Some("incumbent has no string at /text")
        );
    }
}
