//! Slice discovery: the subsets of a route's comparisons, described by one
//! to three `attribute=value` conditions nobody declared (`header:x-region=apac`,
//! `json:/currency=JPY & path:1=v2`), whose agreement is significantly lower
//! than the rest of the route.
//!
//! [`read`] codes each decided comparison's attributes ([`attributes`]) into
//! integer columns ([`table`]); [`search`] counts, tests and prunes
//! ([`stats`]); [`render`] writes the result; [`watch`] runs it while the
//! proxy serves and notifies new slices. Reading never writes, and only what
//! the store kept (already redacted) is looked at.

pub mod attributes;
pub mod read;
pub mod render;
pub mod search;
pub mod stats;
pub mod table;
pub mod watch;

#[cfg(test)]
mod tests;

use crate::config::Route;
use crate::config::slices::Slices;
use search::{Cond, Found, Params};
use serde::Serialize;
use stats::Rate;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use table::Table;

/// Errors of `slices` and `report --slice`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("--slice {text:?}: {why}")]
    BadSlice { text: String, why: String },
    #[error("writing the slices: {0}")]
    Write(#[from] std::io::Error),
    #[error("encoding the slices: {0}")]
    Json(#[from] serde_json::Error),
}

/// What to look at.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dbs: Vec<PathBuf>,
    pub route: Option<String>,
    pub since_ms: Option<i64>,
    /// The config's routes (their `[routes.slices]`); others get the defaults.
    pub routes: Vec<Route>,
}

/// One condition, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    pub attribute: String,
    pub value: String,
}

/// One slice found, with the numbers to judge it by.
#[derive(Debug, Clone, Serialize)]
pub struct Slice {
    /// `attribute=value & ...`, the form `report --slice` takes.
    pub label: String,
    pub conditions: Vec<Condition>,
    pub comparisons: u64,
    pub mismatches: u64,
    /// The slice's agreement and the rest of the route's, with Wilson 95 % intervals.
    pub agreement: Rate,
    pub rest: Rate,
    /// How much lower (rest − slice), with Newcombe's 95 % interval.
    pub gap: Rate,
    /// One-sided Fisher exact p-value (the discovery threshold is the route's).
    pub p_value: f64,
    /// Config lines that would declare a condition of it as the route's
    /// segment, so it gets its own weight and guard.
    pub declare: Vec<String>,
}

/// An attribute looked at, and how many values it kept.
#[derive(Debug, Clone, Serialize)]
pub struct Attribute {
    pub name: String,
    pub values: usize,
}

/// The search over one route.
#[derive(Debug, Clone, Serialize)]
pub struct RouteSlices {
    pub route: String,
    pub comparisons: u64,
    pub mismatches: u64,
    pub agreement: Rate,
    pub attributes: Vec<Attribute>,
    pub max_conditions: usize,
    pub min_support: u64,
    pub alpha: f64,
    /// The false-discovery procedure (`benjamini-yekutieli` or `benjamini-hochberg`).
    pub fdr: &'static str,
    /// Slices in the tested family, those counted one by one, and the
    /// attribute combinations pruned whole.
    pub looked_at: u64,
    pub counted: u64,
    pub pruned: u64,
    /// Discoveries not shown because a parent or a better slice explains them.
    pub explained: u64,
    /// The p-value at or below which a slice is a discovery (0: none is).
    pub threshold: f64,
    pub slices: Vec<Slice>,
}

/// Searches every route (or one) of the logs.
pub fn find(opts: &Options) -> Result<Vec<RouteSlices>, Error> {
    let tables = read::tables(
        &opts.dbs,
        &opts.routes,
        opts.route.as_deref(),
        opts.since_ms,
        false,
    )?;
    Ok(tables
        .into_iter()
        .map(|t| {
            let cfg = settings(&opts.routes, &t.route);
            analyse(&t.route, &t.table, &cfg)
        })
        .collect())
}

fn settings(routes: &[Route], name: &str) -> Slices {
    routes
        .iter()
        .find(|r| r.name == name)
        .map_or_else(Slices::default, |r| r.slices.clone())
}

/// Runs the search over one route's table and names what it found.
pub fn analyse(route: &str, t: &Table, cfg: &Slices) -> RouteSlices {
    let params = Params::from(cfg);
    let segment = t.column(attributes::SEGMENT).map(|c| c as u16);
    let out = search::search(t, &params, |conds| {
        conds.iter().all(|c| Some(c.col) == segment)
    });
    RouteSlices {
        route: route.to_string(),
        comparisons: out.comparisons,
        mismatches: out.mismatches,
        agreement: Rate::of(out.comparisons - out.mismatches, out.comparisons),
        attributes: (t.columns.iter())
            .map(|c| Attribute {
                name: c.name.clone(),
                values: c.values.len() - 1,
            })
            .collect(),
        max_conditions: params.max_conditions,
        min_support: params.min_support,
        alpha: params.alpha,
        fdr: params.fdr.as_str(),
        looked_at: out.looked_at,
        counted: out.counted,
        pruned: out.pruned,
        explained: out.explained,
        threshold: out.threshold,
        slices: out.found.iter().map(|f| named(t, f)).collect(),
    }
}

