//! Columns added to existing tables after the numbered migrations, each
//! applied when it is missing (`ALTER TABLE ... ADD COLUMN`), and the indexes
//! that read them.
//!
//! Unlike a numbered step, an entry here does not depend on its position:
//! work that adds columns on separate branches composes without renumbering,
//! and a file that already has a column is left as it is.

use rusqlite::Connection;

/// `(table, column, declaration)`.
pub const COLUMNS: &[(&str, &str, &str)] = &[
    // docs/src/guide/llm.md: AI answers. NULL when unknown (not decoded, no usage, no price).
    ("exchanges", "incumbent_ttft_ms", "REAL"),
    ("exchanges", "candidate_ttft_ms", "REAL"),
    ("exchanges", "incumbent_tokens_in", "INTEGER"),
    ("exchanges", "incumbent_tokens_out", "INTEGER"),
    ("exchanges", "candidate_tokens_in", "INTEGER"),
    ("exchanges", "candidate_tokens_out", "INTEGER"),
    ("exchanges", "incumbent_cost", "REAL"),
    ("exchanges", "candidate_cost", "REAL"),
    // The llm text stage that decided the verdict (exact, similarity, embedding, judge).
    ("exchanges", "decided_by", "TEXT"),
];

/// Covering for the report's AI figures, and only over the rows that have
/// them: the report's pass over other routes stays as it was.
const INDEXES: &str = "CREATE INDEX IF NOT EXISTS exchanges_llm
    ON exchanges (route, segment, ts, incumbent_ttft_ms, candidate_ttft_ms,
                  incumbent_tokens_in, incumbent_tokens_out, candidate_tokens_in,
                  candidate_tokens_out, incumbent_cost, candidate_cost, decided_by, verdict)
    WHERE incumbent_ttft_ms IS NOT NULL OR candidate_ttft_ms IS NOT NULL
       OR incumbent_tokens_in IS NOT NULL OR candidate_tokens_in IS NOT NULL
       OR decided_by IS NOT NULL;";

/// The `WHERE` of [`INDEXES`], for queries that want SQLite to use it.
pub const LLM_ROWS: &str = "(incumbent_ttft_ms IS NOT NULL OR candidate_ttft_ms IS NOT NULL
       OR incumbent_tokens_in IS NOT NULL OR candidate_tokens_in IS NOT NULL
       OR decided_by IS NOT NULL)";

/// Adds every missing column, then the indexes, in one transaction.
pub fn ensure(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    for (table, column, decl) in COLUMNS {
        if !has_column(&tx, table, column)? {
            tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl};"))?;
        }
    }
    tx.execute_batch(INDEXES)?;
    tx.commit()
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
    for name in names {
        if name? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_added_once_and_kept() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        for (table, column, _) in COLUMNS {
            assert!(has_column(&conn, table, column).unwrap(), "{column}");
        }
        // Running again (a restart) changes nothing.
        crate::store::schema::migrate(&mut conn).unwrap();
        ensure(&mut conn).unwrap();
    }
}
