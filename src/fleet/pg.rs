//! The fleet's SQL: rollout events (compare-and-set raises, re-based
//! lowerings, catching up), the replicas heartbeat and evidence.

use super::Error;
use crate::rollout::Change;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{GenericClient, Row};

/// Longest wait for one PostgreSQL request made for a person (a raise).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `fut` within [`REQUEST_TIMEOUT`].
pub async fn timed<T>(fut: impl Future<Output = T>) -> Result<T, Error> {
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| Error::Timeout(REQUEST_TIMEOUT))
}

const COLUMNS: &str = "route, version, ts, segment, from_weight, to_weight, actor, reason, mirror, \
     forced, gates, replica, from_stage, to_stage, intent";

/// Inserts `change` as version `version` of its route; `None` when that
/// version exists already (another replica's change won the race).
pub async fn insert_at(
    client: &impl GenericClient,
    change: &Change,
    replica: &str,
    version: i64,
) -> Result<Option<i64>, Error> {
    let sql = format!(
        "INSERT INTO understudy.rollout_events ({COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    );
    let done = timed(client.execute(
        &sql,
        &[
            &change.route,
            &version,
            &crate::store::now_ms(),
            &change.segment,
            &change.from,
            &change.to,
            &change.actor,
            &change.reason,
            &change.mirror,
            &change.forced,
            &change.gates,
            &replica,
            &change.from_stage,
            &change.to_stage,
            &change.intent.as_str(),
        ],
    ))
    .await?;
    match done {
        Ok(_) => Ok(Some(version)),
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Appends a lowering on top of whatever the fleet holds for its route
/// (never refused: re-based and retried on a race). A lowering is "at most":
/// `from_weight`/`from_stage` become the fleet's value of the segment at that
/// moment and `to_weight`/`to_stage` the lower of that and the asked value,
/// in the same statement, so a lowering pushed after the fleet went lower
/// (a person's rollback elsewhere) records no raise. Returns the version.
pub async fn insert_rebased(
    client: &impl GenericClient,
    change: &Change,
    replica: &str,
    ts_ms: i64,
) -> Result<i64, Error> {
    // Pushed before (the session ended after PostgreSQL took it and before
    // this replica noted it): the same event is that version, not a new one.
    let before = client
        .query_opt(
            "SELECT version FROM understudy.rollout_events
             WHERE route = $1 AND replica = $2 AND ts = $3 AND segment = $4 AND actor = $5
               AND reason = $6 AND intent = 'lower'
             ORDER BY version LIMIT 1",
            &[
                &change.route,
                &replica,
                &ts_ms,
                &change.segment,
                &change.actor,
                &change.reason,
            ],
        )
        .await?;
    if let Some(row) = before {
        return Ok(row.get(0));
    }
    let latest = |column: &str, segment: &str| {
        format!(
            "(SELECT {column} FROM understudy.rollout_events
              WHERE route = $1 AND segment = {segment} AND {column} IS NOT NULL
              ORDER BY version DESC LIMIT 1)"
        )
    };
    let (w, wd) = (latest("to_weight", "$3"), latest("to_weight", "'default'"));
    let (st, sd) = (latest("to_stage", "$3"), latest("to_stage", "'default'"));
    let sql = format!(
        "WITH cur AS (
             SELECT COALESCE({w}, {wd}, 0) AS w, COALESCE({st}, {sd}, 'autonomous') AS s,
                    ARRAY['shadow','recommend','approve','notify','autonomous'] AS order_
         )
         INSERT INTO understudy.rollout_events ({COLUMNS})
         SELECT $1, (SELECT COALESCE(MAX(version), 0) + 1 FROM understudy.rollout_events
                     WHERE route = $1), $2, $3,
                CASE WHEN $4::float8 IS NULL THEN NULL ELSE cur.w END,
                CASE WHEN $4::float8 IS NULL THEN NULL ELSE LEAST(cur.w, $4::float8) END,
                $5, $6, $7, false, NULL, $8,
                CASE WHEN $9::text IS NULL THEN NULL ELSE cur.s END,
                CASE WHEN $9::text IS NULL THEN NULL
                     WHEN array_position(cur.order_, $9::text) < array_position(cur.order_, cur.s)
                     THEN $9::text ELSE cur.s END,
                'lower'
         FROM cur
         RETURNING version"
    );
    for _attempt in 0..20 {
        let done = client
            .query_one(
                &sql,
                &[
                    &change.route,
                    &ts_ms,
                    &change.segment,
                    &change.to,
                    &change.actor,
                    &change.reason,
                    &change.mirror,
                    &replica,
                    &change.to_stage,
                ],
            )
            .await;
        match done {
            Ok(row) => return Ok(row.get(0)),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict {
        route: change.route.clone(),
        applied: 0,
    })
}

/// Events newer than the applied version of their route (0 for routes not
/// in `routes`), in route and version order.
pub async fn since(
    client: &impl GenericClient,
    routes: &[String],
    versions: &[i64],
) -> Result<Vec<Change>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM understudy.rollout_events e
         WHERE e.version > COALESCE(
             (SELECT a.v FROM unnest($1::text[], $2::int8[]) AS a(r, v) WHERE a.r = e.route), 0)
         ORDER BY e.route, e.version"
    );
    let rows = client.query(&sql, &[&routes, &versions]).await?;
    Ok(rows.iter().map(change).collect())
}

