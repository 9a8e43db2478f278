//! `report` over 1,000,000 exchanges (3 routes × 5 segments, 14 days), timed.
//!
//! The database is written through the real schema and writer
//! (`store::writer::insert_batch`), once, at `$UNDERSTUDY_BENCH_DB` (default
//! `target/report-bench.db`), and reused by later runs. Then `report` is built
//! and rendered as a table several times; the best and median times are printed.
//!
//! Run: `cargo bench --bench report` (or `scripts/report-bench.sh`).

use bytes::Bytes;
use std::path::PathBuf;
use std::time::Instant;
use understudy::report::{self, Format, ReportOptions};
use understudy::store::{Record, events, now_ms, writer};

const ROWS: usize = 1_000_000;
const ROUTES: [&str; 3] = ["lead-score", "summarize", "classify"];
const SEGMENTS: [&str; 5] = ["enterprise", "mid-market", "smb", "startup", "public"];
const RUNS: usize = 5;

fn main() {
    let path = std::env::var_os("UNDERSTUDY_BENCH_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/report-bench.db"));
    if !ready(&path) {
        generate(&path);
    }
    let opts = ReportOptions {
        dbs: vec![path.clone()],
        format: Format::Table,
        ..ReportOptions::default()
    };
    let mut times = Vec::new();
    let mut out = Vec::new();
    for _ in 0..RUNS {
        out.clear();
        let t = Instant::now();
        report::run(&opts, &mut out).expect("report");
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    print!("{}", String::from_utf8_lossy(&out));
    println!(
        "\nreport over {ROWS} exchanges ({} routes x {} segments) in {}: best {:.3} s, median {:.3} s ({RUNS} runs)",
        ROUTES.len(),
        SEGMENTS.len(),
        path.display(),
        times[0],
        times[RUNS / 2]
    );
}

/// The database is there and complete.
fn ready(path: &std::path::Path) -> bool {
    let Ok(conn) = rusqlite::Connection::open(path) else {
        return false;
    };
    conn.query_row("SELECT COUNT(*) FROM exchanges", [], |r| r.get::<_, i64>(0))
        .is_ok_and(|n| n as usize == ROWS)
}

fn generate(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _gone = std::fs::remove_file(PathBuf::from(p));
    }
    let t = Instant::now();
    let mut conn = events::open(path).expect("open the bench database");
    let start = now_ms() - 14 * 86_400_000;
    let step = 14 * 86_400_000 / ROWS as i64;
    let body = Bytes::from_static(br#"{"lead":{"id":123,"company":"Acme","employees":250}}"#);
    let inc = Bytes::from_static(br#"{"score":0.82,"label":"warm","request_id":"r-1"}"#);
    let cand = Bytes::from_static(br#"{"score":0.41,"label":"cold","request_id":"r-2"}"#);
    let mut batch = Vec::with_capacity(10_000);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..ROWS {
        // xorshift: deterministic, no dependency on the rand crate's API here.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let route = ROUTES[i % 3];
        let segment = SEGMENTS[(x % 5) as usize];
        let roll = (x >> 8) % 100;
        // mid-market agrees less, as in the story.
        let bad = if segment == "mid-market" { 35 } else { 5 };
        let (verdict, diff, skip) = match roll {
            r if r < 2 => ("candidate_error", "[]", None),
            r if r < 4 => ("skipped", "[]", Some("in_flight".to_string())),
            r if r < 4 + bad => ("mismatch", r#"["/label","/score"]"#, None),
            _ => ("match", "[]", None),
        };
        let ms = 5.0 + ((x >> 20) % 200) as f64 / 4.0;
        batch.push(Record {
            id: format!("{i:012x}"),
            ts_ms: start + i as i64 * step,
            route: route.into(),
            segment: segment.into(),
            served_by: "incumbent",
            method: "POST".into(),
            path: "/v1/score".into(),
            request_headers: r#"{"content-type":"application/json"}"#.into(),
            request_body: Some(body.clone()),
            verdict,
            diff: diff.into(),
            skip_reason: skip,
            incumbent_status: Some(200),
            incumbent_ms: Some(ms),
            incumbent_body: Some(inc.clone()),
            candidate_status: (verdict != "skipped").then_some(200),
            candidate_ms: (verdict != "skipped").then_some(ms * 1.7),
            candidate_body: (verdict != "skipped").then(|| cand.clone()),
            ..Record::default()
        });
        if batch.len() == batch.capacity() {
            writer::insert_batch(&mut conn, &batch, &[]).expect("insert");
            batch.clear();
        }
    }
    writer::insert_batch(&mut conn, &batch, &[]).expect("insert");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")
        .expect("checkpoint");
    eprintln!(
        "generated {ROWS} exchanges in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}
