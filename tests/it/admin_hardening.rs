//! Issue 10 (docs/src/reference/admin-api.md): the admin listener against misbehaving clients, over
//! raw TCP where the client must misbehave: endless and oversized bodies on
//! every path, a silent connection and a slow head, a stalled body, the wrong
//! content type, a rebinding `Host`, and an audit read while the database is
//! locked for writing.

use crate::support::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use understudy::app::{Options, Running};

const BOUND: Duration = Duration::from_secs(10);

/// A proxy with extra `[admin]` keys and an optional token.
async fn start(dir: &std::path::Path, admin_extra: &str, token: Option<&str>) -> Running {
    let (inc, cand) = ("http://127.0.0.1:9", "http://127.0.0.1:9");
    let text = config_text(dir, "", &route("r", "/", inc, cand, "")).replace(
        "[admin]\naddr = \"127.0.0.1:0\"\n",
        &format!("[admin]\naddr = \"127.0.0.1:0\"\n{admin_extra}\n"),
    );
    let config = understudy::config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let options = Options {
        admin_token: token.map(str::to_string),
        ..Options::default()
    };
    understudy::app::start_with(config, options).await.unwrap()
}

fn rejections(running: &Running, limit: &str) -> f64 {
    metric(
        &running.proxy.metrics.encode(),
        &format!("understudy_limit_rejections_total{{limit=\"{limit}\"}}"),
    )
}

/// Reads until the server closes (or `BOUND`), returning what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the admin listener kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends `head` and then chunks of a chunked body for as long as the server
/// reads them (at most 64 MiB); returns the answer and the bytes written.
async fn endless_body(addr: SocketAddr, head: &str) -> (String, usize) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    wr.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        let chunk = format!("2000\r\n{}\r\n", "x".repeat(0x2000));
        let mut sent = 0;
        while sent < 64 << 20 {
            if wr.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            sent += 0x2000;
        }
        sent
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(BOUND, rd.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer to an endless body");
    let sent = tokio::time::timeout(BOUND, writer).await.unwrap().unwrap();
    (String::from_utf8_lossy(&answer).into_owned(), sent)
}

#[tokio::test]
async fn an_endless_body_to_any_path_is_cut_at_the_cap_with_413() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), "", None).await;
    let cases = [
        // No auth, no endpoint: this used to read everything.
        "POST /no/such/path HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET /api/v1/routes HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /api/v1/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
    ];
    for (i, head) in cases.iter().enumerate() {
        let (answer, sent) = endless_body(running.admin_addr, head).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{head}: {answer}");
        assert!(answer.contains("65536 bytes"), "{answer}");
        // The server stops reading at the cap; what the client got out is
        // that plus what the kernel's socket buffers took.
        assert!(sent < 32 << 20, "{head}: {sent} bytes accepted");
        assert_eq!(rejections(&running, "admin_body"), (i + 1) as f64);
    }
    running.stop().await;
}

#[tokio::test]
async fn a_declared_length_over_the_cap_is_refused_before_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), "max_body_bytes = 1000", None).await;
    for path in ["/healthz", "/nothing", "/api/v1/feedback", "/api/v1/audit"] {
        let mut s = TcpStream::connect(running.admin_addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: 1001\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let answer = read_to_close(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
    }
    // At the cap it is read and served.
    let body = format!(r#"{{"exchange_id":"{}","rating":1}}"#, "a".repeat(960));
    let url = format!("http://{}/api/v1/feedback", running.admin_addr);
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let (status, _, _) = send(req).await;
    assert_eq!(status, 404, "an unknown exchange, read in full");
    assert_eq!(rejections(&running, "admin_body"), 4.0);
    running.stop().await;
}

#[tokio::test]
async fn a_silent_connection_and_a_slow_head_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), "header_read_timeout = \"300ms\"", None).await;
    for sent in ["", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"] {
        let mut s = TcpStream::connect(running.admin_addr).await.unwrap();
        s.write_all(sent.as_bytes()).await.unwrap();
        let t0 = Instant::now();
        let answer = read_to_close(&mut s).await;
        let took = t0.elapsed();
        assert!(
            !answer.contains("200 OK"),
            "{sent:?} was answered: {answer}"
        );
        assert!(took >= Duration::from_millis(250), "{sent:?} {took:?}");
        assert!(took < Duration::from_secs(5), "{sent:?} {took:?}");
    }
    assert!(eventually(|| rejections(&running, "admin_timeout") == 2.0).await);
    // A complete head in time is served as usual.
    let (status, _, _) = get(&format!("http://{}/healthz", running.admin_addr)).await;
    assert_eq!(status, 200);
    running.stop().await;
}

