use super::*;
use crate::rollout::guard::Sample;
use crate::rollout::{Ask, Intent, Target};
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

/// A rollout of `config(enterprise)` attached to a fresh SQLite file.
async fn attached(enterprise: f64) -> (tempfile::TempDir, Rollout, Metrics, Config) {
    let dir = tempfile::tempdir().unwrap();
    let (m, cfg) = (Metrics::new(), config(enterprise));
    let r = Rollout::from_config(&cfg);
    r.attach(store(&dir.path().join("u.db")), &cfg, &m)
        .await
        .unwrap();
    (dir, r, m, cfg)
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
        let s = Sample::verdict(t0 + Duration::from_millis(i), verdict);
        r.observe(&cfg.routes[0], "enterprise", s, &m).await;
    }
    // One step back at the breach (5 → 1), and another at the next
    // comparison (1 → 0): the candidate did not change because its weight
    // went down, so the evidence that it is bad still stands (issue 22: a
    // breach no longer buys a fresh test).
    assert_eq!(weight(&r, "enterprise"), 0.0);
    let steps: Vec<_> = (r.history(None, 10).unwrap().into_iter())
        .filter(|e| e.actor == "guard")
        .map(|e| (e.from_weight, e.to_weight))
        .collect();
    assert_eq!(steps, [(Some(5.0), Some(1.0)), (Some(1.0), Some(0.0))]);
    let last = r.history(None, 1).unwrap().pop().unwrap();
    assert!(last.reason.contains("agreement 0.6"), "{}", last.reason);
    let text = m.encode();
    assert!(
        text.contains(
            "guard_trips_total{reason=\"agreement\",route=\"lead-score\",segment=\"enterprise\"} 2"
        ),
        "{text}"
    );
    assert!(text.contains("agreement_ratio{route=\"lead-score\",segment=\"enterprise\"}"));
}

/// Issue 21: a guard's breach decided at weight 50 ("one step back: 25")
/// lands after a person rolled the segment back to 0: it is a lowering, "at
/// most 25", so it changes nothing, and the ledger records no raise.
#[tokio::test]
async fn a_stale_breach_never_raises() {
    let (_dir, r, m, cfg) = attached(50.0).await;
    let route = &cfg.routes[0];
    let decided_at = r.route("lead-score").unwrap().epoch;
    r.set_weight(route, "enterprise", 0.0, Actor::Api, "rollback", false, &m)
        .await
        .unwrap();
    let breach = crate::rollout::guard::Action {
        to: 25.0,
        breach: Some(crate::rollout::guard::Reason::Agreement),
        figures: Default::default(),
        reason: "guard breach (agreement)".into(),
    };
    r.act(route, "enterprise", breach, decided_at, &m).await;
    assert_eq!(weight(&r, "enterprise"), 0.0);
    let history = r.history(None, 100).unwrap();
    assert!(history.iter().all(|e| e.actor != "guard"), "{history:?}");
    // The same for a stage: "at most notify" after a person set shadow.
    r.set_stage(
        route,
        "enterprise",
        Stage::Shadow,
        Actor::Api,
        "stop",
        false,
        &m,
    )
    .await
    .unwrap();
    let lower = Ask {
        intent: Some(Intent::Lower),
        ..Ask::new(
            "enterprise",
            Target::Stage(Stage::Notify),
            Actor::Guard,
            "breach",
        )
    };
    assert!(matches!(
        r.change(route, lower, &m).await,
        Err(Error::StageUnchanged { .. })
    ));
    assert_eq!(
        r.route("lead-score").unwrap().stage("enterprise"),
        Stage::Shadow
    );
}

/// A guard's promotion is compare-and-set on the state it judged: a change
/// made meanwhile (here a person's lowering and raise back) refuses it.
#[tokio::test]
async fn a_stale_promotion_is_refused() {
    let (_dir, r, m, cfg) = attached(5.0).await;
    let route = &cfg.routes[0];
    let decided_at = r.route("lead-score").unwrap().epoch;
    r.set_weight(route, "enterprise", 1.0, Actor::Api, "down", false, &m)
        .await
        .unwrap();
    r.set_weight(route, "enterprise", 5.0, Actor::Api, "up", true, &m)
        .await
        .unwrap();
    // Forced, so no gate stands in the way: only the compare-and-set.
    let raise = Ask {
        intent: Some(Intent::Raise),
        epoch: Some(decided_at),
        force: true,
        ..Ask::new("enterprise", Target::Weight(10.0), Actor::Api, "promote")
    };
    let refused = r.change(route, raise, &m).await;
    assert!(matches!(refused, Err(Error::Moved { .. })), "{refused:?}");
    assert_eq!(weight(&r, "enterprise"), 5.0);
    // The guard cannot force: its raise without a pass is gated.
    let guard = Ask {
        intent: Some(Intent::Raise),
        force: true,
        ..Ask::new("enterprise", Target::Weight(10.0), Actor::Guard, "promote")
    };
    let gated = r.change(route, guard, &m).await;
    assert!(matches!(gated, Err(Error::Gated { .. })), "{gated:?}");
}

