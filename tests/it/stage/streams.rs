//! `recommend` on streamed answers (issue 25): the incumbent's stream is
//! never buffered for a canary user; an event stream gets the suggestion as
//! one extra event at its end, other streams none (counted `streamed`).

use super::*;
use crate::support::*;
use http_body_util::BodyExt;
use std::time::Duration;

/// A recorded OpenAI chat stream (ends with `data: [DONE]`).
pub const CHAT: &str = include_str!("../../fixtures/llm/openai-chat-london-text.sse");
const CANDIDATE_SSE: &str = include_str!("../../../crates/llm/tests/fixtures/chat_text_b.sse");

/// Route `r` on `/`: gold users in a `recommend` canary, silver in shadow; `extra` TOML.
fn stream_routes(incumbent: &str, candidate: &str, timeout: &str) -> String {
    route(
        "r",
        "/",
        incumbent,
        candidate,
        &format!(
            "segment = {{ header = \"x-tier\", values = [\"gold\", \"silver\"] }}\n\
             sticky = {{ header = \"x-user-id\" }}\n\
             compare = {{ mode = \"llm\" }}\n\
             rollout = {{ segments = {{ gold = 100.0 }} }}\n\
             [routes.autonomy]\nstages = {{ gold = \"recommend\" }}\n\
             suggest_pointer = \"/suggestion\"\nsuggest_timeout = \"{timeout}\"\n"
        ),
    )
}

/// GET `/s` as a user of `tier`: the time to the first body byte, and the
/// response still streaming.
async fn first_byte(
    addr: std::net::SocketAddr,
    tier: &str,
    user: usize,
) -> (Duration, http::HeaderMap, Bytes, hyper::body::Incoming) {
    let req = Request::get(format!("http://{addr}/s"))
        .header("x-tier", tier)
        .header("x-user-id", format!("user-{user}"))
        .body(Full::default())
        .unwrap();
    tokio::time::timeout(PATIENCE, async {
        let started = Instant::now();
        let resp = client().request(req).await.expect("the proxy answers");
        let (parts, mut body) = resp.into_parts();
        loop {
            let frame = body.frame().await.expect("a first byte").unwrap();
            if let Ok(data) = frame.into_data()
                && !data.is_empty()
            {
                return (started.elapsed(), parts.headers, data, body);
            }
        }
    })
    .await
    .expect("a first byte within patience")
}

/// The rest of a streaming body after its first bytes.
async fn rest(first: Bytes, body: hyper::body::Incoming) -> Vec<u8> {
    let rest = tokio::time::timeout(PATIENCE, body.collect())
        .await
        .expect("the stream ends within patience")
        .expect("the stream ends cleanly")
        .to_bytes();
    [&first[..], &rest[..]].concat()
}

