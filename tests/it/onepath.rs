//! Issue 9: facts about one exchange are worked out once. Each test here
//! failed before the exchange path was restructured.

use crate::rollout::start_in;
use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::time::Duration;

/// A serving candidate whose 200 body breaks off mid-stream: the client got
/// the candidate's bytes, so the row says candidate, not a fallback.
#[tokio::test]
async fn a_candidate_body_that_breaks_off_is_logged_as_served_by_the_candidate() {
    let incumbent = upstream().json(r#"{"who":"incumbent"}"#).spawn().await;
    // Promises 100 bytes, sends 10, closes.
    let (candidate, _task) = raw_upstream(|_| {
        Some(&b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"who\":\"c"[..])
    })
    .await;
    let mut p = proxy(&route(
        "r",
        "/",
        &incumbent.url(),
        &format!("http://{candidate}"),
        "rollout = { default = 100.0 }",
    ))
    .await;
    let resp = client()
        .request(Request::get(p.url("/x")).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-understudy-served-by"], "candidate");
    let read = http_body_util::BodyExt::collect(resp.into_body()).await;
    assert!(read.is_err(), "the client sees the body break off");
    let metrics = p.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "understudy_requests_total{route=\"r\",segment=\"default\",served_by=\"candidate\",status_class=\"2xx\"}"
        ),
        1.0,
        "{metrics}"
    );
    p.stop().await;
    let rows = p.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.served_by, "candidate", "{row:?}");
    assert_eq!(row.verdict, "candidate_error", "{row:?}");
    assert!(
        row.candidate_error
            .as_deref()
            .is_some_and(|e| e.contains("broke off")),
        "{row:?}"
    );
    let conn = rusqlite::Connection::open(&p.db).unwrap();
    let fallback: i64 = conn
        .query_row("SELECT fallback FROM exchanges", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fallback, 0);
}

/// A route that mirrors POST, with the candidate serving everyone.
async fn candidate_serves_posts(incumbent: &Upstream, candidate: &Upstream) -> TestProxy {
    let extra = "mirror = { methods = [\"POST\"] }\nrollout = { default = 100.0 }";
    proxy(&route("r", "/", &incumbent.url(), &candidate.url(), extra)).await
}

