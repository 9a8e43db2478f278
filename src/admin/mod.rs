//! The admin listener: metrics, health and the rollout API ([`api`]), and
//! the CLI's client of that API ([`client`]); both speak [`wire`].
//!
//! A small `(method, path)` match; it shares nothing with the proxy listener
//! but the `Proxy` state. Mutating calls pass [`auth::Auth`] first.

pub mod api;
pub mod auth;
pub mod client;
pub mod wire;

use crate::proxy::Proxy;
use crate::proxy::body::ProxyBody;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves the admin API until `stop` resolves.
pub async fn serve(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    auth: Arc<auth::Auth>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "Admin accept failed");
                    continue;
                }
            },
            () = &mut stop => return,
        };
        let proxy = proxy.clone();
        let auth = auth.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                let auth = auth.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&proxy, &auth, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "Admin connection ended with an error");
            }
        });
    }
}

async fn route(proxy: &Proxy, auth: &auth::Auth, req: Request<Incoming>) -> Response<ProxyBody> {
    let (parts, body) = req.into_parts();
    if parts.uri.path().starts_with("/api/v1/") {
        return api::handle(proxy, auth, &parts, body).await;
    }
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/metrics") => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            proxy.metrics.encode(),
        ),
        (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/readyz") => respond(StatusCode::OK, "text/plain", readiness(proxy)),
        _ => {
            let _drained = body.collect().await;
            respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                format!("no admin endpoint {}\n", parts.uri.path()),
            )
        }
    }
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
