//! Store tests on real temporary SQLite files.

use super::events::{self, NewEvent};
use super::redact::Redactor;
use super::{Error, Record, Store, now_ms, read, schema, writer};
use crate::metrics::Metrics;
use crate::pointer::Pointer;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn config(path: &Path) -> crate::config::Store {
    crate::config::Store {
        path: path.to_path_buf(),
        max_body_bytes: 65536,
        redact_headers: Vec::new(),
        redact_query: Vec::new(),
        redact_json: Vec::new(),
        retention: Duration::from_secs(14 * 86400),
        queue_capacity: 10_000,
        batch_size: 64,
        flush_interval: Duration::from_millis(50),
        bodies: crate::config::Bodies::All,
        request_bodies: true,
        max_bytes: None,
        capture_budget: 256 << 20,
    }
}

fn rec(i: usize) -> Record {
    Record {
        id: format!("ex-{i:06}"),
        ts_ms: now_ms(),
        route: "lead-score".into(),
        segment: if i.is_multiple_of(2) {
            "enterprise"
        } else {
            "mid-market"
        }
        .into(),
        served_by: "incumbent",
        method: "POST".into(),
        path: "/v1/score".into(),
        request_headers: "{}".into(),
        request_body: Some(Bytes::from_static(br#"{"lead":1}"#)),
        verdict: "match",
        diff: "[]".into(),
        incumbent_status: Some(200),
        incumbent_ms: Some(3.0),
        candidate_status: Some(200),
        candidate_ms: Some(9.0),
        ..Record::default()
    }
}

fn count(path: &Path) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row("SELECT COUNT(*) FROM exchanges", [], |r| r.get(0))
        .unwrap()
}

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("understudy.db")
}

#[test]
fn n_records_are_n_rows_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let store = Store::open(&config(&db(&dir)), metrics.clone()).unwrap();
    let other = store.clone();
    for i in 0..500 {
        assert!(store.record(rec(i)));
    }
    store.close();
    assert_eq!(count(&db(&dir)), 500);
    assert_eq!(metrics.store_rows_written.get(), 500);
    assert_eq!(metrics.store_rows_dropped.get(), 0);
    assert_eq!(metrics.store_queue_depth.get(), 0);
    // Closing again (from another clone) is harmless.
    other.close();
}

#[test]
fn record_after_close_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let store = Store::open(&config(&db(&dir)), metrics.clone()).unwrap();
    let other = store.clone();
    assert!(store.record(rec(1)));
    store.close();
    assert!(!store.record(rec(2)));
    assert!(!other.record(rec(3)));
    assert_eq!(metrics.store_rows_dropped.get(), 2);
    assert_eq!(count(&db(&dir)), 1);
}

#[test]
fn a_tiny_queue_never_blocks_and_accounts_for_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let mut cfg = config(&db(&dir));
    cfg.queue_capacity = 2;
    cfg.batch_size = 1;
    let store = Store::open(&cfg, metrics.clone()).unwrap();
    let start = Instant::now();
    let accepted = (0..1000).filter(|&i| store.record(rec(i))).count() as u64;
    // 1000 non-blocking sends take microseconds; one fsync'd batch per row
    // through a queue of two would take far longer if `record` waited.
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    store.close();
    let written = metrics.store_rows_written.get();
    let dropped = metrics.store_rows_dropped.get();
    assert_eq!(written + dropped, 1000);
    assert_eq!(written, accepted);
    assert_eq!(count(&db(&dir)), written as i64);
    assert_eq!(metrics.store_queue_depth.get(), 0);
}

