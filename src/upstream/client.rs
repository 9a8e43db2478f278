//! Upstream clients (pooled, HTTP/1.1 and HTTP/2, `https://` through rustls) and
//! the send of a request to an upstream within its timeouts.

use super::backoff::Backoff;
use super::body::UpBody;
use super::error::Error;
use crate::config::Upstream;
use http::header::{HOST, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

/// A pooled client bound to one upstream base URL.
#[derive(Clone)]
pub struct Client {
    /// One pool per serving thread ([`crate::shard`]); one in all unless
    /// the proxy runs a thread per core.
    pools: Arc<[HyperClient<HttpsConnector<HttpConnector>, UpBody>]>,
    upstream: Upstream,
    target: &'static str,
    /// Whether the upstream takes connections, shared by every clone (the
    /// mirror backs off from an upstream that refuses them).
    backoff: Arc<Backoff>,
    /// The `Host` header of every request to a plain HTTP/1 upstream,
    /// rendered once ([`host_value`]).
    host: Option<HeaderValue>,
}

impl Client {
    /// `target` names the side in errors and metrics (`incumbent`, `candidate`).
    pub fn new(upstream: &Upstream, target: &'static str, tls: &rustls::ClientConfig) -> Client {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(upstream.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let mut builder = HyperClient::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(usize::MAX);
        if upstream.http2 {
            builder.http2_only(true);
        }
        let pools = (0..crate::shard::count())
            .map(|_| builder.build(https.clone()))
            .collect();
        Client {
            pools,
            upstream: upstream.clone(),
            target,
            backoff: Arc::default(),
            host: host_value(upstream),
        }
    }

    /// This thread's pool.
    fn pool(&self) -> &HyperClient<HttpsConnector<HttpConnector>, UpBody> {
        &self.pools[crate::shard::current() % self.pools.len()]
    }

    pub fn target(&self) -> &'static str {
        self.target
    }

    /// The upstream's base URL (scheme and authority).
    pub fn base(&self) -> &Uri {
        &self.upstream.uri
    }

    pub fn backoff(&self) -> &Arc<Backoff> {
        &self.backoff
    }

    /// The settings this client was built from (a reload keeps the client,
    /// its pool and its back-off when they are unchanged).
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The upstream URL for a client request's path and query.
    pub fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Uri {
        let mut parts = self.upstream.uri.clone().into_parts();
        parts.path_and_query = match (path_and_query, self.upstream.base_path.is_empty()) {
            // The client's own, shared rather than parsed again.
            (Some(pq), true) => Some(pq.clone()),
            (None, true) => Some(PathAndQuery::from_static("/")),
            (pq, false) => {
                let pq = pq.map_or("/", |pq| pq.as_str());
                PathAndQuery::try_from(format!("{}{pq}", self.upstream.base_path)).ok()
            }
        };
        Uri::from_parts(parts).unwrap_or_else(|_| self.upstream.uri.clone())
    }

    /// Sends `req` and waits for the response head, within the upstream's timeout.
    pub async fn send(&self, req: Request<UpBody>) -> Result<Response<Incoming>, Error> {
        self.send_within(req, self.upstream.timeout).await
    }

    pub async fn send_within(
        &self,
        mut req: Request<UpBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, Error> {
        let target = self.target;
        if let Some(host) = &self.host
            && req.uri().authority() == self.upstream.uri.authority()
        {
            req.headers_mut()
                .entry(HOST)
                .or_insert_with(|| host.clone());
        }
        match tokio::time::timeout(timeout, self.pool().request(req)).await {
            Err(_elapsed) => Err(Error::Timeout {
                target,
                at_connect: false,
            }),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) if is_timeout(&e) => Err(Error::Timeout {
                target,
                at_connect: e.is_connect(),
            }),
            Ok(Err(e)) if e.is_connect() => Err(Error::Connect {
                target,
                at_connect: true,
            }),
            Ok(Err(e)) if is_parse_error(&e) => Err(Error::Protocol { target }),
            Ok(Err(_)) => Err(Error::Connect {
                target,
                at_connect: false,
            }),
        }
    }
}

/// What hyper-util's client would set as `Host` on an HTTP/1 connection to
/// `upstream` (its host, and its port unless the scheme's default), for a
/// plain `http://` upstream spoken to in HTTP/1: hyper-util formats it for
/// every request (about 2,300 instructions), this once per client. Over TLS
/// the connection may turn out HTTP/2 (ALPN), where no `Host` is sent, so
/// hyper-util still decides there.
fn host_value(upstream: &Upstream) -> Option<HeaderValue> {
    let uri = &upstream.uri;
    if upstream.http2 || uri.scheme() != Some(&http::uri::Scheme::HTTP) {
        return None;
    }
    let host = uri.host()?;
    // The port as written, as hyper-util's `Port` displays it.
    let value = match uri.port() {
        Some(port) if port.as_u16() != 80 => format!("{host}:{}", port.as_str()),
        _ => host.to_string(),
    };
    HeaderValue::try_from(value).ok()
}

fn sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// A connect timeout surfaces as an io `TimedOut` somewhere in the chain.
fn is_timeout(e: &hyper_util::client::legacy::Error) -> bool {
    sources(e).any(|s| {
        s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

fn is_parse_error(e: &hyper_util::client::legacy::Error) -> bool {
    sources(e).any(|s| {
        s.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_parse)
    })
}

/// The rustls client config for `https://` upstreams: the webpki roots plus any
/// extra PEM CA certificates (for private CAs and tests).
pub fn tls_client_config(extra_ca_pem: &[Vec<u8>]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in extra_ca_pem {
        for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
            if let Err(e) = roots.add(cert) {
                tracing::warn!(error = %e, "Ignoring an extra CA certificate");
            }
        }
    }
    rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Client {
        let cfg = crate::config::for_test(&format!(
            "[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nincumbent = \"{url}\"\n"
        ));
        Client::new(
            &cfg.routes[0].incumbent,
            "incumbent",
            &tls_client_config(&[]),
        )
    }

    #[test]
    fn upstream_uris_keep_the_path_and_query_under_the_base_path() {
        let pq = |s: &'static str| PathAndQuery::from_static(s);
        let plain = client("http://127.0.0.1:9001");
        assert_eq!(
            plain.uri_for(Some(&pq("/v1/score?x=1"))).to_string(),
            "http://127.0.0.1:9001/v1/score?x=1"
        );
        assert_eq!(plain.uri_for(None).to_string(), "http://127.0.0.1:9001/");
        let based = client("http://127.0.0.1:9001/base");
        assert_eq!(
            based.uri_for(Some(&pq("/v1/score?x=1"))).to_string(),
            "http://127.0.0.1:9001/base/v1/score?x=1"
        );
    }

    #[test]
    fn the_host_rendered_once_is_what_hyper_util_would_send() {
        let host = |url: &str| client(url).host.map(|h| h.to_str().unwrap().to_string());
        assert_eq!(
            host("http://127.0.0.1:9001").as_deref(),
            Some("127.0.0.1:9001")
        );
        assert_eq!(host("http://api.internal").as_deref(), Some("api.internal"));
        assert_eq!(
            host("http://api.internal:80/base").as_deref(),
            Some("api.internal")
        );
        assert_eq!(host("http://[::1]:9001").as_deref(), Some("[::1]:9001"));
        // TLS may negotiate HTTP/2, which sends no `Host`: hyper-util decides.
        assert_eq!(host("https://api.example.com"), None);
    }
}
