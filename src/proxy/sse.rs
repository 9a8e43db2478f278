//! The `recommend` stage on a server-sent-event answer (docs/src/concepts/stages.md): the
//! incumbent's stream goes to the client frame by frame as it arrives
//! (captured like any other answer), and the candidate's answer follows it
//! as one extra event at the very end of the stream:
//!
//! ```text
//! event: understudy.suggestion
//! data: {"type":"understudy.suggestion","status":200,"text":"...","tool_calls":[...],"finish_reason":"stop","model":"..."}
//! ```
//!
//! At the very end means after OpenAI chat's `data: [DONE]` too: the official
//! clients stop reading there, whereas an event before it reaches a chat
//! client's loop as a chunk without `choices`. The Anthropic and Responses
//! clients hand it on as an event of type `understudy.suggestion`, which
//! code that dispatches on the event type passes over, and their stream
//! helpers ignore.
//!
//! Waiting for the candidate never holds back a byte of the incumbent's
//! answer: only once the incumbent's stream has ended does the body wait for
//! the candidate, and then at most until `autonomy.suggest_timeout` from the
//! request's start (a stream longer than that does not wait at all).

use super::Proxy;
use super::body::ProxyBody;
use super::outcome::Outcome;
use crate::config::Compare;
use crate::observation::Observation;
use crate::runtime::RouteRuntime;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use understudy_llm::Protocol;

/// The suggestion event's name (and its data's `type`).
pub const EVENT: &str = "understudy.suggestion";

