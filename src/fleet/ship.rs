//! `fleet.ship_rows`: exchange rows copied from this replica's SQLite to
//! PostgreSQL's `understudy.exchanges` in batches (binary `COPY` into a
//! temporary table, then an insert that keeps rows already there), so
//! `report --fleet` covers every replica. The cursor (the SQLite file's
//! identity and the last rowid shipped; rowids there only grow, see
//! `store::writer`) is written in the same transaction, so a batch lands
//! once; a fresh file under a reused replica name starts over (rows already
//! there are kept: exchange ids are unique), and so two processes under one
//! name (refused by the fleet's session, see `schema::claim_replica`) skip
//! none of each other's rows. Rows wait in SQLite while PostgreSQL is
//! unreachable. Bodies and headers stay
//! in the replica's file: the report does not need them. Each replica deletes
//! its own shipped rows past its `store.retention`.

use super::{Error, Fleet};
use crate::proxy::Proxy;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// Rows per batch.
const BATCH: i64 = 5000;
/// The longest one batch may take (a server that stops answering).
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The shipped columns, in `understudy.exchanges` order.
const TYPES: &[Type] = &[
    Type::TEXT,   // id
    Type::TEXT,   // replica
    Type::INT8,   // ts
    Type::TEXT,   // route
    Type::TEXT,   // segment
    Type::TEXT,   // served_by
    Type::TEXT,   // method
    Type::TEXT,   // path
    Type::TEXT,   // query
    Type::TEXT,   // verdict
    Type::TEXT,   // diff
    Type::FLOAT8, // score
    Type::TEXT,   // skip_reason
    Type::INT4,   // incumbent_status
    Type::FLOAT8, // incumbent_ms
    Type::TEXT,   // incumbent_error
    Type::INT4,   // candidate_status
    Type::FLOAT8, // candidate_ms
    Type::TEXT,   // candidate_error
    Type::BOOL,   // fallback
    Type::TEXT,   // safety
];

/// One row as read from SQLite.
struct Shipped {
    rowid: i64,
    id: String,
    ts: i64,
    texts: [Option<String>; 8], // route segment served_by method path query verdict diff
    score: Option<f64>,
    skip_reason: Option<String>,
    incumbent_status: Option<i32>,
    incumbent_ms: Option<f64>,
    incumbent_error: Option<String>,
    candidate_status: Option<i32>,
    candidate_ms: Option<f64>,
    candidate_error: Option<String>,
    fallback: bool,
    safety: Option<String>,
}

/// Ships rows every `store.flush_interval` until `stop`, then once more.
pub async fn run(fleet: Fleet, proxy: Arc<Proxy>, mut stop: watch::Receiver<bool>) {
    let every = proxy
        .runtime
        .load()
        .config
        .store
        .flush_interval
        .max(Duration::from_millis(100));
    let mut cursor: Option<i64> = None;
    let mut pruned: Option<std::time::Instant> = None;
    loop {
        let stopping = tokio::select! {
            () = super::stopped(&mut stop) => true,
            () = tokio::time::sleep(every) => false,
        };
        loop {
            let batch = tokio::time::timeout(BATCH_TIMEOUT, ship_once(&fleet, &proxy, &mut cursor));
            match batch.await.unwrap_or(Err(Error::Timeout(BATCH_TIMEOUT))) {
                Ok(n) if n == BATCH as usize => continue,
                Ok(_) => break,
                Err(e) => {
                    cursor = None;
                    tracing::debug!(error = %e, "Shipping rows failed; they wait in SQLite");
                    break;
                }
            }
        }
        if pruned.is_none_or(|t| t.elapsed() >= crate::store::writer::RETENTION_EVERY) {
            match tokio::time::timeout(BATCH_TIMEOUT, prune(&fleet, &proxy)).await {
                Ok(Ok(n)) => {
                    pruned = Some(std::time::Instant::now());
                    tracing::debug!(rows = n, "Pruned shipped rows past retention");
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "Pruning shipped rows failed"),
                Err(_) => tracing::debug!("Pruning shipped rows timed out"),
            }
        }
        if stopping {
            return;
        }
    }
}

/// Deletes this replica's shipped rows older than its `store.retention`
/// (none when it keeps rows forever).
async fn prune(fleet: &Fleet, proxy: &Proxy) -> Result<u64, Error> {
    let retention = proxy.runtime.load().config.store.retention;
    if retention.is_zero() {
        return Ok(0);
    }
    let keep = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let before = crate::store::now_ms().saturating_sub(keep);
    let client = super::pg::timed(fleet.inner.pool.get()).await??;
    Ok(client
        .execute(
            "DELETE FROM understudy.exchanges WHERE replica = $1 AND ts < $2",
            &[&fleet.replica(), &before],
        )
        .await?)
}

