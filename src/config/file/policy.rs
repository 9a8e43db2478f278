//! The decision tables of a route as written in the file: `compare`, `rollout`
//! (with its rules) and `guard`. Mode-specific compare keys are `Option`s so that
//! a key given with another mode can be reported instead of ignored.

use super::llm::{BandsFile, EmbeddingFile, TextFile};
use super::{SourceKeys, source_keys, text, unspanned};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use toml::Spanned;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeFile {
    Exact,
    Json,
    Text,
    Judge,
    Llm,
}

impl ModeFile {
    pub fn as_str(self) -> &'static str {
        match self {
            ModeFile::Exact => "exact",
            ModeFile::Json => "json",
            ModeFile::Text => "text",
            ModeFile::Judge => "judge",
            ModeFile::Llm => "llm",
        }
    }
}

/// `compare = { ... }`. Mode-specific keys are `Option`s so that a key given with
/// another mode can be reported; their defaults are applied by `validate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompareFile {
    /// `"exact"`, `"json"`, `"text"`, `"judge"` or `"llm"`. Default `"json"`.
    pub mode: Spanned<ModeFile>,
    /// json: pointers (with `*`) left out of the comparison. Default `[]`.
    pub ignore: Option<Spanned<Vec<Spanned<String>>>>,
    /// json: when non-empty, only these pointers are compared. Default `[]`.
    pub only: Option<Spanned<Vec<Spanned<String>>>>,
    /// json: relative tolerance for numbers (0.05 = 5 %). Default `0.0`.
    pub tolerance: Option<Spanned<f64>>,
    /// json: absolute tolerance for numbers. Default `0.0`.
    pub abs_tolerance: Option<Spanned<f64>>,
    /// json: compare arrays as multisets. Default `false`.
    pub unordered_arrays: Option<Spanned<bool>>,
    /// text: pointer to the text to compare. Default: the whole body.
    pub field: Option<Spanned<String>>,
    /// text: similarity (0..=1) at or above which texts agree. Default `0.8`.
    pub threshold: Option<Spanned<f64>>,
    /// judge: URL the pair is POSTed to. Required with mode `"judge"`.
    pub url: Option<Spanned<String>>,
    /// judge: timeout of one judge call. Default `"10s"`.
    pub judge_timeout: Option<Spanned<String>>,
    /// judge: judge calls in flight per route; beyond it the verdict is `skipped`. Default `16`.
    pub judge_max_in_flight: Option<Spanned<usize>>,
    /// json: noise learning from two incumbent answers. Default: off.
    pub noise: Option<Spanned<NoiseFile>>,
    /// llm: `"openai-chat"`, `"openai-responses"`, `"anthropic-messages"` or `"auto"`. Default `"auto"`.
    pub protocol: Option<Spanned<String>>,
    /// llm: how texts agree: a stage or a cascade of them. Default `"similarity"`.
    pub text: Option<Spanned<TextFile>>,
    /// llm: the undecided band of each cascade stage. Default: see [`BandsFile`].
    pub bands: Option<Spanned<BandsFile>>,
    /// llm: the embeddings endpoint. Required when `text` names `"embedding"`.
    pub embedding: Option<Spanned<EmbeddingFile>>,
}

/// `noise = { secondary = "http://...", sample = 0.05 }`: learn the pointers
/// where the incumbent disagrees with itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseFile {
    /// A second incumbent instance asked the same request. Default: none.
    pub secondary: Option<Spanned<String>>,
    /// Share (0..=1) of exchanges asked twice: to `secondary` when it is set
    /// (default `1.0` then), otherwise re-sent to the incumbent (required then).
    pub sample: Option<Spanned<f64>>,
    /// Most pointers learned per route; beyond it nothing more is learned
    /// (a noisy incumbent must not hide every field). Default `64`.
    pub max_pointers: Option<Spanned<usize>>,
}

