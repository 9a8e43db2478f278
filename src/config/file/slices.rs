//! The file shape of `[routes.slices]` (slice discovery): which attributes
//! of a request are looked at and how slices are searched and tested.
//!
//! Nothing is interpreted here; `validate::slices` builds the typed values.

use super::{text, texts};
use serde::Deserialize;
use toml::Spanned;

/// `[routes.slices]`: find the subsets of a route's comparisons (slices such
/// as `header:x-region=apac & json:/plan=pro`) whose agreement is
/// significantly lower than the rest of the route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlicesFile {
    /// Look for slices on this route. Default `true`.
    pub enabled: bool,
    /// Request headers whose values are attributes (an allow-list: a header
    /// not named here is never looked at). Values of redacted headers are
    /// `[redacted]` in the store and so say nothing. Default
    /// `["accept-language", "content-type", "user-agent"]`.
    pub headers: Vec<Spanned<String>>,
    /// Extra JSON pointers into the request body whose values are attributes
    /// (e.g. `"/customer/country"`). Default `[]`.
    pub json: Vec<Spanned<String>>,
    /// Every top-level key of a JSON request body is an attribute (strings,
    /// booleans, numbers in 1-2-5 buckets). Default `true`.
    pub json_top_level: bool,
    /// The path (ids collapsed: numbers, UUIDs, hashes) and its first three
    /// segments are attributes. Default `true`.
    pub path: bool,
    /// Query parameters are attributes (their values, bounded). Default `true`.
    pub query: bool,
    /// Values kept per attribute: the most frequent ones; the rest are `(other)`. Default `50`.
    pub max_values: Spanned<usize>,
    /// Conditions per slice, 1 to 3. Default `2`.
    pub max_conditions: Spanned<usize>,
    /// Fewest comparisons a slice needs to be looked at. Default `100`.
    pub min_support: Spanned<u64>,
    /// The false discovery rate over every slice looked at. Default `0.05`.
    pub alpha: Spanned<f64>,
    /// `"by"` (Benjamini–Yekutieli, valid under any dependence between
    /// slices) or `"bh"` (Benjamini–Hochberg, more power, assumes positive
    /// dependence). Default `"by"`.
    pub fdr: Spanned<String>,
    /// Slices shown (and notified) at most. Default `10`.
    pub max_slices: Spanned<usize>,
    /// While serving: how often the search runs for the `slice` notification. Default `"5m"`.
    pub every: Spanned<String>,
    /// While serving: the comparisons the search looks at (the newest). Default `"24h"`.
    pub window: Spanned<String>,
}

impl Default for SlicesFile {
    fn default() -> Self {
        SlicesFile {
            enabled: true,
            headers: texts(&["accept-language", "content-type", "user-agent"]),
            json: Vec::new(),
            json_top_level: true,
            path: true,
            query: true,
            max_values: Spanned::new(0..0, 50),
            max_conditions: Spanned::new(0..0, 2),
            min_support: Spanned::new(0..0, 100),
            alpha: Spanned::new(0..0, 0.05),
            fdr: text("by"),
            max_slices: Spanned::new(0..0, 10),
            every: text("5m"),
            window: text("24h"),
        }
    }
}
