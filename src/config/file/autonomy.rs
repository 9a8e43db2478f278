//! The file shape of `[routes.autonomy]` (docs/src/concepts/stages.md).

use super::text;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// `[routes.autonomy]`: what the candidate may do for canary users, per segment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutonomyFile {
    /// Stage of segments without their own: `"shadow"`, `"recommend"`,
    /// `"approve"`, `"notify"` or `"autonomous"`. Default `"autonomous"`
    /// (a route without the table behaves as before stages existed).
    pub stage: Spanned<String>,
    /// Stage per segment, e.g. `{ enterprise = "recommend" }`. Default `{}`.
    pub stages: BTreeMap<Spanned<String>, Spanned<String>>,
    /// `recommend`: JSON pointer in the incumbent's answer where the
    /// candidate's is inserted. Default: none (the suggestion goes in the
    /// `x-understudy-suggestion` header).
    pub suggest_pointer: Option<Spanned<String>>,
    /// `recommend`: the longest the client's answer waits for the candidate. Default `"300ms"`.
    pub suggest_timeout: Spanned<String>,
    /// `approve`: where an approved answer is POSTed. Default: none (not delivered).
    pub deliver_url: Option<Spanned<String>>,
    /// `notify`: where each answer the candidate served is POSTed for review. Default: none.
    pub review_url: Option<Spanned<String>>,
    /// `approve`: pending approvals expire after this. Default `"24h"`.
    pub approval_ttl: Spanned<String>,
    /// Move a segment that passes its criteria for `hold` up one stage. Default `false`.
    pub auto_advance: bool,
    /// How long a segment must pass before an automatic stage up. Default `"10m"`.
    pub hold: Spanned<String>,
    /// `[routes.autonomy.criteria]`. Default: every key's default.
    pub criteria: CriteriaFile,
}

impl Default for AutonomyFile {
    fn default() -> Self {
        AutonomyFile {
            stage: text("autonomous"),
            stages: BTreeMap::new(),
            suggest_pointer: None,
            suggest_timeout: text("300ms"),
            deliver_url: None,
            review_url: None,
            approval_ttl: text("24h"),
            auto_advance: false,
            hold: text("10m"),
            criteria: CriteriaFile::default(),
        }
    }
}

/// `[routes.autonomy.criteria]`: when a stage is earned, and when it is lost.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CriteriaFile {
    /// Agreement (0..=1) with the incumbent. Default: the route's `guard.min_agreement`.
    pub min_agreement: Option<Spanned<f64>>,
    /// Highest share (0..=1) of decided approvals rejected (`approve`). Default: not checked.
    pub max_reject_rate: Option<Spanned<f64>>,
    /// Highest share (0..=1) of reviewed answers reversed (`notify`). Default: not checked.
    pub max_reversal_rate: Option<Spanned<f64>>,
    /// Lowest share (0..=1) of rated exchanges with `rating > 0`. Default: not checked.
    pub min_satisfaction: Option<Spanned<f64>>,
    /// Samples each criterion needs before it decides. Default `100`.
    pub min_samples: Option<Spanned<u64>>,
}
