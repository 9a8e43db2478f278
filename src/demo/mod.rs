//! `understudy demo`: the whole story on loopback, with no set-up. An embedded
//! incumbent (rules) and candidate (a model with a mid-market blind spot), the
//! real proxy between them, synthetic traffic; the guard promotes enterprise
//! step by step and rolls mid-market back; then the audit trail and the report.
//!
//! Holds are compressed to a second so the story fits in a few seconds.

pub mod scorer;
pub mod traffic;

use crate::loopback;
use crate::store::events::RolloutEvent;
use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// The demo's config; ports and the DB path are filled in at run time.
const CONFIG: &str = r#"
[listen]
addr = "127.0.0.1:0"

[admin]
addr = "127.0.0.1:0"

[store]
path = "{db}"

[[routes]]
name = "lead-score"
path_prefix = "/v1/score"
incumbent = "{incumbent}"
candidate = "{candidate}"
segment = { header = "x-customer-tier", values = ["enterprise", "mid-market", "smb"] }
sticky = { header = "x-user-id" }
mirror = { methods = ["POST"], timeout = "2s", max_in_flight = 256 }
compare = { mode = "json", ignore = ["/request_id", "/model"], tolerance = 0.05 }
rollout = { segments = { enterprise = 1.0, mid-market = 1.0 } }
guard = { min_samples = 100, window = 400, auto_promote = true, hold = "1s" }
"#;

const ROUTE: &str = "lead-score";
/// Requests per batch; between batches the demo looks at the weights.
const BATCH: usize = 100;
/// The least time a batch takes (about 400 requests per second), so the
/// one-second holds pass at a pace a reader can follow.
const BATCH_TIME: Duration = Duration::from_millis(250);

/// Runs the demo, writing its log to `db` (replaced if it exists). Sends at
/// most `requests`, stopping once the guard has settled both canaries.
pub async fn run(db: &Path, requests: usize, out: &mut dyn Write) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", db.display());
        if Path::new(&p).exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot replace {p}"))?;
        }
    }
    let incumbent =
        loopback::serve(|req| scorer::handle(req, "rules-v3", scorer::rules_score)).await?;
    let candidate =
        loopback::serve(|req| scorer::handle(req, "leadnet-2", scorer::model_score)).await?;
    let text = CONFIG
        .replace("{db}", &db.display().to_string().replace('\\', "/"))
        .replace("{incumbent}", &incumbent.url())
        .replace("{candidate}", &candidate.url());
    let config = crate::config::parse(&text).context("the demo's embedded config is invalid")?;
    let running = crate::app::start_with(config, crate::app::Options::default()).await?;
    writeln!(out, "Understudy demo")?;
    writeln!(out, "  incumbent (rules-v3)  {}", incumbent.url())?;
    writeln!(out, "  candidate (leadnet-2) {}", candidate.url())?;
    writeln!(out, "  proxy                 http://{}", running.addr)?;
    writeln!(
        out,
        "enterprise and mid-market start as canaries at 1 %, smb stays in shadow; every\n\
         request is compared. The guard promotes a segment one step (1 → 5 → 10 → 25 → 50\n\
         → 100 %) after it passes for 1 s and rolls it back when its agreement is bad:"
    )?;
    let bar = traffic::bar(requests);
    let weight = |seg: &str| {
        running
            .proxy
            .rollout
            .route(ROUTE)
            .map_or(0.0, |r| r.weight(seg))
    };
    let (mut sent, mut ok, mut seen) = (0, 0, 0);
    while sent < requests && (weight("enterprise") < 100.0 || weight("mid-market") > 0.0) {
        let started = Instant::now();
        let n = BATCH.min(requests - sent);
        ok += traffic::send(running.addr, n, 7 + sent as u64, &bar).await;
        sent += n;
        for e in running.proxy.rollout.history(None, 1000)? {
            if e.version > seen {
                seen = e.version;
                if bar.is_hidden() {
                    writeln!(out, "{}", event_line(&e))?;
                } else {
                    bar.println(event_line(&e));
                }
            }
        }
        tokio::time::sleep(BATCH_TIME.saturating_sub(started.elapsed())).await;
    }
    bar.finish_and_clear();
    let trail = running.proxy.rollout.history(None, 1000)?;
    running.stop().await;
    writeln!(
        out,
        "\n{ok}/{sent} requests answered. Final weights: enterprise {} %, mid-market {} %, smb {} %.",
        weight_in(&trail, "enterprise", 1.0),
        weight_in(&trail, "mid-market", 1.0),
        weight_in(&trail, "smb", 0.0),
    )?;
    if let Ok(wrong) = wrong_mid_market_answers(db) {
        writeln!(
            out,
            "mid-market clients got {wrong} wrong score(s) from the candidate before the rollback."
        )?;
    }
    writeln!(out, "\nAudit trail (rollout_events):")?;
    for e in &trail {
        writeln!(out, "{}", event_line(e))?;
    }
    writeln!(out, "\nReport ({}):\n", db.display())?;
    let opts = crate::report::ReportOptions {
        dbs: vec![db.to_path_buf()],
        ..Default::default()
    };
    crate::report::run(&opts, out)?;
    writeln!(
        out,
        "\nmid-market disagrees far more often than enterprise and smb: it stays in shadow.\n\
         Inspect rows with: sqlite3 {} \"select segment, served_by, verdict, count(*) from exchanges group by 1, 2, 3\"",
        db.display()
    )?;
    Ok(())
}

/// One audit event as the demo prints it.
pub fn event_line(e: &RolloutEvent) -> String {
    let w = |v: Option<f64>| v.map_or("-".to_string(), |w| format!("{w} %"));
    format!(
        "  #{:<3} {:<7} {}/{:<11} {:>5} → {:<6} {}",
        e.version,
        e.actor,
        e.route,
        e.segment,
        w(e.from_weight),
        w(e.to_weight),
        e.reason
    )
}

/// The last recorded weight of a segment, or its starting weight.
fn weight_in(trail: &[RolloutEvent], segment: &str, start: f64) -> f64 {
    trail
        .iter()
        .rev()
        .find(|e| e.segment == segment && e.to_weight.is_some())
        .and_then(|e| e.to_weight)
        .unwrap_or(start)
}

/// Mid-market answers the candidate served that disagreed with the incumbent.
fn wrong_mid_market_answers(db: &Path) -> rusqlite::Result<i64> {
    let conn = rusqlite::Connection::open(db)?;
    conn.query_row(
        "SELECT COUNT(*) FROM exchanges
         WHERE segment = 'mid-market' AND served_by = 'candidate' AND verdict = 'mismatch'",
        [],
        |r| r.get(0),
    )
}