/// Issues 21 and 22: one rule resets the evidence, whatever the change. A
/// weight or a stage (a person's, the file's, the guard's own promotion)
/// resets its segment's decision, so no pass survives it, but not its
/// comparisons, whose agreement does not depend on the weight (restarting
/// the test at every change would spend α again each time); the mirror
/// switch (every segment) and a breach start the comparisons over too, and
/// a sample gathered before those is never counted after them.
#[tokio::test]
async fn every_change_resets_the_evidence_it_touches_by_one_rule() {
    let (_dir, r, m, cfg) = attached(5.0).await;
    let route = &cfg.routes[0];
    let feed = |n: usize, at: Instant| {
        let r = &r;
        let m = &m;
        async move {
            for seg in ["enterprise", "smb"] {
                for _ in 0..n {
                    let s = Sample::verdict(at, crate::compare::Verdict::Match);
                    r.observe(route, seg, s, m).await;
                }
            }
        }
    };
    let samples = |seg: &str| r.guard_status("lead-score", seg).map(|(f, _, _)| f.samples);
    let before = Instant::now();
    feed(10, Instant::now()).await;
    assert_eq!(
        (samples("enterprise"), samples("smb")),
        (Some(10), Some(10))
    );
    // A stage change resets its segment only.
    r.set_stage(
        route,
        "enterprise",
        Stage::Notify,
        Actor::Api,
        "x",
        false,
        &m,
    )
    .await
    .unwrap();
    assert_eq!((samples("enterprise"), samples("smb")), (None, Some(10)));
    // A comparison gathered before that change still says what the
    // candidate's agreement is, and the decision is made again on all.
    feed(1, before).await;
    assert_eq!(samples("enterprise"), Some(11));
    feed(3, Instant::now()).await;
    assert_eq!(
        (samples("enterprise"), samples("smb")),
        (Some(14), Some(14))
    );
    // The mirror switch starts every segment of the route over.
    let switched = Instant::now();
    r.set_mirror(route, false, Actor::Api, "stop", &m)
        .await
        .unwrap();
    assert_eq!((samples("enterprise"), samples("smb")), (None, None));
    // A sample gathered before it (settled after it) is not counted.
    feed(1, before.min(switched)).await;
    assert_eq!((samples("enterprise"), samples("smb")), (None, None));
    feed(2, Instant::now()).await;
    // A raise (here a person's forced one) resets its segment too.
    r.set_weight(route, "smb", 1.0, Actor::Api, "go", true, &m)
        .await
        .unwrap();
    assert_eq!((samples("enterprise"), samples("smb")), (Some(2), None));
}

/// Issue 22: the promotion gate cannot be clicked through. A pass lets one
/// raise through; that raise starts the decision over, so the next raise,
/// with no comparison in between, finds no pass (it was 1 → 5 → 10 → 25 → 50
/// on one old pass). The next comparison decides again, on all of them.
#[tokio::test]
async fn one_pass_lets_one_raise_through() {
    let (_dir, r, m, cfg) = attached(1.0).await;
    let route = &cfg.routes[0];
    for _ in 0..400 {
        let s = Sample::verdict(Instant::now(), crate::compare::Verdict::Match);
        r.observe(route, "enterprise", s, &m).await;
    }
    let pass = r
        .guard_status("lead-score", "enterprise")
        .map(|(_, d, _)| d);
    assert_eq!(pass, Some(crate::rollout::guard::Decision::Pass));
    r.set_weight(route, "enterprise", 5.0, Actor::Cli, "next", false, &m)
        .await
        .unwrap();
    let again = r
        .set_weight(route, "enterprise", 10.0, Actor::Cli, "next", false, &m)
        .await;
    assert!(matches!(again, Err(Error::Gated { .. })), "{again:?}");
    assert_eq!(weight(&r, "enterprise"), 5.0);
    assert!(
        r.guard_status("lead-score", "enterprise").is_none(),
        "no stale pass shown"
    );
    let s = Sample::verdict(Instant::now(), crate::compare::Verdict::Match);
    r.observe(route, "enterprise", s, &m).await;
    let status = r.guard_status("lead-score", "enterprise");
    assert_eq!(
        status.map(|(f, d, _)| (f.samples, d)),
        Some((401, crate::rollout::guard::Decision::Pass))
    );
}

/// Issue 22: a hold names what holds it. At 203 matches of 203 the error
/// rate's upper bound (a pass needs it under 2 %) is what holds, and the
/// refusal says so, with about how many more comparisons it needs.
#[tokio::test]
async fn a_refused_raise_names_the_criterion_that_holds_it() {
    let (_dir, r, m, cfg) = attached(1.0).await;
    let route = &cfg.routes[0];
    for _ in 0..203 {
        let s = Sample::verdict(Instant::now(), crate::compare::Verdict::Match);
        r.observe(route, "enterprise", s, &m).await;
    }
    let refused = r
        .set_weight(route, "enterprise", 5.0, Actor::Cli, "next", false, &m)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("held by max_candidate_error_rate 0.02"),
        "{refused}"
    );
    assert!(refused.contains("more comparisons"), "{refused}");
    // And with nothing judged since the last change: that holds it.
    r.set_weight(route, "enterprise", 0.5, Actor::Cli, "down", false, &m)
        .await
        .unwrap();
    let refused = r
        .set_weight(route, "enterprise", 5.0, Actor::Cli, "next", false, &m)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("no comparison judged since the last change"),
        "{refused}"
    );
    // The next comparison decides on all 204 (a person's change keeps them).
    let s = Sample::verdict(Instant::now(), crate::compare::Verdict::Match);
    r.observe(route, "enterprise", s, &m).await;
    let refused = r
        .set_weight(route, "enterprise", 5.0, Actor::Cli, "next", false, &m)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("0 errors in 204 comparisons"), "{refused}");
}
