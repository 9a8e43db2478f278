//! docs/src/guide/replay.md replay: yesterday's logged traffic re-sent to a new candidate,
//! compared with the stored incumbent answers, resumable, reported per
//! segment like live traffic.

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_shows_per_segment_what_a_new_candidate_would_do() {
    let incumbent = upstream().json(r#"{"score":1}"#).spawn().await;
    let old = upstream().json(r#"{"score":0}"#).spawn().await;
    let routes = route(
        "r",
        "/",
        &incumbent.url(),
        &old.url(),
        "segment = { query = \"tier\", values = [\"smb\", \"mid\"] }\nmirror = { set_headers = { \"x-key\" = \"candidate-key\" } }",
    );
    let mut p = proxy(&routes).await;
    for i in 0..30 {
        let tier = if i % 3 == 0 { "mid" } else { "smb" };
        let req = Request::get(p.url(&format!("/score/{i}?tier={tier}")))
            .header("authorization", "Bearer s3cret")
            .body(Full::<Bytes>::default())
            .unwrap();
        assert_eq!(send(req).await.0, 200);
    }
    p.stop().await;
    let text = std::fs::read_to_string(p.dir.path().join("proxy.toml")).ok();
    let config = match text {
        Some(t) => understudy::config::parse(&t).unwrap(),
        None => {
            understudy::config::parse(&config_text(p.dir.path(), "[store]\n", &routes)).unwrap()
        }
    };

    // v2 fixes smb but not mid-market.
    let v2 = understudy::loopback::serve(|req: Request<hyper::body::Incoming>| async move {
        let mid = req.uri().query().is_some_and(|q| q.contains("tier=mid"));
        let key_ok = req
            .headers()
            .get("x-key")
            .is_some_and(|v| v == "candidate-key");
        let leaked = req.headers().contains_key("authorization");
        let body = if mid || !key_ok || leaked {
            r#"{"score":0}"#
        } else {
            r#"{"score":1}"#
        };
        http::Response::new(Full::new(Bytes::from_static(body.as_bytes())))
    })
    .await
    .unwrap();
    let opts = understudy::replay::Options {
        db: p.db.clone(),
        route: "r".into(),
        candidate: format!("http://{}", v2.addr).parse().unwrap(),
        label: "v2".into(),
        since: None,
        segment: None,
        rate: 300.0,
        concurrency: 4,
        timeout: Duration::from_secs(5),
        progress: false,
    };
    let started = Instant::now();
    let s = understudy::replay::run(&config, &opts).await.unwrap();
    assert_eq!((s.replayed, s.already), (30, 0), "{s:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(90),
        "held to the rate"
    );
    // Resumable: a second run replays nothing again.
    let again = understudy::replay::run(&config, &opts).await.unwrap();
    assert_eq!((again.replayed, again.already), (0, 30));

    let report = understudy::report::build(&understudy::report::ReportOptions {
        dbs: vec![p.db.clone()],
        label: Some("v2".into()),
        ..Default::default()
    })
    .unwrap();
    let by: Vec<(&str, u64, u64)> = report
        .lines
        .iter()
        .map(|l| (l.segment.as_str(), l.matches, l.mismatches))
        .collect();
    assert_eq!(by, [("mid", 0, 10), ("smb", 20, 0)]);
    // Live traffic was all mismatches (the old candidate).
    let live = understudy::report::build(&understudy::report::ReportOptions {
        dbs: vec![p.db.clone()],
        ..Default::default()
    })
    .unwrap();
    assert!(live.lines.iter().all(|l| l.matches == 0));
}

/// Issue 14's measurement: 100,000 logged exchanges replayed with no rate
/// limit to a loopback candidate: Understudy's own CPU per exchange.
/// `cargo test --release --test it -- --ignored replay_overhead --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run in release"]
async fn replay_overhead() {
    const N: usize = 100_000;
    let candidate = upstream().json(r#"{"score":1}"#).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = route("r", "/", "http://127.0.0.1:9", &candidate.url(), "");
    let text = config_text(dir.path(), "[store]\n", &routes);
    let config = understudy::config::parse(&text).unwrap();
    {
        let store =
            understudy::store::Store::open(&config.store, understudy::metrics::Metrics::new())
                .unwrap();
        for i in 0..N {
            store.record(understudy::store::Record {
                id: format!("ex-{i:08}"),
                ts_ms: 1_000_000 + i as i64,
                route: "r".into(),
                segment: "default".into(),
                served_by: "incumbent",
                method: "GET".into(),
                path: format!("/score/{i}"),
                request_headers: "{}".into(),
                verdict: "match",
                diff: "[]".into(),
                incumbent_status: Some(200),
                incumbent_body: Some(Bytes::from_static(br#"{"score":1}"#)),
                ..Default::default()
            });
            if i % 10_000 == 9_999 {
                store.flush().await;
            }
        }
        store.flush().await;
    }
    let cpu = || {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let f: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
    };
    let opts = understudy::replay::Options {
        db: config.store.path.clone(),
        route: "r".into(),
        candidate: candidate.url().parse().unwrap(),
        label: "load".into(),
        since: None,
        segment: None,
        rate: 1e9,
        concurrency: 32,
        timeout: Duration::from_secs(5),
        progress: false,
    };
    let (t0, c0) = (Instant::now(), cpu());
    let s = understudy::replay::run(&config, &opts).await.unwrap();
    let (wall, used) = (t0.elapsed().as_secs_f64(), cpu() - c0);
    assert_eq!(s.replayed, N as u64);
    println!(
        "replay of {N}: {:.0} exchanges/s unthrottled, {:.0} µs of CPU per exchange \
         (the whole process: replay, loopback candidate, SQLite)",
        N as f64 / wall,
        used * 1e6 / N as f64
    );
}

/// Logged exchanges of route `r` (each with the incumbent's `answer`) in a
/// fresh store: the config.
async fn logged(
    dir: &std::path::Path,
    store_extra: &str,
    n: usize,
    answer: &'static [u8],
) -> understudy::config::Config {
    let routes = route("r", "/", "http://127.0.0.1:9", "http://127.0.0.1:9", "");
    let text = config_text(dir, &format!("[store]\n{store_extra}"), &routes);
    std::fs::write(dir.join("proxy.toml"), &text).unwrap();
    let config = understudy::config::parse(&text).unwrap();
    let store =
        understudy::store::Store::open(&config.store, understudy::metrics::Metrics::new()).unwrap();
    for i in 0..n {
        store.record(understudy::store::Record {
            id: format!("ex-{i:08}"),
            ts_ms: 1_000_000 + i as i64,
            route: "r".into(),
            segment: "default".into(),
            served_by: "incumbent",
            method: "GET".into(),
            path: format!("/score/{i}"),
            request_headers: "{}".into(),
            verdict: "match",
            diff: "[]".into(),
            incumbent_status: Some(200),
            incumbent_body: Some(Bytes::from_static(answer)),
            ..Default::default()
        });
    }
    store.close_async().await;
    config
}

fn options(config: &understudy::config::Config, candidate: &str) -> understudy::replay::Options {
    understudy::replay::Options {
        db: config.store.path.clone(),
        route: "r".into(),
        candidate: candidate.parse().unwrap(),
        label: "v2".into(),
        since: None,
        segment: None,
        rate: 1e6,
        concurrency: 4,
        timeout: Duration::from_secs(5),
        progress: false,
    }
}

fn replayed_bodies(db: &std::path::Path) -> Vec<Vec<u8>> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT CAST(candidate_body AS BLOB) FROM replays ORDER BY exchange_id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_redacts_the_candidates_answer_like_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = logged(
        dir.path(),
        "redact_json = [\"/email\"]\n",
        3,
        br#"{"score":1,"email":"[redacted]"}"#,
    )
    .await;
    let candidate = upstream()
        .json(r#"{"score":1,"email":"ann@example.com"}"#)
        .spawn()
        .await;
    let s = understudy::replay::run(&config, &options(&config, &candidate.url()))
        .await
        .unwrap();
    assert_eq!(s.replayed, 3, "{s:?}");
    let bodies = replayed_bodies(&config.store.path);
    assert_eq!(bodies.len(), 3);
    for b in &bodies {
        let text = String::from_utf8_lossy(b);
        assert!(!text.contains("ann@example.com"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }
    // Redacted on both sides, the email is no difference.
    let conn = rusqlite::Connection::open(&config.store.path).unwrap();
    let matches: i64 = conn
        .query_row(
            "SELECT count(*) FROM replays WHERE verdict = 'match'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(matches, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_from_the_candidate_is_decoded_only_to_the_cap() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let config = logged(dir.path(), "max_body_bytes = 65536\n", 1, br#"{"score":1}"#).await;
    // 16 MiB of zeros in some 16 KiB of gzip.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..16 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 65536, "{}", bomb.len());
    let candidate = understudy::loopback::serve(move |_req: Request<hyper::body::Incoming>| {
        let bomb = Bytes::from(bomb.clone());
        async move {
            http::Response::builder()
                .header("content-encoding", "gzip")
                .header("content-type", "application/json")
                .body(Full::new(bomb))
                .unwrap()
        }
    })
    .await
    .unwrap();
    let s = understudy::replay::run(
        &config,
        &options(&config, &format!("http://{}", candidate.addr)),
    )
    .await
    .unwrap();
    assert_eq!(s.replayed, 1, "{s:?}");
    let bodies = replayed_bodies(&config.store.path);
    assert!(bodies[0].len() <= 65536, "{} bytes kept", bodies[0].len());
}

#[test]
fn a_rate_that_is_not_a_positive_finite_number_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let routes = route("r", "/", "http://127.0.0.1:9", "http://127.0.0.1:9", "");
    let text = config_text(dir.path(), "[store]\n", &routes);
    let config = dir.path().join("proxy.toml");
    std::fs::write(&config, text).unwrap();
    for rate in ["1e12", "inf", "NaN", "0", "-1"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
            .args(["replay", "-c"])
            .arg(&config)
            .args([
                "--route",
                "r",
                "--candidate",
                "http://127.0.0.1:9",
                "--label",
                "x",
            ])
            .arg(format!("--rate={rate}"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{rate}: {stderr}");
        assert!(stderr.contains("--rate"), "{rate}: {stderr}");
        assert!(!stderr.contains("panicked"), "{rate}: {stderr}");
    }
}
