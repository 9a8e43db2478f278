//! The only door to the shadow side: decides whether to mirror, builds the copy
//! and bounds it (`max_in_flight` permits, `timeout`).
//!
//! Never awaits anything on the client's path: `plan` returns at once with a
//! copy to build and run on the settle task, or a counted [`SkipReason`].
//!
//! A target that refuses connections is backed off from (see
//! [`crate::upstream::backoff`]): its mirrors are skipped as `candidate_down`
//! until a single probe gets through.

use super::headers::MIRROR;
use crate::config::{Focus, Mirror, Side};
use crate::exchange::Exchange;
use crate::limit::OwnedSlot;
use crate::observation::Observation;
use crate::runtime::RouteRuntime;
use crate::segment;
use crate::spend;
use crate::upstream::backoff::{Admit, Change, Probe};
use crate::upstream::body::UpBody;
use crate::upstream::{self, Bounds, Client};
use bytes::Bytes;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request};
use std::borrow::Cow;

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
    /// Left out of `mirror.sample` (docs/src/guide/llm.md).
    SampledOut,
    /// `mirror.budget` is spent for this UTC day (docs/src/guide/llm.md).
    Budget,
    /// `store.capture_budget` is spent: nothing new is captured.
    CaptureBudget,
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
            SkipReason::SampledOut => "sampled_out",
            SkipReason::Budget => "budget",
            SkipReason::CaptureBudget => "capture_budget",
        }
    }
}

impl crate::metrics::Label for SkipReason {
    fn as_label(self) -> &'static str {
        self.as_str()
    }
}

/// A copy ready to go, holding its in-flight permit.
pub struct ShadowCall {
    client: Client,
    request: Request<UpBody>,
    bounds: Bounds,
    /// Set when this copy is the one probe of a target that was down.
    probe: Option<Probe>,
    permit: OwnedSlot,
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
    if route.live.candidate.is_none() {
        return Err(SkipReason::NoCandidate);
    }
    if !policy.methods.contains(&ex.method) {
        return Err(SkipReason::Method);
    }
    let Some(body) = ex.body.as_ref() else {
        return Err(SkipReason::BodyTooLarge);
    };
    if target == Side::Candidate {
        spend_on(route, ex)?;
    }
    let client = match (target, route.live.candidate.as_ref()) {
        (Side::Candidate, Some(candidate)) => candidate,
        _ => &route.live.incumbent,
    };
    let probe = match client.backoff().admit() {
        Admit::Up => None,
        Admit::Probe(probe) => Some(probe),
        Admit::Down => return Err(SkipReason::CandidateDown),
    };
    // A probe dropped here (no permit) passes to the next request.
    let permit = route
        .live
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

/// `mirror.sample`, `mirror.focus` and `mirror.budget` for a copy to the
/// candidate (a reverse-shadow copy to the incumbent costs nothing extra).
fn spend_on(route: &RouteRuntime, ex: &Exchange) -> Result<(), SkipReason> {
    let policy = &route.cfg.mirror;
    if policy.sample >= 1.0 && policy.budget.is_none() && policy.focus == Focus::All {
        return Ok(());
    }
    let label = segment::label(route.cfg.segment.as_ref(), &ex.segment);
    let key = ex.sticky.as_deref().unwrap_or(&ex.id);
    match route
        .live
        .spend
        .admit(&route.cfg.name, policy, label, key, ex.ts_ms)
    {
        spend::Admit::Go => Ok(()),
        spend::Admit::SampledOut => Err(SkipReason::SampledOut),
        spend::Admit::Budget => Err(SkipReason::Budget),
    }
}

impl Plan {
    /// Builds the copy from the request head as it goes to the serving side.
    pub fn build(self, route: &RouteRuntime, parts: &Parts) -> ShadowCall {
        let (client, mut request) = match (self.target, route.live.candidate.as_ref()) {
            (Side::Candidate, Some(candidate)) => (
                candidate,
                candidate_request(&route.cfg.mirror, parts, self.body, candidate),
            ),
            _ => (
                &route.live.incumbent,
                plain_request(parts, self.body, &route.live.incumbent),
            ),
        };
        request
            .headers_mut()
            .insert(MIRROR, HeaderValue::from_static("1"));
        ShadowCall {
            client: client.clone(),
            request,
            bounds: Bounds {
                timeout: self.timeout,
                cap: self.cap,
                timed: route.cfg.times_first_token(),
            },
            probe: self.probe,
            permit: self.permit,
        }
    }
}

impl ShadowCall {
    /// Sends the copy through the one bounded call and tells the target's
    /// back-off whether a connection could be made.
    pub async fn run(self, route: &str) -> Observation {
        let called = self
            .client
            .call(self.permit, self.request, self.bounds)
            .await;
        note_health(&self.client, self.probe, called.connected, route);
        called.observation
    }
}

/// Reports the outcome to the target's health; logs only when it changes
/// (once when it goes down, once when it is back), never per skipped request.
fn note_health(client: &Client, probe: Option<Probe>, connected: bool, route: &str) {
    let target = client.target();
    let upstream = client.base();
    match client.backoff().record(probe, connected) {
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
    // One pass over the request's (few) names first: most requests carry
    // none of the stripped headers, and then nothing is hashed or removed.
    if headers.keys().any(|k| policy.strip_headers.contains(k)) {
        for name in &policy.strip_headers {
            headers.remove(name);
        }
    }
    for (name, value) in &policy.set_headers {
        headers.insert(name.clone(), value.clone());
    }
    let body = rewrite_json(policy, body);
    if !policy.rewrite_json.is_empty() {
        headers.remove(http::header::CONTENT_LENGTH);
    }
    let stripped = strip_query(policy, &parts.uri);
    let uri = client.uri_for(stripped.as_ref().or(parts.uri.path_and_query()));
    upstream::request(parts.method.clone(), uri, headers, UpBody::full(body))
}

/// The path and query without `mirror.strip_query`'s parameters; `None`
/// when nothing is stripped.
fn strip_query(policy: &Mirror, uri: &http::Uri) -> Option<PathAndQuery> {
    let query = uri.query()?;
    let kept = crate::query::strip(query, &policy.strip_query);
    if matches!(kept, Some(Cow::Borrowed(_))) {
        return None;
    }
    let path = uri.path();
    let rebuilt = match kept {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    PathAndQuery::try_from(rebuilt).ok()
}

/// The request unchanged (for the incumbent).
pub fn plain_request(parts: &Parts, body: Bytes, client: &Client) -> Request<UpBody> {
    let uri = client.uri_for(parts.uri.path_and_query());
    upstream::request(
        parts.method.clone(),
        uri,
        parts.headers.clone(),
        UpBody::full(body),
    )
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
