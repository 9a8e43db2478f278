//! The request path, in the order SPEC §1 tells it:
//! route → body under the cap → exchange (segment, sticky key) → who serves →
//! shadow copy handed to a settle task → forward → respond through the tee.

use super::body::{self, Capture, Prepared, ProxyBody, Timer, UpBody};
use super::error::Error;
use super::headers::{self, EXCHANGE_ID, SERVED_BY};
use super::{Proxy, RouteRuntime};
use crate::compare::Observation;
use crate::config::Side;
use crate::exchange::Exchange;
use crate::mirror;
use crate::rollout::{self, RouteState};
use crate::segment::{self, JsonBody};
use crate::settle::Settle;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Handles one client request. Always answers; errors become short plain-text bodies.
pub async fn handle(
    proxy: Arc<Proxy>,
    req: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
) -> Response<ProxyBody> {
    // Held until the response head is ready: bounds requests queued on upstreams.
    let Some(_slot) = proxy.in_flight.try_acquire() else {
        return Error::Overloaded.to_response();
    };
    let (mut parts, body) = req.into_parts();
    let (route, cap) = {
        let rt = proxy.runtime_now();
        (rt.find(&parts).cloned(), rt.config.store.max_body_bytes)
    };
    let Some(route) = route else {
        return Error::NoRoute {
            path: parts.uri.path().to_string(),
        }
        .to_response();
    };
    let body = match body::prepare(body, cap).await {
        Ok(b) => b,
        Err(e) => return Error::BodyRead(e.to_string()).to_response(),
    };
    let buffered = match &body {
        Prepared::Buffered(b) => Some(b.clone()),
        Prepared::Streaming(_) => None,
    };
    let mut ex = Exchange::begin(&route.cfg, &parts, buffered.as_ref());
    // One read of the live weights and kill switch for the whole exchange.
    let (served_by, mirror_on) = {
        let rollout = proxy.rollout.snapshot_now();
        let state = rollout.get(&route.cfg.name);
        (
            decide(state, &route, &parts, &ex),
            state.is_none_or(|s| s.mirror),
        )
    };
    let plan = mirror::plan(&route, mirror_on, &ex, served_by.other(), cap);
    if let Err(reason) = &plan {
        proxy
            .metrics
            .record_mirror_skip(&route.cfg.name, reason.as_str());
    }
    // Only an exchange with two answers to compare, or one the candidate
    // serves, settles into a row; a skipped mirror beside the incumbent's
    // answer is only counted (`store::skips`), so shedding stays cheap.
    let settles = plan.is_ok() || served_by == Side::Candidate;
    if settles {
        ex.keep_request(&parts);
    }
    headers::prepare_request(
        &mut parts.headers,
        peer.ip(),
        tls,
        &headers::via_value(parts.version),
    );
    let exchange_id = HeaderValue::try_from(ex.id.as_str()).ok();
    let label = segment::label(route.cfg.segment.as_ref(), &ex.segment).to_string();
    let started = ex.started;
    let served_tx = if settles {
        let shadow = plan.map(|p| p.build(&route, &parts));
        let (served_tx, served_rx) = oneshot::channel();
        // Boxed: the settle future is large, and a box is cheaper to move into
        // (and around inside) a task than the whole state machine.
        proxy.tasks.spawn(Box::pin(
            Settle {
                proxy: proxy.clone(),
                route: route.clone(),
                exchange: ex,
                served_by,
                shadow,
                served: served_rx,
            }
            .run(),
        ));
        Some(served_tx)
    } else {
        if let Err(reason) = plan {
            proxy
                .store
                .skip(&route.cfg.name, ex.segment, reason.as_str(), ex.ts_ms);
        }
        None
    };

    let (answered_by, result, failed_candidate) =
        forward(&route, served_by, parts, body, buffered).await;
    let served_tx = match (failed_candidate, served_tx) {
        (Some(failure), Some(tx)) => {
            // The settle task compares the candidate's failure; the incumbent's
            // fallback answer only goes to the client.
            proxy
                .metrics
                .fallbacks
                .with_label_values(&[&route.cfg.name, &label])
                .inc();
            let _ignored = tx.send(failure);
            None
        }
        (_, tx) => tx,
    };
    // With a settle task the upstream's duration is recorded there; without
    // one (only the incumbent answered), here.
    let timer = || Timer {
        histogram: proxy
            .metrics
            .upstream(&route.cfg.name, answered_by.as_str()),
        started,
    };
    let mut resp = match (result, served_tx) {
        (Ok(upstream), served_tx) => {
            let (mut head, inner) = upstream.into_parts();
            headers::strip_hop_by_hop(&mut head.headers);
            let body = match served_tx {
                Some(tx) => ProxyBody::Tee {
                    inner,
                    capture: Capture::new(head.status.as_u16(), started, cap, tx),
                },
                None => ProxyBody::Pass {
                    inner,
                    _timer: timer(),
                },
            };
            Response::from_parts(head, body)
        }
        (Err(e), served_tx) => {
            // The settle task logs the failure; the client gets a short answer.
            match served_tx {
                Some(tx) => {
                    let _ignored = tx.send(Observation::failed(e.to_string(), started.elapsed()));
                }
                None => proxy.metrics.record_upstream(
                    &route.cfg.name,
                    answered_by.as_str(),
                    started.elapsed(),
                ),
            }
            e.to_response()
        }
    };
    let h = resp.headers_mut();
    if let Some(id) = exchange_id {
        h.insert(EXCHANGE_ID, id);
    }
    h.insert(SERVED_BY, HeaderValue::from_static(answered_by.as_str()));
    proxy.metrics.record_request(
        &route.cfg.name,
        &label,
        answered_by.as_str(),
        resp.status().as_u16(),
    );
    resp
}