fn named(t: &Table, f: &Found) -> Slice {
    let conditions: Vec<Condition> = (f.conds.iter())
        .map(|c| {
            let col = &t.columns[c.col as usize];
            Condition {
                attribute: col.name.clone(),
                value: col.values[c.code as usize].clone(),
            }
        })
        .collect();
    Slice {
        label: label(&conditions),
        declare: conditions.iter().filter_map(declare).collect(),
        conditions,
        comparisons: f.n,
        mismatches: f.bad,
        agreement: f.agreement,
        rest: f.rest,
        gap: f.gap,
        p_value: f.p,
    }
}

/// `a=x & b=y`.
pub fn label(conditions: &[Condition]) -> String {
    conditions
        .iter()
        .map(|c| format!("{}={}", c.attribute, c.value))
        .collect::<Vec<_>>()
        .join(" & ")
}

/// The `segment = {...}` line that would declare this condition, when a
/// segment source can express it.
fn declare(c: &Condition) -> Option<String> {
    if c.value == table::NONE || c.value == table::OTHER || c.value.starts_with('{') {
        return None;
    }
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    let value = quote(&c.value);
    let (kind, key) = c.attribute.split_once(':').unwrap_or((&c.attribute, ""));
    let source = match kind {
        "header" | "query" => format!("{kind} = {}", quote(key)),
        // Numbers are bucketed: only strings, booleans and small integers
        // read back as the same segment value.
        "json" if !c.value.starts_with(['[', '-', '(']) => format!("json = {}", quote(key)),
        "llm" if key == "model" => "json = \"/model\"".to_string(),
        "path" if !key.is_empty() => {
            let n: usize = key.parse().ok()?;
            format!(
                "path = {}",
                quote(&format!("^{}/([^/?]+)", "/[^/]+".repeat(n - 1)))
            )
        }
        _ => return None,
    };
    Some(format!("segment = {{ {source}, values = [{value}] }}"))
}

/// A slice given by a person (`report --slice 'json:/country=BR & plan=pro'`):
/// each attribute by its full name, or by the part after `:` (and `/`)
/// when that names one attribute only.
pub fn parse_slice(text: &str, t: &Table) -> Result<Vec<Cond>, String> {
    let mut conds = Vec::new();
    for part in text.split('&').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = part.split_once('=') else {
            return Err(format!("{part:?} is not attribute=value"));
        };
        let (name, value) = (name.trim(), value.trim());
        let short = |full: &str| {
            let rest = full.split_once(':').map_or(full, |(_, r)| r);
            rest.trim_start_matches('/') == name
        };
        let matching: Vec<usize> = match t.column(name) {
            Some(c) => vec![c],
            None => (0..t.columns.len())
                .filter(|&i| short(&t.columns[i].name))
                .collect(),
        };
        let col = match matching[..] {
            [c] => c,
            [] => {
                let known: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
                return Err(format!(
                    "no attribute {name:?} in these comparisons (attributes: {})",
                    known.join(", ")
                ));
            }
            _ => {
                let names: Vec<&str> = matching
                    .iter()
                    .map(|&i| t.columns[i].name.as_str())
                    .collect();
                return Err(format!("{name:?} is ambiguous: {}", names.join(", ")));
            }
        };
        let column = &t.columns[col];
        let Some(code) = column.values.iter().position(|v| v == value) else {
            return Err(format!(
                "{} has no value {value:?} among its {} most frequent",
                column.name,
                column.values.len() - 1
            ));
        };
        conds.push(Cond {
            col: col as u16,
            code: code as u8,
        });
    }
    if conds.is_empty() {
        return Err("no condition given".to_string());
    }
    Ok(conds)
}

/// The rows of `--slice`: for each file given, the rowids of the
/// comparisons the slice holds.
pub type RowSet = HashMap<PathBuf, HashSet<i64>>;

/// The comparisons of `text` (a slice) in the logs, per file.
pub fn rows_of(opts: &Options, text: &str) -> Result<RowSet, Error> {
    let tables = read::tables(
        &opts.dbs,
        &opts.routes,
        opts.route.as_deref(),
        opts.since_ms,
        true,
    )?;
    let mut out = RowSet::new();
    let mut why = Vec::new();
    for t in &tables {
        let conds = match parse_slice(text, &t.table) {
            Ok(c) => c,
            Err(e) => {
                why.push(format!("route {}: {e}", t.route));
                continue;
            }
        };
        for (r, &(file, rowid)) in t.origin.iter().enumerate() {
            let inside = conds
                .iter()
                .all(|c| t.table.columns[c.col as usize].codes[r] == c.code);
            if inside {
                out.entry(opts.dbs[file as usize].clone())
                    .or_default()
                    .insert(rowid);
            }
        }
    }
    if tables.is_empty() {
        why.push("no decided comparisons to look at".to_string());
    }
    if out.is_empty() && !why.is_empty() {
        return Err(Error::BadSlice {
            text: text.to_string(),
            why: why.join("; "),
        });
    }
    Ok(out)
}
