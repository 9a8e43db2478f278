//! docs/src/reference/limits.md limits against clients that misbehave on raw sockets: each limit
//! answers (or closes) in time and is counted in
//! `understudy_limit_rejections_total{limit}`.

use crate::support::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the proxy closes the connection; `None` if it has not within `within`.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut buf = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

async fn rejections(p: &TestProxy, limit: &str) -> f64 {
    let series = format!("understudy_limit_rejections_total{{limit=\"{limit}\"}}");
    metric(&p.metrics().await, &series)
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_header_read_timeout() {
    let incumbent = upstream().spawn().await;
    let mut p = proxy_listen("header_read_timeout = \"300ms\"", &incumbent.url()).await;
    let started = Instant::now();
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert_eq!(answer.as_deref(), Some(""), "closed without an answer");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "closed too early: {took:?}"
    );
    assert_eq!(rejections(&p, "header_timeout").await, 1.0);
    p.stop().await;
}

#[tokio::test]
async fn a_tls_connection_that_never_finishes_its_handshake_is_closed() {
    let incumbent = upstream().spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let listen = format!(
        "header_read_timeout = \"300ms\"\ntls = {{ cert = \"{}\", key = \"{}\" }}",
        cert_path.display(),
        key_path.display()
    );
    let mut p = proxy_listen(&listen, &incumbent.url()).await;
    // The first bytes of a ClientHello record, then nothing.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).await.unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(answer.is_some(), "a stalled TLS handshake must be closed");
    assert_eq!(rejections(&p, "header_timeout").await, 1.0);
    p.stop().await;
}

#[tokio::test]
async fn a_body_that_never_completes_gets_408_and_holds_no_slot() {
    let incumbent = upstream().echo().spawn().await;
    let listen = "body_read_timeout = \"400ms\"\nmax_in_flight = 1";
    let mut p = proxy_listen(listen, &incumbent.url()).await;
    // Two clients start uploads they never finish.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        stalled.push(s);
    }
    // Meanwhile another client is served: the uploads hold no slot.
    let (status, _, body) = post(&p.url("/ok"), "hello").await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"hello"[..]));
    for mut s in stalled {
        let answer = read_until_closed(&mut s, Duration::from_secs(5))
            .await
            .expect("answered");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert_eq!(rejections(&p, "body_timeout").await, 2.0);
    assert_eq!(
        incumbent.requests().len(),
        1,
        "only the finished request went on"
    );
    p.stop().await;
}

#[tokio::test]
async fn an_oversize_or_overfull_head_gets_431() {
    let incumbent = upstream().spawn().await;
    let mut p = proxy_listen(
        "max_header_bytes = 16384\nmax_headers = 20",
        &incumbent.url(),
    )
    .await;
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    for head in [big, many] {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut s, Duration::from_secs(5))
            .await
            .expect("answered");
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
    // Within both limits: served.
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    let fine = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(8_000)
    );
    s.write_all(fine.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(rejections(&p, "headers").await, 2.0);
    assert!(incumbent.requests().len() == 1);
    p.stop().await;
}

#[tokio::test]
async fn an_http2_request_with_too_many_or_too_large_headers_gets_431() {
    let incumbent = upstream().spawn().await;
    let mut p = proxy_listen("max_headers = 20", &incumbent.url()).await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let mut req = http::Request::get(p.url("/x"));
    for i in 0..30 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let resp = client
        .request(req.body(Default::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 431);
    assert_eq!(rejections(&p, "headers").await, 1.0);
    // A header list over max_header_bytes: h2 refuses it itself.
    let big = http::Request::get(p.url("/x"))
        .header("x-big", "a".repeat(70_000))
        .body(Default::default())
        .unwrap();
    let refused = client.request(big).await.unwrap();
    assert_eq!(refused.status().as_u16(), 431);
    assert!(incumbent.requests().is_empty());
    p.stop().await;
}

#[tokio::test]
async fn connections_beyond_max_connections_are_refused_at_accept() {
    let incumbent = upstream().spawn().await;
    let mut p = proxy_listen("max_connections = 2", &incumbent.url()).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        // A served request proves the connection was accepted.
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(s);
    }
    let mut third = TcpStream::connect(p.addr).await.unwrap();
    let _sent = third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answer = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert_eq!(
        answer.as_deref(),
        Some(""),
        "closed at once without an answer"
    );
    assert_eq!(rejections(&p, "connections").await, 1.0);
    // A place frees up when a connection ends.
    drop(held.pop());
    let ok = eventually_async(|| async {
        let Ok(mut s) = TcpStream::connect(p.addr).await else {
            return false;
        };
        let _sent = s
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        read_until_closed(&mut s, Duration::from_secs(2))
            .await
            .is_some_and(|a| a.starts_with("HTTP/1.1 200"))
    })
    .await;
    assert!(ok, "a freed place is usable again");
    p.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let incumbent = upstream().spawn().await;
    let listen = "idle_timeout = \"300ms\"\nheader_read_timeout = \"10s\"";
    let mut p = proxy_listen(listen, &incumbent.url()).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).await.unwrap();
    let started = Instant::now();
    let rest = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(rest.is_some(), "an idle connection must be closed");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(rejections(&p, "idle").await, 1.0);
    p.stop().await;
}

/// Like `eventually`, for an async check.
async fn eventually_async<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_stream_that_stalls_after_its_head_is_closed_after_idle_timeout() {
    let (builder, chunks) = upstream()
        .header("content-type", "text/event-stream")
        .streaming();
    let incumbent = builder.spawn().await;
    let mut p = proxy_listen("idle_timeout = \"400ms\"", &incumbent.url()).await;
    let mut s = TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    chunks
        .send(bytes::Bytes::from_static(b"data: first\n\n"))
        .await
        .unwrap();
    // The head and the first event arrive; then the upstream says nothing more.
    let started = Instant::now();
    let answer = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("a stalled stream is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("data: first"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(350));
    assert_eq!(rejections(&p, "idle").await, 1.0);
    drop(chunks);
    p.stop().await;
}
