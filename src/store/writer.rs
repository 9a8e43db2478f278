//! The writer thread: batches rows into one transaction each, off the hot path.
//!
//! It owns the only write connection to the file: exchange rows, skip
//! counts, and the rollout events and feedback that arrive as messages with a
//! reply (each commits the pending batch first, so a rating can name an
//! exchange that was still queued). A batch is committed when
//! it reaches `store.batch_size` rows or is `store.flush_interval` old,
//! whichever comes first. A failed batch is logged and counted as dropped; it
//! never panics. Retention runs at start and every ten minutes, in small
//! chunks so the write lock is never held for long.

use super::blob::Body;
use super::now_ms;
use super::skips::{SkipCount, Tally};
use super::{Msg, Record};
use crate::metrics::Metrics;
use bytes::Bytes;
use rusqlite::{Connection, params};
use std::borrow::Borrow;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// How often expired exchanges are deleted.
pub const RETENTION_EVERY: Duration = Duration::from_secs(600);
/// Once a batch holds this many rows, the queue is polled rather than waited on...
const POLL_AFTER: usize = 64;
/// ...this often.
const POLL: Duration = Duration::from_millis(5);
/// Rows deleted per retention statement; each is its own short transaction.
const PURGE_CHUNK: i64 = 2000;

/// The columns of a row, in the order [`bind_row`] binds them.
const COLUMNS: &str = "id, ts, route, segment, served_by, method, path, query, request_headers,
    request_body, verdict, diff, score, skip_reason, incumbent_status,
    incumbent_ms, incumbent_body, incumbent_error, candidate_status,
    candidate_ms, candidate_body, candidate_error, fallback, safety,
    incumbent_ttft_ms, candidate_ttft_ms, incumbent_tokens_in, incumbent_tokens_out,
    candidate_tokens_in, candidate_tokens_out, incumbent_cost, candidate_cost, decided_by, rowid";
/// How many values a row binds.
const ROW_VALUES: usize = 34;
/// Rows per `INSERT` in a batch: one statement writes this many, so SQLite
/// opens the table's and indexes' cursors once for them, and an append-only
/// index (the id, the time) is extended from where the last row left its
/// cursor instead of searched from its root.
const ROWS_PER_INSERT: usize = 16;

/// `INSERT INTO exchanges (...) VALUES (?, ...)` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let one = format!("({})", vec!["?"; ROW_VALUES].join(", "));
    format!(
        "INSERT INTO exchanges ({COLUMNS}) VALUES {}",
        vec![one; rows].join(", ")
    )
}
static INSERT_ONE: LazyLock<String> = LazyLock::new(|| insert_sql(1));
static INSERT_MANY: LazyLock<String> = LazyLock::new(|| insert_sql(ROWS_PER_INSERT));

/// The rowid after every one `exchanges` ever had (rowids only grow: the
/// fleet ships rows past a rowid), and its record.
const NEXT_ROWID: &str = "SELECT max(COALESCE((SELECT max(rowid) FROM exchanges), 0),
    COALESCE((SELECT value FROM meta WHERE key = 'rowid_high'), 0)) + 1";
const ROWID_HIGH: &str = "UPDATE meta SET value = ?1 WHERE key = 'rowid_high'";

const NOISE: &str = "INSERT INTO noise (route, pointer, first_ts, last_ts, hits)
    VALUES (?1, ?2, ?3, ?3, 1)
    ON CONFLICT (route, pointer) DO UPDATE SET last_ts = excluded.last_ts, hits = hits + 1";

const SKIPS: &str = "INSERT INTO mirror_skips (route, segment, minute, reason, count)
    VALUES (?1, ?2, ?3, ?4, ?5)
    ON CONFLICT (route, segment, minute, reason) DO UPDATE SET count = count + excluded.count";

const PURGE: &str = "DELETE FROM exchanges WHERE rowid IN
    (SELECT rowid FROM exchanges WHERE ts < ?1 LIMIT ?2)";

const PURGE_SKIPS: &str = "DELETE FROM mirror_skips WHERE minute < ?1";
const PURGE_FEEDBACK: &str = "DELETE FROM feedback WHERE ts < ?1";
const PURGE_NOISE: &str = "DELETE FROM noise WHERE last_ts < ?1";
/// Deliveries done (delivered or given up) before the cutoff.
const PURGE_DELIVERIES: &str = "DELETE FROM deliveries
    WHERE created_ts < ?1 AND (delivered_ts IS NOT NULL OR expires_ts < ?1)";

