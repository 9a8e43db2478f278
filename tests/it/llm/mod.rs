//! docs/src/guide/llm.md: AI answers as evidence. Streams shaped like the providers'
//! (fixtures of `crates/llm`), decoded and compared as completions; time to
//! first token, tokens and cost per row; spend control. The text cascade and
//! the report are in [`cascade`], the official Python client in [`python`].

mod cascade;
mod python;

use crate::support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::time::{Duration, Instant};

pub const CHAT_A: &str = include_str!("../../../crates/llm/tests/fixtures/chat_text_a.sse");
pub const CHAT_B: &str = include_str!("../../../crates/llm/tests/fixtures/chat_text_b.sse");
const CHAT_JSON: &str = include_str!("../../../crates/llm/tests/fixtures/chat_text.json");
const CHAT_TOOLS: &str = include_str!("../../../crates/llm/tests/fixtures/chat_tools.sse");
const ANTHROPIC: &str = include_str!("../../../crates/llm/tests/fixtures/anthropic_text.sse");

pub const REQUEST: &str = r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Weather in Paris?"}]}"#;

/// The docs/src/guide/llm.md columns of a row.
#[derive(Debug, Clone)]
pub struct LlmRow {
    pub verdict: String,
    pub diff: String,
    pub score: Option<f64>,
    pub decided_by: Option<String>,
    pub incumbent_ms: Option<f64>,
    pub incumbent_ttft_ms: Option<f64>,
    pub candidate_ttft_ms: Option<f64>,
    pub incumbent_tokens: (Option<i64>, Option<i64>),
    pub candidate_tokens: (Option<i64>, Option<i64>),
    pub incumbent_cost: Option<f64>,
    pub candidate_cost: Option<f64>,
}

