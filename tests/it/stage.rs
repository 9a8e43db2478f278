//! Issue 16: staged autonomy (SPEC §14) through the real server on loopback:
//! the suggestion of `recommend` and its bound (fast, slow, dead candidate),
//! approvals created, approved, delivered and expired, reviews posted,
//! reversals counted, a burst of reversals moving a segment one stage down,
//! satisfaction below the bar rolling the weight back, the stage API and CLI.

use crate::rollout::start_in;
use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const INCUMBENT: &str = r#"{"score":0.5,"label":"warm"}"#;
const CANDIDATE: &str = r#"{"score":0.5,"label":"warm","model":"v2"}"#;

/// A route `r` on `/` whose segment comes from `x-tier` (gold, silver), with `extra` TOML.
fn routes(incumbent: &str, candidate: &str, extra: &str) -> String {
    route(
        "r",
        "/",
        incumbent,
        candidate,
        &format!(
            "segment = {{ header = \"x-tier\", values = [\"gold\", \"silver\"] }}\n\
             sticky = {{ header = \"x-user-id\" }}\n\
             compare = {{ mode = \"json\", ignore = [\"/model\"] }}\n{extra}"
        ),
    )
}

/// GET `/s` as user `user` of tier `tier`: status, headers, body, and how long it took.
async fn ask(
    addr: std::net::SocketAddr,
    tier: &str,
    user: usize,
) -> (http::StatusCode, http::HeaderMap, Bytes, Duration) {
    let req = Request::get(format!("http://{addr}/s"))
        .header("x-tier", tier)
        .header("x-user-id", format!("user-{user}"))
        .body(Full::default())
        .unwrap();
    let started = Instant::now();
    let (status, headers, body) = send(req).await;
    (status, headers, body, started.elapsed())
}

/// An admin call: status and JSON answer.
async fn admin(addr: std::net::SocketAddr, method: &str, path: &str, body: Value) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let (status, _, body) = send(req).await;
    let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status.as_u16(), v)
}

