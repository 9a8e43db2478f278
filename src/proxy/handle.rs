//! The request path, in the order SPEC §1 tells it: route → body under the
//! cap → exchange (segment, sticky key) → who serves → the shadow copy
//! planned → forward (with the fallback) → the answer through the tee, and the
//! exchange handed to its settle task or counted as a skip.

use super::Proxy;
use super::body::{self, Capture, Prepared, ProxyBody, Timer};
use super::error::Error;
use super::headers::{self, EXCHANGE_ID, SERVED_BY};
use super::mirror::{self, Plan, SkipReason};
use super::settle::Other;
use crate::autonomy::Stage;
use crate::coding::Coding;
use crate::config::Side;
use crate::exchange::Exchange;
use crate::metrics::Rejected;
use crate::observation::Observation;
use crate::rollout;
use crate::runtime::RouteRuntime;
use crate::segment::{self, JsonBody};
use crate::upstream::{self, body::UpBody};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// Handles one client request. Always answers; errors become short plain-text bodies.
pub async fn handle(
    proxy: Arc<Proxy>,
    req: Request<Incoming>,
    hop: &headers::Forwarding,
) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    if crate::route::has_dot_segment(parts.uri.path()) {
        let path = parts.uri.path().to_string();
        return Error::DotSegment { path }.to_response();
    }
    let (route, cap, max_headers, body_read_timeout) = {
        let rt = proxy.runtime.now();
        let (store, listen) = (&rt.config.store, &rt.config.listen);
        // One host for routing and forwarding; malformed heads refused (400/501).
        if let Some(refused) = super::conform::request(&mut parts, listen, &proxy.metrics) {
            return refused;
        }
        let route = rt.find(&parts).cloned();
        (
            route,
            store.max_body_bytes,
            listen.max_headers,
            listen.body_read_timeout,
        )
    };
    // HTTP/1 heads are held to this by hyper; HTTP/2 ones are checked here.
    if parts.headers.len() > max_headers {
        proxy.metrics.record_limit_rejection(Rejected::Headers);
        return Error::TooManyHeaders.to_response();
    }
    let Some(route) = route else {
        let path = parts.uri.path().to_string();
        return Error::NoRoute { path }.to_response();
    };
    // The body is read before a slot is taken: a client still uploading
    // holds no `max_in_flight` slot, and gets 408 when it is too slow.
    let deadline = tokio::time::Instant::now() + body_read_timeout;
    let body = match tokio::time::timeout_at(deadline, body::prepare(body, cap, deadline)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Error::BodyRead(e.to_string()).to_response(),
        Err(_elapsed) => {
            proxy.metrics.record_limit_rejection(Rejected::BodyTimeout);
            return Error::BodyTimeout.to_response();
        }
    };
    // Held until the response head is ready: bounds requests queued on upstreams.
    let Some(_slot) = proxy.in_flight.try_acquire() else {
        return Error::Overloaded.to_response();
    };
    let mut ex = Exchange::begin(&route.cfg, &parts, body.buffered());
    let (chosen, stage, mirror_on) = who_serves(&proxy, &route, &parts, &ex);
    // The stage decides what the candidate may do for a canary user (SPEC
    // §14): below `notify` the incumbent answers and the candidate is asked
    // beside it (a suggestion, an approval, or only the comparison).
    ex.canary = (chosen == Side::Candidate).then_some(stage);
    let serving = match ex.canary {
        Some(Stage::Notify | Stage::Autonomous) | None => chosen,
        Some(Stage::Shadow | Stage::Recommend | Stage::Approve) => Side::Incumbent,
    };
    let plan = mirror::plan(&route, mirror_on, &ex, serving.other(), cap);
    if let Err(reason) = &plan {
        proxy.metrics.record_mirror_skip(&route.cfg.name, *reason);
    }
    // Only an exchange with two answers to compare, or one the candidate
    // serves, settles into a row; a skipped mirror beside the incumbent's
    // answer is only counted (`store::skips`), so shedding stays cheap.
    if plan.is_ok() || serving == Side::Candidate {
        ex.keep_request(&parts);
    }
    let via = headers::via_value(parts.version);
    headers::prepare_request(&mut parts.headers, hop, &via);
    let exchange_id = HeaderValue::try_from(ex.id.as_str()).ok();
    // Borrowed from the route (not the exchange, which moves on below).
    let label = segment::label(route.cfg.segment.as_ref(), &ex.segment);
    let (side, mut resp) = if ex.canary == Some(Stage::Recommend) {
        let resp = super::suggest::serve(&proxy, &route, ex, plan, parts, body, cap).await;
        (Side::Incumbent, resp)
    } else {
        let (answer, reporter) = match serving {
            Side::Incumbent => {
                let reporter = Reporter::beside_incumbent(&proxy, &route, ex, plan, &parts);
                (incumbent(&route, parts, body).await, reporter)
            }
            Side::Candidate => candidate(&proxy, &route, ex, plan, parts, body).await,
        };
        if answer.fell_back {
            proxy.metrics.record_fallback(&route.cfg.name, label);
        }
        (answer.side, reporter.respond(&proxy, &route, answer, cap))
    };
    let h = resp.headers_mut();
    if let Some(id) = exchange_id {
        h.insert(EXCHANGE_ID, id);
    }
    h.insert(SERVED_BY, HeaderValue::from_static(side.as_str()));
    let status = resp.status().as_u16();
    proxy
        .metrics
        .record_request(&route.cfg.name, label, side, status);
    resp
}

