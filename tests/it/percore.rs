//! Thread per core (`serve --thread-per-core`): several serving threads, each
//! with its own runtime, SO_REUSEPORT listener and pools, answer, mirror and
//! settle every exchange, and a stop drains them all.

use crate::support::*;
use understudy::app::Options;

#[tokio::test]
async fn serving_threads_answer_mirror_and_settle_every_exchange() {
    let incumbent = upstream().json(r#"{"score": 1}"#).spawn().await;
    let candidate = upstream().json(r#"{"score": 1}"#).spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = route(
        "r",
        "/",
        &incumbent.url(),
        &candidate.url(),
        r#"mirror = { methods = ["GET"] }"#,
    );
    let text = config_text(dir.path(), "", &routes);
    let config = understudy::config::parse(&text).unwrap();
    let db = config.store.path.clone();
    let options = Options {
        serving_threads: Some(2),
        ..Options::default()
    };
    let running = understudy::app::start_with(config, options).await.unwrap();
    let addr = running.addr;
    // Each request on a new connection: the kernel spreads them over both listeners.
    let mut clients = Vec::new();
    for i in 0..40 {
        clients.push(tokio::spawn(async move {
            let (status, _, _) = get(&format!("http://{addr}/x/{i}")).await;
            status
        }));
    }
    for c in clients {
        assert_eq!(c.await.unwrap(), 200);
    }
    running.stop().await;
    let rows = rows(&db);
    assert_eq!(rows.len(), 40, "every exchange has its row");
    assert!(rows.iter().all(|r| r.verdict == "match"));
    assert_eq!(candidate.requests().len(), 40);
}
