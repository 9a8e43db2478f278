//! The real binary: SIGTERM stops accepting, drains, flushes every row, exits 0.

use crate::support::*;
use std::process::Command;
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
    let routes = route("r", "/", &incumbent.url(), &candidate.url(), "");
    let (child, addr, _) = spawn_binary(dir.path(), &routes);
    let n = 50;
    for i in 0..n {
        let (status, _, _) = get(&format!("http://{addr}/item/{i}")).await;
        assert_eq!(status, 200);
    }
    // Mirrors are still in flight (the candidate takes 200 ms): stop now.
    assert_eq!(terminate(child).await, Some(0));
    let rows = rows(&dir.path().join("understudy.db"));
    assert_eq!(rows.len(), n);
    assert!(
        rows.iter().all(|r| r.verdict == "match"),
        "every mirror finished before exit"
    );
}

/// The real binary on `dir/proxy.toml`, with its proxy and admin addresses
/// from its listening line. The caller waits for the child.
fn spawn_binary(dir: &std::path::Path, routes: &str) -> (std::process::Child, String, String) {
    let config = dir.join("proxy.toml");
    std::fs::write(&config, config_text(dir, "", routes)).unwrap();
    serve_binary(&config)
}

/// One request on a fresh connection: `Some(true)` answered 200,
/// `Some(false)` accepted but not answered (or answered otherwise), `None`
/// refused or reset before anything was read (not accepted by the proxy).
async fn one(addr: &str, i: usize) -> Option<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET /load/{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return Some(false);
    }
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf).await {
        // Reset with nothing read: the kernel completed the handshake in the
        // instant the listener closed, and the proxy never accepted it.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && buf.is_empty() => None,
        other => {
            let ok = buf.starts_with(b"HTTP/1.1 200");
            if !ok {
                let head = String::from_utf8_lossy(&buf[..buf.len().min(60)]).to_string();
                eprintln!("not answered: {other:?} {head:?}");
            }
            Some(ok)
        }
    }
}

/// Clients sending as fast as they can until the proxy stops accepting:
/// (answered, accepted but not answered).
fn load(addr: String, workers: usize) -> tokio::task::JoinHandle<(usize, usize)> {
    tokio::spawn(async move {
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let (addr, next) = (addr.clone(), next.clone());
                tokio::spawn(async move {
                    let (mut ok, mut lost) = (0, 0);
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        match one(&addr, i).await {
                            Some(true) => ok += 1,
                            Some(false) => lost += 1,
                            None => return (ok, lost),
                        }
                    }
                })
            })
            .collect();
        let mut total = (0, 0);
        for t in tasks {
            let (ok, lost) = t.await.unwrap();
            total = (total.0 + ok, total.1 + lost);
        }
        total
    })
}

fn signal(child: &std::process::Child, sig: &str) {
    let sent = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drops_no_request_and_writes_every_row() {
    let incumbent = upstream().json(r#"{"v":1}"#).spawn().await;
    let candidate = upstream()
        .json(r#"{"v":1}"#)
        .delay(Duration::from_millis(50))
        .spawn()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let routes = route("r", "/", &incumbent.url(), &candidate.url(), "");
    let (child, addr, _) = spawn_binary(dir.path(), &routes);
    let clients = load(addr, 16);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Sent now (a spawned task), while the clients keep sending.
    let stopped = tokio::spawn(terminate(child));
    let (answered, lost) = clients.await.unwrap();
    assert_eq!(stopped.await.unwrap(), Some(0));
    assert!(answered > 50, "the load ran: {answered}");
    assert_eq!(lost, 0, "requests accepted and not answered");
    let rows = rows(&dir.path().join("understudy.db"));
    assert_eq!(rows.len(), answered, "a row for every answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_leaves_a_sound_file_with_every_reported_row() {
    let incumbent = upstream().json(r#"{"v":1}"#).spawn().await;
    let candidate = upstream().json(r#"{"v":1}"#).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = route("r", "/", &incumbent.url(), &candidate.url(), "");
    let (mut child, addr, admin) = spawn_binary(dir.path(), &routes);
    let clients = load(addr, 16);
    // Wait until rows are being written, then read how many the proxy says it wrote.
    let written = || async {
        let (_, _, body) = get(&format!("http://{admin}/metrics")).await;
        metric(
            &String::from_utf8_lossy(&body),
            "understudy_store_rows_written_total",
        )
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    while written().await < 200.0 {
        assert!(std::time::Instant::now() < deadline, "no rows written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reported = written().await;
    signal(&child, "-KILL");
    let _killed = tokio::task::spawn_blocking(move || child.wait()).await;
    let (answered, _) = clients.await.unwrap();
    assert!(answered as f64 >= reported);

    let db = dir.path().join("understudy.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let kept: i64 = conn
        .query_row("SELECT count(*) FROM exchanges", [], |r| r.get(0))
        .unwrap();
    assert!(
        kept as f64 >= reported,
        "{kept} rows kept, {reported} reported written"
    );
    drop(conn);
    // And it starts again on the same file, and serves.
    let (again, addr, _) = spawn_binary(dir.path(), &routes);
    assert_eq!(one(&addr, 0).await, Some(true));
    assert_eq!(terminate(again).await, Some(0));
}