/// Every event (of one route, or all), oldest first: `audit --fleet`.
pub async fn history(
    client: &impl GenericClient,
    route: Option<&str>,
    limit: i64,
) -> Result<Vec<(i64, Change)>, Error> {
    let sql = format!(
        "SELECT * FROM (SELECT {COLUMNS} FROM understudy.rollout_events
             WHERE $1::text IS NULL OR route = $1 ORDER BY ts DESC, version DESC LIMIT $2) l
         ORDER BY ts, route, version"
    );
    let rows = client.query(&sql, &[&route, &limit]).await?;
    Ok(rows.iter().map(|r| (r.get("ts"), change(r))).collect())
}

fn change(r: &Row) -> Change {
    let recorded: Option<String> = r.get("intent");
    let mut c = Change {
        version: None,
        route: r.get("route"),
        segment: r.get("segment"),
        from: r.get("from_weight"),
        to: r.get("to_weight"),
        mirror: r.get("mirror"),
        actor: r.get("actor"),
        reason: r.get("reason"),
        forced: r.get("forced"),
        gates: r.get("gates"),
        replica: Some(r.get("replica")),
        fleet_version: Some(r.get("version")),
        from_stage: r.get("from_stage"),
        to_stage: r.get("to_stage"),
        intent: crate::rollout::Intent::Set,
    };
    c.intent = crate::rollout::Intent::read(recorded.as_deref(), &c);
    c
}

/// Seeds a route the fleet has no events for with the file's weights (and
/// its kill switch when off), as `config` events 1, 2, ...: whichever replica
/// gets there first writes them; the others find them there.
pub async fn seed(
    client: &mut tokio_postgres::Client,
    route: &str,
    changes: &[Change],
    replica: &str,
) -> Result<bool, Error> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1)::int8)",
        &[&route],
    )
    .await?;
    let known: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM understudy.rollout_events WHERE route = $1)",
            &[&route],
        )
        .await?
        .get(0);
    if known {
        return Ok(false);
    }
    for (i, c) in changes.iter().enumerate() {
        insert_at(&tx, c, replica, i as i64 + 1).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// This replica is alive (and whether it evaluates).
pub async fn heartbeat(
    client: &impl GenericClient,
    replica: &str,
    started_ms: i64,
    evaluator: bool,
) -> Result<(), Error> {
    client
        .execute(
            "INSERT INTO understudy.replicas (replica, started_ms, seen_ms, evaluator)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (replica) DO UPDATE
             SET started_ms = $2, seen_ms = $3, evaluator = $4",
            &[&replica, &started_ms, &crate::store::now_ms(), &evaluator],
        )
        .await?;
    Ok(())
}

/// Drops evidence older than `before` (unix seconds).
pub async fn prune_evidence(client: &impl GenericClient, before: i64) -> Result<u64, Error> {
    Ok(client
        .execute(
            "DELETE FROM understudy.evidence WHERE second < $1",
            &[&before],
        )
        .await?)
}
