//! `understudy report`: agreement per route and segment, merged over replicas.
//!
//! Definitions, per route and segment (and per hour or day with `--by`):
//!
//! - **samples**: every exchange, whatever its verdict: rows, plus skipped
//!   mirrors counted in `mirror_skips`.
//! - **agreement** = matches / (matches + mismatches). Errors and skips are
//!   left out of the denominator: they say nothing about whether the two
//!   answers agree. Shown with its Wilson 95 % interval `[lo–hi]`.
//! - **candidate error rate** = candidate_errors / (matches + mismatches +
//!   candidate_errors): the share of comparisons the incumbent answered
//!   properly and the candidate did not. **incumbent error rate** =
//!   incumbent_errors / (samples − skipped) (a skipped mirror's incumbent
//!   answer is not logged).
//! - **compared** (mirror coverage) = (samples − skipped) / samples, with the
//!   skip reasons for the rest.
//! - **p50 / p95 / p99**: nearest-rank percentiles ([`crate::stats::percentile`]) of
//!   every recorded latency of that side, in milliseconds.
//! - **guard**: what the route's guard would decide on these numbers
//!   ([`line::Decision`]); **decided** says whether the sample is large
//!   enough for `min_agreement` to be decided either way.
//!
//! Reading never writes: the database files are opened read-only.

pub mod ai;
pub mod aligned;
pub mod html;
pub mod line;
pub mod marks;
pub mod render;
pub mod show;
pub mod svg;
pub mod tabular;

use crate::store::read::{self, Filter, NoiseRow, Scan, SegmentStats};
use crate::store::{self, events::RolloutEvent};
use line::{Line, Ratings};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use line::Decision;

/// How lines are grouped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// One line per route and segment.
    #[default]
    Segment,
    /// One line per route, segment and hour (UTC).
    Hour,
    /// One line per route, segment and day (UTC).
    Day,
}

impl By {
    fn period_ms(self) -> Option<i64> {
        match self {
            By::Segment => None,
            By::Hour => Some(read::HOUR_MS),
            By::Day => Some(read::DAY_MS),
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for a terminal.
    #[default]
    Table,
    Json,
    Csv,
    Markdown,
    /// One self-contained file with charts (no network fetches).
    Html,
}

/// What `report` was asked for.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// One database file per replica; their exchanges are merged.
    pub dbs: Vec<PathBuf>,
    pub route: Option<String>,
    pub segment: Option<String>,
    /// Only exchanges at most this old.
    pub since: Option<Duration>,
    pub by: By,
    pub format: Format,
    /// Guard settings per route (from the config); others get the defaults.
    pub guards: BTreeMap<String, crate::config::Guard>,
    /// Report a replay (`understudy replay --label`) instead of live traffic.
    pub label: Option<String>,
    /// Only the exchanges of this slice (`json:/country=BR & plan=pro`).
    pub slice: Option<String>,
    /// The config's routes (their `[routes.slices]` attributes).
    pub routes: Vec<crate::config::Route>,
    /// Add the Slices section (a second pass, over the requests: the CLI's
    /// default; `--no-slices` leaves it out).
    pub find_slices: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no database file given")]
    NoDatabase,
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("writing the report: {0}")]
    Write(#[from] std::io::Error),
    #[error("encoding the report: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Slices(#[from] crate::slices::Error),
}

/// Everything a report shows, in every format.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated_ms: i64,
    pub dbs: Vec<String>,
    pub route: Option<String>,
    pub segment: Option<String>,
    pub since_ms: Option<i64>,
    pub by: By,
    /// The oldest and newest exchange covered.
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    pub lines: Vec<Line>,
    /// Learned noise pointers, left out of verdicts.
    pub noise: Vec<NoiseRow>,
    /// Rollout events in the covered time.
    pub events: Vec<RolloutEvent>,
    /// Length of a series bucket in ms (a minute to a day, by the time covered).
    pub series_ms: i64,
    /// Agreement per route and segment over time.
    pub series: Vec<Series>,
    /// Per route: the judge's verdicts against people's ratings (docs/src/guide/llm.md).
    pub calibration: Vec<ai::JudgeCalibration>,
    /// `--slice`: the report covers only this slice's exchanges.
    pub slice: Option<String>,
    /// Per route: slices nobody declared whose agreement is significantly
    /// lower than the rest (not with `--by`, `--label` or `--slice`).
    pub slices: Vec<crate::slices::RouteSlices>,
}

/// Agreement of one route and segment over time.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub route: String,
    pub segment: String,
    /// `(bucket start in unix ms, counts)`, ascending.
    pub points: Vec<(i64, read::Point)>,
}

