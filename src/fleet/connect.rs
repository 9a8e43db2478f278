//! Connections to the fleet's PostgreSQL: the URL parsed once, TLS with
//! rustls (public roots plus `fleet.ca`), a small pool for requests that come
//! from elsewhere (a raise from the admin API, shipped rows), and one-off
//! connections for the CLI's `--fleet` commands.

use super::Error;
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The parsed URL (with a connect timeout, keepalives and this replica's
/// name as the application name) and the TLS connector.
pub fn config(
    cfg: &crate::config::Fleet,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect), Error> {
    let mut pg: tokio_postgres::Config = cfg
        .url
        .parse()
        .map_err(|e: tokio_postgres::Error| Error::Build(e.to_string()))?;
    pg.connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .application_name(format!("understudy {}", cfg.replica));
    cfg.tls.apply(&mut pg);
    Ok((pg, tls(cfg.ca.as_deref())?))
}

/// rustls with the public roots and the certificates of `ca`, if given.
/// Whether it is used is [`crate::config::FleetTls`]: always to a host that
/// is not loopback, unless the URL says `sslmode=disable`.
pub fn tls(ca: Option<&std::path::Path>) -> Result<MakeRustlsConnect, Error> {
    let extra = match ca {
        Some(path) => vec![std::fs::read(path).map_err(|source| Error::Ca {
            path: path.to_path_buf(),
            source,
        })?],
        None => Vec::new(),
    };
    Ok(MakeRustlsConnect::new(crate::upstream::tls_client_config(
        &extra,
    )))
}

/// The pool for requests that do not come from the session.
pub fn pool(
    pg: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
) -> Result<deadpool_postgres::Pool, Error> {
    let manager = deadpool_postgres::Manager::from_config(
        pg.clone(),
        tls.clone(),
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(4)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| Error::Build(e.to_string()))
}

/// One connection (its driver spawned), migrated: for the CLI's `--fleet`.
pub async fn connect_once(
    url: &str,
    ca: Option<&std::path::Path>,
) -> Result<tokio_postgres::Client, Error> {
    let mut pg: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| Error::Build(e.to_string()))?;
    pg.connect_timeout(CONNECT_TIMEOUT)
        .application_name("understudy cli");
    crate::config::FleetTls::of(&pg).apply(&mut pg);
    let (client, connection) = pg.connect(tls(ca)?).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection ended");
        }
    });
    super::schema::migrate(&client).await?;
    Ok(client)
}
