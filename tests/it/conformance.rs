//! HTTP conformance (README "HTTP conformance"): one host per request for
//! routing and forwarding (RFC 9112 §3.2, RFC 9113 §8.3.1), transfer codings
//! (RFC 9112 §6.1), HTTP/2 field values (RFC 9113 §8.2.1), header names with
//! `_`, and ALPN deciding the protocol on TLS. HTTP/1.1 on raw sockets,
//! HTTP/2 with the `h2` crate (it sends what hyper's client would not).

use crate::support::*;
use bytes::Bytes;
use http::Request;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Two routes: `internal` for the host `internal.example`, and a catch-all `public`.
async fn two_routes(listen_extra: &str) -> (TestProxy, Upstream, Upstream) {
    let internal = upstream().echo().spawn().await;
    let public = upstream().echo().spawn().await;
    let routes = format!(
        "[[routes]]\nname = \"internal\"\npath_prefix = \"/\"\nhost = \"internal.example\"\nincumbent = \"{}\"\n\
         [[routes]]\nname = \"public\"\npath_prefix = \"/\"\nincumbent = \"{}\"\n",
        internal.url(),
        public.url()
    );
    let p = proxy_listen_routes(listen_extra, &routes).await;
    (p, internal, public)
}

/// Writes `request` on a fresh connection and reads until the proxy closes it
/// (each request here says `Connection: close`, or is refused).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, request: &[u8]) -> String {
    s.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no answer or close within {PATIENCE:?}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

async fn raw(p: &TestProxy, request: &str) -> String {
    let s = TcpStream::connect(p.addr).await.unwrap();
    exchange(s, request.as_bytes()).await
}

async fn rejections(p: &TestProxy, limit: &str) -> f64 {
    let series = format!("understudy_limit_rejections_total{{limit=\"{limit}\"}}");
    metric(&p.metrics().await, &series)
}

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or(answer)
}

fn forwarded_host(seen: &Seen) -> (Option<&str>, Option<&str>) {
    let get = |name: &str| seen.headers.get(name).map(|v| v.to_str().unwrap());
    (get("x-forwarded-host"), get("forwarded"))
}

