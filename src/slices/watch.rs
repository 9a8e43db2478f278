//! While the proxy serves: runs the slice search every `slices.every` over
//! the newest `slices.window` of each route and notifies (`slice`) each
//! slice that was not significant at the previous run. Also the one door
//! through which the admin API runs a search.
//!
//! Never on the request path: the search runs on a blocking thread, one at
//! a time (a search asked for while another runs is refused, not queued),
//! over a read-only connection that WAL lets run beside the writer. It runs
//! only when some `[[notify]]` sink asked for `slice`.

use super::{Error, Options, RouteSlices, Slice, render};
use crate::notify::{Event, Kind, Notifier};
use crate::proxy::Proxy;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// One search at a time, whoever asks.
static SEARCH: Semaphore = Semaphore::const_new(1);

/// Unix ms `d` ago.
pub fn since(d: Duration) -> i64 {
    let ago = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    crate::store::now_ms().saturating_sub(ago)
}

/// How long a search asked for through the API waits for one running.
const WAIT: Duration = Duration::from_secs(10);

/// Runs one search on a blocking thread, after the one running (if any)
/// ends: waits at most `wait` (the periodic search does not wait at all),
/// else `Err`.
pub async fn search_once(
    opts: Options,
    wait: Duration,
) -> Result<Result<Vec<RouteSlices>, Error>, String> {
    let busy = || "a slice search is already running; try again shortly".to_string();
    let permit = match SEARCH.try_acquire() {
        Ok(p) => p,
        Err(_) if wait.is_zero() => return Err(busy()),
        Err(_) => match tokio::time::timeout(wait, SEARCH.acquire()).await {
            Ok(Ok(p)) => p,
            _ => return Err(busy()),
        },
    };
    let result = tokio::task::spawn_blocking(move || super::find(&opts))
        .await
        .map_err(|e| e.to_string());
    drop(permit);
    result
}

/// [`search_once`] for the admin API: waits for a running search.
pub async fn search_for_api(opts: Options) -> Result<Result<Vec<RouteSlices>, Error>, String> {
    search_once(opts, WAIT).await
}

/// The periodic search; ends when `stop` completes.
pub async fn run(proxy: Arc<Proxy>, notifier: Notifier, stop: impl Future<Output = ()>) {
    if !notifier.wants(Kind::Slice) {
        return;
    }
    tokio::pin!(stop);
    // Route → the slices significant at its last run.
    let mut known: HashMap<String, HashSet<String>> = HashMap::new();
    let mut due: HashMap<String, tokio::time::Instant> = HashMap::new();
    loop {
        let config = proxy.runtime.load().config.clone();
        let now = tokio::time::Instant::now();
        let routes: Vec<&crate::config::Route> =
            config.routes.iter().filter(|r| r.slices.enabled).collect();
        let Some(tick) = routes.iter().map(|r| r.slices.every).min() else {
            return;
        };
        for r in routes {
            let at = *due.entry(r.name.clone()).or_insert(now + r.slices.every);
            if at > now {
                continue;
            }
            due.insert(r.name.clone(), now + r.slices.every);
            let opts = Options {
                dbs: vec![config.store.path.clone()],
                route: Some(r.name.clone()),
                since_ms: Some(since(r.slices.window)),
                routes: config.routes.clone(),
            };
            let found = match search_once(opts, Duration::ZERO).await {
                Ok(Ok(found)) => found,
                Ok(Err(e)) => {
                    tracing::warn!(route = %r.name, error = %e, "Slice search failed");
                    continue;
                }
                Err(busy) => {
                    tracing::debug!(route = %r.name, %busy, "Slice search skipped");
                    continue;
                }
            };
            let slices: Vec<&Slice> = found.iter().flat_map(|f| &f.slices).collect();
            let previous = known.remove(&r.name).unwrap_or_default();
            for s in slices.iter().filter(|s| !previous.contains(&s.label)) {
                notifier.send(&event(&r.name, s));
            }
            known.insert(
                r.name.clone(),
                slices.iter().map(|s| s.label.clone()).collect(),
            );
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(tick.min(Duration::from_secs(3600))) => {}
        }
    }
}

/// The notification of a new slice: `segment` is the slice, `reason` its
/// numbers, `figures` the config lines that would declare it.
pub fn event(route: &str, s: &Slice) -> Event {
    Event {
        event: Kind::Slice,
        route: route.to_string(),
        segment: s.label.clone(),
        from: None,
        to: None,
        from_stage: None,
        to_stage: None,
        actor: "slices".to_string(),
        reason: format!(
            "agreement {} over {} comparisons, the rest of the route {}",
            render::rate(&s.agreement),
            s.comparisons,
            render::rate(&s.rest)
        ),
        figures: (!s.declare.is_empty()).then(|| format!("declare it: {}", s.declare.join(" or "))),
        version: None,
        ts: crate::store::now_ms(),
    }
}