impl Default for CompareFile {
    fn default() -> Self {
        CompareFile {
            mode: unspanned(ModeFile::Json),
            ignore: None,
            only: None,
            tolerance: None,
            abs_tolerance: None,
            unordered_arrays: None,
            field: None,
            threshold: None,
            url: None,
            judge_timeout: None,
            judge_max_in_flight: None,
            noise: None,
            protocol: None,
            text: None,
            bands: None,
            embedding: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutFile {
    /// Weight in percent (0..=100) of segments not listed in `segments`. Default `0.0`.
    pub default: Spanned<f64>,
    /// Weight per segment, name → percent. Default `{}`.
    pub segments: BTreeMap<Spanned<String>, Spanned<f64>>,
    /// Mixed into the sticky hash; change it to reshuffle buckets. Default `""`.
    pub salt: String,
    /// A failing serving candidate is answered by the incumbent instead. Default `true`.
    pub fallback: bool,
    /// Targeting rules, first match wins, before weights. Default `[]`.
    pub rules: Vec<Spanned<RuleFile>>,
}

impl Default for RolloutFile {
    fn default() -> Self {
        RolloutFile {
            default: unspanned(0.0),
            segments: BTreeMap::new(),
            salt: String::new(),
            fallback: true,
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServeFile {
    Incumbent,
    Candidate,
}

/// `{ header = "x-cohort", values = ["internal"], serve = "candidate" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Request header name. Default: unset.
    pub header: Option<Spanned<String>>,
    /// Query parameter name. Default: unset.
    pub query: Option<Spanned<String>>,
    /// JSON pointer into the request body. Default: unset.
    pub json: Option<Spanned<String>>,
    /// Regex on the path. Default: unset.
    pub path: Option<Spanned<String>>,
    /// Values that make the rule match. Required.
    pub values: Spanned<Vec<String>>,
    /// `"candidate"` or `"incumbent"`. Required.
    pub serve: Spanned<ServeFile>,
}

impl RuleFile {
    pub fn source_keys(&self) -> SourceKeys<'_> {
        source_keys(&self.header, &self.query, &self.json, &self.path)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBreachFile {
    Step,
    Shadow,
}

/// `guard.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodFile {
    Sequential,
    Wilson,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardFile {
    /// `"sequential"` (an anytime-valid confidence sequence over the samples
    /// since the guard's last reset) or `"wilson"` (a Wilson 95 % interval over
    /// the sliding window). Default `"sequential"`.
    pub method: MethodFile,
    /// Level of the sequential guard's confidence sequences (0 < alpha ≤ 0.5). Default `0.05`.
    pub alpha: Spanned<f64>,
    /// Sliding window: an integer is a sample count, a string a duration. Default `1000`.
    pub window: Spanned<WindowFile>,
    /// Samples needed before a segment may pass. Default `200`.
    pub min_samples: u64,
    /// Agreement (0..=1) the Wilson bounds are checked against. Default `0.9`.
    pub min_agreement: Spanned<f64>,
    /// Highest acceptable candidate error rate (0..=1). Default `0.02`.
    pub max_candidate_error_rate: Spanned<f64>,
    /// Highest candidate p99 / incumbent p99. Default: none (not checked).
    pub max_latency_ratio: Option<Spanned<f64>>,
    /// Highest candidate p99 / incumbent p99 time to first token. Default: none (not checked).
    pub max_ttft_ratio: Option<Spanned<f64>>,
    /// On a breach: `"step"` back one step or `"shadow"` (weight 0). Default `"step"`.
    pub on_breach: OnBreachFile,
    /// Move a passing segment up one step after `hold`. Default `false`.
    pub auto_promote: bool,
    /// Weights (percent) of the promotion ladder. Default `[1, 5, 10, 25, 50, 100]`.
    pub steps: Spanned<Vec<f64>>,
    /// How long a segment must pass before an automatic step up. Default `"10m"`.
    pub hold: Spanned<String>,
    /// `[[routes.guard.gates]]`: external checks before each raise. Default: none.
    pub gates: Vec<GateFile>,
    /// Lowest share (0..=1) of rated exchanges with `rating > 0`; below it
    /// (confidently) the weight steps back. Default: not checked.
    pub min_satisfaction: Option<Spanned<f64>>,
    /// Highest share (0..=1) of reviewed answers reversed; above it
    /// (confidently) the weight steps back. Default: not checked.
    pub max_reversal_rate: Option<Spanned<f64>>,
}

/// One external gate: `{ name, prometheus, query, max | min }` or `{ name, http }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateFile {
    pub name: Spanned<String>,
    /// A Prometheus server's base URL (queried at `/api/v1/query`).
    pub prometheus: Option<Spanned<String>>,
    /// An instant PromQL query; its first value is compared with `max` or `min`.
    pub query: Option<String>,
    pub max: Option<f64>,
    pub min: Option<f64>,
    /// A URL whose 2xx answer passes.
    pub http: Option<Spanned<String>>,
}

impl Default for GuardFile {
    fn default() -> Self {
        GuardFile {
            method: MethodFile::Sequential,
            alpha: unspanned(0.05),
            window: unspanned(WindowFile::Count(1000)),
            min_samples: 200,
            min_agreement: unspanned(0.9),
            max_candidate_error_rate: unspanned(0.02),
            max_latency_ratio: None,
            max_ttft_ratio: None,
            on_breach: OnBreachFile::Step,
            auto_promote: false,
            steps: unspanned(vec![1.0, 5.0, 10.0, 25.0, 50.0, 100.0]),
            hold: text("10m"),
            gates: Vec::new(),
            min_satisfaction: None,
            max_reversal_rate: None,
        }
    }
}

/// `window = 1000` (samples) or `window = "15m"` (time).
#[derive(Debug, Clone, PartialEq)]
pub enum WindowFile {
    Count(i64),
    Time(String),
}

impl<'de> Deserialize<'de> for WindowFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = WindowFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sample count (integer) or a duration string such as \"15m\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<WindowFile, E> {
                Ok(WindowFile::Count(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<WindowFile, E> {
                Ok(WindowFile::Count(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<WindowFile, E> {
                Ok(WindowFile::Time(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}
