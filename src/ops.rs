//! `status`, `promote`, `rollback` and `audit`: a small client of a running
//! proxy's admin API (SPEC §7). A change takes effect on the proxy's next request.
//!
//! It never touches the database itself: the proxy records every change, so
//! the audit trail has one writer. Calls are sent with `x-understudy-actor: cli`.

use crate::admin::api::ACTOR_HEADER;
use crate::rollout::guard;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the admin API at {url}: {message} (is `understudy serve` running?)")]
    Unreachable { url: String, message: String },
    #[error("{method} {url} refused ({status}): {message}")]
    Refused {
        method: Method,
        url: String,
        status: u16,
        message: String,
    },
    #[error("unexpected answer from {url}: {message}")]
    BadAnswer { url: String, message: String },
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// Whether the user can fix it (exit 1): a refusal (4xx) or a bad argument.
    pub fn is_user(&self) -> bool {
        match self {
            Error::Refused { status, .. } => (400..500).contains(status),
            Error::Usage(_) => true,
            Error::Unreachable { .. } | Error::BadAnswer { .. } => false,
        }
    }
}

/// What `promote` or `rollback` sets the weight to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    To(f64),
    /// The next step of the route's ladder.
    Next,
}

/// A client of one admin listener.
pub struct Admin {
    base: String,
    token: Option<String>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Admin {
    /// `addr` is `host:port` or `http://host:port`; a wildcard host means this machine.
    pub fn new(addr: &str, token: Option<String>) -> Admin {
        let addr = addr.trim_end_matches('/');
        let addr = addr.strip_prefix("http://").unwrap_or(addr);
        let addr = match addr.rsplit_once(':') {
            Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
            Some(("[::]", port)) => format!("[::1]:{port}"),
            _ => addr.to_string(),
        };
        Admin {
            base: format!("http://{addr}"),
            token: token.filter(|t| !t.is_empty()),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The admin address from `--admin`, else from the config file; the token
    /// from the variable the config names (`UNDERSTUDY_ADMIN_TOKEN` without one).
    pub fn resolve(admin: Option<&str>, config: &Path) -> Result<Admin, Error> {
        let loaded = crate::config::load(config);
        let token_env = loaded
            .as_ref()
            .map_or("UNDERSTUDY_ADMIN_TOKEN", |c| c.admin.token_env.as_str());
        let token = std::env::var(token_env).ok();
        match (admin, &loaded) {
            (Some(a), _) => Ok(Admin::new(a, token)),
            (None, Ok(c)) => Ok(Admin::new(&c.admin.addr.to_string(), token)),
            (None, Err(e)) => Err(Error::Usage(format!(
                "no --admin given and {} cannot be read for admin.addr: {e}",
                config.display()
            ))),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, Error> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(ACTOR_HEADER, "cli");
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        let req = req
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes))
            .map_err(|e| Error::Usage(format!("bad admin URL {url}: {e}")))?;
        let unreachable = |message: String| Error::Unreachable {
            url: self.base.clone(),
            message,
        };
        let answer = tokio::time::timeout(TIMEOUT, async {
            let resp = self.client.request(req).await.map_err(|e| {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    message = format!("{message}: {s}");
                    source = s.source();
                }
                unreachable(message)
            })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, Error>((status, body))
        })
        .await
        .map_err(|_| unreachable(format!("no answer within {}s", TIMEOUT.as_secs())))??;
        let (status, body) = answer;
        let value: Value = serde_json::from_slice(&body).map_err(|e| Error::BadAnswer {
            url: url.clone(),
            message: format!("{status}: not JSON ({e})"),
        })?;
        if !status.is_success() {
            let message = value["error"].as_str().unwrap_or("no message").to_string();
            return Err(Error::Refused {
                method,
                url,
                status: status.as_u16(),
                message,
            });
        }
        Ok(value)
    }

    /// `understudy status`: weights, guard state and the last events.
    pub async fn status(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        let routes = self.call(Method::GET, "/api/v1/routes", None).await?;
        for r in routes["routes"].as_array().into_iter().flatten() {
            let g = &r["guard_config"];
            writeln!(
                out,
                "{}  mirror {}  guard: min_agreement {}, min_samples {}, auto_promote {}, steps {}, hold {}s",
                r["route"].as_str().unwrap_or("?"),
                r["mirror"].as_str().unwrap_or("?"),
                g["min_agreement"],
                g["min_samples"],
                g["auto_promote"],
                g["steps"],
                g["hold_s"],
            )?;
            writeln!(
                out,
                "  {:<14} {:>8}  {:<7} {:>7}  {:<24} {:>7}",
                "segment", "weight", "guard", "samples", "agreement [95% CI]", "errors"
            )?;
            for s in r["segments"].as_array().into_iter().flatten() {
                let gs = &s["guard"];
                let f = &gs["figures"];
                let agreement = match f["agreement"].as_f64() {
                    Some(a) => format!(
                        "{a:.3} [{:.3}, {:.3}]",
                        f["agreement_lower"].as_f64().unwrap_or(0.0),
                        f["agreement_upper"].as_f64().unwrap_or(1.0)
                    ),
                    None => "-".into(),
                };
                let decision = match gs["reason"].as_str() {
                    Some(reason) => format!("breach:{reason}"),
                    None => gs["decision"].as_str().unwrap_or("-").to_string(),
                };
                writeln!(
                    out,
                    "  {:<14} {:>7.3}%  {:<7} {:>7}  {:<24} {:>7}",
                    s["segment"].as_str().unwrap_or("?"),
                    s["weight"].as_f64().unwrap_or(0.0),
                    decision,
                    f["samples"].as_u64().map_or("-".into(), |n| n.to_string()),
                    agreement,
                    f["error_rate"]
                        .as_f64()
                        .map_or("-".into(), |e| format!("{:.1}%", e * 100.0)),
                )?;
            }
        }
        writeln!(out, "\nLast events:")?;
        let audit = self
            .call(Method::GET, "/api/v1/audit?limit=10", None)
            .await?;
        print_events(&audit, out)?;
        Ok(())
    }

    /// `understudy promote` and `rollback`: one weight change, with its reason.
    pub async fn set_weight(
        &self,
        route: &str,
        segment: &str,
        target: Target,
        reason: &str,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        if route.is_empty() || route.contains(['/', '?', '#', ' ']) {
            return Err(Error::Usage(format!("{route:?} is not a route name")).into());
        }
        let weight = match target {
            Target::To(w) => w,
            Target::Next => self.next_step(route, segment).await?,
        };
        let body = json!({ "segment": segment, "weight": weight, "reason": reason });
        let path = format!("/api/v1/routes/{route}/weights");
        let answer = self.call(Method::POST, &path, Some(body)).await?;
        let c = &answer["change"];
        writeln!(
            out,
            "{route}/{segment}: {} → {} (version {}); in effect for the next request",
            c["from"], c["to"], c["version"]
        )?;
        Ok(())
    }

    async fn next_step(&self, route: &str, segment: &str) -> Result<f64, Error> {
        let routes = self.call(Method::GET, "/api/v1/routes", None).await?;
        let r = routes["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["route"] == route)
            .ok_or_else(|| Error::Usage(format!("the proxy has no route {route:?}")))?;
        let weight = r["segments"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["segment"] == segment)
            .and_then(|s| s["weight"].as_f64())
            .ok_or_else(|| Error::Usage(format!("route {route:?} has no segment {segment:?}")))?;
        let steps: Vec<f64> = r["guard_config"]["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .collect();
        guard::next_step(&steps, weight).ok_or_else(|| {
            Error::Usage(format!(
                "{route}/{segment} is at {weight} %, the top of its steps {steps:?}"
            ))
        })
    }

    /// `understudy audit`: the rollout history, oldest first.
    pub async fn audit(&self, route: Option<&str>, out: &mut dyn Write) -> anyhow::Result<()> {
        let path = match route {
            Some(r) => format!("/api/v1/audit?route={r}"),
            None => "/api/v1/audit".into(),
        };
        let audit = self.call(Method::GET, &path, None).await?;
        print_events(&audit, out)?;
        Ok(())
    }
}

/// Prints `{"events": [...]}` one line per event.
pub fn print_events(audit: &Value, out: &mut dyn Write) -> std::io::Result<()> {
    let events = audit["events"].as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        writeln!(out, "  (no rollout events)")?;
    }
    for e in &events {
        let change = match e["mirror"].as_str() {
            Some(m) => format!("mirror {m}"),
            None => format!("{} → {}", weight(&e["from"]), weight(&e["to"])),
        };
        writeln!(
            out,
            "  #{:<4} {}  {}/{}  {:<16} {:<6}  {}",
            e["version"],
            timestamp(e["ts"].as_i64().unwrap_or(0)),
            e["route"].as_str().unwrap_or("?"),
            e["segment"].as_str().unwrap_or("?"),
            change,
            e["actor"].as_str().unwrap_or("?"),
            e["reason"].as_str().unwrap_or(""),
        )?;
    }
    Ok(())
}

fn weight(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |w| format!("{w}%"))
}

fn timestamp(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}