/// A targeting rule, else the segment's weight against the sticky bucket.
/// Bodies over the cap always go to the incumbent: a fallback could not replay them.
fn decide(state: Option<&RouteState>, route: &RouteRuntime, parts: &Parts, ex: &Exchange) -> Side {
    let Some(body) = ex.body.as_ref() else {
        return Side::Incumbent;
    };
    if route.candidate.is_none() {
        return Side::Incumbent;
    }
    let rule = if route.cfg.rollout.rules.is_empty() {
        None
    } else {
        rollout::rule_for(&route.cfg, parts, &mut JsonBody::new(body))
    };
    rollout::decide(state, &route.cfg, &ex.segment, ex.sticky.as_deref(), rule)
}

type Upstream = Result<Response<Incoming>, Error>;

/// Who answered, their answer, and the serving candidate's failure if it fell back.
type Forwarded = (Side, Upstream, Option<Observation>);

/// Sends the request to the side that serves it. A failing serving candidate
/// (transport error or 5xx) falls back to the incumbent when the route allows.
async fn forward(
    route: &RouteRuntime,
    served_by: Side,
    parts: Parts,
    body: Prepared,
    buffered: Option<Bytes>,
) -> Forwarded {
    let candidate = route
        .candidate
        .as_ref()
        .filter(|_| served_by == Side::Candidate);
    let (Some(candidate), Some(bytes)) = (candidate, buffered) else {
        let up_body = match body {
            Prepared::Buffered(b) => UpBody::full(b),
            Prepared::Streaming(s) => s,
        };
        let uri = route.incumbent.uri_for(parts.uri.path_and_query());
        let req = with_body(parts, up_body, uri);
        return (Side::Incumbent, route.incumbent.send(req).await, None);
    };
    let started = std::time::Instant::now();
    let req = mirror::candidate_request(&route.cfg.mirror, &parts, bytes.clone(), candidate);
    let answer = candidate.send(req).await;
    let failure = match &answer {
        Err(e) => Observation::failed(e.to_string(), started.elapsed()),
        Ok(r) if r.status().is_server_error() => Observation {
            status: Some(r.status().as_u16()),
            latency: started.elapsed(),
            ..Observation::default()
        },
        Ok(_) => return (Side::Candidate, answer, None),
    };
    if !route.cfg.rollout.fallback {
        return (Side::Candidate, answer, None);
    }
    let req = mirror::plain_request(&parts, bytes, &route.incumbent);
    (
        Side::Incumbent,
        route.incumbent.send(req).await,
        Some(failure),
    )
}

/// The client's request head, moved (not copied) onto the incumbent request.
fn with_body(parts: Parts, body: UpBody, uri: http::Uri) -> Request<UpBody> {
    let mut req = Request::new(body);
    *req.method_mut() = parts.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = parts.headers;
    req
}
