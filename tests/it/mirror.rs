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

const DEAD_DOWN: &str = r#"understudy_mirror_skipped_total{reason="candidate_down",route="dead"}"#;

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
    let client_unaffected =
        |(status, headers, body): (http::StatusCode, http::HeaderMap, Bytes)| {
            assert_eq!(status, 200);
            assert_eq!(&body[..], br#"{"a":1}"#);
            assert_eq!(headers["x-understudy-served-by"], "incumbent");
        };
    // The first copy to the dead candidate is refused: a candidate_error row.
    client_unaffected(get(&p.url("/dead")).await);
    let dead_errors = |p: &TestProxy| {
        p.rows()
            .iter()
            .filter(|r| r.route == "dead" && r.verdict == "candidate_error")
            .count()
    };
    assert!(eventually(|| dead_errors(&p) == 1).await);
    // Within the back-off the dead candidate is not even dialled; the
    // resetting one accepts connections, so it is never backed off from.
    let n = 10;
    for _ in 0..n {
        client_unaffected(get(&p.url("/dead")).await);
        client_unaffected(get(&p.url("/reset")).await);
    }
    let metrics = p.metrics().await;
    p.stop().await;
    let down = metric(&metrics, DEAD_DOWN) as usize;
    let errors = dead_errors(&p);
    assert!(down >= 1, "{metrics}");
    // Every later copy was either skipped as candidate_down or a probe
    // (a machine stalled past 250 ms lets a probe through, refused again).
    assert_eq!(errors + down, n + 1, "{metrics}");
    assert!(errors < 4, "{errors} copies dialled the dead candidate");
    // The skipped copies have no row; the report counts them from mirror_skips.
    let down_counted: i64 = p
        .skips()
        .iter()
        .filter(|s| s.0 == "dead" && s.2 == "candidate_down")
        .map(|s| s.3)
        .sum();
    assert_eq!(down_counted as usize, down);
    let rows = p.rows();
    let reset: Vec<_> = rows.iter().filter(|r| r.route == "reset").collect();
    assert_eq!(reset.len(), n);
    assert!(
        reset
            .iter()
            .all(|r| r.verdict == "candidate_error" && r.candidate_error.is_some()),
        "{reset:?}"
    );
    assert!(
        rows.iter()
            .filter(|r| r.verdict == "candidate_error")
            .all(|r| r.candidate_error.is_some()),
        "{rows:?}"
    );
    assert!(!metrics.contains(r#"reason="candidate_down",route="reset""#));
}

#[tokio::test]
async fn a_candidate_that_comes_back_is_mirrored_again_after_one_probe() {
    let incumbent = upstream().json(r#"{"a":1}"#).spawn().await;
    // `connection: close`: no pooled connection outlives the server, so once
    // it is stopped every copy has to dial (and is refused).
    let candidate = upstream()
        .json(r#"{"a":1}"#)
        .header("connection", "close")
        .spawn()
        .await;
    let addr = candidate.addr();
    let mut p = proxy(&route("r", "/", &incumbent.url(), &candidate.url(), "")).await;
    let verdicts = |p: &TestProxy, v: &str| p.rows().iter().filter(|r| r.verdict == v).count();
    assert_eq!(get(&p.url("/x")).await.0, 200);
    assert!(eventually(|| verdicts(&p, "match") == 1).await);

    drop(candidate);
    assert_eq!(get(&p.url("/x")).await.0, 200);
    assert!(eventually(|| verdicts(&p, "candidate_error") == 1).await);
    let down = r#"understudy_mirror_skipped_total{reason="candidate_down",route="r"}"#;
    for _ in 0..5 {
        assert_eq!(get(&p.url("/x")).await.0, 200);
    }
    let metrics = p.metrics().await;
    assert!(metric(&metrics, down) >= 1.0, "{metrics}");
    assert!(verdicts(&p, "candidate_error") < 4);

    // Back on the same port: the next probe gets through and mirroring resumes.
    let _candidate = upstream()
        .json(r#"{"a":1}"#)
        .header("connection", "close")
        .spawn_at(addr)
        .await;
    let deadline = Instant::now() + PATIENCE;
    while verdicts(&p, "match") < 2 && Instant::now() < deadline {
        assert_eq!(get(&p.url("/x")).await.0, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(verdicts(&p, "match") >= 2, "{:?}", p.rows());
    // Up again: every copy is mirrored, none skipped.
    let skipped_before = metric(&p.metrics().await, down);
    for _ in 0..5 {
        assert_eq!(get(&p.url("/x")).await.0, 200);
    }
    // Skips are counted before the client is answered.
    assert_eq!(metric(&p.metrics().await, down), skipped_before);
    p.stop().await;
    assert!(verdicts(&p, "match") >= 7, "{:?}", p.rows());
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