pub fn llm_rows(db: &std::path::Path) -> Vec<LlmRow> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT verdict, diff, score, decided_by, incumbent_ms,
                    incumbent_ttft_ms, candidate_ttft_ms, incumbent_tokens_in,
                    incumbent_tokens_out, candidate_tokens_in, candidate_tokens_out,
                    incumbent_cost, candidate_cost
             FROM exchanges ORDER BY ts, id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(LlmRow {
            verdict: r.get(0)?,
            diff: r.get(1)?,
            score: r.get(2)?,
            decided_by: r.get(3)?,
            incumbent_ms: r.get(4)?,
            incumbent_ttft_ms: r.get(5)?,
            candidate_ttft_ms: r.get(6)?,
            incumbent_tokens: (r.get(7)?, r.get(8)?),
            candidate_tokens: (r.get(9)?, r.get(10)?),
            incumbent_cost: r.get(11)?,
            candidate_cost: r.get(12)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

pub fn llm_route(name: &str, prefix: &str, inc: &Upstream, cand: &Upstream, extra: &str) -> String {
    route(
        name,
        prefix,
        &inc.url(),
        &cand.url(),
        &format!("mirror = {{ methods = [\"POST\"] }}\n{extra}"),
    )
}

/// Two streams of the same answer with different ids, timestamps and chunk
/// boundaries agree; the client gets the incumbent's stream byte for byte;
/// each side's tokens come from the usage in its final chunk and are priced.
#[tokio::test]
async fn streamed_answers_with_different_chunks_agree_and_are_priced() {
    let incumbent = upstream().sse(CHAT_A).spawn().await;
    let candidate = upstream().sse(CHAT_B).spawn().await;
    let cost = "compare = { mode = \"llm\", protocol = \"openai-chat\" }
cost = { incumbent = { input_per_mtok = 2.5, output_per_mtok = 10.0 }, candidate = { input_per_mtok = 0.15, output_per_mtok = 0.6 } }";
    let mut proxy = proxy(&llm_route("chat", "/v1", &incumbent, &candidate, cost)).await;
    let (status, headers, body) = post(&proxy.url("/v1/chat/completions"), REQUEST).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let id = headers["x-understudy-exchange-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        body,
        Bytes::from_static(CHAT_A.as_bytes()),
        "the incumbent's stream, unchanged"
    );
    // The settle task records the metrics once both answers are read.
    let stage = "understudy_text_stage_total{result=\"agree\",route=\"chat\",stage=\"similarity\"}";
    let mut m = String::new();
    for _ in 0..500 {
        m = proxy.metrics().await;
        if metric(&m, stage) == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (series, want) in [
        (
            "understudy_tokens_total{kind=\"input\",route=\"chat\",side=\"incumbent\"}",
            31.0,
        ),
        (
            "understudy_tokens_total{kind=\"output\",route=\"chat\",side=\"candidate\"}",
            27.0,
        ),
        (
            "understudy_ttft_seconds_count{route=\"chat\",side=\"candidate\"}",
            1.0,
        ),
        (
            "understudy_text_stage_total{result=\"agree\",route=\"chat\",stage=\"similarity\"}",
            1.0,
        ),
    ] {
        assert_eq!(metric(&m, series), want, "{series}\n{m}");
    }
    let cost = metric(
        &m,
        "understudy_cost_dollars_total{route=\"chat\",side=\"candidate\"}",
    );
    assert!((cost - 20.85e-6).abs() < 1e-12, "{cost}");
    proxy.stop().await;
    let rows = llm_rows(&proxy.db);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (r.verdict.as_str(), r.diff.as_str()),
        ("match", "[]"),
        "{r:?}"
    );
    assert_eq!(r.decided_by.as_deref(), Some("similarity"));
    assert_eq!(r.score, Some(1.0));
    assert_eq!(r.incumbent_tokens, (Some(31), Some(27)));
    assert_eq!(r.candidate_tokens, (Some(31), Some(27)));
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
    assert!(
        close(r.incumbent_cost, (31.0 * 2.5 + 27.0 * 10.0) / 1e6),
        "{r:?}"
    );
    assert!(
        close(r.candidate_cost, (31.0 * 0.15 + 27.0 * 0.6) / 1e6),
        "{r:?}"
    );
    assert!(r.incumbent_ttft_ms.is_some() && r.candidate_ttft_ms.is_some());
    // `export` and `show` carry the same figures.
    let row = understudy::store::read::exchange(std::slice::from_ref(&proxy.db), &id)
        .unwrap()
        .unwrap();
    let exported = understudy::export::object(&row);
    assert_eq!(exported["llm"]["candidate"]["tokens_out"], 27);
    assert_eq!(exported["decided_by"], "similarity");
    let mut shown = Vec::new();
    understudy::report::show::show(
        &row,
        &understudy::report::marks::Marks::default(),
        false,
        60,
        &mut shown,
    )
    .unwrap();
    let shown = String::from_utf8(shown).unwrap();
    assert!(shown.contains("candidate: first token"), "{shown}");
    assert!(shown.contains("31/27 tokens") && shown.contains("text decided by: similarity"));
}

/// Tool-call arguments streamed in fragments are joined and compared under
/// the json mode's rules; a difference is named by its pointer, and an
/// ignored pointer does not count.
#[tokio::test]
async fn tool_call_arguments_that_differ_are_named() {
    let lyon = CHAT_TOOLS.replace(r#""arguments":"Paris""#, r#""arguments":"Lyon""#);
    assert_ne!(
        lyon, CHAT_TOOLS,
        "the fixture streams the city as its own fragment"
    );
    let incumbent = upstream().sse(CHAT_TOOLS).spawn().await;
    let candidate = upstream().sse(&lyon).spawn().await;
    let strict = llm_route(
        "strict",
        "/strict",
        &incumbent,
        &candidate,
        "compare = { mode = \"llm\" }",
    );
    let lenient = llm_route(
        "lenient",
        "/lenient",
        &incumbent,
        &candidate,
        "compare = { mode = \"llm\", ignore = [\"/tool_calls/*/arguments/location\"] }",
    );
    let mut proxy = proxy(&format!("{strict}\n{lenient}")).await;
    post(&proxy.url("/strict/v1/chat/completions"), REQUEST).await;
    post(&proxy.url("/lenient/v1/chat/completions"), REQUEST).await;
    proxy.stop().await;
    let conn = rusqlite::Connection::open(&proxy.db).unwrap();
    let got: Vec<(String, String, String)> = conn
        .prepare("SELECT route, verdict, diff FROM exchanges ORDER BY route")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        got,
        [
            ("lenient".into(), "match".into(), "[]".into()),
            (
                "strict".into(),
                "mismatch".into(),
                r#"["/tool_calls/0/arguments/location"]"#.into()
            ),
        ]
    );
}

/// The same answer in another protocol and framing (Anthropic's stream
/// against OpenAI chat JSON) agrees under `auto`; answers that are not AI
/// answers are verdicts with a reason, never a crash.
#[tokio::test]
async fn protocols_mix_under_auto_and_garbage_is_a_verdict() {
    let anthropic = upstream().sse(ANTHROPIC).spawn().await;
    let chat_json = upstream().json(CHAT_JSON).spawn().await;
    let html = upstream()
        .headers_only(&[("content-type", "text/html")])
        .json("<html><body>502 Bad Gateway</body></html>")
        .spawn()
        .await;
    let broken = upstream()
        .sse("data: {\"choices\": [\n\ndata: nope\n\n")
        .spawn()
        .await;
    let llm = "compare = { mode = \"llm\" }";
    let routes = [
        llm_route("mixed", "/mixed", &anthropic, &chat_json, llm),
        llm_route("html", "/html", &chat_json, &html, llm),
        llm_route("broken", "/broken", &chat_json, &broken, llm),
        llm_route("inc-html", "/inc-html", &html, &chat_json, llm),
    ]
    .join("\n");
    let mut proxy = proxy(&routes).await;
    for p in ["/mixed", "/html", "/broken", "/inc-html"] {
        let (status, _, _) = post(&proxy.url(&format!("{p}/v1")), REQUEST).await;
        assert_eq!(status, 200);
    }
    proxy.stop().await;
    let conn = rusqlite::Connection::open(&proxy.db).unwrap();
    let got: Vec<(String, String, String, Option<String>)> = conn
        .prepare("SELECT route, verdict, diff, skip_reason FROM exchanges ORDER BY route")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let by = |name: &str| got.iter().find(|g| g.0 == name).cloned().unwrap();
    assert_eq!(by("mixed").1, "match", "{got:?}");
    assert_eq!(
        (by("html").1.as_str(), by("html").2.as_str()),
        ("mismatch", "[\"\"]")
    );
    assert_eq!(
        (by("broken").1.as_str(), by("broken").2.as_str()),
        ("mismatch", "[\"\"]")
    );
    let inc = by("inc-html");
    assert_eq!(inc.1, "skipped");
    assert!(
        inc.3.unwrap().contains("incumbent answer is not JSON"),
        "{got:?}"
    );
}

/// Time to first token is the arrival of the frame that carried the first
/// content, not of the first byte (a role-only chunk) nor of the end; the
/// client sees each chunk as it comes.
#[tokio::test]
async fn ttft_is_the_first_content_as_the_client_saw_it() {
    let events: Vec<&str> = CHAT_A.split_inclusive("\n\n").collect();
    let (builder, tx) = upstream()
        .headers_only(&[("content-type", "text/event-stream")])
        .streaming();
    let incumbent = builder.spawn().await;
    let candidate = upstream().json(CHAT_JSON).spawn().await;
    let llm = "compare = { mode = \"llm\" }";
    let mut proxy = proxy(&llm_route("chat", "/", &incumbent, &candidate, llm)).await;
    let req = http::Request::post(proxy.url("/v1/chat/completions"))
        .body(Full::new(Bytes::from_static(REQUEST.as_bytes())))
        .unwrap();
    let resp = tokio::time::timeout(PATIENCE, client().request(req))
        .await
        .unwrap()
        .unwrap();
    let mut body = resp.into_body();
    let mut next = async || {
        let frame = tokio::time::timeout(PATIENCE, body.frame()).await.unwrap();
        frame.unwrap().unwrap().into_data().unwrap()
    };
    // The role chunk: no content yet.
    tx.send(Bytes::from(events[0].to_string())).await.unwrap();
    assert_eq!(next().await, events[0]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let first_content = Instant::now();
    tx.send(Bytes::from(events[1].to_string())).await.unwrap();
    assert_eq!(next().await, events[1], "passed on before the rest exists");
    let seen = first_content.elapsed();
    tokio::time::sleep(Duration::from_millis(150)).await;
    tx.send(Bytes::from(events[2..].concat())).await.unwrap();
    drop(tx);
    assert_eq!(next().await, events[2..].concat());
    assert!(
        seen < Duration::from_millis(100),
        "first content reached the client in {seen:?}"
    );
    proxy.stop().await;
    let r = &llm_rows(&proxy.db)[0];
    let (ttft, total) = (r.incumbent_ttft_ms.unwrap(), r.incumbent_ms.unwrap());
    assert!(ttft >= 150.0, "{r:?}");
    assert!(total - ttft >= 140.0, "ttft {ttft} is not the end {total}");
    // Not streamed: the whole answer.
    assert!(r.candidate_ttft_ms.is_some_and(|t| t < 1000.0), "{r:?}");
}

/// `mirror.sample = 0` mirrors nothing (counted as `sampled_out`);
/// `mirror.budget` stops mirrors once the day's candidate cost reaches it.
#[tokio::test]
async fn spend_is_bounded_by_sample_and_budget() {
    let incumbent = upstream().sse(CHAT_A).spawn().await;
    let candidate = upstream().sse(CHAT_B).spawn().await;
    let none = route(
        "none",
        "/none",
        &incumbent.url(),
        &candidate.url(),
        "mirror = { methods = [\"POST\"], sample = 0.0 }\ncompare = { mode = \"llm\" }",
    );
    // 58 tokens at $1 per million: 58 µ$ an answer; the budget allows two.
    let capped = route(
        "capped",
        "/capped",
        &incumbent.url(),
        &candidate.url(),
        "mirror = { methods = [\"POST\"], budget = { dollars_per_day = 0.0001 } }
compare = { mode = \"llm\" }
cost = { candidate = { input_per_mtok = 1.0, output_per_mtok = 1.0 } }",
    );
    let mut proxy = proxy(&format!("{none}\n{capped}")).await;
    for _ in 0..3 {
        post(&proxy.url("/none/v1"), REQUEST).await;
    }
    for n in 1..=2 {
        post(&proxy.url("/capped/v1"), REQUEST).await;
        // The spend is counted when the candidate's answer is decoded.
        let db = proxy.db.clone();
        let mut rows = 0;
        assert!(
            eventually(|| {
                rows = rows_now(&db);
                rows >= n
            })
            .await,
            "{rows} rows"
        );
    }
    post(&proxy.url("/capped/v1"), REQUEST).await;
    proxy.stop().await;
    assert_eq!(
        proxy.skips(),
        [
            ("capped".into(), "default".into(), "budget".into(), 1),
            ("none".into(), "default".into(), "sampled_out".into(), 3),
        ]
    );
    assert_eq!(proxy.rows().len(), 2);

    // A restart reads the day's spend back from the store: still spent.
    let text = config_text(proxy.dir.path(), "[store]\n", &format!("{none}\n{capped}"));
    let config = understudy::config::parse(&text).unwrap();
    let again = understudy::app::start(config).await.unwrap();
    post(&format!("http://{}/capped/v1", again.addr), REQUEST).await;
    again.stop().await;
    let budget = proxy.skips().into_iter().find(|s| s.0 == "capped").unwrap();
    assert_eq!((budget.2.as_str(), budget.3), ("budget", 2), "{budget:?}");
    assert_eq!(proxy.rows().len(), 2);
}

fn rows_now(db: &std::path::Path) -> usize {
    rusqlite::Connection::open(db)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM exchanges", [], |r| r.get::<_, i64>(0)))
        .map_or(0, |n| n as usize)
}

/// The shipped example of an LLM rollout is a valid config.
#[test]
fn the_llm_example_config_is_valid() {
    let text = include_str!("../../../examples/llm-candidate.toml");
    let config = understudy::config::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let r = &config.routes[0];
    let llm = r.llm().expect("llm mode");
    assert_eq!(llm.protocol, understudy::config::Protocol::OpenAiChat);
    assert!(llm.judge.is_some());
    assert_eq!((r.mirror.sample, r.mirror.budget), (0.25, Some(20.0)));
    assert_eq!(r.guard.max_ttft_ratio, Some(3.0));
}

/// `mirror.focus = "undecided"`: once a segment's guard says pass, its
/// mirrors drop to a tenth of `sample` (the rest counted as `sampled_out`).
#[tokio::test]
async fn focus_mirrors_decided_segments_at_a_tenth() {
    let incumbent = upstream().sse(CHAT_A).spawn().await;
    let candidate = upstream().sse(CHAT_B).spawn().await;
    let extra = "mirror = { methods = [\"POST\"], focus = \"undecided\" }
compare = { mode = \"llm\" }
guard = { method = \"wilson\", min_samples = 5, min_agreement = 0.5 }";
    let mut proxy = proxy(&route(
        "chat",
        "/",
        &incumbent.url(),
        &candidate.url(),
        extra,
    ))
    .await;
    // One at a time, each settled before the next: the guard passes at the fifth.
    let db = proxy.db.clone();
    for n in 1..=5 {
        post(&proxy.url("/v1/chat/completions"), REQUEST).await;
        assert!(
            eventually(|| rows_now(&db) == n).await,
            "mirrored while undecided"
        );
    }
    for _ in 0..60 {
        post(&proxy.url("/v1/chat/completions"), REQUEST).await;
    }
    proxy.stop().await;
    let sampled_out = proxy
        .skips()
        .iter()
        .find(|s| s.2 == "sampled_out")
        .map_or(0, |s| s.3);
    // About 54 of 60 (p = 0.9); 40 is far outside chance.
    assert!(
        sampled_out >= 40,
        "{sampled_out} of 60 left out once the guard passed"
    );
    assert_eq!(proxy.rows().len() as i64, 65 - sampled_out);
}

/// Issue 23: a provider's error inside a 200 stream (a recorded OpenAI
/// Responses `insufficient_quota` stream) is a `candidate_error` whose row
/// says why.
#[tokio::test]
async fn an_error_inside_a_200_stream_is_logged_with_its_reason() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/llm/");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}{f}")).expect("a recorded answer");
    let framed: String = read("openai-responses-error-quota.chunks.txt")
        .lines()
        .map(|data| {
            let kind: serde_json::Value = serde_json::from_str(data).unwrap();
            format!(
                "event: {}\ndata: {data}\n\n",
                kind["type"].as_str().unwrap()
            )
        })
        .collect();
    let incumbent = upstream()
        .sse(&read("openai-responses-paris-text.sse"))
        .spawn()
        .await;
    let candidate = upstream().sse(&framed).spawn().await;
    let compare = "compare = { mode = \"llm\", protocol = \"openai-responses\" }";
    let mut proxy = proxy(&llm_route("resp", "/v1", &incumbent, &candidate, compare)).await;
    let (status, _, _) = post(&proxy.url("/v1/responses"), REQUEST).await;
    assert_eq!(status, 200);
    proxy.stop().await;
    let rows = proxy.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].verdict, "candidate_error");
    let conn = rusqlite::Connection::open(&proxy.db).unwrap();
    let why: Option<String> = conn
        .query_row("SELECT candidate_error FROM exchanges", [], |r| r.get(0))
        .unwrap();
    let why = why.unwrap_or_default();
    assert!(why.contains("quota") || why.contains("error"), "{why:?}");
}
