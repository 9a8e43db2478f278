//! The evidence's SQL: a replica inserts its closed slices, numbered by its
//! own sequence; the evaluator reads, per replica, the rows past the last
//! sequence number it read from that replica.
//!
//! Why not one cursor over a `BIGSERIAL` id: ids are handed out when a row is
//! inserted, not when it commits, so replicas committing concurrently make
//! rows visible out of id order, and a row committed behind the cursor would
//! never be read. One replica's rows, though, commit in its sequence order:
//! one session ships them, a transaction at a time, and rows that come back
//! after a failed attempt are shipped again first (a re-sent row that did
//! commit meets its own key and is kept as it was). So each replica's last
//! read sequence number is a watermark below which nothing more can appear.

use super::Row;
use crate::fleet::Error;
use std::collections::HashMap;
use tokio_postgres::GenericClient;

/// Rows read per replica per step, at most.
const READ_LIMIT: i64 = 20_000;

/// Inserts closed slices in one transaction (idempotent: a slice already
/// there is kept).
pub async fn insert(
    client: &mut tokio_postgres::Client,
    replica: &str,
    rows: &[Row],
) -> Result<(), Error> {
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare(
            "INSERT INTO understudy.evidence (replica, route, segment, second, slice, matches,
                 mismatches, candidate_errors, safety_events, safety_only, latencies, seq)
             VALUES ($1, $2, $3, $4, $11, $5, $6, $7, $8, $9, $10, $12)
             ON CONFLICT (replica, route, segment, second, slice) DO NOTHING",
        )
        .await?;
    for r in rows {
        let latencies = serde_json::to_value(&r.latencies).unwrap_or(serde_json::Value::Null);
        tx.execute(
            &stmt,
            &[
                &replica,
                &r.route,
                &r.segment,
                &r.second,
                &(r.matches as i64),
                &(r.mismatches as i64),
                &(r.candidate_errors as i64),
                &(r.safety_events as i64),
                &(r.safety_only as i64),
                &latencies,
                &r.slice,
                &r.seq,
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The evaluator's place in the evidence: per replica, the last sequence
/// number read. Empty until the first read.
#[derive(Debug, Default)]
pub struct Cursor {
    /// The oldest second the first read took (a replica first seen later
    /// starts there), and each replica's last sequence number read.
    read: Option<(i64, HashMap<String, i64>)>,
}

const COLUMNS: &str = "ev.replica, ev.seq, ev.route, ev.segment, ev.second, ev.matches,
    ev.mismatches, ev.candidate_errors, ev.safety_events, ev.safety_only, ev.latencies";

impl Cursor {
    /// The rows committed since the last read, each replica's in its order.
    /// The first read (a takeover) starts at the rows since each segment's
    /// latest event, at most `fresh_s` seconds old.
    pub async fn read(
        &mut self,
        client: &impl GenericClient,
        fresh_s: i64,
    ) -> Result<Vec<Row>, Error> {
        let rows = match &self.read {
            None => {
                let oldest = super::unix_seconds() - fresh_s;
                let rows = client
                    .query(
                        &format!(
                            "SELECT {COLUMNS} FROM understudy.evidence ev
                             WHERE ev.second >= $1 AND ev.second * 1000 >= COALESCE(
                                 (SELECT MAX(r.ts) FROM understudy.rollout_events r
                                  WHERE r.route = ev.route AND r.segment IN (ev.segment, '*')), 0)
                             ORDER BY ev.replica, ev.seq"
                        ),
                        &[&oldest],
                    )
                    .await?;
                self.read = Some((oldest, HashMap::new()));
                rows
            }
            Some((since, read)) => {
                let (names, seqs): (Vec<&str>, Vec<i64>) =
                    read.iter().map(|(r, s)| (r.as_str(), *s)).unzip();
                // Each replica's rows through `evidence_replica_seq`: the
                // replicas that heartbeat and those already read from.
                client
                    .query(
                        &format!(
                            "SELECT {COLUMNS} FROM
                                 (SELECT replica FROM understudy.replicas
                                  UNION SELECT unnest($1::text[])) AS rs
                             LEFT JOIN unnest($1::text[], $2::bigint[]) AS c(replica, seq)
                                 ON c.replica = rs.replica
                             CROSS JOIN LATERAL (
                                 SELECT * FROM understudy.evidence e
                                 WHERE e.replica = rs.replica
                                   AND e.seq > COALESCE(c.seq, -1)
                                   AND (c.seq IS NOT NULL OR e.second >= $4)
                                 ORDER BY e.seq LIMIT $3) AS ev
                             ORDER BY ev.replica, ev.seq"
                        ),
                        &[&names, &seqs, &READ_LIMIT, since],
                    )
                    .await?
            }
        };
        let Some((_, read)) = self.read.as_mut() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let replica: String = r.get(0);
            let seq: i64 = r.get(1);
            let last = read.entry(replica).or_insert(seq);
            *last = (*last).max(seq);
            let latencies: Option<serde_json::Value> = r.get(10);
            let n = |i: usize| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0);
            out.push(Row {
                route: r.get(2),
                segment: r.get(3),
                second: r.get(4),
                slice: 0,
                seq,
                matches: n(5),
                mismatches: n(6),
                candidate_errors: n(7),
                safety_events: n(8),
                safety_only: n(9),
                latencies: latencies
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default(),
            });
        }
        Ok(out)
    }
}
