//! The decoded answer ([`Completion`]) and the knobs that shape decoding.

use crate::error::DecodeError;
use serde_json::Value;
use std::str::FromStr;

/// Which wire format an answer is in (`compare.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OpenAI chat completions (`/v1/chat/completions`), `"openai-chat"`.
    OpenAiChat,
    /// OpenAI Responses API (`/v1/responses`), `"openai-responses"`.
    OpenAiResponses,
    /// Anthropic Messages API (`/v1/messages`), `"anthropic-messages"`.
    AnthropicMessages,
    /// Detect the protocol from the answer's shape, `"auto"`.
    Auto,
}

impl Protocol {
    /// The config string.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAiChat => "openai-chat",
            Protocol::OpenAiResponses => "openai-responses",
            Protocol::AnthropicMessages => "anthropic-messages",
            Protocol::Auto => "auto",
        }
    }
}

impl FromStr for Protocol {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Protocol, DecodeError> {
        match s {
            "openai-chat" => Ok(Protocol::OpenAiChat),
            "openai-responses" => Ok(Protocol::OpenAiResponses),
            "anthropic-messages" => Ok(Protocol::AnthropicMessages),
            "auto" => Ok(Protocol::Auto),
            other => Err(DecodeError::UnknownProtocol(other.to_string())),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tool (function) call of a completion.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The function's name.
    pub name: String,
    /// The arguments as JSON. Arguments that were not valid JSON are kept as a
    /// JSON string holding the raw text (and a note says so).
    pub arguments: Value,
}

/// Token usage. `input` counts every prompt token the provider processed
/// (Anthropic's cache-read and cache-creation tokens included, as OpenAI's
/// `prompt_tokens` includes cached tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input: u64,
    /// Generated tokens.
    pub output: u64,
}

/// One answer, whatever protocol and framing it came in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    /// The generated text: every text (and refusal) fragment, concatenated with
    /// no separator, in arrival order.
    pub text: String,
    /// Tool calls in their protocol order (chat `index`, Anthropic content-block
    /// index, Responses `output_index`).
    pub tool_calls: Vec<ToolCall>,
    /// The provider's own finish reason, verbatim (`stop`, `end_turn`, ...;
    /// Responses: `incomplete_details.reason`, else the response `status`).
    pub finish_reason: Option<String>,
    /// Token usage; `None` when the answer did not report both counts.
    pub usage: Option<Usage>,
    /// The model that answered, as the provider names it.
    pub model: Option<String>,
    /// Text or arguments were cut at [`Limits::max_content_bytes`].
    pub truncated: bool,
    /// Parts may be missing: the stream ended before its end marker or finish
    /// reason, or some events were unreadable or oversized. See `notes`.
    pub incomplete: bool,
    /// Human-readable remarks on anything lossy (at most [`MAX_NOTES`]).
    pub notes: Vec<String>,
}

/// At most this many notes are kept on a completion.
pub const MAX_NOTES: usize = 16;

impl Completion {
    /// The finish reason mapped onto a vocabulary common to the protocols.
    pub fn finish(&self) -> Option<Finish> {
        self.finish_reason
            .as_deref()
            .map(|raw| Finish::from_raw(raw, !self.tool_calls.is_empty()))
    }
}

/// A finish reason common to the three protocols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Natural end or a stop sequence (`stop`, `end_turn`, `stop_sequence`,
    /// Responses `completed` without tool calls).
    Stop,
    /// Hit the token limit (`length`, `max_tokens`, `max_output_tokens`).
    Length,
    /// Stopped to call tools (`tool_calls`, `function_call`, `tool_use`,
    /// Responses `completed` with tool calls).
    ToolCalls,
    /// Filtered or refused (`content_filter`, `refusal`).
    ContentFilter,
    /// Anything else, verbatim (`pause_turn`, `failed`, ...).
    Other(String),
}

impl Finish {
    /// Maps a raw finish reason; `has_tool_calls` resolves Responses'
    /// `completed`, which does not say whether the model stopped for tools.
    pub fn from_raw(raw: &str, has_tool_calls: bool) -> Finish {
        match raw {
            "stop" | "end_turn" | "stop_sequence" => Finish::Stop,
            "completed" if has_tool_calls => Finish::ToolCalls,
            "completed" => Finish::Stop,
            "length" | "max_tokens" | "max_output_tokens" => Finish::Length,
            "tool_calls" | "function_call" | "tool_use" => Finish::ToolCalls,
            "content_filter" | "refusal" => Finish::ContentFilter,
            other => Finish::Other(other.to_string()),
        }
    }
}

/// Memory bounds of a [`crate::StreamDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Text plus tool-call argument bytes kept; beyond it the completion is
    /// `truncated`. Default 1 MiB.
    pub max_content_bytes: usize,
    /// Largest SSE line and largest event (its `data` lines joined) kept;
    /// a bigger event is skipped (the completion is `incomplete`). It must
    /// exceed `max_content_bytes` for Responses streams, whose final
    /// `response.completed` event repeats the whole answer. Default 4 MiB.
    pub max_event_bytes: usize,
    /// Most tool calls kept; further ones are dropped (`incomplete`). Default 128.
    pub max_tool_calls: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_content_bytes: 1 << 20,
            max_event_bytes: 4 << 20,
            max_tool_calls: 128,
        }
    }
}
