//! The control plane's model test across a fleet (issue 21): seeded random
//! interleavings on two replicas, each reaching a real PostgreSQL through its
//! own relay — a person's lowering, forced raise and stage lowering on either
//! replica, a replica partitioned and healed, a replica restarted (the
//! evaluator among them: failover), PostgreSQL down and back, a bad
//! candidate's traffic (local and fleet guard breaches) — checked after every
//! step against a small model, and once healed and quiet:
//!
//! 1. no row recorded as a lowering raises a weight or a stage (PostgreSQL
//!    and every replica's SQLite);
//! 2. every row that raises is a raise (gated, or a person's forced one) or
//!    the file's;
//! 3. a person's rollback stands: on the replica that made it at once, and
//!    everywhere once healed, until a later forced raise;
//! 4. healed and quiet, every replica and PostgreSQL agree on the weight and
//!    the stage;
//! 5. every fleet event is in each replica's ledger exactly once.
//!
//! The same invariants on one replica, without PostgreSQL, run over 10,000
//! sequences in `rollout::state::model`; here each step costs real time, so
//! `cargo test` runs [`QUICK`] sequences and the ignored `fleet_model_long`
//! 50 (`cargo test --release --test it fleet_model_long -- --ignored`).

use super::fleet::{Spec, all_connected, raises_without_gates, replica_via, smb_until, weight};
use crate::support::pg::{self, Pg, Relay};
use crate::support::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use understudy::app::Running;
use understudy::autonomy::Stage;

const QUICK: u64 = 2;
const STEPS: usize = 14;
const WEIGHTS: [f64; 6] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0];
const NAMES: [&str; 2] = ["a", "b"];

struct Node {
    relay: Relay,
    running: Option<Running>,
    cut: bool,
}

fn live(n: &Node) -> &Running {
    n.running.as_ref().expect("a running replica")
}

async fn api(r: &Running, path: &str, body: String) -> (http::StatusCode, String) {
    let url = format!("http://{}/api/v1/routes/r/{path}", r.admin_addr);
    let (status, _, answer) = post(&url, &body).await;
    (status, String::from_utf8_lossy(&answer).to_string())
}

fn stage(r: &Running) -> Stage {
    r.proxy.rollout.route("r").unwrap().stage("smb")
}

/// Rows of `rollout_events` in a replica's SQLite: (fleet version, pushed as).
fn local_versions(dir: &std::path::Path, name: &str) -> Vec<i64> {
    let db = dir.join(name).join("understudy.db");
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT fleet_version FROM rollout_events WHERE route = 'r' AND fleet_version IS NOT NULL
             UNION ALL
             SELECT p.fleet_version FROM fleet_pushed p JOIN rollout_events e ON e.version = p.local_version
             WHERE e.route = 'r'",
        )
        .unwrap();
    let mut v: Vec<i64> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    v.sort_unstable();
    v
}

/// A replica's ledger, one line a row (for failure messages).
fn ledger(dir: &std::path::Path, name: &str) -> String {
    let db = dir.join(name).join("understudy.db");
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT version || ' ' || segment || ' ' || actor || ' ' || COALESCE(intent, '?') || ' '
                    || COALESCE(from_weight, from_stage, mirror, '') || ' -> '
                    || COALESCE(to_weight, to_stage, '') || ' fv=' || COALESCE(fleet_version, '-')
             FROM rollout_events WHERE route = 'r' ORDER BY version",
        )
        .unwrap();
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    rows.join("\n")
}

