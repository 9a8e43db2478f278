//! OpenAI Responses API: `response.*` stream events and `response` bodies.
//!
//! Text is `output_text` (and `refusal`) parts of `message` items; tool calls
//! are `function_call` items keyed by `output_index` (or their item id). The
//! `.done` arguments replace the joined fragments. The finish reason is
//! `incomplete_details.reason` when present, else the response `status`
//! (`completed`, `incomplete`). Reasoning items are not text.

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
    delta: Option<Str<'a>>,
    #[serde(default)]
    output_index: Option<u64>,
    #[serde(borrow, default)]
    item_id: Option<Str<'a>>,
    #[serde(borrow, default)]
    item: Option<Item<'a>>,
    #[serde(borrow, default)]
    arguments: Option<Str<'a>>,
    /// The response object of lifecycle events (`response.created`, ...).
    #[serde(default)]
    response: Option<Value>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    name: Option<Str<'a>>,
    #[serde(borrow, default)]
    arguments: Option<Str<'a>>,
}

/// One event of a Responses stream (`type` from the data, else `event:`).
pub(crate) fn event(b: &mut Builder, name: &str, data: &[u8]) -> Result<Step, Fault> {
    let ev: Event<'_> = serde_json::from_slice(data).map_err(|_| Fault::Malformed)?;
    let kind = ev.kind.as_deref().unwrap_or(name);
    match kind {
        "response.output_text.delta" | "response.refusal.delta" => {
            if let Some(delta) = &ev.delta {
                b.push_text(delta);
            }
        }
        "response.output_item.added" | "response.output_item.done" => {
            let Some(item) = &ev.item else {
                return Ok(Step::Used);
            };
            if item.kind.as_deref() != Some("function_call") {
                return Ok(Step::Used);
            }
            let key = key(b, ev.output_index, item.id.as_deref());
            b.start_tool(key);
            if let Some(id) = &item.id {
                b.tool_id(key, id);
            }
            if let Some(name) = &item.name {
                b.tool_name(key, name);
            }
            match &item.arguments {
                Some(args) if kind.ends_with(".done") => b.tool_args_final(key, args),
                Some(args) => b.tool_args(key, args),
                None => {}
            }
        }
        "response.function_call_arguments.delta" => {
            let key = key(b, ev.output_index, ev.item_id.as_deref());
            if let Some(delta) = &ev.delta {
                b.tool_args(key, delta);
            }
        }
        "response.function_call_arguments.done" => {
            let key = key(b, ev.output_index, ev.item_id.as_deref());
            if let Some(args) = &ev.arguments {
                b.tool_args_final(key, args);
            }
        }
        "response.created" | "response.in_progress" | "response.queued" => {
            if let Some(model) = ev.response.as_ref().and_then(|r| str_at(r, "/model")) {
                b.model(model, false);
            }
        }
        "response.completed" | "response.incomplete" => {
            if let Some(response) = &ev.response {
                final_response(b, response, !b.has_content());
            }
            return Ok(Step::End);
        }
        "response.failed" => {
            let message = ev
                .response
                .as_ref()
                .and_then(|r| r.get("error"))
                .filter(|e| !e.is_null())
                .map(|e| error_message(&serde_json::json!({ "error": e })))
                .unwrap_or_else(|| "response failed".to_string());
            return Err(Fault::Upstream(message));
        }
        "error" => {
            let v: Value = serde_json::from_slice(data).map_err(|_| Fault::Malformed)?;
            return Err(Fault::Upstream(error_message(&v)));
        }
        other if other.starts_with("response.") => {}
        _ => return Ok(Step::Foreign),
    }
    Ok(Step::Used)
}

/// The tool-call key: the output index, else the key of the item id, else new.
fn key(b: &Builder, output_index: Option<u64>, item_id: Option<&str>) -> u64 {
    match (output_index, item_id) {
        (Some(index), _) => index,
        (None, Some(id)) => b.key_of_id(id).unwrap_or_else(|| b.next_key()),
        (None, None) => b.last_key().unwrap_or(0),
    }
}

/// Takes model, usage and finish reason from a final response object, and
/// its output too when `with_output` (a stream that sent no deltas).
fn final_response(b: &mut Builder, r: &Value, with_output: bool) {
    if let Some(model) = str_at(r, "/model") {
        b.model(model, true);
    }
    let reason = str_at(r, "/incomplete_details/reason").or_else(|| str_at(r, "/status"));
    if let Some(reason) = reason {
        b.finish_reason(reason);
    }
    if let Some(n) = u64_at(r, "/usage/input_tokens") {
        b.input_tokens(n);
    }
    if let Some(n) = u64_at(r, "/usage/output_tokens") {
        b.output_tokens(n);
    }
    if with_output {
        output(
            b,
            r.get("output")
                .and_then(Value::as_array)
                .map_or(&[], Vec::as_slice),
        );
    }
}

/// The `output` items of a response object.
fn output(b: &mut Builder, items: &[Value]) {
    for (key, item) in (0u64..).zip(items) {
        match str_at(item, "/type") {
            Some("message") => {
                let parts = item.get("content").and_then(Value::as_array);
                for part in parts.into_iter().flatten() {
                    match str_at(part, "/type") {
                        Some("output_text") => b.push_text(str_at(part, "/text").unwrap_or("")),
                        Some("refusal") => b.push_text(str_at(part, "/refusal").unwrap_or("")),
                        _ => {}
                    }
                }
            }
            Some("function_call") => {
                b.start_tool(key);
                if let Some(id) = str_at(item, "/id") {
                    b.tool_id(key, id);
                }
                if let Some(name) = str_at(item, "/name") {
                    b.tool_name(key, name);
                }
                match item.get("arguments") {
                    Some(Value::String(args)) => b.tool_args(key, args),
                    Some(Value::Null) | None => {}
                    Some(other) => b.tool_value(key, other.clone()),
                }
            }
            _ => {}
        }
    }
}

/// A whole `response` body.
pub(crate) fn json(b: &mut Builder, v: &Value) -> Result<(), DecodeError> {
    if let Some(message) = upstream_error(v) {
        return Err(DecodeError::Upstream(message));
    }
    let is_response =
        str_at(v, "/object") == Some("response") || v.get("output").is_some_and(Value::is_array);
    if !is_response {
        return Err(DecodeError::Shape("openai-responses"));
    }
    if str_at(v, "/status") == Some("failed") {
        let message = v
            .get("error")
            .filter(|e| !e.is_null())
            .map(|e| error_message(&serde_json::json!({ "error": e })))
            .unwrap_or_else(|| "response failed".to_string());
        return Err(DecodeError::Upstream(message));
    }
    final_response(b, v, true);
    Ok(())
}
