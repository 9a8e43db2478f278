//! Accumulates the parts of one completion (text, tool calls, usage, ...) under
//! the [`Limits`], for the stream and the JSON decoders alike.

use crate::completion::{Completion, Limits, MAX_NOTES, ToolCall, Usage};
use serde_json::Value;

/// One tool call being assembled, keyed by its protocol index.
#[derive(Debug)]
struct Slot {
    key: u64,
    id: Option<String>,
    name: String,
    /// Argument fragments joined.
    args: String,
    /// Arguments already parsed (Anthropic's `input`, or a non-string
    /// `arguments`), used when no fragment arrived.
    value: Option<Value>,
    truncated: bool,
}

/// The completion under construction.
#[derive(Debug)]
pub(crate) struct Builder {
    limits: Limits,
    text: String,
    /// Text plus argument bytes held, against `limits.max_content_bytes`.
    used: usize,
    tools: Vec<Slot>,
    finish_reason: Option<String>,
    input: Option<u64>,
    output: Option<u64>,
    model: Option<String>,
    truncated: bool,
    lossy: bool,
    dropped_tools: bool,
    notes: Vec<String>,
    content_seen: bool,
}

impl Builder {
    pub(crate) fn new(limits: Limits) -> Builder {
        Builder {
            limits,
            text: String::new(),
            used: 0,
            tools: Vec::new(),
            finish_reason: None,
            input: None,
            output: None,
            model: None,
            truncated: false,
            lossy: false,
            dropped_tools: false,
            notes: Vec::new(),
            content_seen: false,
        }
    }

    /// Whether any text or tool call has been seen (for time to first token).
    pub(crate) fn content_seen(&self) -> bool {
        self.content_seen
    }

    /// Whether any text or tool call has been kept.
    pub(crate) fn has_content(&self) -> bool {
        !self.text.is_empty() || !self.tools.is_empty()
    }

    /// Takes `want` bytes of budget, at most what is left; returns how many.
    fn take_budget(&mut self, want: usize) -> usize {
        let left = self.limits.max_content_bytes.saturating_sub(self.used);
        let got = want.min(left);
        self.used += got;
        got
    }

    /// Appends a text fragment.
    pub(crate) fn push_text(&mut self, fragment: &str) {
        if fragment.is_empty() {
            return;
        }
        self.content_seen = true;
        let got = self.take_budget(fragment.len());
        let cut = floor_char_boundary(fragment, got);
        self.used -= got - cut;
        self.text.push_str(&fragment[..cut]);
        if cut < fragment.len() && !self.truncated {
            self.truncated = true;
            self.note(format!(
                "content cut at {} bytes",
                self.limits.max_content_bytes
            ));
        }
    }

    /// Index of the slot with `key`, opening it (a tool call starts) if new.
    /// `None` when the tool-call limit is reached.
    fn slot(&mut self, key: u64) -> Option<usize> {
        if let Some(at) = self.tools.iter().rposition(|s| s.key == key) {
            return Some(at);
        }
        if self.tools.len() >= self.limits.max_tool_calls {
            if !self.dropped_tools {
                self.dropped_tools = true;
                self.lossy(format!(
                    "more than {} tool calls; the rest dropped",
                    self.limits.max_tool_calls
                ));
            }
            return None;
        }
        self.content_seen = true;
        self.tools.push(Slot {
            key,
            id: None,
            name: String::new(),
            args: String::new(),
            value: None,
            truncated: false,
        });
        Some(self.tools.len() - 1)
    }

    /// Opens (or finds) the tool call `key`.
    pub(crate) fn start_tool(&mut self, key: u64) {
        // Opening is the side effect; the index is not needed here.
        let _opened: Option<usize> = self.slot(key);
    }

    /// Whether tool call `key` is open.
    pub(crate) fn has_tool(&self, key: u64) -> bool {
        self.tools.iter().any(|s| s.key == key)
    }

    /// The key of the tool call with this provider id, if one is open.
    pub(crate) fn key_of_id(&self, id: &str) -> Option<u64> {
        self.tools
            .iter()
            .find(|s| s.id.as_deref() == Some(id))
            .map(|s| s.key)
    }

    /// The key of the most recently opened tool call.
    pub(crate) fn last_key(&self) -> Option<u64> {
        self.tools.last().map(|s| s.key)
    }

    /// One more than the largest key in use (a key for a new tool call).
    pub(crate) fn next_key(&self) -> u64 {
        self.tools
            .iter()
            .map(|s| s.key.saturating_add(1))
            .max()
            .unwrap_or(0)
    }

    /// Records the provider's id of tool call `key` (first one wins).
    pub(crate) fn tool_id(&mut self, key: u64, id: &str) {
        if let Some(at) = self.slot(key) {
            let slot = &mut self.tools[at];
            if slot.id.is_none() && !id.is_empty() {
                slot.id = Some(bounded(id));
            }
        }
    }

