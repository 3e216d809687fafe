//! `cxrelay dlq`: dead letters, on the store file or through the admin API
//! of the cxrelay holding it.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use cxrelay::dlq::{self, DlqCommand, Filter};

use super::load_or_report;

/// Arguments of `cxrelay dlq`.
#[derive(Args, Debug)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCmd,
    /// Admin API of a running cxrelay (default: the store file, or the
    /// configured HTTP address when a running cxrelay holds the store).
    #[arg(long, global = true)]
    url: Option<String>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
}

/// Which dead letters, besides ids and dates.
#[derive(Args, Debug, Clone)]
struct FilterArgs {
    /// Only those meant for this listener.
    #[arg(long)]
    listener: Option<String>,
    /// Only those from this source.
    #[arg(long)]
    source: Option<String>,
}

impl From<FilterArgs> for Filter {
    fn from(f: FilterArgs) -> Self {
        Filter {
            listener: f.listener,
            source: f.source,
        }
    }
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
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Show one dead letter whole: payload, position, error, everything.
    Show {
        /// Its id (from `dlq list`).
        #[arg(long)]
        id: u64,
    },
    /// Send dead letters back to the listener they were meant for.
    Replay {
        /// These ids.
        #[arg(long = "id", conflicts_with_all = ["all", "listener", "source"])]
        ids: Vec<u64>,
        /// All of them (or all that --listener/--source select).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        filter: FilterArgs,
        /// Say what would be sent back, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove dead letters recorded before a time.
    Purge {
        /// The cut-off: a duration before now (7d, 36h), a date
        /// (2024-05-01, midnight UTC) or an RFC 3339 time.
        #[arg(long)]
        before: String,
        #[command(flatten)]
        filter: FilterArgs,
        /// Say what would be removed, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs a `dlq` command.
pub fn dlq(path: &Path, args: DlqArgs) -> ExitCode {
    let Some(loaded) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    let cmd = match args.command {
        DlqCmd::List { after, limit, filter } => DlqCommand::List {
            after,
            limit,
            filter: filter.into(),
        },
        DlqCmd::Show { id } => DlqCommand::Show(id),
        DlqCmd::Replay {
            ids,
            all,
            filter,
            dry_run,
        } => {
            let filter = Filter::from(filter);
            if ids.is_empty() && !all && filter.is_empty() {
                eprintln!("error: say which dead letters: --id N (repeatable), --all, --listener L or --source S");
                return ExitCode::from(2);
            }
            DlqCommand::Replay {
                ids: (!ids.is_empty()).then_some(ids),
                filter,
                dry_run,
            }
        }
        DlqCmd::Purge {
            before,
            filter,
            dry_run,
        } => match dlq::parse_time(&before) {
            Ok(before_ms) => DlqCommand::Purge {
                before_ms,
                filter: filter.into(),
                dry_run,
            },
            Err(e) => {
                eprintln!("error: --before: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match dlq::run(&loaded.config, args.url.as_deref(), &cmd) {
        Ok(out) => {
            super::print_out(&dlq::render(&out, args.json));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
