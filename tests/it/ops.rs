//! Operating it (issue 14): the Kubernetes manifests agree with the proxy.toml
//! they carry, the alert rules pass promtool, the dashboard and the rules name
//! only metrics a real proxy exports, and `--log-format json` writes JSON lines.

use crate::support::*;
use http::Request;
use http_body_util::Full;
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use yaml_rust2::{Yaml, YamlLoader};

fn examples(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(examples(rel)).unwrap()
}

// ---- Kubernetes ------------------------------------------------------------

/// Every problem found in a set of manifests, and how many Understudy
/// containers were checked.
fn check_manifests(text: &str) -> (Vec<String>, usize) {
    let docs = YamlLoader::load_from_str(text).unwrap();
    let kind = |d: &Yaml, k: &str| d["kind"].as_str() == Some(k);
    let name = |d: &Yaml| d["metadata"]["name"].as_str().unwrap_or("").to_string();
    let mut problems = Vec::new();
    let mut checked = 0;
    for deploy in docs.iter().filter(|d| kind(d, "Deployment")) {
        let pod = &deploy["spec"]["template"];
        let spec = &pod["spec"];
        let containers = spec["containers"].as_vec().cloned().unwrap_or_default();
        // Container ports of the whole pod: no two containers may share one.
        let mut pod_ports: HashMap<i64, String> = HashMap::new();
        for c in &containers {
            for p in c["ports"].as_vec().into_iter().flatten() {
                let port = p["containerPort"].as_i64().unwrap();
                if let Some(other) = pod_ports.insert(port, name_of(c)) {
                    problems.push(format!("port {port} used by {other} and {}", name_of(c)));
                }
            }
        }
        for c in containers.iter().filter(|c| is_understudy(c)) {
            checked += 1;
            let who = format!("{}/{}", name(deploy), name_of(c));
            let mut problem = |m: String| problems.push(format!("{who}: {m}"));
            let args: Vec<&str> = c["args"]
                .as_vec()
                .into_iter()
                .flatten()
                .filter_map(Yaml::as_str)
                .collect();
            let Some(cfg_path) = args
                .windows(2)
                .find(|w| w[0] == "-c" || w[0] == "--config")
                .map(|w| Path::new(w[1]))
            else {
                problem("no -c <proxy.toml> argument".into());
                continue;
            };
            // The config file comes from a ConfigMap mounted as its directory.
            let mounts = c["volumeMounts"].as_vec().cloned().unwrap_or_default();
            let volume = |n: &str| {
                spec["volumes"]
                    .as_vec()
                    .into_iter()
                    .flatten()
                    .find(|v| v["name"].as_str() == Some(n))
                    .cloned()
            };
            let mount_at = |dir: &Path| {
                mounts
                    .iter()
                    .find(|m| m["mountPath"].as_str().map(Path::new) == Some(dir))
                    .cloned()
            };
            let Some(cfg_mount) = mount_at(cfg_path.parent().unwrap()) else {
                problem(format!("nothing mounted at {:?}", cfg_path.parent()));
                continue;
            };
            if !cfg_mount["subPath"].is_badvalue() {
                problem("the config is mounted with subPath: it would never reload".into());
            }
            let cm_name = volume(cfg_mount["name"].as_str().unwrap())
                .and_then(|v| v["configMap"]["name"].as_str().map(str::to_string));
            let file = cfg_path.file_name().unwrap().to_str().unwrap();
            let Some(text) = docs
                .iter()
                .filter(|d| kind(d, "ConfigMap"))
                .find(|d| Some(name(d)) == cm_name)
                .and_then(|d| d["data"][file].as_str())
            else {
                problem(format!("no ConfigMap {cm_name:?} with key {file}"));
                continue;
            };
            let config = match understudy::config::parse(text) {
                Ok(c) => c,
                Err(e) => {
                    problem(format!("its proxy.toml does not parse: {e}"));
                    continue;
                }
            };
            let (listen, admin) = (config.listen.addr, config.admin.addr);
            for (what, addr) in [("listen.addr", listen), ("admin.addr", admin)] {
                if !addr.ip().is_unspecified() {
                    problem(format!(
                        "{what} {addr} is not reachable from outside the pod"
                    ));
                }
            }
            let ports: HashMap<String, i64> = c["ports"]
                .as_vec()
                .into_iter()
                .flatten()
                .map(|p| {
                    let n = p["name"].as_str().unwrap_or("").to_string();
                    (n, p["containerPort"].as_i64().unwrap())
                })
                .collect();
            let resolve = |p: &Yaml| p.as_i64().or_else(|| ports.get(p.as_str()?).copied());
            let (listen_port, admin_port) = (i64::from(listen.port()), i64::from(admin.port()));
            for port in [listen_port, admin_port] {
                if !ports.values().any(|&p| p == port) {
                    problem(format!("no containerPort {port}"));
                }
            }
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
                let get = &c[probe]["httpGet"];
                if get["path"].as_str() != Some(path) || resolve(&get["port"]) != Some(admin_port) {
                    problem(format!(
                        "{probe} is not GET {path} on the admin port {admin_port}"
                    ));
                }
            }
            let notes = &pod["metadata"]["annotations"];
            let expected = [
                ("prometheus.io/scrape", "true".to_string()),
                ("prometheus.io/port", admin_port.to_string()),
                ("prometheus.io/path", "/metrics".to_string()),
            ];
            for (key, want) in expected {
                if notes[key].as_str() != Some(want.as_str()) {
                    problem(format!("annotation {key} is not {want:?}"));
                }
            }
            // The SQLite file's directory is a writable volume of its own.
            let db_dir = config.store.path.parent().unwrap();
            match mount_at(db_dir) {
                Some(m) if m["readOnly"].as_bool() != Some(true) => {
                    let v = volume(m["name"].as_str().unwrap()).unwrap();
                    if v["emptyDir"].is_badvalue() && v["persistentVolumeClaim"].is_badvalue() {
                        problem(format!("{db_dir:?} is not an emptyDir or a volume claim"));
                    }
                }
                _ => problem(format!(
                    "store.path's directory {db_dir:?} is not mounted writable"
                )),
            }
            let grace = spec["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
            if grace as u64 <= config.listen.drain_timeout.as_secs() {
                problem(format!(
                    "terminationGracePeriodSeconds {grace} leaves no time after the drain"
                ));
            }
            // A loopback incumbent is another container of the pod (sidecar).
            for r in &config.routes {
                let inc = &r.incumbent.uri;
                if matches!(inc.host(), Some("127.0.0.1" | "localhost")) {
                    let port = i64::from(inc.port_u16().unwrap_or(80));
                    if pod_ports
                        .get(&port)
                        .is_none_or(|owner| owner == &name_of(c))
                    {
                        problem(format!("incumbent {inc} is no other container's port"));
                    }
                }
            }
            // Services selecting this pod expose the proxy, never the admin port.
            let labels = &pod["metadata"]["labels"];
            let services: Vec<&Yaml> = docs
                .iter()
                .filter(|d| kind(d, "Service"))
                .filter(|s| {
                    s["spec"]["selector"].as_hash().is_some_and(|sel| {
                        sel.iter().all(|(k, v)| &labels[k.as_str().unwrap()] == v)
                    })
                })
                .collect();
            if services.is_empty() {
                problem("no Service selects the pod".into());
            }
            for s in services {
                for p in s["spec"]["ports"].as_vec().into_iter().flatten() {
                    let target = if p["targetPort"].is_badvalue() {
                        &p["port"]
                    } else {
                        &p["targetPort"]
                    };
                    if resolve(target) != Some(listen_port) {
                        problem(format!(
                            "Service {} targets {target:?}, not the proxy port {listen_port}",
                            name(s)
                        ));
                    }
                }
            }
        }
    }
    (problems, checked)
}

