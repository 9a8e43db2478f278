//! `understudy demo`: the whole story on loopback, with no set-up. An embedded
//! incumbent (rules) and candidate (a model with a mid-market blind spot), the
//! real proxy between them, synthetic traffic; the guard promotes enterprise
//! step by step and rolls mid-market back; then the audit trail and the report.
//!
//! Then staged autonomy (docs/src/concepts/stages.md): enterprise starts at `recommend` and,
//! once at 100 %, advances to `notify` on its reviewers' good ratings, while
//! smb, served at `notify`, has reviewers who reverse two answers in five and
//! drops to `approve` at once.
//!
//! Holds are compressed to a second (half a second for stages) so the story
//! fits in a few seconds.

pub mod scorer;
pub mod traffic;

use crate::config::Stage;
use crate::loopback;
use crate::store::events::{NewFeedback, RolloutEvent};
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
rollout = { segments = { enterprise = 1.0, mid-market = 1.0, smb = 100.0 } }
guard = { min_samples = 100, window = 400, auto_promote = true, hold = "1s" }

[routes.autonomy]
stage = "recommend"
stages = { smb = "notify" }
suggest_pointer = "/suggestion"
auto_advance = true
hold = "500ms"
criteria = { min_agreement = 0.8, min_satisfaction = 0.7, max_reversal_rate = 0.1, min_samples = 40 }

[routes.slices]
headers = ["x-region"]
"#;

const ROUTE: &str = "lead-score";
/// Requests per batch; between batches the demo looks at the weights.
const BATCH: usize = 100;
/// The least time a batch takes (about 400 requests per second), so the
/// one-second holds pass at a pace a reader can follow.
const BATCH_TIME: Duration = Duration::from_millis(250);
/// Batches the stages get once enterprise is at 100 %, at most.
const STAGE_BATCHES: usize = 24;

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
    let routes = config.routes.clone();
    let running = crate::app::start_with(config, crate::app::Options::default()).await?;
    writeln!(out, "Understudy demo")?;
    writeln!(out, "  incumbent (rules-v3)  {}", incumbent.url())?;
    writeln!(out, "  candidate (leadnet-2) {}", candidate.url())?;
    writeln!(out, "  proxy                 http://{}", running.addr)?;
    writeln!(
        out,
        "enterprise and mid-market start as canaries at 1 %, smb is served at 100 %; every\n\
         request is compared. The guard promotes a segment one step (1 → 5 → 10 → 25 → 50\n\
         → 100 %) after it passes for 1 s and rolls it back when its agreement is bad.\n\
         Stages: canary users of enterprise get the candidate's score as a suggestion\n\
         (recommend) until their reviewers' ratings earn it more; smb's answers go to\n\
         reviewers (notify), who reverse some:"
    )?;
    let bar = traffic::bar(requests);
    let weight = |seg: &str| {
        running
            .proxy
            .rollout
            .route(ROUTE)
            .map_or(0.0, |r| r.weight(seg))
    };
    let stage = |seg: &str| {
        running
            .proxy
            .rollout
            .route(ROUTE)
            .map_or(Stage::default(), |r| r.stage(seg))
    };
    let settled = || {
        weight("enterprise") >= 100.0
            && weight("mid-market") <= 0.0
            && stage("enterprise") >= Stage::Notify
            && stage("smb") < Stage::Notify
    };
    let (mut sent, mut ok, mut seen, mut rated, mut extra) = (0, 0, 0, 0, 0);
    while sent < requests && !settled() && extra < STAGE_BATCHES {
        let started = Instant::now();
        let n = BATCH.min(requests - sent);
        ok += traffic::send(running.addr, n, 7 + sent as u64, &bar).await;
        sent += n;
        if weight("enterprise") >= 100.0 {
            extra += 1;
        }
        rated = reviewers(&running.proxy, rated, weight("enterprise") >= 100.0).await?;
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
        weight_in(&trail, "smb", 100.0),
    )?;
    writeln!(
        out,
        "Stages: enterprise {}, mid-market {}, smb {} (enterprise earned notify on good ratings; \
         smb's reviewers reversed too many answers).",
        stage_in(&trail, "enterprise", "recommend"),
        stage_in(&trail, "mid-market", "recommend"),
        stage_in(&trail, "smb", "notify"),
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
        routes: routes.clone(),
        find_slices: true,
        ..Default::default()
    };
    crate::report::run(&opts, out)?;
    writeln!(
        out,
        "\nmid-market disagrees far more often than enterprise and smb: it stays in shadow."
    )?;
    slices(db, routes, out)?;
    writeln!(
        out,
        "Inspect rows with: sqlite3 {} \"select segment, served_by, verdict, count(*) from exchanges group by 1, 2, 3\"",
        db.display()
    )?;
    Ok(())
}

