//! Issue 4 end to end: noise learning, judge mode, and the `report`, `show`
//! and `export` commands on a log a real proxy wrote.

use crate::support::*;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use understudy::loopback;

/// A JSON upstream computed from the request's JSON body.
pub(crate) async fn json_upstream(
    answer: impl Fn(&Value) -> Value + Send + Sync + 'static,
    delay: Duration,
) -> loopback::Server {
    let answer = Arc::new(answer);
    loopback::serve(move |req: Request<Incoming>| {
        let answer = answer.clone();
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut resp = Response::new(Full::new(Bytes::from(answer(&v).to_string())));
            resp.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            resp
        }
    })
    .await
    .unwrap()
}

/// Scores `lead`; every answer carries a fresh `request_id` and timestamp, as
/// real services do. With `wrong_every = 4` the score of every fourth lead is off.
async fn scorer(wrong_every: u64) -> loopback::Server {
    let n = Arc::new(AtomicU64::new(0));
    json_upstream(
        move |req| {
            let lead = req["lead"].as_u64().unwrap_or(0);
            let off = wrong_every > 0 && lead % wrong_every == 0;
            let k = n.fetch_add(1, Ordering::Relaxed);
            json!({
                "score": if off { 0.01 } else { (lead % 10) as f64 / 10.0 },
                "label": "hot",
                "request_id": format!("req-{k}-{}", rand::random::<u32>()),
                "meta": {"ts": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos().to_string()},
            })
        },
        Duration::ZERO,
    )
    .await
}

/// `(id, verdict, diff, score, skip_reason)` of one route's rows.
type Row = (String, String, String, Option<f64>, Option<String>);

