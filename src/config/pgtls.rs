//! What TLS the fleet's PostgreSQL connections use, decided once from the
//! URL: required (and verified) for a host that is not loopback unless the
//! URL says `sslmode=disable` itself. libpq's default, `prefer`, lets an
//! attacker on the path strip TLS and inject rollout events.

use std::net::IpAddr;
use tokio_postgres::config::{Host, SslMode};

/// The TLS of the fleet's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetTls {
    /// TLS, the server's certificate verified (public roots plus
    /// `fleet.ca`); no connection without it. A host that is not loopback,
    /// or `sslmode=require`.
    Required,
    /// TLS when the server offers it: `sslmode=prefer` (the default) to a
    /// loopback host or a Unix socket, where no one is on the path.
    IfOffered,
    /// Never: the URL says `sslmode=disable`.
    Disabled,
}

impl FleetTls {
    /// The TLS `pg`'s URL gets.
    pub fn of(pg: &tokio_postgres::Config) -> FleetTls {
        match pg.get_ssl_mode() {
            SslMode::Disable => FleetTls::Disabled,
            SslMode::Prefer if is_local(pg) => FleetTls::IfOffered,
            _ => FleetTls::Required,
        }
    }

    /// Sets `pg`'s `sslmode` to what this says.
    pub fn apply(self, pg: &mut tokio_postgres::Config) {
        let mode = match self {
            FleetTls::Required => SslMode::Require,
            FleetTls::IfOffered => SslMode::Prefer,
            FleetTls::Disabled => SslMode::Disable,
        };
        pg.ssl_mode(mode);
    }

    /// One line for `check`.
    pub fn describe(self) -> &'static str {
        match self {
            FleetTls::Required => "TLS required, certificate verified (public roots plus fleet.ca)",
            FleetTls::IfOffered => {
                "TLS if the server offers it (a loopback host; sslmode=require insists)"
            }
            FleetTls::Disabled => {
                "no TLS (sslmode=disable in the URL): rollout events travel in clear"
            }
        }
    }
}

/// Every host is a Unix socket, `localhost` or a loopback address (and so is
/// every `hostaddr`).
fn is_local(pg: &tokio_postgres::Config) -> bool {
    let hosts = pg.get_hosts().iter().all(|h| match h {
        Host::Tcp(name) => {
            let bare = name.trim_start_matches('[').trim_end_matches(']');
            name.eq_ignore_ascii_case("localhost")
                || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        Host::Unix(_) => true,
    });
    hosts && pg.get_hostaddrs().iter().all(IpAddr::is_loopback)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(url: &str) -> FleetTls {
        FleetTls::of(&url.parse().unwrap())
    }

    #[test]
    fn tls_is_required_off_loopback_unless_the_url_disables_it() {
        for (url, want) in [
            ("postgres://u@db.internal/x", FleetTls::Required),
            (
                "postgres://u@db.internal/x?sslmode=prefer",
                FleetTls::Required,
            ),
            ("postgres://u@192.0.2.7:5432/x", FleetTls::Required),
            (
                "postgres://u@db.internal/x?sslmode=require",
                FleetTls::Required,
            ),
            (
                "postgres://u@db.internal/x?sslmode=disable",
                FleetTls::Disabled,
            ),
            ("postgres://u@localhost/x", FleetTls::IfOffered),
            ("postgres://u@127.0.0.1:5432/x", FleetTls::IfOffered),
            ("postgres://u@[::1]:5432/x", FleetTls::IfOffered),
            ("postgres://u@localhost,db.internal/x", FleetTls::Required),
            (
                "postgres://u@localhost/x?hostaddr=192.0.2.7",
                FleetTls::Required,
            ),
            (
                "postgres://u@localhost/x?sslmode=require",
                FleetTls::Required,
            ),
            ("host=/run/postgresql user=u", FleetTls::IfOffered),
        ] {
            assert_eq!(tls(url), want, "{url}");
        }
    }
}
