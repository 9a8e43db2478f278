//! Issue 3: the admin API and the CLI against a running proxy: auth, weights
//! in effect on the next request and after a restart, reload, feedback, the
//! kill switch.

use crate::rollout::start_in;
use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;
use std::process::Command;
use understudy::app::Running;

const TOKEN: &str = "t0ken-for-tests";

async fn api(
    running: &Running,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", running.admin_addr))
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap();
    let (status, _, bytes) = send(req).await;
    (status.as_u16(), serde_json::from_slice(&bytes).unwrap())
}

fn weight_of(routes: &Value, segment: &str) -> f64 {
    routes["routes"][0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["segment"] == segment)
        .unwrap()["weight"]
        .as_f64()
        .unwrap()
}

async fn served(running: &Running) -> String {
    let (_, h, _) = get(&format!("http://{}/x", running.addr)).await;
    h["x-understudy-served-by"].to_str().unwrap().to_string()
}

fn routes_for(incumbent: &Upstream, candidate: &Upstream, extra: &str) -> String {
    route("r", "/", &incumbent.url(), &candidate.url(), extra)
}

#[tokio::test]
async fn a_mutating_call_without_or_with_a_wrong_token_gets_401_and_changes_nothing() {
    let (inc, cand) = (upstream().spawn().await, upstream().spawn().await);
    let dir = tempfile::tempdir().unwrap();
    let running = start_in(dir.path(), &routes_for(&inc, &cand, ""), Some(TOKEN)).await;
    let body = r#"{"segment":"default","weight":50,"reason":"try"}"#;
    let path = "/api/v1/routes/r/weights";
    for token in [None, Some("wrong"), Some("t0ken-for-test")] {
        let (status, v) = api(&running, "POST", path, token, body).await;
        assert_eq!(status, 401, "{v}");
        assert!(v["error"].as_str().unwrap().contains("token"), "{v}");
    }
    let (status, v) = api(&running, "POST", "/api/v1/reload", None, "").await;
    assert_eq!(status, 401, "{v}");
    let (_, routes) = api(&running, "GET", "/api/v1/routes", None, "").await;
    assert_eq!(weight_of(&routes, "default"), 0.0);
    let (_, audit) = api(&running, "GET", "/api/v1/audit", None, "").await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 0, "{audit}");
    assert_eq!(served(&running).await, "incumbent");

    // With the token: gated (the guard has not said pass), then forced:
    // applied, audited as api and forced, and JSON errors for bad calls.
    let (status, v) = api(&running, "POST", path, Some(TOKEN), body).await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("promotion gate"),
        "{v}"
    );
    let forced = r#"{"segment":"default","weight":50,"reason":"try","force":true}"#;
    let (status, v) = api(&running, "POST", path, Some(TOKEN), forced).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["change"]["actor"], "api");
    assert_eq!(v["change"]["forced"], true);
    let (_, audit) = api(&running, "GET", "/api/v1/audit", None, "").await;
    assert_eq!(audit["events"][0]["forced"], true, "{audit}");
    for (path, body, want) in [
        (
            path,
            r#"{"segment":"default","weight":50,"reason":"again","force":true}"#,
            409,
        ),
        (path, r#"{"segment":"nope","weight":5,"reason":"x"}"#, 404),
        (
            path,
            r#"{"segment":"default","weight":500,"reason":"x"}"#,
            400,
        ),
        (path, r#"{"segment":"default","weight":5}"#, 400),
        (path, "not json", 400),
        ("/api/v1/routes/nope/weights", body, 404),
    ] {
        let (status, v) = api(&running, "POST", path, Some(TOKEN), body).await;
        assert_eq!(status, want, "{body}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_set_through_the_cli_is_in_effect_at_once_and_survives_a_restart() {
    let (inc, cand) = (upstream().spawn().await, upstream().spawn().await);
    let dir = tempfile::tempdir().unwrap();
    let routes = routes_for(&inc, &cand, "");
    let running = start_in(dir.path(), &routes, Some(TOKEN)).await;
    assert_eq!(served(&running).await, "incumbent");
    let cli = |admin: std::net::SocketAddr, args: &[&str], token: &str| {
        let admin = admin.to_string();
        Command::new(env!("CARGO_BIN_EXE_understudy"))
            .args(args)
            .args(["--admin", &admin, "-c", "/nonexistent/proxy.toml"])
            .env("UNDERSTUDY_ADMIN_TOKEN", token)
            .output()
            .unwrap()
    };
    let gated = ["promote", "r", "--to", "100", "--reason", "all in"];
    let refused = cli(running.admin_addr, &gated, TOKEN);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("promotion gate") && why.contains("agreement"),
        "{why}"
    );
    let promote = [
        "promote", "r", "--to", "100", "--reason", "all in", "--force",
    ];
    let refused = cli(running.admin_addr, &promote, "wrong");
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert_eq!(served(&running).await, "incumbent");
    let out = cli(running.admin_addr, &promote, TOKEN);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("→ 100"));
    assert_eq!(served(&running).await, "candidate");
    let status = cli(running.admin_addr, &["status"], TOKEN);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("default") && text.contains(" 100% "),
        "{text}"
    );
    let audit = cli(running.admin_addr, &["audit", "--route", "r"], TOKEN);
    let text = String::from_utf8_lossy(&audit.stdout);
    assert!(text.contains("cli") && text.contains("all in"), "{text}");
    running.stop().await;

    let running = start_in(dir.path(), &routes, Some(TOKEN)).await;
    assert_eq!(served(&running).await, "candidate");
    let back = cli(
        running.admin_addr,
        &["rollback", "r", "--reason", "oops"],
        TOKEN,
    );
    assert!(back.status.success(), "{back:?}");
    assert_eq!(served(&running).await, "incumbent");
    let next = cli(
        running.admin_addr,
        &[
            "promote",
            "r",
            "--next",
            "--reason",
            "first step",
            "--force",
        ],
        TOKEN,
    );
    assert!(
        String::from_utf8_lossy(&next.stdout).contains("→ 1"),
        "{next:?}"
    );
    let unreachable = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["status", "--admin", &dead_addr().await.to_string()])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(2));
    running.stop().await;
}

