//! The `understudy` command line: clap types (doc comments are the `--help`)
//! and the dispatch to the library. Exit codes: 0 ok, 1 user error, 2 runtime failure.

use crate::config;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Understudy: a shadow-mode traffic-mirroring reverse proxy for rolling out AI features.
#[derive(Debug, Parser)]
#[command(name = "understudy", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy and the admin listener until SIGTERM or SIGINT.
    Serve {
        /// The config file.
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// Validate a config file; exit 1 with line and column on error.
    Check {
        /// The config file.
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
    },
    /// A self-contained demonstration: embedded incumbent and candidate, synthetic traffic, the report.
    Demo {
        /// Where the demo writes its exchange log.
        #[arg(long, default_value = "understudy-demo.db")]
        db: PathBuf,
        /// At most this many requests; the demo stops once the guard has settled both canaries.
        #[arg(long, default_value_t = 20000)]
        requests: usize,
    },
    /// Agreement per route and segment from one or more exchange logs.
    Report {
        /// Exchange log(s); several are merged (one per replica). Default: the config's store.path.
        #[arg(long = "db")]
        dbs: Vec<PathBuf>,
        /// The config file (for the default --db).
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
        /// Only exchanges newer than this (e.g. 24h, 7d).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
    },
    /// Current weights, guard state and last events of a running proxy.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Change a segment's weight on a running proxy (in effect for the next request).
    Promote {
        /// The route.
        route: String,
        /// The segment (`default` is the weight of segments without their own).
        #[arg(long, default_value = "default")]
        segment: String,
        /// The new weight in percent (0..=100, 0.001 resolution).
        #[arg(long, required_unless_present = "next", conflicts_with = "next")]
        to: Option<f64>,
        /// The next step of the route's guard.steps.
        #[arg(long)]
        next: bool,
        /// Why; it goes into the audit trail.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Set a segment's weight to 0 (or --to W) at once on a running proxy.
    Rollback {
        /// The route.
        route: String,
        /// The segment (`default` is the weight of segments without their own).
        #[arg(long, default_value = "default")]
        segment: String,
        /// The weight to go back to.
        #[arg(long, default_value_t = 0.0)]
        to: f64,
        /// Why; it goes into the audit trail.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// The rollout history of a running proxy (every weight change, who and why).
    Audit {
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// Where the running proxy's admin API is.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The admin API address (host:port). Default: the config's admin.addr.
    #[arg(long)]
    pub admin: Option<String>,
    /// The config file (for the default --admin and the token's variable).
    #[arg(short, long, default_value = "proxy.toml")]
    pub config: PathBuf,
}

/// An error that is the user's to fix (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

/// Runs a parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => {
            let config = load(&config)?;
            let rt = tokio_runtime()?;
            rt.block_on(async {
                let running = crate::app::start(config).await?;
                crate::shutdown::signal().await;
                running.stop().await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config: path } => {
            let config = load(&path)?;
            println!("{}: ok ({} route(s))", path.display(), config.routes.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { db, requests } => {
            let rt = tokio_runtime()?;
            rt.block_on(crate::demo::run(&db, requests, &mut std::io::stdout()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            dbs,
            config,
            route,
            since,
        } => {
            let dbs = default_dbs(dbs, &config)?;
            let opts = crate::report::ReportOptions { dbs, route, since };
            crate::report::run(&opts, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { admin } => ops(&admin, async |a, out| a.status(out).await),
        Command::Promote {
            route,
            segment,
            to,
            next,
            reason,
            admin,
        } => {
            let target = match (to, next) {
                (Some(w), _) => crate::ops::Target::To(w),
                (None, _) => crate::ops::Target::Next,
            };
            ops(&admin, async |a, out| {
                a.set_weight(&route, &segment, target, &reason, out).await
            })
        }
        Command::Rollback {
            route,
            segment,
            to,
            reason,
            admin,
        } => ops(&admin, async |a, out| {
            let target = crate::ops::Target::To(to);
            a.set_weight(&route, &segment, target, &reason, out).await
        }),
        Command::Audit { route, admin } => {
            ops(&admin, async |a, out| a.audit(route.as_deref(), out).await)
        }
    }
}

/// Runs one admin API client command against the running proxy.
fn ops(
    args: &AdminArgs,
    f: impl AsyncFnOnce(&crate::ops::Admin, &mut dyn std::io::Write) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let admin = crate::ops::Admin::resolve(args.admin.as_deref(), &args.config)?;
    tokio_runtime()?.block_on(f(&admin, &mut std::io::stdout()))?;
    Ok(ExitCode::SUCCESS)
}

/// Loads a config; its problems are the user's (exit 1), printed one per line.
pub fn load(path: &Path) -> anyhow::Result<config::Config> {
    config::load(path)
        .map_err(|e| UserError(e.located(&path.display().to_string()).to_string()).into())
}

fn default_dbs(dbs: Vec<PathBuf>, config: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dbs.is_empty() {
        return Ok(dbs);
    }
    let config = load(config).context("no --db given, so the config's store.path is used")?;
    Ok(vec![config.store.path])
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// 1 when the cause is the user's (config, arguments, missing files), else 2.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let user = err
        .chain()
        .any(|e| e.is::<UserError>() || e.is::<config::Error>() || e.is::<crate::report::Error>())
        || err
            .downcast_ref::<crate::ops::Error>()
            .is_some_and(crate::ops::Error::is_user);
    if user { 1 } else { 2 }
}
