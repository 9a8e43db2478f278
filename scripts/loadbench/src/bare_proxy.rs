//! A bare hyper reverse proxy: the floor the load benchmark measures
//! Understudy against ("how much of the cost is hyper and the kernel?").
//!
//! Same server (hyper-util `auto`, HTTP/1.1 keep-alive) and same pooled
//! hyper-util client as Understudy, and nothing else: no routing table, no
//! forwarding headers, no exchange id, no metrics, no mirror, no SQLite rows.
//! The benchmark runs it in a process of its own (itself, re-executed with
//! `LOAD_BARE=1`), from the same `proxy.toml` it gives Understudy: the
//! listen address and the first route's incumbent.

use http::Uri;
use http::uri::PathAndQuery;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::sync::Arc;

/// Serves until killed. `path` is the `proxy.toml` Understudy would get.
pub fn run(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let config = understudy::config::load(path)?;
    // The benchmark counts rows afterwards: leave it an empty, migrated file.
    let store = understudy::store::Store::open(&config.store, understudy::metrics::Metrics::new())?;
    store.close();
    let route = config.routes.first().ok_or("no route")?;
    let base = route.incumbent.uri.clone();
    let addr = config.listen.addr;
    // `LOAD_BARE_TPC`: a thread per core, as `understudy serve --thread-per-core`.
    if std::env::var_os("LOAD_BARE_TPC").is_some() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads: Vec<_> = (0..cores)
            .map(|_| {
                let base = base.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    rt.block_on(async move {
                        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
                        socket.set_reuseaddr(true).map_err(|e| e.to_string())?;
                        socket.set_reuseport(true).map_err(|e| e.to_string())?;
                        socket.bind(addr).map_err(|e| e.to_string())?;
                        let listener = socket.listen(1024).map_err(|e| e.to_string())?;
                        serve_on(listener, base).await.map_err(|e| e.to_string())
                    })
                })
            })
            .collect();
        for t in threads {
            match t.join() {
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => return Err("a serving thread panicked".into()),
                Ok(Ok(())) => {}
            }
        }
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(addr, base))
}

async fn serve(addr: std::net::SocketAddr, base: Uri) -> Result<(), Box<dyn std::error::Error>> {
    serve_on(tokio::net::TcpListener::bind(addr).await?, base).await
}

async fn serve_on(
    listener: tokio::net::TcpListener,
    base: Uri,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::MAX)
        .build(http);
    let base = Arc::new(base);
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = listener.accept().await?;
        let _nodelay = stream.set_nodelay(true);
        let (client, base, builder) = (client.clone(), base.clone(), builder.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (client, base) = (client.clone(), base.clone());
                async move {
                    let (mut parts, body) = req.into_parts();
                    let mut uri = (*base).clone().into_parts();
                    uri.path_and_query = parts
                        .uri
                        .path_and_query()
                        .cloned()
                        .or(Some(PathAndQuery::from_static("/")));
                    parts.uri = Uri::from_parts(uri).map_err(|e| e.to_string())?;
                    parts.headers.remove(http::header::HOST);
                    let resp = client
                        .request(Request::from_parts(parts, body))
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<Response<Incoming>, String>(resp)
                }
            });
            let _ended = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
