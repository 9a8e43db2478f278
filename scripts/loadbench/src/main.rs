//! Load benchmark: the real `understudy serve` binary and nginx `mirror` side by
//! side under `wrk`, on 127.0.0.1 only, bounded in time (`cargo loadbench`,
//! an alias of `cargo run --profile dist -p loadbench`; it builds the
//! `understudy` to deploy, `--profile dist`, first).
//!
//! The upstreams (a fast incumbent; fast, 200 ms, 2 s and dead candidates) run in
//! this process on a runtime of their own, so the proxy process under test
//! shares nothing with them and its peak RSS is its own. They count accepted
//! connections, which gives new upstream connections per request. Every
//! scenario runs GET and POST (~1 KiB JSON, `scripts/loadbench/load_post.lua`) with the
//! same wrk settings; scenarios are interleaved over `LOAD_REPS` repetitions.
//! For each Understudy run the proxy's `/metrics` are read before SIGTERM and
//! the SQLite rows counted after it exits. The table goes to `BENCHMARKS.md`.
//! A bare hyper proxy (`scripts/loadbench/src/bare_proxy.rs`: same server and
//! client crates, nothing else; this binary re-executed) runs too, as the
//! floor hyper and the kernel set.
//!
//! Environment: `LOAD_SECS` (per wrk run, default 3), `LOAD_REPS` (default 2),
//! `LOAD_ONLY` (comma-separated scenario names; then BENCHMARKS.md is not written),
//! `LOAD_BIN` (another `understudy` binary to run instead of this build's),
//! `LOAD_FLEET_URL` (run Understudy with `[fleet]` on that PostgreSQL).
//! `LOAD_STREAMS` and `LOAD_STREAM_SECS` (the long-AI-streams scenario,
//! `streams.rs`: default 2,000 streams of 30 s; `LOAD_ONLY=streams` runs it alone).
//! A rewrite keeps BENCHMARKS.md's hand-written part, from its `## Notes` heading on.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

mod bare_proxy;
mod streams;
use bare_proxy as bare;

/// The repository root (this tool lives in `scripts/loadbench`).
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const CONNECTIONS: u32 = 32;
/// wrk runs per proxy start (GET, then POST): each stop leaves up to
/// [`CONNECTIONS`] requests in flight.
const WRK_RUNS_PER_SAMPLE: u64 = 2;
/// Where the hand-written part of BENCHMARKS.md starts.
const NOTES: &str = "## Notes";
/// The incumbent's answer; the candidates' differs only in the request id,
/// which the route ignores, so every mirrored pair is parsed and walked (an
/// answer equal byte for byte would be settled by one `memcmp`).
const ANSWER: &str = r#"{"request_id":"r-1","score":0.87,"label":"hot","model":"v1","reasons":["recent visit","enterprise domain","pricing page"],"items":[{"id":1,"w":0.5},{"id":2,"w":0.25},{"id":3,"w":0.125}]}"#;
const CANDIDATE_ANSWER: &str = r#"{"request_id":"r-2","score":0.87,"label":"hot","model":"v1","reasons":["recent visit","enterprise domain","pricing page"],"items":[{"id":1,"w":0.5},{"id":2,"w":0.25},{"id":3,"w":0.125}]}"#;

/// A candidate's behaviour.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cand {
    Fast,
    Slow200,
    Slow2s,
    Dead,
}

impl Cand {
    fn name(self) -> &'static str {
        match self {
            Cand::Fast => "fast",
            Cand::Slow200 => "slow 200 ms",
            Cand::Slow2s => "slow 2 s",
            Cand::Dead => "dead",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Direct,
    /// `scripts/loadbench/src/bare_proxy.rs`: hyper's own floor, no Understudy
    /// logic; a thread per core like Understudy's default, or (`true`) one
    /// shared multi-thread runtime.
    Bare(bool),
    Understudy(Option<Cand>),
    /// Understudy on one shared multi-thread runtime (`serve --shared-runtime`).
    UnderstudyShared(Option<Cand>),
    Nginx(Option<Cand>),
}

impl Kind {
    fn key(self) -> String {
        let cand = |c: Option<Cand>| match c {
            None => "nomirror".to_string(),
            Some(c) => c.name().replace(' ', ""),
        };
        match self {
            Kind::Direct => "direct".into(),
            Kind::Bare(false) => "bare".into(),
            Kind::Bare(true) => "bare-shared".into(),
            Kind::Understudy(c) => format!("understudy-{}", cand(c)),
            Kind::UnderstudyShared(c) => format!("understudy-shared-{}", cand(c)),
            Kind::Nginx(c) => format!("nginx-{}", cand(c)),
        }
    }

    fn label(self) -> String {
        match self {
            Kind::Direct => "direct to incumbent".into(),
            Kind::Bare(false) => {
                "bare hyper proxy, thread per core (floor: no routing, headers, metrics or log)"
                    .into()
            }
            Kind::Bare(true) => "bare hyper proxy, shared runtime".into(),
            Kind::Understudy(None) => "Understudy, mirroring off".into(),
            Kind::Understudy(Some(c)) => format!("Understudy, {} candidate", c.name()),
            Kind::UnderstudyShared(None) => "Understudy, shared runtime, mirroring off".into(),
            Kind::UnderstudyShared(Some(c)) => {
                format!("Understudy, shared runtime, {} candidate", c.name())
            }
            Kind::Nginx(None) => "nginx, no mirror".into(),
            Kind::Nginx(Some(c)) => format!("nginx + mirror, {} candidate", c.name()),
        }
    }
}

/// One upstream server with its accepted-connection count.
struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
}

