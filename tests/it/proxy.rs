//! The client's path: byte-for-byte answers, errors with short bodies, streaming, TLS, HTTP/2.

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use std::time::Duration;

fn without_volatile(mut h: http::HeaderMap) -> http::HeaderMap {
    for name in ["date", "x-understudy-exchange-id", "x-understudy-served-by"] {
        h.remove(name);
    }
    h
}

#[tokio::test]
async fn incumbent_answer_is_returned_byte_for_byte_for_get_and_post() {
    let incumbent = upstream()
        .status(201)
        .json(r#"{"score": 0.91, "label": "hot"}"#)
        .header("x-upstream", "rules")
        .header("cache-control", "no-store")
        .spawn()
        .await;
    let candidate = upstream().json(r#"{"score": 0.5}"#).spawn().await;
    let mut p = proxy(&route(
        "score",
        "/v1/score",
        &incumbent.url(),
        &candidate.url(),
        r#"mirror = { methods = ["GET", "POST"] }"#,
    ))
    .await;

    for post_body in [None, Some(r#"{"lead": 7}"#)] {
        let (direct, via) = match post_body {
            None => (
                get(&format!("{}/v1/score?x=1", incumbent.url())).await,
                get(&p.url("/v1/score?x=1")).await,
            ),
            Some(b) => (
                post(&format!("{}/v1/score", incumbent.url()), b).await,
                post(&p.url("/v1/score"), b).await,
            ),
        };
        assert_eq!(via.0, direct.0);
        assert_eq!(via.2, direct.2);
        assert_eq!(without_volatile(via.1.clone()), without_volatile(direct.1));
        assert_eq!(via.1["x-understudy-served-by"], "incumbent");
        assert_eq!(via.1["x-understudy-exchange-id"].len(), 28);
    }
    p.stop().await;
    let rows = p.rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].method, "GET");
    assert_eq!(rows[1].method, "POST");
    assert!(
        rows.iter()
            .all(|r| r.verdict == "mismatch" && r.incumbent_status == Some(201))
    );
}

#[tokio::test]
async fn forwarding_headers_are_set_and_hop_by_hop_removed() {
    let incumbent = upstream().spawn().await;
    let mut p = proxy(&format!(
        "[[routes]]\nname = \"a\"\npath_prefix = \"/\"\nincumbent = \"{}\"\n",
        incumbent.url()
    ))
    .await;
    let req = Request::get(p.url("/x"))
        .header("x-forwarded-for", "10.1.2.3")
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .body(Full::default())
        .unwrap();
    let (status, _, _) = send(req).await;
    assert_eq!(status, 200);
    let seen = &incumbent.requests()[0];
    assert_eq!(seen.headers["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["via"], "1.1 understudy");
    assert!(seen.headers.get("x-hop").is_none());
    assert!(seen.headers.get("keep-alive").is_none());
    assert!(
        seen.headers["x-forwarded-host"]
            .to_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    // Host is the upstream's, never a destination chosen by the client.
    assert_eq!(seen.headers["host"], incumbent.addr().to_string().as_str());
    p.stop().await;
}

#[tokio::test]
async fn unknown_route_is_404_naming_the_path_and_forwards_nothing() {
    let incumbent = upstream().spawn().await;
    let mut p = proxy(&route(
        "score",
        "/v1/score",
        &incumbent.url(),
        &incumbent.url(),
        "",
    ))
    .await;
    let (status, headers, body) = get(&p.url("/v2/other")).await;
    assert_eq!(status, 404);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(&body[..], b"no route for /v2/other\n");
    assert!(incumbent.requests().is_empty());
    p.stop().await;
    assert!(p.rows().is_empty());
}

#[tokio::test]
async fn incumbent_down_is_502_with_a_short_body_and_a_row() {
    let dead = dead_addr().await;
    let candidate = upstream().spawn().await;
    let mut p = proxy(&route(
        "score",
        "/v1",
        &format!("http://{dead}"),
        &candidate.url(),
        "",
    ))
    .await;
    let (status, _, body) = get(&p.url("/v1/a")).await;
    assert_eq!(status, 502);
    assert_eq!(
        &body[..],
        b"upstream incumbent refused or reset the connection\n"
    );
    p.stop().await;
    let rows = p.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].verdict, "incumbent_error");
    assert!(rows[0].incumbent_error.is_some());
}

#[tokio::test]
async fn incumbent_garbage_is_502_and_timeout_is_504() {
    let (garbage, _g) = raw_upstream(|_| Some(b"this is not http\r\n\r\n")).await;
    let slow = upstream().delay(Duration::from_secs(5)).spawn().await;
    let mut p = proxy(&format!(
        "[[routes]]\nname = \"garbage\"\npath_prefix = \"/garbage\"\nincumbent = \"http://{garbage}\"\n\
         [[routes]]\nname = \"slow\"\npath_prefix = \"/slow\"\nincumbent = \"{}\"\ntimeout = \"300ms\"\n",
        slow.url()
    ))
    .await;
    let (status, _, body) = get(&p.url("/garbage")).await;
    assert_eq!(status, 502, "{body:?}");
    let started = std::time::Instant::now();
    let (status, _, body) = get(&p.url("/slow")).await;
    assert_eq!(status, 504);
    assert_eq!(&body[..], b"upstream incumbent did not answer in time\n");
    assert!(started.elapsed() < Duration::from_secs(3));
    p.stop().await;
}

#[tokio::test]
async fn streaming_incumbent_reaches_the_client_chunk_by_chunk() {
    let (builder, chunks) = upstream()
        .header("content-type", "text/event-stream")
        .streaming();
    let incumbent = builder.spawn().await;
    let mut p = proxy(&format!(
        "[[routes]]\nname = \"sse\"\npath_prefix = \"/events\"\nincumbent = \"{}\"\n",
        incumbent.url()
    ))
    .await;
    let resp = tokio::time::timeout(
        PATIENCE,
        client().request(
            Request::get(p.url("/events"))
                .body(Full::default())
                .unwrap(),
        ),
    );
    chunks
        .send(Bytes::from_static(b"data: first\n\n"))
        .await
        .unwrap();
    let resp = resp.await.unwrap().unwrap();
    let mut body = resp.into_body();
    // The first chunk arrives while the upstream has not sent the last one yet.
    let first = tokio::time::timeout(PATIENCE, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        first.into_data().unwrap(),
        Bytes::from_static(b"data: first\n\n")
    );
    chunks
        .send(Bytes::from_static(b"data: last\n\n"))
        .await
        .unwrap();
    drop(chunks);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, Bytes::from_static(b"data: last\n\n"));
    p.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let incumbent = upstream().spawn().await;
    let mut p = proxy_listen("header_read_timeout = \"300ms\"", &incumbent.url()).await;
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the proxy must close a connection stuck in its headers"
    );
    p.stop().await;
}