#[tokio::test]
async fn flush_makes_rows_visible_to_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&db(&dir));
    // Neither the size nor the age of the batch would commit it.
    cfg.batch_size = 1000;
    cfg.flush_interval = Duration::from_secs(3600);
    let metrics = Metrics::new();
    let store = Store::open(&cfg, metrics.clone()).unwrap();
    for i in 0..3 {
        assert!(store.record(rec(i)));
    }
    let reader = Connection::open(db(&dir)).unwrap();
    let rows = |c: &Connection| -> i64 {
        c.query_row("SELECT COUNT(*) FROM exchanges", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(rows(&reader), 0);
    tokio::time::timeout(Duration::from_secs(5), store.flush())
        .await
        .unwrap();
    assert_eq!(rows(&reader), 3);
    assert_eq!(metrics.store_rows_written.get(), 3);
    store.close_async().await;
    // After close, flush returns at once.
    tokio::time::timeout(Duration::from_secs(1), store.flush())
        .await
        .unwrap();
}

#[tokio::test]
async fn flush_on_a_full_queue_still_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&db(&dir));
    cfg.queue_capacity = 4;
    cfg.batch_size = 1000;
    cfg.flush_interval = Duration::from_secs(3600);
    let store = Store::open(&cfg, Metrics::new()).unwrap();
    let accepted = (0..100).filter(|&i| store.record(rec(i))).count();
    tokio::time::timeout(Duration::from_secs(5), store.flush())
        .await
        .unwrap();
    assert_eq!(count(&db(&dir)), accepted as i64);
    store.close_async().await;
}

#[test]
fn redacted_values_never_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let redactor = Redactor::new(
        &[HeaderName::from_static("authorization")],
        &[Pointer::parse("/email").unwrap()],
        &[],
    );
    let store = Store::open(&config(&db(&dir)), Metrics::new()).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_static("Bearer sup3r-s3cret-t0ken"),
    );
    headers.insert("x-trace", HeaderValue::from_static("visible-trace-7"));
    let body = Bytes::from_static(br#"{"email":"ann.hidden@example.com","note":"visible-note-9"}"#);
    let mut r = rec(1);
    r.request_headers = redactor.headers_json(&headers);
    r.request_body = Some(body.clone());
    r.incumbent_body = Some(body.clone());
    r.candidate_body = Some(body);
    redactor.apply(&mut r);
    assert!(store.record(r));
    store.close();

    let mut bytes = std::fs::read(db(&dir)).unwrap();
    if let Ok(wal) = std::fs::read(dir.path().join("understudy.db-wal")) {
        bytes.extend(wal);
    }
    let has = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    // The search works: unredacted values are there.
    assert!(has("visible-trace-7") && has("visible-note-9"));
    assert!(!has("sup3r-s3cret-t0ken"));
    assert!(!has("ann.hidden@example.com"));
    assert!(has("[redacted]"));
}

#[test]
fn the_file_is_in_wal_mode_and_migrate_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&config(&db(&dir)), Metrics::new()).unwrap();
    store.close();
    let mut conn = Connection::open(db(&dir)).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(page, 16384);
    schema::migrate(&mut conn).unwrap();
    schema::migrate(&mut conn).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::MIGRATIONS.len() as i64);
    // Reopening through the store migrates nothing twice either.
    let store = Store::open(&config(&db(&dir)), Metrics::new()).unwrap();
    store.close();
}

