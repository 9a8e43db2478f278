//! llm mode (docs/src/guide/llm.md): two decoded completions held against each other.
//! The tool calls first (same names in order, arguments equal under the json
//! mode's `ignore`/`only`/tolerance rules), then the text by the route's
//! stages (`compare.text`), each deciding outside its band.
//!
//! Pure: decoding happens in the settle step (from the captured bytes, off the
//! client's path), and so do the stages that call out (embedding, judge);
//! this module holds the rules that turn completions and scores into verdicts.
//! Bad input is a verdict with a note, never a panic.

use super::{Outcome, Verdict, json, text};
use crate::config::{Band, LlmCompare, TextStage};
use understudy_llm::{Completion, DecodeError};

/// The pointer of a text difference.
pub const TEXT_POINTER: &str = "/text";

/// What the completions alone decide.
#[derive(Debug, PartialEq)]
pub enum Step<'a> {
    /// Decided without the text stages: a side that could not be decoded,
    /// tool calls that differ, or two empty texts.
    Done(Outcome),
    /// The tool calls agree: the texts go to the stages.
    Texts {
        incumbent: &'a str,
        candidate: &'a str,
    },
}

/// Holds the tool calls against each other and says whether the texts still
/// need the stages.
///
/// An incumbent answer that cannot be decoded gives nothing to hold the
/// candidate to (`skipped`; `incumbent_error` for an error event in its
/// stream). A candidate answer that cannot be decoded is a `mismatch` on
/// `""` (`candidate_error` for an error event).
pub fn structure<'a>(
    spec: &LlmCompare,
    incumbent: Result<&'a Completion, &DecodeError>,
    candidate: Result<&'a Completion, &DecodeError>,
) -> Step<'a> {
    let inc = match incumbent {
        Ok(c) => c,
        Err(DecodeError::Upstream(m)) => {
            return Step::Done(Outcome::noted(
                Verdict::IncumbentError,
                format!("incumbent stream error: {m}"),
            ));
        }
        Err(e) => return Step::Done(Outcome::noted(Verdict::Skipped, format!("incumbent {e}"))),
    };
    let cand = match candidate {
        Ok(c) => c,
        Err(DecodeError::Upstream(m)) => {
            return Step::Done(Outcome::noted(
                Verdict::CandidateError,
                format!("candidate stream error: {m}"),
            ));
        }
        Err(e) => {
            return Step::Done(Outcome {
                note: Some(format!("candidate {e}")),
                ..Outcome::mismatch(vec![String::new()])
            });
        }
    };
    let tools = understudy_llm::agree(inc, cand, &|prefix, a, b| {
        json::diffs_at(&spec.arguments, prefix, a, b)
    });
    if !tools.agrees() {
        let mut diffs = tools.diffs;
        diffs.sort_unstable();
        return Step::Done(Outcome::mismatch(diffs));
    }
    if inc.text.is_empty() && cand.text.is_empty() {
        return Step::Done(Outcome::new(Verdict::Match));
    }
    Step::Texts {
        incumbent: &inc.text,
        candidate: &cand.text,
    }
}

/// What one stage says about a pair of texts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Call {
    Agree,
    Disagree,
    /// Inside the stage's band: the next stage decides.
    Undecided,
}

/// A score against a stage's band, or, for the last stage, against its
/// threshold alone (it must decide).
pub fn by_score(score: f64, band: Band, threshold: f64, last: bool) -> Call {
    if last {
        return if score >= threshold {
            Call::Agree
        } else {
            Call::Disagree
        };
    }
    if score >= band.high {
        Call::Agree
    } else if score < band.low {
        Call::Disagree
    } else {
        Call::Undecided
    }
}

/// `exact`: equal texts agree; unequal ones disagree only when it is the
/// last stage (in a cascade a later stage may still find them equivalent).
pub fn exact(a: &str, b: &str, last: bool) -> Call {
    match (a == b, last) {
        (true, _) => Call::Agree,
        (false, true) => Call::Disagree,
        (false, false) => Call::Undecided,
    }
}

/// `similarity`: the text mode's score, with its call.
pub fn similarity(spec: &LlmCompare, a: &str, b: &str, last: bool) -> (f64, Call) {
    let score = text::similarity(a, b);
    (
        score,
        by_score(score, spec.bands.similarity, spec.threshold, last),
    )
}

/// The outcome of a stage that decided.
pub fn decided(stage: TextStage, agree: bool, score: Option<f64>) -> Outcome {
    let mut out = if agree {
        Outcome::new(Verdict::Match)
    } else {
        Outcome::mismatch(vec![TEXT_POINTER.to_string()])
    };
    out.score = score;
    out.decided_by = Some(stage);
    out
}

/// The verdict from two decoded answers without calling out: the stages
/// that need a call (`embedding`, `judge`) make the pair `skipped` when they
/// are reached. For `replay`, which has no judge or embeddings client.
pub fn decide_offline(
    spec: &LlmCompare,
    incumbent: Result<&Completion, &DecodeError>,
    candidate: Result<&Completion, &DecodeError>,
) -> Outcome {
    let (a, b) = match structure(spec, incumbent, candidate) {
        Step::Done(outcome) => return outcome,
        Step::Texts {
            incumbent,
            candidate,
        } => (incumbent, candidate),
    };
    let stages = spec.text.len();
    for (i, &stage) in spec.text.iter().enumerate() {
        let last = i + 1 == stages;
        let (score, call) = match stage {
            TextStage::Exact => (None, exact(a, b, last)),
            TextStage::Similarity => {
                let (score, call) = similarity(spec, a, b, last);
                (Some(score), call)
            }
            TextStage::Embedding | TextStage::Judge => {
                let note = format!("text stage {} is not run offline", stage.as_str());
                return Outcome::noted(Verdict::Skipped, note);
            }
        };
        match call {
            Call::Agree => return decided(stage, true, score),
            Call::Disagree => return decided(stage, false, score),
            Call::Undecided => {}
        }
    }
    Outcome::noted(Verdict::Skipped, "no text stage decided")
}

