//! The checks that span components or sections: addresses and limits of
//! the sections, unique names, HTTP paths, sources that need `[genesys]`,
//! the OAuth client's shared channel budget; and each component's own
//! checks, keyed under its table.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::locate::KeyPath;
use super::{Config, KeyProblem};
use crate::sources::notifications::plan;

/// Paths the HTTP server serves itself (a source may not take them).
pub const RESERVED_PATHS: &[&str] = &["/", "/health", "/metrics", "/status", "/admin"];

/// Runs every check of a parsed config, reporting each problem with its
/// key; `source_index[k]` is the position in the file of `c.source[k]`
/// (entries that could not be read are left out), likewise for listeners.
pub(super) fn check(
    c: &Config,
    source_index: &[usize],
    listener_index: &[usize],
    problem: &mut dyn FnMut(KeyPath, String),
) {
    let mut report = |path: KeyPath, message: &str| problem(path, message.to_string());
    let root = KeyPath::root();
    sections(c, &mut |key: &[&str], m: String| {
        let path = key.iter().fold(root.clone(), |p, k| p.key(k));
        report(path, &m)
    });
    let mut names: HashMap<&str, KeyPath> = HashMap::new();
    let mut paths: HashMap<&str, KeyPath> = HashMap::new();
    let mut channels = 0;
    for (&i, s) in source_index.iter().zip(&c.source) {
        let at = root.key("source").index(i);
        unique(&mut names, &s.name, at.key("name"), &mut report);
        let builder = s.spec.builder();
        keyed(&at, builder.check(&s.name), &mut report);
        if let Some(path) = builder.http_path() {
            let reserved = RESERVED_PATHS
                .iter()
                .any(|r| path == *r || (*r != "/" && path.starts_with(&format!("{r}/"))));
            if reserved {
                report(at.key("path"), &format!("`{path}` is reserved by cxrelay"));
            }
            match paths.get(path) {
                Some(first) => report(at.key("path"), &format!("path `{path}` is already used by `{first}`")),
                None => {
                    paths.insert(path, at.key("path"));
                }
            }
        }
        if !s.enabled {
            continue;
        }
        // In cluster mode the stream is the durability point.
        if builder.acknowledges_upstream() && !c.service.journal && c.cluster.is_none() {
            report(
                at.key("kind"),
                &format!(
                    "a `{}` source acknowledges what it receives, which must mean committed: it needs `[service] journal = true`",
                    s.kind()
                ),
            );
        }
        if builder.needs_genesys() && c.genesys.is_none() {
            report(
                at.key("kind"),
                &format!(
                    "a `{}` source like this one calls the Genesys API: add a `[genesys]` section",
                    s.kind()
                ),
            );
        }
        // Every notifications source shares the OAuth client's channels.
        let needed = builder.channels_needed();
        channels += needed;
        if needed > 0 && channels > plan::MAX_CHANNELS {
            report(
                at.key("topics"),
                &format!(
                    "the notifications sources up to this one need {channels} channels, but one OAuth client may have at most {} (a 21st evicts the oldest); subscribe to fewer topics",
                    plan::MAX_CHANNELS
                ),
            );
        }
    }
    for (&i, l) in listener_index.iter().zip(&c.listener) {
        let at = root.key("listener").index(i);
        unique(&mut names, &l.name, at.key("name"), &mut report);
        keyed(&at, l.check(), &mut report);
        keyed(&at.key("sink"), l.sink.common.check(), &mut report);
        keyed(&at.key("sink"), l.sink.spec.builder().check(), &mut report);
    }
}

/// The sections' own limits.
fn sections(c: &Config, problem: &mut dyn FnMut(&[&str], String)) {
    if c.http.listen.parse::<SocketAddr>().is_err() {
        problem(
            &["http", "listen"],
            format!("`{}` is not an address like 127.0.0.1:8080", c.http.listen),
        );
    }
    if c.http.workers == 0 {
        problem(&["http", "workers"], "must be at least 1".into());
    }
    if c.service.max_journal_bytes == 0 {
        problem(&["service", "max_journal_bytes"], "must be at least 1".into());
    }
    if c.http.max_connections == 0 {
        problem(&["http", "max_connections"], "must be at least 1".into());
    }
    if c.transform.workers == 0 {
        problem(&["transform", "workers"], "must be at least 1".into());
    }
    if c.transform.chunk_size == 0 {
        problem(&["transform", "chunk_size"], "must be at least 1".into());
    }
    if let Some(cluster) = &c.cluster {
        for p in cluster.check() {
            problem(&["cluster", &p.key], p.message);
        }
    }
    if let Some(g) = &c.genesys {
        if g.environment.trim().is_empty() {
            problem(
                &["genesys", "environment"],
                "must be a region domain or \"emulator\"".into(),
            );
        } else if !g.is_emulator() && (g.api_url.is_none() || g.login_url.is_none()) {
            // Hosts are derived from it: `api.<domain>` and `login.<domain>`.
            if let Err(why) = crate::genesys::hosts::region_domain(&g.environment) {
                problem(&["genesys", "environment"], why);
            }
        }
        if g.requests_per_minute == 0 {
            problem(&["genesys", "requests_per_minute"], "must be at least 1".into());
        }
        for (key, url) in [("api_url", &g.api_url), ("login_url", &g.login_url)] {
            if let Some(u) = url
                .as_ref()
                .filter(|u| !(u.starts_with("http://") || u.starts_with("https://")))
            {
                problem(&["genesys", key], format!("`{u}` is not an http:// or https:// URL"));
            }
        }
    }
}

fn unique<'c>(
    names: &mut HashMap<&'c str, KeyPath>,
    name: &'c str,
    at: KeyPath,
    report: &mut impl FnMut(KeyPath, &str),
) {
    if name.trim().is_empty() {
        report(at, "must not be empty");
    } else if let Some(first) = names.get(name) {
        let first = first.to_string();
        report(at, &format!("name `{name}` is already used by `{first}`"));
    } else {
        names.insert(name, at);
    }
}

/// A component's problems, keyed under its table.
fn keyed(base: &KeyPath, problems: Vec<KeyProblem>, report: &mut impl FnMut(KeyPath, &str)) {
    for p in problems {
        let path = p
            .key
            .split('.')
            .filter(|k| !k.is_empty())
            .fold(base.clone(), |path, k| path.key(k));
        report(path, &p.message);
    }
}