#[test]
fn new_files_reclaim_free_pages_and_old_ones_are_converted_once() {
    let auto_vacuum = |path: &Path| -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    Store::open(&config(&path), Metrics::new()).unwrap().close();
    assert_eq!(auto_vacuum(&path), 2, "a new file is INCREMENTAL");
    // A file made before: no auto_vacuum, with rows in it.
    let old = dir.path().join("old.db");
    let conn = Connection::open(&old).unwrap();
    conn.execute_batch("PRAGMA auto_vacuum = NONE; CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(conn);
    assert_eq!(auto_vacuum(&old), 0);
    Store::open(&config(&old), Metrics::new()).unwrap().close();
    assert_eq!(auto_vacuum(&old), 2, "an old file is converted");
    let kept: i64 = Connection::open(&old)
        .unwrap()
        .query_row("SELECT x FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 1);
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope").join("understudy.db");
    let err = Store::open(&config(&path), Metrics::new()).err().unwrap();
    assert!(matches!(err, Error::MissingDir { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn bodies_are_text_when_utf8_and_blob_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&config(&db(&dir)), Metrics::new()).unwrap();
    let mut r = rec(1);
    r.incumbent_body = Some(Bytes::from_static(b"\xff\x00binary"));
    r.candidate_body = None;
    r.candidate_error = Some("connect refused".into());
    r.verdict = "candidate_error";
    r.fallback = true;
    r.query = Some("a=1".into());
    store.record(r);
    store.close();
    let conn = Connection::open(db(&dir)).unwrap();
    let types: (String, String, String) = conn
        .query_row(
            "SELECT typeof(request_body), typeof(incumbent_body), typeof(candidate_body)
             FROM exchanges",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(types, ("text".into(), "blob".into(), "null".into()));

    let row = read::exchange(&[db(&dir)], "ex-000001").unwrap().unwrap();
    assert_eq!(row.incumbent_body.as_deref(), Some(&b"\xff\x00binary"[..]));
    assert_eq!(row.request_body.as_deref(), Some(&br#"{"lead":1}"#[..]));
    assert_eq!(row.candidate_body, None);
    assert_eq!(row.candidate_error.as_deref(), Some("connect refused"));
    assert_eq!(row.verdict, "candidate_error");
    assert_eq!(row.query.as_deref(), Some("a=1"));
    assert_eq!(row.incumbent_status, Some(200));
    assert!(row.fallback);
    assert!(read::exchange(&[db(&dir)], "nope").unwrap().is_none());
}

#[test]
fn retention_deletes_expired_exchanges_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut conn = events::open(&db(&dir)).unwrap();
        let mut rows: Vec<Record> = (0..5000).map(rec).collect();
        for r in &mut rows[..4500] {
            r.ts_ms -= 2 * 86_400_000;
        }
        writer::insert_batch(&mut conn, &rows, &[]).unwrap();
    }
    let mut cfg = config(&db(&dir));
    cfg.retention = Duration::from_secs(86_400);
    let store = Store::open(&cfg, Metrics::new()).unwrap();
    // The purge runs in chunks between queue reads, so there is no sync point
    // to wait on; poll with a bounded patience.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&db(&dir)) != 500 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    store.close();
    assert_eq!(count(&db(&dir)), 500);
}

#[test]
fn rollout_events_are_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let conn = events::open(&db(&dir)).unwrap();
    let ev = |segment: &str, to: Option<f64>, mirror: Option<&str>| NewEvent {
        forced: false,
        gates: None,
        ts_ms: now_ms(),
        route: "lead-score".into(),
        segment: segment.into(),
        from_weight: None,
        to_weight: to,
        actor: "cli".into(),
        reason: "test".into(),
        mirror: mirror.map(String::from),
        ..NewEvent::default()
    };
    let v1 = events::append(&conn, &ev("enterprise", Some(5.0), None)).unwrap();
    let v2 = events::append(&conn, &ev("enterprise", Some(10.0), None)).unwrap();
    events::append(&conn, &ev("enterprise", None, Some("off"))).unwrap();
    events::append(&conn, &ev("mid-market", Some(0.0), None)).unwrap();
    assert!(v2 > v1);
    assert_eq!(
        events::latest_weights(&conn).unwrap(),
        vec![
            ("lead-score".into(), "enterprise".into(), 10.0),
            ("lead-score".into(), "mid-market".into(), 0.0),
        ]
    );
    let last_two = events::list(&conn, Some("lead-score"), 2).unwrap();
    assert_eq!(last_two.len(), 2);
    assert_eq!(last_two[0].mirror.as_deref(), Some("off"));
    assert_eq!(last_two[1].segment, "mid-market");
    assert!(events::list(&conn, Some("other"), 10).unwrap().is_empty());

    for sql in [
        "UPDATE rollout_events SET to_weight = 100",
        "DELETE FROM rollout_events",
    ] {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
    }
    assert_eq!(events::list(&conn, None, 100).unwrap().len(), 4);
}

#[test]
fn feedback_needs_a_known_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&config(&db(&dir)), Metrics::new()).unwrap();
    store.record(rec(7));
    store.close();
    let conn = events::open(&db(&dir)).unwrap();
    let err = events::insert_feedback(
        &conn,
        &events::NewFeedback {
            exchange_id: "ex-999999".into(),
            rating: Some(1),
            comment: "good".into(),
            reversed: false,
            rater: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnknownExchange { .. }), "{err}");
    events::insert_feedback(
        &conn,
        &events::NewFeedback {
            exchange_id: "ex-000007".into(),
            rating: Some(-1),
            comment: "wrong score".into(),
            reversed: false,
            rater: None,
        },
    )
    .unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM feedback WHERE exchange_id = 'ex-000007' AND rating = -1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn segment_stats_merge_replicas_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    let old = now_ms() - 3_600_000;
    for (path, offset) in [(&a, 0), (&b, 1000)] {
        let mut conn = events::open(path).unwrap();
        let rows: Vec<Record> = (0..10)
            .map(|i| {
                let mut r = rec(offset + i);
                r.verdict = ["match", "mismatch", "candidate_error", "skipped"][i % 4];
                r.candidate_ms = Some((offset + i) as f64);
                if i == 9 {
                    r.ts_ms = old;
                    r.route = "other".into();
                }
                r
            })
            .collect();
        writer::insert_batch(&mut conn, &rows, &[]).unwrap();
    }
    let all = read::segment_stats(&[a.clone(), b.clone()], None, None).unwrap();
    let keys: Vec<(&str, &str)> = all
        .iter()
        .map(|s| (s.route.as_str(), s.segment.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("lead-score", "enterprise"),
            ("lead-score", "mid-market"),
            ("other", "mid-market")
        ]
    );
    // Even i in 0..9 of each file: 0 match, 2 candidate_error, 4 match, 6 candidate_error, 8 match.
    let ent = &all[0];
    assert_eq!(ent.samples, 10);
    assert_eq!((ent.matches, ent.candidate_errors), (6, 4));
    assert_eq!(ent.candidate_ms.len(), 10);
    assert!(ent.candidate_ms.windows(2).all(|w| w[0] <= w[1]));
    // Odd i in 0..9: 1 mismatch, 3 skipped, 5 mismatch, 7 skipped.
    let mid = &all[1];
    assert_eq!((mid.samples, mid.mismatches, mid.skipped), (8, 4, 4));

    let recent = read::segment_stats(&[a.clone(), b.clone()], None, Some(old + 1)).unwrap();
    assert_eq!(recent.len(), 2);
    let other = read::segment_stats(&[a, b], Some("other"), None).unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].samples, 2);

    let missing = read::segment_stats(&[dir.path().join("missing.db")], None, None);
    assert!(matches!(missing, Err(Error::Io { .. })));
}

