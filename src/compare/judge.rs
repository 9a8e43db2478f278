//! Judge mode: an external endpoint (LLM-as-judge) decides whether two answers
//! agree. It is POSTed `{"incumbent": ..., "candidate": ..., "request": ...}`
//! (each body as JSON when it parses, otherwise as a string) and answers
//! `{"agree": bool, "score": f}` (`score` optional, stored on the row).
//!
//! Bounded like a mirror and never a stuck queue: `judge_max_in_flight` permits
//! per route (none free: `skipped`, "judge busy"), one `judge_timeout` for the
//! whole call, and every failure is `skipped` with the reason as its note.

use super::{Observation, Outcome, Verdict};
use crate::config::{JudgeCompare, Upstream};
use crate::proxy::body::{self, UpBody};
use crate::proxy::forward::Client;
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The largest judge answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// A route's judge: its client, permits and timeout.
pub struct Judge {
    client: Client,
    path: Option<PathAndQuery>,
    timeout: Duration,
    permits: Arc<Semaphore>,
}

/// What the judge answers.
#[derive(Debug, serde::Deserialize)]
struct Answer {
    agree: bool,
    score: Option<f64>,
}

/// The judge of a route in `judge` mode.
pub fn for_route(route: &crate::config::Route, tls: &rustls::ClientConfig) -> Option<Judge> {
    match &route.compare {
        crate::config::Compare::Judge(cfg) => Some(Judge::new(cfg, tls)),
        _ => None,
    }
}

impl Judge {
    pub fn new(cfg: &JudgeCompare, tls: &rustls::ClientConfig) -> Judge {
        let mut parts = cfg.url.clone().into_parts();
        let path = parts.path_and_query.replace(PathAndQuery::from_static("/"));
        let base = http::Uri::from_parts(parts).unwrap_or_default();
        let upstream = Upstream {
            uri: base,
            base_path: String::new(),
            connect_timeout: cfg.timeout,
            timeout: cfg.timeout,
            http2: false,
            tls_ca: None,
        };
        Judge {
            client: Client::new(&upstream, "judge", tls),
            path,
            timeout: cfg.timeout,
            permits: Arc::new(Semaphore::new(cfg.max_in_flight)),
        }
    }

    /// Asks the judge about a pair both sides answered properly. Never fails:
    /// a full pool, a timeout, a transport error, a non-2xx or an unreadable
    /// answer each become `skipped` with a note.
    pub async fn decide(
        &self,
        request: Option<&Bytes>,
        incumbent: &Observation,
        candidate: &Observation,
    ) -> Outcome {
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            return Outcome::noted(Verdict::Skipped, "judge busy");
        };
        let payload = json!({
            "incumbent": as_json(&incumbent.body),
            "candidate": as_json(&candidate.body),
            "request": request.map_or(Value::Null, |b| as_json(b)),
        });
        let mut req = Request::new(UpBody::full(Bytes::from(payload.to_string())));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = self.client.uri_for(self.path.as_ref());
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let call = async {
            let resp = self
                .client
                .send_within(req, self.timeout)
                .await
                .map_err(|e| match e {
                    crate::proxy::Error::UpstreamTimeout { .. } => "timed out".to_string(),
                    e => e.to_string(),
                })?;
            let status = resp.status();
            let (bytes, _) = body::collect_capped(resp.into_body(), MAX_ANSWER)
                .await
                .map_err(|e| format!("answer broke off: {e}"))?;
            if !status.is_success() {
                return Err(format!("status {}", status.as_u16()));
            }
            serde_json::from_slice::<Answer>(&bytes).map_err(|e| format!("bad answer: {e}"))
        };
        let answer = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(a)) => a,
            Ok(Err(why)) => {
                return Outcome::noted(Verdict::Skipped, format!("judge failed: {why}"));
            }
            Err(_) => return Outcome::noted(Verdict::Skipped, "judge failed: timed out"),
        };
        verdict(answer.agree, answer.score)
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
