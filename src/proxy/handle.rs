//! The request path: admission, who serves, the shadow copy planned, the
//! answer; step by step in `docs/src/design/architecture.md`.

use super::Proxy;
use super::answer::{Ctx, Reporter, candidate, incumbent};
use super::body::{self, Prepared, ProxyBody};
use super::error::Error;
use super::headers::{self, EXCHANGE_ID, SERVED_BY};
use super::mirror::{self, Plan, SkipReason};
use crate::config::Side;
use crate::config::Stage;
use crate::exchange::Exchange;
use crate::metrics::Rejected;
use crate::rollout;
use crate::runtime::RouteRuntime;
use crate::segment::{self, JsonBody};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use std::sync::Arc;

/// Handles one client request. Always answers; errors become short plain-text bodies.
pub async fn handle(
    proxy: Arc<Proxy>,
    req: Request<Incoming>,
    hop: &headers::Forwarding,
) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    let (ctx, body) = match admit(proxy, &mut parts, body).await {
        Ok(admitted) => admitted,
        Err(refused) => return refused.to_response(),
    };
    // Held until the response head is ready: bounds requests queued on upstreams.
    let Some(_slot) = ctx.proxy.in_flight.try_acquire() else {
        return Error::Overloaded.to_response();
    };
    let (proxy, route, cap) = (&ctx.proxy, &ctx.route, ctx.cap);
    let mut ex = Exchange::begin(&route.cfg, &parts, body.buffered());
    let (chosen, stage, mirror_on) = who_serves(proxy, route, &parts, &ex);
    ex.canary = (chosen == Side::Candidate).then_some(stage);
    let serving = super::stage::serving(chosen, ex.canary);
    let mut plan = mirror::plan(route, mirror_on, &ex, serving.other(), cap);
    if plan.is_ok() && crate::budget::spent(&proxy.metrics.capture_bytes, ctx.budget) {
        // Its permit goes back with the plan.
        plan = Err(SkipReason::CaptureBudget);
    }
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
    let (side, mut resp) = answer(&ctx, label, serving, ex, plan, parts, body).await;
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

/// The client's answer and who gave it: at `recommend` the incumbent's with
/// the candidate's suggestion; otherwise `serving`'s, with the shadow copy
/// (or the fallback) on the side.
async fn answer(
    ctx: &Ctx,
    label: &str,
    serving: Side,
    ex: Exchange,
    plan: Result<Plan, SkipReason>,
    parts: Parts,
    body: Prepared,
) -> (Side, Response<ProxyBody>) {
    if ex.canary == Some(Stage::Recommend) {
        let resp = super::suggest::serve(ctx, ex, plan, parts, body).await;
        return (Side::Incumbent, resp);
    }
    let (answer, reporter) = match serving {
        Side::Incumbent => {
            let reporter = Reporter::beside_incumbent(ctx, ex, plan, &parts);
            (incumbent(&ctx.route, parts, body).await, reporter)
        }
        Side::Candidate => candidate(ctx, ex, plan, parts, body).await,
    };
    if answer.fell_back {
        ctx.proxy
            .metrics
            .record_fallback(&ctx.route.cfg.name, label);
    }
    (answer.side, reporter.respond(ctx, answer))
}

/// What is checked before an exchange begins, from one snapshot of the
/// runtime: the path, the header count, the route, and the body read under
/// the cap within `body_read_timeout` (before an in-flight slot is taken: a
/// client still uploading holds none, and gets 408 when it is too slow).
async fn admit(
    proxy: Arc<Proxy>,
    parts: &mut Parts,
    body: Incoming,
) -> Result<(Ctx, Prepared), Error> {
    if crate::route::has_dot_segment(parts.uri.path()) {
        let path = parts.uri.path().to_string();
        return Err(Error::DotSegment { path });
    }
    let (route, (cap, budget), max_headers, body_read_timeout) = {
        let rt = proxy.runtime.now();
        let (store, listen) = (&rt.config.store, &rt.config.listen);
        // One host for routing and forwarding; malformed heads refused (400/501).
        if let Err(refused) = super::conform::check(parts, listen.underscores_in_headers) {
            proxy.metrics.record_limit_rejection(refused.limit());
            return Err(refused.into());
        }
        let route = rt.find(parts).cloned();
        let limits = (listen.max_headers, listen.body_read_timeout);
        let caps = (store.max_body_bytes, store.capture_budget);
        (route, caps, limits.0, limits.1)
    };
    // HTTP/1 heads are held to this by hyper; HTTP/2 ones are checked here.
    if parts.headers.len() > max_headers {
        proxy.metrics.record_limit_rejection(Rejected::Headers);
        return Err(Error::TooManyHeaders);
    }
    let Some(route) = route else {
        let path = parts.uri.path().to_string();
        return Err(Error::NoRoute { path });
    };
    let deadline = tokio::time::Instant::now() + body_read_timeout;
    let body = match tokio::time::timeout_at(deadline, body::prepare(body, cap, deadline)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(Error::BodyRead(e.to_string())),
        Err(_elapsed) => {
            proxy.metrics.record_limit_rejection(Rejected::BodyTimeout);
            return Err(Error::BodyTimeout);
        }
    };
    Ok((
        Ctx {
            proxy,
            route,
            cap,
            budget,
        },
        body,
    ))
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

impl Prepared {
    /// The whole body, when it was buffered (within the cap).
    pub fn buffered(&self) -> Option<&Bytes> {
        match self {
            Prepared::Buffered(b) => Some(b),
            Prepared::Streaming(_) => None,
        }
    }
}
