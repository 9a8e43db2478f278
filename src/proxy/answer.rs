//! The answer a client gets and where it goes besides the client: the
//! forward to the serving side (with the candidate's fallback to the
//! incumbent), the tee that captures it for the settle task, or the timer of
//! a request that settles nothing. Shared by the plain path ([`super::handle`])
//! and the `recommend` stage ([`super::suggest`]).

use super::Proxy;
use super::body::{Capture, Prepared, ProxyBody, Timer};
use super::error::Error;
use super::headers;
use super::mirror::{self, Plan, SkipReason};
use super::settle::Other;
use crate::coding::Coding;
use crate::config::Side;
use crate::exchange::Exchange;
use crate::observation::Observation;
use crate::runtime::RouteRuntime;
use crate::upstream::{self, body::UpBody};
use http::Response;
use http::request::Parts;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// What every step of one exchange's path shares: the proxy, its route
/// (one snapshot of the runtime, taken once) and the body cap.
pub(super) struct Ctx {
    pub(super) proxy: Arc<Proxy>,
    pub(super) route: Arc<RouteRuntime>,
    /// `store.max_body_bytes`: what is buffered, captured and compared.
    pub(super) cap: usize,
    /// `store.capture_budget`: answer bytes held for comparison at once.
    pub(super) budget: usize,
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
    pub(super) fn beside_incumbent(
        ctx: &Ctx,
        ex: Exchange,
        plan: Result<Plan, SkipReason>,
        parts: &Parts,
    ) -> Reporter {
        let (proxy, route) = (&ctx.proxy, &ctx.route);
        match plan {
            Ok(plan) => {
                let copy = Other::Copy(plan.build(route, parts));
                Reporter::settle(ctx, ex, Side::Incumbent, copy)
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
    pub(super) fn settle(ctx: &Ctx, exchange: Exchange, served_by: Side, other: Other) -> Reporter {
        let (tx, served) = oneshot::channel();
        super::settle::spawn(&ctx.proxy, &ctx.route, exchange, served_by, other, served);
        Reporter::Settle(tx)
    }

    /// The client's response: the upstream's answer streamed through (and
    /// captured for the settle task), or a short error.
    pub(super) fn respond(self, ctx: &Ctx, answer: Answer) -> Response<ProxyBody> {
        let (proxy, route, cap) = (&ctx.proxy, &ctx.route, ctx.cap);
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
                            .coded(Coding::of(&head.headers))
                            .charged(&proxy.metrics.capture_bytes),
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
/// the comparison (docs/src/concepts/canary.md "Never twice"); the planned copy is not sent.
pub(super) async fn candidate(
    ctx: &Ctx,
    ex: Exchange,
    plan: Result<Plan, SkipReason>,
    parts: Parts,
    body: Prepared,
) -> (Answer, Reporter) {
    let route = &ctx.route;
    // `who_serves` gives the candidate only a buffered body and a route with one.
    let (Some(client), Prepared::Buffered(bytes)) = (&route.live.candidate, &body) else {
        let reporter = Reporter::beside_incumbent(ctx, ex, plan, &parts);
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
        let reporter = Reporter::settle(ctx, ex, Side::Incumbent, other);
        let mut answer = incumbent(route, parts, body).await;
        answer.fell_back = true;
        return (answer, reporter);
    }
    let other = match plan {
        Ok(plan) => Other::Copy(plan.build(route, &parts)),
        Err(reason) => Other::Skipped(reason),
    };
    let reporter = Reporter::settle(ctx, ex, Side::Candidate, other);
    let answer = Answer {
        side: Side::Candidate,
        result,
        sent,
        fell_back: false,
    };
    (answer, reporter)
}
