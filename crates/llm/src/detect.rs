//! `protocol = "auto"`: recognising the wire format from an answer's shape.

use crate::completion::Protocol;
use crate::proto::Str;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// Anthropic's stream event types.
const ANTHROPIC_EVENTS: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
];

/// The protocol of a whole JSON body: `choices` means chat; `object:
/// "response"` or an `output` array means Responses; `type: "message"` or a
/// `content` array means Anthropic.
pub(crate) fn json(v: &Value) -> Option<Protocol> {
    let kind = v.get("type").and_then(Value::as_str);
    let object = v.get("object").and_then(Value::as_str);
    if v.get("choices").is_some_and(Value::is_array)
        || object.is_some_and(|o| o.starts_with("chat.completion"))
    {
        Some(Protocol::OpenAiChat)
    } else if object == Some("response") || v.get("output").is_some_and(Value::is_array) {
        Some(Protocol::OpenAiResponses)
    } else if kind == Some("message") || v.get("content").is_some_and(Value::is_array) {
        Some(Protocol::AnthropicMessages)
    } else {
        None
    }
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    object: Option<Str<'a>>,
    #[serde(default)]
    choices: Option<IgnoredAny>,
}

/// The protocol of one stream event, from its `event:` name or its `type`,
/// `object` and `choices`; `None` for an event that does not tell (or is not
/// JSON).
pub(crate) fn event(name: &str, data: &[u8]) -> Option<Protocol> {
    if let Some(p) = by_type(name) {
        return Some(p);
    }
    let probe: Probe<'_> = serde_json::from_slice(data).ok()?;
    if let Some(p) = probe.kind.as_deref().and_then(by_type) {
        return Some(p);
    }
    let chunk = probe
        .object
        .as_deref()
        .is_some_and(|o| o.starts_with("chat.completion"));
    (chunk || probe.choices.is_some()).then_some(Protocol::OpenAiChat)
}

fn by_type(kind: &str) -> Option<Protocol> {
    if kind.starts_with("response.") {
        Some(Protocol::OpenAiResponses)
    } else if ANTHROPIC_EVENTS.contains(&kind) {
        Some(Protocol::AnthropicMessages)
    } else {
        None
    }
}