async fn stage_of(addr: std::net::SocketAddr, segment: &str) -> String {
    let (_, v) = admin(addr, "GET", "/api/v1/routes", Value::Null).await;
    v["routes"][0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["segment"] == segment)
        .map(|s| s["stage"].as_str().unwrap().to_string())
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_inserts_the_candidates_answer_and_measures_what_it_costs() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let extra = "rollout = { segments = { gold = 100.0 } }\n\
                 [routes.autonomy]\nstages = { gold = \"recommend\" }\n\
                 suggest_pointer = \"/suggestion\"\nsuggest_timeout = \"300ms\"\n";
    let mut proxy = proxy(&routes(&incumbent.url(), &candidate.url(), extra)).await;
    let (status, h, body, _) = ask(proxy.addr, "gold", 1).await;
    assert_eq!(status, 200);
    assert_eq!(h["x-understudy-served-by"], "incumbent");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["score"], 0.5);
    assert_eq!(
        v["suggestion"],
        serde_json::from_str::<Value>(CANDIDATE).unwrap()
    );
    assert_eq!(h["content-length"], body.len().to_string().as_str());

    // What the wait costs with a fast candidate: recommend (gold) against
    // the same route without it (silver, shadow only), alternated.
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..300 {
        with.push(ask(proxy.addr, "gold", i).await.3);
        without.push(ask(proxy.addr, "silver", i).await.3);
    }
    with.sort();
    without.sort();
    let (p50, p99) = (percentile(&with, 0.5), percentile(&with, 0.99));
    let (b50, b99) = (percentile(&without, 0.5), percentile(&without, 0.99));
    println!(
        "recommend, fast candidate: p50 {p50:?} p99 {p99:?}; without: p50 {b50:?} p99 {b99:?}; \
         added p50 {:?} p99 {:?}",
        p50.saturating_sub(b50),
        p99.saturating_sub(b99)
    );
    assert!(p99 < Duration::from_millis(300), "p99 {p99:?}");
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"understudy_suggestions_total{outcome="inserted",route="r"}"#
        ),
        301.0
    );
    assert_eq!(
        metric(&m, r#"understudy_autonomy_stage{route="r",segment="gold"}"#),
        1.0
    );
    proxy.stop().await;
    // Every recommended exchange is compared like any other.
    let gold = proxy
        .rows()
        .into_iter()
        .filter(|r| r.segment == "gold")
        .count();
    assert_eq!(gold, 301);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_json_answer_carries_the_suggestion_in_a_header_cut_at_4_kib() {
    let incumbent = upstream()
        .headers_only(&[("content-type", "text/plain")])
        .json("plain incumbent")
        .spawn()
        .await;
    let long = format!("line one\r\nline two {}", "x".repeat(10_000));
    let candidate = upstream()
        .headers_only(&[("content-type", "text/plain")])
        .json(&long)
        .spawn()
        .await;
    let extra = "rollout = { segments = { gold = 100.0 } }\n\
                 [routes.autonomy]\nstages = { gold = \"recommend\" }\nsuggest_pointer = \"/s\"\n";
    let mut proxy = proxy(&routes(&incumbent.url(), &candidate.url(), extra)).await;
    let (status, h, body, _) = ask(proxy.addr, "gold", 1).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"plain incumbent");
    let s = h["x-understudy-suggestion"].as_bytes();
    assert!(s.starts_with(b"line one  line two xxx"), "{s:?}");
    assert!(s.len() <= 4096, "{}", s.len());
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"understudy_suggestions_total{outcome="header",route="r"}"#
        ),
        1.0
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_dead_candidate_never_delays_the_answer_beyond_suggest_timeout() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let slow = upstream()
        .json(CANDIDATE)
        .delay(Duration::from_millis(1500))
        .spawn()
        .await;
    let dead = format!("http://{}", dead_addr().await);
    let extra = "rollout = { segments = { gold = 100.0 } }\n\
                 [routes.autonomy]\nstages = { gold = \"recommend\" }\n\
                 suggest_pointer = \"/suggestion\"\nsuggest_timeout = \"200ms\"\n";
    for (candidate, outcome) in [(slow.url(), "late"), (dead, "failed")] {
        let mut proxy = proxy(&routes(&incumbent.url(), &candidate, extra)).await;
        let mut worst = Duration::ZERO;
        for i in 0..5 {
            let (status, h, body, took) = ask(proxy.addr, "gold", i).await;
            assert_eq!(status, 200);
            assert_eq!(h["x-understudy-served-by"], "incumbent");
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert!(v.get("suggestion").is_none(), "{outcome}: {v}");
            worst = worst.max(took);
        }
        println!("{outcome} candidate: slowest answer {worst:?} (suggest_timeout 200ms)");
        assert!(worst < Duration::from_millis(450), "{outcome}: {worst:?}");
        let m = proxy.metrics().await;
        let series = format!(r#"understudy_suggestions_total{{outcome="{outcome}",route="r"}}"#);
        assert_eq!(metric(&m, &series), 5.0, "{m}");
        proxy.stop().await;
        // A late candidate's answer still reaches the comparison.
        if outcome == "late" {
            let rows = proxy.rows();
            assert_eq!(rows.len(), 5);
            assert!(rows.iter().all(|r| r.verdict == "match"), "{rows:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_keeps_the_candidates_answer_pending_until_a_person_decides_and_delivers_it() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let receiver = upstream().status(204).spawn().await;
    let extra = format!(
        "rollout = {{ segments = {{ gold = 100.0 }} }}\n\
         [routes.autonomy]\nstages = {{ gold = \"approve\" }}\ndeliver_url = \"{}/deliver\"\n",
        receiver.url()
    );
    let mut proxy = proxy(&routes(&incumbent.url(), &candidate.url(), &extra)).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, h, body, _) = ask(proxy.addr, "gold", i).await;
        assert_eq!(status, 200);
        assert_eq!(h["x-understudy-served-by"], "incumbent");
        assert_eq!(&body[..], INCUMBENT.as_bytes());
        ids.push(h["x-understudy-exchange-id"].to_str().unwrap().to_string());
    }
    // Silver is not in the canary: no approval.
    ask(proxy.addr, "silver", 9).await;
    let addr = proxy.admin;
    let pending = wait_for(addr, "/api/v1/approvals?status=pending&route=r", |v| {
        v["approvals"].as_array().is_some_and(|a| a.len() == 3)
    })
    .await;
    let list = pending["approvals"].as_array().unwrap().clone();
    assert_eq!(list[0]["segment"], "gold");
    assert_eq!(list[0]["candidate"]["body"]["model"], "v2");
    assert_eq!(list[0]["incumbent"]["body"]["score"], 0.5);
    assert!(ids.contains(&list[0]["exchange_id"].as_str().unwrap().to_string()));

    let id = list[0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/approvals/{id}");
    let (status, v) = admin(
        addr,
        "POST",
        &path,
        json!({"decision": "approve", "reason": "looks right"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["approval"]["status"], "approved");
    assert_eq!(v["approval"]["decided_by"], "api");
    // Decided once only.
    let (status, _) = admin(
        addr,
        "POST",
        &path,
        json!({"decision": "reject", "reason": "no"}),
    )
    .await;
    assert_eq!(status, 409);
    let other = format!("/api/v1/approvals/{}", list[1]["id"]);
    let (status, v) = admin(
        addr,
        "POST",
        &other,
        json!({"decision": "reject", "reason": "wrong"}),
    )
    .await;
    assert_eq!(
        (status, v["approval"]["status"].as_str()),
        (200, Some("rejected"))
    );
    let (status, _) = admin(
        addr,
        "POST",
        &other,
        json!({"decision": "maybe", "reason": "x"}),
    )
    .await;
    assert_eq!(status, 400);

    // The approved answer reaches deliver_url with its exchange id and the request.
    assert!(eventually(|| !receiver.requests().is_empty()).await);
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1, "only the approved one is delivered");
    assert_eq!(seen[0].uri.path(), "/deliver");
    let delivered: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(delivered["exchange_id"], list[0]["exchange_id"]);
    assert_eq!(delivered["request"]["method"], "GET");
    assert_eq!(delivered["request"]["path"], "/s");
    assert_eq!(delivered["answer"]["body"]["model"], "v2");
    let m = proxy.metrics().await;
    for (event, n) in [("created", 3.0), ("approved", 1.0), ("rejected", 1.0)] {
        let series =
            format!(r#"understudy_approvals_total{{event="{event}",route="r",segment="gold"}}"#);
        assert_eq!(metric(&m, &series), n, "{event}");
    }
    proxy.stop().await;

    // export --approvals: the decisions with both answers, not the pending one.
    let db = proxy.db.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
            .args(["export", "--approvals", "--db"])
            .arg(&db)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["status"], "approved");
    assert_eq!(lines[1]["status"], "rejected");
    assert_eq!(lines[1]["reason"], "wrong");
    assert_eq!(lines[1]["candidate"]["body"]["model"], "v2");
    assert_eq!(lines[1]["incumbent"]["body"]["label"], "warm");
}

/// Polls an admin GET until `check` holds (panics after `PATIENCE`); the last answer.
async fn wait_for(addr: std::net::SocketAddr, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, v) = admin(addr, "GET", path, Value::Null).await;
        if check(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{path}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_approval_expires_after_approval_ttl() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let extra = "rollout = { segments = { gold = 100.0 } }\n\
                 [routes.autonomy]\nstages = { gold = \"approve\" }\napproval_ttl = \"1s\"\n";
    let mut proxy = proxy(&routes(&incumbent.url(), &candidate.url(), extra)).await;
    ask(proxy.addr, "gold", 1).await;
    let addr = proxy.admin;
    let created = Instant::now();
    let last = wait_for(addr, "/api/v1/approvals", |v| {
        v["approvals"][0]["status"] == "expired"
    })
    .await;
    assert!(created.elapsed() >= Duration::from_millis(900));
    assert_eq!(last["approvals"][0]["decided_by"], "ttl");
    let id = last["approvals"][0]["id"].as_i64().unwrap();
    let (status, _) = admin(
        addr,
        "POST",
        &format!("/api/v1/approvals/{id}"),
        json!({"decision": "approve", "reason": "too late"}),
    )
    .await;
    assert_eq!(status, 409);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"understudy_approvals_total{event="expired",route="r",segment="gold"}"#
        ),
        1.0
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_serves_the_candidate_posts_each_answer_for_review_and_counts_reversals() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let reviewer = upstream().spawn().await;
    let extra = format!(
        "rollout = {{ segments = {{ gold = 100.0 }} }}\n\
         [routes.autonomy]\nstages = {{ gold = \"notify\" }}\nreview_url = \"{}/review\"\n",
        reviewer.url()
    );
    let mut proxy = proxy(&routes(&incumbent.url(), &candidate.url(), &extra)).await;
    let (_, h, body, _) = ask(proxy.addr, "gold", 1).await;
    assert_eq!(h["x-understudy-served-by"], "candidate");
    assert_eq!(&body[..], CANDIDATE.as_bytes());
    let id = h["x-understudy-exchange-id"].to_str().unwrap().to_string();
    let (_, h, _, _) = ask(proxy.addr, "silver", 2).await;
    assert_eq!(h["x-understudy-served-by"], "incumbent");
    assert!(eventually(|| !reviewer.requests().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = reviewer.requests();
    assert_eq!(seen.len(), 1, "only the candidate's answers are reviewed");
    let review: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(review["exchange_id"], id.as_str());
    assert_eq!(review["segment"], "gold");
    assert_eq!(review["answer"]["body"]["model"], "v2");

    // A person reverses it: no rating needed.
    let (status, v) = admin(
        proxy.admin,
        "POST",
        "/api/v1/feedback",
        json!({"exchange_id": id, "reversed": true, "comment": "wrong lead"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, _) = admin(
        proxy.admin,
        "POST",
        "/api/v1/feedback",
        json!({"exchange_id": id}),
    )
    .await;
    assert_eq!(status, 400, "neither a rating nor a reversal");
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"understudy_feedback_total{kind="reversal",route="r",segment="gold"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"understudy_autonomy_posts_total{kind="review",result="sent",route="r"}"#
        ),
        1.0
    );
    let (_, routes) = admin(proxy.admin, "GET", "/api/v1/routes", Value::Null).await;
    let gold = &routes["routes"][0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["segment"] == "gold")
        .unwrap()
        .clone();
    assert_eq!(gold["autonomy"]["evidence"]["reviewed"], 1);
    assert_eq!(gold["autonomy"]["evidence"]["reversed"], 1);
    proxy.stop().await;
    let conn = rusqlite::Connection::open(&proxy.db).unwrap();
    let (rating, reversed): (Option<i64>, i64) = conn
        .query_row("SELECT rating, reversed FROM feedback", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((rating, reversed), (None, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_reversals_moves_the_segment_one_stage_down_within_seconds() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let sink = upstream().spawn().await;
    let extra = format!(
        "rollout = {{ segments = {{ gold = 100.0 }} }}\n\
         [routes.autonomy]\nstages = {{ gold = \"notify\" }}\n\
         [routes.autonomy.criteria]\nmax_reversal_rate = 0.1\nmin_samples = 20\n\n\
         [[notify]]\nurl = \"{}/hook\"\nevents = [\"breach\"]\n",
        sink.url()
    );
    let mut proxy = proxy(&routes(&incumbent.url(), &candidate.url(), &extra)).await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let (_, h, _, _) = ask(proxy.addr, "gold", i).await;
        assert_eq!(h["x-understudy-served-by"], "candidate");
        ids.push(h["x-understudy-exchange-id"].to_str().unwrap().to_string());
    }
    let addr = proxy.admin;
    // The reviews are counted as each exchange settles.
    wait_for(addr, "/api/v1/routes", |v| {
        v["routes"][0]["segments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["segment"] == "gold" && s["autonomy"]["evidence"]["reviewed"] == 60)
    })
    .await;
    let burst = Instant::now();
    let mut reversals = 0;
    for id in &ids {
        let (status, _) = admin(
            addr,
            "POST",
            "/api/v1/feedback",
            json!({"exchange_id": id, "reversed": true}),
        )
        .await;
        assert_eq!(status, 201);
        reversals += 1;
        if stage_of(addr, "gold").await != "notify" {
            break;
        }
    }
    let took = burst.elapsed();
    println!(
        "reversal burst: notify → {} after {reversals} reversal(s) of 60 reviewed, {took:?}",
        stage_of(addr, "gold").await
    );
    assert_eq!(
        stage_of(addr, "gold").await,
        "approve",
        "exactly one stage down"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    // The canary users now get the incumbent's answer.
    let (_, h, _, _) = ask(addr_of(&proxy), "gold", 1).await;
    assert_eq!(h["x-understudy-served-by"], "incumbent");
    let (_, audit) = admin(addr, "GET", "/api/v1/audit?route=r", Value::Null).await;
    let last = audit["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["actor"].as_str(),
            last["from_stage"].as_str(),
            last["to_stage"].as_str()
        ),
        (Some("guard"), Some("notify"), Some("approve")),
        "{last}"
    );
    assert!(
        last["reason"].as_str().unwrap().contains("reversals"),
        "{last}"
    );
    // Announced as a breach, with the stages.
    assert!(eventually(|| !sink.requests().is_empty()).await);
    let event: Value = serde_json::from_slice(&sink.requests()[0].body).unwrap();
    assert_eq!(
        (
            event["event"].as_str(),
            event["from_stage"].as_str(),
            event["to_stage"].as_str()
        ),
        (Some("breach"), Some("notify"), Some("approve")),
        "{event}"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, r#"understudy_autonomy_stage{route="r",segment="gold"}"#),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            r#"understudy_guard_trips_total{reason="reversals",route="r",segment="gold"}"#
        ),
        1.0
    );
    proxy.stop().await;
}

fn addr_of(p: &TestProxy) -> std::net::SocketAddr {
    p.addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn satisfaction_below_the_bar_rolls_the_weight_back() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let extra = "rollout = { segments = { gold = 50.0 } }\n\
                 guard = { min_samples = 20, min_satisfaction = 0.8, steps = [5, 50, 100] }\n";
    let mut proxy = proxy(&routes(&incumbent.url(), &candidate.url(), extra)).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let (_, h, _, _) = ask(proxy.addr, "gold", i).await;
        ids.push(h["x-understudy-exchange-id"].to_str().unwrap().to_string());
    }
    proxy.running.as_ref().unwrap().proxy.store.flush().await;
    let weight = |v: &Value| {
        v["routes"][0]["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["segment"] == "gold")
            .unwrap()["weight"]
            .as_f64()
            .unwrap()
    };
    let addr = proxy.admin;
    let mut rated = 0;
    for id in &ids {
        let (status, v) = admin(
            addr,
            "POST",
            "/api/v1/feedback",
            json!({"exchange_id": id, "rating": -1}),
        )
        .await;
        assert_eq!(status, 201, "{v}");
        rated += 1;
        let (_, routes) = admin(addr, "GET", "/api/v1/routes", Value::Null).await;
        if weight(&routes) < 50.0 {
            break;
        }
    }
    let (_, routes) = admin(addr, "GET", "/api/v1/routes", Value::Null).await;
    assert_eq!(
        weight(&routes),
        5.0,
        "one step back after {rated} rating(s)"
    );
    let (_, audit) = admin(addr, "GET", "/api/v1/audit?route=r", Value::Null).await;
    let last = audit["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], "guard");
    assert!(
        last["reason"].as_str().unwrap().contains("satisfaction"),
        "{last}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_change_by_hand_raising_gated_lowering_never_and_survive_a_restart() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let extra = "rollout = { segments = { gold = 100.0 } }\n\
                 [routes.autonomy]\nstage = \"shadow\"\nstages = { gold = \"recommend\" }\n";
    let text = routes(&incumbent.url(), &candidate.url(), extra);
    let dir = tempfile::tempdir().unwrap();
    let running = start_in(dir.path(), &text, None).await;
    let addr = running.admin_addr;
    let path = "/api/v1/routes/r/stage";
    let raise = json!({"segment": "gold", "stage": "notify", "reason": "reviews look fine"});
    let (status, v) = admin(addr, "POST", path, raise.clone()).await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("promotion gate"),
        "{v}"
    );
    let mut forced = raise;
    forced["force"] = json!(true);
    let (status, v) = admin(addr, "POST", path, forced).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["change"]["forced"], true);
    assert_eq!(
        (
            v["change"]["from_stage"].as_str(),
            v["change"]["to_stage"].as_str()
        ),
        (Some("recommend"), Some("notify"))
    );
    let (_, h, _, _) = ask(running.addr, "gold", 1).await;
    assert_eq!(h["x-understudy-served-by"], "candidate");
    for (body, want) in [
        (
            json!({"segment": "gold", "stage": "autopilot", "reason": "x"}),
            400,
        ),
        (json!({"segment": "gold", "stage": "approve"}), 400),
        (
            json!({"segment": "nope", "stage": "approve", "reason": "x"}),
            404,
        ),
        (
            json!({"segment": "gold", "stage": "notify", "reason": "again"}),
            409,
        ),
    ] {
        let (status, v) = admin(addr, "POST", path, body.clone()).await;
        assert_eq!(status, want, "{body}: {v}");
    }
    running.stop().await;

    // After a restart the recorded stage wins over the file's; the CLI lowers it, ungated.
    let running = start_in(dir.path(), &text, None).await;
    assert_eq!(stage_of(running.admin_addr, "gold").await, "notify");
    let admin_addr = running.admin_addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
            .args([
                "stage",
                "r",
                "--segment",
                "gold",
                "--to",
                "shadow",
                "--reason",
                "pause",
            ])
            .args(["--admin", &admin_addr, "-c", "/nonexistent/proxy.toml"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stage notify → shadow"),
        "{out:?}"
    );
    let (_, h, _, _) = ask(running.addr, "gold", 1).await;
    assert_eq!(
        h["x-understudy-served-by"], "incumbent",
        "shadow never serves"
    );
    let admin_addr = running.admin_addr.to_string();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
            .args(["status", "--admin", &admin_addr])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("shadow") && text.contains("notify → shadow"),
        "{text}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_that_passes_for_hold_advances_one_stage_by_itself() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let extra = "rollout = { segments = { gold = 100.0 } }\n\
                 [routes.autonomy]\nstages = { gold = \"recommend\", silver = \"recommend\" }\n\
                 auto_advance = true\nhold = \"300ms\"\n\
                 [routes.autonomy.criteria]\nmin_agreement = 0.5\nmin_samples = 20\n";
    let mut proxy = proxy(&routes(&incumbent.url(), &candidate.url(), extra)).await;
    let started = Instant::now();
    let mut sent = 0;
    while stage_of(proxy.admin, "gold").await == "recommend" {
        assert!(
            started.elapsed() < PATIENCE,
            "no advance after {sent} requests"
        );
        ask(proxy.addr, "gold", sent).await;
        // Silver agrees as well, but has no canary users (weight 0): it stays.
        ask(proxy.addr, "silver", sent).await;
        sent += 1;
    }
    println!(
        "recommend → {} after {sent} agreeing exchanges, {:?}",
        stage_of(proxy.admin, "gold").await,
        started.elapsed()
    );
    assert_eq!(
        stage_of(proxy.admin, "gold").await,
        "approve",
        "one stage up"
    );
    assert_eq!(stage_of(proxy.admin, "silver").await, "recommend");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before hold"
    );
    let (_, audit) = admin(proxy.admin, "GET", "/api/v1/audit?route=r", Value::Null).await;
    let last = audit["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], "guard");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .starts_with("autonomy advance: passed for"),
        "{last}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_answer_is_passed_through_without_a_suggestion_and_counted() {
    // The body is not really gzip: Understudy must not touch it either way.
    let incumbent = upstream()
        .header("content-encoding", "gzip")
        .json(INCUMBENT)
        .spawn()
        .await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let extra = "rollout = { segments = { gold = 100.0 } }\n\
                 [routes.autonomy]\nstages = { gold = \"recommend\" }\nsuggest_pointer = \"/s\"\n";
    let mut proxy = proxy(&routes(&incumbent.url(), &candidate.url(), extra)).await;
    let (status, h, body, _) = ask(proxy.addr, "gold", 1).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], INCUMBENT.as_bytes());
    assert_eq!(h["content-encoding"], "gzip");
    assert!(h.get("x-understudy-suggestion").is_none());
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"understudy_suggestions_total{outcome="compressed",route="r"}"#
        ),
        1.0
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_changed_in_the_file_is_applied_on_reload_and_audited_as_config() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let text = |stage: &str| {
        routes(
            &incumbent.url(),
            &candidate.url(),
            &format!(
                "rollout = {{ segments = {{ gold = 100.0 }} }}\n\
                 [routes.autonomy]\nstages = {{ gold = \"{stage}\" }}\n"
            ),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let running = start_in(dir.path(), &text("recommend"), None).await;
    let addr = running.admin_addr;
    assert_eq!(stage_of(addr, "gold").await, "recommend");
    let file = config_text(dir.path(), "[store]\n", &text("notify"));
    std::fs::write(dir.path().join("proxy.toml"), file).unwrap();
    let (status, v) = admin(addr, "POST", "/api/v1/reload", Value::Null).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(stage_of(addr, "gold").await, "notify");
    let (_, h, _, _) = ask(running.addr, "gold", 1).await;
    assert_eq!(h["x-understudy-served-by"], "candidate");
    let (_, audit) = admin(addr, "GET", "/api/v1/audit?route=r", Value::Null).await;
    let last = audit["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (
            last["actor"].as_str(),
            last["from_stage"].as_str(),
            last["to_stage"].as_str()
        ),
        (Some("config"), Some("recommend"), Some("notify")),
        "{last}"
    );
    running.stop().await;
}
