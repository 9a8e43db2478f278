//! Noise learning, as Diffy does it: a share of exchanges is asked of the
//! incumbent twice (a second instance, or the same one again), and every JSON
//! pointer where the two incumbent answers differ is noise for the route from
//! then on (`request_id`, timestamps, ...), left out of every verdict.
//!
//! The pure part ([`generalize`], [`Learner::learn`]) is separate from the one
//! call ([`Learner::probe`]), which is bounded like a mirror: it takes a mirror
//! permit or does not happen, and it never outlives `mirror.timeout`. Only
//! methods listed in `mirror.methods` are probed (the route declared them safe
//! to send twice).

use super::Observation;
use crate::config::Noise;
use crate::exchange::Exchange;
use crate::pointer::Pointer;
use crate::proxy::RouteRuntime;
use crate::proxy::body::{self, UpBody};
use crate::proxy::forward::Client;
use crate::proxy::headers::{MIRROR, strip_hop_by_hop};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// The noise a route has learned, shared by its settle tasks.
///
/// Readers take an `Arc` snapshot of the pointers (one short read lock, never
/// held across an await); a new pointer swaps the snapshot.
pub struct Learner {
    cfg: Noise,
    secondary: Option<Client>,
    known: RwLock<Known>,
}

#[derive(Default)]
struct Known {
    texts: BTreeSet<String>,
    pointers: Arc<Vec<Pointer>>,
}

/// The learner of a route with `compare.noise`, seeded with the pointers the
/// store already holds for it (a missing or unreadable store seeds nothing).
pub fn for_route(
    route: &crate::config::Route,
    tls: &rustls::ClientConfig,
    store: &std::path::Path,
) -> Option<Learner> {
    let crate::config::Compare::Json(spec) = &route.compare else {
        return None;
    };
    let cfg = spec.noise.as_ref()?;
    let persisted = crate::store::read::noise(&[store.to_path_buf()], Some(&route.name))
        .map(|rows| rows.into_iter().map(|n| n.pointer).collect())
        .unwrap_or_default();
    Some(Learner::new(cfg, tls, persisted))
}

impl Learner {
    /// `persisted` are pointers learned before (the `noise` table), so a restart
    /// or a reload does not forget them.
    pub fn new(cfg: &Noise, tls: &rustls::ClientConfig, persisted: Vec<String>) -> Learner {
        let learner = Learner {
            secondary: cfg
                .secondary
                .as_ref()
                .map(|u| Client::new(u, "incumbent", tls)),
            cfg: cfg.clone(),
            known: RwLock::default(),
        };
        learner.add(persisted);
        learner
    }