/// Decided and expired approvals older than retention (by creation time; a
/// pending one waits for its decision or its `approval_ttl`). Through
/// `approvals_status_ts`.
const PURGE_APPROVALS: &str = "DELETE FROM approvals WHERE id IN
    (SELECT id FROM approvals
     WHERE status IN ('approved', 'rejected', 'expired') AND ts < ?1 LIMIT ?2)";

/// Over `store.max_bytes`, the oldest exchanges go this many at a time, one
/// short transaction each, between batches.
const SHRINK_CHUNK: i64 = 500;
const SHRINK: &str = "DELETE FROM exchanges WHERE rowid IN
    (SELECT rowid FROM exchanges ORDER BY ts LIMIT ?1)";
/// Once no exchange is left, the oldest decided approvals go, this many at a
/// time; then, as a last resort, the oldest pending ones (counted:
/// `approvals_evicted_total`).
const SHRINK_APPROVALS_CHUNK: i64 = 50;
const SHRINK_DECIDED: &str = "DELETE FROM approvals WHERE id IN
    (SELECT id FROM approvals WHERE status != 'pending' ORDER BY id LIMIT ?1)";
const SHRINK_PENDING: &str = "DELETE FROM approvals WHERE id IN
    (SELECT id FROM approvals WHERE status = 'pending' ORDER BY id LIMIT ?1)";
/// Free pages handed back to the file system per `incremental_vacuum`, so
/// one call never holds the write lock for long (64 MiB of 16 KiB pages).
const VACUUM_PAGES: i64 = 4096;
/// The WAL's bound under a size cap: a quarter of it, at most 64 MiB.
pub fn wal_limit(max_bytes: u64) -> u64 {
    (max_bytes / 4).min(64 * 1024 * 1024)
}

/// How often the size is looked at (and the `store_bytes` gauge set); under
/// `store.max_bytes`, also each time this share of the cap has been written.
const SIZE_EVERY: Duration = Duration::from_secs(1);
/// Under `store.max_bytes`, a batch is committed (and the size looked at)
/// once its bodies pass this share of the cap: one burst cannot write more
/// than a fraction of the budget before the oldest rows make room.
fn batch_bytes(max_bytes: u64) -> u64 {
    (max_bytes / 8).max(64 * 1024)
}

/// Inserts `rows` and adds `skips` to `mirror_skips` in one transaction,
/// through cached prepared statements. This is the writer's whole write path;
/// the benchmark calls it directly.
pub fn insert_batch<R: Borrow<Record>>(
    conn: &mut Connection,
    rows: &[R],
    skips: &[SkipCount],
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    if !rows.is_empty() {
        // Looked up once per batch, not once per row.
        let mut rowid: i64 = tx.prepare_cached(NEXT_ROWID)?.query_row([], |r| r.get(0))?;
        let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
        if chunks.len() > 0 {
            let mut stmt = tx.prepare_cached(&INSERT_MANY)?;
            for chunk in &mut chunks {
                for (i, rec) in chunk.iter().enumerate() {
                    bind_row(&mut stmt, i * ROW_VALUES, rec.borrow(), rowid + i as i64)?;
                }
                stmt.raw_execute()?;
                for rec in chunk {
                    row_extras(&tx, rec.borrow())?;
                }
                rowid += ROWS_PER_INSERT as i64;
            }
        }
        for rec in chunks.remainder() {
            insert_with(&tx, rec.borrow(), rowid)?;
            rowid += 1;
        }
        tx.prepare_cached(ROWID_HIGH)?.execute([rowid - 1])?;
    }
    add_skips(&tx, skips)?;
    tx.commit()
}

fn add_skips(conn: &Connection, skips: &[SkipCount]) -> rusqlite::Result<()> {
    if skips.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(SKIPS)?;
    for s in skips {
        stmt.execute(params![
            s.route,
            s.segment,
            s.minute,
            s.reason,
            s.count as i64
        ])?;
    }
    Ok(())
}

