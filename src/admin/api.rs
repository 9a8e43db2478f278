//! The rollout API (SPEC §7): routes and their guards, weight and kill-switch
//! changes, the audit trail, feedback and reload. JSON in, JSON out; errors
//! are `{"error": "..."}` with 400, 401, 403, 404 or 409.
//!
//! Every mutating call passes [`Auth::check`] before it reads its body.

use super::auth::{Auth, Refusal};
use super::respond;
use super::wire;
use crate::proxy::Proxy;
use crate::proxy::body::ProxyBody;
use crate::rollout::{self, Actor, guard, state};
use crate::runtime::ReloadError;
use crate::segment;
use bytes::Bytes;
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

/// Header a client sets to be audited as something other than `api` (the CLI sends `cli`).
pub const ACTOR_HEADER: &str = "x-understudy-actor";
const MAX_BODY: usize = 64 * 1024;

/// An API failure: its status and message.
struct Failure(StatusCode, String);

/// A status and a body of the wire format ([`wire`]), as JSON text.
type Answer = Result<(StatusCode, String), Failure>;

fn ok(status: StatusCode, body: impl Serialize) -> Answer {
    serde_json::to_string_pretty(&body)
        .map(|text| (status, text))
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Handles a request under `/api/v1/`.
pub async fn handle(
    proxy: &Proxy,
    auth: &Auth,
    parts: &Parts,
    body: Incoming,
) -> Response<ProxyBody> {
    let path = parts.uri.path().strip_prefix("/api/v1/").unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    let answer = match (&parts.method, segments.as_slice()) {
        (&Method::GET, ["routes"]) => ok(StatusCode::OK, routes(proxy)),
        (&Method::GET, ["audit"]) => audit(proxy, parts),
        (&Method::POST, ["routes", route, "weights"]) => {
            mutate(auth, parts, body, |b| weights(proxy, parts, route, b)).await
        }
        (&Method::POST, ["feedback"]) => mutate(auth, parts, body, |b| feedback(proxy, b)).await,
        (&Method::POST, ["reload"]) => mutate(auth, parts, body, |_| reload(proxy)).await,
        _ => Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no API endpoint {} {}", parts.method, parts.uri.path()),
        )),
    };
    let (status, mut text) = match answer {
        Ok(pair) => pair,
        Err(Failure(status, error)) => {
            let text = serde_json::to_string_pretty(&wire::Refusal { error });
            (status, text.unwrap_or_else(|_| "{}".into()))
        }
    };
    text.push('\n');
    respond(status, "application/json", text)
}

async fn mutate<F: Future<Output = Answer>>(
    auth: &Auth,
    parts: &Parts,
    body: Incoming,
    f: impl FnOnce(Bytes) -> F,
) -> Answer {
    if let Err(refusal) = auth.check(&parts.headers) {
        let status = match refusal {
            Refusal::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
        };
        return Err(Failure(status, refusal.to_string()));
    }
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        })?
        .to_bytes();
    f(bytes).await
}

fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8], shape: &str) -> Result<T, Failure> {
    serde_json::from_slice(bytes).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body ({e}); expected {shape}"),
        )
    })
}

fn rollout_failure(e: &rollout::Error) -> Failure {
    let status = match e {
        state::Error::UnknownRoute { .. } | state::Error::UnknownSegment { .. } => {
            StatusCode::NOT_FOUND
        }
        state::Error::BadWeight(_) => StatusCode::BAD_REQUEST,
        state::Error::Unchanged { .. } | state::Error::Gated { .. } => StatusCode::CONFLICT,
        state::Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        state::Error::Unrecorded(_) => StatusCode::SERVICE_UNAVAILABLE,
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
                    guard: proxy.rollout.guard_status(&route.name, name).map(
                        |(figures, decision, passing)| wire::GuardView {
                            decision: decision.as_str().to_string(),
                            reason: match decision {
                                guard::Decision::Breach(r) => Some(r.as_str().to_string()),
                                _ => None,
                            },
                            passing_for_s: passing.map(|d| d.as_secs_f64()),
                            figures,
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
            }
        })
        .collect();
    wire::Routes { routes }
}

fn audit(proxy: &Proxy, parts: &Parts) -> Answer {
    let query = parts.uri.query().unwrap_or("");
    let route = segment::query_param(query, "route");
    let limit = match segment::query_param(query, "limit") {
        None => 1000,
        Some(l) => l.parse().map_err(|_| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("limit {l:?} is not a count"),
            )
        })?,
    };
    let events = proxy
        .rollout
        .history(route.as_deref(), limit)
        .map_err(|e| rollout_failure(&e))?;
    let events = events.into_iter().map(wire::EventView::from).collect();
    ok(StatusCode::OK, wire::Audit { events })
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
                .set_mirror(route, m == "on", actor, &reason)
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

async fn feedback(proxy: &Proxy, bytes: Bytes) -> Answer {
    let feedback: wire::Feedback = parse(
        &bytes,
        r#"{"exchange_id": "...", "rating": 1, "comment": "..."}"#,
    )?;
    match proxy.store.add_feedback(feedback).await {
        Ok(()) => ok(StatusCode::CREATED, Created { ok: true }),
        Err(e @ crate::store::Error::UnknownExchange { .. }) => {
            Err(Failure(StatusCode::NOT_FOUND, e.to_string()))
        }
        Err(e) => Err(Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
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
