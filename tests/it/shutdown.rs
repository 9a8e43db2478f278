//! The real binary: SIGTERM stops accepting, drains, flushes every row, exits 0.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn n_requests_then_sigterm_gives_exactly_n_rows() {
    let incumbent = upstream().json(r#"{"v":1}"#).spawn().await;
    let candidate = upstream()
        .json(r#"{"v":1}"#)
        .delay(Duration::from_millis(200))
        .spawn()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.toml");
    let text = config_text(
        dir.path(),
        "",
        &route("r", "/", &incumbent.url(), &candidate.url(), ""),
    );
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["serve", "-c"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The listening line names the bound address (port 0 was asked for).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.split("addr=").nth(1) {
            addr = rest.split_whitespace().next().map(str::to_string);
        }
        line.clear();
    }
    let addr = addr.expect("the proxy logs its address");
    let n = 50;
    for i in 0..n {
        let (status, _, _) = get(&format!("http://{addr}/item/{i}")).await;
        assert_eq!(status, 200);
    }
    // Mirrors are still in flight (the candidate takes 200 ms): stop now.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let rows = rows(&dir.path().join("understudy.db"));
    assert_eq!(rows.len(), n);
    assert!(
        rows.iter().all(|r| r.verdict == "match"),
        "every mirror finished before exit"
    );
}
