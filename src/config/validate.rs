//! File → runtime: checks every field, collecting every issue with its line and column.
//!
//! Only a TOML syntax error stops at once ([`Error::Parse`]). Unknown keys and
//! wrong types are recorded and skipped ([`recover`]), and the semantic checks
//! never stop early: they all run and the result is either a complete
//! [`Config`] or every [`Issue`] found ([`Error::Invalid`]), sorted by
//! position. Byte offsets become `line:col` in exactly one place, [`line_col`].

mod autonomy;
mod compare;
mod llm;
mod policy;
mod recover;
mod route;
mod slices;
mod value;

#[cfg(test)]
mod tests;

use super::file::{AdminFile, ListenFile, StoreFile};
use super::{Admin, Config, Listen, Store, TlsFiles};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::Range;
use std::path::PathBuf;

/// One semantic problem, located in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// The route's name (or `#index` when it has none), for route fields.
    pub route: Option<String>,
    /// The field inside its table, e.g. `rollout.segments.enterprise` or `listen.addr`.
    pub field: String,
    /// 1-based line of the offending value.
    pub line: usize,
    /// 1-based column (in characters) of the offending value.
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Issue {
    /// `12:7: routes[lead-score].rollout.segments.enterprise: weight 150 is outside 0..=100`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.line, self.col)?;
        if let Some(route) = &self.route {
            write!(f, "routes[{route}].")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    /// TOML syntax: nothing after it can be read.
    #[error("{line}:{col}: {message}")]
    Parse {
        line: usize,
        col: usize,
        message: String,
    },
    /// Every semantic problem, one per line when displayed.
    #[error("{}", lines(.0))]
    Invalid(Vec<Issue>),
}

fn lines(issues: &[Issue]) -> String {
    let lines: Vec<String> = issues.iter().map(Issue::to_string).collect();
    lines.join("\n")
}

impl Error {
    /// Displays the error with `file` in front of each position, compiler style:
    /// `proxy.toml:12:7: routes[lead-score]...: message`, one issue per line.
    pub fn located<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        Located { error: self, file }
    }
}

struct Located<'a> {
    error: &'a Error,
    file: &'a str,
}

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error {
            Error::Read { .. } => write!(f, "{}", self.error),
            Error::Parse { .. } => write!(f, "{}:{}", self.file, self.error),
            Error::Invalid(issues) => {
                for (i, issue) in issues.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{}:{issue}", self.file)?;
                }
                Ok(())
            }
        }
    }
}

/// 1-based `(line, column)` of a byte offset; the column counts characters.
/// An offset past the end (or inside a character) is clamped to the nearest
/// character boundary before it.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Parses and validates config text into the runtime [`Config`].
pub fn validate(text: &str) -> Result<Config, Error> {
    let recovered = recover::deserialize(text)?;
    let mut checker = Checker::new(text);
    for p in recovered.problems {
        checker.route = p.route;
        checker.issue(p.span, p.field, p.message);
    }
    checker.route = None;
    let Some(file) = recovered.file else {
        return Err(checker.error());
    };
    let config = Config {
        listen: listen(&mut checker, &file.listen),
        admin: admin(&mut checker, &file.admin),
        store: store(&mut checker, &file.store),
        routes: route::routes(&mut checker, &file.routes),
        notify: file
            .notify
            .iter()
            .filter_map(|n| notify(&mut checker, n))
            .collect(),
        fleet: file.fleet.as_ref().and_then(|f| fleet(&mut checker, f)),
        source: None,
    };
    checker.finish(config)
}

fn parse_error(text: &str, e: &toml::de::Error) -> Error {
    let (line, col) = e.span().map_or((1, 1), |span| line_col(text, span.start));
    // toml's messages may span lines; a config error is one line.
    let message = e.message().trim().replace('\n', "; ");
    Error::Parse { line, col, message }
}

/// Collects issues while the runtime config is built. The values built next to
/// a recorded issue are placeholders: `finish` throws them away.
pub(crate) struct Checker<'a> {
    text: &'a str,
    issues: Vec<Issue>,
    /// The route being checked, prefixed to each issue's field.
    route: Option<String>,
}

