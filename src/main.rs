//! The `understudy` binary: parse the command line, run it, map the result to an exit code.

use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = understudy::cli::Cli::parse();
    let default_level = match cli.command {
        understudy::cli::Command::Serve { .. } => "info",
        // The demo prints its own story; guard warnings would interleave with it.
        understudy::cli::Command::Demo { .. } => "error",
        _ => "warn",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colour only on a terminal: logs redirected to a file stay plain text.
    let colour =
        understudy::report::show::color_on(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match cli.log_format {
        understudy::cli::LogFormat::Plain => logs.init(),
        // The current span's fields (an exchange's id) go on every line about it.
        understudy::cli::LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    match understudy::cli::run(cli) {
        Ok(code) => code,
        Err(e) if understudy::cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", understudy::cli::message(&e));
            ExitCode::from(understudy::cli::exit_code(&e))
        }
    }
}
