//! The pass over the exchange log that builds each route's coded table:
//! one read-only query per file over the decided comparisons (`match` and
//! `mismatch`), each row turned into attribute codes as it streams by.
//!
//! Never writes. Columns a file does not have yet (an older schema) read as
//! NULL. Rows are borrowed from SQLite while they are coded: no per-row
//! allocation beyond the codes themselves.

use super::attributes::{Extractor, Row};
use super::table::{Builder, Table};
use crate::config::Route;
use crate::store::read::open_ro;
use crate::store::{Error, Result};
use rusqlite::params;
use std::collections::HashMap;
use std::path::PathBuf;

/// One route's table, and where each of its rows came from (file index
/// into the paths given, rowid) when asked for.
pub struct RouteTable {
    pub route: String,
    pub table: Table,
    pub origin: Vec<(u32, i64)>,
}

struct Pending {
    builder: Builder,
    extractor: Extractor,
    origin: Vec<(u32, i64)>,
}

/// Reads the decided comparisons of `paths` (of one route, or all), at or
/// after `since_ms`; `routes` gives each route's attributes (a route not in
/// it gets the defaults; a route with `slices.enabled = false` is skipped).
/// With `keep_origin` (to select a slice's exchanges) every exchange is
/// read, whatever its verdict, with its file and rowid.
pub fn tables(
    paths: &[PathBuf],
    routes: &[Route],
    route: Option<&str>,
    since_ms: Option<i64>,
    keep_origin: bool,
) -> Result<Vec<RouteTable>> {
    let config = |name: &str| routes.iter().find(|r| r.name == name);
    let mut pending: HashMap<String, Option<Pending>> = HashMap::new();
    // Bodies are read only when some route's attributes need them: a
    // column left out of the SELECT is never loaded from its pages.
    let needs = |f: fn(&Extractor) -> bool| {
        let chosen: Vec<&Route> = routes
            .iter()
            .filter(|r| route.is_none_or(|n| n == r.name) && r.slices.enabled)
            .collect();
        let unknown = route.is_none_or(|n| config(n).is_none());
        chosen
            .into_iter()
            .map(|r| f(&Extractor::new(Some(r), &mut Builder::default())))
            .chain(unknown.then(|| f(&Extractor::new(None, &mut Builder::default()))))
            .any(|x| x)
    };
    let body = if needs(Extractor::needs_body) {
        "request_body"
    } else {
        "NULL"
    };
    let answer = if needs(Extractor::needs_answer) {
        "incumbent_body"
    } else {
        "NULL"
    };
    for (file, path) in paths.iter().enumerate() {
        let conn = open_ro(path)?;
        let ai = crate::store::read::ai::has_column(&conn, "exchanges", "incumbent_tokens_in")
            .map_err(Error::sqlite(path))?;
        let sql = format!(
            "SELECT route, segment, verdict, method, path, query, request_headers, {body},
                    {}, {answer}, rowid
             FROM exchanges
             WHERE ts >= ?1 AND (?2 IS NULL OR route = ?2) {}",
            if ai { "incumbent_tokens_in" } else { "NULL" },
            if keep_origin {
                ""
            } else {
                "AND verdict IN ('match', 'mismatch')"
            }
        );
        let mut stmt = conn.prepare(&sql).map_err(Error::sqlite(path))?;
        let mut rows = stmt
            .query(params![since_ms.unwrap_or(i64::MIN), route])
            .map_err(Error::sqlite(path))?;
        while let Some(r) = rows.next().map_err(Error::sqlite(path))? {
            let mut one = || -> rusqlite::Result<()> {
                let name = r.get_ref(0)?.as_str()?;
                let state = match pending.get_mut(name) {
                    Some(s) => s,
                    None => {
                        let cfg = config(name);
                        let state = cfg.is_none_or(|c| c.slices.enabled).then(|| {
                            let mut builder = Builder::default();
                            let extractor = Extractor::new(cfg, &mut builder);
                            Pending {
                                builder,
                                extractor,
                                origin: Vec::new(),
                            }
                        });
                        pending.entry(name.to_string()).or_insert(state)
                    }
                };
                let Some(p) = state else { return Ok(()) };
                let text = |i: usize| -> rusqlite::Result<Option<&str>> {
                    Ok(r.get_ref(i)?.as_str_or_null()?)
                };
                let bytes = |i: usize| -> rusqlite::Result<Option<&[u8]>> {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                            Some(b)
                        }
                        _ => None,
                    })
                };
                let row = Row {
                    segment: text(1)?.unwrap_or_default(),
                    method: text(3)?.unwrap_or_default(),
                    path: text(4)?.unwrap_or_default(),
                    query: text(5)?,
                    headers: text(6)?,
                    body: if p.extractor.needs_body() {
                        bytes(7)?
                    } else {
                        None
                    },
                    tokens_in: r.get_ref(8)?.as_i64_or_null()?,
                    answer: if p.extractor.needs_answer() {
                        bytes(9)?
                    } else {
                        None
                    },
                };
                p.extractor.extract(&mut p.builder, &row);
                p.builder.end_row(r.get_ref(2)?.as_bytes()? == b"mismatch");
                if keep_origin {
                    p.origin.push((file as u32, r.get(10)?));
                }
                Ok(())
            };
            one().map_err(Error::sqlite(path))?;
        }
    }
    let mut out: Vec<RouteTable> = pending
        .into_iter()
        .filter_map(|(route, p)| {
            let p = p?;
            let max_values = config(&route).map_or(50, |c| c.slices.max_values);
            Some(RouteTable {
                table: p.builder.finish(max_values),
                route,
                origin: p.origin,
            })
        })
        .collect();
    out.sort_by(|a, b| a.route.cmp(&b.route));
    Ok(out)
}