fn skip_counts(path: &Path) -> Vec<(String, String, String, i64)> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT route, segment, reason, SUM(count) FROM mirror_skips
             GROUP BY route, segment, reason ORDER BY route, segment, reason",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn skips_are_counted_not_rows_and_close_commits_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&config(&db(&dir)), Metrics::new()).unwrap();
    let now = now_ms();
    for _ in 0..3 {
        store.skip("lead-score", "smb".into(), "in_flight", now);
    }
    store.skip("lead-score", "enterprise".into(), "method", now);
    assert!(store.record(rec(0)));
    store.close();
    assert_eq!(count(&db(&dir)), 1);
    let s = |seg: &str, reason: &str, n| {
        (
            "lead-score".to_string(),
            seg.to_string(),
            reason.to_string(),
            n,
        )
    };
    assert_eq!(
        skip_counts(&db(&dir)),
        [s("enterprise", "method", 1), s("smb", "in_flight", 3)]
    );
}

#[tokio::test]
async fn skips_alone_are_committed_within_the_flush_interval() {
    let dir = tempfile::tempdir().unwrap();
    // Flush interval 50 ms, no rows at all: the idle writer still commits.
    let store = Store::open(&config(&db(&dir)), Metrics::new()).unwrap();
    store.skip("r", "default".into(), "no_candidate", now_ms());
    let path = db(&dir);
    let started = Instant::now();
    while skip_counts(&path).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "skips never committed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A second batch adds to the same minute's count.
    store.skip("r", "default".into(), "no_candidate", now_ms());
    store.flush().await;
    let total: i64 = skip_counts(&path).iter().map(|c| c.3).sum();
    assert_eq!(total, 2);
    store.close_async().await;
}

#[test]
fn segment_stats_count_skips_as_samples_not_compared() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&config(&db(&dir)), Metrics::new()).unwrap();
    let now = now_ms();
    for i in 0..4 {
        assert!(store.record(rec(i))); // 2 enterprise, 2 mid-market, all match
    }
    for _ in 0..6 {
        store.skip("lead-score", "enterprise".into(), "in_flight", now);
    }
    store.close();
    let stats = read::segment_stats(&[db(&dir)], None, None).unwrap();
    let ent = stats.iter().find(|s| s.segment == "enterprise").unwrap();
    assert_eq!((ent.samples, ent.matches, ent.skipped), (8, 2, 6));
    assert_eq!(ent.skip_reasons.get("in_flight"), Some(&6));
    let mid = stats.iter().find(|s| s.segment == "mid-market").unwrap();
    assert_eq!((mid.samples, mid.skipped), (2, 0));
    // `since` after the skips' minute leaves them out.
    let later = read::segment_stats(&[db(&dir)], None, Some(now + 120_000)).unwrap();
    assert!(later.is_empty(), "{later:?}");
}

