//! `approve`: pending approvals created, approved (delivered to a real
//! receiver), rejected, expired, and exported as a training set.

use super::*;
use crate::support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

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
    assert!(ids.contains(&list[0]["exchange_id"].as_str().unwrap().to_string()));

    let id = list[0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/approvals/{id}");
    // The answers come one approval at a time.
    let (status, one) = admin(addr, "GET", &path, Value::Null).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["approval"]["candidate"]["body"]["model"], "v2");
    assert_eq!(one["approval"]["incumbent"]["body"]["score"], 0.5);
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
