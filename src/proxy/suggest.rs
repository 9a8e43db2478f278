//! The `recommend` stage (docs/src/concepts/stages.md): a canary user gets the incumbent's
//! answer with the candidate's as a suggestion, inserted at
//! `autonomy.suggest_pointer` of a JSON answer (its `Content-Length`
//! recomputed) or in the `x-understudy-suggestion` header (cut at 4 KiB).
//!
//! The one place the client waits for the candidate, and never longer than
//! `autonomy.suggest_timeout` from the request's start: the candidate is
//! asked at once, beside the incumbent, on its own task, and whatever it has
//! not answered by then is left out (`late`); its answer still reaches the
//! settle task for the comparison. Compressed answers (and answers over
//! `store.max_body_bytes`) stream through without a suggestion (counted).
//!
//! Streams are never buffered: a server-sent-event answer streams through
//! with the suggestion as one extra event at its end ([`super::sse`]); any
//! other answer of unknown length (chunked) streams through without one
//! (counted `streamed`).

use super::Proxy;
use super::answer::{Answer, Ctx, Reporter, incumbent};
use super::body::{Prepared, ProxyBody};
use super::headers::strip_hop_by_hop;
use super::mirror::{Plan, SkipReason};
use super::settle::Other;
use super::sse;
use crate::coding::Coding;
use crate::config::Side;
use crate::exchange::Exchange;
use crate::observation::Observation;
use crate::runtime::RouteRuntime;
use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderValue, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;

/// The suggestion header of non-JSON answers.
pub const SUGGESTION: &str = "x-understudy-suggestion";
/// The most bytes of the candidate's answer the header carries.
pub const HEADER_MAX: usize = 4096;

pub use super::outcome::Outcome;

