//! The typed AI-answer settings (docs/src/guide/llm.md): `compare.mode = "llm"` with its
//! text stages, the embeddings endpoint, `[routes.cost]` prices and the spend
//! controls of `mirror`.

use super::{JsonCompare, JudgeCompare};
use http::Uri;
use std::time::Duration;
pub use understudy_llm::Protocol;

impl super::Route {
    /// Whether the route decodes AI answers, and so times their first token.
    pub fn times_first_token(&self) -> bool {
        matches!(self.compare, super::Compare::Llm(_))
    }

    /// The route's `compare.mode = "llm"` settings, if it has them.
    pub fn llm(&self) -> Option<&LlmCompare> {
        match &self.compare {
            super::Compare::Llm(l) => Some(l),
            _ => None,
        }
    }
}

/// `compare.mode = "llm"`.
#[derive(Debug, Clone)]
pub struct LlmCompare {
    pub protocol: Protocol,
    /// The json mode's rules for tool-call arguments (`ignore`, `only`,
    /// tolerances, unordered arrays; pointers as in the diff,
    /// `/tool_calls/*/arguments/...`).
    pub arguments: JsonCompare,
    /// The text stages in order (never empty); the last one decides alone.
    pub text: Vec<TextStage>,
    /// `similarity` as the last stage: the score at or above which texts agree.
    pub threshold: f64,
    pub bands: Bands,
    /// Required when `text` names `embedding`.
    pub embedding: Option<Embedding>,
    /// Required when `text` names `judge` (`compare.url` and friends).
    pub judge: Option<JudgeCompare>,
}

/// How two completions' texts are held against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextStage {
    /// Byte for byte; in a cascade it only ever decides `match`.
    Exact,
    /// The text mode's similarity score.
    Similarity,
    /// Cosine similarity of the two texts' embeddings.
    Embedding,
    /// The external judge.
    Judge,
}

impl TextStage {
    pub const ALL: [TextStage; 4] = [
        TextStage::Exact,
        TextStage::Similarity,
        TextStage::Embedding,
        TextStage::Judge,
    ];

    /// The config string, SQL value (`decided_by`) and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            TextStage::Exact => "exact",
            TextStage::Similarity => "similarity",
            TextStage::Embedding => "embedding",
            TextStage::Judge => "judge",
        }
    }

    pub fn parse(s: &str) -> Option<TextStage> {
        TextStage::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Scores below `low` disagree, at or above `high` agree, between them the
/// pair goes on to the next stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub low: f64,
    pub high: f64,
}

/// The undecided band of each scoring stage, used when it is not the last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    pub similarity: Band,
    pub embedding: Band,
}

impl Default for Bands {
    fn default() -> Bands {
        Bands {
            similarity: Band {
                low: 0.5,
                high: 0.95,
            },
            embedding: Band {
                low: 0.8,
                high: 0.95,
            },
        }
    }
}

/// `compare.embedding`: an OpenAI-compatible `/v1/embeddings` endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// The full endpoint URL.
    pub url: Uri,
    pub model: String,
    /// As the last stage: cosine similarity at or above which texts agree.
    pub threshold: f64,
    pub timeout: Duration,
    pub max_in_flight: usize,
    /// `Authorization: Bearer` value read from `api_key_env` at load.
    pub api_key: Option<String>,
}

/// `[routes.cost]`: dollars per million tokens of each side (unknown: no cost).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    pub incumbent: Option<Price>,
    pub candidate: Option<Price>,
}

/// Dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Price {
    /// Dollars for `input` and `output` tokens.
    pub fn dollars(&self, input: u64, output: u64) -> f64 {
        (input as f64 * self.input_per_mtok + output as f64 * self.output_per_mtok) / 1e6
    }
}

/// Which segments `mirror.sample` applies to in full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Focus {
    /// Every segment at `sample`.
    #[default]
    All,
    /// Segments whose guard already says pass or breach at a tenth of `sample`.
    Undecided,
}