fn db_rows(db: &std::path::Path, route: &str) -> Vec<Row> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT id, verdict, diff, score, skip_reason FROM exchanges WHERE route = ?1 ORDER BY ts, id",
        )
        .unwrap();
    stmt.query_map([route], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

const POST: &str = "mirror = { methods = [\"POST\"] }\n";

#[tokio::test]
async fn noise_learning_leaves_only_the_genuine_disagreements() {
    let incumbent = scorer(0).await;
    let candidate = scorer(4).await;
    let (inc, cand) = (incumbent.url(), candidate.url());
    let routes = route("plain", "/plain", &inc, &cand, POST)
        + &route(
            "learned",
            "/learned",
            &inc,
            &cand,
            &format!("{POST}compare = {{ mode = \"json\", noise = {{ sample = 1.0 }} }}\n"),
        );
    let mut p = proxy(&routes).await;
    for lead in 1..=12 {
        for prefix in ["/plain", "/learned"] {
            let (status, _, _) = post(&p.url(prefix), &format!("{{\"lead\":{lead}}}")).await;
            assert_eq!(status, 200);
        }
    }
    p.stop().await;

    // Without noise learning every row is a mismatch, mostly on noise.
    let plain = db_rows(&p.db, "plain");
    assert_eq!(plain.len(), 12);
    assert!(plain.iter().all(|r| r.1 == "mismatch"), "{plain:?}");
    assert!(
        plain.iter().all(|r| r.2.contains("/request_id")),
        "{plain:?}"
    );

    // With it, exactly the leads 4, 8 and 12 (the wrong scores) disagree, on /score only.
    let learned = db_rows(&p.db, "learned");
    let verdicts: Vec<&str> = learned.iter().map(|r| r.1.as_str()).collect();
    let expected: Vec<&str> = (1..=12)
        .map(|lead| if lead % 4 == 0 { "mismatch" } else { "match" })
        .collect();
    assert_eq!(verdicts, expected, "{learned:?}");
    for r in learned.iter().filter(|r| r.1 == "mismatch") {
        assert_eq!(r.2, r#"["/score"]"#);
    }

    // The noise is persisted per route and listed by the report.
    let noise = understudy::store::read::noise(std::slice::from_ref(&p.db), None).unwrap();
    let pointers: Vec<(&str, &str)> = (noise.iter())
        .map(|n| (n.route.as_str(), n.pointer.as_str()))
        .collect();
    assert_eq!(
        pointers,
        [("learned", "/meta/ts"), ("learned", "/request_id")]
    );
    assert!(noise.iter().all(|n| n.hits == 12), "{noise:?}");
    let mut out = Vec::new();
    let opts = understudy::report::ReportOptions {
        dbs: vec![p.db.clone()],
        ..Default::default()
    };
    understudy::report::run(&opts, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("noise (left out of verdicts): /meta/ts (12), /request_id (12)"),
        "{text}"
    );
}

/// A judge that agrees when the two scores are within 0.1, after `delay`,
/// and counts its calls.
async fn judge(delay: Duration, calls: Arc<AtomicU64>) -> loopback::Server {
    json_upstream(
        move |pair| {
            calls.fetch_add(1, Ordering::Relaxed);
            let a = pair["incumbent"]["score"].as_f64().unwrap_or(-1.0);
            let b = pair["candidate"]["score"].as_f64().unwrap_or(9.0);
            assert_eq!(pair["request"]["lead"].as_u64().map(|l| l > 0), Some(true));
            let d = (a - b).abs();
            json!({"agree": d <= 0.1, "score": 1.0 - d.min(1.0)})
        },
        delay,
    )
    .await
}

fn judge_route(
    name: &str,
    prefix: &str,
    inc: &str,
    cand: &str,
    judge: &str,
    extra: &str,
) -> String {
    route(
        name,
        prefix,
        inc,
        cand,
        &format!("{POST}compare = {{ mode = \"judge\", url = \"{judge}/judge\"{extra} }}\n"),
    )
}

#[tokio::test]
async fn judge_mode_stores_verdict_and_score_and_skips_on_failure() {
    let incumbent = scorer(0).await;
    let candidate = scorer(4).await;
    let calls = Arc::new(AtomicU64::new(0));
    let good = judge(Duration::ZERO, calls.clone()).await;
    let slow = judge(Duration::from_secs(2), Arc::default()).await;
    let broken = upstream().status(500).spawn().await;
    let (inc, cand) = (incumbent.url(), candidate.url());
    let routes = judge_route("judged", "/judged", &inc, &cand, &good.url(), "")
        + &judge_route(
            "slow",
            "/slow",
            &inc,
            &cand,
            &slow.url(),
            ", judge_timeout = \"200ms\"",
        )
        + &judge_route("broken", "/broken", &inc, &cand, &broken.url(), "");
    let mut p = proxy(&routes).await;
    for lead in 1..=4 {
        for prefix in ["/judged", "/slow", "/broken"] {
            post(&p.url(prefix), &format!("{{\"lead\":{lead}}}")).await;
        }
    }
    p.stop().await;
    assert_eq!(calls.load(Ordering::Relaxed), 4);
    let judged = db_rows(&p.db, "judged");
    let got: Vec<(&str, Option<f64>)> = judged.iter().map(|r| (r.1.as_str(), r.3)).collect();
    // Lead 4 is scored 0.01 by the candidate against 0.4: 0.39 apart.
    assert_eq!(
        got,
        [
            ("match", Some(1.0)),
            ("match", Some(1.0)),
            ("match", Some(1.0)),
            ("mismatch", Some(0.61))
        ]
    );
    let slow = db_rows(&p.db, "slow");
    assert!(
        slow.iter()
            .all(|r| r.1 == "skipped" && r.4.as_deref() == Some("judge failed: timed out")),
        "{slow:?}"
    );
    let broken = db_rows(&p.db, "broken");
    assert!(
        broken
            .iter()
            .all(|r| r.1 == "skipped" && r.4.as_deref() == Some("judge failed: status 500")),
        "{broken:?}"
    );
}

#[tokio::test]
async fn a_full_judge_pool_skips_instead_of_queueing() {
    let incumbent = scorer(0).await;
    let candidate = scorer(0).await;
    let calls = Arc::new(AtomicU64::new(0));
    let slow = judge(Duration::from_millis(500), calls.clone()).await;
    let routes = judge_route(
        "judged",
        "/judged",
        &incumbent.url(),
        &candidate.url(),
        &slow.url(),
        ", judge_max_in_flight = 1",
    );
    let mut p = proxy(&routes).await;
    let sends = (1..=4).map(|lead| {
        let url = p.url("/judged");
        async move { post(&url, &format!("{{\"lead\":{lead}}}")).await }
    });
    futures_util::future::join_all(sends).await;
    p.stop().await;
    let rows = db_rows(&p.db, "judged");
    let busy = rows
        .iter()
        .filter(|r| r.1 == "skipped" && r.4.as_deref() == Some("judge busy"))
        .count();
    let matched = rows.iter().filter(|r| r.1 == "match").count();
    assert_eq!(rows.len(), 4);
    assert!(busy >= 1 && matched >= 1, "{rows:?}");
    assert_eq!(calls.load(Ordering::Relaxed) as usize, matched);
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn show_export_and_feedback_on_a_real_log() {
    let incumbent = scorer(0).await;
    let candidate = scorer(4).await;
    let learn = format!("{POST}compare = {{ mode = \"json\", noise = {{ sample = 1.0 }} }}\n");
    let routes = route(
        "score",
        "/v1/score",
        &incumbent.url(),
        &candidate.url(),
        &(learn + "segment = { header = \"x-tier\" }\n"),
    );
    let mut p = proxy(&routes).await;
    let mut ids = Vec::new();
    for lead in 1..=8 {
        let tier = if lead <= 4 { "enterprise" } else { "smb" };
        let req = Request::post(p.url("/v1/score"))
            .header("x-tier", tier)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!("{{\"lead\":{lead}}}"))))
            .unwrap();
        let (_, headers, _) = send(req).await;
        ids.push(
            headers["x-understudy-exchange-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    p.stop().await;
    let db = p.db.to_str().unwrap().to_string();

    // show: piped, so plain; the differing line is marked in the gutter.
    let (ok, text, err) = cli(&["show", &ids[3], "--db", &db, "--width", "40"]);
    assert!(ok, "{err}");
    assert!(!text.contains('\x1b'), "no colour when piped: {text}");
    assert!(
        text.contains("verdict mismatch") && text.contains("differs at: /score"),
        "{text}"
    );
    let marked: Vec<&str> = text.lines().filter(|l| l.starts_with('>')).collect();
    assert_eq!(marked.len(), 1, "{text}");
    assert!(
        marked[0].contains("\"score\": 0.4") && marked[0].contains("\"score\": 0.01"),
        "{text}"
    );
    let (ok, _, err) = cli(&["show", "nope", "--db", &db]);
    assert!(!ok && err.contains("no exchange with id"), "{err}");

    // export: one object per exchange, filtered.
    let (ok, all, err) = cli(&["export", "--db", &db, "--format", "jsonl"]);
    assert!(ok, "{err}");
    assert_eq!(all.lines().count(), 8);
    let (ok, some, _) = cli(&[
        "export",
        "--db",
        &db,
        "--verdict",
        "mismatch",
        "--segment",
        "smb",
    ]);
    assert!(ok);
    let objs: Vec<Value> = some
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 1, "{some}");
    let o = &objs[0];
    assert_eq!(o["id"], ids[7].as_str());
    assert_eq!(o["request"]["body"], json!({"lead": 8}));
    assert_eq!(o["incumbent"]["body"]["score"], 0.8);
    assert_eq!(o["candidate"]["body"]["score"], 0.01);
    assert_eq!(o["diff"], json!(["/score"]));
    let (ok, none, _) = cli(&["export", "--db", &db, "--route", "other"]);
    assert!(ok && none.is_empty());
    let (ok, _, err) = cli(&["export", "--db", &db, "--verdict", "meh"]);
    assert!(!ok && err.contains("unknown verdict"), "{err}");

    // Feedback on two exchanges shows in the report, per segment.
    let conn = understudy::store::events::open(&p.db).unwrap();
    understudy::store::events::insert_feedback(
        &conn,
        &understudy::store::events::NewFeedback {
            exchange_id: ids[0].clone(),
            rating: Some(5),
            comment: "spot on".into(),
            reversed: false,
            rater: None,
        },
    )
    .unwrap();
    understudy::store::events::insert_feedback(
        &conn,
        &understudy::store::events::NewFeedback {
            exchange_id: ids[3].clone(),
            rating: Some(1),
            comment: "wrong".into(),
            reversed: false,
            rater: None,
        },
    )
    .unwrap();
    drop(conn);
    let (ok, json_text, err) = cli(&["report", "--db", &db, "--format", "json"]);
    assert!(ok, "{err}");
    let r: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(r["lines"][0]["segment"], "enterprise");
    assert_eq!(r["lines"][0]["ratings"]["count"], 2);
    assert_eq!(r["lines"][0]["ratings"]["mean"], 3.0);
    assert_eq!(r["lines"][1]["ratings"]["count"], 0);
    assert_eq!(r["lines"][0]["matches"], 3);
    assert_eq!(r["lines"][0]["mismatches"], 1);

    // -o writes the file; html is self-contained.
    let html = p.dir.path().join("r.html");
    let (ok, _, err) = cli(&[
        "report",
        "--db",
        &db,
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("enterprise"));
}