    /// The pointers learned so far.
    pub fn pointers(&self) -> Arc<Vec<Pointer>> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        known.pointers.clone()
    }

    /// Every learned pointer as text, sorted.
    pub fn texts(&self) -> Vec<String> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        known.texts.iter().cloned().collect()
    }

    /// Whether this exchange is asked twice (`sample` of them, at random).
    pub fn wants_probe(&self) -> bool {
        self.cfg.sample >= 1.0 || rand::random::<f64>() < self.cfg.sample
    }

    /// Learns from two incumbent answers to the same request: returns the
    /// (generalised) pointers where they differ, now all known as noise.
    /// Bodies that are not both JSON teach nothing.
    pub fn learn(&self, first: &[u8], second: &[u8]) -> Vec<String> {
        if first == second {
            return Vec::new();
        }
        let (Ok(a), Ok(b)) = (
            serde_json::from_slice::<Value>(first),
            serde_json::from_slice::<Value>(second),
        ) else {
            return Vec::new();
        };
        let found: BTreeSet<String> = super::json::differing_pointers(&a, &b)
            .iter()
            .map(|p| generalize(p))
            // The root differing means "not comparable at all", not noise.
            .filter(|p| !p.is_empty())
            .collect();
        let found: Vec<String> = found.into_iter().collect();
        self.add(found.clone());
        found
    }

    fn add(&self, texts: Vec<String>) {
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        let before = known.texts.len();
        known.texts.extend(texts);
        if known.texts.len() != before {
            let pointers = known
                .texts
                .iter()
                .filter_map(|t| Pointer::parse(t).ok())
                .collect();
            known.pointers = Arc::new(pointers);
        }
    }

    /// Asks the incumbent (or `secondary`) the exchange's request once more,
    /// within `mirror.timeout` and holding a mirror permit. `None` when the
    /// exchange is not eligible or no permit is free.
    pub async fn probe(
        &self,
        route: &RouteRuntime,
        ex: &Exchange,
        cap: usize,
    ) -> Option<Observation> {
        let policy = &route.cfg.mirror;
        if !policy.methods.contains(&ex.method) {
            return None;
        }
        let body = ex.body.clone()?;
        let _permit = route.mirror_permits.try_acquire_owned()?;
        let client = self.secondary.as_ref().unwrap_or(&route.incumbent);
        let pq = match &ex.query {
            Some(q) => format!("{}?{q}", ex.path),
            None => ex.path.clone(),
        };
        let mut req = Request::new(UpBody::full(body));
        *req.method_mut() = ex.method.clone();
        *req.uri_mut() = client.uri_for(PathAndQuery::try_from(pq).ok().as_ref());
        let mut headers = ex.headers.clone();
        strip_hop_by_hop(&mut headers);
        headers.remove(http::header::HOST);
        headers.insert(MIRROR, HeaderValue::from_static("1"));
        *req.headers_mut() = headers;
        let started = Instant::now();
        let call = async {
            let resp = client.send_within(req, policy.timeout).await.ok()?;
            let status = resp.status().as_u16();
            let (bytes, truncated) = body::collect_capped(resp.into_body(), cap).await.ok()?;
            Some(Observation {
                status: Some(status),
                body: bytes,
                truncated,
                error: None,
                latency: started.elapsed(),
            })
        };
        tokio::time::timeout(policy.timeout, call)
            .await
            .ok()
            .flatten()
    }
}

/// A concrete pointer with every array index replaced by `*`: noise at
/// `/items/3/ts` is noise at every item's `ts`. (An object key made only of
/// digits is generalised too; for noise that errs on the side of ignoring.)
pub fn generalize(pointer: &str) -> String {
    if pointer.is_empty() {
        return String::new();
    }
    pointer
        .split('/')
        .skip(1)
        .map(|t| {
            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                "*"
            } else {
                t
            }
        })
        .fold(String::new(), |mut acc, t| {
            acc.push('/');
            acc.push_str(t);
            acc
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learner(sample: f64) -> Learner {
        let tls = crate::proxy::forward::tls_client_config(&[]);
        let cfg = Noise {
            secondary: None,
            sample,
        };
        Learner::new(&cfg, &tls, vec!["/trace".into()])
    }

    #[test]
    fn generalize_replaces_indices() {
        assert_eq!(generalize("/items/3/ts"), "/items/*/ts");
        assert_eq!(generalize("/request_id"), "/request_id");
        assert_eq!(generalize("/a/10"), "/a/*");
        assert_eq!(generalize(""), "");
    }

    #[test]
    fn learns_the_pointers_where_the_incumbent_disagrees_with_itself() {
        let l = learner(0.5);
        assert_eq!(l.texts(), ["/trace"]);
        let a = br#"{"score":1,"request_id":"a","items":[{"ts":1,"v":2}]}"#;
        let b = br#"{"score":1,"request_id":"b","items":[{"ts":9,"v":2}]}"#;
        assert_eq!(l.learn(a, b), ["/items/*/ts", "/request_id"]);
        assert_eq!(l.texts(), ["/items/*/ts", "/request_id", "/trace"]);
        let ptrs: Vec<String> = l
            .pointers()
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        assert_eq!(ptrs, l.texts());
        // Equal answers and non-JSON answers teach nothing.
        assert!(l.learn(a, a).is_empty());
        assert!(l.learn(b"x", b"y").is_empty());
        assert_eq!(l.texts().len(), 3);
    }

    #[test]
    fn a_full_sample_always_probes() {
        assert!(learner(1.0).wants_probe());
        assert!(!learner(0.0).wants_probe());
    }
}