impl<'a> Checker<'a> {
    fn new(text: &'a str) -> Self {
        Checker {
            text,
            issues: Vec::new(),
            route: None,
        }
    }

    /// Records an issue at `span` (a default value has span `0..0`: line 1, column 1).
    pub(crate) fn issue(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let (line, col) = line_col(self.text, span.start);
        self.issues.push(Issue {
            route: self.route.clone(),
            field: field.into(),
            line,
            col,
            message: message.into(),
        });
    }

    fn finish(self, config: Config) -> Result<Config, Error> {
        if self.issues.is_empty() {
            return Ok(config);
        }
        Err(self.error())
    }

    /// Every issue recorded, by position.
    fn error(mut self) -> Error {
        self.issues.sort_by_key(|i| (i.line, i.col));
        Error::Invalid(self.issues)
    }
}

const LISTEN_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
const ADMIN_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090));

fn listen(c: &mut Checker<'_>, f: &ListenFile) -> Listen {
    Listen {
        addr: c.addr("listen.addr", &f.addr).unwrap_or(LISTEN_ADDR),
        tls: f.tls.as_ref().map(|tls| TlsFiles {
            cert: tls.cert.clone(),
            key: tls.key.clone(),
        }),
        header_read_timeout: c.timeout("listen.header_read_timeout", &f.header_read_timeout),
        drain_timeout: c.duration("listen.drain_timeout", &f.drain_timeout),
        max_in_flight: c.nonzero("listen.max_in_flight", &f.max_in_flight),
        body_read_timeout: c.timeout("listen.body_read_timeout", &f.body_read_timeout),
        idle_timeout: c.timeout("listen.idle_timeout", &f.idle_timeout),
        max_connections: c.nonzero("listen.max_connections", &f.max_connections),
        max_header_bytes: header_bytes(c, &f.max_header_bytes),
        max_headers: c.nonzero("listen.max_headers", &f.max_headers),
        max_concurrent_streams: u32::try_from(
            c.nonzero("listen.max_concurrent_streams", &f.max_concurrent_streams),
        )
        .unwrap_or(u32::MAX),
        underscores_in_headers: f.underscores_in_headers,
    }
}

/// hyper's HTTP/1 parser needs a read buffer of at least 8 KiB.
fn header_bytes(c: &mut Checker<'_>, f: &toml::Spanned<usize>) -> usize {
    const MIN: usize = 8 * 1024;
    let n = *f.get_ref();
    if n < MIN {
        c.issue(
            f.span(),
            "listen.max_header_bytes",
            format!("must be at least {MIN}"),
        );
        return MIN;
    }
    n
}

/// The variable `[fleet]` reads the URL from when `url` is not set.
pub const FLEET_URL_ENV: &str = "UNDERSTUDY_FLEET_URL";

fn fleet(c: &mut Checker<'_>, f: &super::file::FleetFile) -> Option<super::Fleet> {
    let url = match (&f.url, &f.url_env) {
        (Some(url), _) => url.clone(),
        (None, var) => {
            let (span, name) = var.as_ref().map_or((0..0, FLEET_URL_ENV.to_string()), |v| {
                (v.span(), v.get_ref().clone())
            });
            match std::env::var(&name) {
                Ok(v) if !v.is_empty() => toml::Spanned::new(span, v),
                _ => {
                    let msg =
                        format!("the variable {name} that holds the PostgreSQL URL is not set");
                    c.issue(span, "fleet.url_env", msg);
                    return None;
                }
            }
        }
    };
    let tls = match url.get_ref().parse::<tokio_postgres::Config>() {
        Ok(pg) => super::FleetTls::of(&pg),
        Err(e) => {
            // The URL may hold a password: say what is wrong, not what it is.
            c.issue(
                url.span(),
                "fleet.url",
                format!("not a PostgreSQL URL: {e}"),
            );
            return None;
        }
    };
    let replica = match &f.replica {
        Some(r) if r.get_ref().trim().is_empty() || r.get_ref().len() > 64 => {
            c.issue(r.span(), "fleet.replica", "must be 1 to 64 bytes");
            return None;
        }
        Some(r) => r.get_ref().clone(),
        None => host_name(),
    };
    Some(super::Fleet {
        url: url.into_inner(),
        replica,
        ship_rows: f.ship_rows,
        ca: f.ca.clone(),
        tls,
    })
}

