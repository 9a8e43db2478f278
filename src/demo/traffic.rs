//! Synthetic traffic for the demo: leads across segments, sent through the
//! proxy with bounded concurrency and a progress bar.

use super::scorer::Lead;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The tier mix of the demo's sales pipeline.
pub const TIERS: [(&str, f64); 3] = [("enterprise", 0.4), ("mid-market", 0.35), ("smb", 0.25)];
/// The region mix (header `x-region`).
pub const REGIONS: [(&str, f64); 3] = [("amer", 0.55), ("emea", 0.35), ("apac", 0.1)];

/// One of `mix`, by its shares.
fn pick<'a>(rng: &mut impl Rng, mix: &[(&'a str, f64)]) -> &'a str {
    let roll: f64 = rng.r#gen();
    let mut acc = 0.0;
    mix.iter()
        .find(|(_, share)| {
            acc += share;
            roll < acc
        })
        .map_or(mix[mix.len() - 1].0, |(t, _)| t)
}

pub fn lead(rng: &mut impl Rng) -> Lead {
    let tier = pick(rng, &TIERS);
    let employees = match tier {
        "enterprise" => rng.gen_range(1_000..50_000),
        "mid-market" => rng.gen_range(100..1_000),
        _ => rng.gen_range(1..100),
    };
    Lead {
        user_id: format!("rep-{}", rng.gen_range(0..2_000)),
        tier: tier.to_string(),
        employees,
        visits: rng.gen_range(0..12),
        industry: ["software", "finance", "retail", "manufacturing"][rng.gen_range(0..4)]
            .to_string(),
        region: pick(rng, &REGIONS).to_string(),
    }
}

/// A progress bar for `n` requests in the demo's style.
pub fn bar(n: usize) -> ProgressBar {
    ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template("  {bar:40} {pos}/{len} requests  {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    )
}

/// Sends `n` leads to `proxy` (16 at a time); returns how many got a 2xx.
/// Each request advances `bar` by one.
pub async fn send(proxy: SocketAddr, n: usize, seed: u64, bar: &ProgressBar) -> usize {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (client, next, ok, bar) = (client.clone(), next.clone(), ok.clone(), bar.clone());
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed + w);
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let lead = lead(&mut rng);
                    let Ok(req) = http::Request::post(format!("http://{proxy}/v1/score"))
                        .header("content-type", "application/json")
                        .header("x-customer-tier", &lead.tier)
                        .header("x-user-id", &lead.user_id)
                        .header("x-region", &lead.region)
                        .body(Full::new(Bytes::from(
                            serde_json::to_vec(&lead).unwrap_or_default(),
                        )))
                    else {
                        continue;
                    };
                    if let Ok(resp) = client.request(req).await {
                        let success = resp.status().is_success();
                        if resp.into_body().collect().await.is_ok() && success {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    bar.inc(1);
                }
            })
        })
        .collect();
    for w in workers {
        let _joined = w.await;
    }
    ok.load(Ordering::Relaxed)
}
