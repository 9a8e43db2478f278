//! The only door to the shadow side: decides whether to mirror, builds the copy
//! and bounds it (`max_in_flight` permits, `timeout`).
//!
//! Never awaits anything on the client's path: `plan` returns at once with a
//! copy to build and run on the settle task, or a counted [`SkipReason`].
//!
//! A target that refuses connections is backed off from (see
//! [`crate::proxy::health`]): its mirrors are skipped as `candidate_down`
//! until a single probe gets through.

use crate::compare::Observation;
use crate::config::{Mirror, Side};
use crate::exchange::Exchange;
use crate::proxy::RouteRuntime;
use crate::proxy::body::{self, UpBody};
use crate::proxy::forward::Client;
use crate::proxy::headers::MIRROR;
use crate::proxy::health::{Admit, Change, Probe};
use crate::proxy::limit::OwnedSlot;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request};
use std::time::Instant;

/// Why an exchange was not mirrored; `as_str` is the metric label and SQL value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The kill switch is off.
    Disabled,
    /// The route has no candidate.
    NoCandidate,
    /// The method is not in `mirror.methods`.
    Method,
    /// The request body is larger than `store.max_body_bytes`.
    BodyTooLarge,
    /// `mirror.max_in_flight` copies are already out.
    InFlight,
    /// The mirror target refused connections and is being backed off from
    /// (named for the usual target; a reverse-shadowed incumbent counts here too).
    CandidateDown,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Disabled => "disabled",
            SkipReason::NoCandidate => "no_candidate",
            SkipReason::Method => "method",
            SkipReason::BodyTooLarge => "body_too_large",
            SkipReason::InFlight => "in_flight",
            SkipReason::CandidateDown => "candidate_down",
        }
    }
}

/// A copy ready to go, holding its in-flight permit.
pub struct ShadowCall {
    client: Client,
    request: Request<UpBody>,
    timeout: std::time::Duration,
    cap: usize,
    /// Set when this copy is the one probe of a target that was down.
    probe: Option<Probe>,
    _permit: OwnedSlot,
}

/// A mirror decided on, its in-flight permit held; the copy is built later,
/// from the request head as it is forwarded.
pub struct Plan {
    target: Side,
    body: Bytes,
    timeout: std::time::Duration,
    cap: usize,
    /// Set when this copy is the one probe of a target that was down.
    probe: Option<Probe>,
    permit: OwnedSlot,
}

/// Decides whether this exchange is mirrored to `target`. Cheap, and never
/// waits: a bound that is hit is a [`SkipReason`].
pub fn plan(
    route: &RouteRuntime,
    mirror_on: bool,
    ex: &Exchange,
    target: Side,
    cap: usize,
) -> Result<Plan, SkipReason> {
    let policy = &route.cfg.mirror;
    if !mirror_on {
        return Err(SkipReason::Disabled);
    }
    if route.candidate.is_none() {
        return Err(SkipReason::NoCandidate);
    }
    if !policy.methods.contains(&ex.method) {
        return Err(SkipReason::Method);
    }
    let Some(body) = ex.body.as_ref() else {
        return Err(SkipReason::BodyTooLarge);
    };
    let client = match (target, route.candidate.as_ref()) {
        (Side::Candidate, Some(candidate)) => candidate,
        _ => &route.incumbent,
    };
    let probe = match client.health().admit() {
        Admit::Up => None,
        Admit::Probe(probe) => Some(probe),
        Admit::Down => return Err(SkipReason::CandidateDown),
    };
    // A probe dropped here (no permit) passes to the next request.
    let permit = route
        .mirror_permits
        .try_acquire_owned()
        .ok_or(SkipReason::InFlight)?;
    Ok(Plan {
        target,
        body: body.clone(),
        timeout: policy.timeout,
        cap,
        probe,
        permit,
    })
}

