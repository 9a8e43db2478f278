//! The shadow side: what the candidate receives, and that nothing it does
//! reaches the client.

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::time::{Duration, Instant};

#[tokio::test]
async fn candidate_gets_the_same_request_less_credentials_plus_its_own() {
    let incumbent = upstream().json(r#"{"score": 1}"#).spawn().await;
    let candidate = upstream().json(r#"{"score": 1}"#).spawn().await;
    let mut p = proxy(&route(
        "infer",
        "/v1/infer",
        &incumbent.url(),
        &candidate.url(),
        r#"mirror = { methods = ["POST"], set_headers = { "x-api-key" = "cand-key" }, rewrite_json = { "/model" = "candidate-v2" } }"#,
    ))
    .await;
    let req = Request::post(p.url("/v1/infer/run?temperature=0&q=a%20b"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer user-secret")
        .header("cookie", "session=abc")
        .header("x-api-key", "user-key")
        .header("x-tenant", "acme")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"gpt-x","prompt":"hi"}"#,
        )))
        .unwrap();
    let (status, _, _) = send(req).await;
    assert_eq!(status, 200);
    p.stop().await; // the settle task has finished: the candidate was called

    let inc = &incumbent.requests()[0];
    let cand = &candidate.requests()[0];
    assert_eq!(cand.method, "POST");
    assert_eq!(cand.uri.path(), "/v1/infer/run");
    assert_eq!(cand.uri.query(), Some("temperature=0&q=a%20b"));
    assert_eq!(cand.headers["x-tenant"], "acme");
    assert_eq!(cand.headers["x-understudy-mirror"], "1");
    assert_eq!(cand.headers["x-api-key"], "cand-key");
    assert!(cand.headers.get("authorization").is_none());
    assert!(cand.headers.get("cookie").is_none());
    let cand_body: serde_json::Value = serde_json::from_slice(&cand.body).unwrap();
    assert_eq!(
        cand_body,
        serde_json::json!({"model": "candidate-v2", "prompt": "hi"})
    );
    // The incumbent got the original, credentials and all, and no mirror marker.
    assert_eq!(inc.headers["authorization"], "Bearer user-secret");
    assert_eq!(inc.headers["x-api-key"], "user-key");
    assert!(inc.headers.get("x-understudy-mirror").is_none());
    assert_eq!(&inc.body[..], br#"{"model":"gpt-x","prompt":"hi"}"#);
    assert_eq!(p.rows()[0].verdict, "match");
}

#[tokio::test]
async fn a_candidate_sleeping_5s_does_not_delay_the_client() {
    let incumbent = upstream().json(r#"{"a":1}"#).spawn().await;
    let candidate = upstream().delay(Duration::from_secs(5)).spawn().await;
    let mut p = proxy(&route(
        "r",
        "/",
        &incumbent.url(),
        &candidate.url(),
        r#"mirror = { timeout = "300ms" }"#,
    ))
    .await;
    let started = Instant::now();
    let (status, _, body) = get(&p.url("/x")).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], br#"{"a":1}"#);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    p.stop().await;
    let rows = p.rows();
    assert_eq!(rows[0].verdict, "candidate_error");
    assert_eq!(
        rows[0].candidate_error.as_deref(),
        Some("upstream candidate did not answer in time")
    );
}

#[tokio::test]
async fn a_dead_or_resetting_candidate_leaves_the_client_unaffected() {
    let incumbent = upstream().json(r#"{"a":1}"#).spawn().await;
    let dead = dead_addr().await;
    let (resetting, _task) = resetting_upstream().await;
    let mut p = proxy(&format!(
        "{}{}",
        route(
            "dead",
            "/dead",
            &incumbent.url(),
            &format!("http://{dead}"),
            ""
        ),
        route(
            "reset",
            "/reset",
            &incumbent.url(),
            &format!("http://{resetting}"),
            ""
        )
    ))
    .await;
    for path in ["/dead", "/reset", "/dead", "/reset"] {
        let (status, headers, body) = get(&p.url(path)).await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], br#"{"a":1}"#);
        assert_eq!(headers["x-understudy-served-by"], "incumbent");
    }
    p.stop().await;
    let rows = p.rows();
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter()
            .all(|r| r.verdict == "candidate_error" && r.candidate_error.is_some()),
        "{rows:?}"
    );
}

