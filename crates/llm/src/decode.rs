//! Whole answers: picking SSE or JSON, and decoding a JSON body.

use crate::builder::Builder;
use crate::completion::{Completion, Limits, Protocol};
use crate::detect;
use crate::error::DecodeError;
use crate::proto;
use crate::stream::StreamDecoder;
use serde_json::Value;

/// Decodes a whole answer, streamed or not, with the default [`Limits`].
pub fn decode(
    protocol: Protocol,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Completion, DecodeError> {
    decode_with_limits(protocol, content_type, body, Limits::default())
}

/// [`decode`] with explicit bounds.
pub fn decode_with_limits(
    protocol: Protocol,
    content_type: Option<&str>,
    body: &[u8],
    limits: Limits,
) -> Result<Completion, DecodeError> {
    if is_event_stream(content_type, body) {
        let mut decoder = StreamDecoder::with_limits(protocol, limits);
        decoder.push(body);
        decoder.finish()
    } else {
        json_with_limits(protocol, body, limits)
    }
}

/// Decodes a non-streamed JSON answer.
pub fn decode_json(protocol: Protocol, body: &[u8]) -> Result<Completion, DecodeError> {
    json_with_limits(protocol, body, Limits::default())
}

fn json_with_limits(
    protocol: Protocol,
    body: &[u8],
    limits: Limits,
) -> Result<Completion, DecodeError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| DecodeError::NotJson(e.to_string()))?;
    let protocol = match protocol {
        Protocol::Auto => detect::json(&v),
        p => Some(p),
    };
    let mut b = Builder::new(limits);
    match protocol {
        Some(Protocol::OpenAiChat) => proto::chat::json(&mut b, &v)?,
        Some(Protocol::OpenAiResponses) => proto::responses::json(&mut b, &v)?,
        Some(Protocol::AnthropicMessages) => proto::anthropic::json(&mut b, &v)?,
        Some(Protocol::Auto) | None => {
            return Err(match proto::upstream_error(&v) {
                Some(message) => DecodeError::Upstream(message),
                None => DecodeError::Shape("openai-chat, openai-responses or anthropic-messages"),
            });
        }
    }
    Ok(b.build(true))
}

/// Whether a body is a server-sent-event stream. The body decides when it
/// can: a first byte `{` or `[` (after whitespace and a BOM) is JSON, a first
/// line that is an SSE field (`data:`, `event:`, `id:`, `retry:`) or comment
/// (`:`) is a stream, whatever the content type says (servers mislabel).
/// Otherwise `text/event-stream` (any case, any parameters) means a stream.
pub fn is_event_stream(content_type: Option<&str>, body: &[u8]) -> bool {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let body = body.trim_ascii_start();
    match body.first() {
        Some(b'{' | b'[') => return false,
        Some(b':') => return true,
        _ => {}
    }
    let fields: [&[u8]; 4] = [b"data:", b"event:", b"id:", b"retry:"];
    if fields.iter().any(|f| body.starts_with(f)) {
        return true;
    }
    content_type.is_some_and(|ct| {
        let media = ct.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case("text/event-stream")
    })
}
