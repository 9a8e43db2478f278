//! The official `openai` Python client against Understudy.

use super::{CHAT_A, CHAT_B, llm_route, llm_rows};
use crate::support::*;

/// The official `openai` Python client, streaming through Understudy,
/// receives the incumbent's stream unchanged: the raw bytes, and the parsed
/// chunks (id, text, usage). Runs when `$UNDERSTUDY_PYTHON` (default
/// `python3`) can `import openai`; otherwise it says so and passes.
#[tokio::test]
async fn the_openai_python_client_streams_through_unchanged() {
    let python = std::env::var("UNDERSTUDY_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_openai = tokio::process::Command::new(&python)
        .args(["-c", "import openai"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !has_openai {
        eprintln!(
            "note: skipped: `{python} -c 'import openai'` failed (pip install openai, or set UNDERSTUDY_PYTHON to a Python that has it)"
        );
        return;
    }
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
    let out = tokio::time::timeout(
        PATIENCE,
        tokio::process::Command::new(&python)
            .args(["-c", script, &proxy.url("/v1")])
            .output(),
    )
    .await
    .expect("the client finishes")
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
