//! `understudy export --format jsonl`: one JSON object per exchange, with the
//! request, both answers, the verdict and the diff, for building offline
//! evaluation sets. Bodies are JSON values when they parse, otherwise text.
//!
//! Streams row by row: memory stays flat whatever the size of the log.

use crate::store::read::{self, ExchangeRow, Filter};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no database file given")]
    NoDatabase,
    #[error(
        "unknown verdict {0:?} (expected match, mismatch, candidate_error, incumbent_error or skipped)"
    )]
    Verdict(String),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Writes every exchange the filter selects as one JSON line; returns how many.
pub fn jsonl(dbs: &[PathBuf], filter: &Filter, out: &mut dyn Write) -> Result<u64, Error> {
    if dbs.is_empty() {
        return Err(Error::NoDatabase);
    }
    if let Some(v) = &filter.verdict
        && crate::compare::Verdict::parse(v).is_none()
    {
        return Err(Error::Verdict(v.clone()));
    }
    Ok(read::each_exchange(dbs, filter, |row| {
        serde_json::to_writer(&mut *out, &object(&row))?;
        writeln!(out)
    })?)
}

/// `export --approvals`: every decided approval (approved, rejected,
/// expired) as one JSON line, with the request and both answers: a
/// training signal of what people accepted. Returns how many.
pub fn approvals(
    dbs: &[PathBuf],
    filter: &crate::store::approvals::Filter,
    out: &mut dyn Write,
) -> Result<u64, Error> {
    use crate::store::approvals;
    if dbs.is_empty() {
        return Err(Error::NoDatabase);
    }
    let mut n = 0;
    for path in dbs {
        let conn = read::open_ro(path)?;
        let has = conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'approvals'",
                [],
                |_| Ok(()),
            )
            .is_ok();
        if !has {
            continue;
        }
        approvals::each(&conn, filter, |a| -> Result<(), Error> {
            if a.status != approvals::PENDING {
                serde_json::to_writer(&mut *out, &a.to_json()).map_err(std::io::Error::from)?;
                writeln!(out)?;
                n += 1;
            }
            Ok(())
        })?;
    }
    Ok(n)
}

/// The exported shape of one exchange.
pub fn object(r: &ExchangeRow) -> Value {
    let headers = r
        .request_headers
        .as_deref()
        .and_then(|h| serde_json::from_str::<Value>(h).ok())
        .unwrap_or(Value::Null);
    let diff = serde_json::from_str::<Value>(&r.diff).unwrap_or_else(|_| json!([]));
    json!({
        "id": r.id,
        "ts": r.ts_ms,
        "route": r.route,
        "segment": r.segment,
        "served_by": r.served_by,
        "request": {
            "method": r.method,
            "path": r.path,
            "query": r.query,
            "headers": headers,
            "body": body(r.request_body.as_deref()),
        },
        "incumbent": {
            "status": r.incumbent_status,
            "ms": r.incumbent_ms,
            "body": body(r.incumbent_body.as_deref()),
            "error": r.incumbent_error,
        },
        "candidate": {
            "status": r.candidate_status,
            "ms": r.candidate_ms,
            "body": body(r.candidate_body.as_deref()),
            "error": r.candidate_error,
        },
        "verdict": r.verdict,
        "diff": diff,
        "score": r.score,
        "skip_reason": r.skip_reason,
        "safety": r.safety,
        "fallback": r.fallback,
        "decided_by": r.decided_by,
        "llm": {
            "incumbent": figures(&r.incumbent_llm),
            "candidate": figures(&r.candidate_llm),
        },
    })
}

/// One side's time to first token, tokens and cost (docs/src/guide/llm.md); null when unknown.
fn figures(f: &crate::reading::Figures) -> Value {
    json!({
        "ttft_ms": f.ttft_ms,
        "tokens_in": f.tokens_in,
        "tokens_out": f.tokens_out,
        "cost": f.cost,
    })
}

fn body(b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => serde_json::from_slice(b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned())),
    }
}
