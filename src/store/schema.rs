//! The SQLite schema, its migrations (keyed by `PRAGMA user_version`) and pragmas.
//!
//! Migrations only ever append: a released step is never edited.

use rusqlite::Connection;

/// Pragmas for every connection that writes: WAL, so readers never block the
/// writer and a crash never corrupts the file; NORMAL sync is durable in WAL.
/// 16 KiB pages (they only apply to a new file, hence first): a row with three
/// 1 KiB bodies fills most of a 4 KiB page, and the default size more than
/// halves insert throughput (see `benches/store.rs`). A 16 MiB page cache
/// (default 2 MiB) keeps the insertion points of the table and its three
/// indexes in memory: +31 % rows/s in the same benchmark. `auto_vacuum =
/// INCREMENTAL` (also only for a new file; [`migrate`] converts an old one)
/// lets the writer hand deleted rows' pages back to the file system, so
/// `store.max_bytes` bounds the file, not just its pages.
pub const PRAGMAS: &str = "PRAGMA page_size = 16384;
PRAGMA auto_vacuum = INCREMENTAL;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA busy_timeout = 5000;
PRAGMA foreign_keys = ON;
PRAGMA cache_size = -16384;
PRAGMA journal_size_limit = 67108864;";

/// Each entry moves the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the exchange log, rollout history and feedback.
    "CREATE TABLE exchanges (
        id TEXT PRIMARY KEY,
        ts INTEGER NOT NULL,             -- unix ms at the request's start
        route TEXT NOT NULL,
        segment TEXT NOT NULL,           -- raw value, 'default' when absent
        served_by TEXT NOT NULL,         -- incumbent | candidate
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        query TEXT,
        request_headers TEXT,            -- JSON object, redacted
        request_body BLOB,               -- capped, redacted
        verdict TEXT NOT NULL,           -- match | mismatch | candidate_error | incumbent_error | skipped
        diff TEXT NOT NULL DEFAULT '[]', -- JSON array of differing pointers
        score REAL,                      -- similarity (text, judge modes)
        skip_reason TEXT,                -- why the verdict is skipped
        incumbent_status INTEGER,
        incumbent_ms REAL,
        incumbent_body BLOB,
        incumbent_error TEXT,
        candidate_status INTEGER,
        candidate_ms REAL,
        candidate_body BLOB,
        candidate_error TEXT,
        fallback INTEGER NOT NULL DEFAULT 0,   -- candidate served, failed, incumbent answered
        safety TEXT                      -- the deny pattern the candidate's body hit
    );
    -- Covering for the report: it reads only this index, never the bodies.
    CREATE INDEX exchanges_route_segment_ts
        ON exchanges (route, segment, ts, verdict, incumbent_ms, candidate_ms);
    CREATE INDEX exchanges_ts ON exchanges (ts);

    CREATE TABLE rollout_events (
        version INTEGER PRIMARY KEY AUTOINCREMENT,
        ts INTEGER NOT NULL,
        route TEXT NOT NULL,
        segment TEXT NOT NULL,
        from_weight REAL,
        to_weight REAL,
        actor TEXT NOT NULL,             -- cli | api | config | guard
        reason TEXT NOT NULL DEFAULT '',
        mirror TEXT                      -- kill-switch change: 'on' | 'off'
    );
    CREATE INDEX rollout_events_route ON rollout_events (route, segment, version);
    CREATE TRIGGER rollout_events_no_update BEFORE UPDATE ON rollout_events
        BEGIN SELECT RAISE(ABORT, 'rollout_events is append-only'); END;
    CREATE TRIGGER rollout_events_no_delete BEFORE DELETE ON rollout_events
        BEGIN SELECT RAISE(ABORT, 'rollout_events is append-only'); END;

    CREATE TABLE feedback (
        exchange_id TEXT NOT NULL,
        ts INTEGER NOT NULL,
        rating INTEGER NOT NULL,
        comment TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX feedback_exchange ON feedback (exchange_id);",
    // 2: learned noise per route; the report's covering index also carries the
    // skip reason, safety hit and diff, so a report never reads a table row.
    "CREATE TABLE noise (
        route TEXT NOT NULL,
        pointer TEXT NOT NULL,           -- JSON pointer, array indices as '*'
        first_ts INTEGER NOT NULL,
        last_ts INTEGER NOT NULL,
        hits INTEGER NOT NULL DEFAULT 1, -- exchanges whose two incumbent answers differed there
        PRIMARY KEY (route, pointer)
    );
    DROP INDEX exchanges_route_segment_ts;
    CREATE INDEX exchanges_route_segment_ts
        ON exchanges (route, segment, ts, verdict, incumbent_ms, candidate_ms,
                      skip_reason, safety, diff);",
    // 3: skipped mirrors (the incumbent served, nothing to compare) are counted
    // per minute instead of a row each; the report's coverage reads both.
    "CREATE TABLE mirror_skips (
        route TEXT NOT NULL,
        segment TEXT NOT NULL,
        minute INTEGER NOT NULL,         -- unix ms at the start of the minute
        reason TEXT NOT NULL,            -- a mirror skip reason, as in the metric
        count INTEGER NOT NULL,
        PRIMARY KEY (route, segment, minute, reason)
    ) WITHOUT ROWID;",
    // 4: a raise that overrode the promotion gate is marked (docs/src/concepts/canary.md).
    "ALTER TABLE rollout_events ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;",
    // 5: the external gates' results behind a raise (docs/src/concepts/canary.md).
    "ALTER TABLE rollout_events ADD COLUMN gates TEXT;",
    // 6: staged autonomy (docs/src/concepts/stages.md): stage changes in the ledger, pending
    // approvals (self-contained: the request and both answers, redacted, so a
    // decision can be delivered and exported after the exchange row is
    // purged), and feedback that reverses an answer without a rating.
    "ALTER TABLE rollout_events ADD COLUMN from_stage TEXT;
    ALTER TABLE rollout_events ADD COLUMN to_stage TEXT;
    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        exchange_id TEXT NOT NULL UNIQUE,
        ts INTEGER NOT NULL,             -- unix ms the approval was created
        route TEXT NOT NULL,
        segment TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending', -- pending | approved | rejected | expired
        decided_by TEXT,                 -- cli | api | ttl
        reason TEXT NOT NULL DEFAULT '',
        decided_ts INTEGER,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        query TEXT,
        request_headers TEXT,            -- JSON object, redacted
        request_body BLOB,               -- redacted
        incumbent_status INTEGER,
        incumbent_body BLOB,
        candidate_status INTEGER,
        candidate_body BLOB
    );
    CREATE INDEX approvals_route_status ON approvals (route, segment, status, ts);
    CREATE INDEX approvals_status_ts ON approvals (status, ts);
    CREATE TABLE feedback_v6 (
        exchange_id TEXT NOT NULL,
        ts INTEGER NOT NULL,
        rating INTEGER,                  -- NULL: a reversal without a rating
        comment TEXT NOT NULL DEFAULT '',
        reversed INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO feedback_v6 (exchange_id, ts, rating, comment)
        SELECT exchange_id, ts, rating, comment FROM feedback;
    DROP TABLE feedback;
    ALTER TABLE feedback_v6 RENAME TO feedback;
    CREATE INDEX feedback_exchange ON feedback (exchange_id);",
    // 7: the fleet (docs/src/concepts/fleet.md). `replica` is set on events made under
    // `[fleet]`; `fleet_version` is the event's version in PostgreSQL (set
    // when it came from there, or went there first). A local lowering not yet
    // in PostgreSQL has a replica and no fleet version until `fleet_pushed`
    // says which version it became.
    "ALTER TABLE rollout_events ADD COLUMN replica TEXT;
    ALTER TABLE rollout_events ADD COLUMN fleet_version INTEGER;
    CREATE UNIQUE INDEX rollout_events_fleet ON rollout_events (route, fleet_version)
        WHERE fleet_version IS NOT NULL;
    CREATE TABLE fleet_pushed (
        local_version INTEGER PRIMARY KEY,  -- rollout_events.version here
        fleet_version INTEGER NOT NULL       -- its version in PostgreSQL
    );",
    // 8: what a change means (`lower` | `raise` | `set`): a lowering is "at
    // most `to`" and never raises wherever it is applied. Older rows are NULL
    // and read as a lowering when `to` is below `from` (or the mirror goes off).
    "ALTER TABLE rollout_events ADD COLUMN intent TEXT;",
    // 9: this file's identity and the highest rowid `exchanges` ever had, so
    // that a rowid is never given twice (SQLite reuses them once the newest
    // rows are deleted): the fleet's ship cursor is (db_id, rowid).
    "CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES
        ('db_id', lower(hex(randomblob(16)))),
        ('rowid_high', COALESCE((SELECT max(rowid) FROM exchanges), 0));",
    // 10: feedback counts once per rater: a later rating of the same exchange
    // by the same rater replaces the earlier one (the newest of earlier
    // duplicates is kept).
    "ALTER TABLE feedback ADD COLUMN rater TEXT NOT NULL DEFAULT '';
    DELETE FROM feedback WHERE rowid NOT IN
        (SELECT max(rowid) FROM feedback GROUP BY exchange_id, rater);
    CREATE UNIQUE INDEX feedback_exchange_rater ON feedback (exchange_id, rater);",
    // 11: the durable outbox of approved answers (`store::deliveries`).
    "CREATE TABLE deliveries (
        approval_id INTEGER PRIMARY KEY,  -- approvals.id
        route TEXT NOT NULL,
        body BLOB NOT NULL,              -- the JSON POSTed to deliver_url
        created_ts INTEGER NOT NULL,
        expires_ts INTEGER NOT NULL,     -- given up after this (the approval's TTL)
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        delivered_ts INTEGER,            -- accepted (2xx)
        next_ts INTEGER NOT NULL         -- the next try, not before
    );
    CREATE INDEX deliveries_due ON deliveries (next_ts) WHERE delivered_ts IS NULL;",
];

/// Applies pragmas and every pending migration, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(PRAGMAS)?;
    let current: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    super::columns::ensure(conn)?;
    incremental_vacuum(conn)
}

/// A file made before `auto_vacuum = INCREMENTAL` was set is converted once:
/// the mode is recorded and `VACUUM` rewrites the file in it (outside any
/// transaction; on a large file this takes a while, once).
fn incremental_vacuum(conn: &Connection) -> rusqlite::Result<()> {
    const INCREMENTAL: i64 = 2;
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode == INCREMENTAL || conn.path().is_none_or(str::is_empty) {
        return Ok(());
    }
    tracing::info!(
        path = ?conn.path(),
        "Converting the store to auto_vacuum = INCREMENTAL (one VACUUM)"
    );
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
}
