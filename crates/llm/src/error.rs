//! The one error type of this crate.

/// Why an answer could not be decoded into a completion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A `compare.protocol` string that names no protocol.
    #[error(
        "unknown protocol {0:?}: expected openai-chat, openai-responses, anthropic-messages or auto"
    )]
    UnknownProtocol(String),
    /// A body that should be JSON is not.
    #[error("answer is not JSON: {0}")]
    NotJson(String),
    /// JSON (or a stream's events) not of the expected protocol's shape, or of
    /// no known shape under `auto`.
    #[error("answer is not a {0} completion")]
    Shape(&'static str),
    /// A stream that ended (or was garbage) before any event of the protocol.
    #[error("stream has no {0} events")]
    NoEvents(&'static str),
    /// The upstream answered with an error object or error event.
    #[error("upstream error: {0}")]
    Upstream(String),
}
