//! The exchange log: one row per exchange, segments, redaction before writing, WAL.

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;

#[tokio::test]
async fn redacted_headers_and_json_fields_never_reach_the_file() {
    let incumbent = upstream()
        .json(r#"{"score":1,"email":"inc-secret@example.com"}"#)
        .spawn()
        .await;
    let candidate = upstream()
        .json(r#"{"score":1,"email":"cand-secret@example.com"}"#)
        .spawn()
        .await;
    let mut p = proxy_with(
        r#"redact_json = ["/email", "/contacts/*/phone"]"#,
        &route(
            "r",
            "/",
            &incumbent.url(),
            &candidate.url(),
            r#"mirror = { methods = ["POST"] }"#,
        ),
    )
    .await;
    let req = Request::post(p.url("/lead"))
        .header("authorization", "Bearer tok-SECRET-123")
        .header("x-api-key", "key-SECRET-456")
        .header("x-visible", "kept-in-log")
        .body(Full::new(Bytes::from_static(
            br#"{"email":"req-secret@example.com","contacts":[{"phone":"555-SECRET-1"}],"name":"Ada"}"#,
        )))
        .unwrap();
    assert_eq!(send(req).await.0, 200);
    p.stop().await;

    let mut bytes = std::fs::read(&p.db).unwrap();
    for suffix in ["-wal", "-shm"] {
        if let Ok(more) = std::fs::read(format!("{}{suffix}", p.db.display())) {
            bytes.extend(more);
        }
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    for secret in [
        "tok-SECRET-123",
        "key-SECRET-456",
        "req-secret@example.com",
        "inc-secret@example.com",
        "cand-secret@example.com",
        "555-SECRET-1",
    ] {
        assert!(!contains(secret), "{secret} is in the database file");
    }
    assert!(contains("kept-in-log"));
    assert!(contains("Ada"));
    // The answers differ only in the (redacted) email: the diff names the field, not its value.
    assert_eq!(p.rows()[0].verdict, "mismatch");
    assert_eq!(p.rows()[0].diff, r#"["/email"]"#);
}

#[tokio::test]
async fn segments_are_stored_raw_and_labelled_bounded_in_metrics() {
    let incumbent = upstream().spawn().await;
    let candidate = upstream().spawn().await;
    let mut p = proxy(&route(
        "r",
        "/",
        &incumbent.url(),
        &candidate.url(),
        r#"segment = { header = "x-tier", values = ["enterprise", "smb"] }"#,
    ))
    .await;
    for tier in ["enterprise", "smb", "pirates"] {
        let req = Request::get(p.url("/"))
            .header("x-tier", tier)
            .body(Full::default())
            .unwrap();
        send(req).await;
    }
    get(&p.url("/")).await;
    let metrics = p.metrics().await;
    assert!(metrics.contains(r#"segment="other""#), "{metrics}");
    assert!(!metrics.contains("pirates"));
    p.stop().await;
    let mut segments: Vec<_> = p.rows().into_iter().map(|r| r.segment).collect();
    segments.sort();
    assert_eq!(segments, ["default", "enterprise", "pirates", "smb"]);
    let conn = rusqlite::Connection::open(&p.db).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn the_report_is_the_same_whatever_bodies_are_kept() {
    let incumbent = upstream().json(r#"{"score":1}"#).spawn().await;
    let candidate = upstream().json(r#"{"score":2}"#).spawn().await;
    let mut lines = Vec::new();
    for policy in ["all", "mismatches", "none"] {
        let routes = route("r", "/", &incumbent.url(), &candidate.url(), "");
        let store = format!("bodies = \"{policy}\"\nrequest_bodies = false");
        let mut p = proxy_with(&store, &routes).await;
        for i in 0..20 {
            let (status, _, _) = get(&p.url(&format!("/x/{i}"))).await;
            assert_eq!(status, 200);
        }
        p.stop().await;
        let conn = rusqlite::Connection::open(&p.db).unwrap();
        let (bodies, verdicts): (i64, i64) = conn
            .query_row(
                "SELECT count(incumbent_body) + count(candidate_body) + count(request_body),
                        count(verdict) FROM exchanges",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        // Every answer disagrees (/score), so "mismatches" keeps both bodies.
        let expected = if policy == "none" { 0 } else { 40 };
        assert_eq!((bodies, verdicts), (expected, 20), "{policy}");
        let opts = understudy::report::ReportOptions {
            dbs: vec![p.db.clone()],
            ..Default::default()
        };
        let r = understudy::report::build(&opts).unwrap();
        let l = &r.lines[0];
        lines.push((l.samples, l.mismatches, l.top_diffs.clone()));
    }
    assert!(lines.windows(2).all(|w| w[0] == w[1]), "{lines:?}");
}