#[tokio::test]
async fn tls_listener_serves_http2_and_http1() {
    let incumbent = upstream().json(r#"{"ok": true}"#).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let tls_keys = format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}",
        cert_path.display(),
        key_path.display()
    );
    let mut p = proxy_listen(&tls_keys, &incumbent.url()).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let url = format!("https://localhost:{}/hello", p.addr.port());
    let resp = client
        .request(Request::get(&url).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"ok": true}"#);
    assert_eq!(
        incumbent.requests()[0].headers["x-forwarded-proto"],
        "https"
    );
    p.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_and_skips() {
    let incumbent = upstream().spawn().await;
    let candidate = upstream().spawn().await;
    let mut p = proxy(&route(
        "score",
        "/v1",
        &incumbent.url(),
        &candidate.url(),
        "",
    ))
    .await;
    get(&p.url("/v1/a")).await; // mirrored (GET)
    post(&p.url("/v1/a"), "{}").await; // POST is not mirrored by default
    let metrics = p.metrics().await;
    assert!(
        metrics.contains(
            r#"understudy_requests_total{route="score",segment="default",served_by="incumbent",status_class="2xx"} 2"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"understudy_mirror_skipped_total{reason="method",route="score"} 1"#)
    );
    // Both answers are timed: the mirrored one by its settle task, the
    // skipped one when its body is done (both may land just after the answer).
    let timed = r#"understudy_upstream_duration_seconds_count{route="score",target="incumbent"} 2"#;
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut metrics = metrics;
    while !metrics.contains(timed) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        metrics = p.metrics().await;
    }
    assert!(metrics.contains(timed), "{metrics}");
    let (status, _, _) = get(&format!("http://{}/healthz", p.admin)).await;
    assert_eq!(status, 200);
    p.stop().await;
    // The mirrored GET is a row; the POST, with nothing to compare, is a count.
    let rows = p.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].method, "GET");
    assert_eq!(
        p.skips(),
        [("score".into(), "default".into(), "method".into(), 1)]
    );
}

#[tokio::test]
async fn upstreams_over_https_with_a_private_ca_and_over_h2c() {
    // An https incumbent with a generated certificate, trusted through `tls_ca`.
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, cert.cert.pem()).unwrap();
    let mut server_cfg = rustls::ServerConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into()),
    )
    .unwrap();
    server_cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https_port = listener.local_addr().unwrap().port();
    let versions = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = versions.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        seen.lock().unwrap().push(req.version());
                        async {
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from_static(b"secure"),
                            )))
                        }
                    });
                let _served = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    let h2c = upstream().json(r#"{"h2c":true}"#).spawn().await;
    let mut p = proxy(&format!(
        "[[routes]]\nname = \"tls\"\npath_prefix = \"/tls\"\nincumbent = \"https://localhost:{https_port}\"\ntls_ca = \"{}\"\n\
         [[routes]]\nname = \"h2c\"\npath_prefix = \"/h2c\"\nincumbent = \"{}\"\nhttp2 = true\n",
        ca_path.display(),
        h2c.url()
    ))
    .await;
    let (status, _, body) = get(&p.url("/tls/x")).await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"secure"[..]));
    assert_eq!(
        versions.lock().unwrap()[0],
        http::Version::HTTP_2,
        "ALPN negotiated h2"
    );
    let (status, _, _) = get(&p.url("/h2c/x")).await;
    assert_eq!(status, 200);
    assert_eq!(h2c.requests()[0].version, http::Version::HTTP_2);
    p.stop().await;
}

#[tokio::test]
async fn local_overload_is_503() {
    let slow = upstream().delay(Duration::from_millis(800)).spawn().await;
    let mut p = proxy_listen("max_in_flight = 1", &slow.url()).await;
    let first = tokio::spawn(get_owned(p.url("/one")));
    // Wait until the first request holds the only slot (it reached the upstream).
    assert!(eventually(|| !slow.requests().is_empty()).await);
    let (status, _, body) = get(&p.url("/two")).await;
    assert_eq!(status, 503);
    assert_eq!(&body[..], b"proxy overloaded\n");
    assert_eq!(first.await.unwrap(), 200);
    p.stop().await;
}

async fn get_owned(url: String) -> u16 {
    get(&url).await.0.as_u16()
}
