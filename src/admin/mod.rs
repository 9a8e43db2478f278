//! The admin listener: metrics, health and the rollout API ([`api`]), and
//! the CLI's client of that API ([`client`]); both speak [`wire`].
//!
//! Requests are matched against one table ([`endpoint::TABLE`]; a known path
//! with another method gets 405 and `Allow`), which the OpenAPI document
//! ([`openapi`], `GET /api/v1/openapi.json`) is tested against. It shares
//! nothing with the proxy listener but the `Proxy` state. Every request is held to [`limits::Limits`] (body
//! cap, head and request timeouts, at most `admin.max_connections` open);
//! mutating calls, and reads of people's data, pass [`auth::Auth`] first.

pub mod api;
mod approvals;
pub mod auth;
pub mod client;
pub mod endpoint;
pub mod limits;
pub mod openapi;
pub mod people;
mod reply;
pub mod wire;

use crate::metrics::Rejected;
use crate::proxy::Proxy;
use crate::proxy::body::ProxyBody;
use bytes::Bytes;
use endpoint::{Endpoint, Found};
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use limits::{BodyError, Limits};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// Serves the admin API until `stop` resolves.
///
/// HTTP/1.1 only (Prometheus, curl and the CLI speak it): hyper's HTTP/1
/// connection times the request head from the first byte, which its
/// protocol-sniffing `auto` server does not.
pub async fn serve(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    auth: Arc<auth::Auth>,
    limits: Limits,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let open = Arc::new(crate::limit::Limit::new(limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "Admin accept failed");
                    continue;
                }
            },
            () = &mut stop => return,
        };
        // Over the cap the connection is closed unread: nothing waits, nothing grows.
        let Some(slot) = open.try_acquire_owned() else {
            proxy
                .metrics
                .record_limit_rejection(Rejected::AdminConnections);
            drop(stream);
            continue;
        };
        let (proxy, auth) = (proxy.clone(), auth.clone());
        tokio::spawn(async move {
            connection(proxy, auth, limits, stream, peer).await;
            drop(slot);
        });
    }
}

/// One admin connection: each request under `request_timeout`, each head
/// under `header_read_timeout`.
async fn connection(
    proxy: Arc<Proxy>,
    auth: Arc<auth::Auth>,
    limits: Limits,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    // A head that times out after a served request is an idle keep-alive
    // connection closing, not a slow client: only the first one counts.
    let served = Arc::new(AtomicBool::new(false));
    let service = {
        let (proxy, served) = (proxy.clone(), served.clone());
        service_fn(move |req| {
            let (proxy, auth, served) = (proxy.clone(), auth.clone(), served.clone());
            async move {
                served.store(true, Ordering::Relaxed);
                let answer = tokio::time::timeout(
                    limits.request_timeout,
                    route(&proxy, &auth, &limits, peer, req),
                )
                .await;
                Ok::<_, std::convert::Infallible>(answer.unwrap_or_else(|_elapsed| {
                    proxy.metrics.record_limit_rejection(Rejected::AdminTimeout);
                    refuse(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request took longer than the admin listener's {:?}",
                            limits.request_timeout
                        ),
                    )
                }))
            }
        })
    };
    let result = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        if e.is_timeout() && !served.load(Ordering::Relaxed) {
            proxy.metrics.record_limit_rejection(Rejected::AdminTimeout);
        }
        tracing::debug!(error = %e, %peer, "Admin connection ended with an error");
    }
}

async fn route(
    proxy: &Proxy,
    auth: &auth::Auth,
    limits: &Limits,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let (parts, body) = req.into_parts();
    if limits.declared_too_large(&parts.headers) {
        return too_large(proxy, limits);
    }
    let (endpoint, params) = match endpoint::find(&parts.method, parts.uri.path()) {
        Found::Endpoint(endpoint, params) => (endpoint, params),
        found => {
            // A body is read (under the cap) and dropped first, so that
            // every path answers an oversized body alike.
            if let Err(e) = limits.read(&parts.headers, body).await {
                return body_refused(proxy, limits, &e);
            }
            return match found {
                Found::WrongMethod(allowed) => wrong_method(&parts, &allowed),
                _ => error(
                    StatusCode::NOT_FOUND,
                    format!("no admin endpoint {} {}", parts.method, parts.uri.path()),
                ),
            };
        }
    };
    let text = |content: String| respond(StatusCode::OK, "text/plain", content);
    match endpoint {
        Endpoint::Metrics | Endpoint::Healthz | Endpoint::Readyz | Endpoint::OpenApi => {
            // None of these takes a body; one is read (under the cap) and
            // dropped, so that every path answers an oversized body alike.
            if let Err(e) = limits.read(&parts.headers, body).await {
                return body_refused(proxy, limits, &e);
            }
            match endpoint {
                Endpoint::Metrics => respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    proxy.metrics.encode(),
                ),
                Endpoint::Healthz => text("ok\n".into()),
                Endpoint::Readyz => text(readiness(proxy)),
                _ => respond(StatusCode::OK, "application/json", openapi::DOCUMENT),
            }
        }
        _ => api::handle(proxy, auth, limits, peer, &parts, body, endpoint, &params).await,
    }
}

/// 405 for a known path asked with another method, with the methods it takes in `Allow`.
fn wrong_method(parts: &http::request::Parts, allowed: &[Method]) -> Response<ProxyBody> {
    let list: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let mut resp = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} takes {}, not {}",
            parts.uri.path(),
            list.join(", "),
            parts.method
        ),
    );
    if let Ok(value) = header::HeaderValue::from_str(&list.join(", ")) {
        resp.headers_mut().insert(header::ALLOW, value);
    }
    resp
}

/// The answer to a body that was not read: 413 (counted) or 400.
fn body_refused(proxy: &Proxy, limits: &Limits, e: &BodyError) -> Response<ProxyBody> {
    match e {
        BodyError::TooLarge { .. } => too_large(proxy, limits),
        BodyError::Read(_) => refuse(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

fn too_large(proxy: &Proxy, limits: &Limits) -> Response<ProxyBody> {
    proxy.metrics.record_limit_rejection(Rejected::AdminBody);
    let e = BodyError::TooLarge {
        max: limits.max_body,
    };
    refuse(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
}

/// A short JSON error (`wire::Refusal`).
fn error(status: StatusCode, error: String) -> Response<ProxyBody> {
    let text = serde_json::to_string(&wire::Refusal { error }).unwrap_or_else(|_| "{}".into());
    respond(status, "application/json", format!("{text}\n"))
}

/// A refusal whose request may still be sending: a short JSON error, and the
/// connection closed after it so the rest is never read.
fn refuse(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut resp = error(status, text);
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// `/readyz`: ready (the proxy serves whatever its store does: a failing
/// store costs clients nothing, so it never takes the replica out of a load
/// balancer), with a line for each thing that is wrong.
fn readiness(proxy: &Proxy) -> String {
    let mut out = String::from("ready\n");
    if let Some((since, error)) = proxy.store.failing() {
        let since = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(since.max(0) as u64),
        );
        out.push_str(&format!(
            "store: failing since {since}: {error} (rows are dropped and counted)\n"
        ));
    }
    if let Some(fleet) = proxy.rollout.fleet() {
        out.push_str(&fleet.readiness());
        out.push('\n');
    }
    out
}

pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::bytes(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}