fn name_of(c: &Yaml) -> String {
    c["name"].as_str().unwrap_or("").to_string()
}

fn is_understudy(c: &Yaml) -> bool {
    c["image"]
        .as_str()
        .is_some_and(|i| i.contains("/understudy:"))
}

#[test]
fn the_kubernetes_manifests_agree_with_their_proxy_toml() {
    let separate = format!(
        "{}\n---\n{}",
        read("kubernetes/configmap.yaml"),
        read("kubernetes/deployment.yaml")
    );
    for (what, text) in [
        ("configmap.yaml + deployment.yaml", separate),
        ("sidecar.yaml", read("kubernetes/sidecar.yaml")),
    ] {
        let (problems, checked) = check_manifests(&text);
        assert_eq!(checked, 1, "{what}: one Understudy container");
        assert!(problems.is_empty(), "{what}: {problems:#?}");
    }
}

#[test]
fn the_manifest_check_catches_what_does_not_agree() {
    let good = format!(
        "{}\n---\n{}",
        read("kubernetes/configmap.yaml"),
        read("kubernetes/deployment.yaml")
    );
    let cases = [
        // The readiness probe on the proxy port.
        (
            "path: /readyz\n              port: admin",
            "path: /readyz\n              port: proxy",
            "readinessProbe",
        ),
        // The config's admin port no longer the container's.
        ("addr = \"0.0.0.0:9090\"", "addr = \"0.0.0.0:9191\"", "9191"),
        // The database elsewhere than the volume.
        (
            "path = \"/var/lib/understudy/understudy.db\"",
            "path = \"/srv/understudy.db\"",
            "store.path",
        ),
        // The admin port in the Service.
        ("targetPort: proxy", "targetPort: admin", "Service"),
        // Admin on loopback: probes and scrapes cannot reach it.
        (
            "addr = \"0.0.0.0:9090\"",
            "addr = \"127.0.0.1:9090\"",
            "admin.addr",
        ),
    ];
    for (from, to, expect) in cases {
        assert!(good.contains(from), "{from}");
        let (problems, _) = check_manifests(&good.replacen(from, to, 1));
        assert!(
            problems.iter().any(|p| p.contains(expect)),
            "{from} -> {to}: {problems:#?}"
        );
    }
}

