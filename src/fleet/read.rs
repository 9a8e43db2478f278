//! The CLI's view of the whole fleet (`audit|status|report --fleet`), read
//! from PostgreSQL. The report copies the fleet's shipped rows and events
//! into a temporary SQLite file and runs the one report over it, so a fleet
//! report and a replica's report can never disagree on what they compute.

use super::{Error, pg};
use std::io::Write;

/// The URL `--fleet` uses: `[fleet]` of the config file when it loads and
/// has one, else `--fleet-url`, else `UNDERSTUDY_FLEET_URL` (docs/src/concepts/fleet.md).
pub fn url(
    config: &std::path::Path,
    flag: Option<&str>,
) -> Option<(String, Option<std::path::PathBuf>)> {
    if let Ok(c) = crate::config::load(config)
        && let Some(f) = c.fleet
    {
        return Some((f.url, f.ca));
    }
    if let Some(u) = flag {
        return Some((u.to_string(), None));
    }
    std::env::var(crate::config::FLEET_URL_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| (u, None))
}

/// `audit --fleet`: every replica's changes (of one route, or all), oldest
/// first, each with its time (unix ms) and its fleet version as `version`.
pub async fn audit(
    client: &tokio_postgres::Client,
    route: Option<&str>,
) -> Result<Vec<(i64, crate::rollout::Change)>, Error> {
    let events = pg::history(client, route, 10_000).await?;
    Ok(events
        .into_iter()
        .map(|(ts, mut change)| {
            change.version = change.fleet_version;
            (ts, change)
        })
        .collect())
}

/// `status --fleet`: the fleet's weights and kill switches, and its replicas.
pub async fn status(client: &tokio_postgres::Client, out: &mut dyn Write) -> Result<(), Error> {
    let rows = client
        .query(
            "SELECT DISTINCT ON (route, segment) route, segment, to_weight, version, replica
             FROM understudy.rollout_events WHERE to_weight IS NOT NULL
             ORDER BY route, segment, version DESC",
            &[],
        )
        .await?;
    let mirrors = client
        .query(
            "SELECT DISTINCT ON (route) route, mirror FROM understudy.rollout_events
             WHERE mirror IS NOT NULL ORDER BY route, version DESC",
            &[],
        )
        .await?;
    let stages = client
        .query(
            "SELECT DISTINCT ON (route, segment) route, segment, to_stage
             FROM understudy.rollout_events WHERE to_stage IS NOT NULL
             ORDER BY route, segment, version DESC",
            &[],
        )
        .await?;
    let mut route = String::new();
    for r in &rows {
        let name: String = r.get(0);
        if name != route {
            let mirror = mirrors
                .iter()
                .find(|m| m.get::<_, String>(0) == name)
                .map_or("on".to_string(), |m| m.get(1));
            let staged: Vec<String> = stages
                .iter()
                .filter(|s| s.get::<_, String>(0) == name)
                .map(|s| format!("{}={}", s.get::<_, String>(1), s.get::<_, String>(2)))
                .collect();
            let staged = match staged.is_empty() {
                true => String::new(),
                false => format!("  stages {}", staged.join(" ")),
            };
            writeln!(out, "{name}  mirror {mirror}{staged}").map_err(io)?;
            writeln!(
                out,
                "  {:<14} {:>8}  {:>7}  set by",
                "segment", "weight", "version"
            )
            .map_err(io)?;
            route = name;
        }
        let (segment, weight, version, replica): (String, f64, i64, String) =
            (r.get(1), r.get(2), r.get(3), r.get(4));
        writeln!(out, "  {segment:<14} {weight:>7}%  {version:>7}  {replica}").map_err(io)?;
    }
    if rows.is_empty() {
        writeln!(out, "(no rollout events in the fleet)").map_err(io)?;
    }
    let now = crate::store::now_ms();
    writeln!(out, "replicas:").map_err(io)?;
    for r in client
        .query(
            "SELECT replica, seen_ms, evaluator FROM understudy.replicas ORDER BY replica",
            &[],
        )
        .await?
    {
        let (name, seen, evaluator): (String, i64, bool) = (r.get(0), r.get(1), r.get(2));
        let ago = (now - seen).max(0) as f64 / 1000.0;
        let state = if ago < 5.0 { "connected" } else { "not seen" };
        let role = if evaluator && ago < 5.0 {
            ", evaluator"
        } else {
            ""
        };
        writeln!(
            out,
            "  {name:<16} {state}{role}  (last seen {ago:.1} s ago)"
        )
        .map_err(io)?;
    }
    Ok(())
}

/// Copies the fleet's shipped rows (newer than `since_ms`) and its events
/// into a new SQLite file at `path`, for the report.
pub async fn materialize(
    client: &tokio_postgres::Client,
    path: &std::path::Path,
    since_ms: Option<i64>,
) -> Result<usize, Error> {
    let rows = client
        .query(
            "SELECT id, ts, route, segment, served_by, method, path, query, verdict, diff, score,
                    skip_reason, incumbent_status, incumbent_ms, incumbent_error,
                    candidate_status, candidate_ms, candidate_error, fallback, safety
             FROM understudy.exchanges WHERE ts >= $1 ORDER BY ts",
            &[&since_ms.unwrap_or(i64::MIN)],
        )
        .await?;
    let events = pg::history(client, None, i64::MAX).await?;
    let conn = crate::store::events::open(path)?;
    let sqlite = |e: rusqlite::Error| Error::Build(format!("writing {}: {e}", path.display()));
    let tx = conn.unchecked_transaction().map_err(sqlite)?;
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO exchanges (id, ts, route, segment, served_by, method, path, query,
                     verdict, diff, score, skip_reason, incumbent_status, incumbent_ms,
                     incumbent_error, candidate_status, candidate_ms, candidate_error, fallback,
                     safety)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                     ?17, ?18, ?19, ?20)",
            )
            .map_err(sqlite)?;
        for r in &rows {
            insert
                .execute(rusqlite::params![
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3),
                    r.get::<_, String>(4),
                    r.get::<_, String>(5),
                    r.get::<_, String>(6),
                    r.get::<_, Option<String>>(7),
                    r.get::<_, String>(8),
                    r.get::<_, String>(9),
                    r.get::<_, Option<f64>>(10),
                    r.get::<_, Option<String>>(11),
                    r.get::<_, Option<i32>>(12),
                    r.get::<_, Option<f64>>(13),
                    r.get::<_, Option<String>>(14),
                    r.get::<_, Option<i32>>(15),
                    r.get::<_, Option<f64>>(16),
                    r.get::<_, Option<String>>(17),
                    r.get::<_, bool>(18),
                    r.get::<_, Option<String>>(19),
                ])
                .map_err(sqlite)?;
        }
        for (ts, c) in &events {
            crate::store::events::append(&tx, &c.new_event(*ts))?;
        }
    }
    tx.commit().map_err(sqlite)?;
    Ok(rows.len())
}

fn io(e: std::io::Error) -> Error {
    Error::Build(format!("writing the output: {e}"))
}