#[tokio::test]
async fn a_stalled_body_gets_408_after_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), "request_timeout = \"400ms\"", None).await;
    let mut s = TcpStream::connect(running.admin_addr).await.unwrap();
    let head = "POST /api/v1/feedback HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"exch";
    s.write_all(head.as_bytes()).await.unwrap();
    let t0 = Instant::now();
    let answer = read_to_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(rejections(&running, "admin_timeout"), 1.0);
    running.stop().await;
}

/// A raw mutating request; returns the status line and the whole answer.
async fn raw_post(addr: SocketAddr, path: &str, headers: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    read_to_close(&mut s).await
}

async fn default_weight(running: &Running) -> f64 {
    let (_, _, body) = get(&format!("http://{}/api/v1/routes", running.admin_addr)).await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["routes"][0]["segments"][0]["weight"].as_f64().unwrap()
}

#[tokio::test]
async fn a_mutation_needs_a_json_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), "", None).await;
    let path = "/api/v1/routes/r/weights";
    let body = r#"{"segment":"default","weight":5,"reason":"try","force":true}"#;
    for ct in [
        "",
        "Content-Type: text/plain\r\n",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n",
    ] {
        let headers = format!("Host: 127.0.0.1\r\n{ct}");
        let answer = raw_post(running.admin_addr, path, &headers, body).await;
        assert!(answer.starts_with("HTTP/1.1 415"), "{ct:?}: {answer}");
        assert!(answer.contains("application/json"), "{answer}");
    }
    assert_eq!(default_weight(&running).await, 0.0);
    let headers = "Host: 127.0.0.1\r\nContent-Type: application/json; charset=utf-8\r\n";
    let answer = raw_post(running.admin_addr, path, headers, body).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(default_weight(&running).await, 5.0);
    running.stop().await;
}

#[tokio::test]
async fn without_a_token_a_rebinding_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), "", None).await;
    let path = "/api/v1/routes/r/weights";
    let body = r#"{"segment":"default","weight":5,"reason":"rebind","force":true}"#;
    let json = "Content-Type: application/json\r\n";
    for host in [
        "Host: attacker.example:9090\r\n",
        "Host: localhost.attacker.example\r\n",
        "Host: 192.168.1.1\r\n",
        "",
    ] {
        let answer = raw_post(running.admin_addr, path, &format!("{host}{json}"), body).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{host:?}: {answer}");
    }
    // An absolute-form target naming another host, with a loopback Host.
    let answer = raw_post(
        running.admin_addr,
        "http://attacker.example/api/v1/reload",
        &format!("Host: 127.0.0.1\r\n{json}"),
        "",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert_eq!(default_weight(&running).await, 0.0);
    for (w, host) in ["localhost", "127.0.0.1", "LocalHost:1"].iter().enumerate() {
        let headers = format!("Host: {host}\r\n{json}");
        let body = format!(
            r#"{{"segment":"default","weight":{},"reason":"ok","force":true}}"#,
            w + 1
        );
        let answer = raw_post(running.admin_addr, path, &headers, &body).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
    assert_eq!(default_weight(&running).await, 3.0);
    running.stop().await;
}

#[tokio::test]
async fn the_audit_reads_a_snapshot_while_the_ledger_is_locked_for_writing() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), "", Some("tok")).await;
    let weights = format!("http://{}/api/v1/routes/r/weights", running.admin_addr);
    let change = |w: u32| {
        http::Request::post(&weights)
            .header("authorization", "Bearer tok")
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(format!(
                r#"{{"segment":"default","weight":{w},"reason":"step","force":true}}"#
            ))))
            .unwrap()
    };
    for w in [1, 2] {
        assert_eq!(send(change(w)).await.0, 200);
    }
    // Another process holds the write lock (as a backup or a stuck writer would).
    let db = running.proxy.store.path().to_path_buf();
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE;").unwrap();
    let audit = format!("http://{}/api/v1/audit?limit=99999999", running.admin_addr);
    let t0 = Instant::now();
    let (status, _, body) = tokio::time::timeout(BOUND, get(&audit)).await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), 2, "{v}");
    lock.execute_batch("COMMIT;").unwrap();
    assert_eq!(send(change(3)).await.0, 200);
    running.stop().await;
}

#[tokio::test]
async fn the_admin_listener_holds_at_most_64_connections_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), "", None).await;
    let addr = running.admin_addr;
    // 64 idle connections (each gets its 10 s for a head): the default cap.
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // The listener accepts in order: the 65th comes after these 64.
    let mut over = TcpStream::connect(addr).await.unwrap();
    let _sent = over
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await;
    let answer = read_to_close(&mut over).await;
    assert!(answer.is_empty(), "served over the cap: {answer}");
    assert_eq!(rejections(&running, "admin_connections"), 1.0);
    // One closes: a new one is served.
    drop(held.pop());
    let deadline = Instant::now() + BOUND;
    loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _sent = s
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await;
        if read_to_close(&mut s).await.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await;
}
