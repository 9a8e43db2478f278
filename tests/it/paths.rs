//! Issue 10 (docs/src/reference/configuration.md): which paths a route takes. A `path_prefix` matches
//! whole segments, and a path with a dot-segment is refused (400) before any
//! route sees it, over raw TCP so that no client library resolves it first.

use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `target` as it is and returns the status code and the body.
async fn raw_get(addr: std::net::SocketAddr, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

#[tokio::test]
async fn a_prefix_matches_whole_segments_and_dot_segments_are_refused() {
    let score = upstream().json(r#"{"who":"score"}"#).spawn().await;
    let admin = upstream().json(r#"{"who":"admin"}"#).spawn().await;
    let routes = format!(
        "[[routes]]\nname = \"score\"\npath_prefix = \"/v1/score\"\nincumbent = \"{}\"\n\
         [[routes]]\nname = \"admin\"\npath_prefix = \"/admin/\"\nincumbent = \"{}\"\n",
        score.url(),
        admin.url()
    );
    let mut p = proxy(&routes).await;
    for target in ["/v1/score", "/v1/score/x", "/v1/score?q=1", "/v1/score/?q"] {
        let (status, body) = raw_get(p.addr, target).await;
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"who":"score"}"#),
            "{target}"
        );
    }
    for target in ["/v1/scoreboard", "/v1/scores?q", "/admin"] {
        let (status, body) = raw_get(p.addr, target).await;
        assert_eq!(status, 404, "{target}: {body}");
    }
    assert_eq!(raw_get(p.addr, "/admin/users").await.0, 200);
    let before = (score.requests().len(), admin.requests().len());
    for target in [
        "/v1/score/../../admin/users",
        "/v1/score/%2e%2e/%2E%2E/admin/users",
        "/v1/score/..%2f..%2fadmin/users",
        "/v1/score/..;/..;/admin/users",
        "/v1/score/./x",
        "/admin/../v1/score",
    ] {
        let (status, body) = raw_get(p.addr, target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(body.contains("dot-segment"), "{body}");
    }
    // Nothing refused reached an upstream.
    assert_eq!((score.requests().len(), admin.requests().len()), before);
    p.stop().await;
}
