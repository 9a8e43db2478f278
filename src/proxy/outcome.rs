//! What became of a suggestion at the `recommend` stage, below both places
//! that decide it: a JSON or header suggestion ([`super::suggest`]) and the
//! event at the end of a stream ([`super::sse`]).

/// What became of a suggestion: the `outcome` label of `understudy_suggestions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Inserted at `suggest_pointer` into the incumbent's JSON answer.
    Inserted,
    /// Sent in the `x-understudy-suggestion` header.
    Header,
    /// The candidate had not answered within `suggest_timeout`.
    Late,
    /// The candidate failed (transport error or a non-2xx status).
    Failed,
    /// The incumbent's answer is compressed: left as it is.
    Compressed,
    /// The incumbent's answer is over `store.max_body_bytes`: streamed as it is.
    TooLarge,
    /// Sent as an SSE event at the end of the incumbent's event stream.
    Event,
    /// The incumbent's answer is a stream of unknown length that is not
    /// server-sent events: streamed as it is.
    Streamed,
    /// No suggestion was due: the candidate was not asked (a mirror bound:
    /// in flight, budget, ...), or the incumbent's answer is not a 2xx or broke off.
    Skipped,
}

impl crate::metrics::Label for Outcome {
    fn as_label(self) -> &'static str {
        match self {
            Outcome::Inserted => "inserted",
            Outcome::Header => "header",
            Outcome::Late => "late",
            Outcome::Failed => "failed",
            Outcome::Compressed => "compressed",
            Outcome::TooLarge => "too_large",
            Outcome::Event => "event",
            Outcome::Streamed => "streamed",
            Outcome::Skipped => "skipped",
        }
    }
}
