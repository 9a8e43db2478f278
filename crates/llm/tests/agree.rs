//! Tool-call agreement between two completions.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use understudy_llm::{
    Completion, Protocol, ToolCall, agree, decode_json, exact_text, structural_diff,
};

fn calls(calls: &[(&str, Value)]) -> Completion {
    Completion {
        tool_calls: calls
            .iter()
            .map(|(name, arguments)| ToolCall {
                name: (*name).into(),
                arguments: arguments.clone(),
            })
            .collect(),
        finish_reason: Some("tool_calls".into()),
        ..Completion::default()
    }
}

#[test]
fn the_same_calls_across_protocols_agree() {
    let chat = whole(Protocol::OpenAiChat, &fixture("chat_tools.sse")).unwrap();
    let responses = whole(Protocol::OpenAiResponses, &fixture("responses_tools.sse")).unwrap();
    let anthropic = decode_json(
        Protocol::AnthropicMessages,
        &fixture("anthropic_tools.json"),
    )
    .unwrap();
    for (a, b) in [
        (&chat, &responses),
        (&chat, &anthropic),
        (&responses, &anthropic),
    ] {
        let r = agree(a, b, &structural_diff);
        assert!(r.agrees(), "{r:?}");
        // stop reasons "tool_calls", "completed" (with tool calls), "tool_use".
        assert!(r.informational.is_empty(), "{r:?}");
    }
    assert!(!exact_text(&chat, &anthropic));
}

#[test]
fn argument_differences_are_pointers() {
    let a = calls(&[(
        "get_weather",
        json!({"location": "Paris", "unit": "celsius", "days": 1}),
    )]);
    let b = calls(&[(
        "get_weather",
        json!({"unit": "celsius", "location": "Lyon", "days": 1.0, "extra/x~": true}),
    )]);
    let r = agree(&a, &b, &structural_diff);
    assert!(!r.agrees());
    assert_eq!(
        r.diffs,
        vec![
            "/tool_calls/0/arguments/location",
            "/tool_calls/0/arguments/extra~1x~0"
        ]
    );
}

#[test]
fn names_and_counts() {
    let a = calls(&[("f", json!({})), ("g", json!({"x": 1}))]);
    let b = calls(&[("f", json!({})), ("h", json!({"x": 2})), ("i", json!({}))]);
    let r = agree(&a, &b, &structural_diff);
    assert_eq!(r.diffs, vec!["/tool_calls", "/tool_calls/1/name"]);
    let none = Completion::default();
    assert_eq!(
        agree(&a, &none, &structural_diff).diffs,
        vec!["/tool_calls"]
    );
    assert!(agree(&none, &none, &structural_diff).agrees());
}

#[test]
fn the_callback_decides_arguments() {
    // A json-mode stand-in: ignore /tool_calls/*/arguments/request_id.
    let ignoring = |prefix: &str, a: &Value, b: &Value| -> Vec<String> {
        structural_diff(prefix, a, b)
            .into_iter()
            .filter(|p| !p.ends_with("/request_id"))
            .collect()
    };
    let a = calls(&[("f", json!({"q": "x", "request_id": "r1"}))]);
    let b = calls(&[("f", json!({"q": "x", "request_id": "r2"}))]);
    assert!(!agree(&a, &b, &structural_diff).agrees());
    assert!(agree(&a, &b, &ignoring).agrees());
    // Prefixes handed to the callback.
    let seen = std::cell::RefCell::new(Vec::new());
    let record = |prefix: &str, _: &Value, _: &Value| {
        seen.borrow_mut().push(prefix.to_string());
        Vec::new()
    };
    let two = calls(&[("f", json!(1)), ("g", json!(2))]);
    let _agreement = agree(&two, &two, &record);
    assert_eq!(
        *seen.borrow(),
        vec!["/tool_calls/0/arguments", "/tool_calls/1/arguments"]
    );
}

#[test]
fn finish_reason_is_informational() {
    let text = |reason: &str| Completion {
        text: "hi".into(),
        finish_reason: Some(reason.into()),
        ..Completion::default()
    };
    let r = agree(&text("stop"), &text("end_turn"), &structural_diff);
    assert!(r.agrees() && r.informational.is_empty());
    let r = agree(&text("stop"), &text("length"), &structural_diff);
    assert!(r.agrees());
    assert_eq!(r.informational, vec!["/finish_reason"]);
    assert!(exact_text(&text("stop"), &text("length")));
}

#[test]
fn unparsed_arguments_compare_as_strings() {
    let a = calls(&[("f", json!("{'a': 1}"))]);
    let b = calls(&[("f", json!({"a": 1}))]);
    assert_eq!(
        agree(&a, &b, &structural_diff).diffs,
        vec!["/tool_calls/0/arguments"]
    );
    assert!(agree(&a, &a, &structural_diff).agrees());
}

#[test]
fn arrays_by_position() {
    let d = structural_diff("/p", &json!([1, 2, 3]), &json!([1, 5]));
    assert_eq!(d, vec!["/p/1", "/p/2"]);
}
