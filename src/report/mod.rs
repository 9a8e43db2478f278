//! `understudy report`: agreement per route and segment, merged over replicas.
//!
//! Definitions, per route and segment:
//!
//! - **samples**: every logged exchange, whatever its verdict.
//! - **agreement** = matches / (matches + mismatches). Errors and skips are
//!   left out of the denominator: they say nothing about whether the two
//!   answers agree. Shown with its Wilson 95 % interval `[lo–hi]`.
//! - **candidate error rate** = candidate_errors / (matches + mismatches +
//!   candidate_errors): the share of comparisons the incumbent answered
//!   properly and the candidate did not. Incumbent errors and skips are left
//!   out, since the candidate was not the one failing.
//! - **p50 / p99**: nearest-rank percentiles ([`stats::percentile`]) of every
//!   recorded latency of that side, in milliseconds.
//!
//! Reading never writes: the database files are opened read-only.

pub mod render;
pub mod stats;

use crate::store::{self, read::SegmentStats};
use std::path::PathBuf;
use std::time::Duration;

/// What `report` was asked for.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// One database file per replica; their exchanges are merged.
    pub dbs: Vec<PathBuf>,
    pub route: Option<String>,
    /// Only exchanges at most this old.
    pub since: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no database file given")]
    NoDatabase,
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("writing the report: {0}")]
    Write(#[from] std::io::Error),
}

/// One line of the report, computed from a [`SegmentStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub route: String,
    pub segment: String,
    pub samples: u64,
    /// `(agreement, wilson_lo, wilson_hi)`; `None` without a decided comparison.
    pub agreement: Option<(f64, f64, f64)>,
    pub candidate_error_rate: Option<f64>,
    pub incumbent_p50: Option<f64>,
    pub incumbent_p99: Option<f64>,
    pub candidate_p50: Option<f64>,
    pub candidate_p99: Option<f64>,
}

impl Line {
    pub fn from_stats(s: &SegmentStats) -> Line {
        let decided = s.decided();
        let agreement = (decided > 0).then(|| {
            let (lo, hi) = stats::wilson(s.matches, decided, stats::Z95);
            (s.matches as f64 / decided as f64, lo, hi)
        });
        let attempts = decided + s.candidate_errors;
        Line {
            route: s.route.clone(),
            segment: s.segment.clone(),
            samples: s.samples,
            agreement,
            candidate_error_rate: (attempts > 0)
                .then(|| s.candidate_errors as f64 / attempts as f64),
            incumbent_p50: stats::percentile(&s.incumbent_ms, 50.0),
            incumbent_p99: stats::percentile(&s.incumbent_ms, 99.0),
            candidate_p50: stats::percentile(&s.candidate_ms, 50.0),
            candidate_p99: stats::percentile(&s.candidate_ms, 99.0),
        }
    }
}

/// Reads the databases and writes the text table to `out`.
pub fn run(opts: &ReportOptions, out: &mut dyn std::io::Write) -> Result<(), Error> {
    if opts.dbs.is_empty() {
        return Err(Error::NoDatabase);
    }
    let since_ms = opts.since.map(|d| {
        let ago = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        store::writer::now_ms().saturating_sub(ago)
    });
    let stats = store::read::segment_stats(&opts.dbs, opts.route.as_deref(), since_ms)?;
    let lines: Vec<Line> = stats.iter().map(Line::from_stats).collect();
    render::table(&lines, out)?;
    Ok(())
}

#[cfg(test)]
mod tests;
