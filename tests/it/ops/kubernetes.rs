//! The manifests in examples/kubernetes agree with the proxy.toml in their
//! ConfigMap, and a ConfigMap update (a symlink swap) is reloaded.

use super::{read, start_from_file};
use crate::support::*;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use yaml_rust2::{Yaml, YamlLoader};

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