impl Plan {
    /// Builds the copy from the request head as it goes to the serving side.
    pub fn build(self, route: &RouteRuntime, parts: &Parts) -> ShadowCall {
        let (client, mut request) = match (self.target, route.candidate.as_ref()) {
            (Side::Candidate, Some(candidate)) => (
                candidate,
                candidate_request(&route.cfg.mirror, parts, self.body, candidate),
            ),
            _ => (
                &route.incumbent,
                plain_request(parts, self.body, &route.incumbent),
            ),
        };
        request
            .headers_mut()
            .insert(MIRROR, HeaderValue::from_static("1"));
        ShadowCall {
            client: client.clone(),
            request,
            timeout: self.timeout,
            cap: self.cap,
            probe: self.probe,
            _permit: self.permit,
        }
    }
}

impl ShadowCall {
    /// Sends the copy and reads the answer, all within `mirror.timeout`, and
    /// tells the target's health whether a connection could be made.
    pub async fn run(self, route: &str) -> Observation {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started) + self.timeout;
        // Bounded by the timeout itself, so whether a connection opened is
        // always known (a probe always reports).
        let sent = self.client.send_within(self.request, self.timeout).await;
        let connected = !matches!(&sent, Err(e) if e.failed_to_connect());
        note_health(&self.client, self.probe, connected, route);
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => return Observation::failed(e.to_string(), started.elapsed()),
        };
        let status = resp.status().as_u16();
        let read = body::collect_capped(resp.into_body(), self.cap);
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok((body, truncated))) => Observation {
                status: Some(status),
                body,
                truncated,
                error: None,
                latency: started.elapsed(),
            },
            Ok(Err(e)) => Observation::failed(format!("body broke off: {e}"), started.elapsed()),
            Err(_) => Observation::failed("timed out", started.elapsed()),
        }
    }
}

/// Reports the outcome to the target's health; logs only when it changes
/// (once when it goes down, once when it is back), never per skipped request.
fn note_health(client: &Client, probe: Option<Probe>, connected: bool, route: &str) {
    let target = client.target();
    let upstream = client.base();
    match client.health().record(probe, connected) {
        Change::Same => {}
        Change::Down(wait) => tracing::warn!(
            route,
            target,
            %upstream,
            retry_in = ?wait,
            "Mirror target refuses connections; skipping its mirrors (candidate_down) and probing with one request after the back-off"
        ),
        Change::StillDown(wait) => tracing::debug!(
            route,
            target,
            %upstream,
            retry_in = ?wait,
            "Mirror target still refuses connections"
        ),
        Change::Up => {
            tracing::info!(route, target, %upstream, "Mirror target is reachable again; mirroring resumes")
        }
    }
}

/// The request as the candidate gets it: credentials stripped, its own
/// headers set, JSON fields rewritten.
pub fn candidate_request(
    policy: &Mirror,
    parts: &Parts,
    body: Bytes,
    client: &Client,
) -> Request<UpBody> {
    let mut headers = parts.headers.clone();
    for name in &policy.strip_headers {
        headers.remove(name);
    }
    for (name, value) in &policy.set_headers {
        headers.insert(name.clone(), value.clone());
    }
    let body = rewrite_json(policy, body);
    if !policy.rewrite_json.is_empty() {
        headers.remove(http::header::CONTENT_LENGTH);
    }
    build(parts, headers, body, client)
}

/// The request unchanged (for the incumbent).
pub fn plain_request(parts: &Parts, body: Bytes, client: &Client) -> Request<UpBody> {
    build(parts, parts.headers.clone(), body, client)
}

fn build(parts: &Parts, headers: HeaderMap, body: Bytes, client: &Client) -> Request<UpBody> {
    let mut req = Request::new(UpBody::full(body));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = client.uri_for(parts.uri.path_and_query());
    *req.headers_mut() = headers;
    req
}

fn rewrite_json(policy: &Mirror, body: Bytes) -> Bytes {
    if policy.rewrite_json.is_empty() {
        return body;
    }
    let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return body;
    };
    for (pointer, value) in &policy.rewrite_json {
        pointer.set(&mut doc, value);
    }
    serde_json::to_vec(&doc).map_or(body, Bytes::from)
}