fn insert_one(conn: &Connection, r: &Record) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    let rowid: i64 = tx.prepare_cached(NEXT_ROWID)?.query_row([], |r| r.get(0))?;
    insert_with(&tx, r, rowid)?;
    tx.prepare_cached(ROWID_HIGH)?.execute([rowid])?;
    tx.commit()
}

/// Inserts one row (and what goes with it) through its own statement.
fn insert_with(conn: &Connection, r: &Record, rowid: i64) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(&INSERT_ONE)?;
    bind_row(&mut stmt, 0, r, rowid)?;
    stmt.raw_execute()?;
    row_extras(conn, r)
}

/// Binds `r`'s values (in [`COLUMNS`]' order) after the first `at` parameters.
fn bind_row(
    stmt: &mut rusqlite::Statement<'_>,
    at: usize,
    r: &Record,
    rowid: i64,
) -> rusqlite::Result<()> {
    let tokens = |n: Option<u64>| n.map(|n| n as i64);
    let values: [&dyn rusqlite::ToSql; ROW_VALUES] = [
        &r.id,
        &r.ts_ms,
        &r.route,
        &r.segment,
        &r.served_by,
        &r.method,
        &r.path,
        &r.query,
        &r.request_headers,
        &Body(r.request_body.as_ref()),
        &r.verdict,
        &r.diff,
        &r.score,
        &r.skip_reason,
        &r.incumbent_status,
        &r.incumbent_ms,
        &Body(r.incumbent_body.as_ref()),
        &r.incumbent_error,
        &r.candidate_status,
        &r.candidate_ms,
        &Body(r.candidate_body.as_ref()),
        &r.candidate_error,
        &r.fallback,
        &r.safety,
        &r.incumbent_llm.ttft_ms,
        &r.candidate_llm.ttft_ms,
        &tokens(r.incumbent_llm.tokens_in),
        &tokens(r.incumbent_llm.tokens_out),
        &tokens(r.candidate_llm.tokens_in),
        &tokens(r.candidate_llm.tokens_out),
        &r.incumbent_llm.cost,
        &r.candidate_llm.cost,
        &r.decided_by,
        &rowid,
    ];
    for (i, value) in values.into_iter().enumerate() {
        stmt.raw_bind_parameter(at + i + 1, value)?;
    }
    Ok(())
}

/// What a row brings besides itself: its learned noise, its approval.
fn row_extras(conn: &Connection, r: &Record) -> rusqlite::Result<()> {
    for pointer in &r.noise {
        let mut stmt = conn.prepare_cached(NOISE)?;
        stmt.execute(params![r.route, pointer, r.ts_ms])?;
    }
    if let Some(a) = &r.approval {
        super::approvals::insert(conn, r, a)?;
    }
    Ok(())
}

/// An error one row can cause (a constraint, a value SQLite refuses), as
/// opposed to one the whole store has (locked, full, read-only, I/O).
fn row_error(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::ConstraintViolation | C::TooBig | C::TypeMismatch) => true,
        Some(_) => false,
        None => true,
    }
}

/// What a row's bodies weigh (what a batch is bounded by under `store.max_bytes`).
fn body_bytes(r: &Record) -> u64 {
    let len = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
    let approval = r.approval.as_ref().map_or(0, |a| {
        len(&a.request_body) + len(&a.incumbent_body) + len(&a.candidate_body)
    });
    len(&r.request_body) + len(&r.incumbent_body) + len(&r.candidate_body) + approval
}

/// The database's size.
#[derive(Debug, Clone, Copy)]
struct Size {
    /// The database file's length.
    file: u64,
    /// The WAL's length.
    wal: u64,
    /// Bytes of the pages in use (the file less its free pages).
    used: u64,
}

impl Size {
    fn on_disk(self) -> u64 {
        self.file.saturating_add(self.wal)
    }
}

