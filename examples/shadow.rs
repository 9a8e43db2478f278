//! The smallest shadow setup, in-process: two upstreams that disagree on one
//! field, Understudy in front of them, one request, the row it logged.
//!
//! Run with `cargo run --example shadow`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Two upstreams: today's scorer and the candidate model. They agree on the
    // label but not on the score (0.91 vs 0.55).
    let incumbent = understudy::loopback::serve(|_req| async {
        Response::new(Full::new(Bytes::from_static(
            br#"{"label":"hot","score":0.91}"#,
        )))
    })
    .await?;
    let candidate = understudy::loopback::serve(|_req| async {
        Response::new(Full::new(Bytes::from_static(
            br#"{"label":"hot","score":0.55}"#,
        )))
    })
    .await?;

    // The config is the same TOML `understudy serve` reads; ports 0 mean "any free port".
    let dir = tempfile_dir()?;
    let db = dir.join("example.db");
    let config = understudy::config::parse(&format!(
        r#"
        [listen]
        addr = "127.0.0.1:0"
        [admin]
        addr = "127.0.0.1:0"
        [store]
        path = "{db}"
        [[routes]]
        name = "score"
        path_prefix = "/v1/score"
        incumbent = "{incumbent}"
        candidate = "{candidate}"
        compare = {{ mode = "json", tolerance = 0.05 }}
        "#,
        db = db.display(),
        incumbent = incumbent.url(),
        candidate = candidate.url(),
    ))?;
    let running = understudy::app::start(config).await?;

    // A client request: it gets the incumbent's answer at once.
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{}/v1/score?lead=42", running.addr);
    let resp = client
        .request(Request::get(url).body(Full::default())?)
        .await?;
    let id = resp.headers()["x-understudy-exchange-id"]
        .to_str()?
        .to_string();
    let body = resp.into_body().collect().await?.to_bytes();
    println!(
        "client got {} (exchange {id})",
        String::from_utf8_lossy(&body)
    );

    // A graceful stop waits for the comparison and flushes the row.
    running.stop().await;
    let conn = rusqlite::Connection::open(&db)?;
    let (verdict, diff): (String, String) = conn.query_row(
        "SELECT verdict, diff FROM exchanges WHERE id = ?1",
        [&id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    println!("logged: verdict = {verdict}, differing fields = {diff}");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("understudy-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
