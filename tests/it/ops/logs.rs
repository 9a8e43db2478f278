//! `--log-format json` writes one JSON object per line; plain text by
//! default; lines about an exchange carry its id.

use crate::support::*;
use http::Request;
use http_body_util::Full;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The real binary with `extra` arguments before `serve`; drives a guard
/// trip and stops it with SIGTERM. Returns its stderr lines.
async fn serve_and_log(extra: &[&str]) -> Vec<String> {
    let incumbent = upstream().json(r#"{"score":1}"#).spawn().await;
    let candidate = upstream().json(r#"{"score":2}"#).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.toml");
    let routes = route(
        "r",
        "/",
        &incumbent.url(),
        &candidate.url(),
        r#"segment = { header = "x-tier", values = ["enterprise"] }
sticky = { header = "x-user-id" }
rollout = { segments = { enterprise = 50.0 } }
guard = { min_samples = 20 }
"#,
    );
    std::fs::write(&config, config_text(dir.path(), "", &routes)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(extra)
        .args(["serve", "-c"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            // The test may have stopped listening; the lines are then not needed.
            let _gone = tx.send(line.unwrap());
        }
    });
    let mut lines = Vec::new();
    let mut addr = None;
    while addr.is_none() {
        let line = rx.recv_timeout(PATIENCE).expect("a listening line");
        if line.contains("Understudy listening") {
            // `addr=127.0.0.1:P` (plain) or `"addr":"127.0.0.1:P"` (JSON).
            let rest = line.split("addr").nth(1).unwrap();
            let start = rest.find(|c: char| c.is_ascii_digit()).unwrap();
            let end = rest[start..]
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .map_or(rest.len(), |e| start + e);
            addr = Some(rest[start..end].to_string());
        }
        lines.push(line);
    }
    let addr = addr.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    while Instant::now() < deadline {
        let req = Request::get(format!("http://{addr}/score"))
            .header("x-tier", "enterprise")
            .header("x-user-id", format!("u{i}"))
            .body(Full::default())
            .unwrap();
        send(req).await;
        i += 1;
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
        if lines.iter().any(|l| l.contains("Guard breach")) {
            break;
        }
    }
    assert_eq!(terminate(child).await, Some(0));
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_object_per_line_with_the_exchange_id() {
    let lines = serve_and_log(&["--log-format", "json"]).await;
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        objects
            .iter()
            .all(|o| o["level"].is_string() && o["fields"]["message"].is_string())
    );
    let breach = objects
        .iter()
        .find(|o| o["fields"]["message"] == "Guard breach")
        .unwrap_or_else(|| panic!("a guard breach line: {lines:#?}"));
    // The breach was decided while an exchange settled: its id is on the line.
    let id = breach["span"]["exchange_id"].as_str().unwrap();
    assert!(id.len() >= 16, "{breach}");
    assert!(
        objects
            .iter()
            .any(|o| o["fields"]["message"] == "Stopped; every queued row is written")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_plain_text_by_default_and_name_the_exchange() {
    let lines = serve_and_log(&[]).await;
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
    );
    let breach = lines
        .iter()
        .find(|l| l.contains("Guard breach"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(breach.contains("exchange{exchange_id="), "{breach}");
}