/// Who serves (a targeting rule, else the segment's weight against the
/// sticky bucket) and whether the kill switch lets mirrors go, from one read
/// of the live rollout state. Bodies over the cap always go to the
/// incumbent: a fallback could not replay them.
fn who_serves(
    proxy: &Proxy,
    route: &RouteRuntime,
    parts: &Parts,
    ex: &Exchange,
) -> (Side, Stage, bool) {
    let rollout = proxy.rollout.snapshot_now();
    let state = rollout.get(&route.cfg.name);
    let mirror_on = state.is_none_or(|s| s.mirror);
    let Some(body) = ex.body.as_ref() else {
        return (Side::Incumbent, Stage::Shadow, mirror_on);
    };
    if route.live.candidate.is_none() {
        return (Side::Incumbent, Stage::Shadow, mirror_on);
    }
    let stage = state.map_or(Stage::default(), |s| {
        s.stage_for(
            &ex.segment,
            segment::label(route.cfg.segment.as_ref(), &ex.segment),
        )
    });
    let rule = if route.cfg.rollout.rules.is_empty() {
        None
    } else {
        rollout::rule_for(&route.cfg, parts, &mut JsonBody::new(body))
    };
    let side = rollout::decide(state, &route.cfg, &ex.segment, ex.sticky.as_deref(), rule);
    (side, stage, mirror_on)
}

/// Who answered the client, and their answer.
pub(super) struct Answer {
    pub(super) side: Side,
    pub(super) result: Result<Response<Incoming>, upstream::Error>,
    /// When the request went to `side` (its latency runs from here).
    pub(super) sent: Instant,
    /// The serving candidate failed and the incumbent answered instead.
    pub(super) fell_back: bool,
}

/// Where the client's answer goes besides the client.
pub(super) enum Reporter {
    /// A settle task waits for the answer as the tee captures it.
    Settle(oneshot::Sender<Observation>),
    /// No settle task (the skip is counted already): the upstream's duration
    /// is observed here.
    Count,
}

impl Reporter {
    /// The incumbent serves: the mirror copy (if planned) goes to the
    /// candidate on a settle task, at once; a skipped one is counted.
    fn beside_incumbent(
        proxy: &Arc<Proxy>,
        route: &Arc<RouteRuntime>,
        ex: Exchange,
        plan: Result<Plan, SkipReason>,
        parts: &Parts,
    ) -> Reporter {
        match plan {
            Ok(plan) => {
                let copy = Other::Copy(plan.build(route, parts));
                Reporter::settle(proxy, route, ex, Side::Incumbent, copy)
            }
            Err(reason) => {
                let name = &route.cfg.name;
                proxy
                    .store
                    .skip(name, ex.segment, reason.as_str(), ex.ts_ms);
                Reporter::Count
            }
        }
    }

    /// Spawns the exchange's settle task; it waits for the client's answer.
    pub(super) fn settle(
        proxy: &Arc<Proxy>,
        route: &Arc<RouteRuntime>,
        exchange: Exchange,
        served_by: Side,
        other: Other,
    ) -> Reporter {
        let (tx, served) = oneshot::channel();
        super::settle::spawn(proxy, route, exchange, served_by, other, served);
        Reporter::Settle(tx)
    }

