//! The typed `[routes.slices]` settings: which attributes of a request slice
//! discovery looks at, and how it searches and tests (the `slices` module reads it).

use crate::pointer::Pointer;
use http::HeaderName;
use std::time::Duration;

/// `[routes.slices]`, validated.
#[derive(Debug, Clone)]
pub struct Slices {
    pub enabled: bool,
    /// The header allow-list.
    pub headers: Vec<HeaderName>,
    /// Configured JSON pointers into the request body.
    pub json: Vec<Pointer>,
    pub json_top_level: bool,
    pub path: bool,
    pub query: bool,
    /// Values kept per attribute (1..=250); the rest are `(other)`.
    pub max_values: usize,
    /// Conditions per slice (1..=3).
    pub max_conditions: usize,
    /// Fewest comparisons a slice needs to be looked at (≥ 1).
    pub min_support: u64,
    /// The false discovery rate (0 < alpha < 1).
    pub alpha: f64,
    pub fdr: Fdr,
    pub max_slices: usize,
    /// While serving: how often the search runs (notification `slice`).
    pub every: Duration,
    /// While serving: how far back the search looks.
    pub window: Duration,
}

/// The procedure that controls false discoveries over every slice looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Fdr {
    /// Benjamini–Yekutieli: valid under any dependence between the tests.
    #[serde(rename = "benjamini-yekutieli")]
    By,
    /// Benjamini–Hochberg: valid under positive dependence.
    #[serde(rename = "benjamini-hochberg")]
    Bh,
}

impl Fdr {
    pub fn parse(s: &str) -> Option<Fdr> {
        match s {
            "by" => Some(Fdr::By),
            "bh" => Some(Fdr::Bh),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Fdr::By => "benjamini-yekutieli",
            Fdr::Bh => "benjamini-hochberg",
        }
    }
}

impl Default for Slices {
    fn default() -> Self {
        Slices {
            enabled: true,
            headers: ["accept-language", "content-type", "user-agent"]
                .into_iter()
                .map(HeaderName::from_static)
                .collect(),
            json: Vec::new(),
            json_top_level: true,
            path: true,
            query: true,
            max_values: 50,
            max_conditions: 2,
            min_support: 100,
            alpha: 0.05,
            fdr: Fdr::By,
            max_slices: 10,
            every: Duration::from_secs(300),
            window: Duration::from_secs(86_400),
        }
    }
}
