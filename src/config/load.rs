//! Reading a config file: the sections through serde, then each
//! `[[source]]` and listener sink by its `kind`, so each table is read by
//! its own kind's typed config with every span kept. Every problem of the
//! file is reported at once, with its file, line and key.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::locate::{KeyPath, Locator, Step};
use super::problem::{ConfigError, Problem};
use super::{checks, keys_of, Config, ListenerConfig, ListenerKeys, Sections, SinkConfig, SourceConfig};
use crate::sinks::{SinkCommon, SinkSpec};
use crate::sources::SourceSpec;

/// A validated config with the text it came from (for locating problems
/// found later, such as missing secrets).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The file it came from.
    pub file: String,
    text: String,
}

impl Loaded {
    /// Parses and validates config `text`, reporting problems against `file`.
    pub fn from_str(text: &str, file: &str) -> Result<Self, ConfigError> {
        Ok(Loaded {
            config: load_str(text, file)?,
            file: file.to_string(),
            text: text.to_string(),
        })
    }

    /// Reads the secrets the config names from the environment.
    pub fn secrets(&self) -> Result<super::Secrets, ConfigError> {
        super::resolve_secrets(&self.config, &self.text, &self.file)
    }
}

/// Reads and validates the config file at `path`; its relative paths are
/// taken relative to the file's directory.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let mut loaded = Loaded::from_str(&text, &file)?;
    loaded.config.resolve_paths(&base_dir(path));
    Ok(loaded)
}

/// The directory relative paths in the config file at `path` are taken
/// from, absolute (so that what `cxrelay check` shows is unambiguous).
pub fn base_dir(path: &Path) -> std::path::PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Parses and validates config `text`, reporting problems against `file`.
pub fn load_str(text: &str, file: &str) -> Result<Config, ConfigError> {
    match read_str(text) {
        (Some(config), problems) if problems.is_empty() => Ok(config),
        (_, problems) => Err(invalid(file, problems)),
    }
}

/// Where secrets are looked up: an environment variable's value by name.
pub type Env = dyn Fn(&str) -> Option<String>;

/// Checks the config file at `path` as `cxrelay check` does: every problem
/// of the file and, with `env`, every secret it names that `env` lacks,
/// all at once. Without `env` (offline) secrets are not looked at.
pub fn check_file(path: &Path, env: Option<&Env>) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let (read, mut problems) = read_document(&text);
    let Some(read) = read else {
        return Err(invalid(&file, problems));
    };
    let mut config = read.config;
    // Secrets are located by entry: only when every entry could be read
    // do the config's positions match the file's.
    if let (Some(env), true) = (env, read.complete) {
        if let Err(ConfigError::Invalid { problems: missing, .. }) =
            super::resolve_secrets_with(&config, &text, &file, env)
        {
            problems.extend(missing);
        }
    }
    if !problems.is_empty() {
        return Err(invalid(&file, problems));
    }
    config.resolve_paths(&base_dir(path));
    Ok(Loaded { config, file, text })
}

/// Reads config `text` as far as it can be read: the config (without the
/// entries that could not be read; `None` for a syntax error) and every
/// problem found, so that all of them are reported at once.
pub(super) fn read_str(text: &str) -> (Option<Config>, Vec<Problem>) {
    let (read, problems) = read_document(text);
    (read.map(|r| r.config), problems)
}

/// [`read_str`], with what is known of the entries read.
fn read_document(text: &str) -> (Option<Read>, Vec<Problem>) {
    let locator = Locator::new(text);
    let mut r = Reader {
        locator: &locator,
        problems: Vec::new(),
        refused: Vec::new(),
    };
    let read = match DeTable::parse(text) {
        Ok(doc) => r.document(doc),
        Err(e) => {
            r.serde_error(&KeyPath::root(), &e);
            return (None, r.problems);
        }
    };
    // Whatever could be read is checked too, so every problem of the file
    // is reported at once.
    checks::check(
        &read.config,
        &read.source_index,
        &read.listener_index,
        &mut |path, message| r.checked(&path, message),
    );
    (Some(read), r.problems)
}

/// The error for `problems`, in file order.
pub(super) fn invalid(file: &str, mut problems: Vec<Problem>) -> ConfigError {
    problems.sort_by_key(|p| (p.line.unwrap_or(0), p.col.unwrap_or(0)));
    problems.dedup();
    ConfigError::Invalid {
        file: file.to_string(),
        problems,
    }
}

/// What could be read of a document: the config (without the entries that
/// could not be read) and the file position of each entry kept.
struct Read {
    config: Config,
    source_index: Vec<usize>,
    listener_index: Vec<usize>,
    /// Whether every `[[source]]` and `[[listener]]` could be read.
    complete: bool,
}