#[tokio::test]
async fn an_invalid_reload_keeps_the_old_config_serving() {
    let (inc, cand) = (upstream().spawn().await, upstream().spawn().await);
    let dir = tempfile::tempdir().unwrap();
    let running = start_in(dir.path(), &routes_for(&inc, &cand, ""), Some(TOKEN)).await;
    let file = dir.path().join("proxy.toml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, good.replace("incumbent = ", "incumbent = 42\nx = ")).unwrap();
    let (status, v) = api(&running, "POST", "/api/v1/reload", Some(TOKEN), "").await;
    assert_eq!(status, 400, "{v}");
    let message = v["error"].as_str().unwrap();
    assert!(
        message.contains("proxy.toml:") && message.contains("running config stays"),
        "{message}"
    );
    assert_eq!(served(&running).await, "incumbent");
    let (status, _, _) = get(&format!("http://{}/x", running.addr)).await;
    assert_eq!(status, 200);

    // A valid change is applied and audited as config.
    let changed = good.replace(
        "candidate = ",
        "rollout = { default = 100.0 }\ncandidate = ",
    );
    std::fs::write(&file, changed).unwrap();
    let (status, v) = api(&running, "POST", "/api/v1/reload", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(served(&running).await, "candidate");
    let (_, audit) = api(&running, "GET", "/api/v1/audit?route=r", None, "").await;
    let last = audit["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["actor"].as_str(), last["to"].as_f64()),
        (Some("config"), Some(100.0))
    );
    let metrics = String::from_utf8(
        get(&format!("http://{}/metrics", running.admin_addr))
            .await
            .2
            .to_vec(),
    )
    .unwrap();
    assert!(
        metrics.contains("understudy_config_reloads_total{result=\"error\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("understudy_canary_weight{route=\"r\",segment=\"default\"} 100"));
    running.stop().await;
}

#[tokio::test]
async fn feedback_kill_switch_and_guard_state() {
    let (inc, cand) = (upstream().spawn().await, upstream().spawn().await);
    let dir = tempfile::tempdir().unwrap();
    let running = start_in(dir.path(), &routes_for(&inc, &cand, ""), Some(TOKEN)).await;
    let (_, h, _) = get(&format!("http://{}/x", running.addr)).await;
    let id = h["x-understudy-exchange-id"].to_str().unwrap().to_string();
    let body = format!(r#"{{"exchange_id":"{id}","rating":1,"comment":"right"}}"#);
    let mut status = 0;
    for _ in 0..100 {
        // The row lands asynchronously; an unknown id is a 404 until then.
        status = api(&running, "POST", "/api/v1/feedback", Some(TOKEN), &body)
            .await
            .0;
        if status == 201 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 201);
    let unknown = r#"{"exchange_id":"nope","rating":0}"#;
    let (status, _) = api(&running, "POST", "/api/v1/feedback", Some(TOKEN), unknown).await;
    assert_eq!(status, 404);

    let (_, routes) = api(&running, "GET", "/api/v1/routes", None, "").await;
    let seg = &routes["routes"][0]["segments"][0];
    assert_eq!(seg["guard"]["figures"]["matches"], 1, "{routes}");
    assert_eq!(seg["guard"]["decision"], "hold");

    let off = r#"{"mirror":"off","reason":"candidate is down"}"#;
    let (status, v) = api(
        &running,
        "POST",
        "/api/v1/routes/r/weights",
        Some(TOKEN),
        off,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    get(&format!("http://{}/x", running.addr)).await;
    get(&format!("http://{}/x", running.addr)).await;
    assert_eq!(cand.requests().len(), 1, "no mirror after the kill switch");
    let (_, routes) = api(&running, "GET", "/api/v1/routes", None, "").await;
    assert_eq!(routes["routes"][0]["mirror"], "off");
    running.stop().await;
}

#[tokio::test]
async fn a_changed_file_is_applied_without_a_call() {
    let (inc, cand) = (upstream().spawn().await, upstream().spawn().await);
    let dir = tempfile::tempdir().unwrap();
    let running = start_in(dir.path(), &routes_for(&inc, &cand, ""), Some(TOKEN)).await;
    let file = dir.path().join("proxy.toml");
    let good = std::fs::read_to_string(&file).unwrap();
    // Some filesystems keep whole-second modification times.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let changed = good.replace(
        "candidate = ",
        "rollout = { default = 100.0 }\ncandidate = ",
    );
    std::fs::write(&file, changed).unwrap();
    let rollout = &running.proxy.rollout;
    assert!(eventually(|| rollout.route("r").unwrap().default == 100.0).await);
    assert_eq!(served(&running).await, "candidate");
    let last = rollout.history(Some("r"), 1).unwrap().pop().unwrap();
    assert_eq!(last.actor, "config");
    running.stop().await;
}
