//! Anthropic Messages: `message_start` ... `message_stop` stream events and
//! `message` bodies.
//!
//! Text is every `text` block (thinking blocks are not text); tool calls are
//! `tool_use` blocks keyed by content-block index (server tools such as
//! `server_tool_use` are not the client's tool calls and are left out). Input
//! tokens include cache-creation and cache-read tokens; `message_delta` usage
//! is cumulative and replaces what `message_start` said.

use super::{Fault, Step, Str, error_message, str_at, u64_at, upstream_error};
use crate::builder::Builder;
use crate::error::DecodeError;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    message: Option<Message<'a>>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    content_block: Option<Block<'a>>,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(default)]
    input: Option<Value>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    text: Option<Str<'a>>,
    #[serde(borrow, default)]
    partial_json: Option<Str<'a>>,
    #[serde(borrow, default)]
    stop_reason: Option<Str<'a>>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl Usage {
    fn apply(&self, b: &mut Builder) {
        if let Some(n) = self.input_tokens {
            let cached = self
                .cache_creation_input_tokens
                .unwrap_or(0)
                .saturating_add(self.cache_read_input_tokens.unwrap_or(0));
            b.input_tokens(n.saturating_add(cached));
        }
        if let Some(n) = self.output_tokens {
            b.output_tokens(n);
        }
    }
}

/// One event of a Messages stream (`type` from the data, else `event:`).
pub(crate) fn event(b: &mut Builder, name: &str, data: &[u8]) -> Result<Step, Fault> {
    let ev: Event<'_> = serde_json::from_slice(data).map_err(|_| Fault::Malformed)?;
    let kind = ev.kind.as_deref().unwrap_or(name);
    let index = ev.index.unwrap_or(0);
    match kind {
        "message_start" => {
            if let Some(message) = &ev.message {
                if let Some(model) = &message.model {
                    b.model(model, false);
                }
                if let Some(usage) = &message.usage {
                    usage.apply(b);
                }
            }
        }
        "content_block_start" => {
            let Some(block) = &ev.content_block else {
                return Ok(Step::Used);
            };
            match block.kind.as_deref() {
                Some("text") => b.push_text(block.text.as_deref().unwrap_or("")),
                Some("tool_use") => {
                    b.start_tool(index);
                    if let Some(id) = &block.id {
                        b.tool_id(index, id);
                    }
                    if let Some(name) = &block.name {
                        b.tool_name(index, name);
                    }
                    if let Some(input) = &block.input {
                        b.tool_value(index, input.clone());
                    }
                }
                _ => {}
            }
        }
        "content_block_delta" => {
            let Some(delta) = &ev.delta else {
                return Ok(Step::Used);
            };
            match delta.kind.as_deref() {
                Some("text_delta") => b.push_text(delta.text.as_deref().unwrap_or("")),
                // Only into a tool_use block opened by content_block_start.
                Some("input_json_delta") if b.has_tool(index) => {
                    b.tool_args(index, delta.partial_json.as_deref().unwrap_or(""));
                }
                _ => {}
            }
        }
        "message_delta" => {
            if let Some(reason) = ev.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                b.finish_reason(reason);
            }
            if let Some(usage) = &ev.usage {
                usage.apply(b);
            }
        }
        "message_stop" => return Ok(Step::End),
        "content_block_stop" | "ping" => {}
        "error" => {
            let error = ev.error.unwrap_or(Value::Null);
            return Err(Fault::Upstream(error_message(
                &serde_json::json!({ "error": error }),
            )));
        }
        _ => return Ok(Step::Foreign),
    }
    Ok(Step::Used)
}

/// A whole `message` body.
pub(crate) fn json(b: &mut Builder, v: &Value) -> Result<(), DecodeError> {
    if let Some(message) = upstream_error(v) {
        return Err(DecodeError::Upstream(message));
    }
    let Some(blocks) = v.get("content").and_then(Value::as_array) else {
        return Err(DecodeError::Shape("anthropic-messages"));
    };
    if let Some(model) = str_at(v, "/model") {
        b.model(model, true);
    }
    for (key, block) in (0u64..).zip(blocks) {
        match str_at(block, "/type") {
            Some("text") => b.push_text(str_at(block, "/text").unwrap_or("")),
            Some("tool_use") => {
                b.start_tool(key);
                if let Some(id) = str_at(block, "/id") {
                    b.tool_id(key, id);
                }
                if let Some(name) = str_at(block, "/name") {
                    b.tool_name(key, name);
                }
                if let Some(input) = block.get("input") {
                    b.tool_value(key, input.clone());
                }
            }
            _ => {}
        }
    }
    if let Some(reason) = str_at(v, "/stop_reason") {
        b.finish_reason(reason);
    }
    if let Some(usage) = v.get("usage") {
        let usage = Usage {
            input_tokens: u64_at(usage, "/input_tokens"),
            output_tokens: u64_at(usage, "/output_tokens"),
            cache_creation_input_tokens: u64_at(usage, "/cache_creation_input_tokens"),
            cache_read_input_tokens: u64_at(usage, "/cache_read_input_tokens"),
        };
        usage.apply(b);
    }
    Ok(())
}
