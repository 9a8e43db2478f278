//! The long-AI-streams scenario: an incumbent and a candidate that each
//! stream an SSE chat answer (a chunk every 100 ms for `LOAD_STREAM_SECS`,
//! default 30 s), and `LOAD_STREAMS` (default 2,000) concurrent client
//! streams, first straight to the incumbent, then through Understudy with
//! every stream mirrored and compared in the `llm` mode. Loopback only,
//! bounded in time.
//!
//! Each chunk carries the time the upstream sent it (`"t"`, µs since the
//! benchmark's epoch), so the client measures every chunk's delay; the
//! proxy's p99 is compared with direct's. At the plateau (all streams open)
//! the proxy's RSS, file descriptors and tasks are read; afterwards its
//! counters and rows.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// When the benchmark started: chunk stamps are µs since then.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_us() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The scenario's settings, from the environment.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub streams: usize,
    pub secs: u64,
}

impl Settings {
    pub fn from_env() -> Settings {
        let var = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        Settings {
            streams: usize::try_from(var("LOAD_STREAMS", 2000)).unwrap_or(2000),
            secs: var("LOAD_STREAM_SECS", 30),
        }
    }

    fn chunks(&self) -> u64 {
        self.secs * 10
    }
}

/// An SSE answer: one chat-completion chunk every 100 ms, then `[DONE]`.
struct Sse {
    tick: tokio::time::Interval,
    left: u64,
    done: bool,
}

impl Body for Sse {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.tick.poll_tick(cx).is_pending() {
            return Poll::Pending;
        }
        if self.left == 0 {
            self.done = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                b"data: [DONE]\n\n",
            )))));
        }
        self.left -= 1;
        let chunk = format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"t\":{},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word \"}},\"finish_reason\":null}}]}}\n\n",
            now_us()
        );
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// An upstream streaming `chunks` chunks per request.
pub async fn sse_upstream(chunks: u64) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _nodelay = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| async move {
                    let _drained = req.into_body().collect().await;
                    let mut tick = tokio::time::interval(Duration::from_millis(100));
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let body = Sse {
                        tick,
                        left: chunks,
                        done: false,
                    };
                    let mut resp = Response::new(body);
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/event-stream"),
                    );
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ended = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// One client stream: chunk delays in µs, or why it failed.
async fn one_stream(port: u16) -> Result<Vec<u32>, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _nodelay = s.set_nodelay(true);
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut delays = Vec::with_capacity(400);
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut head_seen = false;
    let mut read = [0u8; 8192];
    loop {
        let n = s.read(&mut read).await.map_err(|e| format!("read: {e}"))?;
        let arrived = now_us();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&read[..n]);
        if !head_seen {
            if buf.len() < 12 {
                continue;
            }
            if &buf[9..12] != b"200" {
                return Err(format!("status {}", String::from_utf8_lossy(&buf[9..12])));
            }
            head_seen = true;
        }
        // Every complete `"t":<digits>` in the buffer is one chunk.
        let mut consumed = 0;
        while let Some(at) = find(&buf[consumed..], b"\"t\":") {
            let start = consumed + at + 4;
            let digits = buf[start..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if start + digits >= buf.len() {
                break; // the number may go on in the next read
            }
            let sent: u64 = std::str::from_utf8(&buf[start..start + digits])
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(arrived);
            delays.push(u32::try_from(arrived.saturating_sub(sent)).unwrap_or(u32::MAX));
            consumed = start + digits;
        }
        // Keep a tail that may hold a split `"t":`.
        let keep_from = consumed.max(buf.len().saturating_sub(3));
        buf.drain(..keep_from);
    }
    Ok(delays)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What one run (direct or proxied) saw.
#[derive(Debug, Default)]
pub struct Run {
    pub ok: usize,
    /// Streams that ended with fewer chunks than sent.
    pub short: usize,
    pub failed: Vec<String>,
    pub delays_us: Vec<u32>,
    pub plateau: Option<Plateau>,
    /// The proxy's CPU time over the run (µs) and the run's length (s).
    pub cpu: Option<(f64, f64)>,
}

/// The proxy while every stream is open.
#[derive(Debug, Default, Clone)]
pub struct Plateau {
    pub open_streams: usize,
    pub rss_kib: u64,
    pub fds: usize,
    pub threads: usize,
}

