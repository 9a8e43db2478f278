//! Issue 23: people's data behind the token, approvals that follow
//! retention, and a disk budget that bounds the file on disk. Real proxy on
//! loopback, real SQLite files.

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;
use std::time::{Duration, Instant};
use understudy::app::{Options, Running};

const INCUMBENT: &str = r#"{"score":0.5,"label":"warm"}"#;
const CANDIDATE: &str = r#"{"score":0.5,"label":"warm","model":"v2","email":"a@b.example"}"#;

/// A route `r` whose `gold` segment is at `approve`, with `store` extras and
/// an optional admin token.
async fn approving(
    dir: &std::path::Path,
    store: &str,
    token: Option<&str>,
    incumbent: &str,
    candidate: &str,
) -> Running {
    approving_with(dir, store, token, incumbent, candidate, "").await
}

/// [`approving`] with extra `[routes.autonomy]` keys.
async fn approving_with(
    dir: &std::path::Path,
    store: &str,
    token: Option<&str>,
    incumbent: &str,
    candidate: &str,
    autonomy: &str,
) -> Running {
    let routes = route(
        "r",
        "/",
        incumbent,
        candidate,
        &format!(
            "segment = {{ header = \"x-tier\", values = [\"gold\"] }}\n\
         compare = {{ mode = \"json\", ignore = [\"/model\", \"/email\"] }}\n\
         rollout = {{ segments = {{ gold = 100.0 }} }}\n\
         [routes.autonomy]\nstages = {{ gold = \"approve\" }}\n{autonomy}\n"
        ),
    );
    let text = config_text(dir, &format!("[store]\n{store}"), &routes);
    let config = understudy::config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let options = Options {
        admin_token: token.map(str::to_string),
        ..Options::default()
    };
    understudy::app::start_with(config, options).await.unwrap()
}

async fn ask_gold(running: &Running, i: usize) {
    let req = Request::get(format!("http://{}/s?q={i}", running.addr))
        .header("x-tier", "gold")
        .header("x-session", "secret-session-7")
        .body(Full::<Bytes>::default())
        .unwrap();
    assert_eq!(send(req).await.0, 200);
}

