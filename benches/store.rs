//! Store throughput: batches of 1,000 exchanges with 1 KiB bodies into a WAL file.
//!
//! `insert_batch` times the writer's own transaction function; `writer_path`
//! times `Store::record` for 1,000 rows plus the flush that commits them, i.e.
//! the queue, the thread hand-off and the batching. Rows are built in the
//! untimed setup. Target: at least 50,000 rows/s.
//!
//! `report/segment_stats_1M` times the report's read over 1,000,000 exchanges
//! in 3 segments (built once, without bodies: the query reads only the
//! covering index). Target: under 1 s.

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::Rng;
use std::time::Duration;
use understudy::metrics::Metrics;
use understudy::store::{Record, Store, events, now_ms, read, writer};

const ROWS: usize = 1000;

fn body(tag: &str) -> Bytes {
    let mut s = format!(r#"{{"who":"{tag}","score":0.93,"pad":""#);
    while s.len() < 1022 {
        s.push('x');
    }
    s.push_str(r#""}"#);
    Bytes::from(s)
}

fn rows(req: &Bytes, inc: &Bytes, cand: &Bytes) -> Vec<Record> {
    let mut rng = rand::thread_rng();
    let now = now_ms();
    (0..ROWS)
        .map(|i| Record {
            // The proxy's own ids: time-ordered, so the PK index grows at its end.
            id: understudy::exchange::new_id(now),
            ts_ms: now,
            route: "lead-score".into(),
            segment: ["enterprise", "mid-market", "smb"][i % 3].into(),
            served_by: "incumbent",
            method: "POST".into(),
            path: "/v1/score".into(),
            request_headers: r#"{"content-type":"application/json"}"#.into(),
            request_body: Some(req.clone()),
            verdict: "match",
            diff: "[]".into(),
            incumbent_status: Some(200),
            incumbent_ms: Some(rng.gen_range(1.0..20.0)),
            incumbent_body: Some(inc.clone()),
            candidate_status: Some(200),
            candidate_ms: Some(rng.gen_range(5.0..80.0)),
            candidate_body: Some(cand.clone()),
            ..Record::default()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (req, inc, cand) = (body("request"), body("incumbent"), body("candidate"));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(ROWS as u64));

    let mut conn = events::open(&dir.path().join("batch.db")).expect("open");
    group.bench_function("insert_batch_1000x1KiB", |b| {
        b.iter_batched(
            || rows(&req, &inc, &cand),
            |batch| writer::insert_batch(&mut conn, &batch, &[]).expect("insert"),
            BatchSize::LargeInput,
        );
    });

    let cfg = understudy::config::Store {
        path: dir.path().join("writer.db"),
        max_body_bytes: 65536,
        redact_headers: Vec::new(),
        redact_query: Vec::new(),
        redact_json: Vec::new(),
        retention: Duration::from_secs(14 * 86400),
        queue_capacity: 4 * ROWS,
        batch_size: 256,
        flush_interval: Duration::from_millis(50),
        bodies: understudy::config::Bodies::All,
        request_bodies: true,
        max_bytes: None,
        capture_budget: 256 << 20,
    };
    let metrics = Metrics::new();
    let store = Store::open(&cfg, metrics.clone()).expect("open store");
    group.bench_function("writer_path_1000x1KiB", |b| {
        b.iter_batched(
            || rows(&req, &inc, &cand),
            |batch| {
                for r in batch {
                    store.record(r);
                }
                store.flush_blocking();
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
    store.close();
    assert_eq!(
        metrics.store_rows_dropped.get(),
        0,
        "the bench queue overflowed"
    );
}

fn report(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("report.db");
    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1_000_000));
    // Criterion may call this closure more than once; build the file once.
    let mut built = false;
    group.bench_function("segment_stats_1M", |b| {
        if !built {
            build_report_db(&path);
            built = true;
        }
        let dbs = vec![path.clone()];
        b.iter(|| {
            let stats = read::segment_stats(&dbs, None, Some(0)).expect("stats");
            assert_eq!(stats.iter().map(|s| s.samples).sum::<u64>(), 1_000_000);
        });
    });
    group.finish();
}

fn build_report_db(path: &std::path::Path) {
    let mut conn = events::open(path).expect("open");
    let empty = Bytes::new();
    for _ in 0..1000 {
        let mut batch = rows(&empty, &empty, &empty);
        for (i, r) in batch.iter_mut().enumerate() {
            r.request_body = None;
            r.incumbent_body = None;
            r.candidate_body = None;
            r.verdict = ["match", "match", "mismatch", "candidate_error"][i % 4];
        }
        writer::insert_batch(&mut conn, &batch, &[]).expect("insert");
    }
}

criterion_group!(benches, bench, report);
criterion_main!(benches);