/// Invariants 1 and 2 on a replica's own ledger.
fn local_rows_hold(dir: &std::path::Path, name: &str) -> Vec<String> {
    let db = dir.join(name).join("understudy.db");
    let conn = rusqlite::Connection::open(db).unwrap();
    let order = "CASE to_stage WHEN 'shadow' THEN 0 WHEN 'recommend' THEN 1 WHEN 'approve' THEN 2 WHEN 'notify' THEN 3 WHEN 'autonomous' THEN 4 END";
    let from = order.replace("to_stage", "from_stage");
    let sql = format!(
        "SELECT version || ' ' || actor || ' ' || COALESCE(intent, '?') FROM rollout_events
         WHERE route = 'r' AND actor <> 'config' AND NOT forced
           AND (to_weight > from_weight OR {order} > {from})
           AND (intent IS NOT 'raise')"
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// The fleet's weight and stage of `smb`, from PostgreSQL's rows in order.
async fn fleet_state(pg: &Pg) -> (f64, Stage) {
    let rows = pg
        .client()
        .await
        .query(
            "SELECT segment, to_weight, to_stage FROM understudy.rollout_events
             WHERE route = 'r' ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let (mut w, mut own, mut default) = (0.0, None, Stage::Autonomous);
    for r in rows {
        let seg: String = r.get(0);
        if let (Some(t), "smb") = (r.get::<_, Option<f64>>(1), seg.as_str()) {
            w = t;
        }
        if let Some(st) = r.get::<_, Option<String>>(2).and_then(|s| Stage::parse(&s)) {
            match seg.as_str() {
                "smb" => own = Some(st),
                "default" => default = st,
                _ => {}
            }
        }
    }
    (w, own.unwrap_or(default))
}

async fn run(seed: u64) {
    let Some(mut pg) = pg::start(&format!("fleet_model_{seed}")).await else {
        return;
    };
    if !pg.private() {
        eprintln!("SKIPPED: needs a private PostgreSQL to stop");
        return;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let incumbent = upstream().json(r#"{"score":1}"#).spawn().await;
    let candidate = upstream().json(r#"{"score":0}"#).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let rollout = "{ segments = { smb = 50.0 } }\n\
                   guard = { min_samples = 10, max_candidate_error_rate = 0.5 }";
    let spec = Spec::new(&pg, &dir, incumbent.url(), candidate.url(), rollout);
    let mut nodes = Vec::new();
    for name in NAMES {
        let relay = Relay::start(&pg).await;
        let running = Some(replica_via(&spec, &relay, name).await);
        nodes.push(Node {
            relay,
            running,
            cut: false,
        });
    }
    all_connected(&nodes.iter().map(live).collect::<Vec<_>>()).await;
    let mut pg_down = false;
    // People's rollbacks in force, per replica that made them: each binds
    // its own replica at once, and every replica once healed.
    let mut cap: [Option<f64>; 2] = [None, None];
    let mut trace = Vec::new();
    for step in 0..STEPS {
        let (x, op) = (rng.gen_range(0..nodes.len()), rng.gen_range(0..9));
        trace.push(format!("{op}@{}", NAMES[x]));
        let ctx = format!("seed {seed} step {step}: {trace:?}");
        let r = live(&nodes[x]);
        match op {
            // A person lowers smb here: never refused.
            0 | 1 => {
                let now = weight(r, "smb");
                let to = WEIGHTS[..rng.gen_range(0..3)]
                    .last()
                    .copied()
                    .unwrap_or(0.0);
                let body = format!(r#"{{"segment":"smb","weight":{to},"reason":"down"}}"#);
                let (status, answer) = api(r, "weights", body).await;
                if std::env::var_os("FLEET_MODEL_TRACE").is_some() {
                    eprintln!("lower {now} -> {to}: {status} {answer}");
                }
                if to < now {
                    // Refused only when the fleet got there first (already at or below).
                    let first = status == 409 && weight(r, "smb") <= to;
                    assert!(
                        status == 200 || first,
                        "a lowering refused: {answer} ({ctx})"
                    );
                    cap[x] = Some(cap[x].map_or(to, |c| c.min(to)));
                }
            }
            // A person forces a raise here: the fleet's, so only when connected.
            2 => {
                let to = WEIGHTS[rng.gen_range(0..WEIGHTS.len())];
                let body =
                    format!(r#"{{"segment":"smb","weight":{to},"reason":"up","force":true}}"#);
                let (status, answer) = api(r, "weights", body).await;
                let change: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
                if status == 200 && change["change"]["intent"] == "raise" {
                    cap = [None, None];
                }
                let known = [200, 409, 503].contains(&status.as_u16());
                assert!(known, "{status} {answer} ({ctx})");
            }
            // A person lowers the stage here.
            3 => {
                let to = Stage::ALL[rng.gen_range(0..4)];
                let body = format!(r#"{{"segment":"smb","stage":"{to}","reason":"down"}}"#);
                let before = stage(r);
                let (status, answer) = api(r, "stage", body).await;
                if to < before {
                    let first = status == 409 && stage(r) <= to;
                    assert!(
                        status == 200 || first,
                        "a stage lowering refused: {answer} ({ctx})"
                    );
                }
            }
            // A partition, and its end.
            4 => {
                nodes[x].relay.cut();
                nodes[x].cut = true;
            }
            5 => {
                nodes[x].relay.heal();
                nodes[x].cut = false;
            }
            // A restart (the evaluator's, sometimes: failover).
            6 => {
                let old = nodes[x].running.take().expect("running");
                old.stop().await;
                nodes[x].running = Some(replica_via(&spec, &nodes[x].relay, NAMES[x]).await);
            }
            // A bad candidate's traffic: the local guard may lower smb.
            7 => {
                let mut sent = 0;
                smb_until(r, "traffic", || {
                    sent += 1;
                    sent > 15
                })
                .await;
            }
            // PostgreSQL down, or back.
            _ => {
                if pg_down {
                    pg.resume().await;
                } else {
                    pg.pause();
                }
                pg_down = !pg_down;
            }
        }
        if std::env::var_os("FLEET_MODEL_TRACE").is_some() {
            let ws: Vec<_> = nodes
                .iter()
                .map(|n| (weight(live(n), "smb"), stage(live(n))))
                .collect();
            eprintln!(
                "seed {seed} step {step} op {op}@{}: {ws:?} cap {cap:?} pg_down {pg_down}",
                NAMES[x]
            );
        }
        // Safety, after every step.
        if !pg_down {
            assert_eq!(
                raises_without_gates(&pg).await,
                Vec::<String>::new(),
                "{ctx}"
            );
        }
        for name in NAMES {
            assert_eq!(
                local_rows_hold(dir.path(), name),
                Vec::<String>::new(),
                "{name} ({ctx})"
            );
        }
        for (i, c) in cap.iter().enumerate() {
            let w = weight(live(&nodes[i]), "smb");
            let within = c.is_none_or(|c| w <= c);
            assert!(
                within,
                "3: {} at {w} above its rollback to {c:?} ({ctx})",
                NAMES[i]
            );
        }
    }
    // Healed and quiet: everyone agrees, and the rollback stands everywhere.
    if pg_down {
        pg.resume().await;
    }
    for n in &mut nodes {
        n.relay.heal();
        n.cut = false;
    }
    let ctx = format!("seed {seed}: {trace:?}");
    all_connected(&nodes.iter().map(live).collect::<Vec<_>>()).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let fleet = fleet_state(&pg).await;
        let states: Vec<_> = nodes
            .iter()
            .map(|n| (weight(live(n), "smb"), stage(live(n))))
            .collect();
        if states.iter().all(|s| *s == fleet) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "4: never agreed: fleet {fleet:?}, replicas {states:?} ({ctx})\na:\n{}\nb:\n{}",
            ledger(dir.path(), "a"),
            ledger(dir.path(), "b")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(c) = cap.iter().flatten().copied().reduce(f64::min) {
        let rows: Vec<String> = pg
            .client()
            .await
            .query(
                "SELECT version || ' ' || segment || ' ' || actor || ' ' || COALESCE(intent, '?')
                        || ' ' || COALESCE(from_weight::text, from_stage, mirror, '') || ' -> '
                        || COALESCE(to_weight::text, to_stage, '') || ' ' || replica
                        || ' ' || forced
                 FROM understudy.rollout_events WHERE route = 'r' ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for n in &nodes {
            let w = weight(live(n), "smb");
            assert!(
                w <= c,
                "3: {w} above a rollback to {c} ({ctx})\n{}",
                rows.join("\n")
            );
        }
    }
    assert_eq!(
        raises_without_gates(&pg).await,
        Vec::<String>::new(),
        "{ctx}"
    );
    let fleet: Vec<i64> = pg
        .client()
        .await
        .query(
            "SELECT version FROM understudy.rollout_events WHERE route = 'r' ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Quiet: each replica has applied the fleet's last event (a lowering
    // that changed nothing changes no state, so agreeing is not enough).
    let deadline = Instant::now() + Duration::from_secs(15);
    for name in NAMES {
        while local_versions(dir.path(), name) != fleet && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let local = local_versions(dir.path(), name);
        assert_eq!(local, fleet, "5: {name}'s ledger ({ctx})");
    }
    for n in nodes {
        if let Some(r) = n.running {
            r.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_model_quick() {
    for seed in 0..QUICK {
        run(seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn fleet_model_long() {
    let t = Instant::now();
    let first: u64 = std::env::var("FLEET_MODEL_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for seed in first..50 {
        run(1000 + seed).await;
    }
    eprintln!("50 fleet sequences of {STEPS} steps in {:?}", t.elapsed());
}