/// Whether a response with these headers is a server-sent-event stream.
pub fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .get(..17)
                .is_some_and(|t| t.eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The incumbent's event stream, then the suggestion event.
pub struct Suggesting {
    /// The incumbent's body, teed into its capture.
    inner: ProxyBody,
    /// The candidate's answer, once its call ends; `Err` holds what became
    /// of a suggestion that cannot come (the candidate was not asked).
    candidate: Result<oneshot::Receiver<Observation>, Outcome>,
    deadline: Instant,
    /// Armed when the incumbent's stream has ended before the deadline.
    wait: Option<Pin<Box<Sleep>>>,
    /// The last bytes sent, to know whether the stream ended on an event boundary.
    last: [u8; 4],
    state: State,
    proxy: Arc<Proxy>,
    route: Arc<RouteRuntime>,
    cap: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Streaming,
    Waiting,
    Done,
}

impl Suggesting {
    pub(super) fn new(
        inner: ProxyBody,
        candidate: Result<oneshot::Receiver<Observation>, Outcome>,
        deadline: Instant,
        proxy: Arc<Proxy>,
        route: Arc<RouteRuntime>,
        cap: usize,
    ) -> Suggesting {
        Suggesting {
            inner,
            candidate,
            deadline,
            wait: None,
            last: [0; 4],
            state: State::Streaming,
            proxy,
            route,
            cap,
        }
    }

    fn note_sent(&mut self, data: &[u8]) {
        if data.len() >= 4 {
            self.last.copy_from_slice(&data[data.len() - 4..]);
        } else {
            let keep = 4 - data.len();
            self.last.copy_within(4 - keep.., 0);
            self.last[keep..].copy_from_slice(data);
        }
    }

    /// The stream so far ends with a blank line (an event's end).
    fn at_boundary(&self) -> bool {
        let l = &self.last;
        l.ends_with(b"\n\n") || l.ends_with(b"\r\r") || l == b"\r\n\r\n"
    }

    fn record(&self, outcome: Outcome) {
        self.proxy
            .metrics
            .record_suggestion(&self.route.cfg.name, outcome);
    }

    /// The incumbent's stream has ended: the suggestion, if it is in hand
    /// (or arrives before the deadline); `Pending` while it may still come.
    fn poll_suggestion(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes, Outcome>> {
        if !self.at_boundary() {
            // Appending would run into the incumbent's unfinished event.
            return Poll::Ready(Err(Outcome::Skipped));
        }
        let rx = match &mut self.candidate {
            Ok(rx) => rx,
            Err(outcome) => return Poll::Ready(Err(*outcome)),
        };
        match Pin::new(rx).poll(cx) {
            Poll::Ready(Ok(obs)) => return Poll::Ready(event(&self.route, self.cap, obs)),
            Poll::Ready(Err(_gone)) => return Poll::Ready(Err(Outcome::Failed)),
            Poll::Pending => {}
        }
        if Instant::now() >= self.deadline {
            return Poll::Ready(Err(Outcome::Late));
        }
        let deadline = self.deadline;
        let wait = self
            .wait
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(wait.as_mut().poll(cx));
        Poll::Ready(Err(Outcome::Late))
    }
}

impl Drop for Suggesting {
    fn drop(&mut self) {
        if self.state != State::Done {
            // The client left (or the incumbent broke off) before the end.
            self.record(Outcome::Skipped);
        }
    }
}

impl Body for Suggesting {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        loop {
            match this.state {
                State::Streaming => match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            this.note_sent(data);
                        } else {
                            // Trailers end the body: nothing may follow them.
                            this.record(Outcome::Skipped);
                            this.state = State::Done;
                            return Poll::Ready(Some(Ok(frame)));
                        }
                        if this.inner.is_end_stream() {
                            this.state = State::Waiting;
                        }
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    Some(Err(e)) => {
                        this.record(Outcome::Skipped);
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                    None => this.state = State::Waiting,
                },
                State::Waiting => {
                    let got = ready!(this.poll_suggestion(cx));
                    this.state = State::Done;
                    this.wait = None;
                    match got {
                        Ok(event) => {
                            this.record(Outcome::Event);
                            return Poll::Ready(Some(Ok(Frame::data(event))));
                        }
                        Err(outcome) => this.record(outcome),
                    }
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The suggestion event for the candidate's answer, or why there is none.
fn event(route: &RouteRuntime, cap: usize, mut obs: Observation) -> Result<Bytes, Outcome> {
    let status = match obs.status {
        Some(s) if obs.error.is_none() && (200..300).contains(&s) => s,
        _ => return Err(Outcome::Failed),
    };
    obs.decode(cap);
    let protocol = match &route.cfg.compare {
        Compare::Llm(llm) => llm.protocol,
        _ => Protocol::Auto,
    };
    let data = match understudy_llm::decode(protocol, None, &obs.body) {
        Ok(c) => Data {
            kind: EVENT,
            status,
            text: Some(c.text),
            tool_calls: Some(
                c.tool_calls
                    .into_iter()
                    .map(|t| json!({"name": t.name, "arguments": t.arguments}))
                    .collect(),
            ),
            finish_reason: c.finish_reason,
            model: c.model,
            body: None,
        },
        // Not an AI answer: the body as JSON when it is JSON, else as text.
        Err(_) => Data {
            kind: EVENT,
            status,
            body: Some(
                serde_json::from_slice::<Value>(&obs.body).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&obs.body).into_owned())
                }),
            ),
            ..Data::default()
        },
    };
    // serde_json escapes every line break: the data is one line.
    let data = serde_json::to_string(&data).map_err(|_| Outcome::Failed)?;
    Ok(Bytes::from(format!("event: {EVENT}\ndata: {data}\n\n")))
}

/// The event's data, in this order.
#[derive(Debug, Default, serde::Serialize)]
struct Data {
    #[serde(rename = "type")]
    kind: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_streams_are_told_by_their_content_type() {
        let mut h = http::HeaderMap::new();
        assert!(!is_event_stream(&h));
        h.insert(
            "content-type",
            "Text/Event-Stream; charset=utf-8".parse().unwrap(),
        );
        assert!(is_event_stream(&h));
        h.insert("content-type", "application/json".parse().unwrap());
        assert!(!is_event_stream(&h));
        h.insert("content-type", "text/event".parse().unwrap());
        assert!(!is_event_stream(&h));
    }
}