    /// Sets the name of tool call `key`; the first non-empty name wins (names
    /// are not streamed in fragments; some servers repeat them).
    pub(crate) fn tool_name(&mut self, key: u64, name: &str) {
        if let Some(at) = self.slot(key) {
            let slot = &mut self.tools[at];
            if slot.name.is_empty() {
                slot.name = bounded(name);
            }
        }
    }

    /// Appends an argument fragment to tool call `key`.
    pub(crate) fn tool_args(&mut self, key: u64, fragment: &str) {
        let Some(at) = self.slot(key) else { return };
        if fragment.is_empty() {
            return;
        }
        let got = self.take_budget(fragment.len());
        let cut = floor_char_boundary(fragment, got);
        self.used -= got - cut;
        self.tools[at].args.push_str(&fragment[..cut]);
        if cut < fragment.len() {
            self.tools[at].truncated = true;
            if !self.truncated {
                self.truncated = true;
                self.note(format!(
                    "content cut at {} bytes",
                    self.limits.max_content_bytes
                ));
            }
        }
    }

    /// Replaces the fragments of tool call `key` with its complete arguments
    /// (the Responses API's `.done` event is authoritative).
    pub(crate) fn tool_args_final(&mut self, key: u64, arguments: &str) {
        let Some(at) = self.slot(key) else { return };
        let old = std::mem::take(&mut self.tools[at].args);
        self.used = self.used.saturating_sub(old.len());
        self.tools[at].truncated = false;
        self.tool_args(key, arguments);
    }

    /// Sets already-parsed arguments of tool call `key`, used when no fragment
    /// arrives.
    pub(crate) fn tool_value(&mut self, key: u64, value: Value) {
        if let Some(at) = self.slot(key) {
            self.tools[at].value = Some(value);
        }
    }

    pub(crate) fn finish_reason(&mut self, reason: &str) {
        self.finish_reason = Some(bounded(reason));
    }

    pub(crate) fn has_finish_reason(&self) -> bool {
        self.finish_reason.is_some()
    }

    /// Records the model; `overwrite` lets a later, final report win.
    pub(crate) fn model(&mut self, model: &str, overwrite: bool) {
        if !model.is_empty() && (overwrite || self.model.is_none()) {
            self.model = Some(bounded(model));
        }
    }

    pub(crate) fn input_tokens(&mut self, n: u64) {
        self.input = Some(n);
    }

    pub(crate) fn output_tokens(&mut self, n: u64) {
        self.output = Some(n);
    }

    /// Marks the completion as possibly missing parts, with a reason.
    pub(crate) fn lossy(&mut self, why: String) {
        self.lossy = true;
        self.note(why);
    }

    /// Adds a remark (the first [`MAX_NOTES`] are kept).
    pub(crate) fn note(&mut self, remark: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(remark);
        }
    }

    /// The completion; `ended` says whether the answer reached its end.
    pub(crate) fn build(mut self, ended: bool) -> Completion {
        self.tools.sort_by_key(|s| s.key);
        let slots = std::mem::take(&mut self.tools);
        let mut tool_calls = Vec::with_capacity(slots.len());
        for (n, slot) in slots.into_iter().enumerate() {
            let arguments = self.arguments(n, slot.args, slot.value, slot.truncated);
            tool_calls.push(ToolCall {
                name: slot.name,
                arguments,
            });
        }
        let usage = match (self.input, self.output) {
            (Some(input), Some(output)) => Some(Usage { input, output }),
            (None, None) => None,
            _ => {
                self.note("usage reports only one of input and output tokens".to_string());
                None
            }
        };
        if !ended {
            self.note("answer ended before its end marker or finish reason".to_string());
        }
        Completion {
            text: self.text,
            tool_calls,
            finish_reason: self.finish_reason,
            usage,
            model: self.model,
            truncated: self.truncated,
            incomplete: self.lossy || !ended,
            notes: self.notes,
        }
    }

    /// Parses joined argument fragments; empty means `{}` (a call without
    /// arguments), unparseable is kept as a JSON string and noted.
    fn arguments(&mut self, n: usize, args: String, value: Option<Value>, cut: bool) -> Value {
        if args.trim().is_empty() {
            return value.unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        }
        match serde_json::from_str::<Value>(&args) {
            Ok(parsed) => parsed,
            Err(_) => {
                let why = if cut { "cut at the limit" } else { "not JSON" };
                self.note(format!("tool call {n} arguments {why}; kept as a string"));
                Value::String(args)
            }
        }
    }
}

/// Names, ids and reasons are short; a hostile one is cut at this many bytes.
const MAX_LABEL_BYTES: usize = 256;

fn bounded(s: &str) -> String {
    s[..floor_char_boundary(s, MAX_LABEL_BYTES)].to_string()
}

/// The largest char boundary of `s` at or below `at`.
pub(crate) fn floor_char_boundary(s: &str, at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    let mut at = at;
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}
