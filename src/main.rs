//! The `cxrelay` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cxrelay::config::{self, Config, Loaded};
use cxrelay::service::Service;
use cxrelay::telemetry;

/// Gets contact-center events out of Genesys Cloud and into the systems
/// that need them, reliably.
#[derive(Parser, Debug)]
#[command(name = "cxrelay", version, about)]
struct Cli {
    /// Configuration file.
    #[arg(long, short, global = true, default_value = "config.toml", env = "CXRELAY_CONFIG")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the service (the default).
    Run,
    /// Validate the configuration and its secrets, and print the topology.
    Check,
    /// Run the configured pipeline against the bundled Genesys Cloud
    /// emulator, in-process: no credentials needed.
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
    /// Dead letters: list, send back, purge.
    Dlq {
        #[command(subcommand)]
        command: DlqCmd,
        /// Admin API of a running cxrelay (default: the store file, or the
        /// configured HTTP address when the store is in use).
        #[arg(long, global = true)]
        url: Option<String>,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum DlqCmd {
    /// List dead letters, oldest first.
    List {
        /// Only ids above this.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Send dead letters back to the listener they were meant for.
    Replay {
        /// These ids.
        #[arg(long = "id", required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<u64>,
        /// All of them.
        #[arg(long)]
        all: bool,
    },
    /// Remove dead letters recorded before a date (2024-05-01 or RFC 3339).
    Purge {
        /// The cut-off.
        #[arg(long)]
        before: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&cli.config, false),
        #[cfg(feature = "emulator")]
        Command::Demo => run(&cli.config, true),
        #[cfg(feature = "emulator")]
        Command::Emulator { listen, seed } => emulator(&cli.config, &listen, seed),
        #[cfg(not(feature = "emulator"))]
        Command::Demo | Command::Emulator { .. } => {
            eprintln!("error: this cxrelay was built without the emulator feature");
            ExitCode::from(2)
        }
        Command::Check => check(&cli.config),
        Command::Dlq { command, url, json } => dlq(&cli.config, command, url.as_deref(), json),
    }
}

fn dlq(path: &std::path::Path, command: DlqCmd, url: Option<&str>, json: bool) -> ExitCode {
    use cxrelay::dlq::{self, DlqCommand};
    let Some(loaded) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    let cmd = match command {
        DlqCmd::List { after, limit } => DlqCommand::List { after, limit },
        DlqCmd::Replay { ids, all } => DlqCommand::Replay((!all).then_some(ids)),
        DlqCmd::Purge { before } => match dlq::parse_time(&before) {
            Ok(ms) => DlqCommand::Purge(ms),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match dlq::run(&loaded.config, url, &cmd) {
        Ok(out) => {
            print!("{}", dlq::render(&out, json));
            if json {
                println!();
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn load_or_report(path: &std::path::Path) -> Option<Loaded> {
    match config::load(path) {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("error: invalid configuration\n{e}");
            None
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    let Some(loaded) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    if let Err(e) = loaded.secrets() {
        eprintln!("error: missing secrets\n{e}");
        return ExitCode::from(2);
    }
    print!("{}", topology(&loaded.config));
    println!("{}: OK", loaded.file);
    ExitCode::SUCCESS
}

/// A human-readable summary of what the config will run.
fn topology(c: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "data_dir: {}", c.service.data_dir.display());
    let _ = writeln!(out, "http: {}", c.http.listen);
    if let Some(g) = &c.genesys {
        let _ = writeln!(
            out,
            "genesys: {} ({} requests/min)",
            g.environment, g.requests_per_minute
        );
    }
    let _ = writeln!(out, "sources:");
    for s in &c.source {
        let state = if s.enabled { "" } else { " [disabled]" };
        let what = s.spec.builder().describe();
        let _ = writeln!(out, "  {} ({}){state}: {what}", s.name, s.kind());
    }
    let _ = writeln!(out, "listeners:");
    for l in &c.listener {
        let target = l.sink.spec.builder().describe();
        let _ = writeln!(
            out,
            "  {} <- [{}] -> {target} (mailbox {}, when_full {})",
            l.name,
            l.topics.join(", "),
            l.mailbox,
            l.when_full.as_str()
        );
    }
    out
}

fn run(path: &std::path::Path, demo: bool) -> ExitCode {
    let Some(mut loaded) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    if demo {
        // Whatever org the file names, the demo talks to the emulator.
        let g = loaded.config.genesys.get_or_insert_with(|| config::GenesysConfig {
            client_id_env: "CXRELAY_DEMO_CLIENT_ID".into(),
            client_secret_env: "CXRELAY_DEMO_CLIENT_SECRET".into(),
            ..config::GenesysConfig::for_environment("emulator")
        });
        g.environment = "emulator".into();
        g.api_url = None;
        g.login_url = None;
    }
    // A file-size limit must fail writes with EFBIG (reported, retried),
    // not kill the process.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    telemetry::init_logging(loaded.config.service.log_format, &loaded.config.service.log_level);
    let system = actix::System::new();
    let outputs = sink_paths(&loaded.config);
    let result = system.block_on(async move {
        let service = Service::start(loaded).await?;
        if demo {
            #[cfg(feature = "emulator")]
            {
                let url = service.emulator().map(|e| e.url()).unwrap_or_default();
                eprintln!("cxrelay demo: bundled Genesys Cloud emulator at {url}");
            }
            eprintln!("cxrelay demo: status at http://{}/status", service.http_addr());
            for p in &outputs {
                eprintln!("cxrelay demo: events are written to {p}");
            }
            eprintln!("cxrelay demo: Ctrl-C stops it");
        }
        wait_for_signal().await;
        Ok::<bool, cxrelay::service::StartError>(service.shutdown().await)
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Where file sinks write, for the demo's banner.
fn sink_paths(c: &Config) -> Vec<String> {
    c.listener
        .iter()
        .filter_map(|l| l.sink.spec.builder().output_dir().map(|p| p.display().to_string()))
        .collect()
}

#[cfg(feature = "emulator")]
fn emulator(path: &std::path::Path, listen: &str, seed: Option<u64>) -> ExitCode {
    let mut settings = if path.exists() {
        match load_or_report(path) {
            Some(l) => {
                telemetry::init_logging(l.config.service.log_format, &l.config.service.log_level);
                l.config.emulator.unwrap_or_default()
            }
            None => return ExitCode::from(2),
        }
    } else {
        telemetry::init_logging(config::LogFormat::Human, "info");
        cxrelay::emulator::EmulatorSettings::default()
    };
    if let Some(seed) = seed {
        settings.seed = seed;
    }
    let client = settings.client_id.clone();
    let system = actix::System::new();
    let result = system.block_on(async move {
        let handle = cxrelay::emulator::start(settings, listen).await?;
        eprintln!(
            "cxrelay emulator: listening on {} (OAuth client `{client}`); point cxrelay at it with\n  [genesys]\n  environment = \"emulator\"\n  api_url = \"{}\"",
            handle.url(),
            handle.url()
        );
        wait_for_signal().await;
        handle.stop().await;
        Ok::<(), std::io::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot run the emulator on {listen}: {e}");
            ExitCode::from(2)
        }
    }
}

/// Waits for SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