/// Ships the next batch; returns how many rows it held.
async fn ship_once(fleet: &Fleet, proxy: &Proxy, cursor: &mut Option<i64>) -> Result<usize, Error> {
    let mut pooled = super::pg::timed(fleet.inner.pool.get()).await??;
    let client: &mut tokio_postgres::Client = &mut pooled;
    let path = proxy.store.path().to_path_buf();
    let db_id = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || db_id(&path))
            .await
            .map_err(|e| Error::Build(e.to_string()))??
    };
    let after = match *cursor {
        Some(c) => c,
        None => client
            .query_opt(
                "SELECT local_rowid FROM understudy.ship_cursor
                 WHERE replica = $1 AND db_id IS NOT DISTINCT FROM $2",
                &[&fleet.replica(), &db_id],
            )
            .await?
            .map_or(0, |r| r.get(0)),
    };
    let rows = tokio::task::spawn_blocking(move || read(&path, after))
        .await
        .map_err(|e| Error::Build(e.to_string()))??;
    let Some(last) = rows.last().map(|r| r.rowid) else {
        *cursor = Some(after);
        return Ok(0);
    };
    let tx = client.transaction().await?;
    tx.batch_execute("CREATE TEMP TABLE ship (LIKE understudy.exchanges) ON COMMIT DROP")
        .await?;
    let sink = tx.copy_in("COPY ship FROM STDIN BINARY").await?;
    let writer = BinaryCopyInWriter::new(sink, TYPES);
    let mut writer = std::pin::pin!(writer);
    let replica = fleet.replica().to_string();
    for r in &rows {
        let [
            route,
            segment,
            served_by,
            method,
            path,
            query,
            verdict,
            diff,
        ] = &r.texts;
        let values: [&(dyn ToSql + Sync); 21] = [
            &r.id,
            &replica,
            &r.ts,
            route,
            segment,
            served_by,
            method,
            path,
            query,
            verdict,
            diff,
            &r.score,
            &r.skip_reason,
            &r.incumbent_status,
            &r.incumbent_ms,
            &r.incumbent_error,
            &r.candidate_status,
            &r.candidate_ms,
            &r.candidate_error,
            &r.fallback,
            &r.safety,
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await?;
    tx.execute(
        "INSERT INTO understudy.exchanges SELECT * FROM ship ON CONFLICT (id) DO NOTHING",
        &[],
    )
    .await?;
    tx.execute(
        "INSERT INTO understudy.ship_cursor (replica, local_rowid, db_id) VALUES ($1, $2, $3)
         ON CONFLICT (replica) DO UPDATE SET local_rowid = $2, db_id = $3",
        &[&replica, &last, &db_id],
    )
    .await?;
    tx.commit().await?;
    *cursor = Some(last);
    fleet.inner.metrics.rows_shipped.inc_by(rows.len() as u64);
    Ok(rows.len())
}

/// The SQLite file's identity (`meta.db_id`).
fn db_id(path: &std::path::Path) -> Result<Option<String>, Error> {
    use rusqlite::OptionalExtension;
    let conn = crate::store::read::open_ro(path)?;
    conn.query_row("SELECT value FROM meta WHERE key = 'db_id'", [], |r| {
        r.get(0)
    })
    .optional()
    .map_err(|e| Error::Build(format!("reading {}: {e}", path.display())))
}

fn read(path: &std::path::Path, after: i64) -> Result<Vec<Shipped>, Error> {
    let conn = crate::store::read::open_ro(path)?;
    let sqlite = |e: rusqlite::Error| Error::Build(format!("reading {}: {e}", path.display()));
    let mut stmt = conn
        .prepare(
            "SELECT rowid, id, ts, route, segment, served_by, method, path, query, verdict, diff,
                    score, skip_reason, incumbent_status, incumbent_ms, incumbent_error,
                    candidate_status, candidate_ms, candidate_error, fallback, safety
             FROM exchanges WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        )
        .map_err(sqlite)?;
    let rows = stmt
        .query_map([after, BATCH], |r| {
            Ok(Shipped {
                rowid: r.get(0)?,
                id: r.get(1)?,
                ts: r.get(2)?,
                texts: [
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                ],
                score: r.get(11)?,
                skip_reason: r.get(12)?,
                incumbent_status: r.get(13)?,
                incumbent_ms: r.get(14)?,
                incumbent_error: r.get(15)?,
                candidate_status: r.get(16)?,
                candidate_ms: r.get(17)?,
                candidate_error: r.get(18)?,
                fallback: r.get(19)?,
                safety: r.get(20)?,
            })
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(sqlite)?;
    Ok(rows)
}