    /// The client's response: the upstream's answer streamed through (and
    /// captured for the settle task), or a short error.
    pub(super) fn respond(
        self,
        proxy: &Proxy,
        route: &RouteRuntime,
        answer: Answer,
        cap: usize,
    ) -> Response<ProxyBody> {
        let Answer {
            side,
            result,
            sent: started,
            ..
        } = answer;
        match (result, self) {
            (Ok(upstream), reporter) => {
                let (mut head, inner) = upstream.into_parts();
                headers::strip_hop_by_hop(&mut head.headers);
                let body = match reporter {
                    Reporter::Settle(tx) => ProxyBody::Tee {
                        inner,
                        capture: Capture::new(head.status.as_u16(), started, cap, tx)
                            .timed(route.cfg.times_first_token())
                            .coded(Coding::of(&head.headers)),
                    },
                    Reporter::Count => ProxyBody::Pass {
                        inner,
                        _timer: Timer {
                            histogram: proxy.metrics.upstream(&route.cfg.name, side),
                            started,
                        },
                    },
                };
                Response::from_parts(head, body)
            }
            (Err(e), Reporter::Settle(tx)) => {
                // The settle task logs the failure; the client gets a short answer.
                let _ignored = tx.send(Observation::failed(e.to_string(), started.elapsed()));
                Error::from(e).to_response()
            }
            (Err(e), Reporter::Count) => {
                proxy
                    .metrics
                    .record_upstream(&route.cfg.name, side, started.elapsed());
                Error::from(e).to_response()
            }
        }
    }
}

/// The incumbent serves: the client's request head, moved (not copied).
pub(super) async fn incumbent(route: &RouteRuntime, parts: Parts, body: Prepared) -> Answer {
    let client = &route.live.incumbent;
    let body = match body {
        Prepared::Buffered(b) => UpBody::full(b),
        Prepared::Streaming(s) => s,
    };
    let uri = client.uri_for(parts.uri.path_and_query());
    let req = upstream::request(parts.method, uri, parts.headers, body);
    let sent = Instant::now();
    Answer {
        side: Side::Incumbent,
        result: client.send(req).await,
        sent,
        fell_back: false,
    }
}

/// The candidate serves. When it answers (a response head that is not a
/// 5xx), the incumbent gets its shadow copy, and the client the candidate's
/// stream. When it fails and the route falls back, the incumbent gets the
/// request once, as the real request: that one answer serves the client and
/// the comparison (SPEC §9 "Never twice"); the planned copy is not sent.
async fn candidate(
    proxy: &Arc<Proxy>,
    route: &Arc<RouteRuntime>,
    ex: Exchange,
    plan: Result<Plan, SkipReason>,
    parts: Parts,
    body: Prepared,
) -> (Answer, Reporter) {
    // `who_serves` gives the candidate only a buffered body and a route with one.
    let (Some(client), Prepared::Buffered(bytes)) = (&route.live.candidate, &body) else {
        let reporter = Reporter::beside_incumbent(proxy, route, ex, plan, &parts);
        return (incumbent(route, parts, body).await, reporter);
    };
    let req = mirror::candidate_request(&route.cfg.mirror, &parts, bytes.clone(), client);
    let sent = Instant::now();
    let result = client.send(req).await;
    let failed = result
        .as_ref()
        .map_or(true, |r| r.status().is_server_error());
    if failed && route.cfg.rollout.fallback {
        drop(plan); // its permit goes back: the incumbent is asked below, once
        let failure = match result {
            Err(e) => Observation::failed(e.to_string(), sent.elapsed()),
            Ok(r) => Observation {
                status: Some(r.status().as_u16()),
                latency: sent.elapsed(),
                ..Observation::default()
            },
        };
        let other = Other::FellBack(failure);
        let reporter = Reporter::settle(proxy, route, ex, Side::Incumbent, other);
        let mut answer = incumbent(route, parts, body).await;
        answer.fell_back = true;
        return (answer, reporter);
    }
    let other = match plan {
        Ok(plan) => Other::Copy(plan.build(route, &parts)),
        Err(reason) => Other::Skipped(reason),
    };
    let reporter = Reporter::settle(proxy, route, ex, Side::Candidate, other);
    let answer = Answer {
        side: Side::Candidate,
        result,
        sent,
        fell_back: false,
    };
    (answer, reporter)
}

impl Prepared {
    /// The whole body, when it was buffered (within the cap).
    pub fn buffered(&self) -> Option<&Bytes> {
        match self {
            Prepared::Buffered(b) => Some(b),
            Prepared::Streaming(_) => None,
        }
    }
}
