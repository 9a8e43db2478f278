//! Operating it (issue 14): the Kubernetes manifests agree with the proxy.toml
//! they carry, the alert rules pass promtool, the dashboard and the rules name
//! only metrics a real proxy exports, and `--log-format json` writes JSON lines.

use crate::support::*;
use std::path::{Path, PathBuf};

mod container;
mod dashboards;
mod kubernetes;
mod logs;

fn examples(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(examples(rel)).unwrap()
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
