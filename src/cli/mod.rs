//! The commands of `cxrelay`, one module each; this module declares the
//! command line and dispatches.

mod backfill;
mod check;
mod completions;
mod dlq;
#[cfg(feature = "emulator")]
mod emulator;
mod run;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cxrelay::config::{self, Loaded};

/// The config file used when none is named.
pub const DEFAULT_CONFIG: &str = "config.toml";

/// Gets contact-center events out of Genesys Cloud and into the systems
/// that need them, reliably.
#[derive(Parser, Debug)]
#[command(name = "cxrelay", version, about)]
pub struct Cli {
    /// Configuration file [default: config.toml]; relative paths in it are
    /// taken from its directory.
    #[arg(long, short, global = true, env = "CXRELAY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the service (the default).
    Run,
    /// Validate the configuration (every problem at once) and its secrets,
    /// and print the topology.
    Check(check::CheckArgs),
    /// Run the pipeline against the bundled Genesys Cloud emulator,
    /// in-process: no credentials needed. Without a config file, a
    /// built-in demo configuration writes under ./cxrelay-demo/.
    Demo,
    /// Run the bundled Genesys Cloud emulator alone (settings from the
    /// config's `[emulator]` section, when the file exists).
    Emulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
        /// Seed of the generated data (overrides `emulator.seed`).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Dead letters: list, show, send back, purge.
    Dlq(dlq::DlqArgs),
    /// The state of a running cxrelay, from its /status.
    Status(status::StatusArgs),
    /// Run one analytics job (or export) source of the config over an
    /// interval to completion, then exit.
    Backfill(backfill::BackfillArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
}

/// Runs the command line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let named = cli.config.clone();
    let path = named.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let command = cli.command.unwrap_or(Command::Run);
    if matches!(command, Command::Check(_) | Command::Completions(_)) {
        quiet_on_closed_stdout();
    }
    match command {
        Command::Run => run::run(&path, false),
        Command::Demo => demo(named.as_deref(), &path),
        Command::Emulator { listen, seed } => emulator(&path, &listen, seed),
        Command::Check(args) => check::check(&path, &args),
        Command::Dlq(args) => dlq::dlq(&path, args),
        Command::Status(args) => status::status(&path, named.is_some(), &args),
        Command::Backfill(args) => backfill::backfill(&path, &args),
        Command::Completions(args) => completions::completions(&args),
    }
}

/// A command printing for a reader (`cxrelay check | head`) ends quietly
/// when the reader goes away, as other command-line tools do, instead of
/// panicking on the failed write. Only commands without sockets: a write
/// to a closed socket must stay an error, not end the process.
fn quiet_on_closed_stdout() {
    // SAFETY: restoring the default disposition of SIGPIPE has no memory
    // effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Prints `text` for a command that also uses sockets (`dlq`, `status`):
/// their closed reader cannot be left to SIGPIPE from the start, so a
/// failed write to a reader that went away ends the process the same quiet
/// way here, once the command's network work is done.
pub(crate) fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            quiet_on_closed_stdout();
            // SAFETY: raising a signal whose disposition is the default
            // ends the process, as the failed write would have.
            unsafe {
                libc::raise(libc::SIGPIPE);
            }
        }
        Err(e) => {
            eprintln!("error: writing the output: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(feature = "emulator")]
fn demo(named: Option<&Path>, path: &Path) -> ExitCode {
    // A file named on purpose must exist; the default one may not (a new
    // user trying cxrelay in an empty directory).
    if named.is_none() && !path.exists() {
        return run::run_embedded_demo();
    }
    run::run(path, true)
}

#[cfg(feature = "emulator")]
fn emulator(path: &Path, listen: &str, seed: Option<u64>) -> ExitCode {
    emulator::emulator(path, listen, seed)
}

#[cfg(not(feature = "emulator"))]
fn demo(_: Option<&Path>, _: &Path) -> ExitCode {
    without_emulator()
}

#[cfg(not(feature = "emulator"))]
fn emulator(_: &Path, _: &str, _: Option<u64>) -> ExitCode {
    without_emulator()
}

#[cfg(not(feature = "emulator"))]
fn without_emulator() -> ExitCode {
    eprintln!("error: this cxrelay was built without the emulator feature");
    ExitCode::from(2)
}

/// Loads the config at `path`, or prints why not.
pub fn load_or_report(path: &Path) -> Option<Loaded> {
    match config::load(path) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("error: invalid configuration\n{e}");
            None
        }
    }
}

/// Waits for SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