/// The suggestion event at the end of `body`, if any, as its JSON data.
fn suggestion(body: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(body).unwrap();
    let at = text.rfind("event: understudy.suggestion\n")?;
    let data = text[at..].lines().nth(1)?.strip_prefix("data: ")?;
    assert!(text.ends_with("\n\n"), "the event ends the stream");
    Some(serde_json::from_str(data).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_users_first_byte_of_a_stream_comes_as_soon_as_a_shadow_users() {
    // Three events 300 ms apart: buffering would show as ≥ 600 ms.
    let incumbent = upstream()
        .sse(&CHAT.split_inclusive("\n\n").take(3).collect::<String>())
        .paced(Duration::from_millis(300))
        .spawn()
        .await;
    let candidate = upstream().sse(CANDIDATE_SSE).spawn().await;
    let mut proxy = proxy(&stream_routes(&incumbent.url(), &candidate.url(), "5s")).await;
    let (mut gold, mut silver) = (Vec::new(), Vec::new());
    for user in 0..10 {
        // The stream is dropped after its first byte: only the head start matters here.
        gold.push(first_byte(proxy.addr, "gold", user).await.0);
        silver.push(first_byte(proxy.addr, "silver", user).await.0);
    }
    gold.sort();
    silver.sort();
    let (g, s) = (percentile(&gold, 0.5), percentile(&silver, 0.5));
    println!("first byte, median of 10: recommend {g:?}, shadow {s:?}");
    assert!(
        gold[gold.len() - 1] < Duration::from_millis(300),
        "the canary user waited for the stream: {gold:?}"
    );
    assert!(
        g <= s + Duration::from_millis(5),
        "recommend {g:?} vs shadow {s:?}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_does_not_cut_a_long_stream_in_recommend() {
    // Four events 400 ms apart (1.2 s) under a 700 ms idle timeout.
    let stream = CHAT.split_inclusive("\n\n").take(4).collect::<String>();
    let incumbent = upstream()
        .sse(&stream)
        .paced(Duration::from_millis(400))
        .spawn()
        .await;
    let candidate = upstream().sse(CANDIDATE_SSE).spawn().await;
    let mut proxy = proxy_listen_routes(
        "idle_timeout = \"700ms\"",
        &stream_routes(&incumbent.url(), &candidate.url(), "300ms"),
    )
    .await;
    let (status, h, body, took) = ask(proxy.addr, "gold", 1).await;
    assert_eq!(status, 200);
    assert_eq!(h["x-understudy-served-by"], "incumbent");
    assert!(took >= Duration::from_millis(1200), "{took:?}");
    assert!(
        body.starts_with(stream.as_bytes()),
        "the whole stream: {:?}",
        String::from_utf8_lossy(&body)
    );
    let s = suggestion(&body).expect("the candidate answered long before the end");
    assert_eq!(s["type"], "understudy.suggestion");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suggestion_event_follows_the_stream_when_the_candidate_finished_in_time() {
    let incumbent = upstream()
        .sse(CHAT)
        .paced(Duration::from_millis(20))
        .spawn()
        .await;
    let candidate = upstream().sse(CANDIDATE_SSE).spawn().await;
    let mut proxy = proxy(&stream_routes(&incumbent.url(), &candidate.url(), "2s")).await;
    let (took, h, first, body) = first_byte(proxy.addr, "gold", 1).await;
    assert!(h.get("content-length").is_none());
    let body = rest(first, body).await;
    println!("first byte after {took:?}");
    // The incumbent's stream unchanged, [DONE] included, then the event.
    assert!(body.starts_with(CHAT.as_bytes()));
    let event = &body[CHAT.len()..];
    let s = suggestion(event).expect("a suggestion event");
    let text = std::str::from_utf8(event).unwrap();
    assert!(
        text.starts_with("event: understudy.suggestion\ndata: {"),
        "{text}"
    );
    assert_eq!(text.matches("\n\n").count(), 1, "one event: {text}");
    assert_eq!(s["status"], 200);
    assert!(
        s["text"].as_str().unwrap().starts_with("Bonjour"),
        "the candidate's decoded text: {s}"
    );
    assert!(s["tool_calls"].as_array().unwrap().is_empty());
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"understudy_suggestions_total{outcome="event",route="r"}"#
        ),
        1.0
    );
    proxy.stop().await;
    // The comparison saw the incumbent's own stream, without the suggestion.
    let rows = crate::llm::llm_rows(&proxy.db);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].incumbent_tokens.1 == Some(9), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_candidate_leaves_the_stream_as_it_is_and_is_counted() {
    let incumbent = upstream()
        .sse(CHAT)
        .paced(Duration::from_millis(10))
        .spawn()
        .await;
    let slow = upstream()
        .sse(CANDIDATE_SSE)
        .delay(Duration::from_millis(1500))
        .spawn()
        .await;
    let mut proxy = proxy(&stream_routes(&incumbent.url(), &slow.url(), "200ms")).await;
    for user in 0..3 {
        let (status, _, body, took) = ask(proxy.addr, "gold", user).await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], CHAT.as_bytes(), "the incumbent's stream alone");
        assert!(suggestion(&body).is_none());
        // The stream's end waits for the candidate at most until suggest_timeout.
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"understudy_suggestions_total{outcome="late",route="r"}"#
        ),
        3.0,
        "{m}"
    );
    proxy.stop().await;
    // The late answer still reached the comparison.
    let rows = proxy.rows();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r.candidate_status == Some(200)),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_answer_that_is_not_sse_streams_through_without_a_suggestion() {
    let (builder, chunks) = upstream().streaming();
    let incumbent = builder.spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let mut proxy = proxy(&stream_routes(&incumbent.url(), &candidate.url(), "300ms")).await;
    chunks
        .send(Bytes::from_static(b"{\"score\":"))
        .await
        .unwrap();
    // The first chunk reaches the client while the upstream still holds the rest.
    let (_, h, first, body) = first_byte(proxy.addr, "gold", 1).await;
    assert_eq!(&first[..], b"{\"score\":");
    assert!(h.get("x-understudy-suggestion").is_none());
    chunks.send(Bytes::from_static(b"0.5}")).await.unwrap();
    drop(chunks);
    assert_eq!(rest(first, body).await, b"{\"score\":0.5}");
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"understudy_suggestions_total{outcome="streamed",route="r"}"#
        ),
        1.0,
        "{m}"
    );
    proxy.stop().await;
}

/// The recommend stage's head start over 300 streams each (issue 25's
/// target: p99 within 1 ms of a shadow user's). Measured, printed, and held
/// to a bound that a loaded machine keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_byte_p99_over_300_streams_recommend_vs_shadow() {
    let incumbent = upstream()
        .sse(&CHAT.split_inclusive("\n\n").take(2).collect::<String>())
        .paced(Duration::from_millis(200))
        .spawn()
        .await;
    let candidate = upstream().sse(CANDIDATE_SSE).spawn().await;
    let mut proxy = proxy(&stream_routes(&incumbent.url(), &candidate.url(), "300ms")).await;
    let (mut gold, mut silver) = (Vec::new(), Vec::new());
    for user in 0..300 {
        gold.push(first_byte(proxy.addr, "gold", user).await.0);
        silver.push(first_byte(proxy.addr, "silver", user).await.0);
    }
    gold.sort();
    silver.sort();
    let (g50, g99) = (percentile(&gold, 0.5), percentile(&gold, 0.99));
    let (s50, s99) = (percentile(&silver, 0.5), percentile(&silver, 0.99));
    println!(
        "first byte over 300 streams: recommend p50 {g50:?} p99 {g99:?}; shadow p50 {s50:?} p99 {s99:?}; \
         p99 difference {:?}",
        g99.saturating_sub(s99)
    );
    assert!(
        g99 < Duration::from_millis(200),
        "recommend waited: {g99:?}"
    );
    assert!(g50 <= s50 + Duration::from_millis(2), "{g50:?} vs {s50:?}");
    proxy.stop().await;
}
