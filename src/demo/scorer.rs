//! The demo's two lead scorers: the incumbent's rules and a candidate "model"
//! that agrees on `enterprise` and `smb` and is systematically off on
//! `mid-market` (it over-scores two leads in five), and, in every tier, on
//! leads from the `apac` region, which nobody declared as a segment.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

/// One lead as the sales tool sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lead {
    pub user_id: String,
    pub tier: String,
    pub employees: u32,
    pub visits: u32,
    pub industry: String,
    /// The sales region, sent as header `x-region` (not in the body, and
    /// not a declared segment).
    #[serde(skip)]
    pub region: String,
}

/// The incumbent's rule: size, engagement and industry.
pub fn rules_score(lead: &Lead) -> f64 {
    let size = (f64::from(lead.employees.max(1))).ln() / 10_000f64.ln();
    let engagement = 0.04 * f64::from(lead.visits.min(10));
    let industry = match lead.industry.as_str() {
        "software" | "finance" => 0.15,
        "retail" => 0.05,
        _ => 0.0,
    };
    (0.1 + 0.35 * size.min(1.0) + engagement + industry).clamp(0.0, 1.0)
}

/// The candidate model: close to the rules, except a blind spot on mid-market.
pub fn model_score(lead: &Lead) -> f64 {
    let base = rules_score(lead);
    let jitter = (fnv(&lead.user_id) % 21) as f64 / 1000.0 - 0.01; // ±1 %
    // Nobody declared the region: only slice discovery sees this one.
    let blind_spot =
        (lead.tier == "mid-market" || lead.region == "apac") && fnv(&lead.user_id) % 5 < 2;
    let score = if blind_spot {
        base + 0.35
    } else {
        base * (1.0 + jitter)
    };
    score.clamp(0.0, 1.0)
}

pub fn label(score: f64) -> &'static str {
    match score {
        s if s >= 0.7 => "hot",
        s if s >= 0.4 => "warm",
        _ => "cold",
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// An HTTP handler answering `POST /v1/score` with `scorer`.
pub async fn handle(
    req: Request<Incoming>,
    model: &'static str,
    scorer: fn(&Lead) -> f64,
) -> Response<Full<Bytes>> {
    let region = (req.headers().get("x-region"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let Ok(mut lead) = serde_json::from_slice::<Lead>(&body) else {
        return reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"error":"expected a lead"}"#,
        );
    };
    lead.region = region;
    let score = (scorer(&lead) * 1000.0).round() / 1000.0;
    let answer = serde_json::json!({
        "request_id": format!("{:016x}", rand::random::<u64>()),
        "model": model,
        "score": score,
        "label": label(score),
    });
    reply(StatusCode::OK, answer.to_string())
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(tier: &str, region: &str, i: u32) -> Lead {
        Lead {
            user_id: format!("u{i}"),
            tier: tier.into(),
            employees: 100 + i,
            visits: i % 9,
            industry: "retail".into(),
            region: region.into(),
        }
    }

    #[test]
    fn model_agrees_except_on_mid_market_and_apac() {
        let off_in = |tier: &str, region: &str| {
            (0..500)
                .filter(|&i| {
                    let l = lead(tier, region, i);
                    label(model_score(&l)) != label(rules_score(&l))
                })
                .count()
        };
        let off = |tier: &str| off_in(tier, "emea");
        assert!(off_in("enterprise", "apac") > 100, "apac is a blind spot");
        assert!(
            off("enterprise") < 40,
            "enterprise off {}",
            off("enterprise")
        );
        assert!(
            off("mid-market") > 100,
            "mid-market off {}",
            off("mid-market")
        );
    }
}
