//! docs/src/reference/limits.md under store faults: a rollback never waits on the disk, a store
//! that fails costs clients nothing and says so on `/readyz`.

use crate::rollout::start_in;
use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use understudy::app::Running;

/// Another process (the `sqlite3` shell) holding the database's write lock
/// until dropped.
struct Locked(Child);

impl Locked {
    fn hold(db: &Path) -> Locked {
        let mut child = Command::new("sqlite3")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the sqlite3 shell (Debian's sqlite3 package)");
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(b"BEGIN EXCLUSIVE;\nINSERT INTO noise (route, pointer, first_ts, last_ts, hits) VALUES ('lock', '/x', 0, 0, 1);\nSELECT 'locked';\n")
            .unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        Locked(child)
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.0.stdin.take() {
            let _rolled_back = stdin.write_all(b"ROLLBACK;\n.quit\n");
        }
        let _exited = self.0.wait();
    }
}

async fn set_weight(running: &Running, weight: u32) -> (u16, serde_json::Value) {
    let body =
        format!(r#"{{"segment":"default","weight":{weight},"reason":"w{weight}","force":true}}"#);
    let req = Request::post(format!(
        "http://{}/api/v1/routes/r/weights",
        running.admin_addr
    ))
    .header("content-type", "application/json")
    .body(Full::new(Bytes::from(body)))
    .unwrap();
    let (status, _, bytes) = send(req).await;
    (
        status.as_u16(),
        serde_json::from_slice(&bytes).unwrap_or_default(),
    )
}

async fn served_by(running: &Running) -> String {
    let (status, h, _) = get(&format!("http://{}/x", running.addr)).await;
    assert_eq!(status, 200);
    h["x-understudy-served-by"].to_str().unwrap().to_string()
}

fn recorded(db: &Path, reason: &str) -> Option<i64> {
    let conn = rusqlite::Connection::open(db).ok()?;
    conn.query_row(
        "SELECT version FROM rollout_events WHERE reason = ?1",
        [reason],
        |r| r.get(0),
    )
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_takes_effect_while_another_process_locks_the_database() {
    let (inc, cand) = (upstream().spawn().await, upstream().spawn().await);
    let dir = tempfile::tempdir().unwrap();
    let routes = route(
        "r",
        "/",
        &inc.url(),
        &cand.url(),
        "[routes.rollout]\ndefault = 100",
    );
    let running = start_in(dir.path(), &routes, None).await;
    let db = dir.path().join("understudy.db");
    assert_eq!(served_by(&running).await, "candidate");

    let lock = Locked::hold(&db);
    let started = Instant::now();
    let (status, answer) = set_weight(&running, 0).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the rollback waited on the disk: {:?}",
        started.elapsed()
    );
    assert_eq!(served_by(&running).await, "incumbent", "in effect at once");
    assert_eq!(recorded(&db, "w0"), None, "not in the ledger yet");
    // A raise must wait until the rollback is recorded.
    let (status, answer) = set_weight(&running, 50).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(served_by(&running).await, "incumbent");

    drop(lock);
    assert!(
        eventually(|| recorded(&db, "w0").is_some()).await,
        "the rollback is recorded once the store is back"
    );
    let (status, answer) = set_weight(&running, 50).await;
    assert_eq!(status, 200, "{answer}");
    assert!(recorded(&db, "w50") > recorded(&db, "w0"), "in order");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_costs_clients_nothing_and_says_so_until_it_recovers() {
    let (inc, cand) = (upstream().spawn().await, upstream().spawn().await);
    let mut p = proxy_with(
        "flush_interval = \"20ms\"",
        &route("r", "/", &inc.url(), &cand.url(), ""),
    )
    .await;
    let readyz = format!("http://{}/readyz", p.admin);
    let lock = Locked::hold(&p.db);
    let started = Instant::now();
    for _ in 0..5 {
        let (status, _, _) = get(&p.url("/x")).await;
        assert_eq!(status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "clients waited on the store: {:?}",
        started.elapsed()
    );
    // The writer gives up on the lock after its busy timeout (5 s).
    let mut failing = String::new();
    for _ in 0..100 {
        let (status, _, body) = get(&readyz).await;
        assert_eq!(status, 200, "a failing store does not take the proxy out");
        failing = String::from_utf8_lossy(&body).into_owned();
        if failing.contains("store: failing") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failing.contains("store: failing since"), "{failing}");
    assert!(failing.contains("locked"), "{failing}");
    // Every row lost to the lock is counted (the last batch may still be
    // waiting out its busy timeout).
    let mut dropped = 0.0;
    for _ in 0..150 {
        dropped = metric(&p.metrics().await, "understudy_store_rows_dropped_total");
        if dropped >= 5.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dropped, 5.0, "rows lost to the lock are counted");

    drop(lock);
    let (status, _, _) = get(&p.url("/after")).await;
    assert_eq!(status, 200);
    let ok = eventually(|| p.rows().iter().any(|r| r.path == "/after")).await;
    assert!(ok, "writes resume when the store recovers");
    let (_, _, body) = get(&readyz).await;
    assert_eq!(&body[..], b"ready\n");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_cannot_be_recorded_changes_nothing() {
    let (inc, cand) = (upstream().spawn().await, upstream().spawn().await);
    let dir = tempfile::tempdir().unwrap();
    let old = route("r", "/old", &inc.url(), &cand.url(), "");
    let running = start_in(dir.path(), &old, None).await;
    let db = dir.path().join("understudy.db");
    // The new file adds a route and raises a weight: a config event to
    // record. The lock comes first (the file watcher may reload too).
    let lock = Locked::hold(&db);
    let new = route(
        "r",
        "/new",
        &inc.url(),
        &cand.url(),
        "[routes.rollout]\ndefault = 100",
    );
    // Written with its old modification time, so only our call reloads it
    // (the file watcher would queue a second write behind the lock).
    let file = dir.path().join("proxy.toml");
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, config_text(dir.path(), "[store]\n", &new)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let reload = || async {
        let req = Request::post(format!("http://{}/api/v1/reload", running.admin_addr))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(req).await.0.as_u16()
    };
    assert_eq!(reload().await, 500, "the weight change cannot be recorded");
    let (status, _, _) = get(&format!("http://{}/new/x", running.addr)).await;
    assert_eq!(status, 404, "the new route is not half-applied");
    let (status, h, _) = get(&format!("http://{}/old/x", running.addr)).await;
    assert_eq!(status, 200);
    assert_eq!(h["x-understudy-served-by"], "incumbent");
    drop(lock);
    assert_eq!(reload().await, 200);
    let (status, h, _) = get(&format!("http://{}/new/x", running.addr)).await;
    assert_eq!(status, 200);
    assert_eq!(h["x-understudy-served-by"], "candidate");
    running.stop().await;
}
