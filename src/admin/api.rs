//! The rollout API (docs/src/reference/admin-api.md): routes and their guards, weight and kill-switch
//! changes, the audit trail, feedback and reload. JSON in, JSON out; errors
//! are `{"error": "..."}` with 400, 401, 403, 404 or 409.
//!
//! Every mutating call passes [`Auth::check`], then the JSON content-type
//! check (415), before it reads its body (under the cap, 413). So does every
//! read that returns people's requests or answers (the approvals).

use super::auth::{Auth, Refusal};
use super::endpoint::Endpoint;
use super::limits::{self, BodyError, Limits};
use super::reply::{ACTOR_HEADER, Answer, Failure, count_param, ok, parse};
use super::wire;
use super::{body_refused, respond};
use crate::metrics::Rejected;
use crate::proxy::Proxy;
use crate::proxy::body::ProxyBody;
use crate::rollout::{self, Actor, guard, state};
use crate::runtime::ReloadError;
use crate::segment;
use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use std::net::SocketAddr;

/// Events `GET /api/v1/audit` returns without a `limit`.
const AUDIT_DEFAULT: usize = 1000;
/// The most events one `GET /api/v1/audit` returns, whatever its `limit`.
pub const AUDIT_MAX: usize = 10_000;

/// A mutating call's context: who calls, and the limits its body is read under.
struct Caller<'a> {
    auth: &'a Auth,
    limits: &'a Limits,
    peer: SocketAddr,
    proxy: &'a Proxy,
}

/// Answers an API endpoint ([`Endpoint`]) with its path parameters.
#[allow(clippy::too_many_arguments)]
pub async fn handle(
    proxy: &Proxy,
    auth: &Auth,
    limits: &Limits,
    peer: SocketAddr,
    parts: &Parts,
    body: Incoming,
    endpoint: Endpoint,
    params: &[String],
) -> Response<ProxyBody> {
    let param = params.first().map_or("", String::as_str);
    let answer = if parts.method == Method::POST {
        let caller = Caller {
            auth,
            limits,
            peer,
            proxy,
        };
        match endpoint {
            Endpoint::Weights => {
                mutate(&caller, parts, body, |b| weights(proxy, parts, param, b)).await
            }
            Endpoint::Stage => {
                mutate(&caller, parts, body, |b| stage(proxy, parts, param, b)).await
            }
            Endpoint::Decide => {
                mutate(&caller, parts, body, |b| {
                    super::approvals::decide(proxy, parts, param, b)
                })
                .await
            }
            Endpoint::Feedback => mutate(&caller, parts, body, |b| feedback(proxy, peer, b)).await,
            Endpoint::Reload => mutate(&caller, parts, body, |_| reload(proxy)).await,
            _ => Err(not_found(parts)),
        }
    } else {
        // Reading calls take no body; one is read under the cap and dropped.
        if let Err(e) = limits.read(&parts.headers, body).await {
            return body_refused(proxy, limits, &e);
        }
        match endpoint {
            Endpoint::Routes => ok(StatusCode::OK, routes(proxy)),
            Endpoint::Audit => audit(proxy, parts).await,
            // People's requests and answers: behind the token, like a mutation.
            Endpoint::Approvals => match authorize(auth, peer, parts) {
                Ok(()) => super::approvals::list(proxy, parts).await,
                Err(refused) => Err(refused),
            },
            Endpoint::Approval => match authorize(auth, peer, parts) {
                Ok(()) => super::approvals::one(proxy, param).await,
                Err(refused) => Err(refused),
            },
            // Values read from people's requests: behind the token too.
            Endpoint::Slices => match authorize(auth, peer, parts) {
                Ok(()) => slices(proxy, parts, param).await,
                Err(refused) => Err(refused),
            },
            _ => Err(not_found(parts)),
        }
    };
    let (status, mut text) = match answer {
        Ok(pair) => pair,
        Err(Failure(status, error)) => {
            let text = serde_json::to_string_pretty(&wire::Refusal { error });
            (status, text.unwrap_or_else(|_| "{}".into()))
        }
    };
    text.push('\n');
    let mut resp = respond(status, "application/json", text);
    if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        // The body may still be arriving: close rather than read it.
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    resp
}

