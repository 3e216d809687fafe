//! `cxrelay check`: every problem of a config at once, its secrets, what
//! it will run (with the paths it will use), and what looks wrong without
//! being an error.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use cxrelay::config::{self, Config, Loaded};
use cxrelay_actors::Pattern;

/// Arguments of `cxrelay check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Do not read secrets: list the environment variables that must be
    /// set where cxrelay will run (for checking a config on a machine
    /// without the production secrets, e.g. in CI).
    #[arg(long)]
    offline: bool,
}

/// Runs `cxrelay check`.
pub fn check(path: &Path, args: &CheckArgs) -> ExitCode {
    let env = |var: &str| std::env::var(var).ok();
    let loaded = match config::check_file(path, (!args.offline).then_some(&env as &config::Env)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: invalid configuration\n{e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", topology(&loaded.config));
    print!("{}", secrets(&loaded, args.offline));
    let warnings = warnings(&loaded.config);
    for w in &warnings {
        println!("warning: {w}");
    }
    match warnings.len() {
        0 => println!("{}: OK", loaded.file),
        n => println!("{}: OK, with {n} warning(s)", loaded.file),
    }
    ExitCode::SUCCESS
}

/// Topics listed per source before "and N more".
const TOPICS_SHOWN: usize = 6;

/// What the config will run, with the paths it will use.
pub fn topology(c: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "data_dir: {} (store {})",
        c.service.data_dir.display(),
        c.service.data_dir.join(cxrelay::store::db::FILE_NAME).display()
    );
    let journal = if let Some(k) = &c.cluster {
        format!(
            "the NATS JetStream stream `{}` (the embedded journal is not used; dead letters stay in the store above)",
            k.stream
        )
    } else if c.service.journal {
        format!(
            "every event journaled before it is routed (at most {} bytes held)",
            c.service.max_journal_bytes
        )
    } else {
        "OFF: events go straight to listeners; a crash loses what is queued".to_string()
    };
    let _ = writeln!(out, "journal: {journal}");
    if let Some(k) = &c.cluster {
        out.push_str(&cluster(k));
    }
    let admin = match &c.http.admin_token_env {
        Some(var) => format!("admin API with the token in ${var}"),
        None => "admin API disabled".to_string(),
    };
    let _ = writeln!(out, "http: {} (health, metrics, status; {admin})", c.http.listen);
    if let Some(g) = &c.genesys {
        let place = if g.runs_emulator_in_process() {
            "the bundled emulator, run in-process".to_string()
        } else if let Some(api) = &g.api_url {
            format!("{} at {api}", g.environment)
        } else {
            g.environment.clone()
        };
        let _ = writeln!(out, "genesys: {place} ({} requests/min shared)", g.requests_per_minute);
    }
    let _ = writeln!(out, "sources:");
    for s in &c.source {
        let state = if s.enabled { "" } else { " [disabled]" };
        let b = s.spec.builder();
        let _ = writeln!(out, "  {} ({}){state}: {}", s.name, s.kind(), b.describe());
        let topics = b.produces(&s.name);
        let mut shown: Vec<&str> = topics.iter().take(TOPICS_SHOWN).map(String::as_str).collect();
        let more = topics.len().saturating_sub(TOPICS_SHOWN);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        if shown == [">"] {
            shown = vec!["any topic its senders name"];
        }
        let _ = writeln!(out, "    publishes: {}{tail}", shown.join(", "));
    }
    let _ = writeln!(out, "listeners:");
    for l in &c.listener {
        let _ = writeln!(out, "  {} <- {}", l.name, l.topics.join(", "));
        if let Some(t) = &l.transform {
            let _ = writeln!(out, "    transform: {}", transform(t));
        }
        let common = &l.sink.common;
        let retries = match common.max_retries {
            Some(n) => format!("dead-lettered after {n} retries"),
            None => "retried until written".to_string(),
        };
        let _ = writeln!(
            out,
            "    sink: {}; batches of {} events or {}, {retries}",
            l.sink.spec.builder().describe(),
            common.batch_events,
            humantime::format_duration(common.batch_interval)
        );
        let _ = writeln!(
            out,
            "    queue: {} events, when full: {}",
            l.mailbox,
            l.when_full.as_str()
        );
    }
    out
}

/// What `[cluster]` makes of this node.
fn cluster(k: &cxrelay::cluster::ClusterConfig) -> String {
    use cxrelay::cluster::Role;
    let mut out = String::new();
    let servers: Vec<String> = k.nats_urls.iter().map(|u| cxrelay::urls::redacted(u)).collect();
    let roles: Vec<&str> = k.roles.iter().map(|r| r.as_str()).collect();
    let _ = writeln!(
        out,
        "cluster: node `{}` ({}) on NATS {}",
        k.node_name(),
        roles.join(" + "),
        servers.join(", ")
    );
    let _ = writeln!(
        out,
        "  stream `{}`: {} partition(s), {} replica(s), at most {} bytes in flight; up to {} unacknowledged events per partition",
        k.stream, k.partitions, k.replicas, k.max_bytes, k.max_ack_pending
    );
    let d = humantime::format_duration;
    let _ = writeln!(
        out,
        "  redelivery after {}, partitions move after {}, a node is gone after {}, a source lease after {}",
        d(k.ack_wait),
        d(k.takeover_after),
        d(k.node_ttl),
        d(k.lease_ttl)
    );
    if k.roles.contains(&Role::Ingest) {
        let _ = writeln!(
            out,
            "  sources: webhooks on this node; every other source on the one node holding its lease"
        );
    } else {
        let _ = writeln!(out, "  sources: none on this node (no `ingest` role)");
    }
    if !k.roles.contains(&Role::Process) {
        let _ = writeln!(out, "  listeners: none on this node (no `process` role)");
    }
    out
}

fn transform(t: &config::ListenerTransform) -> String {
    let mut parts = Vec::new();
    if t.flatten {
        parts.push("flatten".to_string());
    }
    if t.timestamps {
        parts.push("ISO timestamps".to_string());
    }
    if !t.mask.is_empty() {
        parts.push(format!("mask {} field(s) ({:?})", t.mask.len(), t.mask_mode).to_lowercase());
    }
    if !t.rename.is_empty() {
        parts.push(format!("rename {}", t.rename.len()));
    }
    if !t.drop.is_empty() {
        parts.push(format!("drop {}", t.drop.join(", ")));
    }
    if !t.select.is_empty() {
        parts.push(format!("keep only {}", t.select.join(", ")));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The environment variables the config reads, and whether they are set
/// (never their values).
fn secrets(loaded: &Loaded, offline: bool) -> String {
    let named = config::named_secrets(&loaded.config);
    if named.is_empty() {
        return "secrets: none\n".into();
    }
    let mut out = if offline {
        "secrets (not read: --offline; set these where cxrelay runs):\n".to_string()
    } else {
        "secrets:\n".to_string()
    };
    let width = named.iter().map(|(_, n)| n.var.len()).max().unwrap_or(0);
    for (_, n) in named {
        let need = if n.required { "required" } else { "optional" };
        let state = if offline {
            String::new()
        } else if std::env::var(&n.var).is_ok_and(|v| !v.is_empty()) {
            ", set".to_string()
        } else {
            ", not set".to_string()
        };
        let _ = writeln!(out, "  {:<width$}  {need}{state} ({})", n.var, n.key);
    }
    out
}

/// What is allowed but probably not meant: listener patterns that match
/// nothing any source publishes.
pub fn warnings(c: &Config) -> Vec<String> {
    let published = |enabled: bool| -> Vec<(String, Pattern)> {
        c.source
            .iter()
            .filter(|s| s.enabled == enabled)
            .flat_map(|s| {
                let name = s.name.clone();
                s.spec
                    .builder()
                    .produces(&s.name)
                    .into_iter()
                    .filter_map(move |t| Pattern::parse(&t).ok().map(|p| (name.clone(), p)))
            })
            .collect()
    };
    let (running, disabled) = (published(true), published(false));
    let mut out = Vec::new();
    for l in &c.listener {
        for t in &l.topics {
            let Ok(p) = Pattern::parse(t) else {
                continue;
            };
            if running.iter().any(|(_, q)| p.overlaps(q)) {
                continue;
            }
            let off: Vec<&str> = disabled
                .iter()
                .filter(|(_, q)| p.overlaps(q))
                .map(|(n, _)| n.as_str())
                .collect();
            let hint = if off.is_empty() {
                String::new()
            } else {
                format!(" (only the disabled source(s) {} would)", off.join(", "))
            };
            out.push(format!(
                "listener `{}`: `{t}` matches no topic any source publishes{hint}",
                l.name
            ));
        }
    }
    out
}
