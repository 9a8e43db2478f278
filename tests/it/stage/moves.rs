//! Moving stages and weights: satisfaction rolls the weight back, stages by
//! hand (gated raise, ungated lowering, restart, CLI), auto-advance, reload.

use super::*;
use crate::rollout::start_in;
use crate::support::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

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

/// Issue 23: one rater's repeated feedback on one exchange counts once for
/// the guard: forty POSTs of a bad rating from the same client do not roll
/// the weight back (twenty distinct exchanges would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_raters_repeated_feedback_counts_once() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let extra = "rollout = { segments = { gold = 50.0 } }\n\
                 guard = { min_samples = 20, min_satisfaction = 0.8, steps = [5, 50, 100] }\n";
    let proxy = proxy(&routes(&incumbent.url(), &candidate.url(), extra)).await;
    let (_, h, _, _) = ask(proxy.addr, "gold", 0).await;
    let id = h["x-understudy-exchange-id"].to_str().unwrap().to_string();
    // The row is written by the exchange's settle task: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rate = || {
        admin(
            proxy.admin,
            "POST",
            "/api/v1/feedback",
            json!({"exchange_id": id, "rating": -1}),
        )
    };
    while rate().await.0 != 201 {
        assert!(
            Instant::now() < deadline,
            "the exchange's row never arrived"
        );
        proxy.running.as_ref().unwrap().proxy.store.flush().await;
    }
    for _ in 1..40 {
        let (status, v) = rate().await;
        assert_eq!(status, 201, "{v}");
    }
    let (_, routes) = admin(proxy.admin, "GET", "/api/v1/routes", Value::Null).await;
    let gold = routes["routes"][0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["segment"] == "gold")
        .unwrap()
        .clone();
    assert_eq!(gold["weight"].as_f64(), Some(50.0), "{gold}");
}
