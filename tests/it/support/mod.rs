//! The test harness: upstreams on loopback that record what they receive, a
//! proxy started from a TOML snippet with a temp SQLite file, a client, rows.
//!
//! A test reads like the README: start upstreams, start the proxy, send
//! requests, assert on responses, rows and metrics.

#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use understudy::loopback;

pub mod pg;

pub const PATIENCE: Duration = Duration::from_secs(10);

/// What an upstream received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub version: http::Version,
    pub method: http::Method,
    pub uri: http::Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

type Chunks = Arc<Mutex<Option<tokio::sync::mpsc::Receiver<Bytes>>>>;

/// Builds a recording upstream.
#[derive(Clone)]
pub struct UpstreamBuilder {
    status: u16,
    body: Bytes,
    headers: Vec<(String, String)>,
    delay: Duration,
    echo: bool,
    chunks: Option<Chunks>,
    pace: Option<Duration>,
}

pub fn upstream() -> UpstreamBuilder {
    UpstreamBuilder {
        status: 200,
        body: Bytes::from_static(b"{}"),
        headers: vec![("content-type".into(), "application/json".into())],
        delay: Duration::ZERO,
        echo: false,
        chunks: None,
        pace: None,
    }
}

pub struct Upstream {
    server: loopback::Server,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub fn url(&self) -> String {
        self.server.url()
    }
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl UpstreamBuilder {
    pub fn status(mut self, s: u16) -> Self {
        self.status = s;
        self
    }
    pub fn json(mut self, body: &str) -> Self {
        self.body = Bytes::copy_from_slice(body.as_bytes());
        self
    }
    /// Answers with a server-sent-event body (`text/event-stream`).
    pub fn sse(mut self, body: &str) -> Self {
        self.body = Bytes::copy_from_slice(body.as_bytes());
        self.headers = vec![("content-type".into(), "text/event-stream".into())];
        self
    }
    /// Replaces the default headers (`content-type: application/json`).
    pub fn headers_only(mut self, headers: &[(&str, &str)]) -> Self {
        self.headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    /// Answers with the request body.
    pub fn echo(mut self) -> Self {
        self.echo = true;
        self
    }
    /// Sends the body event by event (split after each blank line, chunked
    /// encoding): the first at once, each next one `pace` later.
    pub fn paced(mut self, pace: Duration) -> Self {
        self.pace = Some(pace);
        self
    }
    /// Streams the chunks the test sends on the returned sender (chunked encoding).
    pub fn streaming(mut self) -> (Self, tokio::sync::mpsc::Sender<Bytes>) {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        self.chunks = Some(Arc::new(Mutex::new(Some(rx))));
        (self, tx)
    }

    pub async fn spawn(self) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.spawn_on(listener)
    }

    /// Serves on `addr` (e.g. the port a stopped upstream had).
    pub async fn spawn_at(self, addr: SocketAddr) -> Upstream {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        self.spawn_on(listener)
    }

    fn spawn_on(self, listener: tokio::net::TcpListener) -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = seen.clone();
        let this = Arc::new(self);
        let server = loopback::serve_on(listener, move |req: Request<Incoming>| {
            let this = this.clone();
            let seen = recorder.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                seen.lock().unwrap().push(Seen {
                    version: parts.version,
                    method: parts.method,
                    uri: parts.uri,
                    headers: parts.headers,
                    body: body.clone(),
                });
                if !this.delay.is_zero() {
                    tokio::time::sleep(this.delay).await;
                }
                let out: http_body_util::combinators::BoxBody<Bytes, Infallible> =
                    match this.chunks.as_ref().and_then(|c| c.lock().unwrap().take()) {
                        Some(rx) => {
                            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                                let chunk = rx.recv().await?;
                                Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
                            });
                            StreamBody::new(stream).boxed()
                        }
                        None if this.pace.is_some() => {
                            let pace = this.pace.unwrap_or_default();
                            let events = split_events(&this.body);
                            let stream = futures_util::stream::unfold(
                                (events.into_iter(), true),
                                move |(mut events, first)| async move {
                                    let event = events.next()?;
                                    if !first {
                                        tokio::time::sleep(pace).await;
                                    }
                                    Some((Ok::<_, Infallible>(Frame::data(event)), (events, false)))
                                },
                            );
                            StreamBody::new(stream).boxed()
                        }
                        None if this.echo => Full::new(body).boxed(),
                        None => Full::new(this.body.clone()).boxed(),
                    };
                let mut resp = Response::new(out);
                *resp.status_mut() = StatusCode::from_u16(this.status).unwrap();
                for (k, v) in &this.headers {
                    resp.headers_mut().append(
                        http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                        v.parse().unwrap(),
                    );
                }
                resp
            }
        })
        .expect("serve a loopback upstream");
        Upstream { server, seen }
    }
}

