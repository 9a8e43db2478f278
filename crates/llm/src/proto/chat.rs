//! OpenAI chat completions: `chat.completion.chunk` events and
//! `chat.completion` bodies.
//!
//! Only choice `index` 0 is read (with `n > 1` the others are alternatives).
//! Tool-call fragments are joined by their `index`; a server that omits the
//! index is handled by `id` (a new id opens a new call, no id continues the
//! last one). `refusal` text counts as text.

use super::{Fault, Step, Str, str_at, u64_at, upstream_error};
use crate::builder::Builder;
use crate::error::DecodeError;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    object: Option<Str<'a>>,
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<ChatUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Str<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Str<'a>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolDelta<'a>>>,
    /// The deprecated single `function_call`.
    #[serde(borrow, default)]
    function_call: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    arguments: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct ChatUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

/// One `data:` payload of a chat stream.
pub(crate) fn event(b: &mut Builder, data: &[u8]) -> Result<Step, Fault> {
    let chunk: Chunk<'_> = serde_json::from_slice(data).map_err(|_| Fault::Malformed)?;
    if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
        let wrapped = serde_json::json!({ "error": error });
        return Err(Fault::Upstream(super::error_message(&wrapped)));
    }
    let is_chunk = chunk
        .object
        .as_deref()
        .is_some_and(|o| o.starts_with("chat.completion"));
    // The usage chunk has `choices: []`; some servers leave the key out.
    if chunk.choices.is_none() && !is_chunk && chunk.usage.is_none() {
        return Ok(Step::Foreign);
    }
    let choices = chunk.choices.unwrap_or_default();
    if let Some(model) = &chunk.model {
        b.model(model, false);
    }
    for choice in choices.into_iter().filter(|c| c.index.unwrap_or(0) == 0) {
        if let Some(delta) = choice.delta {
            apply_delta(b, delta);
        }
        if let Some(reason) = &choice.finish_reason {
            b.finish_reason(reason);
        }
    }
    if let Some(usage) = chunk.usage {
        if let Some(n) = usage.prompt_tokens {
            b.input_tokens(n);
        }
        if let Some(n) = usage.completion_tokens {
            b.output_tokens(n);
        }
    }
    Ok(Step::Used)
}

fn apply_delta(b: &mut Builder, delta: Delta<'_>) {
    if let Some(text) = &delta.content {
        b.push_text(text);
    }
    if let Some(text) = &delta.refusal {
        b.push_text(text);
    }
    for call in delta.tool_calls.into_iter().flatten() {
        let key = match (call.index, call.id.as_deref()) {
            (Some(index), _) => index,
            (None, Some(id)) if !id.is_empty() => b.key_of_id(id).unwrap_or_else(|| b.next_key()),
            (None, _) => b.last_key().unwrap_or(0),
        };
        b.start_tool(key);
        if let Some(id) = &call.id {
            b.tool_id(key, id);
        }
        if let Some(function) = call.function {
            apply_function(b, key, &function);
        }
    }
    if let Some(function) = delta.function_call {
        b.start_tool(0);
        apply_function(b, 0, &function);
    }
}

fn apply_function(b: &mut Builder, key: u64, f: &FunctionDelta<'_>) {
    if let Some(name) = &f.name {
        b.tool_name(key, name);
    }
    if let Some(args) = &f.arguments {
        b.tool_args(key, args);
    }
}

/// A whole `chat.completion` body.
pub(crate) fn json(b: &mut Builder, v: &Value) -> Result<(), DecodeError> {
    if let Some(message) = upstream_error(v) {
        return Err(DecodeError::Upstream(message));
    }
    let Some(choices) = v.get("choices").and_then(Value::as_array) else {
        return Err(DecodeError::Shape("openai-chat"));
    };
    if let Some(model) = str_at(v, "/model") {
        b.model(model, true);
    }
    let choice = choices
        .iter()
        .find(|c| c.get("index").and_then(Value::as_u64) == Some(0))
        .or_else(|| choices.first());
    if let Some(choice) = choice {
        let message = choice.get("message").unwrap_or(&Value::Null);
        match message.get("content") {
            Some(Value::String(text)) => b.push_text(text),
            // Some compatible servers answer with content parts.
            Some(Value::Array(parts)) => {
                for part in parts {
                    if let Some(text) = part.get("text").and_then(Value::as_str) {
                        b.push_text(text);
                    }
                }
            }
            _ => {}
        }
        if let Some(text) = str_at(message, "/refusal") {
            b.push_text(text);
        }
        let calls = message.get("tool_calls").and_then(Value::as_array);
        for (key, call) in (0u64..).zip(calls.into_iter().flatten()) {
            b.start_tool(key);
            if let Some(id) = str_at(call, "/id") {
                b.tool_id(key, id);
            }
            function_json(b, key, call.get("function").unwrap_or(&Value::Null));
        }
        if let Some(function) = message.get("function_call").filter(|f| f.is_object()) {
            b.start_tool(0);
            function_json(b, 0, function);
        }
        if let Some(reason) = str_at(choice, "/finish_reason") {
            b.finish_reason(reason);
        }
    }
    if let Some(n) = u64_at(v, "/usage/prompt_tokens") {
        b.input_tokens(n);
    }
    if let Some(n) = u64_at(v, "/usage/completion_tokens") {
        b.output_tokens(n);
    }
    Ok(())
}

fn function_json(b: &mut Builder, key: u64, f: &Value) {
    if let Some(name) = str_at(f, "/name") {
        b.tool_name(key, name);
    }
    match f.get("arguments") {
        Some(Value::String(args)) => b.tool_args(key, args),
        Some(Value::Null) | None => {}
        Some(other) => b.tool_value(key, other.clone()),
    }
}
