//! The llm mode in the settle step (docs/src/guide/llm.md): the two answers' completions
//! compared (tool calls, then text), and the text stages run in order, each
//! deciding outside its band so only undecided pairs go on. The stages that
//! call out (embedding, judge) go through the one bounded upstream call with
//! their own permits and timeout; busy or failing, the verdict is `skipped`
//! and the stage's `skipped` is counted.
//!
//! Runs on the settle task, never on the client's path.

use crate::compare::llm::{self as rules, Call, Step};
use crate::compare::{Outcome, Verdict, judge};
use crate::config::{LlmCompare, TextStage};
use crate::exchange::Exchange;
use crate::metrics::{Metrics, StageResult};
use crate::reading::Reading;
use crate::runtime::{Embedder, Judge, RouteRuntime};
use crate::upstream::{self, Bounds, body::UpBody};
use bytes::Bytes;
use http::{HeaderValue, Method};
use serde_json::Value;

/// The largest embeddings answer read (two vectors of a few thousand floats).
pub const MAX_EMBEDDINGS_ANSWER: usize = 1 << 20;

/// The verdict on two read answers.
pub async fn decide(
    route: &RouteRuntime,
    spec: &LlmCompare,
    ex: &Exchange,
    incumbent: &Reading,
    candidate: &Reading,
    metrics: &Metrics,
) -> Outcome {
    let (a, b) = match rules::structure(
        spec,
        incumbent.completion.as_ref(),
        candidate.completion.as_ref(),
    ) {
        Step::Done(outcome) => return outcome,
        Step::Texts {
            incumbent,
            candidate,
        } => (incumbent, candidate),
    };
    let name = &route.cfg.name;
    let stages = spec.text.len();
    for (i, &stage) in spec.text.iter().enumerate() {
        let last = i + 1 == stages;
        let (score, call) = match stage {
            TextStage::Exact => (None, rules::exact(a, b, last)),
            TextStage::Similarity => {
                let (score, call) = similarity(spec, a, b, last).await;
                (Some(score), call)
            }
            TextStage::Embedding => match embed(route, a, b).await {
                Ok(score) => {
                    let (band, threshold) = (
                        spec.bands.embedding,
                        spec.embedding.as_ref().map_or(0.9, |e| e.threshold),
                    );
                    (Some(score), rules::by_score(score, band, threshold, last))
                }
                Err(note) => {
                    metrics.record_stage(name, stage, StageResult::Skipped);
                    return Outcome::noted(Verdict::Skipped, note);
                }
            },
            TextStage::Judge => {
                let Some(j) = &route.live.judge else {
                    return Outcome::noted(Verdict::Skipped, "judge failed: not configured");
                };
                let question = judge::question_of(
                    ex.body.as_ref(),
                    Value::String(a.to_string()),
                    Value::String(b.to_string()),
                );
                let reply = ask_judge(j, question).await;
                match reply.verdict {
                    Verdict::Match => (reply.score, Call::Agree),
                    Verdict::Mismatch => (reply.score, Call::Disagree),
                    _ => {
                        metrics.record_stage(name, stage, StageResult::Skipped);
                        return reply;
                    }
                }
            }
        };
        let result = match call {
            Call::Agree => StageResult::Agree,
            Call::Disagree => StageResult::Disagree,
            Call::Undecided => StageResult::Undecided,
        };
        metrics.record_stage(name, stage, result);
        match call {
            Call::Agree => return rules::decided(stage, true, score),
            Call::Disagree => return rules::decided(stage, false, score),
            Call::Undecided => {}
        }
    }
    // The last stage always decides; an empty list is refused by validation.
    Outcome::noted(Verdict::Skipped, "no text stage decided")
}

/// Texts longer than this (bytes, both together) are scored on the blocking
/// pool: the edit distance is quadratic (about 10 ms at 2,000 tokens each).
const BLOCKING_SIMILARITY: usize = 8 * 1024;

/// The similarity stage, off the runtime's workers for long texts.
async fn similarity(spec: &LlmCompare, a: &str, b: &str, last: bool) -> (f64, Call) {
    if a.len() + b.len() <= BLOCKING_SIMILARITY {
        return rules::similarity(spec, a, b, last);
    }
    let (band, threshold) = (spec.bands.similarity, spec.threshold);
    let (a, b) = (a.to_string(), b.to_string());
    let scored =
        tokio::task::spawn_blocking(move || crate::compare::text::similarity(&a, &b)).await;
    let score = scored.unwrap_or(0.0);
    (score, rules::by_score(score, band, threshold, last))
}

