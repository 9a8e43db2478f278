//! docs/src/reference/limits.md against a client that sends what it should not: control headers,
//! credentials in the query and in headers, giant segment values.

use crate::support::*;
use http::Request;
use http_body_util::Full;

#[tokio::test]
async fn control_headers_are_ours_and_credentials_stay_with_the_incumbent() {
    let incumbent = upstream().spawn().await;
    let candidate = upstream().spawn().await;
    let routes = route(
        "r",
        "/",
        &incumbent.url(),
        &candidate.url(),
        "segment = { query = \"tier\" }",
    );
    let mut p = proxy(&routes).await;
    let long_tier = "t".repeat(300);
    let req = Request::get(p.url(&format!(
        "/v1/x?tier={long_tier}&q=1&api_key=s3cret&SIG=abc"
    )))
    .header("x-understudy-mirror", "1")
    .header("forwarded", "for=6.6.6.6;host=evil.example")
    .header("x-forwarded-host", "evil.example")
    .header("api-key", "azure-s3cret")
    .header("x-goog-api-key", "google-s3cret")
    .body(Full::default())
    .unwrap();
    let (status, _, _) = send(req).await;
    assert_eq!(status, 200);
    assert!(eventually(|| p.rows().len() == 1).await);

    let seen = &incumbent.requests()[0];
    assert!(
        seen.headers.get("x-understudy-mirror").is_none(),
        "{seen:?}"
    );
    let forwarded = seen.headers["forwarded"].to_str().unwrap();
    assert!(
        forwarded.starts_with("for=127.0.0.1;proto=http;host=\"127.0.0.1:"),
        "{forwarded}"
    );
    assert!(!forwarded.contains("evil"), "{forwarded}");
    assert!(
        seen.headers["x-forwarded-host"]
            .to_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    // The incumbent gets the request as sent.
    assert!(seen.uri.query().unwrap().contains("api_key=s3cret"));
    assert_eq!(seen.headers["api-key"], "azure-s3cret");

    let copy = &candidate.requests()[0];
    assert_eq!(
        copy.uri.query(),
        Some(format!("tier={long_tier}&q=1").as_str())
    );
    assert!(copy.headers.get("api-key").is_none());
    assert!(copy.headers.get("x-goog-api-key").is_none());

    p.stop().await;
    let row = &p.rows()[0];
    assert_eq!(
        row.segment.len(),
        128,
        "segment values are cut to 128 bytes"
    );
    let conn = rusqlite::Connection::open(&p.db).unwrap();
    let (query, headers): (String, String) = conn
        .query_row("SELECT query, request_headers FROM exchanges", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(
        !query.contains("s3cret") && !query.contains("abc"),
        "{query}"
    );
    assert!(query.contains("api_key=%5Bredacted%5D"), "{query}");
    assert!(!headers.contains("s3cret"), "{headers}");
}

#[tokio::test]
async fn a_rate_limited_probe_teaches_no_noise() {
    use bytes::Bytes;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Every second call (the noise probe) is a 429 with another body.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let incumbent = understudy::loopback::serve(move |_req: Request<hyper::body::Incoming>| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            let (status, body) = if n.is_multiple_of(2) {
                (200, r#"{"score":1}"#)
            } else {
                (429, r#"{"error":"slow down"}"#)
            };
            let mut resp = http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
            resp
        }
    })
    .await
    .unwrap();
    let candidate = upstream().json(r#"{"score":1}"#).spawn().await;
    let inc_url = format!("http://{}", incumbent.addr);
    let extra = "mirror = { methods = [\"POST\"] }\ncompare = { mode = \"json\", noise = { sample = 1.0 } }";
    let mut p = proxy(&route("r", "/", &inc_url, &candidate.url(), extra)).await;
    for _ in 0..4 {
        let (status, _, _) = post(&p.url("/score"), "{}").await;
        assert_eq!(status, 200);
    }
    assert!(eventually(|| p.rows().len() == 4).await);
    p.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 8, "each exchange was probed");
    let noise = understudy::store::read::noise(std::slice::from_ref(&p.db), None).unwrap();
    assert!(
        noise.is_empty(),
        "a 429 is not the incumbent disagreeing with itself: {noise:?}"
    );
    assert!(p.rows().iter().all(|r| r.verdict == "match"));
}

/// An upstream answering `body` with `Content-Encoding: coding`.
async fn encoded(coding: &'static str, body: Vec<u8>) -> understudy::loopback::Server {
    let body = bytes::Bytes::from(body);
    understudy::loopback::serve(move |_req: Request<hyper::body::Incoming>| {
        let body = body.clone();
        async move {
            http::Response::builder()
                .header("content-type", "application/json")
                .header("content-encoding", coding)
                .body(Full::new(body))
                .unwrap()
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn compressed_answers_are_compared_and_redacted_decoded() {
    use std::io::Write;
    let json = br#"{"score": 1, "email": "ann@example.com"}"#;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json).unwrap();
    let gz = gz.finish().unwrap();
    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
        w.write_all(br#"{"email": "ann@example.com", "score": 1}"#)
            .unwrap();
    }
    let incumbent = encoded("gzip", gz.clone()).await;
    let candidate = encoded("br", br).await;
    let (inc, cand) = (
        format!("http://{}", incumbent.addr),
        format!("http://{}", candidate.addr),
    );
    let mut p = proxy_with(
        "redact_json = [\"/email\"]",
        &route("r", "/", &inc, &cand, ""),
    )
    .await;
    let (status, headers, body) = get(&p.url("/x")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(&body[..], &gz[..], "the client gets the upstream's bytes");
    assert!(eventually(|| p.rows().len() == 1).await);
    p.stop().await;
    assert_eq!(p.rows()[0].verdict, "match", "same JSON, different codings");
    let conn = rusqlite::Connection::open(&p.db).unwrap();
    let (i, c): (String, String) = conn
        .query_row(
            "SELECT incumbent_body, candidate_body FROM exchanges",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    for stored in [&i, &c] {
        assert!(
            stored.contains("\"[redacted]\"") && !stored.contains("ann@"),
            "{stored}"
        );
    }
}
