//! Streamed answers through Understudy (docs/src/guide/llm.md), on loopback: the client's
//! time to first byte direct vs. through the proxy (`compare.mode = "exact"`
//! and `"llm"`), and the process CPU per streamed exchange in each case.
//!
//! `cargo bench --bench ttfb` (not criterion: it drives real sockets). The
//! upstreams stream a 200-token chat answer: the role chunk at once, the
//! rest 2 ms later. Rounds interleave the three setups; CPU is the whole
//! process (client, upstreams, proxy and its settle tasks, waited for), so
//! the differences between setups are what the proxy and `llm` add.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::convert::Infallible;
use std::time::{Duration, Instant};

const PER_ROUND: usize = 250;
const ROUNDS: usize = 4;

fn answer() -> (String, String) {
    let event = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let first = event(r#"{"role":"assistant","content":""}"#, "null");
    let mut rest: String = (0..200)
        .map(|i| event(&format!("{{\"content\":\" word{}\"}}", i % 17), "null"))
        .collect();
    rest.push_str(&event("{}", "\"stop\""));
    rest.push_str("data: {\"id\":\"chatcmpl-x\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":200,\"total_tokens\":250}}\n\ndata: [DONE]\n\n");
    (first, rest)
}

async fn streaming_upstream() -> understudy::loopback::Server {
    understudy::loopback::serve(|req: Request<hyper::body::Incoming>| async move {
        let _body = req.into_body().collect().await;
        let (first, rest) = answer();
        let frames = vec![(Duration::ZERO, first), (Duration::from_millis(2), rest)];
        let stream = futures_util::stream::unfold(frames.into_iter(), |mut it| async move {
            let (wait, data) = it.next()?;
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(data))), it))
        });
        let mut resp = Response::new(BoxBody::new(StreamBody::new(stream)));
        resp.headers_mut()
            .insert("content-type", "text/event-stream".parse().expect("static"));
        resp
    })
    .await
    .expect("loopback upstream")
}

/// CPU time of this process so far (user + system), from /proc.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted after the `)`.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

struct Setup {
    name: &'static str,
    url: String,
    running: Option<understudy::app::Running>,
    ttfb: Vec<f64>,
    cpu: Duration,
}

async fn proxy(
    mode: &str,
    incumbent: &str,
    candidate: &str,
    db: &std::path::Path,
) -> understudy::app::Running {
    let text = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\nmax_body_bytes = 262144\n[[routes]]\nname = \"chat\"\npath_prefix = \"/\"\nincumbent = \"{incumbent}\"\ncandidate = \"{candidate}\"\nmirror = {{ methods = [\"POST\"] }}\ncompare = {{ mode = \"{mode}\" }}\n",
        db.display()
    );
    let config = understudy::config::parse(&text).expect("config");
    understudy::app::start(config).await.expect("start")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let incumbent = streaming_upstream().await;
    let candidate = streaming_upstream().await;
    let dir = std::env::temp_dir().join(format!("understudy-ttfb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exact = proxy(
        "exact",
        &incumbent.url(),
        &candidate.url(),
        &dir.join("exact.db"),
    )
    .await;
    let llm = proxy(
        "llm",
        &incumbent.url(),
        &candidate.url(),
        &dir.join("llm.db"),
    )
    .await;
    let mut setups = vec![
        Setup {
            name: "direct",
            url: incumbent.url(),
            running: None,
            ttfb: vec![],
            cpu: Duration::ZERO,
        },
        Setup {
            name: "understudy exact",
            url: format!("http://{}", exact.addr),
            running: Some(exact),
            ttfb: vec![],
            cpu: Duration::ZERO,
        },
        Setup {
            name: "understudy llm",
            url: format!("http://{}", llm.addr),
            running: Some(llm),
            ttfb: vec![],
            cpu: Duration::ZERO,
        },
    ];
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let body = Bytes::from_static(
        br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    for round in 0..=ROUNDS {
        for s in &mut setups {
            let started_cpu = cpu();
            for _ in 0..PER_ROUND {
                let req = Request::post(format!("{}/v1/chat/completions", s.url))
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))
                    .expect("request");
                let sent = Instant::now();
                let resp = client.request(req).await.expect("answer");
                let mut b = resp.into_body();
                let first = b.frame().await.expect("a first frame").expect("data");
                let ttfb = sent.elapsed();
                assert!(first.data_ref().is_some_and(|d| d.starts_with(b"data: ")));
                while b.frame().await.is_some() {}
                // Round 0 warms up.
                if round > 0 {
                    s.ttfb.push(ttfb.as_secs_f64() * 1000.0);
                }
            }
            if let Some(r) = &s.running {
                r.proxy.tasks.wait_idle(Duration::from_secs(30)).await;
            }
            if round > 0 {
                s.cpu += cpu().saturating_sub(started_cpu);
            }
        }
    }
    let n = (PER_ROUND * ROUNDS) as f64;
    println!(
        "{} streamed exchanges per setup, interleaved in {ROUNDS} rounds",
        n as usize
    );
    println!(
        "{:<18} {:>10} {:>10} {:>10} {:>16}",
        "setup", "ttfb p50", "ttfb p99", "ttfb max", "CPU/exchange"
    );
    for s in &mut setups {
        s.ttfb.sort_by(f64::total_cmp);
        let p = |q: f64| understudy::stats::percentile(&s.ttfb, q).unwrap_or(f64::NAN);
        println!(
            "{:<18} {:>8.3}ms {:>8.3}ms {:>8.3}ms {:>13.1}µs",
            s.name,
            p(50.0),
            p(99.0),
            p(100.0),
            s.cpu.as_secs_f64() * 1e6 / n
        );
    }
    for s in setups {
        if let Some(r) = s.running {
            r.stop().await;
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