/// Reads the databases and computes the report.
pub fn build(opts: &ReportOptions) -> Result<Report, Error> {
    if opts.dbs.is_empty() {
        return Err(Error::NoDatabase);
    }
    let now = store::now_ms();
    let since_ms = opts.since.map(|d| {
        let ago = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        now.saturating_sub(ago)
    });
    let filter = Filter {
        route: opts.route.clone(),
        segment: opts.segment.clone(),
        since_ms,
        verdict: None,
        label: opts.label.clone(),
        rows: None,
    };
    let slicing = crate::slices::Options {
        dbs: opts.dbs.clone(),
        route: opts.route.clone(),
        since_ms,
        routes: opts.routes.clone(),
    };
    let mut filter = filter;
    if let Some(text) = &opts.slice {
        filter.rows = Some(std::sync::Arc::new(crate::slices::rows_of(&slicing, text)?));
    }
    let slices = if opts.find_slices
        && opts.by == By::Segment
        && opts.label.is_none()
        && opts.slice.is_none()
    {
        crate::slices::find(&slicing)?
    } else {
        Vec::new()
    };
    let bucket = read::time_range(&opts.dbs, since_ms)?
        .map_or(read::HOUR_MS, |(a, b)| read::series_bucket(a, b));
    let Scan {
        groups,
        series,
        first_ts,
        last_ts,
    } = read::scan(&opts.dbs, &filter, opts.by.period_ms(), bucket)?;
    let weights = read::weights(&opts.dbs)?;
    let stages = read::stages(&opts.dbs)?;
    let mut ratings = read::ratings(&opts.dbs, &filter)?;
    let mut ai_stats = read::ai::scan(&opts.dbs, &filter, opts.by.period_ms())?;
    let default_guard = crate::config::Guard::default();
    let lines: Vec<Line> = groups
        .iter()
        .map(|s| {
            let guard = opts.guards.get(&s.route).unwrap_or(&default_guard);
            let mut line = Line::new(s, guard);
            // Without an event the weight is the file's (a non-zero one is
            // recorded as a `config` event on start), else 0: what `status` shows.
            let file = opts.routes.iter().find(|r| r.name == s.route).map(|r| {
                (r.rollout.segments.get(&s.segment).copied()).unwrap_or(r.rollout.default)
            });
            line.weight = weights
                .get(&(s.route.clone(), s.segment.clone()))
                .or_else(|| weights.get(&(s.route.clone(), crate::segment::DEFAULT.into())))
                .copied()
                .or(file)
                .or(Some(0.0));
            line.stage = stages
                .get(&(s.route.clone(), s.segment.clone()))
                .or_else(|| stages.get(&(s.route.clone(), crate::segment::DEFAULT.into())))
                .cloned();
            if s.period.is_none() {
                let key = (s.route.clone(), s.segment.clone());
                line.ratings = Ratings::of(ratings.remove(&key).unwrap_or_default());
            }
            if let Some(a) = ai_stats.remove(&(s.route.clone(), s.segment.clone(), s.period)) {
                line.with_ai(ai::AiLine::of(&a), s, guard);
            }
            line
        })
        .collect();
    let mut lines = lines;
    add_examples(&opts.dbs, &groups, &mut lines)?;
    let series = series
        .into_iter()
        .map(|((route, segment), h)| Series {
            route,
            segment,
            points: h.into_iter().collect(),
        })
        .collect();
    Ok(Report {
        generated_ms: now,
        dbs: opts.dbs.iter().map(|p| p.display().to_string()).collect(),
        route: opts.route.clone(),
        segment: opts.segment.clone(),
        since_ms,
        by: opts.by,
        first_ts,
        last_ts,
        lines,
        noise: read::noise(&opts.dbs, opts.route.as_deref())?,
        events: read::events(&opts.dbs, opts.route.as_deref(), since_ms)?,
        series_ms: bucket,
        series,
        calibration: read::ai::calibration(&opts.dbs, &filter)?
            .into_iter()
            .map(|(route, c)| ai::JudgeCalibration::of(route, c))
            .collect(),
        slice: opts.slice.clone(),
        slices,
    })
}

/// Gives each line's top differences an exchange id to `show` (lines and
/// groups are in the same order).
fn add_examples(dbs: &[PathBuf], groups: &[SegmentStats], lines: &mut [Line]) -> Result<(), Error> {
    for (line, s) in lines.iter_mut().zip(groups) {
        let (pointers, rows): (Vec<&String>, Vec<read::RowRef>) = (line.top_diffs.iter())
            .filter_map(|(p, _)| Some((p, *s.diff_examples.get(p)?)))
            .unzip();
        let ids = read::exchange_ids(dbs, &rows)?;
        line.diff_examples = pointers
            .into_iter()
            .zip(ids)
            .filter_map(|(p, id)| Some((p.clone(), id?)))
            .collect();
    }
    Ok(())
}

/// Builds the report and writes it to `out` in `opts.format`.
pub fn run(opts: &ReportOptions, out: &mut dyn std::io::Write) -> Result<(), Error> {
    let report = build(opts)?;
    write(&report, opts.format, out)
}

/// Writes a built report in `format`.
pub fn write(report: &Report, format: Format, out: &mut dyn std::io::Write) -> Result<(), Error> {
    match format {
        Format::Table => render::table(report, out)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)?;
        }
        Format::Csv => tabular::csv(report, out)?,
        Format::Markdown => tabular::markdown(report, out)?,
        Format::Html => html::page(report, out)?,
    }
    Ok(())
}

/// `1.5 ms`, or `–` when unknown.
pub(crate) fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.1} ms"))
}

/// `97.0%`, or `–` when unknown.
pub(crate) fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{:.1}%", v * 100.0))
}

/// `97.0% [95.1–98.2]`, or `–` without a decided comparison.
pub(crate) fn agreement(l: &Line) -> String {
    match l.agreement {
        Some(a) => format!(
            "{:.1}% [{:.1}–{:.1}]",
            a.value * 100.0,
            a.lo * 100.0,
            a.hi * 100.0
        ),
        None => "–".to_string(),
    }
}

/// `2024-05-01 13:00` (UTC) for an hour, `2024-05-01 (Wed)` for a day.
pub(crate) fn period(ms: i64, by: By) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil(days);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    match by {
        By::Day => format!("{y:04}-{m:02}-{d:02} ({weekday})"),
        _ => {
            let h = secs.rem_euclid(86_400) / 3600;
            let min = secs.rem_euclid(3600) / 60;
            format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}")
        }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard
/// Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests;
