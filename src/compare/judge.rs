//! Judge mode: an external endpoint (LLM-as-judge) decides whether two answers
//! agree. It is POSTed `{"incumbent": ..., "candidate": ..., "request": ...}`
//! (each body as JSON when it parses, otherwise as a string) and answers
//! `{"agree": bool, "score": f}` (`score` optional, stored on the row).
//!
//! Pure: the question and the reading of the reply. The call itself is made
//! by the settle step through the one bounded upstream call, with
//! `judge_max_in_flight` permits per route (none free: `skipped`, "judge
//! busy") and one `judge_timeout` for the whole call; every failure is
//! `skipped` with the reason as its note.

use super::{Observation, Outcome, Verdict};
use bytes::Bytes;
use serde_json::{Value, json};

/// The largest judge answer read.
pub const MAX_ANSWER: usize = 64 * 1024;

/// What the judge answers.
#[derive(Debug, serde::Deserialize)]
struct Answer {
    agree: bool,
    score: Option<f64>,
}

/// The body POSTed to the judge about a pair both sides answered properly.
pub fn question(
    request: Option<&Bytes>,
    incumbent: &Observation,
    candidate: &Observation,
) -> Bytes {
    question_of(request, as_json(&incumbent.body), as_json(&candidate.body))
}

/// The body POSTed to the judge about two answers given as JSON values (the
/// llm mode sends the two decoded texts).
pub fn question_of(request: Option<&Bytes>, incumbent: Value, candidate: Value) -> Bytes {
    let payload = json!({
        "incumbent": incumbent,
        "candidate": candidate,
        "request": request.map_or(Value::Null, |b| as_json(b)),
    });
    Bytes::from(payload.to_string())
}

/// How the note of a comparison the judge could not decide begins (the
/// guard counts those against a pass: `rollout::guard::judge_failed`).
pub const FAILED: &str = "judge failed";

/// The outcome of the judge's reply (its status and body, or how the call
/// failed). Never fails: a transport error, a non-2xx or an unreadable answer
/// each become `skipped` with a note.
pub fn read_reply(reply: &Observation, timed_out: bool) -> Outcome {
    if timed_out {
        return Outcome::noted(Verdict::Skipped, format!("{FAILED}: timed out"));
    }
    if let Some(error) = &reply.error {
        return Outcome::noted(Verdict::Skipped, format!("{FAILED}: {error}"));
    }
    match reply.status {
        Some(s) if (200..300).contains(&s) => {}
        Some(s) => return Outcome::noted(Verdict::Skipped, format!("{FAILED}: status {s}")),
        None => return Outcome::noted(Verdict::Skipped, format!("{FAILED}: no response")),
    }
    match serde_json::from_slice::<Answer>(&reply.body) {
        Ok(a) => verdict(a.agree, a.score),
        Err(e) => Outcome::noted(Verdict::Skipped, format!("{FAILED}: bad answer: {e}")),
    }
}

/// The outcome of a judge's answer; a score outside `[0, 1]` or not finite is dropped.
fn verdict(agree: bool, score: Option<f64>) -> Outcome {
    let mut outcome = if agree {
        Outcome::new(Verdict::Match)
    } else {
        Outcome::mismatch(Vec::new())
    };
    outcome.score = score.filter(|s| s.is_finite() && (0.0..=1.0).contains(s));
    outcome
}

/// A body as a JSON value when it parses, otherwise as (lossy) text.
fn as_json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_verdicts() {
        let yes = verdict(true, Some(0.9));
        assert_eq!((yes.verdict, yes.score), (Verdict::Match, Some(0.9)));
        let no = verdict(false, Some(0.2));
        assert_eq!((no.verdict, no.score), (Verdict::Mismatch, Some(0.2)));
        assert_eq!(verdict(true, Some(7.0)).score, None);
        assert_eq!(verdict(false, None).score, None);
    }

    #[test]
    fn bodies_go_as_json_or_text() {
        assert_eq!(as_json(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(as_json(b"plain words"), json!("plain words"));
    }
}