fn not_found(parts: &Parts) -> Failure {
    Failure(
        StatusCode::NOT_FOUND,
        format!("no API endpoint {} {}", parts.method, parts.uri.path()),
    )
}

/// The token and `Host` rules of [`Auth::check`] as a 401 or 403: every
/// mutation, and every read that returns request or answer content.
fn authorize(auth: &Auth, peer: SocketAddr, parts: &Parts) -> Result<(), Failure> {
    auth.check(peer, parts).map_err(|refusal| {
        let status = match refusal {
            Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
        };
        Failure(status, refusal.to_string())
    })
}

/// Auth (401/403), then `Content-Type: application/json` (415): a browser's
/// cross-site form or `text/plain` POST is refused before anything is read.
/// Then the body, under the cap (413).
async fn mutate<F: Future<Output = Answer>>(
    caller: &Caller<'_>,
    parts: &Parts,
    body: Incoming,
    f: impl FnOnce(Bytes) -> F,
) -> Answer {
    authorize(caller.auth, caller.peer, parts)?;
    if !limits::is_json(&parts.headers) {
        return Err(Failure(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a mutating call needs `Content-Type: application/json`".into(),
        ));
    }
    let bytes = match caller.limits.read(&parts.headers, body).await {
        Ok(bytes) => bytes,
        Err(e @ BodyError::TooLarge { .. }) => {
            caller
                .proxy
                .metrics
                .record_limit_rejection(Rejected::AdminBody);
            return Err(Failure(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()));
        }
        Err(e @ BodyError::Read(_)) => return Err(Failure(StatusCode::BAD_REQUEST, e.to_string())),
    };
    f(bytes).await
}

