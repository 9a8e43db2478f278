//! Report tests on fixture databases built here: the numbers, every format,
//! merging replicas, grouping by period, weights, noise and feedback.

use super::*;
use crate::store::events::{self, NewEvent, NewFeedback};

fn fb(id: &str, rating: i64, comment: &str) -> NewFeedback {
    NewFeedback {
        exchange_id: id.to_string(),
        rating: Some(rating),
        comment: comment.to_string(),
        reversed: false,
        rater: None,
    }
}
use crate::store::{Record, writer};
use bytes::Bytes;
use std::path::Path;

/// 2024-05-04 (a Saturday) 10:00 UTC.
const SAT: i64 = 1_714_816_800_000;

/// enterprise: 97 matches, 3 mismatches (diff /score); mid-market: 60 / 40
/// (diff /score and /label on 10) plus 5 candidate errors and 4 skipped
/// (in_flight); one smb row. Latencies: incumbent `i % 100 + 1`, candidate
/// twice that. `day_offset` shifts every row by whole days.
fn fixture(path: &Path, id_prefix: &str, day_offset: i64) -> Vec<String> {
    let mut conn = events::open(path).unwrap();
    let mut rows = Vec::new();
    let plan = [
        ("enterprise", "match", 97),
        ("enterprise", "mismatch", 3),
        ("mid-market", "match", 60),
        ("mid-market", "mismatch", 40),
        ("mid-market", "candidate_error", 5),
        ("mid-market", "skipped", 4),
        ("smb", "match", 1),
    ];
    for (segment, verdict, n) in plan {
        for k in 0..n {
            let i = rows.len();
            let diff = match (verdict, k % 4) {
                ("mismatch", 0) if segment == "mid-market" => r#"["/label","/score"]"#,
                ("mismatch", _) => r#"["/score"]"#,
                _ => "[]",
            };
            rows.push(Record {
                id: format!("{id_prefix}{i}"),
                ts_ms: SAT + day_offset * read::DAY_MS + (i as i64 % 3) * read::HOUR_MS,
                route: "lead-score".into(),
                segment: segment.into(),
                served_by: "incumbent",
                method: "POST".into(),
                path: "/v1/score".into(),
                request_headers: "{}".into(),
                request_body: Some(Bytes::from_static(b"{\"lead\":1}")),
                verdict,
                diff: diff.into(),
                skip_reason: (verdict == "skipped").then(|| "in_flight".to_string()),
                incumbent_status: Some(200),
                incumbent_ms: Some((i % 100 + 1) as f64),
                incumbent_body: Some(Bytes::from_static(b"{\"score\":0.9}")),
                candidate_ms: (verdict != "skipped").then_some(2.0 * (i % 100 + 1) as f64),
                safety: (segment == "smb").then(|| "ssn".to_string()),
                ..Record::default()
            });
        }
    }
    writer::insert_batch(&mut conn, &rows, &[]).unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

/// The bounds the default guard (the report's, without a config) decides on.
fn one_sided_bounds(matches: u64, n: u64) -> (f64, f64) {
    let guard = crate::config::Guard::default();
    let crate::config::GuardMethod::Sequential(levels) = &guard.method else {
        panic!("the default method is sequential");
    };
    let bar = guard.min_agreement;
    (
        crate::judge::one_sided(&levels.pass, bar).lower_bound(matches, n),
        crate::judge::one_sided(&levels.breach, bar).upper_bound(matches, n),
    )
}

fn opts(dbs: Vec<std::path::PathBuf>) -> ReportOptions {
    ReportOptions {
        dbs,
        ..ReportOptions::default()
    }
}

fn render(o: &ReportOptions, format: Format) -> String {
    let mut out = Vec::new();
    run(
        &ReportOptions {
            format,
            ..o.clone()
        },
        &mut out,
    )
    .unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn numbers_of_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("u.db");
    fixture(&db, "a", 0);
    let r = build(&opts(vec![db])).unwrap();
    let keys: Vec<&str> = r.lines.iter().map(|l| l.segment.as_str()).collect();
    assert_eq!(keys, ["enterprise", "mid-market", "smb"]);
    let ent = &r.lines[0];
    assert_eq!((ent.samples, ent.matches, ent.mismatches), (100, 97, 3));
    // The interval of the guard's method: by default its one-sided bounds,
    // the lower at the route's α (a pass), the upper at a breach's share.
    let (lo, hi) = one_sided_bounds(97, 100);
    let a = ent.agreement.unwrap();
    assert_eq!((a.value, a.lo, a.hi), (0.97, lo, hi));
    // Incumbent latencies 1..=100: nearest-rank p50 50, p95 95, p99 99.
    assert_eq!(
        (
            ent.incumbent_ms.p50,
            ent.incumbent_ms.p95,
            ent.incumbent_ms.p99
        ),
        (Some(50.0), Some(95.0), Some(99.0))
    );
    assert_eq!(ent.candidate_ms.p99, Some(198.0));
    assert_eq!(ent.top_diffs, [("/score".to_string(), 3)]);
    let mid = &r.lines[1];
    assert_eq!(mid.samples, 109);
    // 5 / (60 + 40 + 5)
    assert!((mid.candidate_error_rate.unwrap() - 5.0 / 105.0).abs() < 1e-12);
    assert_eq!(mid.coverage, Some(105.0 / 109.0));
    assert_eq!(mid.skip_reasons, [("in_flight".to_string(), 4)]);
    assert_eq!(
        mid.top_diffs,
        [("/score".to_string(), 40), ("/label".to_string(), 10)]
    );
    // 60 % agreement is clearly below 0.9, but with 105 samples the guard
    // still waits for min_samples (200), and the report says what it says.
    assert_eq!(mid.decision, Decision::Hold);
    assert!(!mid.decided);
    // 100 decided < min_samples 200: enterprise cannot pass yet.
    assert_eq!(ent.decision, Decision::Hold);
    assert!(!ent.decided && ent.samples_needed == Some(100), "{ent:?}");
    let smb = &r.lines[2];
    assert_eq!(smb.safety_hits, 1);
    assert_eq!(smb.decision, Decision::Breach);
    assert_eq!(r.first_ts, Some(SAT));
    assert_eq!(r.last_ts, Some(SAT + 2 * read::HOUR_MS));
}

#[test]
fn two_replicas_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    fixture(&a, "a", 0);
    fixture(&b, "b", 1);
    let one = build(&opts(vec![a.clone()])).unwrap();
    let both = build(&opts(vec![a, b])).unwrap();
    assert_eq!(both.lines.len(), 3);
    for (l1, l2) in one.lines.iter().zip(&both.lines) {
        assert_eq!(l2.samples, 2 * l1.samples);
        assert_eq!(l2.matches, 2 * l1.matches);
        assert_eq!(l2.agreement.map(|a| a.value), l1.agreement.map(|a| a.value));
        let doubled: Vec<(String, u64)> = (l1.top_diffs.iter())
            .map(|(p, n)| (p.clone(), 2 * n))
            .collect();
        assert_eq!(l2.top_diffs, doubled);
    }
    assert_eq!(both.last_ts, Some(SAT + read::DAY_MS + 2 * read::HOUR_MS));
}