/// A body cut after each blank line (`\n\n`): one piece per SSE event.
pub fn split_events(body: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(i) = body[start..].windows(2).position(|w| w == b"\n\n") {
        out.push(body.slice(start..start + i + 2));
        start += i + 2;
    }
    if start < body.len() {
        out.push(body.slice(start..));
    }
    out
}

/// An address where nothing listens.
pub async fn dead_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// A TCP server that accepts and resets every connection at once.
pub async fn resetting_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    raw_upstream(|_| None).await
}

/// A TCP server that answers every connection with `reply` bytes (or resets).
pub async fn raw_upstream(
    reply: impl Fn(usize) -> Option<&'static [u8]> + Send + Sync + 'static,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut s, _)) = l.accept().await {
            n += 1;
            let mut buf = [0u8; 4096];
            let _request = s.read(&mut buf).await;
            match reply(n) {
                Some(bytes) => {
                    let _written = s.write_all(bytes).await;
                    let _closed = s.shutdown().await;
                }
                None => {
                    // SO_LINGER 0 turns the close into a reset, which is the point here.
                    #[allow(deprecated)]
                    let _linger = s.set_linger(Some(Duration::ZERO));
                }
            }
        }
    });
    (addr, task)
}

/// A running proxy on loopback with its own temp directory and SQLite file.
pub struct TestProxy {
    pub running: Option<understudy::app::Running>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub db: PathBuf,
    pub dir: tempfile::TempDir,
}

/// The config around `routes` (TOML for `[[routes]]` tables, plus optional
/// `[store]`/`[listen]` extras), with loopback ports and a temp DB.
pub fn config_text(dir: &std::path::Path, extra: &str, routes: &str) -> String {
    let db = dir.join("understudy.db");
    let store_extra = if extra.contains("[store]") {
        ""
    } else {
        "[store]\n"
    };
    format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.1:0\"\n{store_extra}{extra}\npath = \"{}\"\n\n{routes}",
        db.display()
    )
}

/// A proxy in front of `incumbent` alone (route `a` on `/`), with extra `[listen]` keys.
pub async fn proxy_listen(listen_extra: &str, incumbent: &str) -> TestProxy {
    let routes =
        format!("[[routes]]\nname = \"a\"\npath_prefix = \"/\"\nincumbent = \"{incumbent}\"\n");
    proxy_listen_routes(listen_extra, &routes).await
}

/// A proxy with extra `[listen]` keys in front of `routes` (TOML `[[routes]]` tables).
pub async fn proxy_listen_routes(listen_extra: &str, routes: &str) -> TestProxy {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "", routes).replace(
        "addr = \"127.0.0.1:0\"\n[admin]",
        &format!("addr = \"127.0.0.1:0\"\n{listen_extra}\n[admin]"),
    );
    start(dir, &text).await
}

async fn start(dir: tempfile::TempDir, text: &str) -> TestProxy {
    let config = understudy::config::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let db = config.store.path.clone();
    let running = understudy::app::start(config).await.unwrap();
    TestProxy {
        addr: running.addr,
        admin: running.admin_addr,
        running: Some(running),
        db,
        dir,
    }
}

pub async fn proxy(routes: &str) -> TestProxy {
    proxy_with("", routes).await
}

/// `store_extra` holds extra `[store]` keys (e.g. `redact_json = ["/email"]`).
pub async fn proxy_with(store_extra: &str, routes: &str) -> TestProxy {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), &format!("[store]\n{store_extra}"), routes);
    start(dir, &text).await
}

