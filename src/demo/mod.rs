//! `understudy demo`: the whole story on loopback, with no set-up. An embedded
//! incumbent (rules) and candidate (a model with a mid-market blind spot), the
//! real proxy between them, synthetic traffic, then the report.

pub mod scorer;
pub mod traffic;

use crate::loopback;
use anyhow::Context;
use std::io::Write;
use std::path::Path;

/// The demo's config; ports and the DB path are filled in at run time.
const CONFIG: &str = r#"
[listen]
addr = "127.0.0.1:0"

[admin]
addr = "127.0.0.1:0"

[store]
path = "{db}"

[[routes]]
name = "lead-score"
path_prefix = "/v1/score"
incumbent = "{incumbent}"
candidate = "{candidate}"
segment = { header = "x-customer-tier", values = ["enterprise", "mid-market", "smb"] }
sticky = { header = "x-user-id" }
mirror = { methods = ["POST"], timeout = "2s", max_in_flight = 256 }
compare = { mode = "json", ignore = ["/request_id", "/model"], tolerance = 0.05 }
"#;

/// Runs the demo, writing its log to `db` (replaced if it exists).
pub async fn run(db: &Path, requests: usize, out: &mut dyn Write) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", db.display());
        if Path::new(&p).exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot replace {p}"))?;
        }
    }
    let incumbent =
        loopback::serve(|req| scorer::handle(req, "rules-v3", scorer::rules_score)).await?;
    let candidate =
        loopback::serve(|req| scorer::handle(req, "leadnet-2", scorer::model_score)).await?;
    let text = CONFIG
        .replace("{db}", &db.display().to_string().replace('\\', "/"))
        .replace("{incumbent}", &incumbent.url())
        .replace("{candidate}", &candidate.url());
    let config = crate::config::parse(&text).context("the demo's embedded config is invalid")?;
    let running = crate::app::start(config).await?;
    writeln!(out, "Understudy demo")?;
    writeln!(out, "  incumbent (rules-v3)  {}", incumbent.url())?;
    writeln!(out, "  candidate (leadnet-2) {}", candidate.url())?;
    writeln!(out, "  proxy                 http://{}", running.addr)?;
    writeln!(
        out,
        "Sending {requests} lead-scoring requests; every one is mirrored and compared:"
    )?;
    let bar = indicatif::ProgressBar::new(requests as u64);
    let ok = traffic::send(running.addr, requests, 7, &bar).await;
    bar.finish();
    running.stop().await;
    writeln!(
        out,
        "{ok}/{requests} clients got the incumbent's answer. Report ({}):\n",
        db.display()
    )?;
    let opts = crate::report::ReportOptions {
        dbs: vec![db.to_path_buf()],
        ..Default::default()
    };
    crate::report::run(&opts, out)?;
    writeln!(
        out,
        "\nmid-market disagrees far more often than enterprise and smb: keep it in shadow.\n\
         Inspect rows with: sqlite3 {} \"select segment, verdict, count(*) from exchanges group by 1, 2\"",
        db.display()
    )?;
    Ok(())
}
