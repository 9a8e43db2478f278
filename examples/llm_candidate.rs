//! An LLM candidate behind a rules-based incumbent, in-process: the config of
//! `examples/llm-candidate.toml`, a rules engine that answers chat
//! completions as JSON, an "LLM" that streams its answers as server-sent
//! events (30 ms to the first token), a judge, some traffic, then the report.
//!
//! Run with `cargo run --example llm_candidate`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::time::Duration;

/// The question in a chat request: the last message's content.
async fn question(req: Request<hyper::body::Incoming>) -> String {
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let v: Value = body
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    v["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// The rules engine: two canned answers, in the chat-completions JSON shape.
fn rules(q: &str) -> String {
    if q.contains("refund") {
        "Refunds are processed within 5 business days.".into()
    } else {
        "Please contact support@example.com for help.".into()
    }
}

/// The "LLM": a paraphrase for refunds, a different answer for the rest
/// (right for the pro plan's questions, wrong for the others).
fn llm(q: &str) -> String {
    if q.contains("refund") {
        "Your refund will be processed within 5 business days.".into()
    } else if q.contains("pro") {
        "Please contact support@example.com and we will help.".into()
    } else {
        "I am not sure, try restarting the app.".into()
    }
}

fn chunk(delta: Value, finish: Value) -> String {
    let c = json!({"id": "chatcmpl-llm", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {c}\n\n")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let incumbent = understudy::loopback::serve(|req| async {
        let text = rules(&question(req).await);
        let answer = json!({"id": "rules-1", "object": "chat.completion", "model": "rules-v7",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}});
        let mut resp = Response::new(Full::new(Bytes::from(answer.to_string())));
        resp.headers_mut().insert("content-type", "application/json".parse().expect("static"));
        resp
    })
    .await?;
    // Streams word by word, as a chat-completions endpoint with "stream": true does.
    let candidate = understudy::loopback::serve(|req| async {
        let text = llm(&question(req).await);
        let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
        events.extend(text.split_inclusive(' ').map(|w| chunk(json!({"content": w}), Value::Null)));
        events.push(chunk(json!({}), json!("stop")));
        events.push("data: {\"id\":\"chatcmpl-llm\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":14,\"completion_tokens\":11,\"total_tokens\":25}}\n\ndata: [DONE]\n\n".into());
        let stream = futures_util::stream::unfold(events.into_iter(), |mut rest| async move {
            let next = rest.next()?;
            tokio::time::sleep(Duration::from_millis(if next.contains("\"content\":\"\"") { 30 } else { 2 })).await;
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(next))), rest))
        });
        let mut resp = Response::new(BoxBody::new(StreamBody::new(stream)));
        resp.headers_mut().insert("content-type", "text/event-stream".parse().expect("static"));
        resp
    })
    .await?;
    // The judge agrees when both answers name the same e-mail address or delay.
    let judge = understudy::loopback::serve(|req| async {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let q: Value = serde_json::from_slice(&body).unwrap_or_default();
        let (a, b) = (
            q["incumbent"].as_str().unwrap_or(""),
            q["candidate"].as_str().unwrap_or(""),
        );
        let same = ["support@example.com", "5 business days"]
            .iter()
            .any(|k| a.contains(k) && b.contains(k));
        Response::new(Full::new(Bytes::from(
            json!({"agree": same, "score": if same { 0.9 } else { 0.1 }}).to_string(),
        )))
    })
    .await?;

    // The shipped example config, pointed at the in-process upstreams.
    let dir = std::env::temp_dir().join(format!("understudy-llm-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("llm.db");
    let text = include_str!("llm-candidate.toml")
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0")
        .replace("http://127.0.0.1:9001", &incumbent.url())
        .replace("http://127.0.0.1:9002", &candidate.url())
        .replace("http://127.0.0.1:9003", &judge.url())
        .replace("understudy-llm.db", &db.display().to_string());
    let running = understudy::app::start(understudy::config::parse(&text)?).await?;

    // Traffic: 120 users on three plans asking two kinds of question.
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{}/v1/chat/completions", running.addr);
    for i in 0..120 {
        let plan = ["free", "pro", "enterprise"][i % 3];
        let ask = if i % 2 == 0 {
            "Where is my refund?"
        } else {
            "The app crashes on start"
        };
        let body = json!({"model": "rules", "stream": false,
            "messages": [{"role": "user", "content": format!("{ask} ({plan})")}]});
        let req = Request::post(&url)
            .header("content-type", "application/json")
            .header("x-plan", plan)
            .header("x-user-id", format!("user-{i}"))
            .body(Full::new(Bytes::from(body.to_string())))?;
        let resp = client.request(req).await?;
        resp.into_body().collect().await?;
    }

    // A graceful stop waits for the comparisons; then the report.
    running.stop().await;
    let opts = understudy::report::ReportOptions {
        dbs: vec![db.clone()],
        ..Default::default()
    };
    understudy::report::run(&opts, &mut std::io::stdout())?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