/// Serves a canary user of a `recommend` segment.
pub(super) async fn serve(
    ctx: &Ctx,
    ex: Exchange,
    plan: Result<Plan, SkipReason>,
    parts: Parts,
    body: Prepared,
) -> Response<ProxyBody> {
    let (proxy, route, cap) = (&ctx.proxy, &ctx.route, ctx.cap);
    let deadline = tokio::time::Instant::from_std(ex.started) + route.cfg.autonomy.suggest_timeout;
    // The candidate's answer goes to the settle task (the call's result)
    // and, for an event stream's suggestion, to the client's body (a copy).
    let (ended, ended_rx) = tokio::sync::oneshot::channel();
    let (call, skipped) = match plan {
        Ok(plan) => {
            let copy = plan.build(route, &parts);
            let name = route.cfg.name.clone();
            let call = tokio::spawn(async move {
                let obs = copy.run(&name).await;
                let _unwanted = ended.send(obs.clone());
                obs
            });
            (Some(call), None)
        }
        Err(reason) => (None, Some(reason)),
    };
    let answer = incumbent(route, parts, body).await;
    let name = &route.cfg.name;
    let metrics = &proxy.metrics;
    let whole = match answer.result {
        Ok(resp) if Coding::of(resp.headers()).is_none() && streamed(&resp) => {
            // Never buffered: the incumbent's bytes go out as they come.
            let event_stream = resp.status().is_success() && sse::is_event_stream(resp.headers());
            let candidate = match (&call, skipped) {
                (Some(_), _) => Ok(ended_rx),
                (None, Some(SkipReason::CandidateDown)) => Err(Outcome::Failed),
                (None, _) => Err(Outcome::Skipped),
            };
            let other = other(call, skipped);
            let reporter = Reporter::settle(ctx, ex, Side::Incumbent, other);
            let answer = Answer {
                result: Ok(resp),
                ..answer
            };
            let resp = reporter.respond(ctx, answer);
            if !event_stream {
                let outcome = if resp.status().is_success() {
                    Outcome::Streamed
                } else {
                    Outcome::Skipped
                };
                metrics.record_suggestion(name, outcome);
                return resp;
            }
            let (mut head, body) = resp.into_parts();
            // The suggestion adds bytes: the length, if any, is no longer right.
            head.headers.remove(http::header::CONTENT_LENGTH);
            let body =
                sse::Suggesting::new(body, candidate, deadline, proxy.clone(), route.clone(), cap);
            return Response::from_parts(head, ProxyBody::Made(Box::pin(body)));
        }
        Ok(resp) if Coding::of(resp.headers()).is_some() || over_cap(&resp, cap) => {
            let outcome = if Coding::of(resp.headers()).is_some() {
                Outcome::Compressed
            } else {
                Outcome::TooLarge
            };
            metrics.record_suggestion(name, outcome);
            let other = other(call, skipped);
            let reporter = Reporter::settle(ctx, ex, Side::Incumbent, other);
            let answer = Answer {
                result: Ok(resp),
                ..answer
            };
            return reporter.respond(ctx, answer);
        }
        Ok(resp) => resp,
        Err(e) => {
            let other = other(call, skipped);
            let reporter = Reporter::settle(ctx, ex, Side::Incumbent, other);
            let answer = Answer {
                result: Err(e),
                ..answer
            };
            return reporter.respond(ctx, answer);
        }
    };
    let (mut head, inner) = whole.into_parts();
    strip_hop_by_hop(&mut head.headers);
    let sent = answer.sent;
    let read = read_up_to(inner, cap).await;
    let (served, mut call, skipped) = (
        observation(head.status.as_u16(), &read, sent),
        call,
        skipped,
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    let body = match read {
        Read::Whole(bytes) => {
            // The wait: at most until the deadline, whatever the incumbent took.
            let candidate = match call.as_mut() {
                Some(task) => match tokio::time::timeout_at(deadline, task).await {
                    Ok(Ok(obs)) => Some(obs),
                    Ok(Err(join)) => Some(Observation::failed(join.to_string(), sent.elapsed())),
                    Err(_late) => None,
                },
                None => None,
            };
            let (outcome, body) =
                suggest(route, &mut head, bytes, candidate.as_ref(), skipped, cap);
            metrics.record_suggestion(name, outcome);
            let other = match (candidate, call) {
                (Some(obs), _) => Other::Called(obs),
                (None, call) => other(call, skipped),
            };
            spawn_settle(proxy, route, ex, other, rx);
            ProxyBody::bytes(body)
        }
        Read::Over { head: first, rest } => {
            metrics.record_suggestion(name, Outcome::TooLarge);
            spawn_settle(proxy, route, ex, other(call, skipped), rx);
            ProxyBody::Resumed {
                head: Some(first),
                inner: rest,
            }
        }
        Read::Broken(partial) => {
            // The incumbent broke off: the client gets what came, no suggestion.
            metrics.record_suggestion(name, Outcome::Skipped);
            spawn_settle(proxy, route, ex, other(call, skipped), rx);
            head.headers.remove(http::header::CONTENT_LENGTH);
            ProxyBody::bytes(partial)
        }
    };
    // The comparison sees the incumbent's own answer, without the suggestion.
    tx.send(served).ok();
    Response::from_parts(head, body)
}

fn spawn_settle(
    proxy: &Arc<Proxy>,
    route: &Arc<RouteRuntime>,
    ex: Exchange,
    other: Other,
    served: tokio::sync::oneshot::Receiver<Observation>,
) {
    super::settle::spawn(proxy, route, ex, Side::Incumbent, other, served);
}

/// The candidate's side for the settle task: its running call (however late), or the skip.
fn other(call: Option<JoinHandle<Observation>>, skipped: Option<SkipReason>) -> Other {
    match (call, skipped) {
        (Some(task), _) => Other::Pending(task),
        (None, Some(reason)) => Other::Skipped(reason),
        (None, None) => Other::Skipped(SkipReason::NoCandidate),
    }
}

/// The answer is a stream: of unknown length (chunked, or until the
/// connection closes), or a server-sent-event stream whatever its length.
fn streamed(resp: &Response<Incoming>) -> bool {
    use hyper::body::Body;
    let body = resp.body();
    !body.is_end_stream()
        && (body.size_hint().exact().is_none() || sse::is_event_stream(resp.headers()))
}

fn over_cap(resp: &Response<Incoming>, cap: usize) -> bool {
    resp.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > cap as u64)
}