fn rollout_failure(e: &rollout::Error) -> Failure {
    let status = match e {
        state::Error::UnknownRoute { .. } | state::Error::UnknownSegment { .. } => {
            StatusCode::NOT_FOUND
        }
        state::Error::BadWeight(_) => StatusCode::BAD_REQUEST,
        state::Error::Unchanged { .. }
        | state::Error::StageUnchanged { .. }
        | state::Error::MirrorUnchanged { .. }
        | state::Error::Moved { .. }
        | state::Error::Gated { .. }
        | state::Error::GateFailed { .. } => StatusCode::CONFLICT,
        state::Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        state::Error::Unrecorded(_) => StatusCode::SERVICE_UNAVAILABLE,
        state::Error::Fleet(rollout::FleetError::Conflict(_)) => StatusCode::CONFLICT,
        state::Error::Fleet(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    Failure(status, e.to_string())
}

/// Weights, mirror switch and guard state of every route and segment.
pub fn routes(proxy: &Proxy) -> wire::Routes {
    let rt = proxy.runtime.load();
    let live = proxy.rollout.snapshot();
    let routes = rt
        .config
        .routes
        .iter()
        .map(|route| {
            let rs = live.get(&route.name).cloned().unwrap_or_default();
            let mut names = state::known_segments(route);
            let extra = rs
                .segments
                .keys()
                .cloned()
                .chain(proxy.rollout.guarded_segments(&route.name));
            for name in extra {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            let segments = names
                .iter()
                .map(|name| wire::SegmentView {
                    segment: name.clone(),
                    weight: rs.weight(name),
                    stage: route.autonomy.shown(rs.stage(name)),
                    autonomy: proxy.rollout.autonomy_status(&route.name, name).map(
                        |(evidence, decision, passing)| wire::AutonomyView {
                            decision: decision.map_or("hold", |d| d.as_str()).to_string(),
                            reason: match decision {
                                Some(guard::Decision::Breach(r)) => Some(r.as_str().to_string()),
                                _ => None,
                            },
                            passing_for_s: passing.map(|d| d.as_secs_f64()),
                            evidence,
                        },
                    ),
                    guard: proxy.rollout.guard_status(&route.name, name).map(
                        |(figures, decision, passing)| {
                            let (samples_to_decide, seconds_to_decide) = proxy
                                .rollout
                                .time_to_decide(route, name, &figures, decision);
                            wire::GuardView {
                                decision: decision.as_str().to_string(),
                                reason: match decision {
                                    guard::Decision::Breach(r) => Some(r.as_str().to_string()),
                                    _ => None,
                                },
                                passing_for_s: passing.map(|d| d.as_secs_f64()),
                                figures,
                                samples_to_decide,
                                seconds_to_decide,
                            }
                        },
                    ),
                })
                .collect();
            let g = &route.guard;
            wire::RouteView {
                route: route.name.clone(),
                mirror: if rs.mirror { "on" } else { "off" }.to_string(),
                has_candidate: route.candidate.is_some(),
                guard_config: wire::GuardConfig {
                    min_samples: g.min_samples,
                    min_agreement: g.min_agreement,
                    max_candidate_error_rate: g.max_candidate_error_rate,
                    max_latency_ratio: g.max_latency_ratio,
                    auto_promote: g.auto_promote,
                    steps: g.steps.clone(),
                    hold_s: g.hold.as_secs_f64(),
                },
                segments,
                gates: proxy.rollout.gate_results(&route.name),
            }
        })
        .collect();
    wire::Routes { routes }
}

/// The rollout history, read on a blocking thread over its own read-only
/// connection (a WAL snapshot): it never waits on, or holds up, the writer
/// that appends to the ledger, nor the rollout's lock. At most [`AUDIT_MAX`]
/// events.
async fn audit(proxy: &Proxy, parts: &Parts) -> Answer {
    let query = parts.uri.query().unwrap_or("");
    let route = segment::query_param(query, "route");
    let limit = count_param(query, "limit")?
        .map_or(AUDIT_DEFAULT, |n| usize::try_from(n).unwrap_or(usize::MAX))
        .min(AUDIT_MAX);
    let store = proxy.store.clone();
    let events = tokio::task::spawn_blocking(move || store.history(route.as_deref(), limit))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let events = events.into_iter().map(wire::EventView::from).collect();
    ok(StatusCode::OK, wire::Audit { events })
}

/// `GET /api/v1/routes/{route}/slices[?since=24h]`: the slice search over
/// the route's newest comparisons (default: its `slices.window`), one at a
/// time (503 after ten seconds waiting for another).
async fn slices(proxy: &Proxy, parts: &Parts, route: &str) -> Answer {
    let rt = proxy.runtime.load();
    let found = state::find_route(&rt.config, route).map_err(|e| rollout_failure(&e))?;
    let since = match segment::query_param(parts.uri.query().unwrap_or(""), "since") {
        None => found.slices.window,
        Some(s) => humantime::parse_duration(&s).map_err(|e| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("since {s:?} is not a duration (e.g. 24h): {e}"),
            )
        })?,
    };
    let opts = crate::slices::Options {
        dbs: vec![rt.config.store.path.clone()],
        route: Some(found.name.clone()),
        since_ms: Some(crate::slices::watch::since(since)),
        routes: rt.config.routes.clone(),
    };
    let result = crate::slices::watch::search_for_api(opts)
        .await
        .map_err(|e| Failure(StatusCode::SERVICE_UNAVAILABLE, e))?;
    let routes = result.map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match routes.into_iter().next() {
        Some(r) => ok(StatusCode::OK, r),
        None => ok(
            StatusCode::OK,
            serde_json::json!({ "route": found.name, "comparisons": 0, "slices": [] }),
        ),
    }
}

async fn weights(proxy: &Proxy, parts: &Parts, route: &str, bytes: Bytes) -> Answer {
    const SHAPE: &str = r#"{"segment": "...", "weight": 5.0, "reason": "..."} or {"mirror": "on"|"off", "reason": "..."}"#;
    let body: wire::WeightChange = parse(&bytes, SHAPE)?;
    let actor = match parts.headers.get(ACTOR_HEADER).map(|v| v.as_bytes()) {
        Some(b"cli") => Actor::Cli,
        _ => Actor::Api,
    };
    let rt = proxy.runtime.load();
    let route = state::find_route(&rt.config, route).map_err(|e| rollout_failure(&e))?;
    let reason = body.reason.unwrap_or_default();
    if reason.trim().is_empty() {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "a reason is required: it goes into the audit trail".into(),
        ));
    }
    let change = match (body.weight, body.mirror.as_deref()) {
        (Some(w), None) => {
            let segment = body.segment.unwrap_or_else(|| segment::DEFAULT.into());
            proxy
                .rollout
                .set_weight(
                    route,
                    &segment,
                    w,
                    actor,
                    &reason,
                    body.force,
                    &proxy.metrics,
                )
                .await
        }
        (None, Some(m @ ("on" | "off"))) => {
            proxy
                .rollout
                .set_mirror(route, m == "on", actor, &reason, &proxy.metrics)
                .await
        }
        _ => {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!("give either a weight or mirror = \"on\"|\"off\": {SHAPE}"),
            ));
        }
    }
    .map_err(|e| rollout_failure(&e))?;
    ok(StatusCode::OK, wire::Changed { change })
}

