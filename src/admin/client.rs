//! The admin client: `status`, `promote`, `rollback`, `audit`, `approvals`
//! and `feedback` ([`people`]) against a running proxy's admin API (docs/src/reference/admin-api.md), reading and writing the [`wire`]
//! types the server uses. A change takes effect on the proxy's next request.
//!
//! It never touches the database itself: the proxy records every change, so
//! the audit trail has one writer. Calls are sent with `x-understudy-actor: cli`.

mod people;

pub use people::ListFilter;

use super::reply::ACTOR_HEADER;
use super::wire;
use crate::rollout::guard;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
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

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Error> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(ACTOR_HEADER, "cli");
        if let Some(t) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b).map_err(|e| Error::Usage(e.to_string()))?),
            None => Bytes::new(),
        };
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
        if !status.is_success() {
            let message = serde_json::from_slice::<wire::Refusal>(&body)
                .map_or_else(|_| "no message".to_string(), |r| r.error);
            return Err(Error::Refused {
                method,
                url,
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&body).map_err(|e| Error::BadAnswer {
            url: url.clone(),
            message: format!("{status}: {e}"),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// `understudy status`: weights, guard state and the last events.
    pub async fn status(&self, out: &mut dyn Write) -> anyhow::Result<()> {
        let routes: wire::Routes = self.get("/api/v1/routes").await?;
        for r in &routes.routes {
            let g = &r.guard_config;
            writeln!(
                out,
                "{}  mirror {}  guard: min_agreement {}, min_samples {}, auto_promote {}, steps {:?}, hold {}s",
                r.route,
                r.mirror,
                g.min_agreement,
                g.min_samples,
                g.auto_promote,
                g.steps,
                g.hold_s,
            )?;
            let header: Vec<String> = [
                "segment",
                "weight",
                "stage",
                "guard",
                "samples",
                "agreement [interval]",
                "errors",
                "decides in",
            ]
            .map(String::from)
            .to_vec();
            let mut rows = Vec::new();
            let mut stages = Vec::new();
            for s in &r.segments {
                let f = s.guard.as_ref().map(|g| &g.figures);
                let agreement = match f.and_then(|f| f.agreement.map(|a| (a, f))) {
                    Some((a, f)) => {
                        format!(
                            "{a:.3} [{:.3}, {:.3}]",
                            f.agreement_lower, f.agreement_upper
                        )
                    }
                    None => "-".into(),
                };
                let decision = match &s.guard {
                    Some(g) => match &g.reason {
                        Some(reason) => format!("breach:{reason}"),
                        None => g.decision.clone(),
                    },
                    None => "-".into(),
                };
                let decides = match s
                    .guard
                    .as_ref()
                    .and_then(|g| g.samples_to_decide.map(|n| (n, g)))
                {
                    Some((n, g)) => match g.seconds_to_decide {
                        Some(t) => format!(
                            "~{n} samples (~{})",
                            humantime::format_duration(std::time::Duration::from_secs(
                                t.ceil() as u64
                            ),)
                        ),
                        None => format!("~{n} samples"),
                    },
                    None => "-".into(),
                };
                rows.push(vec![
                    s.segment.clone(),
                    crate::report::render::weight(s.weight),
                    s.stage.map_or("none", |s| s.as_str()).to_string(),
                    decision,
                    f.map_or("-".into(), |f| f.samples.to_string()),
                    agreement,
                    f.and_then(|f| f.error_rate)
                        .map_or("-".into(), |e| format!("{:.1}%", e * 100.0)),
                    decides,
                ]);
                if let Some(a) = &s.autonomy {
                    let decision = match &a.reason {
                        Some(reason) => format!("breach:{reason}"),
                        None => a.decision.clone(),
                    };
                    let stage = s.stage.map_or("none", |s| s.as_str());
                    stages.push(format!(
                        "  {}: stage {stage}: {decision}: {}",
                        s.segment, a.evidence
                    ));
                }
            }
            // Weights and counts align right, the rest left.
            let right = [false, true, false, false, true, false, true, false];
            crate::report::aligned::write(out, &header, &rows, &right, "  ")?;
            for line in &stages {
                writeln!(out, "{line}")?;
            }
            for g in &r.gates {
                let verdict = if g.passed { "pass" } else { "FAIL" };
                writeln!(out, "  gate {}: {verdict} ({})", g.name, g.detail)?;
            }
        }
        writeln!(out, "\nLast events:")?;
        let audit: wire::Audit = self.get("/api/v1/audit?limit=10").await?;
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
        force: bool,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        if route.is_empty() || route.contains(['/', '?', '#', ' ']) {
            return Err(Error::Usage(format!("{route:?} is not a route name")).into());
        }
        let weight = match target {
            Target::To(w) => w,
            Target::Next => self.next_step(route, segment).await?,
        };
        let body = wire::WeightChange {
            segment: Some(segment.to_string()),
            weight: Some(weight),
            mirror: None,
            reason: Some(reason.to_string()),
            force,
        };
        let path = format!("/api/v1/routes/{route}/weights");
        let answer: wire::Changed = self.call(Method::POST, &path, Some(&body)).await?;
        let c = &answer.change;
        writeln!(
            out,
            "{route}/{segment}: {} → {} (version {}); in effect for the next request",
            opt(c.from),
            opt(c.to),
            c.version.map_or("-".into(), |v| v.to_string())
        )?;
        Ok(())
    }

    /// `understudy stage`: one stage change, with its reason (docs/src/concepts/stages.md).
    pub async fn set_stage(
        &self,
        route: &str,
        segment: &str,
        stage: &str,
        reason: &str,
        force: bool,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        if route.is_empty() || route.contains(['/', '?', '#', ' ']) {
            return Err(Error::Usage(format!("{route:?} is not a route name")).into());
        }
        if crate::config::Stage::parse(stage).is_none() {
            return Err(Error::Usage(format!(
                "unknown stage {stage:?} (stages: {})",
                crate::config::Stage::names()
            ))
            .into());
        }
        let body = wire::StageChange {
            segment: Some(segment.to_string()),
            stage: stage.to_string(),
            reason: Some(reason.to_string()),
            force,
        };
        let path = format!("/api/v1/routes/{route}/stage");
        let answer: wire::Changed = self.call(Method::POST, &path, Some(&body)).await?;
        let c = &answer.change;
        writeln!(
            out,
            "{route}/{segment}: stage {} → {} (version {}); in effect for the next request",
            c.from_stage.as_deref().unwrap_or("-"),
            c.to_stage.as_deref().unwrap_or("-"),
            c.version.map_or("-".into(), |v| v.to_string())
        )?;
        Ok(())
    }

    async fn next_step(&self, route: &str, segment: &str) -> Result<f64, Error> {
        let routes: wire::Routes = self.get("/api/v1/routes").await?;
        let r = routes
            .routes
            .iter()
            .find(|r| r.route == route)
            .ok_or_else(|| Error::Usage(format!("the proxy has no route {route:?}")))?;
        let weight = r
            .segments
            .iter()
            .find(|s| s.segment == segment)
            .map(|s| s.weight)
            .ok_or_else(|| {
                let known = r.segments.iter().map(|s| s.segment.as_str());
                let hint = crate::segment::did_you_mean(segment, known.clone());
                let known: Vec<&str> = known.collect();
                Error::Usage(format!(
                    "route {route:?} has no segment {segment:?} (segments: {}){hint}",
                    known.join(", ")
                ))
            })?;
        let steps = &r.guard_config.steps;
        guard::next_step(steps, weight).ok_or_else(|| {
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
        let audit: wire::Audit = self.get(&path).await?;
        print_events(&audit, out)?;
        Ok(())
    }
}

/// Prints the audit one aligned line per event.
pub fn print_events(audit: &wire::Audit, out: &mut dyn Write) -> std::io::Result<()> {
    use crate::report::render;
    if audit.events.is_empty() {
        return writeln!(out, "  (no rollout events)");
    }
    let header: Vec<String> = [
        "VERSION",
        "WHEN (UTC)",
        "ROUTE/SEGMENT",
        "CHANGE",
        "BY",
        "REASON",
    ]
    .map(String::from)
    .to_vec();
    let rows: Vec<Vec<String>> = (audit.events.iter())
        .map(|event| {
            let e = &event.change;
            vec![
                format!("#{}", e.version.unwrap_or_default()),
                timestamp(event.ts),
                format!("{}/{}", e.route, e.segment),
                render::change(
                    e.mirror.as_deref(),
                    e.from,
                    e.to,
                    e.from_stage.as_deref(),
                    e.to_stage.as_deref(),
                ),
                render::actor(&e.actor, e.forced),
                crate::report::show::clean(&e.reason).into_owned(),
            ]
        })
        .collect();
    crate::report::aligned::write(out, &header, &rows, &[], "  ")
}

fn opt(w: Option<f64>) -> String {
    w.map_or("-".into(), |w| w.to_string())
}

fn timestamp(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}
