//! The file shape of the AI-answer settings (docs/src/guide/llm.md): `compare.text`,
//! `compare.bands`, `compare.embedding`, `[routes.cost]` and the spend
//! controls of `mirror` (`budget`, `focus`).
//!
//! Nothing is interpreted here; `validate::llm` builds the typed values.

use serde::Deserialize;
use std::fmt;
use toml::Spanned;

/// `text = "similarity"` or `text = ["similarity", "embedding", "judge"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextFile(pub Vec<String>);

impl<'de> Deserialize<'de> for TextFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TextFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a text stage (\"exact\", \"similarity\", \"embedding\", \"judge\") or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TextFile, E> {
                Ok(TextFile(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<TextFile, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(TextFile(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `bands = { similarity = [0.5, 0.95], embedding = [0.8, 0.95] }`: where a
/// cascade stage leaves a pair undecided.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BandsFile {
    /// Similarity scores in `[low, high)` go on to the next stage. Default `[0.5, 0.95]`.
    pub similarity: Option<Spanned<Vec<f64>>>,
    /// Cosine similarities in `[low, high)` go on to the next stage. Default `[0.8, 0.95]`.
    pub embedding: Option<Spanned<Vec<f64>>>,
}

/// `embedding = { url, model, threshold, timeout, max_in_flight }`: an
/// OpenAI-compatible `/v1/embeddings` endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingFile {
    /// The full endpoint URL (`http://host:port/v1/embeddings`). Required.
    pub url: Spanned<String>,
    /// The `model` sent with each request. Required.
    pub model: String,
    /// Cosine similarity at or above which texts agree (when embedding is the last stage). Default `0.9`.
    pub threshold: Option<Spanned<f64>>,
    /// Timeout of one embeddings call. Default `"2s"`.
    pub timeout: Option<Spanned<String>>,
    /// Embeddings calls in flight per route; beyond it the verdict is `skipped`. Default `16`.
    pub max_in_flight: Option<Spanned<usize>>,
    /// Environment variable holding a bearer token for the endpoint. Default: none.
    pub api_key_env: Option<String>,
}

/// `[routes.cost]`: prices of both sides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostFile {
    /// The incumbent's prices. Default: unknown (its cost is NULL).
    pub incumbent: Option<PriceFile>,
    /// The candidate's prices. Default: unknown (its cost is NULL).
    pub candidate: Option<PriceFile>,
}

/// `{ input_per_mtok = 0.15, output_per_mtok = 0.6 }`, dollars per million tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceFile {
    /// Dollars per million input (prompt) tokens. Required.
    pub input_per_mtok: Spanned<f64>,
    /// Dollars per million output (generated) tokens. Required.
    pub output_per_mtok: Spanned<f64>,
}

/// `budget = { dollars_per_day = 20.0 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetFile {
    /// Candidate spend on mirrors per UTC day; beyond it mirrors are skipped (`budget`). Required.
    pub dollars_per_day: Spanned<f64>,
}

/// `focus = "all" | "undecided"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FocusFile {
    All,
    Undecided,
}
