//! Report tests on a fixture database built here.

use super::*;
use crate::store::{Record, events, writer};
use bytes::Bytes;

fn fixture(path: &std::path::Path) {
    let mut conn = events::open(path).unwrap();
    let now = writer::now_ms();
    let mut rows = Vec::new();
    // enterprise: 97 matches, 3 mismatches; mid-market: 60 / 40 plus 5
    // candidate errors; one old smb row outside a 1h window.
    let plan = [
        ("enterprise", "match", 97),
        ("enterprise", "mismatch", 3),
        ("mid-market", "match", 60),
        ("mid-market", "mismatch", 40),
        ("mid-market", "candidate_error", 5),
        ("smb", "match", 1),
    ];
    for (segment, verdict, n) in plan {
        for _ in 0..n {
            let i = rows.len();
            rows.push(Record {
                id: format!("ex-{i}"),
                ts_ms: if segment == "smb" {
                    now - 7_200_000
                } else {
                    now
                },
                route: "lead-score".into(),
                segment: segment.into(),
                served_by: "incumbent",
                method: "POST".into(),
                path: "/v1/score".into(),
                request_headers: "{}".into(),
                request_body: Some(Bytes::from_static(b"{}")),
                verdict,
                diff: "[]".into(),
                incumbent_ms: Some((i % 100 + 1) as f64),
                candidate_ms: (verdict != "candidate_error").then_some(2.0 * (i % 100 + 1) as f64),
                ..Record::default()
            });
        }
    }
    writer::insert_batch(&mut conn, &rows).unwrap();
}

#[test]
fn table_shows_counts_agreement_and_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("u.db");
    fixture(&db);
    let mut out = Vec::new();
    let opts = ReportOptions {
        dbs: vec![db],
        route: None,
        since: None,
    };
    run(&opts, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("ROUTE"), "{text}");
    let ent = lines[1];
    assert!(
        ent.starts_with("lead-score") && ent.contains("enterprise"),
        "{text}"
    );
    assert!(ent.contains(" 100 "), "{text}");
    let (lo, hi) = stats::wilson(97, 100, stats::Z95);
    let interval = format!("97.0% [{:.1}–{:.1}]", lo * 100.0, hi * 100.0);
    assert!(ent.contains(&interval), "{interval} in {text}");
    let mid = lines[2];
    assert!(
        mid.contains("mid-market") && mid.contains(" 105 "),
        "{text}"
    );
    assert!(mid.contains("60.0% ["), "{text}");
    // 5 / (60 + 40 + 5)
    assert!(mid.contains("4.8%"), "{text}");
    assert!(lines[3].contains("smb"), "{text}");
    // Every line is as wide as the header's columns say: the table is aligned.
    let col = lines[0].find("SAMPLES").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.chars().nth(col - 1) == Some(' '))
    );
}

#[test]
fn since_and_route_filter() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("u.db");
    fixture(&db);
    let mut out = Vec::new();
    let opts = ReportOptions {
        dbs: vec![db.clone()],
        route: Some("lead-score".into()),
        since: Some(std::time::Duration::from_secs(3600)),
    };
    run(&opts, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(!text.contains("smb"), "{text}");

    let mut out = Vec::new();
    let opts = ReportOptions {
        dbs: vec![db],
        route: Some("nope".into()),
        since: None,
    };
    run(&opts, &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "No exchanges recorded.\n");
    assert!(matches!(
        run(&ReportOptions::default(), &mut Vec::new()),
        Err(Error::NoDatabase)
    ));
}

#[test]
fn line_definitions() {
    let s = crate::store::read::SegmentStats {
        samples: 10,
        matches: 6,
        mismatches: 2,
        candidate_errors: 2,
        skipped: 0,
        incumbent_ms: vec![1.0, 2.0, 3.0, 4.0],
        ..Default::default()
    };
    let l = Line::from_stats(&s);
    assert_eq!(l.agreement.map(|a| a.0), Some(0.75));
    assert_eq!(l.candidate_error_rate, Some(0.2));
    assert_eq!((l.incumbent_p50, l.incumbent_p99), (Some(2.0), Some(4.0)));
    assert_eq!(l.candidate_p50, None);
}