/// What slice discovery found that nobody declared (the candidate's blind
/// spot on the `apac` region, sent only as a header).
fn slices(db: &Path, routes: Vec<crate::config::Route>, out: &mut dyn Write) -> anyhow::Result<()> {
    let found = crate::slices::find(&crate::slices::Options {
        dbs: vec![db.to_path_buf()],
        route: Some(ROUTE.to_string()),
        since_ms: None,
        routes,
    })?;
    let slices: Vec<&crate::slices::Slice> = found.iter().flat_map(|r| &r.slices).collect();
    if slices.is_empty() {
        writeln!(
            out,
            "Slice discovery found no undeclared slice worse than the rest."
        )?;
    }
    for s in slices {
        writeln!(
            out,
            "Slice discovery found what nobody declared: {}: agreement {} over {} comparisons, against {} for the rest of the route.",
            s.label,
            crate::slices::render::rate(&s.agreement),
            s.comparisons,
            crate::slices::render::rate(&s.rest),
        )?;
        for d in &s.declare {
            writeln!(
                out,
                "  declare it as a segment to give it its own weight and guard: {d}"
            )?;
        }
    }
    Ok(())
}

/// One audit event as the demo prints it.
pub fn event_line(e: &RolloutEvent) -> String {
    let w = |v: Option<f64>| v.map_or("-".to_string(), |w| format!("{w} %"));
    let (from, to) = match (&e.from_stage, &e.to_stage) {
        (Some(f), Some(t)) => (f.clone(), t.clone()),
        _ => (w(e.from_weight), w(e.to_weight)),
    };
    format!(
        "  #{:<3} {:<7} {}/{:<11} {:>5} → {:<6} {}",
        e.version, e.actor, e.route, e.segment, from, to, e.reason
    )
}

/// The demo's reviewers, on the exchanges logged since row `after`:
/// enterprise's rate every answer well once it is at 100 % (`rate`); smb's
/// reverse two answers in five that the candidate served. Returns the last
/// row seen.
async fn reviewers(proxy: &crate::proxy::Proxy, after: i64, rate: bool) -> anyhow::Result<i64> {
    proxy.store.flush().await;
    let rows: Vec<(i64, String, String, String)> = {
        let conn = crate::store::read::open_ro(proxy.store.path())?;
        let mut stmt = conn.prepare(
            "SELECT rowid, id, segment, served_by FROM exchanges WHERE rowid > ?1 ORDER BY rowid",
        )?;
        stmt.query_map([after], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?
    };
    let mut last = after;
    for (rowid, id, segment, served_by) in rows {
        last = rowid;
        let feedback = match segment.as_str() {
            "enterprise" if rate => NewFeedback {
                exchange_id: id,
                rating: Some(1),
                comment: "good lead score".into(),
                reversed: false,
                rater: None,
            },
            "smb" if served_by == "candidate" && rowid % 5 < 2 => NewFeedback {
                exchange_id: id,
                rating: None,
                comment: "rep overrode the score".into(),
                reversed: true,
                rater: None,
            },
            _ => continue,
        };
        crate::admin::people::feedback(proxy, feedback).await?;
    }
    Ok(last)
}

/// The last recorded stage of a segment, or its starting stage.
fn stage_in<'a>(trail: &'a [RolloutEvent], segment: &str, start: &'a str) -> &'a str {
    trail
        .iter()
        .rev()
        .find(|e| e.segment == segment && e.to_stage.is_some())
        .and_then(|e| e.to_stage.as_deref())
        .unwrap_or(start)
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