/// Reads the document table by table, collecting problems.
pub(super) struct Reader<'a> {
    locator: &'a Locator<'a>,
    problems: Vec<Problem>,
    /// Keys whose values were refused (and left out to read the rest): a
    /// later check finding them missing says nothing new.
    refused: Vec<KeyPath>,
}

impl<'a> Reader<'a> {
    /// Records a problem found by the checks, unless its key's value was
    /// already refused.
    fn checked(&mut self, path: &KeyPath, message: String) {
        if !self.refused.contains(path) {
            self.at(path, message);
        }
    }

    /// Records a problem with `path` (located at the key, or at the nearest
    /// table that exists when the key is missing).
    pub(super) fn at(&mut self, path: &KeyPath, message: impl Into<String>) {
        let (line, col) = self.locate(path);
        self.problems.push(Problem {
            line,
            col,
            key: (!path.0.is_empty()).then(|| path.to_string()),
            message: message.into(),
        });
    }

    fn locate(&self, path: &KeyPath) -> (Option<usize>, Option<usize>) {
        let mut p = path.clone();
        loop {
            if let Some(span) = self.locator.span_of(&p) {
                let (l, c) = self.locator.line_col(span.start);
                return (Some(l), Some(c));
            }
            if p.0.pop().is_none() {
                return (None, None);
            }
        }
    }