#[test]
fn by_day_and_hour_split_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    fixture(&a, "a", 0);
    fixture(&b, "b", 2);
    let mut o = opts(vec![a, b]);
    o.by = By::Day;
    o.segment = Some("enterprise".into());
    let r = build(&o).unwrap();
    let days: Vec<(Option<i64>, u64)> = r.lines.iter().map(|l| (l.period, l.samples)).collect();
    assert_eq!(
        days,
        [
            (Some(SAT - 10 * read::HOUR_MS), 100),
            (Some(SAT + 2 * read::DAY_MS - 10 * read::HOUR_MS), 100)
        ]
    );
    let table = render(&o, Format::Table);
    assert!(table.contains("2024-05-04 (Sat)"), "{table}");
    assert!(table.contains("2024-05-06 (Mon)"), "{table}");
    o.by = By::Hour;
    let r = build(&o).unwrap();
    // Rows fall into three hours per day.
    assert_eq!(r.lines.len(), 6);
    assert_eq!(r.lines.iter().map(|l| l.samples).sum::<u64>(), 200);
}

#[test]
fn weights_noise_feedback_and_events_appear() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("u.db");
    let ids = fixture(&db, "a", 0);
    let conn = events::open(&db).unwrap();
    for (ts, seg, to) in [
        (SAT, "enterprise", 1.0),
        (SAT + 60_000, "enterprise", 5.0),
        (SAT, "default", 0.0),
    ] {
        let ev = NewEvent {
            forced: false,
            gates: None,
            ts_ms: ts,
            route: "lead-score".into(),
            segment: seg.into(),
            from_weight: Some(0.0),
            to_weight: Some(to),
            actor: "cli".into(),
            reason: "step".into(),
            mirror: None,
            ..NewEvent::default()
        };
        events::append(&conn, &ev).unwrap();
    }
    events::insert_feedback(&conn, &fb(&ids[0], 5, "great")).unwrap();
    events::insert_feedback(&conn, &fb(&ids[1], 4, "")).unwrap();
    events::insert_feedback(&conn, &fb(&ids[100], 1, "wrong")).unwrap();
    conn.execute(
        "INSERT INTO noise (route, pointer, first_ts, last_ts, hits) VALUES ('lead-score', '/request_id', 1, 2, 7)",
        [],
    )
    .unwrap();
    let o = opts(vec![db]);
    let r = build(&o).unwrap();
    let (ent, mid) = (&r.lines[0], &r.lines[1]);
    assert_eq!(ent.weight, Some(5.0));
    // mid-market has no event of its own: the route's default applies.
    assert_eq!(mid.weight, Some(0.0));
    assert_eq!(ent.ratings.count, 2);
    assert_eq!(ent.ratings.mean, Some(4.5));
    assert_eq!(mid.ratings.counts.get(&1), Some(&1));
    assert_eq!(r.noise.len(), 1);
    assert_eq!(r.events.len(), 3);

    let table = render(&o, Format::Table);
    assert!(
        table.contains("noise (left out of verdicts): /request_id (7)"),
        "{table}"
    );
    assert!(
        table.contains("feedback: 2 rating(s), mean 4.50 (4: 1, 5: 1)"),
        "{table}"
    );
    // Issue 27: each top difference names an exchange to `show`.
    let top = table
        .lines()
        .find(|l| l.contains("top differences: /score (40, e.g. "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(top.contains("), /label (10, e.g. "), "{top}");
    let line = (r.lines.iter())
        .find(|l| l.top_diffs.first() == Some(&("/score".to_string(), 40)))
        .unwrap();
    assert!(top.contains(&line.diff_examples["/score"]), "{top}");
    assert!(table.contains("skipped: in_flight (4)"), "{table}");
    assert!(table.contains("safety hits: ssn (1)"), "{table}");
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("ROUTE") && !header.contains("PERIOD"),
        "{table}"
    );
    let ent_line = table.lines().nth(1).unwrap();
    let (lo, hi) = one_sided_bounds(97, 100);
    let interval = format!("97.0% [{:.1}–{:.1}]", lo * 100.0, hi * 100.0);
    assert!(ent_line.contains(&interval), "{table}");
    assert!(
        ent_line.contains("hold (~100 more)") && ent_line.contains("5%"),
        "{table}"
    );
    assert!(ent_line.contains("50/95/99 ms"), "{table}");

    let json: serde_json::Value = serde_json::from_str(&render(&o, Format::Json)).unwrap();
    assert_eq!(json["lines"][0]["samples"], 100);
    assert_eq!(json["lines"][0]["incumbent_ms"]["p95"], 95.0);
    assert_eq!(json["lines"][1]["decision"], "hold");
    assert_eq!(json["lines"][0]["ratings"]["mean"], 4.5);
    assert_eq!(json["noise"][0]["pointer"], "/request_id");

    let csv = render(&o, Format::Csv);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert_eq!(rows[0], tabular::CSV_HEADER.join(","));
    let cols: Vec<&str> = rows[2].split(',').collect();
    assert_eq!(cols.len(), tabular::CSV_HEADER.len(), "{csv}");
    assert_eq!(
        &cols[..9],
        [
            "lead-score",
            "mid-market",
            "",
            "109",
            "60",
            "40",
            "5",
            "0",
            "4"
        ]
    );
    assert_eq!(cols[9], "0.6");
    assert_eq!(cols[12], "hold");
    assert_eq!(cols[27], "/score=40;/label=10");

    let md = render(&o, Format::Markdown);
    assert!(md.starts_with("# Understudy report"), "{md}");
    assert!(
        md.contains("| lead-score | enterprise | 100 | 97.0% ["),
        "{md}"
    );
    assert!(md.contains("- lead-score `/request_id` (7 hits)"), "{md}");
    assert!(md.contains("enterprise: 0 → 5 by cli (step)"), "{md}");

    let html = render(&o, Format::Html);
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(html.contains("<svg") && html.contains("Not ready: keep on the incumbent"));
    assert!(html.contains("<code>/request_id</code>"));
    assert!(html.contains("enterprise → 5%"), "an event on the timeline");
    // Self-contained: nothing is fetched.
    for fetch in ["src=", "href=", "@import", "url(", "<script"] {
        assert!(!html.contains(fetch), "{fetch} in the HTML");
    }
}

#[test]
fn filters_and_empty_reports() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("u.db");
    fixture(&db, "a", 0);
    let mut o = opts(vec![db]);
    o.route = Some("nope".into());
    assert_eq!(render(&o, Format::Table), "No exchanges recorded.\n");
    o.route = Some("lead-score".into());
    o.segment = Some("smb".into());
    assert_eq!(build(&o).unwrap().lines.len(), 1);
    // Every row is from 2024: none is newer than an hour.
    o.segment = None;
    o.since = Some(Duration::from_secs(3600));
    assert!(build(&o).unwrap().lines.is_empty());
    assert!(matches!(
        run(&ReportOptions::default(), &mut Vec::new()),
        Err(Error::NoDatabase)
    ));
}

#[test]
fn dates_are_civil_utc() {
    assert_eq!(period(0, By::Day), "1970-01-01 (Thu)");
    assert_eq!(period(SAT, By::Hour), "2024-05-04 10:00");
    assert_eq!(period(SAT, By::Day), "2024-05-04 (Sat)");
    assert_eq!(period(951_782_400_000, By::Day), "2000-02-29 (Tue)");
}