// ---- Prometheus rules and Grafana ----------------------------------------

#[test]
fn the_alert_rules_pass_promtool() {
    let Ok(version) = Command::new("promtool").arg("--version").output() else {
        eprintln!("note: promtool not found (Debian package prometheus); rules not checked");
        return;
    };
    assert!(version.status.success());
    let dir = examples("prometheus");
    for args in [
        ["check", "rules", "understudy-rules.yml"],
        ["test", "rules", "understudy-rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The metric names a PromQL expression reads: identifiers that are not
/// functions, keywords, label names (in `{}`, `by (...)`, `on (...)`),
/// strings, ranges, numbers or Grafana variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 18] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "group_left",
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |i: usize, close: char| {
        let mut j = i + 1;
        while j < chars.len() && chars[j] != close {
            j += 1;
        }
        j + 1
    };
    let next_non_space = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_to(i, c),
            '{' => i = skip_to(i, '}'),
            '[' => i = skip_to(i, ']'),
            '$' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = next_non_space(i);
                let call = chars.get(next) == Some(&'(');
                if GROUPING.contains(&word.as_str()) && call {
                    i = skip_to(next, ')');
                } else if !call && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn metric_names_are_found_in_promql() {
    let got = metric_names(
        r#"sum by (route, reason) (rate(understudy_x_total{reason=~"a|b"}[10m])) / on (route) group_left sum by (route) (rate(up[$__rate_interval])) > 0.05 and on(route) foo_bucket offset 5m"#,
    );
    let want: BTreeSet<String> = ["understudy_x_total", "up", "foo_bucket"]
        .map(String::from)
        .into();
    assert_eq!(got, want);
}

/// Every PromQL expression in the dashboard (panel targets and the route
/// variable's `label_values(metric, label)`).
fn dashboard_exprs() -> Vec<String> {
    let dash: serde_json::Value =
        serde_json::from_str(&read("grafana/understudy-dashboard.json")).unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for var in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
                .map(|(metric, _label)| metric)
                .unwrap_or(q);
            exprs.push(inner.to_string());
        }
    }
    exprs
}

fn rule_exprs() -> Vec<String> {
    let docs = YamlLoader::load_from_str(&read("prometheus/understudy-rules.yml")).unwrap();
    let mut exprs = Vec::new();
    for group in docs[0]["groups"].as_vec().unwrap() {
        for rule in group["rules"].as_vec().unwrap() {
            exprs.push(rule["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

/// Metric names in a Prometheus text exposition; a histogram's series
/// (`_bucket`, `_sum`, `_count`) count under their own names and the base.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            names.insert(rest.split_whitespace().next().unwrap().to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_name_only_exported_metrics() {
    let incumbent = upstream().json(r#"{"score":1}"#).spawn().await;
    let candidate = upstream().json(r#"{"score":2}"#).spawn().await;
    let routes = route(
        "r",
        "/",
        &incumbent.url(),
        &candidate.url(),
        r#"segment = { header = "x-tier", values = ["enterprise"] }
sticky = { header = "x-user-id" }
rollout = { segments = { enterprise = 50.0 } }
guard = { min_samples = 20 }
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let running = start_from_file(dir.path(), &routes).await;
    let admin = format!("http://{}/metrics", running.admin_addr);
    let metrics = async || String::from_utf8(get(&admin).await.2.to_vec()).unwrap();
    // A skipped mirror (POST is not mirrored by default), a reload, and
    // disagreeing answers until the guard trips: every family has a series.
    post(&format!("http://{}/score", running.addr), "{}").await;
    running.proxy.reload().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    let mut text = metrics().await;
    while !text.contains("understudy_guard_trips_total{") && Instant::now() < deadline {
        let req = Request::get(format!("http://{}/score", running.addr))
            .header("x-tier", "enterprise")
            .header("x-user-id", format!("u{i}"))
            .body(Full::default())
            .unwrap();
        send(req).await;
        i += 1;
        if i % 10 == 0 {
            text = metrics().await;
        }
    }
    text = metrics().await;
    running.stop().await;
    let exported = exported(&text);
    let mut used = BTreeSet::new();
    let mut missing = Vec::new();
    for (source, exprs) in [("dashboard", dashboard_exprs()), ("rules", rule_exprs())] {
        assert!(!exprs.is_empty(), "{source}");
        for expr in exprs {
            for name in metric_names(&expr) {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .filter(|b| exported.contains(*b));
                if !exported.contains(&name) && base.is_none() {
                    missing.push(format!("{source}: {name} in {expr}"));
                }
                used.insert(name);
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}\nexported: {exported:#?}");
    // What the issue asks for is really charted or alerted on.
    for name in [
        "understudy_agreement_ratio",
        "understudy_canary_weight",
        "understudy_upstream_duration_seconds_bucket",
        "understudy_mirror_skipped_total",
        "understudy_store_rows_dropped_total",
        "understudy_guard_trips_total",
        "understudy_notify_dropped_total",
        "understudy_comparisons_total",
    ] {
        assert!(used.contains(name), "{name} is not used");
    }
}

/// A proxy started from `dir/proxy.toml`, laid out as a ConfigMap volume
/// lays it out: `proxy.toml -> ..data/proxy.toml`, `..data -> ..v1`.
async fn start_from_file(dir: &Path, routes: &str) -> understudy::app::Running {
    let v1 = dir.join("..v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(v1.join("proxy.toml"), config_text(dir, "", routes)).unwrap();
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/proxy.toml", dir.join("proxy.toml")).unwrap();
    let config = understudy::config::load(&dir.join("proxy.toml")).unwrap();
    understudy::app::start(config).await.unwrap()
}

/// What the kubelet does on a ConfigMap update: a new directory, and the
/// `..data` symlink renamed over (atomic). The file's own mtime never changes
/// in place; the one seen through the symlink does, and the proxy reloads.
#[tokio::test]
async fn a_configmap_symlink_swap_is_reloaded() {
    let incumbent = upstream().json(r#"{"v":1}"#).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = route("r", "/", &incumbent.url(), "http://127.0.0.1:9", "");
    let running = start_from_file(dir.path(), &routes).await;
    let admin = format!("http://{}/metrics", running.admin_addr);
    let reloads = async || {
        let text = String::from_utf8(get(&admin).await.2.to_vec()).unwrap();
        metric(&text, "understudy_config_reloads_total{result=\"ok\"}")
    };
    assert_eq!(reloads().await, 0.0);
    let v2 = dir.path().join("..v2");
    std::fs::create_dir(&v2).unwrap();
    let weighted = routes.clone() + "rollout = { default = 10.0 }\n";
    std::fs::write(
        v2.join("proxy.toml"),
        config_text(dir.path(), "", &weighted),
    )
    .unwrap();
    std::os::unix::fs::symlink("..v2", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while reloads().await < 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reloads().await, 1.0);
    let weight = running.proxy.rollout.route("r").unwrap().weight("default");
    running.stop().await;
    assert_eq!(weight, 10.0);
}

// ---- Logs ------------------------------------------------------------------

/// The real binary with `extra` arguments before `serve`; drives a guard
/// trip and stops it with SIGTERM. Returns its stderr lines.
async fn serve_and_log(extra: &[&str]) -> Vec<String> {
    let incumbent = upstream().json(r#"{"score":1}"#).spawn().await;
    let candidate = upstream().json(r#"{"score":2}"#).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.toml");
    let routes = route(
        "r",
        "/",
        &incumbent.url(),
        &candidate.url(),
        r#"segment = { header = "x-tier", values = ["enterprise"] }
sticky = { header = "x-user-id" }
rollout = { segments = { enterprise = 50.0 } }
guard = { min_samples = 20 }
"#,
    );
    std::fs::write(&config, config_text(dir.path(), "", &routes)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(extra)
        .args(["serve", "-c"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            // The test may have stopped listening; the lines are then not needed.
            let _gone = tx.send(line.unwrap());
        }
    });
    let mut lines = Vec::new();
    let mut addr = None;
    while addr.is_none() {
        let line = rx.recv_timeout(PATIENCE).expect("a listening line");
        if line.contains("Understudy listening") {
            // `addr=127.0.0.1:P` (plain) or `"addr":"127.0.0.1:P"` (JSON).
            let rest = line.split("addr").nth(1).unwrap();
            let start = rest.find(|c: char| c.is_ascii_digit()).unwrap();
            let end = rest[start..]
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                .map_or(rest.len(), |e| start + e);
            addr = Some(rest[start..end].to_string());
        }
        lines.push(line);
    }
    let addr = addr.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    while Instant::now() < deadline {
        let req = Request::get(format!("http://{addr}/score"))
            .header("x-tier", "enterprise")
            .header("x-user-id", format!("u{i}"))
            .body(Full::default())
            .unwrap();
        send(req).await;
        i += 1;
        while let Ok(l) = rx.try_recv() {
            lines.push(l);
        }
        if lines.iter().any(|l| l.contains("Guard breach")) {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_object_per_line_with_the_exchange_id() {
    let lines = serve_and_log(&["--log-format", "json"]).await;
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        objects
            .iter()
            .all(|o| o["level"].is_string() && o["fields"]["message"].is_string())
    );
    let breach = objects
        .iter()
        .find(|o| o["fields"]["message"] == "Guard breach")
        .unwrap_or_else(|| panic!("a guard breach line: {lines:#?}"));
    // The breach was decided while an exchange settled: its id is on the line.
    let id = breach["span"]["exchange_id"].as_str().unwrap();
    assert!(id.len() >= 16, "{breach}");
    assert!(
        objects
            .iter()
            .any(|o| o["fields"]["message"] == "Stopped; every queued row is written")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_plain_text_by_default_and_name_the_exchange() {
    let lines = serve_and_log(&[]).await;
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
    );
    let breach = lines
        .iter()
        .find(|l| l.contains("Guard breach"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(breach.contains("exchange{exchange_id="), "{breach}");
}