/// Asks the judge through the one bounded call, with its permits (none free:
/// `skipped`, "judge busy") and its timeout.
pub async fn ask_judge(j: &Judge, question: Bytes) -> Outcome {
    let Some(permit) = j.permits.try_acquire_owned() else {
        return Outcome::noted(Verdict::Skipped, "judge busy");
    };
    let req = upstream::request(
        Method::POST,
        j.client.uri_for(j.path.as_ref()),
        json_headers(None),
        UpBody::full(question),
    );
    let bounds = Bounds {
        // `judge_timeout`, the judge client's own.
        timeout: j.client.upstream().timeout,
        cap: judge::MAX_ANSWER,
        timed: false,
    };
    let called = j.client.call(permit, req, bounds).await;
    judge::read_reply(&called.observation, called.timed_out)
}

/// The cosine similarity of the two texts' embeddings, or why there is none
/// (the verdict's note: "embedding busy", "embedding failed: ...").
async fn embed(route: &RouteRuntime, a: &str, b: &str) -> Result<f64, String> {
    let (Some(e), Some(cfg)) = (
        &route.live.embedder,
        route.cfg.llm().and_then(|l| l.embedding.as_ref()),
    ) else {
        return Err("embedding failed: not configured".into());
    };
    let Some(permit) = e.permits.try_acquire_owned() else {
        return Err("embedding busy".into());
    };
    let body = serde_json::json!({ "model": cfg.model, "input": [a, b] }).to_string();
    let req = upstream::request(
        Method::POST,
        e.client.uri_for(e.path.as_ref()),
        json_headers(cfg.api_key.as_deref()),
        UpBody::full(Bytes::from(body)),
    );
    let bounds = Bounds {
        timeout: cfg.timeout,
        cap: MAX_EMBEDDINGS_ANSWER,
        timed: false,
    };
    read_embeddings(e, req, bounds, permit).await
}

async fn read_embeddings(
    e: &Embedder,
    req: http::Request<UpBody>,
    bounds: Bounds,
    permit: crate::limit::OwnedSlot,
) -> Result<f64, String> {
    let called = e.client.call(permit, req, bounds).await;
    let obs = &called.observation;
    if called.timed_out {
        return Err("embedding failed: timed out".into());
    }
    if let Some(error) = &obs.error {
        return Err(format!("embedding failed: {error}"));
    }
    match obs.status {
        Some(s) if (200..300).contains(&s) => {}
        Some(s) => return Err(format!("embedding failed: status {s}")),
        None => return Err("embedding failed: no response".into()),
    }
    if obs.truncated {
        return Err("embedding failed: answer too large".into());
    }
    let (x, y) = vectors(&obs.body).map_err(|why| format!("embedding failed: {why}"))?;
    rules::cosine(&x, &y).ok_or_else(|| "embedding failed: vectors cannot be compared".into())
}

/// The two vectors of an OpenAI-compatible embeddings answer
/// (`{"data": [{"index": 0, "embedding": [...]}, ...]}`), in input order.
fn vectors(body: &[u8]) -> Result<(Vec<f64>, Vec<f64>), String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        data: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        embedding: Vec<f64>,
        #[serde(default)]
        index: Option<usize>,
    }
    let mut answer: Answer =
        serde_json::from_slice(body).map_err(|e| format!("bad answer: {e}"))?;
    answer.data.sort_by_key(|i| i.index);
    let mut data = answer.data.into_iter();
    match (data.next(), data.next()) {
        (Some(x), Some(y)) => Ok((x.embedding, y.embedding)),
        _ => Err("bad answer: expected two embeddings".into()),
    }
}

fn json_headers(bearer: Option<&str>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(v) = bearer.and_then(|k| HeaderValue::try_from(format!("Bearer {k}")).ok()) {
        headers.insert(http::header::AUTHORIZATION, v);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_answers_in_input_order() {
        let body = br#"{"object":"list","data":[{"object":"embedding","index":1,"embedding":[0.0,1.0]},{"object":"embedding","index":0,"embedding":[1.0,0.0]}],"model":"m","usage":{"prompt_tokens":4,"total_tokens":4}}"#;
        assert_eq!(vectors(body).unwrap(), (vec![1.0, 0.0], vec![0.0, 1.0]));
        assert!(
            vectors(br#"{"data":[]}"#)
                .unwrap_err()
                .contains("two embeddings")
        );
        assert!(vectors(b"<html>").unwrap_err().contains("bad answer"));
    }
}
