//! Issue 16: staged autonomy (docs/src/concepts/stages.md) through the real server on loopback:
//! the suggestion of `recommend` and its bound (fast, slow, dead candidate),
//! approvals created, approved, delivered and expired, reviews posted,
//! reversals counted, a burst of reversals moving a segment one stage down,
//! satisfaction below the bar rolling the weight back, the stage API and CLI.
//! This file holds the scenario's helpers; each stage has its file.

mod approve;
mod moves;
mod notify;
mod recommend;
mod streams;

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;
use std::time::{Duration, Instant};

pub const INCUMBENT: &str = r#"{"score":0.5,"label":"warm"}"#;
pub const CANDIDATE: &str = r#"{"score":0.5,"label":"warm","model":"v2"}"#;

/// A route `r` on `/` whose segment comes from `x-tier` (gold, silver), with `extra` TOML.
pub fn routes(incumbent: &str, candidate: &str, extra: &str) -> String {
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
pub async fn ask(
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
pub async fn admin(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
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

pub async fn stage_of(addr: std::net::SocketAddr, segment: &str) -> String {
    let (_, v) = admin(addr, "GET", "/api/v1/routes", Value::Null).await;
    v["routes"][0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["segment"] == segment)
        .map(|s| s["stage"].as_str().unwrap().to_string())
        .unwrap()
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Polls an admin GET until `check` holds (panics after `PATIENCE`); the last answer.
pub async fn wait_for(
    addr: std::net::SocketAddr,
    path: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
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

pub fn addr_of(p: &TestProxy) -> std::net::SocketAddr {
    p.addr
}