#[tokio::test]
async fn mirroring_is_bounded_and_skips_are_counted() {
    let incumbent = upstream().spawn().await;
    let candidate = upstream().delay(Duration::from_millis(500)).spawn().await;
    let mut p = proxy(&route(
        "r",
        "/",
        &incumbent.url(),
        &candidate.url(),
        r#"mirror = { max_in_flight = 1, timeout = "2s" }"#,
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(get(&p.url("/a")).await.0, 200);
    }
    let metrics = p.metrics().await;
    assert!(
        metrics.contains(r#"understudy_mirror_skipped_total{reason="in_flight",route="r"} 2"#),
        "{metrics}"
    );
    p.stop().await;
    // The mirrored exchange is a row; the two skipped ones are counted, not rows.
    let rows = p.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].verdict, "match");
    assert_eq!(p.skips(), [s("r", "default", "in_flight", 2)]);
    assert_eq!(candidate.requests().len(), 1);
}

#[tokio::test]
async fn a_body_over_the_cap_is_streamed_to_the_incumbent_and_not_mirrored() {
    let incumbent = upstream().echo().spawn().await;
    let candidate = upstream().spawn().await;
    let mut p = proxy_with(
        "max_body_bytes = 1024",
        &route(
            "r",
            "/",
            &incumbent.url(),
            &candidate.url(),
            r#"mirror = { methods = ["POST"] }"#,
        ),
    )
    .await;
    let big = "x".repeat(10_000);
    let (status, _, body) = post(&p.url("/upload"), &big).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), 10_000, "the incumbent got the whole body");
    p.stop().await;
    assert!(candidate.requests().is_empty());
    assert!(p.rows().is_empty(), "nothing to compare, no row");
    assert_eq!(p.skips(), [s("r", "default", "body_too_large", 1)]);
}

fn s(route: &str, segment: &str, reason: &str, n: i64) -> (String, String, String, i64) {
    (route.into(), segment.into(), reason.into(), n)
}

#[tokio::test]
async fn json_verdicts_for_equal_tolerated_ignored_and_differing_answers() {
    let incumbent = upstream()
        .json(r#"{"request_id":"a1","score":0.80,"label":"hot"}"#)
        .spawn()
        .await;
    let cases = [
        (
            r#"{"request_id":"a1","score":0.80,"label":"hot"}"#,
            "match",
            "[]",
        ),
        (
            r#"{"request_id":"a1","score":0.82,"label":"hot"}"#,
            "match",
            "[]",
        ),
        (
            r#"{"request_id":"zz","score":0.80,"label":"hot"}"#,
            "match",
            "[]",
        ),
        (
            r#"{"request_id":"a1","score":0.50,"label":"cold"}"#,
            "mismatch",
            r#"["/label","/score"]"#,
        ),
    ];
    let mut candidates = Vec::new();
    let mut routes = String::new();
    for (i, (body, _, _)) in cases.iter().enumerate() {
        let c = upstream().json(body).spawn().await;
        routes += &route(
            &format!("c{i}"),
            &format!("/c{i}"),
            &incumbent.url(),
            &c.url(),
            r#"compare = { mode = "json", ignore = ["/request_id"], tolerance = 0.05 }"#,
        );
        candidates.push(c);
    }
    let mut p = proxy(&routes).await;
    for i in 0..cases.len() {
        get(&p.url(&format!("/c{i}"))).await;
    }
    p.stop().await;
    let rows = p.rows();
    for (i, (_, verdict, diff)) in cases.iter().enumerate() {
        let row = rows.iter().find(|r| r.route == format!("c{i}")).unwrap();
        assert_eq!(
            (row.verdict.as_str(), row.diff.as_str()),
            (*verdict, *diff),
            "case {i}"
        );
    }
}