    /// Records a serde error of the table at `base`, located by its span
    /// (a value's key is found from where the value is); answers the key's
    /// path and whether the key is missing (rather than wrong).
    fn serde_error(&mut self, base: &KeyPath, e: &toml::de::Error) -> (KeyPath, bool) {
        let message = e.message().trim().to_string();
        let named = |prefix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_string)
        };
        let unknown = named("unknown field `");
        let missing = named("missing field `");
        let is_missing = missing.is_some();
        let (path, span) = match (&unknown, missing) {
            (Some(k), _) => {
                let direct = base.key(k);
                match self.locator.span_of(&direct) {
                    Some(s) => (direct, Some(s)),
                    // toml reports an unknown key of a nested table at the
                    // table: find the key itself, and the table it is in.
                    None => match e.span().and_then(|from| self.locator.find_key_after(from.start, k)) {
                        Some(found) => {
                            let table = self.locator.key_at(found.start).unwrap_or_else(|| base.clone());
                            (table.key(k), Some(found))
                        }
                        None => (direct, e.span()),
                    },
                }
            }
            // serde reports a missing key at the table that lacks it.
            (None, Some(k)) => {
                let table = e
                    .span()
                    .and_then(|s| self.locator.key_at(s.start))
                    .filter(|t| t.0.len() >= base.0.len())
                    .unwrap_or_else(|| base.clone());
                let span = self.locator.span_of(&table).or(e.span());
                (table.key(&k), span)
            }
            (None, None) => {
                let path = e.span().and_then(|s| self.locator.key_at(s.start));
                (path.unwrap_or_else(|| base.clone()), e.span())
            }
        };
        let (line, col) = match span {
            Some(s) => {
                let (l, c) = self.locator.line_col(s.start);
                (Some(l), Some(c))
            }
            None => self.locate(&path),
        };
        self.problems.push(Problem {
            line,
            col,
            key: (!path.0.is_empty()).then(|| path.to_string()),
            message,
        });
        (path, is_missing)
    }

    /// Deserializes a table with `parse`; when a value is refused, reports
    /// it, leaves it out and tries again, so that every wrong value of the
    /// table is reported at once and the rest is still read and checked.
    fn read_with<T>(
        &mut self,
        span: Range<usize>,
        mut table: DeTable<'_>,
        base: &KeyPath,
        parse: impl Fn(ValueDeserializer<'_>) -> Result<T, toml::de::Error>,
    ) -> Option<T> {
        loop {
            let de = ValueDeserializer::from(Spanned::new(span.clone(), DeValue::Table(table.clone())));
            match parse(de) {
                Ok(v) => return Some(v),
                Err(e) => {
                    let (path, missing) = self.serde_error(base, &e);
                    let rel = path.0.strip_prefix(base.0.as_slice())?;
                    if missing || self.refused.contains(&path) || !remove_at(&mut table, rel) {
                        return None;
                    }
                    self.refused.push(path);
                }
            }
        }
    }

    /// Refuses every key of `table` not in `allowed` (all at once), naming
    /// what `what` takes, and takes them out so the rest can still be read
    /// and checked.
    fn drop_unknown_keys(&mut self, table: &mut DeTable<'_>, allowed: &[&str], base: &KeyPath, what: &str) {
        let unknown: Vec<String> = table
            .iter()
            .map(|(k, _)| k.get_ref().to_string())
            .filter(|k| !allowed.contains(&k.as_str()))
            .collect();
        for key in unknown {
            let list: Vec<String> = allowed.iter().map(|k| format!("`{k}`")).collect();
            self.at(
                &base.key(&key),
                format!("unknown field `{key}`; {what} takes {}", list.join(", ")),
            );
            table.remove(key.as_str());
        }
    }

    /// Deserializes `T` from a table, keeping every span.
    fn read<T: for<'de> Deserialize<'de>>(
        &mut self,
        span: Range<usize>,
        table: DeTable<'_>,
        base: &KeyPath,
    ) -> Option<T> {
        self.read_with(span, table, base, |de| T::deserialize(de))
    }

    /// Reads section `name` of the document on its own: a wrong value in
    /// one section leaves the others as written (not at their defaults,
    /// which would make checks of other tables report what is not so).
    fn section<T: for<'de> Deserialize<'de>>(&mut self, root: &mut DeTable<'_>, name: &str) -> Option<T> {
        let value = root.remove(name)?;
        let span = value.span();
        let path = KeyPath::root().key(name);
        match value.into_inner() {
            DeValue::Table(t) => self.read(span, t, &path),
            _ => {
                self.at(&path, format!("must be a table (`[{name}]`)"));
                None
            }
        }
    }

    fn document(&mut self, doc: Spanned<DeTable<'_>>) -> Read {
        let mut root = doc.into_inner();
        let root_path = KeyPath::root();
        let sources = root.remove("source");
        let listeners = root.remove("listener");
        let mut top = keys_of::<Sections>().to_vec();
        top.extend(["source", "listener"]);
        self.drop_unknown_keys(&mut root, &top, &root_path, "the file");
        for (name, keys) in [
            ("service", keys_of::<super::ServiceConfig>()),
            ("http", keys_of::<super::HttpConfig>()),
            ("genesys", keys_of::<super::GenesysConfig>()),
            ("transform", keys_of::<super::TransformConfig>()),
            ("cluster", keys_of::<crate::cluster::ClusterConfig>()),
        ] {
            if let Some(DeValue::Table(t)) = root.get_mut(name).map(|v| v.get_mut()) {
                self.drop_unknown_keys(t, keys, &root_path.key(name), &format!("`[{name}]`"));
            }
        }
        let sections = Sections {
            service: self.section(&mut root, "service").unwrap_or_default(),
            http: self.section(&mut root, "http").unwrap_or_default(),
            genesys: self.section(&mut root, "genesys"),
            emulator: self.section(&mut root, "emulator"),
            transform: self.section(&mut root, "transform").unwrap_or_default(),
            cluster: self.section(&mut root, "cluster"),
        };
        let mut read = Read {
            config: Config {
                service: sections.service,
                http: sections.http,
                genesys: sections.genesys,
                emulator: sections.emulator,
                transform: sections.transform,
                cluster: sections.cluster,
                source: Vec::new(),
                listener: Vec::new(),
            },
            source_index: Vec::new(),
            listener_index: Vec::new(),
            complete: true,
        };
        let count = |v: &Option<Spanned<DeValue<'_>>>| match v.as_ref().map(|v| v.get_ref()) {
            Some(DeValue::Array(a)) => a.len(),
            Some(_) => 1,
            None => 0,
        };
        let entries = count(&sources) + count(&listeners);
        for (i, span, t) in self.entries(sources, "source") {
            if let Some(s) = self.source(i, span, t) {
                read.config.source.push(s);
                read.source_index.push(i);
            }
        }
        for (i, span, t) in self.entries(listeners, "listener") {
            if let Some(l) = self.listener(i, span, t) {
                read.config.listener.push(l);
                read.listener_index.push(i);
            }
        }
        read.complete = read.source_index.len() + read.listener_index.len() == entries;
        read
    }

    /// The tables of an array of tables (`[[name]]`).
    fn entries<'i>(
        &mut self,
        value: Option<Spanned<DeValue<'i>>>,
        name: &str,
    ) -> Vec<(usize, Range<usize>, DeTable<'i>)> {
        let Some(value) = value else {
            return Vec::new();
        };
        let path = KeyPath::root().key(name);
        let DeValue::Array(items) = value.into_inner() else {
            self.at(&path, format!("must be an array of tables (`[[{name}]]`)"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let span = item.span();
            match item.into_inner() {
                DeValue::Table(t) => out.push((i, span, t)),
                _ => self.at(&path.index(i), format!("must be a table (`[[{name}]]`)")),
            }
        }
        out
    }

    /// A string key taken out of `table` (`None` and a problem when it is
    /// missing or not a string and `required`).
    fn take_str(&mut self, table: &mut DeTable<'_>, key: &str, base: &KeyPath, required: &str) -> Option<String> {
        match table.remove(key).map(|v| v.into_inner()) {
            Some(DeValue::String(s)) => Some(s.into_owned()),
            Some(_) => {
                self.at(&base.key(key), "must be a string");
                None
            }
            None => {
                self.at(base, format!("missing field `{key}` ({required})"));
                None
            }
        }
    }

    fn source(&mut self, i: usize, span: Range<usize>, mut t: DeTable<'_>) -> Option<SourceConfig> {
        let path = KeyPath::root().key("source").index(i);
        let name = self.take_str(&mut t, "name", &path, "every source has a unique name");
        let enabled = match t.remove("enabled").map(|v| v.into_inner()) {
            None => true,
            Some(DeValue::Boolean(b)) => b,
            Some(_) => {
                self.at(&path.key("enabled"), "must be true or false");
                true
            }
        };
        let kinds = list(SourceSpec::KINDS);
        let kind = self.take_str(&mut t, "kind", &path, &format!("one of {kinds}"))?;
        let Some(keys) = SourceSpec::keys_of(&kind) else {
            self.at(
                &path.key("kind"),
                format!("unknown source kind `{kind}`; expected one of {kinds}"),
            );
            return None;
        };
        let mut allowed = super::SOURCE_COMMON_KEYS.to_vec();
        allowed.extend_from_slice(keys);
        self.drop_unknown_keys(&mut t, &allowed, &path, &format!("a `{kind}` source"));
        let spec = self.read_with(span, t, &path, |de| {
            SourceSpec::parse(&kind, de).unwrap_or_else(|| Err(serde::de::Error::custom("unknown kind")))
        })?;
        Some(SourceConfig {
            name: name?,
            enabled,
            spec,
        })
    }

    fn listener(&mut self, i: usize, span: Range<usize>, mut t: DeTable<'_>) -> Option<ListenerConfig> {
        let path = KeyPath::root().key("listener").index(i);
        let sink = t.remove("sink");
        self.drop_unknown_keys(&mut t, &ListenerKeys::keys(), &path, "a listener");
        if let Some(DeValue::Table(tr)) = t.get_mut("transform").map(|v| v.get_mut()) {
            let keys = keys_of::<super::ListenerTransform>();
            self.drop_unknown_keys(tr, keys, &path.key("transform"), "a listener's `transform`");
        }
        let sink = match sink {
            None => {
                self.at(&path, "missing field `sink` (where the listener's events go)");
                None
            }
            Some(s) => self.sink(&path.key("sink"), s),
        };
        let keys: Option<ListenerKeys> = self.read(span, t, &path);
        Some(keys?.with_sink(sink?))
    }

    fn sink(&mut self, path: &KeyPath, value: Spanned<DeValue<'_>>) -> Option<SinkConfig> {
        let span = value.span();
        let DeValue::Table(mut t) = value.into_inner() else {
            self.at(
                path,
                "must be a table, e.g. `sink = { kind = \"file\", path = \"out\" }`",
            );
            return None;
        };
        let kinds = list(SinkSpec::KINDS);
        let kind = self.take_str(&mut t, "kind", path, &format!("one of {kinds}"))?;
        let Some(keys) = SinkSpec::keys_of(&kind) else {
            self.at(
                &path.key("kind"),
                format!("unknown sink kind `{kind}`; expected one of {kinds}"),
            );
            return None;
        };
        let common_keys = keys_of::<SinkCommon>();
        let mut allowed = vec!["kind"];
        allowed.extend_from_slice(common_keys);
        allowed.extend_from_slice(keys);
        self.drop_unknown_keys(&mut t, &allowed, path, &format!("a `{kind}` sink"));
        let mut common = DeTable::new();
        for key in common_keys {
            if let Some((k, v)) = t.remove_entry(*key) {
                common.insert(k, v);
            }
        }
        let written: Vec<String> = common.keys().map(|k| k.get_ref().to_string()).collect();
        let common: Option<SinkCommon> = self.read(span.clone(), common, path);
        let spec = self.read_with(span, t, path, |de| {
            SinkSpec::parse(&kind, de).unwrap_or_else(|| Err(serde::de::Error::custom("unknown kind")))
        });
        let spec = spec?;
        let common = common?.with_kind_defaults(spec.builder().default_batching(), |k| written.iter().any(|w| w == k));
        Some(SinkConfig { common, spec })
    }
}

/// Takes the value at `rel` out of `table` (a whole array when the path
/// goes into one); answers whether there was one.
fn remove_at(table: &mut DeTable<'_>, rel: &[Step]) -> bool {
    match rel {
        [Step::Key(k)] | [Step::Key(k), Step::Index(_), ..] => table.remove(k.as_str()).is_some(),
        [Step::Key(k), rest @ ..] => match table.get_mut(k.as_str()).map(|v| v.get_mut()) {
            Some(DeValue::Table(inner)) => remove_at(inner, rest),
            _ => table.remove(k.as_str()).is_some(),
        },
        _ => false,
    }
}

fn list(kinds: &[&str]) -> String {
    kinds.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
}
