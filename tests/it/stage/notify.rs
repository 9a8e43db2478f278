//! `notify`: the candidate serves, each answer is posted for review, a
//! reversal is counted, and a burst of reversals moves the stage one down.

use super::*;
use crate::support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

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