/// The state of the writer thread.
pub(crate) struct Writer {
    conn: Connection,
    path: PathBuf,
    batch_size: usize,
    flush_interval: Duration,
    /// Zero keeps exchanges forever.
    retention: Duration,
    /// Skipped mirrors counted since the last commit (see [`super::skips`]).
    skips: Arc<Tally>,
    metrics: Metrics,
    health: Arc<super::Health>,
    /// `store.max_bytes`: the database file plus its WAL, as on disk.
    max_bytes: Option<u64>,
    /// Body bytes committed since the size was last looked at.
    written: u64,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        cfg: &crate::config::Store,
        skips: Arc<Tally>,
        metrics: Metrics,
        health: Arc<super::Health>,
    ) -> Writer {
        if let Some(max) = cfg.max_bytes {
            // The WAL is cut back to this after each checkpoint, and
            // checkpointed once it holds about as much.
            let limit = i64::try_from(wal_limit(max)).unwrap_or(i64::MAX);
            let page = conn
                .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
                .unwrap_or(4096)
                .max(512);
            let bounded = conn
                .pragma_update(None, "journal_size_limit", limit)
                .and_then(|()| {
                    conn.pragma_update(None, "wal_autocheckpoint", (limit / page).max(8))
                });
            if let Err(error) = bounded {
                tracing::warn!(%error, "Could not bound the WAL");
            }
        }
        Writer {
            conn,
            skips,
            health,
            max_bytes: cfg.max_bytes,
            written: 0,
            path: cfg.path.clone(),
            batch_size: cfg.batch_size.max(1),
            flush_interval: cfg.flush_interval,
            retention: cfg.retention,
            metrics,
        }
    }

    /// Runs until every sender is gone, then commits what is left and returns.
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        let mut batch: Vec<Record> = Vec::with_capacity(self.batch_size);
        // Under `store.max_bytes`, a batch is also bounded by its bodies.
        let mut batch_body_bytes = 0u64;
        let mut batch_started = Instant::now();
        let mut next_purge = Instant::now();
        let mut purging = false;
        let mut next_size = Instant::now();
        let mut shrinking = false;
        loop {
            let now = Instant::now();
            if purging || now >= next_purge {
                purging = self.purge_chunk();
                if !purging {
                    next_purge = Instant::now() + RETENTION_EVERY;
                }
            }
            let written_enough = self
                .max_bytes
                .is_some_and(|max| self.written >= batch_bytes(max));
            if shrinking || now >= next_size || written_enough {
                self.written = 0;
                shrinking = self.shrink_chunk();
                next_size = Instant::now() + SIZE_EVERY;
            }
            let purging = purging || shrinking;
            let wait = if purging {
                // More to delete: only look at the queue between chunks.
                Duration::ZERO
            } else if batch.is_empty() {
                // Skips may be waiting in the tally: commit them this often.
                next_purge
                    .saturating_duration_since(now)
                    .min(self.flush_interval)
            } else {
                (batch_started + self.flush_interval)
                    .min(next_purge)
                    .saturating_duration_since(now)
            };
            // A small batch: block until a row comes (a flush is answered at
            // once). Past `POLL_AFTER` rows the proxy is busy: poll every
            // `POLL` instead, so its senders stop paying a wake-up (a futex
            // call) per row.
            let received = if batch.len() < POLL_AFTER || purging {
                rx.recv_timeout(wait)
            } else {
                match rx.try_recv() {
                    Ok(msg) => Ok(msg),
                    Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                    Err(TryRecvError::Empty) => {
                        std::thread::sleep(wait.min(POLL));
                        Err(RecvTimeoutError::Timeout)
                    }
                }
            };
            match received {
                Ok(Msg::Row(rec)) => {
                    self.metrics.store_queue_depth.dec();
                    if batch.is_empty() {
                        batch_started = Instant::now();
                        batch_body_bytes = 0;
                    }
                    batch_body_bytes += body_bytes(&rec);
                    batch.push(*rec);
                    // The age check matters under a steady trickle, when the
                    // queue is never empty long enough for a timeout.
                    if batch.len() >= self.batch_size
                        || batch_started.elapsed() >= self.flush_interval
                        || self
                            .max_bytes
                            .is_some_and(|max| batch_body_bytes >= batch_bytes(max))
                    {
                        self.commit(&mut batch);
                    }
                }
                Ok(Msg::Flush(done)) => {
                    self.commit(&mut batch);
                    // The caller may have stopped waiting; nothing to do then.
                    done.send(()).ok();
                }
                Ok(Msg::Events(events, reply)) => {
                    self.commit(&mut batch);
                    reply
                        .send(super::events::append_all(&self.conn, &events))
                        .ok();
                }
                Ok(Msg::Pushed(local, fleet, reply)) => {
                    self.commit(&mut batch);
                    reply
                        .send(super::events::mark_pushed(&self.conn, local, fleet))
                        .ok();
                }
                Ok(Msg::Approvals(op, reply)) => {
                    self.commit(&mut batch);
                    reply.send(super::approvals::apply(&self.conn, &op)).ok();
                }
                Ok(Msg::Deliveries(op, reply)) => {
                    self.commit(&mut batch);
                    reply.send(super::deliveries::apply(&self.conn, &op)).ok();
                }
                Ok(Msg::Feedback(feedback, reply)) => {
                    self.commit(&mut batch);
                    reply
                        .send(super::events::insert_feedback(&self.conn, &feedback))
                        .ok();
                }
                Err(RecvTimeoutError::Timeout) => {
                    // An empty batch still commits the skip tally, if any.
                    if batch.is_empty() || batch_started.elapsed() >= self.flush_interval {
                        self.commit(&mut batch);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.commit(&mut batch);
                    return;
                }
            }
        }
    }

    fn commit(&mut self, batch: &mut Vec<Record>) {
        let skips = self.skips.take();
        if batch.is_empty() && skips.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        self.written = self
            .written
            .saturating_add(batch.iter().map(body_bytes).sum::<u64>());
        match insert_batch(&mut self.conn, batch, &skips) {
            Ok(()) => {
                self.metrics.store_rows_written.inc_by(n);
                self.health.ok();
                for rec in batch.iter() {
                    self.approval_created(rec);
                }
            }
            Err(error) => {
                self.health.failed(&error);
                if !row_error(&error) {
                    // The store cannot write: the skip counts wait for the next commit.
                    self.skips.restore(skips);
                } else if let Err(e) = add_skips(&self.conn, &skips) {
                    tracing::error!(path = %self.path.display(), error = %e, "Failed to count skipped mirrors");
                }
                // One bad row (a duplicate id, say) must not cost the others:
                // retry each row on its own and drop only those that fail. A
                // store that cannot write at all (locked, full, read-only)
                // would fail each row again, a busy timeout apiece: the batch
                // is dropped whole instead.
                let (written, failed, last) = if row_error(&error) {
                    self.one_by_one(batch)
                } else {
                    (0, n, None)
                };
                self.metrics.store_rows_written.inc_by(written);
                if failed == 0 {
                    self.health.ok();
                } else {
                    self.metrics.store_rows_dropped.inc_by(failed);
                    tracing::error!(
                        path = %self.path.display(),
                        rows = failed,
                        %error,
                        last_error = ?last,
                        "Failed to write exchanges; rows dropped"
                    );
                }
            }
        }
        batch.clear();
    }

    /// Measures the database as it is on disk (the file plus its WAL), sets
    /// the `store_bytes` gauge, and when that is over `store.max_bytes`
    /// hands free pages back to the file system and, when the rows
    /// themselves are over their share, deletes one chunk of the oldest;
    /// true when it may still be over. The WAL's share is its bound,
    /// `journal_size_limit` (a quarter of the cap, at most 64 MiB): the WAL
    /// only shrinks at checkpoints, so rows are held to the rest.
    fn shrink_chunk(&mut self) -> bool {
        let Some(size) = self.size() else {
            return false;
        };
        self.metrics
            .store_bytes
            .set(i64::try_from(size.on_disk()).unwrap_or(i64::MAX));
        let Some(max) = self.max_bytes else {
            return false;
        };
        if size.on_disk() <= max {
            return false;
        }
        let target = max.saturating_sub(wal_limit(max));
        if size.used <= target {
            // Over by free pages or by the WAL: give them back, nothing to delete.
            self.reclaim();
            return false;
        }
        let deleted = match self.delete_oldest(size, target) {
            Ok(n) => n,
            Err(error) => {
                tracing::error!(path = %self.path.display(), %error, "Deleting the oldest rows failed");
                0
            }
        };
        self.reclaim();
        deleted > 0
    }

    /// One chunk of the oldest exchanges (as many as the excess takes at the
    /// average row size); with none left, the oldest decided approvals; with
    /// none of those, the oldest pending ones. How many rows went.
    fn delete_oldest(&self, size: Size, target: u64) -> rusqlite::Result<usize> {
        // Rowids grow with time, so their span counts the rows cheaply.
        let (lo, hi): (Option<i64>, Option<i64>) =
            self.conn
                .query_row("SELECT min(rowid), max(rowid) FROM exchanges", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        if let (Some(lo), Some(hi)) = (lo, hi) {
            let rows = u64::try_from(hi - lo + 1).unwrap_or(1).max(1);
            let per_row = (size.used / rows).max(1);
            let chunk = ((size.used - target).div_ceil(per_row) as i64).clamp(1, SHRINK_CHUNK);
            return self.conn.prepare_cached(SHRINK)?.execute(params![chunk]);
        }
        let decided = self
            .conn
            .prepare_cached(SHRINK_DECIDED)?
            .execute(params![SHRINK_APPROVALS_CHUNK])?;
        if decided > 0 {
            return Ok(decided);
        }
        let pending = self
            .conn
            .prepare_cached(SHRINK_PENDING)?
            .execute(params![SHRINK_APPROVALS_CHUNK])?;
        if pending > 0 {
            self.metrics.approvals_evicted.inc_by(pending as u64);
            tracing::warn!(
                path = %self.path.display(),
                approvals = pending,
                "store.max_bytes: pending approvals deleted before anyone decided them"
            );
        }
        Ok(pending)
    }

    /// Hands free pages back to the file system (`auto_vacuum =
    /// INCREMENTAL`), at most [`VACUUM_PAGES`] a call, and checkpoints the WAL
    /// so that the file is cut to its new size (a checkpoint never waits on a
    /// reader; one that cannot finish is completed by a later one).
    fn reclaim(&self) {
        let vacuumed = self.conn.execute_batch(&format!(
            "PRAGMA incremental_vacuum({VACUUM_PAGES}); PRAGMA wal_checkpoint(PASSIVE);"
        ));
        if let Err(error) = vacuumed {
            tracing::warn!(path = %self.path.display(), %error, "Reclaiming free pages failed");
        }
    }

    /// The database file and its WAL as on disk, and the bytes its rows use.
    fn size(&self) -> Option<Size> {
        let pragma = |name: &str| -> Option<u64> {
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
                .ok()
                .and_then(|v| u64::try_from(v).ok())
        };
        let page = pragma("page_size")?;
        let used = pragma("page_count")?.saturating_sub(pragma("freelist_count")?) * page;
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let wal = std::fs::metadata(&wal).map_or(0, |m| m.len());
        let file = std::fs::metadata(&self.path).map_or(used, |m| m.len());
        Some(Size { file, wal, used })
    }

    /// Counts the approval a committed row carried.
    fn approval_created(&self, rec: &Record) {
        if let Some(a) = &rec.approval {
            self.metrics
                .record_approval(&rec.route, &a.label, "created");
        }
    }

    /// Inserts each row on its own: (written, failed, last error).
    fn one_by_one(&self, batch: &[Record]) -> (u64, u64, Option<rusqlite::Error>) {
        let (mut written, mut failed, mut last) = (0, 0, None);
        for rec in batch {
            match insert_one(&self.conn, rec) {
                Ok(()) => {
                    written += 1;
                    self.approval_created(rec);
                }
                Err(e) => {
                    failed += 1;
                    last = Some(e);
                }
            }
        }
        (written, failed, last)
    }

    /// Deletes one chunk of expired exchanges; true when there may be more.
    fn purge_chunk(&mut self) -> bool {
        if self.retention.is_zero() {
            return false;
        }
        let keep = i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(keep);
        for (sql, what) in [
            (PURGE_SKIPS, "skip counts"),
            (PURGE_FEEDBACK, "feedback"),
            (PURGE_NOISE, "noise pointers"),
            (PURGE_DELIVERIES, "deliveries"),
        ] {
            if let Err(error) = self.conn.execute(sql, params![cutoff]) {
                tracing::error!(path = %self.path.display(), %error, "Retention delete of {what} failed");
            }
        }
        let mut more = false;
        for (sql, what) in [(PURGE, "exchanges"), (PURGE_APPROVALS, "approvals")] {
            let deleted = self
                .conn
                .prepare_cached(sql)
                .and_then(|mut stmt| stmt.execute(params![cutoff, PURGE_CHUNK]));
            match deleted {
                Ok(n) => more |= n as i64 >= PURGE_CHUNK,
                Err(error) => {
                    tracing::error!(path = %self.path.display(), %error, "Retention delete of {what} failed");
                }
            }
        }
        self.reclaim();
        more
    }
}
