//! The official `openai` and `anthropic` Python clients against Understudy.
//!
//! They run when `$UNDERSTUDY_PYTHON` (default `python3`) can import both;
//! otherwise a test says so and passes, unless `UNDERSTUDY_REQUIRE_CLIENTS=1`
//! (set by `.ci/run`, which installs them) makes that a failure.

use super::{CHAT_A, CHAT_B, llm_route, llm_rows};
use crate::support::*;
use std::time::Duration;

/// The Python that has both official clients, or `None` (a skip, said).
async fn python_with_clients() -> Option<String> {
    let python = std::env::var("UNDERSTUDY_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = tokio::process::Command::new(&python)
        .args(["-c", "import openai, anthropic"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(python);
    }
    let why = format!(
        "`{python} -c 'import openai, anthropic'` failed (pip install openai anthropic, or set UNDERSTUDY_PYTHON to a Python that has them)"
    );
    assert!(
        std::env::var("UNDERSTUDY_REQUIRE_CLIENTS").as_deref() != Ok("1"),
        "UNDERSTUDY_REQUIRE_CLIENTS=1: {why}"
    );
    eprintln!("note: skipped: {why}");
    None
}

/// Runs `script` with `arg` as `sys.argv[1]` and reads the JSON it prints.
async fn run(python: &str, script: &str, arg: &str, patience: Duration) -> serde_json::Value {
    let out = tokio::time::timeout(
        patience,
        tokio::process::Command::new(python)
            .args(["-c", script, arg])
            .output(),
    )
    .await
    .expect("the script finishes")
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The official `openai` Python client, streaming through Understudy,
/// receives the incumbent's stream unchanged: the raw bytes, and the parsed
/// chunks (id, text, usage).
#[tokio::test]
async fn the_openai_python_client_streams_through_unchanged() {
    let Some(python) = python_with_clients().await else {
        return;
    };
    let incumbent = upstream().sse(CHAT_A).spawn().await;
    let candidate = upstream().sse(CHAT_B).spawn().await;
    let mut proxy = proxy(&llm_route(
        "chat",
        "/v1",
        &incumbent,
        &candidate,
        "compare = { mode = \"llm\" }",
    ))
    .await;
    let script = r#"
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
args = dict(model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather in Paris?"}],
            stream=True, stream_options={"include_usage": True})
with client.chat.completions.with_streaming_response.create(**args) as raw:
    body = b"".join(raw.iter_bytes())
    served_by = raw.headers.get("x-understudy-served-by")
text, ids, usage = "", set(), None
for chunk in client.chat.completions.create(**args):
    ids.add(chunk.id)
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = [chunk.usage.prompt_tokens, chunk.usage.completion_tokens]
print(json.dumps({"raw": body.decode(), "served_by": served_by, "text": text, "ids": sorted(ids), "usage": usage}))
"#;
    let got = run(&python, script, &proxy.url("/v1"), PATIENCE).await;
    assert_eq!(got["raw"], CHAT_A, "the incumbent's stream, byte for byte");
    assert_eq!(got["served_by"], "incumbent");
    assert_eq!(
        got["ids"],
        serde_json::json!(["chatcmpl-9xQ2kLmN0pRsT1uV3wX4yZ5aB6cD"])
    );
    assert_eq!(
        got["text"],
        "Bonjour ! Voici la météo à Paris :\n- 18 °C, \"nuageux\" ☁️\n- vent 12 km/h 🌬️"
    );
    assert_eq!(got["usage"], serde_json::json!([31, 27]));
    proxy.stop().await;
    let rows = llm_rows(&proxy.db);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.verdict == "match"), "{rows:?}");
}

const CHAT_REC: &str = include_str!("../../fixtures/llm/openai-chat-london-text.sse");
const RESPONSES_REC: &str = include_str!("../../fixtures/llm/openai-responses-paris-text.sse");
const ANTHROPIC_REC: &str =
    include_str!("../../fixtures/llm/anthropic-text-then-tool-use-paris.sse");

/// A `recommend` stage on recorded streams of the three protocols: the
/// official clients (raw iteration and their stream helpers) parse each
/// stream with the `understudy.suggestion` event at its end exactly as they
/// parse the recording alone, and the raw bytes are the recording plus the
/// event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_clients_parse_a_recommend_stream_with_the_suggestion_event() {
    let Some(python) = python_with_clients().await else {
        return;
    };
    // The Anthropic recording lacks the blank line after its last event.
    let anthropic = format!("{ANTHROPIC_REC}\n\n");
    let candidate = upstream().sse(CHAT_B).spawn().await;
    let mut routes = String::new();
    let mut upstreams = Vec::new();
    for (name, body) in [
        ("chat", CHAT_REC),
        ("responses", RESPONSES_REC),
        ("anthropic", anthropic.as_str()),
    ] {
        let incumbent = upstream().sse(body).spawn().await;
        routes += &llm_route(
            name,
            &format!("/{name}"),
            &incumbent,
            &candidate,
            "segment = { header = \"x-tier\", values = [\"gold\"] }\n\
             compare = { mode = \"llm\" }\n\
             rollout = { segments = { gold = 100.0 } }\n\
             [routes.autonomy]\nstages = { gold = \"recommend\" }\nsuggest_timeout = \"2s\"\n",
        );
        upstreams.push(incumbent);
    }
    let mut proxy = proxy(&routes).await;
    let script = r#"
import json, sys, urllib.request, openai, anthropic
base, out = sys.argv[1], {}
gold = {"x-tier": "gold"}
msgs = [{"role": "user", "content": "What is the capital of the UK?"}]
def raw(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={**gold, "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()
o = openai.OpenAI(base_url=base + "/chat/v1", api_key="sk-test", max_retries=0, default_headers=gold)
ids, text = set(), ""
for chunk in o.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True):
    ids.add(chunk.id)
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
with o.chat.completions.stream(model="gpt-4o-mini", messages=msgs) as s:
    for _ in s: pass
    helper = s.get_final_completion().choices[0].message.content
out["chat"] = {"ids": sorted(map(str, ids)), "text": text, "helper": helper,
               "raw": raw("/chat/v1/chat/completions", {"model": "m", "messages": msgs, "stream": True})}
o = openai.OpenAI(base_url=base + "/responses/v1", api_key="sk-test", max_retries=0, default_headers=gold)
types, text = [], ""
for e in o.responses.create(model="gpt-4o", input="Capital of France?", stream=True):
    types.append(e.type)
    if e.type == "response.output_text.delta":
        text += e.delta
with o.responses.stream(model="gpt-4o", input="Capital of France?") as s:
    for _ in s: pass
    helper = s.get_final_response().output_text
out["responses"] = {"types": types, "text": text, "helper": helper,
                    "raw": raw("/responses/v1/responses", {"model": "m", "input": "x", "stream": True})}
a = anthropic.Anthropic(base_url=base + "/anthropic", api_key="sk-test", max_retries=0, default_headers=gold)
types, text = [], ""
for e in a.messages.create(model="claude-sonnet-4-20250514", max_tokens=100, messages=msgs, stream=True):
    types.append(e.type)
    if e.type == "content_block_delta" and e.delta.type == "text_delta":
        text += e.delta.text
with a.messages.stream(model="claude-sonnet-4-20250514", max_tokens=100, messages=msgs) as s:
    for _ in s: pass
    m = s.get_final_message()
    helper = [[b.type, getattr(b, "text", None) or getattr(b, "input", None)] for b in m.content]
out["anthropic"] = {"types": types, "text": text, "helper": helper,
                    "raw": raw("/anthropic/v1/messages", {"model": "m", "messages": msgs, "stream": True})}
print(json.dumps(out))
"#;
    // Importing both clients takes seconds on a loaded machine.
    let got = run(&python, script, &proxy.url(""), Duration::from_secs(60)).await;
    // The raw stream: the recording, then the one event.
    for (name, rec) in [
        ("chat", CHAT_REC),
        ("responses", RESPONSES_REC),
        ("anthropic", anthropic.as_str()),
    ] {
        let raw = got[name]["raw"].as_str().unwrap();
        let event = raw
            .strip_prefix(rec)
            .unwrap_or_else(|| panic!("{name}: the recording first: {raw}"));
        assert!(
            event.starts_with(
                "event: understudy.suggestion\ndata: {\"type\":\"understudy.suggestion\""
            ),
            "{name}: {event}"
        );
    }
    let chat = &got["chat"];
    assert_eq!(
        chat["ids"],
        serde_json::json!(["chatcmpl-Dx0Xq5Xx9rHB2ehcHZCRDsnuymUXc"]),
        "no chunk but the recording's"
    );
    assert_eq!(chat["text"], "The capital of the UK is London.");
    assert_eq!(chat["helper"], "The capital of the UK is London.");
    let responses = &got["responses"];
    assert_eq!(responses["text"], "The capital of France is Paris.");
    assert_eq!(responses["helper"], "The capital of France is Paris.");
    let types = responses["types"].as_array().unwrap();
    assert_eq!(types[types.len() - 2], "response.completed");
    assert_eq!(types[types.len() - 1], "understudy.suggestion");
    let anthropic = &got["anthropic"];
    assert_eq!(
        anthropic["text"],
        "I'll check the current weather in Paris for you."
    );
    assert_eq!(
        anthropic["helper"],
        serde_json::json!([
            ["text", "I'll check the current weather in Paris for you."],
            ["tool_use", {"location": "Paris"}]
        ])
    );
    let types = anthropic["types"].as_array().unwrap();
    assert_eq!(types[types.len() - 2], "message_stop");
    assert_eq!(types[types.len() - 1], "understudy.suggestion");
    let m = proxy.metrics().await;
    for name in ["chat", "responses", "anthropic"] {
        let series = format!(r#"understudy_suggestions_total{{outcome="event",route="{name}"}}"#);
        // Raw, iterated and through the helper: three streams per protocol.
        assert_eq!(metric(&m, &series), 3.0, "{m}");
    }
    proxy.stop().await;
    drop(upstreams);
}