/// Issue 10 (docs/src/design/threat-model.md): the database holds bodies; it and its WAL files are
/// created owner-only, whatever the umask; an existing file keeps its mode.
#[test]
fn the_database_file_and_its_wal_are_created_0600() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = Store::open(&config(&path), Metrics::new()).unwrap();
    assert!(store.record(rec(0)));
    store.flush_blocking();
    assert_eq!(mode(&path), 0o600, "{}", path.display());
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        assert!(side.exists(), "{}", side.display());
        assert_eq!(mode(&side), 0o600, "{}", side.display());
    }
    store.close();

    let kept = dir.path().join("kept.db");
    std::fs::write(&kept, b"").unwrap();
    std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o640)).unwrap();
    Store::open(&config(&kept), Metrics::new()).unwrap().close();
    assert_eq!(mode(&kept), 0o640);
}

#[tokio::test]
async fn over_max_bytes_the_oldest_rows_go_first_and_the_gauge_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&db(&dir));
    cfg.max_bytes = Some(4 * 1024 * 1024);
    cfg.batch_size = 256;
    let metrics = Metrics::new();
    let store = Store::open(&cfg, metrics.clone()).unwrap();
    // 3,000 rows of about 12 KiB: some 36 MiB offered to a 4 MiB store.
    let body = Bytes::from(vec![b'x'; 12 * 1024]);
    for i in 0..3000 {
        let mut r = rec(i);
        r.ts_ms = 1_000_000 + i as i64; // oldest first
        r.incumbent_body = Some(body.clone());
        store.record(r);
        if i % 500 == 499 {
            store.flush().await;
        }
    }
    store.flush().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let bytes = || metrics.store_bytes.get() as u64;
    let conn = read::open_ro(&db(&dir)).unwrap();
    let count = || -> i64 {
        conn.query_row("SELECT count(*) FROM exchanges", [], |r| r.get(0))
            .unwrap()
    };
    // Deleted down to the cap (the gauge is set each second; a chunk of
    // 500 rows may take it a little below).
    while !(count() < 3000 && bytes() <= 5 * 1024 * 1024 && bytes() > 1024 * 1024) {
        assert!(
            Instant::now() < deadline,
            "still {} bytes, {} rows",
            bytes(),
            count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (n, oldest, newest): (i64, String, String) = conn
        .query_row(
            "SELECT count(*), min(id), max(id) FROM exchanges",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(n > 0 && n < 3000, "{n} rows kept");
    assert_eq!(newest, "ex-002999", "the newest rows stay");
    assert!(
        oldest.as_str() > "ex-000000",
        "the oldest went first: {oldest}"
    );
    store.close_async().await;
}

/// Issue 21 (found by the fleet model test): the fleet version a replica
/// catches up from is the unbroken run it knows from version 1, not the
/// newest it pushed; otherwise events of other replicas older than its own
/// push are skipped for good.
#[test]
fn a_pushed_version_does_not_let_catch_up_skip_older_events() {
    let dir = tempfile::tempdir().unwrap();
    let conn = events::open(&db(&dir)).unwrap();
    let ev = |fleet: Option<i64>| NewEvent {
        ts_ms: now_ms(),
        route: "r".into(),
        segment: "smb".into(),
        to_weight: Some(1.0),
        actor: "guard".into(),
        replica: Some("b".into()),
        fleet_version: fleet,
        ..NewEvent::default()
    };
    events::append(&conn, &ev(Some(1))).unwrap();
    events::append(&conn, &ev(Some(2))).unwrap();
    let local = events::append(&conn, &ev(None)).unwrap();
    events::mark_pushed(&conn, local, 5).unwrap();
    assert_eq!(
        events::fleet_applied(&conn).unwrap(),
        [("r".to_string(), 2)]
    );
    for v in [3, 4] {
        events::append(&conn, &ev(Some(v))).unwrap();
    }
    assert_eq!(
        events::fleet_applied(&conn).unwrap(),
        [("r".to_string(), 5)]
    );
}

/// A row with every column set, each value its own (so a value bound to
/// the wrong column, or another row's, shows).
fn full_rec(i: usize) -> Record {
    let n = i as u64;
    let figures = |k: u64| crate::reading::Figures {
        ttft_ms: Some((n * 10 + k) as f64 + 0.5),
        tokens_in: Some(n * 100 + k),
        tokens_out: Some(n * 1000 + k),
        cost: Some(n as f64 / 7.0 + k as f64),
    };
    Record {
        id: format!("id-{i:04}"),
        ts_ms: 1_700_000_000_000 + i as i64,
        route: format!("route-{}", i % 3),
        segment: format!("seg-{i}"),
        served_by: if i.is_multiple_of(2) {
            "incumbent"
        } else {
            "candidate"
        },
        method: ["GET", "POST", "PUT"][i % 3].into(),
        path: format!("/p/{i}"),
        query: (!i.is_multiple_of(4)).then(|| format!("q={i}")),
        request_headers: format!(r#"{{"x-i":"{i}"}}"#),
        request_body: (!i.is_multiple_of(5)).then(|| Bytes::from(format!("req {i}"))),
        verdict: ["match", "mismatch", "skipped"][i % 3],
        diff: format!(r#"["/a{i}"]"#),
        score: (i % 2 == 1).then_some(i as f64 / 100.0),
        skip_reason: (i % 3 == 2).then(|| format!("why {i}")),
        incumbent_status: Some(200 + i as u16),
        incumbent_ms: Some(i as f64 + 0.25),
        incumbent_body: Some(Bytes::from(vec![b'i', i as u8, 0xff])),
        incumbent_error: (i % 6 == 1).then(|| format!("ierr {i}")),
        candidate_status: (!i.is_multiple_of(7)).then_some(300 + i as u16),
        candidate_ms: Some(i as f64 + 0.75),
        candidate_body: (!i.is_multiple_of(8)).then(|| Bytes::from(format!("cand {i}"))),
        candidate_error: (i % 5 == 3).then(|| format!("cerr {i}")),
        fallback: i % 9 == 4,
        safety: (i % 10 == 5).then(|| format!("deny {i}")),
        noise: if i.is_multiple_of(11) {
            vec![format!("/n{}", i % 2)]
        } else {
            Vec::new()
        },
        decided_by: (i % 4 == 1).then_some("judge"),
        incumbent_llm: figures(1),
        candidate_llm: figures(2),
        ..Record::default()
    }
}

/// Every column of every row, and the learned noise, as text.
fn dump(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT rowid, * FROM exchanges ORDER BY rowid")
        .unwrap();
    let columns = stmt.column_count();
    let mut rows: Vec<String> = stmt
        .query_map([], |r| {
            let values: Vec<String> = (0..columns)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect();
            Ok(values.join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut noise = conn
        .prepare("SELECT route, pointer, hits FROM noise ORDER BY route, pointer")
        .unwrap();
    rows.extend(
        noise
            .query_map([], |r| {
                Ok(format!(
                    "noise {}|{}|{}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?
                ))
            })
            .unwrap()
            .map(Result::unwrap),
    );
    rows
}

#[test]
fn a_batch_writes_exactly_what_rows_written_one_at_a_time_would() {
    // A batch goes in several rows per statement (and the rest one by one);
    // each row must land as it would alone: same columns, same rowids.
    let dir = tempfile::tempdir().unwrap();
    for n in [1, 15, 16, 17, 37, 64] {
        let rows: Vec<Record> = (0..n).map(full_rec).collect();
        let mut batched = events::open(&dir.path().join(format!("batch-{n}.db"))).unwrap();
        writer::insert_batch(&mut batched, &rows, &[]).unwrap();
        let mut alone = events::open(&dir.path().join(format!("alone-{n}.db"))).unwrap();
        for r in &rows {
            writer::insert_batch(&mut alone, std::slice::from_ref(r), &[]).unwrap();
        }
        let (a, b) = (dump(&batched), dump(&alone));
        assert_eq!(a.iter().filter(|r| !r.starts_with("noise")).count(), n);
        assert!(
            a.iter().any(|r| r.starts_with("noise")),
            "row 0 learned noise"
        );
        assert_eq!(a, b, "batch of {n}");
    }
}
