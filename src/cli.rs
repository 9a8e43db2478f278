//! The `understudy` command line: clap types (doc comments are the `--help`)
//! and the dispatch to the library. Exit codes: 0 ok, 1 user error, 2 runtime failure.

mod people;

use crate::config;
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Understudy: a shadow-mode traffic-mirroring reverse proxy for rolling out AI features.
#[derive(Debug, Parser)]
#[command(
    name = "understudy",
    version,
    about,
    propagate_version = true,
    after_long_help = LOG_FORMATS
)]
pub struct Cli {
    /// Log lines on stderr: plain or json (see `understudy --help`).
    // The formats are described once, in the top-level long help: a global
    // flag's help is repeated in every command's.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        default_value_t = LogFormat::Plain,
        hide_possible_values = true,
        hide_default_value = true
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// The `--log-format` choices, as the top-level `--help` lists them.
const LOG_FORMATS: &str = "\
Log formats (--log-format, on every command; logs go to stderr):
  plain  Human-readable lines (the default); coloured only on a terminal without NO_COLOR.
  json   One JSON object per line, with the span fields (an exchange's `exchange_id`).

The log level comes from RUST_LOG (default: info for serve, warn otherwise).";

/// The `--log-format` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Plain,
    /// One JSON object per line, with the span fields (an exchange's `exchange_id`).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy and the admin listener until SIGTERM or SIGINT.
    Serve {
        /// The config file.
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
        /// Serve every connection on one shared multi-thread runtime instead
        /// of a thread per core (each with its own runtime, SO_REUSEPORT
        /// listener and upstream pools, the default).
        #[arg(long, env = "UNDERSTUDY_SHARED_RUNTIME")]
        shared_runtime: bool,
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
        #[command(flatten)]
        db: DbArgs,
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
        /// Only this segment.
        #[arg(long)]
        segment: Option<String>,
        /// Only exchanges newer than this (e.g. 24h, 7d).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// One line per route and segment, or per hour or day (UTC) as well.
        #[arg(long, value_enum, default_value_t)]
        by: crate::report::By,
        /// Output format; html is one self-contained file with charts.
        #[arg(long, value_enum, default_value_t)]
        format: crate::report::Format,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Report a replay (`understudy replay --label L`) instead of live traffic.
        #[arg(long)]
        label: Option<String>,
        /// Only the exchanges of this slice, e.g. 'header:x-region=apac' or
        /// 'country=BR & plan=pro' (an attribute by the part of its name
        /// after ':' when that is unambiguous), reported per segment as usual.
        #[arg(long, conflicts_with = "label")]
        slice: Option<String>,
        /// Leave out the Slices section (slice discovery reads the stored
        /// requests, a second and slower pass than the report's own).
        #[arg(long)]
        no_slices: bool,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Slices nobody declared: groups of comparisons sharing up to two (or
    /// three) request attributes (header, path, query, JSON body values) whose
    /// agreement is significantly lower than the rest of their route.
    Slices {
        #[command(flatten)]
        db: DbArgs,
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
        /// Only comparisons newer than this (e.g. 24h, 7d).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: crate::slices::render::Format,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Re-send logged requests of a route to a new candidate and compare its
    /// answers with the stored incumbent answers (table `replays`, `report --label`).
    Replay {
        /// The config (the route's compare settings, mirror.set_headers).
        #[arg(short, long, default_value = "proxy.toml")]
        config: PathBuf,
        /// The database holding the logged exchanges (default: the config's store.path).
        #[arg(long)]
        db: Option<PathBuf>,
        #[arg(long)]
        route: String,
        /// The new candidate's base URL.
        #[arg(long)]
        candidate: String,
        /// The name the results are kept under; a second run resumes.
        #[arg(long)]
        label: String,
        /// Only exchanges newer than this (e.g. 24h).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        #[arg(long)]
        segment: Option<String>,
        /// Requests per second (above 0, at most 1e9).
        #[arg(long, default_value_t = 50.0, value_parser = crate::replay::parse_rate)]
        rate: f64,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Per-request timeout.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        timeout: std::time::Duration,
    },
    /// One exchange: the request and both answers side by side, differing fields marked.
    Show {
        /// The exchange id (the x-understudy-exchange-id response header).
        id: String,
        #[command(flatten)]
        db: DbArgs,
        /// Width of each side's column.
        #[arg(long, default_value_t = 60)]
        width: usize,
    },
    /// Exchanges as JSON lines (request, both answers, verdict, diff), for offline evaluation sets.
    Export {
        #[command(flatten)]
        db: DbArgs,
        /// Only exchanges newer than this (e.g. 24h, 7d).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// Only this route.
        #[arg(long)]
        route: Option<String>,
        /// Only this segment.
        #[arg(long)]
        segment: Option<String>,
        /// Only this verdict (match, mismatch, candidate_error, incumbent_error, skipped).
        #[arg(long)]
        verdict: Option<String>,
        /// Output format (jsonl: one JSON object per line).
        #[arg(long, value_enum, default_value_t)]
        format: ExportFormat,
        /// Export the decided approvals (approved, rejected, expired) with
        /// the request and both answers, instead of exchanges.
        #[arg(long, conflicts_with = "verdict")]
        approvals: bool,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Current weights, guard state and last events of a running proxy.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Approvals of segments at stage approve, on a running proxy: list,
    /// show, approve, reject.
    #[command(subcommand)]
    Approvals(people::Approvals),
    /// Rate an exchange's candidate answer, or record a reversal, on a running proxy.
    Feedback(people::Feedback),
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
        /// Raise although the segment's guard does not say pass (the
        /// promotion gate); audited as forced.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Change a segment's stage of autonomy on a running proxy:
    /// shadow, recommend, approve, notify or autonomous. Raising needs the
    /// stage's criteria to pass (or --force); lowering is never refused.
    Stage {
        /// The route.
        route: String,
        /// The segment (`default` is the stage of segments without their own).
        #[arg(long, default_value = "default")]
        segment: String,
        /// The new stage: shadow, recommend, approve, notify or autonomous.
        #[arg(long)]
        to: String,
        /// Why; it goes into the audit trail.
        #[arg(long)]
        reason: String,
        /// Raise although the stage's criteria do not say pass; audited as forced.
        #[arg(long)]
        force: bool,
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
        #[command(flatten)]
        fleet: FleetArgs,
    },
}

/// `--fleet`: read the whole fleet from PostgreSQL.
#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// Read the whole fleet from PostgreSQL instead of one replica. The URL
    /// comes from -c's [fleet], else --fleet-url, else UNDERSTUDY_FLEET_URL.
    #[arg(long)]
    pub fleet: bool,
    /// The fleet's PostgreSQL URL, when the config has no [fleet].
    #[arg(long, requires = "fleet")]
    pub fleet_url: Option<String>,
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

/// Which exchange logs to read.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// Exchange log(s); several are merged (one per replica). Default: the config's store.path.
    #[arg(long = "db")]
    pub dbs: Vec<PathBuf>,
    /// The config file (for the default --db and the routes' guard settings).
    #[arg(short, long, default_value = "proxy.toml")]
    pub config: PathBuf,
}

/// `export` formats.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum ExportFormat {
    #[default]
    Jsonl,
}

/// An error that is the user's to fix (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

/// Runs a parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            shared_runtime,
        } => {
            let thread_per_core = !shared_runtime;
            let config = load(&config)?;
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            let options = crate::app::Options {
                admin_token: std::env::var(&config.admin.token_env).ok(),
                serving_threads: thread_per_core.then_some(cores),
            };
            // With a thread per core the shared runtime keeps only the
            // admin listener, reloads and the stop: one worker is enough.
            let rt = if thread_per_core {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .context("cannot start the async runtime")?
            } else {
                tokio_runtime()?
            };
            rt.block_on(async {
                let stop = crate::shutdown::Stop::install();
                let running = crate::app::start_with(config, options).await?;
                stop.wait().await;
                running.stop().await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config: path } => {
            let config = load(&path)?;
            println!("{}: ok ({} route(s))", path.display(), config.routes.len());
            if let Some(fleet) = &config.fleet {
                println!("fleet PostgreSQL: {}", fleet.tls.describe());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { db, requests } => {
            let rt = tokio_runtime()?;
            rt.block_on(crate::demo::run(&db, requests, &mut std::io::stdout()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Report {
            db,
            route,
            segment,
            since,
            by,
            format,
            output,
            label,
            slice,
            no_slices,
            fleet,
        } => {
            // Under --fleet the fleet's rows are copied into a temporary
            // file and reported like any other log.
            let fleet_db = match fleet.fleet {
                true => Some(fleet_report_db(
                    &db.config,
                    fleet.fleet_url.as_deref(),
                    since,
                )?),
                false => None,
            };
            let (dbs, config) = match &fleet_db {
                Some((dir, _)) => (
                    vec![dir.path().join("fleet.db")],
                    config::load(&db.config).ok(),
                ),
                None => resolve_dbs(&db)?,
            };
            let guards = config
                .iter()
                .flat_map(|c| &c.routes)
                .map(|r| (r.name.clone(), r.guard.clone()))
                .collect();
            let opts = crate::report::ReportOptions {
                dbs,
                route,
                segment,
                since,
                by,
                format,
                guards,
                label,
                slice,
                routes: config.map(|c| c.routes).unwrap_or_default(),
                find_slices: !no_slices,
            };
            write_to(output.as_deref(), |out| Ok(crate::report::run(&opts, out)?))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Slices {
            db,
            route,
            since,
            format,
            output,
        } => {
            let (dbs, config) = resolve_dbs(&db)?;
            let opts = crate::slices::Options {
                dbs,
                route,
                since_ms: since.map(|d| {
                    let ago = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                    crate::store::now_ms().saturating_sub(ago)
                }),
                routes: config.map(|c| c.routes).unwrap_or_default(),
            };
            let found = crate::slices::find(&opts)?;
            write_to(output.as_deref(), |out| {
                Ok(crate::slices::render::write(&found, format, out)?)
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            config,
            db,
            route,
            candidate,
            label,
            since,
            segment,
            rate,
            concurrency,
            timeout,
        } => {
            let config = load(&config)?;
            let candidate: http::Uri = candidate
                .parse()
                .map_err(|e| UserError(format!("--candidate {candidate:?}: {e}")))?;
            let opts = crate::replay::Options {
                db: db.unwrap_or_else(|| config.store.path.clone()),
                route,
                candidate,
                label,
                since,
                segment,
                rate,
                concurrency,
                timeout,
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let rt = tokio_runtime()?;
            let summary = rt.block_on(crate::replay::run(&config, &opts))?;
            println!(
                "replayed {} exchange(s) under {:?}{}{}",
                summary.replayed,
                opts.label,
                if summary.already > 0 {
                    format!("; {} already replayed (skipped)", summary.already)
                } else {
                    String::new()
                },
                if summary.interrupted {
                    "; interrupted"
                } else {
                    ""
                }
            );
            for (why, n) in &summary.not_replayable {
                println!("not replayable: {n}: {why}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { id, db, width } => {
            let (dbs, config) = resolve_dbs(&db)?;
            let Some(row) = crate::store::read::exchange(&dbs, &id)? else {
                return Err(UserError(format!(
                    "no exchange with id {id:?} (an exchange whose mirror was skipped has no row: it is only counted, in mirror_skips)"
                ))
                .into());
            };
            let marks = show_marks(config.as_ref(), &row);
            let color = crate::report::show::use_color();
            crate::report::show::show(
                &row,
                &marks,
                color,
                width.max(10),
                &mut std::io::stdout().lock(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            db,
            since,
            route,
            segment,
            verdict,
            format: ExportFormat::Jsonl,
            approvals,
            output,
        } => {
            let (dbs, _) = resolve_dbs(&db)?;
            if approvals {
                let filter = crate::store::approvals::Filter {
                    route,
                    segment,
                    status: None,
                    since_ms: since.map(|d| {
                        let ago = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                        crate::store::now_ms().saturating_sub(ago)
                    }),
                };
                write_to(output.as_deref(), |out| {
                    crate::export::approvals(&dbs, &filter, out)?;
                    Ok(())
                })?;
                return Ok(ExitCode::SUCCESS);
            }
            let filter = crate::store::read::Filter {
                route,
                segment,
                since_ms: since.map(|d| {
                    let ago = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                    crate::store::now_ms().saturating_sub(ago)
                }),
                verdict,
                label: None,
                rows: None,
            };
            write_to(output.as_deref(), |out| {
                crate::export::jsonl(&dbs, &filter, out)?;
                Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { fleet, admin } if fleet.fleet => {
            fleet_ops(&admin.config, &fleet, async |c, out| {
                Ok(crate::fleet::read::status(c, out).await?)
            })
        }
        Command::Status { admin, .. } => ops(&admin, async |a, out| a.status(out).await),
        Command::Approvals(command) => people::approvals(command),
        Command::Feedback(f) => people::feedback(f),
        Command::Promote {
            route,
            segment,
            to,
            next,
            reason,
            force,
            admin,
        } => {
            let target = match (to, next) {
                (Some(w), _) => crate::admin::client::Target::To(w),
                (None, _) => crate::admin::client::Target::Next,
            };
            ops(&admin, async |a, out| {
                a.set_weight(&route, &segment, target, &reason, force, out)
                    .await
            })
        }
        Command::Rollback {
            route,
            segment,
            to,
            reason,
            admin,
        } => ops(&admin, async |a, out| {
            let target = crate::admin::client::Target::To(to);
            a.set_weight(&route, &segment, target, &reason, false, out)
                .await
        }),
        Command::Stage {
            route,
            segment,
            to,
            reason,
            force,
            admin,
        } => ops(&admin, async |a, out| {
            a.set_stage(&route, &segment, &to, &reason, force, out)
                .await
        }),
        Command::Audit {
            route,
            fleet,
            admin,
        } if fleet.fleet => fleet_ops(&admin.config, &fleet, async |c, out| {
            let events = crate::fleet::read::audit(c, route.as_deref()).await?;
            let audit = crate::admin::wire::Audit {
                events: events
                    .into_iter()
                    .map(|(ts, change)| crate::admin::wire::EventView { ts, change })
                    .collect(),
            };
            Ok(crate::admin::client::print_events(&audit, out)?)
        }),
        Command::Audit { route, admin, .. } => {
            ops(&admin, async |a, out| a.audit(route.as_deref(), out).await)
        }
    }
}

/// Runs one admin API client command against the running proxy.
fn ops(
    args: &AdminArgs,
    f: impl AsyncFnOnce(&crate::admin::client::Admin, &mut dyn std::io::Write) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let admin = crate::admin::client::Admin::resolve(args.admin.as_deref(), &args.config)?;
    tokio_runtime()?.block_on(f(&admin, &mut std::io::stdout()))?;
    Ok(ExitCode::SUCCESS)
}

/// The fleet's PostgreSQL URL for `--fleet` (the config's `[fleet]`, else
/// `--fleet-url`, else the variable) and a migrated connection to it.
async fn fleet_client(config: &Path, flag: Option<&str>) -> anyhow::Result<tokio_postgres::Client> {
    let (url, ca) = crate::fleet::read::url(config, flag).ok_or_else(|| {
        UserError(format!(
            "--fleet needs the fleet's PostgreSQL: a [fleet] in {}, --fleet-url, or {}",
            config.display(),
            config::FLEET_URL_ENV
        ))
    })?;
    Ok(crate::fleet::connect_once(&url, ca.as_deref()).await?)
}

/// Runs `f` against the fleet's PostgreSQL.
fn fleet_ops(
    config: &Path,
    args: &FleetArgs,
    f: impl AsyncFnOnce(&tokio_postgres::Client, &mut dyn std::io::Write) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    tokio_runtime()?.block_on(async {
        let client = fleet_client(config, args.fleet_url.as_deref()).await?;
        f(&client, &mut std::io::stdout()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The fleet's rows and events in a temporary SQLite file, for `report --fleet`.
fn fleet_report_db(
    config: &Path,
    flag: Option<&str>,
    since: Option<std::time::Duration>,
) -> anyhow::Result<(tempfile::TempDir, usize)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("fleet.db");
    let since_ms = since.map(|d| {
        crate::store::now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    });
    let n = tokio_runtime()?.block_on(async {
        let client = fleet_client(config, flag).await?;
        anyhow::Ok(crate::fleet::read::materialize(&client, &path, since_ms).await?)
    })?;
    Ok((dir, n))
}

/// Loads a config; its problems are the user's (exit 1), printed one per line.
pub fn load(path: &Path) -> anyhow::Result<config::Config> {
    config::load(path)
        .map_err(|e| UserError(e.located(&path.display().to_string()).to_string()).into())
}

/// The fields of `row` its route's JSON compare settings let through (none
/// without the config, or for another mode).
fn show_marks(
    config: Option<&config::Config>,
    row: &crate::store::read::ExchangeRow,
) -> crate::report::marks::Marks {
    let spec = config
        .and_then(|c| c.routes.iter().find(|r| r.name == row.route))
        .and_then(|r| match &r.compare {
            config::Compare::Json(spec) => Some(spec),
            _ => None,
        });
    let Some(spec) = spec else {
        return crate::report::marks::Marks::default();
    };
    let diffs: Vec<String> = serde_json::from_str(&row.diff).unwrap_or_default();
    crate::report::marks::Marks::of(
        spec,
        row.incumbent_body.as_deref(),
        row.candidate_body.as_deref(),
        &diffs,
    )
}

/// The `--db` files (default: the config's `store.path`) and the config when
/// it could be read (it only adds the routes' guard settings when `--db` is given).
fn resolve_dbs(args: &DbArgs) -> anyhow::Result<(Vec<PathBuf>, Option<config::Config>)> {
    if args.dbs.is_empty() {
        let config =
            load(&args.config).context("no --db given, so the config's store.path is used")?;
        return Ok((vec![config.store.path.clone()], Some(config)));
    }
    let config = args
        .config
        .exists()
        .then(|| config::load(&args.config).ok())
        .flatten();
    Ok((args.dbs.clone(), config))
}

/// Runs `f` on stdout, or on a new file at `path` (flushed before returning).
fn write_to(
    path: Option<&Path>,
    f: impl FnOnce(&mut dyn std::io::Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use std::io::Write;
    match path {
        None => f(&mut std::io::stdout().lock()),
        Some(p) => {
            let file = std::fs::File::create(p)
                .map_err(|e| UserError(format!("cannot create {}: {e}", p.display())))?;
            let mut out = std::io::BufWriter::new(file);
            f(&mut out)?;
            out.flush()
                .with_context(|| format!("writing {}", p.display()))?;
            Ok(())
        }
    }
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The error as one line for a person: each cause once (our errors already
/// name their source in their own message, so a cause already said is not
/// repeated).
pub fn message(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// The reader of our output went away (`understudy report | head`): not an
/// error worth a word, as for any well-behaved Unix filter.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let pipe = Some(std::io::ErrorKind::BrokenPipe);
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().map(std::io::Error::kind) == pipe
            // serde_json writing straight to stdout keeps the io error inside.
            || e.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == pipe
    })
}

/// 1 when the cause is the user's (config, arguments, missing files), else 2.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let user = err.chain().any(|e| {
        e.is::<UserError>()
            || e.is::<config::Error>()
            || e.is::<crate::report::Error>()
            || e.is::<crate::export::Error>()
            || e.is::<crate::slices::Error>()
            || e.is::<crate::store::Error>()
    }) || err
        .downcast_ref::<crate::admin::client::Error>()
        .is_some_and(crate::admin::client::Error::is_user);
    if user { 1 } else { 2 }
}