struct Upstreams {
    incumbent: Upstream,
    fast: Upstream,
    slow200: Upstream,
    slow2s: Upstream,
    /// A port that was bound and closed: connections are refused.
    dead: SocketAddr,
}

impl Upstreams {
    fn candidate(&self, c: Cand) -> (SocketAddr, Option<&AtomicU64>) {
        let up = match c {
            Cand::Fast => &self.fast,
            Cand::Slow200 => &self.slow200,
            Cand::Slow2s => &self.slow2s,
            Cand::Dead => return (self.dead, None),
        };
        (up.addr, Some(&up.accepted))
    }

    fn accepted(&self) -> u64 {
        [&self.incumbent, &self.fast, &self.slow200, &self.slow2s]
            .iter()
            .map(|u| u.accepted.load(Ordering::Relaxed))
            .sum()
    }
}

async fn upstream(delay: Duration, answer: &'static str) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicU64::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            count.fetch_add(1, Ordering::Relaxed);
            let _nodelay = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| async move {
                    let _drained = req.into_body().collect().await;
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let mut resp = Response::new(Full::new(Bytes::from_static(answer.as_bytes())));
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ended = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream { addr, accepted }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn wait_listening(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("process exited early: {status}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// What wrk reported for one run.
#[derive(Clone, Default, Debug)]
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    errors: u64,
}

fn parse_duration_ms(s: &str) -> f64 {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().unwrap_or(f64::NAN) * mult
}

fn parse_wrk(out: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in out.lines() {
        let t = line.trim();
        let mut words = t.split_whitespace();
        match words.next() {
            Some("50%") => w.p50_ms = parse_duration_ms(words.next().unwrap_or("")),
            Some("99%") => w.p99_ms = parse_duration_ms(words.next().unwrap_or("")),
            Some("Requests/sec:") => {
                w.rps = words.next().and_then(|v| v.parse().ok()).unwrap_or(0.0)
            }
            _ => {}
        }
        if t.contains(" requests in ") {
            w.requests = t
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
        if let Some(rest) = t.strip_prefix("Socket errors:") {
            w.errors += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        if let Some(rest) = t.strip_prefix("Non-2xx or 3xx responses:") {
            w.errors += rest.trim().parse::<u64>().unwrap_or(0);
        }
    }
    w
}

fn run_wrk(port: u16, post: bool, secs: u64) -> Wrk {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1",
        &format!("-c{CONNECTIONS}"),
        &format!("-d{secs}s"),
        "--timeout",
        "5s",
        "--latency",
    ]);
    if post {
        cmd.args(["-s", &format!("{ROOT}/scripts/loadbench/load_post.lua")]);
    }
    cmd.arg(format!("http://127.0.0.1:{port}/v1/score?q=bench"));
    let out = cmd.output().expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text)
}

/// The proxy's peak resident set (VmHWM) in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system, all threads) a process has used so far, in µs.
fn cpu_us(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 1e6 / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn http_get(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _sent = write!(s, "GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n");
    let mut out = String::new();
    let _read = s.read_to_string(&mut out);
    out
}

/// Sums every sample of a metric family (all label sets), optionally filtered.
fn metric_sum(text: &str, name: &str, filter: impl Fn(&str) -> bool) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter(|l| filter(l))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn signal(pid: u32, sig: &str) {
    let _sent = Command::new("kill").args([sig, &pid.to_string()]).status();
}

fn wait_exit(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _killed = child.kill();
    let _reaped = child.wait();
    false
}

/// One scenario, one repetition: both methods.
#[derive(Clone, Default, Debug)]
struct Sample {
    get: Wrk,
    post: Wrk,
    new_conns: u64,
    rss_kib: Option<u64>,
    /// Proxy CPU time per answered request (µs), both methods: robust to a
    /// busy machine where req/s are not.
    cpu_us_per_req: Option<f64>,
    check: Option<RowCheck>,
}

#[derive(Clone, Debug)]
struct RowCheck {
    requests: u64,
    skips: u64,
    drops: u64,
    rows: u64,
    /// Rows of exchanges the client abandoned (wrk closes its connections at
    /// the end with requests in flight): they have a row but never reach
    /// `requests_total`, which counts answers.
    abandoned: u64,
    /// Rows with a candidate observation (answer or error).
    mirrored_rows: u64,
    /// Skipped mirrors counted in `mirror_skips` (they have no row).
    counted_skips: u64,
}

impl RowCheck {
    /// A mirrored exchange is a row; a skipped one is a count in
    /// `mirror_skips`. So rows = requests + abandoned − skips − drops, except
    /// that a skipped exchange whose client left (at most one per wrk
    /// connection each time wrk stops: once after GET, once after POST) is
    /// in `skips` but not in `requests`. Every row is mirrored, and the skip
    /// table agrees with the metric.
    fn ok(&self) -> bool {
        let exchanges = self.requests + self.abandoned;
        let accounted = self.rows + self.drops + self.skips;
        let left = u64::from(CONNECTIONS) * WRK_RUNS_PER_SAMPLE;
        (exchanges..=exchanges + left).contains(&accounted)
            && self.mirrored_rows == self.rows
            && self.counted_skips == self.skips
    }
}

fn per_request(before: Option<f64>, after: Option<f64>, get: &Wrk, post: &Wrk) -> Option<f64> {
    let requests = (get.requests + post.requests).max(1) as f64;
    Some((after? - before?) / requests)
}

fn understudy_config(
    dir: &Path,
    port: u16,
    admin: u16,
    ups: &Upstreams,
    c: Option<Cand>,
) -> String {
    let candidate = c.map_or(String::new(), |c| {
        format!("candidate = \"http://{}\"\n", ups.candidate(c).0)
    });
    // `LOAD_FLEET_URL` runs Understudy as a one-replica fleet on that
    // PostgreSQL (docs/src/concepts/fleet.md): the [fleet] on/off A/B.
    let fleet = std::env::var("LOAD_FLEET_URL").map_or(String::new(), |url| {
        format!("[fleet]\nurl = \"{url}\"\nreplica = \"bench\"\n")
    });
    format!(
        r#"{fleet}[listen]
addr = "127.0.0.1:{port}"
[admin]
addr = "127.0.0.1:{admin}"
[store]
path = "{db}"
[[routes]]
name = "bench"
path_prefix = "/"
incumbent = "http://{inc}"
{candidate}mirror = {{ methods = ["GET", "POST"] }}
compare = {{ mode = "json", ignore = ["/request_id"] }}
"#,
        db = dir.join("bench.db").display(),
        inc = ups.incumbent.addr,
    )
}

fn run_understudy(ups: &Upstreams, c: Option<Cand>, secs: u64, shared: bool) -> Option<Sample> {
    // `LOAD_BIN` runs another build of the proxy (A/B comparisons).
    let bin = std::env::var("LOAD_BIN").unwrap_or_else(|_| understudy_binary());
    run_proxy(&bin, ups, c, secs, Some(shared), false)
}

/// Runs `bin serve -c proxy.toml` under wrk. `understudy` is `Some(shared)`
/// for Understudy (its metrics and rows are read afterwards), `None` for the
/// bare proxy (`bare_shared`: on one shared runtime).
fn run_proxy(
    bin: &str,
    ups: &Upstreams,
    c: Option<Cand>,
    secs: u64,
    understudy: Option<bool>,
    bare_shared: bool,
) -> Option<Sample> {
    let check = understudy.is_some();
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.path().join("proxy.toml");
    std::fs::write(&cfg, understudy_config(dir.path(), port, admin, ups, c)).expect("write config");
    let log = std::fs::File::create(dir.path().join("proxy.log")).expect("log file");
    let mut cmd = Command::new(bin);
    if !check {
        // This binary, re-executed as the bare proxy (see `main`).
        cmd.env("LOAD_BARE", "1");
        if !bare_shared {
            cmd.env("LOAD_BARE_TPC", "1");
        }
    }
    if understudy == Some(true) {
        cmd.env("UNDERSTUDY_SHARED_RUNTIME", "true");
    }
    let mut child = cmd
        .args(["serve", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("understudy starts");
    if !started(&mut child, port, "the proxy", &dir.path().join("proxy.log")) {
        return None;
    }
    let sample = drive(ups, port, secs, child.id(), &[child.id()]);
    if !check {
        signal(child.id(), "-TERM");
        let _exited = wait_exit(&mut child, Duration::from_secs(10));
        return Some(sample);
    }
    // Let the settle tasks of the last requests finish before reading the counters.
    std::thread::sleep(Duration::from_millis(if c == Some(Cand::Slow2s) {
        2500
    } else {
        300
    }));
    let metrics = http_get(admin, "/metrics");
    let requests = metric_sum(&metrics, "understudy_requests_total", |_| true);
    let skips = metric_sum(&metrics, "understudy_mirror_skipped_total", |_| true);
    let drops = metric_sum(&metrics, "understudy_store_rows_dropped_total", |_| true);
    signal(child.id(), "-TERM");
    if !wait_exit(&mut child, Duration::from_secs(40)) {
        eprintln!("understudy did not stop on SIGTERM; killed");
    }
    let conn = rusqlite::Connection::open(dir.path().join("bench.db")).expect("open db");
    let counted_skips: u64 = conn
        .query_row(
            "SELECT coalesce(sum(count), 0) FROM mirror_skips",
            [],
            |r| r.get::<_, i64>(0),
        )
        .expect("count skips") as u64;
    let (rows, abandoned, mirrored_rows): (u64, u64, u64) = conn
        .query_row(
            "SELECT count(*),
                coalesce(sum(incumbent_error = 'answer lost'), 0),
                coalesce(sum(candidate_status IS NOT NULL OR candidate_error IS NOT NULL), 0)
             FROM exchanges",
            [],
            |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
                Ok((n(0)?, n(1)?, n(2)?))
            },
        )
        .expect("count rows");
    Some(Sample {
        check: Some(RowCheck {
            requests,
            skips,
            drops,
            rows,
            abandoned,
            mirrored_rows,
            counted_skips,
        }),
        ..sample
    })
}

/// nginx in front of `inc`, mirroring to `cand` when given; `streaming`
/// turns response buffering off (the streams scenario).
fn nginx_config(
    dir: &Path,
    port: u16,
    inc: SocketAddr,
    cand: Option<SocketAddr>,
    streaming: bool,
) -> String {
    let d = dir.display();
    let (mirror, cand_upstream) = match cand {
        None => (String::new(), String::new()),
        Some(cand) => (
            "mirror /__mirror;\n            mirror_request_body on;".to_string(),
            format!("upstream candidate {{ server {cand}; keepalive 64; }}\n    "),
        ),
    };
    let buffering = if streaming {
        "proxy_buffering off;\n    proxy_read_timeout 600s;\n    "
    } else {
        ""
    };
    format!(
        r#"worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    {buffering}upstream incumbent {{ server {inc}; keepalive 64; }}
    {cand_upstream}server {{
        listen 127.0.0.1:{port};
        location / {{
            {mirror}
            proxy_pass http://incumbent;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location = /__mirror {{
            internal;
            proxy_pass http://candidate$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#,
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run_nginx(nginx: &Path, ups: &Upstreams, c: Option<Cand>, secs: u64) -> Option<Sample> {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cand = c.map(|c| ups.candidate(c).0);
    let config = nginx_config(dir.path(), port, ups.incumbent.addr, cand, false);
    let (mut child, worker) = start_nginx(nginx, dir.path(), port, &config)?;
    let sample = match worker {
        Some(w) => drive(ups, port, secs, w, &[child.id(), w]),
        None => drive(ups, port, secs, 0, &[]),
    };
    signal(child.id(), "-TERM");
    wait_exit(&mut child, Duration::from_secs(10));
    Some(sample)
}

/// Starts nginx in `dir` with `config`, listening on `port`: the master and
/// its worker's pid.
fn start_nginx(nginx: &Path, dir: &Path, port: u16, config: &str) -> Option<(Child, Option<u32>)> {
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config).expect("write nginx.conf");
    let mut args: Vec<String> = vec![
        "-p".into(),
        dir.display().to_string(),
        "-e".into(),
        dir.join("error.log").display().to_string(),
        "-c".into(),
        conf.display().to_string(),
    ];
    // As root, run nginx as nobody: the benchmark never needs privileges.
    let mut cmd = if is_root() {
        let perms = std::os::unix::fs::PermissionsExt::from_mode(0o777);
        std::fs::set_permissions(dir, perms).expect("chmod tempdir");
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"]);
        c.arg(nginx);
        c
    } else {
        Command::new(nginx)
    };
    args.iter().for_each(|a| {
        cmd.arg(a);
    });
    args.clear();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    if !started(&mut child, port, "nginx", &dir.join("error.log")) {
        return None;
    }
    // The worker is the master's child: its CPU, and master + worker memory.
    let worker = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok());
    Some((child, worker))
}

/// Waits until `child` listens on `port`; otherwise kills it and prints `log`.
fn started(child: &mut Child, port: u16, what: &str, log: &Path) -> bool {
    if wait_listening(port, child) {
        return true;
    }
    let _killed = child.kill();
    eprintln!(
        "{what} did not start: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    false
}

/// wrk GET then POST through `port`: new upstream connections, the CPU time
/// of `cpu_pid` per request and the summed peak RSS of `rss_pids`.
fn drive(ups: &Upstreams, port: u16, secs: u64, cpu_pid: u32, rss_pids: &[u32]) -> Sample {
    let conns_before = ups.accepted();
    let cpu_before = cpu_us(cpu_pid);
    let get = run_wrk(port, false, secs);
    let post = run_wrk(port, true, secs);
    let new_conns = ups.accepted() - conns_before;
    let cpu_us_per_req = per_request(cpu_before, cpu_us(cpu_pid), &get, &post);
    let rss_kib = rss_pids
        .iter()
        .map(|&p| peak_rss_kib(p))
        .sum::<Option<u64>>()
        .filter(|_| !rss_pids.is_empty());
    Sample {
        get,
        post,
        new_conns,
        rss_kib,
        cpu_us_per_req,
        check: None,
    }
}

fn ensure_tool(bin: &str, package: &str) -> bool {
    let found = |b: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b} || test -x /usr/sbin/{b}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if found(bin) {
        return true;
    }
    eprintln!("{bin} not found; installing the Debian package {package}");
    let installed = Command::new("sh")
        .args([
            "-c",
            &format!("apt-get update -qq && apt-get install -y -qq {package} >/dev/null"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    installed && found(bin)
}

fn nginx_path() -> Option<PathBuf> {
    if !ensure_tool("nginx", "nginx-light") {
        return None;
    }
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The repetitions of one scenario, combined: means of rates and latencies,
/// sums of counts, the highest RSS.
#[derive(Clone, Default)]
struct Agg {
    get: Wrk,
    post: Wrk,
    conns_per_req: f64,
    rss_mib: Option<f64>,
    cpu_us_per_req: Option<f64>,
    checks: Vec<RowCheck>,
}

fn aggregate(samples: &[Sample]) -> Agg {
    let wrk = |f: &dyn Fn(&Sample) -> &Wrk| Wrk {
        rps: mean(samples.iter().map(|s| f(s).rps)),
        p50_ms: mean(samples.iter().map(|s| f(s).p50_ms)),
        p99_ms: mean(samples.iter().map(|s| f(s).p99_ms)),
        requests: samples.iter().map(|s| f(s).requests).sum(),
        errors: samples.iter().map(|s| f(s).errors).sum(),
    };
    let requests: u64 = samples
        .iter()
        .map(|s| s.get.requests + s.post.requests)
        .sum();
    let conns: u64 = samples.iter().map(|s| s.new_conns).sum();
    Agg {
        get: wrk(&|s| &s.get),
        post: wrk(&|s| &s.post),
        conns_per_req: conns as f64 / requests.max(1) as f64,
        rss_mib: samples
            .iter()
            .filter_map(|s| s.rss_kib)
            .max()
            .map(|k| k as f64 / 1024.0),
        cpu_us_per_req: Some(mean(samples.iter().filter_map(|s| s.cpu_us_per_req)))
            .filter(|v| v.is_finite()),
        checks: samples.iter().filter_map(|s| s.check.clone()).collect(),
    }
}

fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 && a.is_finite() => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

/// Builds the `understudy` to deploy (`--profile dist`, a no-op when it is
/// current) and returns its path.
fn understudy_binary() -> String {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{ROOT}/target"));
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--profile",
            "dist",
            "--quiet",
            "-p",
            "understudy",
            "--bin",
            "understudy",
        ])
        .current_dir(ROOT)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("cannot build the understudy binary (--profile dist)");
        std::process::exit(1);
    }
    format!("{target}/dist/understudy")
}

fn main() {
    // Re-executed as the bare proxy (`Kind::Bare`): `... serve -c proxy.toml`.
    if std::env::var_os("LOAD_BARE").is_some() {
        let path = std::env::args().next_back().unwrap_or_default();
        if let Err(e) = bare::run(Path::new(&path)) {
            eprintln!("bare proxy: {e}");
            std::process::exit(2);
        }
        return;
    }
    // Nothing is taken from the command line; see the environment above.
    let secs: u64 = std::env::var("LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let reps: usize = std::env::var("LOAD_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let only: Option<Vec<String>> = std::env::var("LOAD_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    if !ensure_tool("wrk", "wrk") {
        eprintln!("wrk is not available and could not be installed; no benchmark");
        std::process::exit(1);
    }
    let nginx = nginx_path();
    let started = Instant::now();
    let load_before = loadavg();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ups = rt.block_on(async {
        Upstreams {
            incumbent: upstream(Duration::ZERO, ANSWER).await,
            fast: upstream(Duration::ZERO, CANDIDATE_ANSWER).await,
            slow200: upstream(Duration::from_millis(200), CANDIDATE_ANSWER).await,
            slow2s: upstream(Duration::from_secs(2), CANDIDATE_ANSWER).await,
            dead: {
                let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                l.local_addr().expect("addr")
            },
        }
    });
    let cands = [
        None,
        Some(Cand::Fast),
        Some(Cand::Slow200),
        Some(Cand::Slow2s),
        Some(Cand::Dead),
    ];
    let mut kinds = vec![Kind::Direct, Kind::Bare(false), Kind::Bare(true)];
    kinds.extend(cands.iter().map(|&c| Kind::Understudy(c)));
    kinds.extend([None, Some(Cand::Fast)].map(Kind::UnderstudyShared));
    if nginx.is_some() {
        kinds.extend(cands.iter().map(|&c| Kind::Nginx(c)));
    } else {
        eprintln!("nginx is not available: its scenarios are left out");
    }
    if let Some(only) = &only {
        kinds.retain(|k| only.contains(&k.key()));
    }
    let mut samples: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    for rep in 1..=reps {
        for &kind in &kinds {
            let sample = match kind {
                Kind::Direct => {
                    let before = ups.accepted();
                    let get = run_wrk(ups.incumbent.addr.port(), false, secs);
                    let post = run_wrk(ups.incumbent.addr.port(), true, secs);
                    Some(Sample {
                        get,
                        post,
                        new_conns: ups.accepted() - before,
                        ..Sample::default()
                    })
                }
                Kind::Bare(shared) => std::env::current_exe().ok().and_then(|me| {
                    run_proxy(&me.to_string_lossy(), &ups, None, secs, None, shared)
                }),
                Kind::Understudy(c) => run_understudy(&ups, c, secs, false),
                Kind::UnderstudyShared(c) => run_understudy(&ups, c, secs, true),
                Kind::Nginx(c) => nginx.as_deref().and_then(|n| run_nginx(n, &ups, c, secs)),
            };
            if let Some(s) = sample {
                eprintln!(
                    "rep {rep} {:<24} GET {:>9.0} req/s p50 {:>7.2} p99 {:>7.2} err {:>5} | POST {:>9.0} req/s p50 {:>7.2} p99 {:>7.2} err {:>5} | new conns {:>5} rss {:>6} KiB cpu {:>6.1} us/req {}",
                    kind.key(),
                    s.get.rps,
                    s.get.p50_ms,
                    s.get.p99_ms,
                    s.get.errors,
                    s.post.rps,
                    s.post.p50_ms,
                    s.post.p99_ms,
                    s.post.errors,
                    s.new_conns,
                    s.rss_kib.unwrap_or(0),
                    s.cpu_us_per_req.unwrap_or(f64::NAN),
                    s.check
                        .as_ref()
                        .map(|c| format!("{c:?} ok={}", c.ok()))
                        .unwrap_or_default()
                );
                samples.entry(kind.key()).or_default().push(s);
            }
        }
    }
    let streams_section = only
        .as_ref()
        .is_none_or(|o| o.iter().any(|k| k == "streams"))
        .then(|| run_streams(&rt));
    if let Some(section) = &streams_section {
        eprintln!("{section}");
    }
    let elapsed = started.elapsed();
    let load_after = loadavg();
    let aggs: BTreeMap<String, Agg> = samples
        .iter()
        .map(|(k, v)| (k.clone(), aggregate(v)))
        .collect();
    let report = render(
        &kinds,
        &aggs,
        secs,
        reps,
        &load_before,
        &load_after,
        elapsed,
    );
    let report = match streams_section {
        Some(section) => format!("{report}\n{section}"),
        None => report,
    };
    println!("{report}");
    if only.is_none() {
        let path = Path::new(ROOT).join("BENCHMARKS.md");
        // Hand-written notes (from "## Notes" on) survive a re-run.
        let notes = std::fs::read_to_string(&path)
            .ok()
            .and_then(|old| old.find(NOTES).map(|i| old[i..].to_string()))
            .unwrap_or_default();
        let sep = if notes.is_empty() { "" } else { "\n" };
        std::fs::write(&path, format!("{report}{sep}{notes}")).expect("write BENCHMARKS.md");
        eprintln!("wrote {}", path.display());
    }
}

/// The long-AI-streams scenario (`streams.rs`): direct, then through the
/// proxy, with its resources at the plateau and its counters and rows after.
fn run_streams(rt: &tokio::runtime::Runtime) -> String {
    let s = streams::Settings::from_env();
    let load = loadavg();
    eprintln!("streams: {} concurrent, {} s each", s.streams, s.secs);
    let (inc, cand) = rt.block_on(async {
        (
            streams::sse_upstream(s.secs * 10).await,
            streams::sse_upstream(s.secs * 10).await,
        )
    });
    let direct = rt.block_on(streams::drive(inc.port(), s, None));
    eprintln!(
        "streams direct: ok {} short {} failed {} p99 {:.2} ms",
        direct.ok,
        direct.short,
        direct.failed.len(),
        direct.percentile_ms(0.99)
    );
    let bin = std::env::var("LOAD_BIN").unwrap_or_else(|_| understudy_binary());
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.path().join("proxy.toml");
    std::fs::write(&cfg, streams::config(dir.path(), port, admin, inc, cand, s))
        .expect("write config");
    let log = std::fs::File::create(dir.path().join("proxy.log")).expect("log file");
    let mut child = Command::new(&bin)
        .args(["serve", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("understudy starts");
    if !started(&mut child, port, "the proxy", &dir.path().join("proxy.log")) {
        return "## Long AI streams\n\nThe proxy did not start.\n".into();
    }
    let idle_rss = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|st| {
            st.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    let cpu_before = cpu_us(child.id());
    let wall = Instant::now();
    let mut proxied = rt.block_on(streams::drive(port, s, Some(child.id())));
    proxied.cpu = cpu_before
        .zip(cpu_us(child.id()))
        .map(|(b, a)| (a - b, wall.elapsed().as_secs_f64()));
    eprintln!(
        "streams proxied: ok {} short {} failed {} p99 {:.2} ms plateau {:?}",
        proxied.ok,
        proxied.short,
        proxied.failed.len(),
        proxied.percentile_ms(0.99),
        proxied.plateau
    );
    // The last settle tasks: compare and queue the rows.
    std::thread::sleep(Duration::from_secs(2));
    let peak = peak_rss_kib(child.id()).unwrap_or(0);
    let metrics = http_get(admin, "/metrics");
    let counters: String = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            [
                "understudy_requests_total",
                "understudy_mirror_skipped_total",
                "understudy_limit_rejections_total",
                "understudy_store_rows_dropped_total",
                "understudy_mirror_in_flight",
            ]
            .iter()
            .any(|m| l.starts_with(m))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    signal(child.id(), "-TERM");
    if !wait_exit(&mut child, Duration::from_secs(60)) {
        eprintln!("understudy did not stop on SIGTERM; killed");
    }
    let rows = rusqlite::Connection::open(dir.path().join("streams.db"))
        .and_then(|c| {
            c.query_row(
                "SELECT count(*), coalesce(sum(verdict != 'skipped'), 0) FROM exchanges",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
        })
        .unwrap_or((0, 0));
    let mut out = streams::render(s, &direct, &proxied, idle_rss, peak, &counters, rows, &load);
    out += &streams_nginx(rt, inc, cand, s, &proxied);
    out
}

/// nginx proxying the same streams (`proxy_buffering off`), without and
/// with `mirror` to the candidate: its worker's CPU per client chunk, and
/// Understudy's as a ratio of it.
fn streams_nginx(
    rt: &tokio::runtime::Runtime,
    inc: SocketAddr,
    cand: SocketAddr,
    s: streams::Settings,
    understudy: &streams::Run,
) -> String {
    let Some(nginx) = nginx_path() else {
        return "- nginx is not available: no comparison\n".into();
    };
    let ours = understudy
        .cpu
        .map(|(us, _)| us / understudy.delays_us.len().max(1) as f64);
    let mut out = String::new();
    for (name, mirror) in [("nginx", None), ("nginx + mirror", Some(cand))] {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = nginx_config(dir.path(), port, inc, mirror, true);
        let Some((mut child, Some(worker))) = start_nginx(&nginx, dir.path(), port, &config) else {
            let _w = writeln!(out, "- {name}: did not start");
            continue;
        };
        let before = cpu_us(worker);
        let run = rt.block_on(streams::drive(port, s, None));
        let used = before.zip(cpu_us(worker)).map(|(b, a)| a - b);
        signal(child.id(), "-TERM");
        wait_exit(&mut child, Duration::from_secs(10));
        let chunks = run.delays_us.len().max(1) as f64;
        let per = used.map(|u| u / chunks);
        eprintln!(
            "streams {name}: ok {} p99 {:.2} ms, {per:?} µs per chunk",
            run.ok,
            run.percentile_ms(0.99)
        );
        let _w = writeln!(
            out,
            "- {name} (`proxy_buffering off`, one worker): streams ok {}, chunk delay p50 / p99 {:.2} / {:.2} ms, worker CPU {:.1} µs per client chunk; Understudy {}",
            run.ok,
            run.percentile_ms(0.5),
            run.percentile_ms(0.99),
            per.unwrap_or(f64::NAN),
            match (ours, per) {
                (Some(o), Some(p)) if p > 0.0 => format!("{:.2}×", o / p),
                _ => "–".into(),
            }
        );
    }
    out
}

fn render(
    kinds: &[Kind],
    aggs: &BTreeMap<String, Agg>,
    secs: u64,
    reps: usize,
    load_before: &str,
    load_after: &str,
    elapsed: Duration,
) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let nginx_version = Command::new("sh")
        .args(["-c", "nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let get = |k: &str| aggs.get(k);
    let direct = get("direct");
    let mut out = String::new();
    let _w = writeln!(
        out,
        "# Benchmarks\n\n\
         Written by the load benchmark (`scripts/loadbench`). Reproduce with:\n\n\
         ```sh\ncargo loadbench\n```\n\n\
         - date: {date}; machine: {cores} cores, shared by wrk, the proxy under test and the upstreams\n\
         - load average (1/5/15 min) before: {load_before}; after: {load_after}\n\
         - wrk -t1 -c{CONNECTIONS} --timeout 5s, keep-alive, {secs} s per method and scenario, \
         {reps} interleaved repetitions (figures are their means; errors and connections are sums); \
         whole run {:.0} s\n\
         - upstreams: in the benchmark process (2 tokio workers), HTTP/1.1, a 190-byte JSON answer (the candidates' differs in the ignored `request_id`, \
         so every pair is parsed and compared); \
         POST sends a ~1 KiB JSON body\n\
         - Understudy and the bare proxy: `--profile dist` builds (release with whole-program LTO, as the Dockerfile ships), a thread per core (`serve`'s default) unless the row says \
         shared runtime (`--shared-runtime`), mirror methods GET+POST, json compare, SQLite logging on, \
         default store and mirror settings (max_in_flight 256, timeout 2 s)\n\
         - nginx: {nginx_version}, one worker, keep-alive pools (64) to both upstreams, \
         `mirror` + `mirror_request_body on`\n",
        elapsed.as_secs_f64()
    );
    let _w = writeln!(
        out,
        "| scenario | GET req/s | GET p50 / p99 ms | POST req/s | POST p50 / p99 ms | errors | new upstream conns / req | peak RSS MiB | proxy CPU µs / req | GET × direct | GET × nginx | POST × nginx |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for &kind in kinds {
        let Some(a) = get(&kind.key()) else { continue };
        let peer = match kind {
            Kind::Understudy(c) | Kind::UnderstudyShared(c) => get(&Kind::Nginx(c).key()),
            Kind::Bare(_) => get(&Kind::Nginx(None).key()),
            _ => None,
        };
        let _w = writeln!(
            out,
            "| {} | {:.0} | {:.2} / {:.2} | {:.0} | {:.2} / {:.2} | {} | {} | {} | {} | {} | {} | {} |",
            kind.label(),
            a.get.rps,
            a.get.p50_ms,
            a.get.p99_ms,
            a.post.rps,
            a.post.p50_ms,
            a.post.p99_ms,
            a.get.errors + a.post.errors,
            if kind == Kind::Direct {
                "(wrk's own)".to_string()
            } else {
                format!("{:.4}", a.conns_per_req)
            },
            a.rss_mib.map_or("–".into(), |m| format!("{m:.1}")),
            a.cpu_us_per_req.map_or("–".into(), |c| format!("{c:.1}")),
            if kind == Kind::Direct {
                "1.00".into()
            } else {
                ratio(a.get.rps, direct.map(|d| d.get.rps))
            },
            ratio(a.get.rps, peer.map(|p| p.get.rps)),
            ratio(a.post.rps, peer.map(|p| p.post.rps)),
        );
    }
    let _w = writeln!(
        out,
        "\n## Rows in SQLite\n\n\
         A mirrored exchange is a row; a skipped mirror is counted in `mirror_skips` instead \
         (`skips` is the metric, `counted` the table). `requests` counts answers \
         (`requests_total`); `abandoned` are mirrored exchanges whose client left mid-request \
         (wrk closes its connections with requests in flight when it stops), which have a row \
         too. Checked per run: rows = requests + abandoned − skips − drops (a skipped exchange \
         whose client left is in `skips` but not in `requests`: up to {CONNECTIONS} more each time wrk stops, \
         after GET and after POST), \
         every row has the candidate's answer or error, and counted = skips. Counters come from \
         `/metrics` read before SIGTERM; rows are counted after the proxy exited.\n\n\
         | scenario | run | requests | abandoned | skips | counted | drops | rows | mirrored rows | check |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for &kind in kinds {
        let Some(a) = get(&kind.key()) else { continue };
        for (i, c) in a.checks.iter().enumerate() {
            let _w = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                kind.label(),
                i + 1,
                c.requests,
                c.abandoned,
                c.skips,
                c.counted_skips,
                c.drops,
                c.rows,
                c.mirrored_rows,
                if c.ok() { "ok" } else { "FAILED" }
            );
        }
    }
    let _w = writeln!(out, "\n## Targets (issues 5 and 15), from this run\n");
    let mut target = |name: &str, value: String, pass: Option<bool>| {
        let verdict = match pass {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        };
        let _w = writeln!(out, "- {name}: {value} — **{verdict}**");
    };
    let us = |c: Option<Cand>| get(&Kind::Understudy(c).key());
    let ng = |c: Option<Cand>| get(&Kind::Nginx(c).key());
    let both = |a: &Agg| (a.get.rps, a.post.rps);
    let cpu = |u: &Agg, n: &Agg| Some(u.cpu_us_per_req? / n.cpu_us_per_req?);
    if let (Some(u), Some(n)) = (us(Some(Cand::Fast)), ng(Some(Cand::Fast))) {
        let (g, p) = (u.get.rps / n.get.rps, u.post.rps / n.post.rps);
        target(
            "fast candidate, mirror+compare+row ≥ 1.8× nginx+mirror throughput (issue 15; issue 5 asked 2×)",
            format!("GET {g:.2}×, POST {p:.2}×"),
            Some(g >= 1.8 && p >= 1.8),
        );
        let c = cpu(u, n);
        target(
            "fast candidate: proxy CPU per request ≤ 0.6× nginx+mirror's",
            c.map_or("–".into(), |c| format!("{c:.2}×")),
            c.map(|c| c <= 0.6),
        );
    } else {
        target("fast candidate ≥ 1.8× nginx+mirror", String::new(), None);
    }
    if let (Some(u), Some(n)) = (us(None), ng(None)) {
        let (g, p) = (u.get.rps / n.get.rps, u.post.rps / n.post.rps);
        target(
            "mirroring off ≥ 0.85× nginx without mirror throughput (issue 15; the goal stays ≥ 1.0×)",
            format!("GET {g:.2}×, POST {p:.2}×"),
            Some(g >= 0.85 && p >= 0.85),
        );
        let c = cpu(u, n);
        target(
            "mirroring off: proxy CPU per request ≤ 1.3× nginx's",
            c.map_or("–".into(), |c| format!("{c:.2}×")),
            c.map(|c| c <= 1.3),
        );
    } else {
        target(
            "mirroring off ≥ 0.85× nginx without mirror",
            String::new(),
            None,
        );
    }
    if let Some(fast) = us(Some(Cand::Fast)) {
        for c in [Cand::Slow200, Cand::Slow2s, Cand::Dead] {
            let Some(s) = us(Some(c)) else { continue };
            let (fg, fp) = both(fast);
            let (sg, sp) = both(s);
            let tput = (sg / fg).min(sp / fp);
            let p99 = (s.get.p99_ms / fast.get.p99_ms).max(s.post.p99_ms / fast.post.p99_ms);
            target(
                &format!(
                    "{} candidate: ≥ 0.95× throughput, p99 ≤ 1.1× of fast",
                    c.name()
                ),
                format!("throughput {tput:.2}× (worst method), p99 {p99:.2}× (worst method)"),
                Some(tput >= 0.95 && p99 <= 1.1),
            );
        }
    }
    let conns: Vec<String> = kinds
        .iter()
        .filter(|k| matches!(k, Kind::Understudy(_)))
        .filter_map(|k| Some(format!("{:.4}", get(&k.key())?.conns_per_req)))
        .collect();
    let worst = kinds
        .iter()
        .filter(|k| matches!(k, Kind::Understudy(_)))
        .filter_map(|k| get(&k.key()).map(|a| a.conns_per_req))
        .fold(0.0f64, f64::max);
    target(
        "new upstream connections per request ≈ 0 (< 0.01)",
        format!("Understudy runs: {}", conns.join(", ")),
        Some(worst < 0.01),
    );
    let all_checks: Vec<&RowCheck> = kinds
        .iter()
        .filter_map(|k| get(&k.key()))
        .flat_map(|a| a.checks.iter())
        .collect();
    target(
        "rows = requests − skips − drops",
        format!(
            "{} of {} runs",
            all_checks.iter().filter(|c| c.ok()).count(),
            all_checks.len()
        ),
        Some(!all_checks.is_empty() && all_checks.iter().all(|c| c.ok())),
    );
    match us(Some(Cand::Dead)).and_then(|a| a.rss_mib) {
        Some(m) => target(
            "peak RSS ≤ 64 MiB with a dead candidate",
            format!("{m:.1} MiB"),
            Some(m <= 64.0),
        ),
        None => target(
            "peak RSS ≤ 64 MiB with a dead candidate",
            String::new(),
            None,
        ),
    }
    out
}