/// docs/src/concepts/canary.md "Never twice": a failing serving candidate on a route that
/// mirrors POST sends the write to the incumbent exactly once, and that one
/// answer serves both the client and the comparison.
#[tokio::test]
async fn a_failing_serving_candidate_sends_the_write_to_the_incumbent_once() {
    let incumbent = upstream().json(r#"{"who":"incumbent"}"#).spawn().await;
    let candidate = upstream().status(503).json(r#"{"down":1}"#).spawn().await;
    let mut p = candidate_serves_posts(&incumbent, &candidate).await;
    let (status, h, body) = post(&p.url("/orders"), r#"{"qty":1}"#).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], br#"{"who":"incumbent"}"#);
    assert_eq!(h["x-understudy-served-by"], "incumbent");
    p.stop().await;
    let seen = incumbent.requests();
    assert_eq!(
        seen.len(),
        1,
        "the incumbent got the write {} times",
        seen.len()
    );
    assert!(
        seen[0].headers.get("x-understudy-mirror").is_none(),
        "the fallback is the real request, not a shadow copy"
    );
    assert_eq!(candidate.requests().len(), 1);
    let rows = p.rows();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (row.served_by.as_str(), row.verdict.as_str()),
        ("incumbent", "candidate_error")
    );
    assert_eq!(
        (row.incumbent_status, row.candidate_status),
        (Some(200), Some(503))
    );
}

/// A serving candidate that answers: the incumbent still gets its shadow
/// copy (marked as one) for the comparison, once.
#[tokio::test]
async fn a_serving_candidate_is_compared_with_one_marked_incumbent_copy() {
    let incumbent = upstream().json(r#"{"score":1}"#).spawn().await;
    let candidate = upstream().json(r#"{"score":1}"#).spawn().await;
    let mut p = candidate_serves_posts(&incumbent, &candidate).await;
    let (status, h, _) = post(&p.url("/orders"), r#"{"qty":1}"#).await;
    assert_eq!(status, 200);
    assert_eq!(h["x-understudy-served-by"], "candidate");
    p.stop().await;
    let seen = incumbent.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["x-understudy-mirror"], "1");
    let rows = p.rows();
    assert_eq!(
        (rows[0].served_by.as_str(), rows[0].verdict.as_str()),
        ("candidate", "match")
    );
}

/// Feedback goes through the store's writer: a rating for an exchange whose
/// row is still queued (long flush interval) lands, instead of a 404 from a
/// connection that cannot see the queue.
#[tokio::test]
async fn feedback_for_a_queued_exchange_is_accepted() {
    let (inc, cand) = (upstream().spawn().await, upstream().spawn().await);
    let dir = tempfile::tempdir().unwrap();
    let routes = route("r", "/", &inc.url(), &cand.url(), "");
    let text = config_text(
        dir.path(),
        "[store]\nflush_interval = \"1h\"\nbatch_size = 10000",
        &routes,
    );
    let config = understudy::config::parse(&text).unwrap();
    let db = config.store.path.clone();
    let running = understudy::app::start_with(
        config,
        understudy::app::Options {
            admin_token: Some("tok".into()),
            ..understudy::app::Options::default()
        },
    )
    .await
    .unwrap();
    let (_, h, _) = get(&format!("http://{}/x", running.addr)).await;
    let id = h["x-understudy-exchange-id"].to_str().unwrap().to_string();
    // The settle task queues the row once the candidate has answered.
    assert!(
        eventually(|| metric(
            &running.proxy.metrics.encode(),
            "understudy_comparisons_total{route=\"r\",segment=\"default\",verdict=\"match\"}"
        ) == 1.0)
        .await
    );
    let req = Request::post(format!("http://{}/api/v1/feedback", running.admin_addr))
        .header("authorization", "Bearer tok")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!(
            r#"{{"exchange_id":"{id}","rating":1,"comment":"good"}}"#
        ))))
        .unwrap();
    let (status, _, body) = send(req).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    running.stop().await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM feedback WHERE exchange_id = ?1 AND rating = 1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

/// A reload keeps what lives across reloads: a route's mirror bound is one
/// bound, however often the file is reloaded while copies are out.
#[tokio::test]
async fn reloads_do_not_multiply_the_mirror_bound() {
    let inc = upstream().spawn().await;
    let cand = upstream().delay(Duration::from_millis(700)).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = route(
        "r",
        "/",
        &inc.url(),
        &cand.url(),
        "mirror = { max_in_flight = 1, timeout = \"5s\" }",
    );
    let running = start_in(dir.path(), &routes, Some("tok")).await;
    for _ in 0..3 {
        let (status, _, _) = get(&format!("http://{}/x", running.addr)).await;
        assert_eq!(status, 200);
        running.proxy.reload().await.unwrap();
    }
    assert!(eventually(|| !cand.requests().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        cand.requests().len(),
        1,
        "one copy in flight at most, across reloads"
    );
    let metrics = running.proxy.metrics.encode();
    assert_eq!(
        metric(
            &metrics,
            "understudy_mirror_skipped_total{reason=\"in_flight\",route=\"r\"}"
        ),
        2.0,
        "{metrics}"
    );
    running.stop().await;
}

/// A missing database is said once, not once per layer of the error.
#[test]
fn a_missing_database_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["report", "--db"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
}

/// `understudy report | head`: a reader that goes away ends the command
/// quietly (exit 0, nothing on stderr), as ripgrep does.
#[tokio::test]
async fn a_closed_stdout_ends_quietly() {
    let inc = upstream().spawn().await;
    let cand = upstream().spawn().await;
    let mut p = proxy(&route("r", "/", &inc.url(), &cand.url(), "")).await;
    for _ in 0..3 {
        get(&p.url("/x")).await;
    }
    p.stop().await;
    for args in [
        &["report", "--format", "json"][..],
        &["export", "--format", "jsonl"][..],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
            .args(args)
            .arg("--db")
            .arg(&p.db)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the command writes a byte.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.is_empty(), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
    }
}