/// `POST /api/v1/feedback`: one exchange counts once per rater; without a
/// `rater` the caller is the rater (`client:<ip>`), so a retrying client
/// counts once.
async fn feedback(proxy: &Proxy, peer: SocketAddr, bytes: Bytes) -> Answer {
    let mut feedback: wire::Feedback = parse(
        &bytes,
        r#"{"exchange_id": "...", "rating": 1, "comment": "...", "reversed": false, "rater": "..."}"#,
    )?;
    let max = crate::store::events::MAX_RATER;
    match &feedback.rater {
        Some(r) if r.trim().is_empty() || r.len() > max => {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!("rater must be 1 to {max} bytes"),
            ));
        }
        Some(_) => {}
        None => feedback.rater = Some(format!("client:{}", peer.ip().to_canonical())),
    }
    use crate::admin::people::Error as E;
    match crate::admin::people::feedback(proxy, feedback).await {
        Ok(_) => ok(StatusCode::CREATED, Created { ok: true }),
        Err(e @ E::Empty) => Err(Failure(StatusCode::BAD_REQUEST, e.to_string())),
        Err(e @ E::Store(crate::store::Error::UnknownExchange { .. })) => {
            Err(Failure(StatusCode::NOT_FOUND, e.to_string()))
        }
        Err(e) => Err(Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// `POST /api/v1/routes/{route}/stage` (docs/src/concepts/stages.md): raising gated like a
/// weight (the stage's criteria must say pass, unless forced), lowering never.
async fn stage(proxy: &Proxy, parts: &Parts, route: &str, bytes: Bytes) -> Answer {
    const SHAPE: &str =
        r#"{"segment": "...", "stage": "recommend", "reason": "...", "force": false}"#;
    let body: wire::StageChange = parse(&bytes, SHAPE)?;
    let actor = match parts.headers.get(ACTOR_HEADER).map(|v| v.as_bytes()) {
        Some(b"cli") => Actor::Cli,
        _ => Actor::Api,
    };
    let Some(to) = crate::config::Stage::parse(&body.stage) else {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown stage {:?} (stages: {})",
                body.stage,
                crate::config::Stage::names()
            ),
        ));
    };
    let reason = body.reason.unwrap_or_default();
    if reason.trim().is_empty() {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "a reason is required: it goes into the audit trail".into(),
        ));
    }
    let rt = proxy.runtime.load();
    let route = state::find_route(&rt.config, route).map_err(|e| rollout_failure(&e))?;
    let segment = body.segment.unwrap_or_else(|| segment::DEFAULT.into());
    let change = proxy
        .rollout
        .set_stage(
            route,
            &segment,
            to,
            actor,
            &reason,
            body.force,
            &proxy.metrics,
        )
        .await
        .map_err(|e| rollout_failure(&e))?;
    ok(StatusCode::OK, wire::Changed { change })
}

/// The answer to a recorded rating.
#[derive(Serialize)]
struct Created {
    ok: bool,
}

async fn reload(proxy: &Proxy) -> Answer {
    match proxy.reload().await {
        Ok(changes) => ok(
            StatusCode::OK,
            wire::Reloaded {
                reloaded: true,
                changes,
            },
        ),
        Err(e @ ReloadError::NoSource) => Err(Failure(StatusCode::CONFLICT, e.to_string())),
        Err(e @ ReloadError::Invalid(_)) => Err(Failure(StatusCode::BAD_REQUEST, e.to_string())),
        Err(e @ ReloadError::Rollout(_)) => {
            Err(Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
        }
    }
}
