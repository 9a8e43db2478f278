//! External gates (docs/src/concepts/canary.md): checks outside Understudy that must pass before
//! a weight goes up, automatically or by hand. A Prometheus gate runs an
//! instant PromQL query (`GET {prometheus}/api/v1/query`) and compares the
//! first value with `max` or `min`; an HTTP gate passes on a 2xx answer.
//! Unreachable, slow (5 s), empty or malformed counts as failing.

use crate::config::{Gate, GateCheck};
use crate::upstream::{self, Client, body::UpBody};
use http::{HeaderMap, Method};
use http_body_util::BodyExt;
use serde::Serialize;
use std::time::Duration;

/// Each gate's answer must come within this.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One gate's result, as shown in `status`, the API and the audit row.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct GateResult {
    pub name: String,
    pub passed: bool,
    /// The value and the bound, the status, or why it could not be checked.
    pub detail: String,
    /// Unix ms.
    pub ts: i64,
}

/// Checks every gate, in order.
pub async fn check(gates: &[Gate]) -> Vec<GateResult> {
    let mut out = Vec::with_capacity(gates.len());
    for gate in gates {
        let (passed, detail) = match one(gate).await {
            Ok(r) => r,
            Err(why) => (false, why),
        };
        out.push(GateResult {
            name: gate.name.clone(),
            passed,
            detail,
            ts: crate::store::now_ms(),
        });
    }
    out
}

/// The results as one audit line: `name: pass (detail); ...`.
pub fn summary(results: &[GateResult]) -> String {
    results
        .iter()
        .map(|r| {
            let verdict = if r.passed { "pass" } else { "fail" };
            format!("{}: {verdict} ({})", r.name, r.detail)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn one(gate: &Gate) -> Result<(bool, String), String> {
    let tls = upstream::tls_client_config(&[]);
    let client = Client::new(&gate.upstream, "gate", &tls);
    match &gate.check {
        GateCheck::Http => {
            let uri = client.uri_for(Some(&gate.path));
            let (status, _) = get(&client, uri).await?;
            Ok((status.is_success(), format!("status {}", status.as_u16())))
        }
        GateCheck::Prometheus { query, max, min } => {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("query", query)
                .finish();
            let base = gate.path.path().trim_end_matches('/');
            let pq = format!("{base}/api/v1/query?{q}");
            let pq = http::uri::PathAndQuery::try_from(pq).map_err(|e| e.to_string())?;
            let (status, body) = get(&client, client.uri_for(Some(&pq))).await?;
            if !status.is_success() {
                return Err(format!("prometheus answered {}", status.as_u16()));
            }
            let value = first_value(&body)?;
            let (passed, bound) = match (max, min) {
                (Some(max), _) => (value <= *max, format!("≤ {max}")),
                (None, Some(min)) => (value >= *min, format!("≥ {min}")),
                (None, None) => (true, "no bound".to_string()),
            };
            Ok((passed, format!("{query} = {value} (must be {bound})")))
        }
    }
}

async fn get(client: &Client, uri: http::Uri) -> Result<(http::StatusCode, bytes::Bytes), String> {
    let req = upstream::request(
        Method::GET,
        uri,
        HeaderMap::new(),
        UpBody::full(Default::default()),
    );
    let read = async {
        let resp = client
            .send_within(req, TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body.to_bytes()))
    };
    tokio::time::timeout(TIMEOUT, read)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// The first sample of an instant query's answer (a vector's first series,
/// or a scalar).
fn first_value(body: &[u8]) -> Result<f64, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!("query failed: {}", v["error"]));
    }
    let data = &v["data"];
    let sample = match data["resultType"].as_str() {
        Some("vector") => &data["result"][0]["value"],
        Some("scalar") => &data["result"],
        other => return Err(format!("unsupported result type {other:?}")),
    };
    let text = sample[1]
        .as_str()
        .ok_or_else(|| "no data (empty result)".to_string())?;
    text.parse::<f64>()
        .map_err(|e| format!("value {text:?}: {e}"))
        .and_then(|x| {
            if x.is_nan() {
                Err("NaN".to_string())
            } else {
                Ok(x)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vectors_and_scalars_and_refuses_empty_answers() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"0.25"]}]}}"#;
        assert_eq!(first_value(vector), Ok(0.25));
        let scalar =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"3"]}}"#;
        assert_eq!(first_value(scalar), Ok(3.0));
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(first_value(empty).unwrap_err().contains("no data"));
        let failed = br#"{"status":"error","error":"parse error"}"#;
        assert!(first_value(failed).unwrap_err().contains("parse error"));
        assert!(first_value(b"<html>").is_err());
    }
}