/// Cosine similarity of two vectors; `None` when they cannot be compared
/// (different lengths, empty, zero or not finite).
pub fn cosine(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let (mut dot, mut na, mut nb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let c = dot / (na.sqrt() * nb.sqrt());
    c.is_finite().then(|| c.clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Bands, JsonCompare, Protocol};
    use crate::pointer::Pointer;
    use serde_json::json;
    use understudy_llm::ToolCall;

    fn spec(arguments: JsonCompare) -> LlmCompare {
        LlmCompare {
            protocol: Protocol::Auto,
            arguments,
            text: vec![TextStage::Similarity],
            threshold: 0.8,
            bands: Bands::default(),
            embedding: None,
            judge: None,
        }
    }

    fn completion(text: &str, tools: &[(&str, serde_json::Value)]) -> Completion {
        Completion {
            text: text.to_string(),
            tool_calls: tools
                .iter()
                .map(|(n, a)| ToolCall {
                    name: n.to_string(),
                    arguments: a.clone(),
                })
                .collect(),
            ..Completion::default()
        }
    }

    #[test]
    fn tool_arguments_use_the_json_rules() {
        let s = spec(JsonCompare {
            ignore: vec![Pointer::parse("/tool_calls/*/arguments/request_id").unwrap()],
            tolerance: 0.05,
            ..JsonCompare::default()
        });
        let a = completion(
            "",
            &[(
                "get_weather",
                json!({"city": "Paris", "days": 100, "request_id": 1}),
            )],
        );
        let b = completion(
            "",
            &[(
                "get_weather",
                json!({"city": "Paris", "days": 103, "request_id": 2}),
            )],
        );
        assert_eq!(
            structure(&s, Ok(&a), Ok(&b)),
            Step::Done(Outcome::new(Verdict::Match))
        );
        let c = completion("", &[("get_weather", json!({"city": "Lyon", "days": 100}))]);
        let Step::Done(out) = structure(&s, Ok(&a), Ok(&c)) else {
            panic!("decided by tools")
        };
        assert_eq!(out.diffs, ["/tool_calls/0/arguments/city"]);
        let d = completion("", &[("get_time", json!({}))]);
        let Step::Done(out) = structure(&s, Ok(&a), Ok(&d)) else {
            panic!("decided by tools")
        };
        assert_eq!(out.diffs, ["/tool_calls/0/name"]);
    }

    #[test]
    fn texts_go_on_when_tools_agree() {
        let s = spec(JsonCompare::default());
        let a = completion("hello there", &[]);
        let b = completion("hello", &[]);
        assert_eq!(
            structure(&s, Ok(&a), Ok(&b)),
            Step::Texts {
                incumbent: "hello there",
                candidate: "hello"
            }
        );
    }

    #[test]
    fn undecodable_answers_are_verdicts() {
        let s = spec(JsonCompare::default());
        let ok = completion("x", &[]);
        let bad = DecodeError::NotJson("expected value".into());
        let Step::Done(out) = structure(&s, Ok(&ok), Err(&bad)) else {
            panic!()
        };
        assert_eq!(out.verdict, Verdict::Mismatch);
        assert!(out.note.unwrap().contains("not JSON"));
        let Step::Done(out) = structure(&s, Err(&bad), Ok(&ok)) else {
            panic!()
        };
        assert_eq!(out.verdict, Verdict::Skipped);
        let err = DecodeError::Upstream("overloaded".into());
        let Step::Done(out) = structure(&s, Ok(&ok), Err(&err)) else {
            panic!()
        };
        assert_eq!(out.verdict, Verdict::CandidateError);
    }

    #[test]
    fn offline_runs_the_stages_that_need_no_call() {
        let mut s = spec(JsonCompare::default());
        s.text = vec![TextStage::Similarity, TextStage::Judge];
        let a = completion("the weather in paris is mild", &[]);
        let same = decide_offline(&s, Ok(&a), Ok(&a));
        assert_eq!(
            (same.verdict, same.decided_by),
            (Verdict::Match, Some(TextStage::Similarity))
        );
        let other = completion("the weather in lyon is mild", &[]);
        let pending = decide_offline(&s, Ok(&a), Ok(&other));
        assert_eq!(pending.verdict, Verdict::Skipped, "{pending:?}");
        assert!(pending.note.unwrap().contains("judge"));
    }

    #[test]
    fn bands_and_thresholds() {
        let band = Band {
            low: 0.5,
            high: 0.9,
        };
        assert_eq!(by_score(0.95, band, 0.8, false), Call::Agree);
        assert_eq!(by_score(0.7, band, 0.8, false), Call::Undecided);
        assert_eq!(by_score(0.4, band, 0.8, false), Call::Disagree);
        assert_eq!(by_score(0.7, band, 0.8, true), Call::Disagree);
        assert_eq!(by_score(0.85, band, 0.8, true), Call::Agree);
        assert_eq!(exact("a", "b", false), Call::Undecided);
        assert_eq!(exact("a", "b", true), Call::Disagree);
        assert_eq!(cosine(&[1.0, 0.0], &[1.0, 0.0]), Some(1.0));
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), Some(0.0));
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), None);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), None);
    }
}