/// The incumbent's body, read up to the cap.
enum Read {
    Whole(Bytes),
    /// Over the cap: what was read, and the rest to stream.
    Over {
        head: Bytes,
        rest: Incoming,
    },
    /// Broke off midway: what was read.
    Broken(Bytes),
}

async fn read_up_to(mut body: Incoming, cap: usize) -> Read {
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Read::Whole(buf.freeze()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
                if buf.len() > cap {
                    return Read::Over {
                        head: buf.freeze(),
                        rest: body,
                    };
                }
            }
            Some(Err(_)) => return Read::Broken(buf.freeze()),
        }
    }
}

fn observation(status: u16, read: &Read, sent: Instant) -> Observation {
    let (body, truncated, error) = match read {
        Read::Whole(b) => (b.clone(), false, None),
        Read::Over { head, .. } => (head.clone(), true, None),
        Read::Broken(b) => (b.clone(), false, Some("body broke off".to_string())),
    };
    Observation {
        status: Some(status),
        body,
        truncated,
        error,
        latency: sent.elapsed(),
        ..Observation::default()
    }
}

/// The client's body with the suggestion, and what became of it. Only a
/// successful (2xx) incumbent answer gets one.
fn suggest(
    route: &RouteRuntime,
    head: &mut http::response::Parts,
    body: Bytes,
    candidate: Option<&Observation>,
    skipped: Option<SkipReason>,
    cap: usize,
) -> (Outcome, Bytes) {
    if !head.status.is_success() {
        return (Outcome::Skipped, body);
    }
    let Some(c) = candidate else {
        let outcome = match skipped {
            // Known to refuse connections (backed off): a failing candidate.
            Some(SkipReason::CandidateDown) => Outcome::Failed,
            Some(_) => Outcome::Skipped,
            None => Outcome::Late,
        };
        return (outcome, body);
    };
    if c.error.is_some() || !c.status.is_some_and(|s| (200..300).contains(&s)) {
        return (Outcome::Failed, body);
    }
    let mut c = c.clone();
    c.decode(cap);
    if let Some(pointer) = &route.cfg.autonomy.suggest_pointer {
        // The candidate's answer as it sent it when it is JSON, else as a string.
        let value = match serde_json::from_slice::<&serde_json::value::RawValue>(&c.body) {
            Ok(raw) => raw.get().to_string(),
            Err(_) => serde_json::to_string(&String::from_utf8_lossy(&c.body))
                .unwrap_or_else(|_| "null".into()),
        };
        if let Some(out) = super::splice::insert(&body, pointer, &value) {
            head.headers.insert(
                http::header::CONTENT_LENGTH,
                HeaderValue::from(out.len() as u64),
            );
            return (Outcome::Inserted, Bytes::from(out));
        }
    }
    match HeaderValue::from_bytes(&header_text(&c.body)) {
        Ok(v) => {
            head.headers.insert(SUGGESTION, v);
            (Outcome::Header, body)
        }
        Err(_) => (Outcome::Failed, body),
    }
}

/// The candidate's answer as a header value: control characters become
/// spaces, cut at [`HEADER_MAX`] bytes on a character boundary.
fn header_text(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len().min(HEADER_MAX));
    for ch in text.chars() {
        let ch = if ch.is_control() { ' ' } else { ch };
        if out.len() + ch.len_utf8() > HEADER_MAX {
            break;
        }
        out.push(ch);
    }
    out.trim().as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_is_clean_and_bounded() {
        assert_eq!(header_text(b"a\r\nb\tc"), b"a  b c".to_vec());
        let long = "é".repeat(5000);
        let cut = header_text(long.as_bytes());
        assert!(cut.len() <= HEADER_MAX);
        assert!(std::str::from_utf8(&cut).is_ok());
        assert!(HeaderValue::from_bytes(&cut).is_ok());
    }
}