impl TestProxy {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Graceful stop: every queued row is in SQLite afterwards.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    pub fn rows(&self) -> Vec<Row> {
        rows(&self.db)
    }

    /// Skipped mirrors without a row: (route, segment, reason) → count.
    pub fn skips(&self) -> Vec<(String, String, String, i64)> {
        skips(&self.db)
    }

    pub async fn metrics(&self) -> String {
        let (_, _, body) = get(&format!("http://{}/metrics", self.admin)).await;
        String::from_utf8(body.to_vec()).unwrap()
    }
}

/// The columns tests look at.
#[derive(Debug, Clone)]
pub struct Row {
    pub id: String,
    pub route: String,
    pub segment: String,
    pub served_by: String,
    pub method: String,
    pub path: String,
    pub verdict: String,
    pub diff: String,
    pub skip_reason: Option<String>,
    pub incumbent_status: Option<i64>,
    pub candidate_status: Option<i64>,
    pub candidate_error: Option<String>,
    pub incumbent_error: Option<String>,
}

/// `mirror_skips` summed over minutes, sorted.
pub fn skips(db: &std::path::Path) -> Vec<(String, String, String, i64)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT route, segment, reason, SUM(count) FROM mirror_skips
             GROUP BY route, segment, reason ORDER BY route, segment, reason",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

pub fn rows(db: &std::path::Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT id, route, segment, served_by, method, path, verdict, diff, skip_reason,
                    incumbent_status, candidate_status, candidate_error, incumbent_error
             FROM exchanges ORDER BY ts, id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Row {
            id: r.get(0)?,
            route: r.get(1)?,
            segment: r.get(2)?,
            served_by: r.get(3)?,
            method: r.get(4)?,
            path: r.get(5)?,
            verdict: r.get(6)?,
            diff: r.get(7)?,
            skip_reason: r.get(8)?,
            incumbent_status: r.get(9)?,
            candidate_status: r.get(10)?,
            candidate_error: r.get(11)?,
            incumbent_error: r.get(12)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

pub fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `req` and reads the whole answer, within `PATIENCE`.
pub async fn send(req: Request<Full<Bytes>>) -> (StatusCode, HeaderMap, Bytes) {
    tokio::time::timeout(PATIENCE, async {
        let resp = client().request(req).await.expect("the proxy answers");
        let (parts, body) = resp.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    })
    .await
    .expect("answer within patience")
}

pub async fn get(url: &str) -> (StatusCode, HeaderMap, Bytes) {
    send(Request::get(url).body(Full::default()).unwrap()).await
}

pub async fn post(url: &str, body: &str) -> (StatusCode, HeaderMap, Bytes) {
    send(
        Request::post(url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .unwrap(),
    )
    .await
}

/// Polls `check` until it holds or `PATIENCE` passes (for metrics that land asynchronously).
pub async fn eventually<F: FnMut() -> bool>(mut check: F) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// A route table for `incumbent` and `candidate` with extra TOML lines.
pub fn route(name: &str, prefix: &str, incumbent: &str, candidate: &str, extra: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nincumbent = \"{incumbent}\"\ncandidate = \"{candidate}\"\n{extra}\n"
    )
}

/// Sends SIGTERM to a proxy started as a process and waits for it: its exit
/// code (`None` when a signal ended it).
pub async fn terminate(mut child: std::process::Child) -> Option<i32> {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap()
        .code()
}

/// The value of one series in Prometheus text (`name{labels}` exactly as
/// exposed, labels sorted), 0 when it is absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// `understudy serve -c config` (the real binary), with its proxy and admin
/// addresses from its listening line. The caller waits for the child.
#[allow(clippy::zombie_processes)]
pub fn serve_binary(config: &std::path::Path) -> (std::process::Child, String, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["serve", "-c"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no listening line"
        );
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|t| t.strip_prefix(name))
                .map(str::to_string)
        };
        if let (Some(addr), Some(admin)) = (field("addr="), field("admin_addr=")) {
            // Keep draining its log so the child never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
            return (child, addr, admin);
        }
    }
}

/// Runs the real binary with `args` to completion: (success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}
