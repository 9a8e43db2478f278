//! The three wire formats: one event handler (streams) and one body decoder
//! (plain JSON) each, all writing into a [`Builder`].

pub(crate) mod anthropic;
pub(crate) mod chat;
pub(crate) mod responses;

use crate::builder::{Builder, floor_char_boundary};
use crate::completion::Protocol;
use serde::de::{Deserialize, Deserializer, Visitor};
use serde_json::Value;
use std::borrow::Cow;

/// What one stream event meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// An event of this protocol, taken in.
    Used,
    /// Valid JSON but not an event this protocol knows; ignored.
    Foreign,
    /// The protocol's end marker.
    End,
}

/// Why one stream event could not be taken in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Not JSON, or JSON of the wrong types.
    Malformed,
    /// An error event from upstream.
    Upstream(String),
}

/// Hands one stream event (`name` from `event:`, `data` trimmed, not
/// `[DONE]`) to the protocol's handler. `Auto` must be resolved first.
pub(crate) fn event(p: Protocol, b: &mut Builder, name: &str, data: &[u8]) -> Result<Step, Fault> {
    match p {
        Protocol::OpenAiChat => chat::event(b, data),
        Protocol::OpenAiResponses => responses::event(b, name, data),
        Protocol::AnthropicMessages => anthropic::event(b, name, data),
        Protocol::Auto => Ok(Step::Foreign),
    }
}

/// A string borrowed from the event's bytes when it has no escapes, owned
/// otherwise: text deltas usually cost no allocation.
#[derive(Debug, Default)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Str<'a>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Longest upstream error message kept.
const MAX_ERROR_BYTES: usize = 512;

/// A readable message from an error object or event: `error.message`,
/// `message`, a string `error`, or the JSON itself, cut to a sane length.
pub(crate) fn error_message(v: &Value) -> String {
    let text = v
        .pointer("/error/message")
        .and_then(Value::as_str)
        .or_else(|| v.get("message").and_then(Value::as_str))
        .or_else(|| v.get("error").and_then(Value::as_str))
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string());
    text[..floor_char_boundary(&text, MAX_ERROR_BYTES)].to_string()
}

/// The upstream error a JSON body or event carries, if it is one: a non-null
/// `error` member (OpenAI), or `type: "error"` (Anthropic, Responses).
pub(crate) fn upstream_error(v: &Value) -> Option<String> {
    let typed = v.get("type").and_then(Value::as_str) == Some("error");
    let member = v.get("error").is_some_and(|e| !e.is_null())
        && v.get("choices").is_none()
        && v.get("output").is_none();
    (typed || member).then(|| error_message(v))
}

/// A non-negative integer field, if present.
pub(crate) fn u64_at(v: &Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(Value::as_u64)
}

/// A string field, if present.
pub(crate) fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}
