use super::*;
use crate::rollout::guard::Sample;
use std::time::{Duration, Instant};

fn config(enterprise: f64) -> Config {
    crate::config::for_test(&format!(
        r#"
[[routes]]
name = "lead-score"
path_prefix = "/"
incumbent = "http://127.0.0.1:1"
candidate = "http://127.0.0.1:2"
segment = {{ header = "x-tier", values = ["enterprise", "smb"] }}
rollout = {{ default = 0.0, segments = {{ enterprise = {enterprise} }} }}
"#
    ))
}

/// A store on `db` for the ledger (its writer thread appends the events).
fn store(db: &std::path::Path) -> crate::store::Store {
    let mut cfg = config(0.0).store;
    cfg.path = db.to_path_buf();
    crate::store::Store::open(&cfg, Metrics::new()).unwrap()
}

fn weight(r: &Rollout, seg: &str) -> f64 {
    r.route("lead-score").unwrap().weight(seg)
}

#[tokio::test]
async fn recorded_weights_win_over_the_file_until_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("u.db");
    let m = Metrics::new();
    let cfg = config(5.0);
    let r = Rollout::from_config(&cfg);
    let first = r.attach(store(&db), &cfg, &m).await.unwrap();
    assert_eq!(first.len(), 1, "the file's 5 % is recorded: {first:?}");
    assert_eq!((first[0].from, first[0].to), (Some(0.0), Some(5.0)));
    let route = &cfg.routes[0];
    // No guard says pass yet: a person's raise is gated, unless forced.
    assert!(matches!(
        r.set_weight(
            route,
            "enterprise",
            25.0,
            Actor::Cli,
            "looks good",
            false,
            &m
        )
        .await,
        Err(Error::Gated { .. })
    ));
    let forced = r
        .set_weight(
            route,
            "enterprise",
            25.0,
            Actor::Cli,
            "looks good",
            true,
            &m,
        )
        .await
        .unwrap();
    assert!(forced.forced);
    r.set_weight(route, "smb", 1.0, Actor::Api, "try", true, &m)
        .await
        .unwrap();
    assert!(matches!(
        r.set_weight(route, "smb", 1.0, Actor::Api, "again", true, &m)
            .await,
        Err(Error::Unchanged { .. })
    ));
    assert!(matches!(
        r.set_weight(route, "nope", 1.0, Actor::Api, "x", true, &m)
            .await,
        Err(Error::UnknownSegment { .. })
    ));
    assert!(matches!(
        r.set_weight(route, "smb", 101.0, Actor::Api, "x", true, &m)
            .await,
        Err(Error::BadWeight(_))
    ));

    // Restart with the same file: the recorded weights are served.
    let r2 = Rollout::from_config(&cfg);
    assert!(r2.attach(store(&db), &cfg, &m).await.unwrap().is_empty());
    assert_eq!((weight(&r2, "enterprise"), weight(&r2, "smb")), (25.0, 1.0));

    // The file changed: its new weight is applied and audited as config.
    let cfg = config(10.0);
    let changes = r2.reconcile(&cfg, &m).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!((changes[0].from, changes[0].to), (Some(25.0), Some(10.0)));
    assert_eq!(weight(&r2, "enterprise"), 10.0);
    assert_eq!(weight(&r2, "smb"), 1.0);
    let hist = r2.history(Some("lead-score"), 100).unwrap();
    let actors: Vec<_> = hist.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(actors, ["config", "cli", "api", "config"]);
    assert!(
        m.encode()
            .contains("understudy_canary_weight{route=\"lead-score\",segment=\"enterprise\"} 10")
    );
}

#[tokio::test]
async fn rollout_events_refuse_update_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("u.db");
    let cfg = config(5.0);
    Rollout::from_config(&cfg)
        .attach(store(&db), &cfg, &Metrics::new())
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let upd = conn.execute("UPDATE rollout_events SET to_weight = 100", []);
    let del = conn.execute("DELETE FROM rollout_events", []);
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    assert!(del.unwrap_err().to_string().contains("append-only"));
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM rollout_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn the_guard_rolls_a_bad_segment_back_and_records_why() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("u.db");
    let m = Metrics::new();
    let cfg = config(5.0);
    let r = Rollout::from_config(&cfg);
    r.attach(store(&db), &cfg, &m).await.unwrap();
    let t0 = Instant::now();
    for i in 0..300u64 {
        let verdict = if i % 10 < 6 {
            crate::compare::Verdict::Match
        } else {
            crate::compare::Verdict::Mismatch
        };
        let s = Sample {
            at: t0 + Duration::from_millis(i),
            verdict,
            safety: false,
            incumbent_ms: None,
            candidate_ms: None,
        };
        r.observe(&cfg.routes[0], "enterprise", s, &m).await;
    }
    assert_eq!(weight(&r, "enterprise"), 1.0);
    let last = r.history(None, 1).unwrap().pop().unwrap();
    assert_eq!((last.actor.as_str(), last.to_weight), ("guard", Some(1.0)));
    assert!(last.reason.contains("agreement 0.6"), "{}", last.reason);
    let text = m.encode();
    assert!(
        text.contains(
            "guard_trips_total{reason=\"agreement\",route=\"lead-score\",segment=\"enterprise\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("agreement_ratio{route=\"lead-score\",segment=\"enterprise\"}"));
}
