//! The fleet's tables in PostgreSQL (schema `understudy`) and their
//! migrations, applied at start under an advisory lock so that replicas
//! starting together migrate once. Versioned in `understudy.migrations`;
//! a released step is never edited.

use tokio_postgres::Client;

/// The advisory lock key of migrations (any constant unique to Understudy).
const MIGRATION_LOCK: i64 = 0x756e_6465_7273_7475; // "understu"
/// The advisory lock the evaluator holds.
pub const EVALUATOR_LOCK: i64 = 0x756e_6465_7276_616c; // "undereval"-ish

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: rollout state, evidence, replicas, shipped rows.
    "CREATE TABLE understudy.rollout_events (
        route TEXT NOT NULL,
        version BIGINT NOT NULL,          -- per route: 1, 2, 3, ...
        ts BIGINT NOT NULL,               -- unix ms
        segment TEXT NOT NULL,
        from_weight DOUBLE PRECISION,
        to_weight DOUBLE PRECISION,
        actor TEXT NOT NULL,              -- cli | api | config | guard
        reason TEXT NOT NULL DEFAULT '',
        mirror TEXT,                      -- kill switch: 'on' | 'off'
        forced BOOLEAN NOT NULL DEFAULT false,
        gates TEXT,
        replica TEXT NOT NULL,            -- who wrote it
        from_stage TEXT,                  -- a stage change (docs/src/concepts/stages.md)
        to_stage TEXT,
        PRIMARY KEY (route, version)      -- of two racing changes, one wins
    );
    CREATE FUNCTION understudy.append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'understudy.rollout_events is append-only'; END $$;
    CREATE TRIGGER rollout_events_append_only BEFORE UPDATE OR DELETE ON understudy.rollout_events
        FOR EACH ROW EXECUTE FUNCTION understudy.append_only();
    CREATE TRIGGER rollout_events_no_truncate BEFORE TRUNCATE ON understudy.rollout_events
        FOR EACH STATEMENT EXECUTE FUNCTION understudy.append_only();
    CREATE FUNCTION understudy.announce_event() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('understudy_rollout', NEW.route || ' ' || NEW.version); RETURN NEW; END $$;
    CREATE TRIGGER rollout_events_announce AFTER INSERT ON understudy.rollout_events
        FOR EACH ROW EXECUTE FUNCTION understudy.announce_event();

    CREATE TABLE understudy.evidence (
        id BIGSERIAL PRIMARY KEY,         -- arrival order: the evaluator's cursor
        replica TEXT NOT NULL,
        route TEXT NOT NULL,
        segment TEXT NOT NULL,            -- the metric label
        second BIGINT NOT NULL,           -- unix seconds
        slice SMALLINT NOT NULL DEFAULT 0, -- fifth of the second (200 ms slices)
        matches BIGINT NOT NULL,
        mismatches BIGINT NOT NULL,
        candidate_errors BIGINT NOT NULL,
        safety_events BIGINT NOT NULL,
        safety_only BIGINT NOT NULL,      -- safety hits on exchanges not compared
        latencies JSONB,                  -- 2 % buckets of both sides' latencies
        UNIQUE (replica, route, segment, second, slice)
    );
    CREATE INDEX evidence_second ON understudy.evidence (second);

    CREATE TABLE understudy.replicas (
        replica TEXT PRIMARY KEY,
        started_ms BIGINT NOT NULL,
        seen_ms BIGINT NOT NULL,
        evaluator BOOLEAN NOT NULL DEFAULT false
    );

    CREATE TABLE understudy.exchanges (
        id TEXT PRIMARY KEY,
        replica TEXT NOT NULL,
        ts BIGINT NOT NULL,
        route TEXT NOT NULL,
        segment TEXT NOT NULL,
        served_by TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        query TEXT,
        verdict TEXT NOT NULL,
        diff TEXT NOT NULL,
        score DOUBLE PRECISION,
        skip_reason TEXT,
        incumbent_status INTEGER,
        incumbent_ms DOUBLE PRECISION,
        incumbent_error TEXT,
        candidate_status INTEGER,
        candidate_ms DOUBLE PRECISION,
        candidate_error TEXT,
        fallback BOOLEAN NOT NULL,
        safety TEXT
    );
    CREATE INDEX exchanges_route_segment_ts ON understudy.exchanges (route, segment, ts);
    CREATE TABLE understudy.ship_cursor (
        replica TEXT PRIMARY KEY,
        local_rowid BIGINT NOT NULL        -- the last SQLite rowid shipped
    );",
    // 2: what a change means (`lower` | `raise` | `set`). A lowering is
    // "at most `to`": its `to_weight`/`to_stage` are the minimum of the
    // asked value and the fleet's at insert time, so it never raises.
    "ALTER TABLE understudy.rollout_events ADD COLUMN intent TEXT;",
    // 3: evidence read per replica past a watermark (its own sequence
    // numbers), not past a BIGSERIAL id that concurrent commits overtake.
    "ALTER TABLE understudy.evidence ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
    CREATE INDEX evidence_replica_seq ON understudy.evidence (replica, seq);",
    // 4: the ship cursor names the SQLite file it counts in (a fresh volume
    // under a reused replica name starts over); each replica prunes its own
    // shipped rows past its retention.
    "ALTER TABLE understudy.ship_cursor ADD COLUMN db_id TEXT;
    CREATE INDEX exchanges_replica_ts ON understudy.exchanges (replica, ts);",
];

/// The advisory lock a replica's session holds on its name: a second live
/// replica with the same name cannot take it and does not join the fleet.
pub fn replica_lock(name: &str) -> i64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest.as_ref()[..8]);
    i64::from_be_bytes(key)
}

/// Takes this replica's name for the session; false when another live
/// session holds it.
pub async fn claim_replica(client: &Client, name: &str) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&replica_lock(name)])
        .await?
        .get(0))
}

/// Creates the schema if needed and applies pending migrations, all under
/// one transaction-scoped advisory lock.
pub async fn migrate(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE SCHEMA IF NOT EXISTS understudy;
             CREATE TABLE IF NOT EXISTS understudy.migrations (
                 version INTEGER PRIMARY KEY,
                 applied_ms BIGINT NOT NULL
             );"
        ))
        .await?;
    let result = async {
        let row = client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM understudy.migrations",
                &[],
            )
            .await?;
        let current = usize::try_from(row.get::<_, i32>(0)).unwrap_or(0);
        for (i, step) in MIGRATIONS.iter().enumerate().skip(current) {
            client.batch_execute(step).await?;
            client
                .execute(
                    "INSERT INTO understudy.migrations (version, applied_ms) VALUES ($1, $2)",
                    &[&((i + 1) as i32), &crate::store::now_ms()],
                )
                .await?;
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => client.batch_execute("COMMIT").await,
        Err(e) => {
            client.batch_execute("ROLLBACK").await.ok();
            Err(e)
        }
    }
}