/// Waits until the store holds `n` approvals (each is written by the settle
/// task after the client's answer).
async fn approvals_written(running: &Running, n: i64) {
    let db = running.proxy.store.path().to_path_buf();
    let count = move || -> i64 {
        rusqlite::Connection::open(&db)
            .and_then(|c| c.query_row("SELECT count(*) FROM approvals", [], |r| r.get(0)))
            .unwrap_or(0)
    };
    let deadline = Instant::now() + PATIENCE;
    while count() < n {
        assert!(Instant::now() < deadline, "{} approvals, not {n}", count());
        running.proxy.store.flush().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GET on the admin listener with extra headers: status and JSON.
async fn admin_get(running: &Running, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = Request::get(format!("http://{}{path}", running.admin_addr));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (status, _, body) = send(req.body(Full::default()).unwrap()).await;
    (
        status.as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_read_only_with_the_token_paged_and_with_bodies_only_one_at_a_time() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let running = approving(
        dir.path(),
        "",
        Some("tok"),
        &incumbent.url(),
        &candidate.url(),
    )
    .await;
    for i in 0..3 {
        ask_gold(&running, i).await;
    }
    approvals_written(&running, 3).await;
    let bearer = [("authorization", "Bearer tok")];
    for refused in [
        vec![],
        vec![("authorization", "Bearer tok!")],
        vec![("authorization", "tok")],
    ] {
        let (status, v) = admin_get(&running, "/api/v1/approvals", &refused).await;
        assert_eq!(status, 401, "{refused:?}: {v}");
        assert!(v.get("approvals").is_none(), "{v}");
        let (status, v) = admin_get(&running, "/api/v1/approvals/1", &refused).await;
        assert_eq!(status, 401, "{refused:?}: {v}");
    }
    // A page: no request or answer content, and a cursor to the next page.
    let (status, page) = admin_get(&running, "/api/v1/approvals?limit=2", &bearer).await;
    assert_eq!(status, 200, "{page}");
    let list = page["approvals"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{page}");
    let text = page.to_string();
    for secret in ["secret-session-7", "a@b.example", "warm", "q=0"] {
        assert!(!text.contains(secret), "{secret} listed: {text}");
    }
    assert_eq!(list[0]["status"], "pending");
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_string();
    let (_, rest) = admin_get(
        &running,
        &format!("/api/v1/approvals?limit=2&cursor={cursor}"),
        &bearer,
    )
    .await;
    let rest = rest["approvals"].as_array().unwrap().clone();
    assert_eq!(rest.len(), 1);
    assert!(rest[0]["id"].as_i64() > list[1]["id"].as_i64());
    let (status, _) = admin_get(&running, "/api/v1/approvals?limit=x", &bearer).await;
    assert_eq!(status, 400);
    // One approval: the request and both answers.
    let one = format!("/api/v1/approvals/{}", list[0]["id"]);
    let (status, v) = admin_get(&running, &one, &bearer).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["approval"]["candidate"]["body"]["model"], "v2");
    assert_eq!(v["approval"]["incumbent"]["body"]["label"], "warm");
    assert_eq!(
        v["approval"]["request"]["headers"]["x-session"],
        "secret-session-7"
    );
    let (status, _) = admin_get(&running, "/api/v1/approvals/999", &bearer).await;
    assert_eq!(status, 404);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_approvals_are_not_read_through_a_rebinding_host() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let running = approving(dir.path(), "", None, &incumbent.url(), &candidate.url()).await;
    ask_gold(&running, 1).await;
    approvals_written(&running, 1).await;
    for path in ["/api/v1/approvals", "/api/v1/approvals/1"] {
        let (status, v) = admin_get(&running, path, &[("host", "evil.example:9090")]).await;
        assert_eq!(status, 403, "{path}: {v}");
    }
    let (status, v) = admin_get(&running, "/api/v1/approvals", &[]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["approvals"].as_array().unwrap().len(), 1);
    running.stop().await;
}

/// Old rows written straight into the file: (ts, status, decided_ts).
fn insert_approvals(db: &std::path::Path, rows: &[(i64, &str)]) {
    let conn = rusqlite::Connection::open(db).unwrap();
    for (i, (ts, status)) in rows.iter().enumerate() {
        conn.execute(
            "INSERT INTO approvals (exchange_id, ts, route, segment, status, decided_ts,
                 method, path, request_body, candidate_body)
             VALUES (?1, ?2, 'r', 'gold', ?3, ?2, 'GET', '/s', 'q', 'a')",
            rusqlite::params![format!("old-{i}"), ts, status],
        )
        .unwrap();
    }
}

fn approval_statuses(db: &std::path::Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT exchange_id, status FROM approvals ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decided_approvals_follow_retention_and_pending_ones_wait_for_their_decision() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let running = approving(
        dir.path(),
        "retention = \"1h\"\n",
        None,
        &incumbent.url(),
        &candidate.url(),
    )
    .await;
    let db = running.proxy.store.path().to_path_buf();
    running.stop().await;
    // Older than retention (1h), younger than approval_ttl (24h).
    let hour = 3_600_000;
    let now = understudy::store::now_ms();
    insert_approvals(
        &db,
        &[
            (now - 3 * hour, "approved"),
            (now - 2 * hour, "rejected"),
            (now - 2 * hour, "expired"),
            (now - 2 * hour, "pending"),
            (now - 1000, "approved"),
        ],
    );
    // Retention runs at start.
    let running = approving(
        dir.path(),
        "retention = \"1h\"\n",
        None,
        &incumbent.url(),
        &candidate.url(),
    )
    .await;
    let kept = |db: &std::path::Path| {
        approval_statuses(db)
            .into_iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + PATIENCE;
    while kept(&db).len() > 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let statuses = approval_statuses(&db);
    assert_eq!(
        statuses,
        vec![
            ("old-3".to_string(), "pending".to_string()),
            ("old-4".to_string(), "approved".to_string()),
        ],
        "decided and expired approvals older than retention are deleted"
    );
    running.stop().await;
}

/// The database file and its WAL, in bytes.
fn on_disk(db: &std::path::Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    len(db) + len(std::path::Path::new(&wal))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_bytes_bounds_the_file_on_disk_through_a_burst() {
    const MIB: u64 = 1024 * 1024;
    // 50 KB answers, each side: some 40 MB offered to a 2 MiB store.
    let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(50_000));
    let incumbent = upstream().json(&big).spawn().await;
    let candidate = upstream().json(&big.replace('x', "y")).spawn().await;
    let routes = route("r", "/", &incumbent.url(), &candidate.url(), "");
    let p = proxy_with("max_bytes = \"2 MiB\"\n", &routes).await;
    let db = p.db.clone();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let watcher = {
        let (db, peak) = (db.clone(), peak.clone());
        std::thread::spawn(move || {
            for _ in 0..2000 {
                peak.fetch_max(on_disk(&db), std::sync::atomic::Ordering::Relaxed);
                if std::sync::Arc::strong_count(&peak) == 1 {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    for i in 0..400 {
        assert_eq!(get(&p.url(&format!("/a/{i}"))).await.0, 200);
    }
    let deadline = Instant::now() + PATIENCE;
    while on_disk(&db) > 3 * MIB && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settled = on_disk(&db);
    let peak_seen = peak.load(std::sync::atomic::Ordering::Relaxed);
    drop(peak);
    watcher.join().unwrap();
    assert!(
        settled <= 3 * MIB,
        "{settled} bytes on disk for a 2 MiB budget"
    );
    assert!(
        peak_seen < 10 * 2 * MIB,
        "{peak_seen} bytes on disk during the burst"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM exchanges", [], |r| r.get(0))
        .unwrap();
    assert!(rows > 0, "the newest rows stay");
    eprintln!("2 MiB budget: peak {peak_seen} B, settled {settled} B, {rows} rows kept");
}

/// This machine's address toward the outside, when it has one that is not loopback.
fn outward_ip() -> Option<std::net::IpAddr> {
    ["192.0.2.1:9", "10.255.255.1:9", "198.51.100.1:9"]
        .iter()
        .find_map(|target| {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
            s.connect(target).ok()?;
            let ip = s.local_addr().ok()?.ip();
            (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
        })
}

/// A PostgreSQL that does not speak TLS (it answers `N` to an SSLRequest),
/// on `ip`: what each connection sent.
async fn plaintext_pg(
    ip: std::net::IpAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = [0u8; 8];
                if s.read_exact(&mut head).await.is_err() {
                    return;
                }
                if head[4..8] == [0x04, 0xd2, 0x16, 0x2f] {
                    log.lock().unwrap().push("ssl request");
                    if s.write_all(b"N").await.is_err() {
                        return;
                    }
                    let mut next = [0u8; 8];
                    match s.read(&mut next).await {
                        Ok(n) if n > 0 => log.lock().unwrap().push("plaintext startup"),
                        _ => log.lock().unwrap().push("closed"),
                    }
                } else {
                    log.lock().unwrap().push("plaintext startup");
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_never_talks_to_a_remote_postgresql_in_clear_unless_the_url_says_so() {
    let Some(ip) = outward_ip() else {
        eprintln!("skipped: no address that is not loopback");
        return;
    };
    let (addr, seen) = plaintext_pg(ip).await;
    let audit = |url: String| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
                .args(["audit", "-c", "/nonexistent.toml", "--fleet", "--fleet-url"])
                .arg(url)
                .output()
                .unwrap()
        })
    };
    // The default (`prefer`): TLS is required, so a server without it is refused.
    let out = audit(format!("postgres://u@{addr}/db")).await.unwrap();
    assert!(!out.status.success());
    assert!(eventually(|| seen.lock().unwrap().contains(&"closed")).await);
    assert!(
        !seen.lock().unwrap().contains(&"plaintext startup"),
        "{:?}",
        seen.lock().unwrap()
    );
    // Said outright in the URL: in clear.
    seen.lock().unwrap().clear();
    let out = audit(format!("postgres://u@{addr}/db?sslmode=disable"))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(eventually(|| seen.lock().unwrap().contains(&"plaintext startup")).await);

    // `check` says which.
    let dir = tempfile::tempdir().unwrap();
    for (url, says) in [
        (format!("postgres://u@{addr}/db"), "TLS required"),
        (format!("postgres://u@{addr}/db?sslmode=disable"), "no TLS"),
        (
            "postgres://u@127.0.0.1:5/db".to_string(),
            "TLS if the server offers it",
        ),
    ] {
        let routes = route("r", "/", "http://127.0.0.1:9", "http://127.0.0.1:9", "");
        let text = format!(
            "{}\n[fleet]\nurl = \"{url}\"\nreplica = \"a\"\n",
            config_text(dir.path(), "[store]\n", &routes)
        );
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, text).unwrap();
        let (ok, stdout, stderr) = cli(&["check", "-c", path.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        assert!(stdout.contains(says), "{url}: {stdout}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_whose_row_was_dropped_is_not_counted_as_created() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let running = approving(dir.path(), "", None, &incumbent.url(), &candidate.url()).await;
    ask_gold(&running, 0).await;
    approvals_written(&running, 1).await;
    // From now on the store refuses every approval row.
    rusqlite::Connection::open(running.proxy.store.path())
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON approvals
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        )
        .unwrap();
    for i in 1..3 {
        ask_gold(&running, i).await;
    }
    let created = r#"understudy_approvals_total{event="created",route="r",segment="gold"}"#;
    let m = &running.proxy.metrics;
    assert!(eventually(|| metric(&m.encode(), "understudy_store_rows_dropped_total") == 2.0).await);
    running.proxy.store.flush().await;
    assert_eq!(metric(&m.encode(), created), 1.0, "only the committed one");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_counts_once_per_rater_and_the_latest_stands() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let p = proxy(&route("r", "/", &incumbent.url(), &candidate.url(), "")).await;
    let (status, headers, _) = get(&p.url("/s")).await;
    assert_eq!(status, 200);
    let id = headers["x-understudy-exchange-id"]
        .to_str()
        .unwrap()
        .to_string();
    let feedback = format!("http://{}/api/v1/feedback", p.admin);
    // Rating needs the exchange's row, written once the comparison settles.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !p.rows().iter().any(|r| r.id == id) {
        assert!(std::time::Instant::now() < deadline, "the row never came");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // A retrying client: five POSTs, one rating (the last).
    for rating in [1, 1, 1, 1, -1] {
        let body = format!(r#"{{"exchange_id":"{id}","rating":{rating}}}"#);
        assert_eq!(post(&feedback, &body).await.0, 201);
    }
    let conn = rusqlite::Connection::open(&p.db).unwrap();
    let count = |id: &str| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM feedback WHERE exchange_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(count(&id), 1, "five POSTs, one rating");
    for rater in ["ann", "bob", "bob"] {
        let body = format!(r#"{{"exchange_id":"{id}","rating":1,"rater":"{rater}"}}"#);
        assert_eq!(post(&feedback, &body).await.0, 201);
    }
    let long = "x".repeat(300);
    let body = format!(r#"{{"exchange_id":"{id}","rating":1,"rater":"{long}"}}"#);
    assert_eq!(post(&feedback, &body).await.0, 400);
    let rows: Vec<(String, i64)> = conn
        .prepare("SELECT rater, rating FROM feedback WHERE exchange_id = ?1 ORDER BY rater")
        .unwrap()
        .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            ("ann".to_string(), 1),
            ("bob".to_string(), 1),
            ("client:127.0.0.1".to_string(), -1)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_answer_is_delivered_after_an_outage_and_a_restart() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let down = dead_addr().await;
    let dir = tempfile::tempdir().unwrap();
    let autonomy = format!("deliver_url = \"http://{down}/deliver\"");
    let (inc, cand) = (incumbent.url(), candidate.url());
    let start = || approving_with(dir.path(), "", None, &inc, &cand, &autonomy);
    let running = start().await;
    ask_gold(&running, 0).await;
    approvals_written(&running, 1).await;
    let (_, page) = admin_get(&running, "/api/v1/approvals", &[]).await;
    let id = page["approvals"][0]["id"].as_i64().unwrap();
    let decide = format!("http://{}/api/v1/approvals/{id}", running.admin_addr);
    let (status, _, _) = post(&decide, r#"{"decision":"approve","reason":"fine"}"#).await;
    assert_eq!(status, 200);
    // The receiver is down: tried, recorded, pending.
    let one = format!("/api/v1/approvals/{id}");
    let deadline = Instant::now() + PATIENCE;
    let delivery = loop {
        let (_, v) = admin_get(&running, &one, &[]).await;
        let d = v["approval"]["delivery"].clone();
        if d["attempts"].as_i64().is_some_and(|n| n >= 1) {
            break d;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(delivery["status"], "pending", "{delivery}");
    assert!(delivery["last_error"].as_str().is_some(), "{delivery}");
    let m = running.proxy.metrics.encode();
    assert_eq!(
        metric(&m, "understudy_autonomy_deliveries_pending"),
        1.0,
        "{m}"
    );
    running.stop().await;
    // Back up, after a restart: delivered.
    let receiver = upstream().status(204).spawn_at(down).await;
    let running = start().await;
    assert!(eventually(|| receiver.requests().len() == 1).await);
    let got: serde_json::Value = serde_json::from_slice(&receiver.requests()[0].body).unwrap();
    assert_eq!(got["approval_id"], id);
    assert_eq!(got["answer"]["body"]["model"], "v2");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, v) = admin_get(&running, &one, &[]).await;
        if v["approval"]["delivery"]["status"] == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await;
    assert_eq!(receiver.requests().len(), 1, "delivered once");
}