impl Run {
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.delays_us.is_empty() {
            return f64::NAN;
        }
        let mut d = self.delays_us.clone();
        d.sort_unstable();
        let i = ((d.len() as f64 - 1.0) * p).round() as usize;
        f64::from(d[i.min(d.len() - 1)]) / 1000.0
    }
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Opens `settings.streams` streams to `port` over a quarter of a stream's
/// length (at most five seconds), reads the proxy `pid`'s resources once
/// they are all open, and waits for all.
pub async fn drive(port: u16, settings: Settings, pid: Option<u32>) -> Run {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ramp_us = (settings.secs * 250_000).min(5_000_000);
    let gap = Duration::from_micros(ramp_us / settings.streams.max(1) as u64);
    let mut tasks = Vec::with_capacity(settings.streams);
    for _ in 0..settings.streams {
        let open = open.clone();
        tasks.push(tokio::spawn(async move {
            open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let r = one_stream(port).await;
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            r
        }));
        tokio::time::sleep(gap).await;
    }
    // The plateau: all opened, the first ones not yet done.
    tokio::time::sleep(Duration::from_millis(settings.secs * 100 + 200)).await;
    let plateau = pid.map(|pid| Plateau {
        open_streams: open.load(std::sync::atomic::Ordering::Relaxed),
        rss_kib: status_kib(pid, "VmRSS:").unwrap_or(0),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()),
        threads: status_kib(pid, "Threads:").unwrap_or(0) as usize,
    });
    let mut run = Run {
        plateau,
        ..Run::default()
    };
    run.cpu = None;
    for t in tasks {
        match t.await {
            Ok(Ok(d)) => {
                if (d.len() as u64) < settings.chunks() {
                    run.short += 1;
                } else {
                    run.ok += 1;
                }
                run.delays_us.extend(d);
            }
            Ok(Err(e)) => run.failed.push(e),
            Err(e) => run.failed.push(format!("task: {e}")),
        }
    }
    run
}

/// Understudy's config for the scenario: every stream mirrored, `llm` compare.
pub fn config(
    dir: &Path,
    port: u16,
    admin: u16,
    inc: SocketAddr,
    cand: SocketAddr,
    s: Settings,
) -> String {
    format!(
        r#"[listen]
addr = "127.0.0.1:{port}"
[admin]
addr = "127.0.0.1:{admin}"
[store]
path = "{db}"
max_body_bytes = 131072
[[routes]]
name = "chat"
path_prefix = "/v1/chat/completions"
incumbent = "http://{inc}"
candidate = "http://{cand}"
mirror = {{ methods = ["POST"], timeout = "{timeout}s", max_in_flight = {n} }}
compare = {{ mode = "llm", protocol = "openai-chat", text = ["exact", "similarity"] }}
"#,
        db = dir.join("streams.db").display(),
        timeout = s.secs * 2 + 10,
        n = s.streams,
    )
}

/// The table for BENCHMARKS.md.
#[allow(clippy::too_many_arguments)]
pub fn render(
    s: Settings,
    direct: &Run,
    proxied: &Run,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
    counters: &str,
    rows: (u64, u64),
    load: &str,
) -> String {
    let mut out = String::new();
    use std::fmt::Write as _;
    let _w = writeln!(
        out,
        "## Long AI streams\n\n{} concurrent client streams, each an SSE chat answer of {} s (a chunk every 100 ms) from the incumbent and, mirrored, from the candidate; `llm` compare; loopback. Load average {load}.\n",
        s.streams, s.secs
    );
    let _w = writeln!(
        out,
        "| path | streams ok | short | failed | chunk delay p50 / p99 / max ms |\n|---|---:|---:|---:|---:|"
    );
    for (name, r) in [
        ("direct to incumbent", direct),
        ("through Understudy", proxied),
    ] {
        let _w = writeln!(
            out,
            "| {name} | {} | {} | {} | {:.2} / {:.2} / {:.2} |",
            r.ok,
            r.short,
            r.failed.len(),
            r.percentile_ms(0.5),
            r.percentile_ms(0.99),
            r.percentile_ms(1.0)
        );
    }
    let p99_gap = proxied.percentile_ms(0.99) - direct.percentile_ms(0.99);
    let _w = writeln!(
        out,
        "\n- p99 chunk delay through Understudy minus direct: {p99_gap:.2} ms (target ≤ 5 ms): **{}**",
        if p99_gap <= 5.0 { "met" } else { "NOT met" }
    );
    if let Some(p) = &proxied.plateau {
        let n = p.open_streams.max(1) as f64;
        let per = (p.rss_kib.saturating_sub(idle_rss_kib)) as f64 / n;
        let _w = writeln!(
            out,
            "- at the plateau ({} streams open): RSS {:.1} MiB ({:.1} MiB before the streams, {:.1} KiB per open exchange), {} fds ({:.2} per exchange), {} threads; peak RSS {:.1} MiB",
            p.open_streams,
            p.rss_kib as f64 / 1024.0,
            idle_rss_kib as f64 / 1024.0,
            per,
            p.fds,
            p.fds as f64 / n,
            p.threads,
            peak_rss_kib as f64 / 1024.0
        );
    }
    if let Some((cpu_us, secs)) = proxied.cpu {
        let chunks = proxied.delays_us.len().max(1) as f64;
        let _w = writeln!(
            out,
            "- proxy CPU over the run: {:.1} s in {secs:.0} s ({:.2} cores on average), {:.1} µs per client chunk (each also read from the candidate)",
            cpu_us / 1e6,
            cpu_us / 1e6 / secs,
            cpu_us / chunks
        );
    }
    if !proxied.failed.is_empty() {
        let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
        for f in &proxied.failed {
            *kinds.entry(f.split(':').next().unwrap_or("")).or_default() += 1;
        }
        let _w = writeln!(out, "- failed streams by cause: {kinds:?}");
    }
    let _w = writeln!(
        out,
        "- rows: {} ({} with a verdict other than skipped)",
        rows.0, rows.1
    );
    let _w = writeln!(out, "- proxy counters:\n\n```\n{counters}```");
    out
}