#[tokio::test]
async fn a_host_that_disagrees_with_the_absolute_target_gets_400_and_nothing_is_forwarded() {
    let (mut p, internal, public) = two_routes("").await;
    for (target, host) in [
        ("http://internal.example/", "attacker.example"),
        ("http://public.example/", "internal.example"),
        ("http://internal.example:8080/", "internal.example"),
    ] {
        let answer = raw(
            &p,
            &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(
            status(&answer),
            "400",
            "{target} with Host {host}: {answer}"
        );
    }
    assert!(internal.requests().is_empty() && public.requests().is_empty());
    assert_eq!(rejections(&p, "host").await, 3.0);
    p.stop().await;
}

#[tokio::test]
async fn an_absolute_target_routes_and_forwards_by_its_authority() {
    let (mut p, internal, public) = two_routes("").await;
    // The same host in other case and with the scheme's default port agrees.
    let answer = raw(
        &p,
        "GET http://internal.example/x HTTP/1.1\r\nHost: Internal.Example:80\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&answer), "200", "{answer}");
    assert!(public.requests().is_empty());
    let seen = internal.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/x");
    assert_eq!(
        forwarded_host(&seen[0]),
        (
            Some("internal.example"),
            Some("for=127.0.0.1;proto=http;host=\"internal.example\"")
        )
    );
    p.stop().await;
}

#[tokio::test]
async fn an_http11_request_without_host_gets_400() {
    let (mut p, internal, public) = two_routes("").await;
    for request in [
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET http://internal.example/ HTTP/1.1\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw(&p, request).await;
        assert_eq!(status(&answer), "400", "{request:?}: {answer}");
        assert!(
            answer.contains("Host"),
            "a short body that says why: {answer}"
        );
    }
    assert!(internal.requests().is_empty() && public.requests().is_empty());
    assert_eq!(rejections(&p, "host").await, 2.0);
    p.stop().await;
}

#[tokio::test]
async fn an_http10_request_without_host_is_served() {
    let (mut p, internal, public) = two_routes("").await;
    let answer = raw(&p, "GET /old HTTP/1.0\r\n\r\n").await;
    assert_eq!(status(&answer), "200", "{answer}");
    assert!(internal.requests().is_empty());
    assert_eq!(forwarded_host(&public.requests()[0]).0, None);
    p.stop().await;
}

#[tokio::test]
async fn two_host_fields_get_400() {
    let (mut p, internal, public) = two_routes("").await;
    for hosts in [
        "Host: internal.example\r\nHost: public.example",
        "Host: internal.example\r\nHost: internal.example",
    ] {
        let answer = raw(
            &p,
            &format!("GET / HTTP/1.1\r\n{hosts}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status(&answer), "400", "{hosts:?}: {answer}");
    }
    assert!(internal.requests().is_empty() && public.requests().is_empty());
    assert_eq!(rejections(&p, "host").await, 2.0);
    p.stop().await;
}

#[tokio::test]
async fn an_invalid_host_gets_400() {
    let (mut p, internal, public) = two_routes("").await;
    let invalid = [
        "a, b",
        "internal.example, public.example",
        "internal.example,public.example",
        "user@a",
        "a/evil?x",
        "a\\b",
        "",
        "a b",
        "a:80:80",
        "a:x",
        "a:65536",
        "[::1",
        "[not-ipv6]",
        "::1",
        "%zz.example",
    ];
    for host in invalid {
        let answer = raw(
            &p,
            &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status(&answer), "400", "Host {host:?}: {answer}");
    }
    assert!(internal.requests().is_empty() && public.requests().is_empty());
    assert_eq!(rejections(&p, "host").await, invalid.len() as f64);
    p.stop().await;
}

#[tokio::test]
async fn valid_hosts_are_forwarded_as_sent() {
    let (mut p, _internal, public) = two_routes("").await;
    let valid = [
        "a.example:8080",
        "[::1]:8080",
        "[2001:db8::7]",
        "127.0.0.1",
        "xn--bcher-kva.example",
        "under_score.example",
        "%41.example",
        "a.example:",
    ];
    for host in valid {
        let answer = raw(
            &p,
            &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status(&answer), "200", "Host {host:?}: {answer}");
    }
    let seen = public.requests();
    for (host, seen) in valid.iter().zip(&seen) {
        assert_eq!(forwarded_host(seen).0, Some(*host));
    }
    p.stop().await;
}

#[tokio::test]
async fn transfer_codings_other_than_chunked_get_501() {
    let (mut p, internal, public) = two_routes("").await;
    let body = "5\r\nhello\r\n0\r\n\r\n";
    for codings in [
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: identity, chunked",
        "Transfer-Encoding: cow, chunked",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
    ] {
        let answer = raw(
            &p,
            &format!("POST / HTTP/1.1\r\nHost: x\r\n{codings}\r\nConnection: close\r\n\r\n{body}"),
        )
        .await;
        assert_eq!(status(&answer), "501", "{codings:?}: {answer}");
    }
    let answer = raw(
        &p,
        &format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\nConnection: close\r\n\r\n{body}"),
    )
    .await;
    assert_eq!(status(&answer), "400", "chunked twice: {answer}");
    assert!(internal.requests().is_empty() && public.requests().is_empty());
    assert_eq!(rejections(&p, "transfer_coding").await, 5.0);
    // `chunked` alone is decoded and forwarded.
    let answer = raw(
        &p,
        &format!("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n{body}"),
    )
    .await;
    assert_eq!(status(&answer), "200", "{answer}");
    assert_eq!(&public.requests()[0].body[..], b"hello");
    p.stop().await;
}

#[tokio::test]
async fn header_names_with_underscores_are_dropped_unless_allowed() {
    let request = "POST / HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\nX_Api_Key: k\r\n\
                   X-Kept: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    let (mut p, _internal, public) = two_routes("").await;
    let answer = raw(&p, request).await;
    assert_eq!(status(&answer), "200", "{answer}");
    let seen = &public.requests()[0];
    assert!(!seen.headers.contains_key("transfer_encoding"), "{seen:?}");
    assert!(!seen.headers.contains_key("x_api_key"), "{seen:?}");
    assert_eq!(seen.headers["x-kept"], "1");
    assert_eq!(&seen.body[..], b"hello");
    p.stop().await;

    let (mut p, _internal, public) = two_routes("underscores_in_headers = true").await;
    let answer = raw(&p, request).await;
    assert_eq!(status(&answer), "200", "{answer}");
    let seen = &public.requests()[0];
    assert_eq!(seen.headers["transfer_encoding"], "chunked");
    assert_eq!(seen.headers["x_api_key"], "k");
    p.stop().await;
}

#[tokio::test]
async fn a_fragment_is_the_only_change_to_the_request_target() {
    let (mut p, _internal, public) = two_routes("").await;
    let answer = raw(
        &p,
        "GET /a/%2Fb;p?q=%20&r#frag HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&answer), "200", "{answer}");
    assert_eq!(public.requests()[0].uri, "/a/%2Fb;p?q=%20&r");
    p.stop().await;
}

/// Sends `req` (and no body) on a new HTTP/2 connection over `io`.
async fn h2_request<S>(io: S, req: Request<()>) -> Result<(u16, Bytes), h2::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, conn) = h2::client::handshake(io).await?;
    tokio::spawn(async move {
        let _ended = conn.await;
    });
    let (resp, _) = client.ready().await?.send_request(req, true)?;
    let resp = resp.await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _released = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    Ok((status, Bytes::from(bytes)))
}

fn h2_get(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(()).unwrap()
}

#[tokio::test]
async fn http2_authority_and_host_must_agree_and_carry_no_userinfo() {
    let (mut p, internal, public) = two_routes("").await;
    let send = |req| async {
        let tcp = TcpStream::connect(p.addr).await.unwrap();
        let (status, _) = h2_request(tcp, req).await.unwrap();
        status
    };
    let refused = [
        h2_get("http://internal.example/", &[("host", "public.example")]),
        h2_get("http://public.example/", &[("host", "internal.example")]),
        h2_get(
            "http://internal.example/",
            &[("host", "internal.example"), ("host", "internal.example")],
        ),
        h2_get("http://user@internal.example/", &[]),
        h2_get("http://user:pw@public.example/", &[]),
    ];
    let n = refused.len();
    for req in refused {
        let shown = format!("{} {:?}", req.uri(), req.headers());
        assert_eq!(send(req).await, 400, "{shown}");
    }
    assert!(internal.requests().is_empty() && public.requests().is_empty());
    assert_eq!(rejections(&p, "host").await, n as f64);
    // Agreeing: routed and forwarded by `:authority`.
    let req = h2_get(
        "http://internal.example/x",
        &[("host", "INTERNAL.example:80")],
    );
    assert_eq!(send(req).await, 200);
    assert_eq!(send(h2_get("http://internal.example:80/y", &[])).await, 200);
    let seen = internal.requests();
    assert_eq!(forwarded_host(&seen[0]).0, Some("internal.example"));
    assert_eq!(forwarded_host(&seen[1]).0, Some("internal.example:80"));
    p.stop().await;
}

#[tokio::test]
async fn http2_field_values_with_edge_whitespace_get_400() {
    let (mut p, internal, public) = two_routes("").await;
    for value in [" leading", "\tleading", "trailing ", "trailing\t"] {
        let req = h2_get("http://public.example/", &[("x-value", value)]);
        let tcp = TcpStream::connect(p.addr).await.unwrap();
        let (status, _) = h2_request(tcp, req).await.unwrap();
        assert_eq!(status, 400, "{value:?}");
    }
    assert!(internal.requests().is_empty() && public.requests().is_empty());
    assert_eq!(rejections(&p, "field_value").await, 4.0);
    // Inner whitespace is fine.
    let req = h2_get("http://public.example/", &[("x-value", "a b\tc")]);
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    assert_eq!(h2_request(tcp, req).await.unwrap().0, 200);
    assert_eq!(public.requests()[0].headers["x-value"], "a b\tc");
    p.stop().await;
}

/// A TLS listener with a fresh self-signed certificate for `localhost`.
async fn tls_proxy() -> (TestProxy, Upstream, rcgen::CertifiedKey, tempfile::TempDir) {
    let incumbent = upstream().echo().spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let listen = format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}",
        cert_path.display(),
        key_path.display()
    );
    let p = proxy_listen(&listen, &incumbent.url()).await;
    (p, incumbent, cert, dir)
}

/// A TLS connection to the proxy offering `alpn` (nothing when empty).
async fn tls_connect(
    p: &TestProxy,
    cert: &rcgen::CertifiedKey,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let negotiated = tls.get_ref().1.alpn_protocol();
    assert_eq!(
        negotiated,
        alpn.first().copied(),
        "the proxy takes the offer"
    );
    tls
}

const H1_GET: &[u8] = b"GET /h1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn tls_alpn_h2_is_served_http2_only() {
    let (mut p, incumbent, cert, _dir) = tls_proxy().await;
    let tls = tls_connect(&p, &cert, &[b"h2"]).await;
    let req = h2_get("https://localhost/h2", &[]);
    assert_eq!(h2_request(tls, req).await.unwrap().0, 200);
    // HTTP/1.1 on a connection that negotiated h2 is not answered in HTTP/1.1.
    let tls = tls_connect(&p, &cert, &[b"h2"]).await;
    let answer = exchange(tls, H1_GET).await;
    assert!(!answer.starts_with("HTTP/1.1"), "{answer:?}");
    let seen = incumbent.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].uri, "/h2");
    p.stop().await;
}