/// The machine's host name (the default replica name).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "understudy".to_string())
}

fn notify(c: &mut Checker<'_>, f: &super::file::NotifyFile) -> Option<super::Notify> {
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
    c.url("notify.url", &f.url)?;
    let url: http::Uri = f.url.get_ref().parse().ok()?;
    let events = match &f.events {
        None => crate::config::Kind::ALL.to_vec(),
        Some(list) => list
            .iter()
            .filter_map(|e| {
                let kind = crate::config::Kind::parse(e.get_ref());
                if kind.is_none() {
                    let known: Vec<&str> = crate::config::Kind::ALL
                        .iter()
                        .map(|k| k.as_str())
                        .collect();
                    let msg = format!(
                        "unknown event {:?} (events: {})",
                        e.get_ref(),
                        known.join(", ")
                    );
                    c.issue(e.span(), "notify.events", msg);
                }
                kind
            })
            .collect(),
    };
    let (upstream, path) = super::Upstream::endpoint(&url, TIMEOUT);
    Some(super::Notify {
        upstream,
        path,
        format: match f.format {
            super::file::NotifyFormatFile::Json => super::NotifyFormat::Json,
            super::file::NotifyFormatFile::Slack => super::NotifyFormat::Slack,
        },
        events,
    })
}

fn admin(c: &mut Checker<'_>, f: &AdminFile) -> Admin {
    Admin {
        addr: c.addr("admin.addr", &f.addr).unwrap_or(ADMIN_ADDR),
        token_env: f.token_env.clone(),
        max_body_bytes: c.nonzero("admin.max_body_bytes", &f.max_body_bytes),
        header_read_timeout: c.timeout("admin.header_read_timeout", &f.header_read_timeout),
        request_timeout: c.timeout("admin.request_timeout", &f.request_timeout),
        max_connections: c.nonzero("admin.max_connections", &f.max_connections),
    }
}

fn store(c: &mut Checker<'_>, f: &StoreFile) -> Store {
    Store {
        path: f.path.clone(),
        max_body_bytes: f.max_body_bytes,
        redact_headers: c.header_names("store.redact_headers", &f.redact_headers),
        redact_query: f.redact_query.clone(),
        redact_json: c.pointers("store.redact_json", &f.redact_json),
        retention: c.timeout("store.retention", &f.retention),
        queue_capacity: c.nonzero("store.queue_capacity", &f.queue_capacity),
        batch_size: c.nonzero("store.batch_size", &f.batch_size),
        flush_interval: c.timeout("store.flush_interval", &f.flush_interval),
        bodies: match f.bodies {
            super::file::BodiesFile::All => super::Bodies::All,
            super::file::BodiesFile::Mismatches => super::Bodies::Mismatches,
            super::file::BodiesFile::None => super::Bodies::None,
        },
        request_bodies: f.request_bodies,
        capture_budget: match f
            .capture_budget
            .get_ref()
            .trim()
            .parse::<bytesize::ByteSize>()
        {
            Ok(size) if size.as_u64() >= f.max_body_bytes as u64 => size.as_u64() as usize,
            Ok(_) => {
                let msg = "must be at least store.max_body_bytes (one answer's capture)";
                c.issue(f.capture_budget.span(), "store.capture_budget", msg);
                0
            }
            Err(e) => {
                let msg = format!(
                    "{:?} is not a size such as \"256 MiB\": {e}",
                    f.capture_budget.get_ref()
                );
                c.issue(f.capture_budget.span(), "store.capture_budget", msg);
                0
            }
        },
        max_bytes: f.max_bytes.as_ref().and_then(|m| {
            match m.get_ref().trim().parse::<bytesize::ByteSize>() {
                Ok(size) if size.as_u64() >= 1024 * 1024 => Some(size.as_u64()),
                Ok(_) => {
                    c.issue(m.span(), "store.max_bytes", "must be at least 1 MiB");
                    None
                }
                Err(e) => {
                    let msg = format!("{:?} is not a size such as \"10 GiB\": {e}", m.get_ref());
                    c.issue(m.span(), "store.max_bytes", msg);
                    None
                }
            }
        }),
    }
}