#[tokio::test]
async fn tls_alpn_http11_or_none_is_served_http1_only() {
    let (mut p, incumbent, cert, _dir) = tls_proxy().await;
    for alpn in [&[&b"http/1.1"[..]][..], &[]] {
        let tls = tls_connect(&p, &cert, alpn).await;
        let answer = exchange(tls, H1_GET).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        // The HTTP/2 preface on such a connection is not served as HTTP/2.
        let tls = tls_connect(&p, &cert, alpn).await;
        let req = h2_get("https://localhost/h2", &[]);
        let refused = tokio::time::timeout(PATIENCE, h2_request(tls, req)).await;
        assert!(matches!(refused, Ok(Err(_))), "{refused:?}");
    }
    let seen = incumbent.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|s| s.uri == "/h1"));
    p.stop().await;
}

#[tokio::test]
async fn a_plain_listener_serves_both_by_sniffing() {
    let (mut p, _internal, public) = two_routes("").await;
    let answer = raw(
        &p,
        "GET /h1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let tcp = TcpStream::connect(p.addr).await.unwrap();
    let req = h2_get("http://x/h2c", &[]);
    assert_eq!(h2_request(tcp, req).await.unwrap().0, 200);
    let uris: Vec<_> = public.requests().iter().map(|s| s.uri.clone()).collect();
    assert_eq!(uris, ["/h1", "/h2c"]);
    p.stop().await;
}
