//! What is wrong with a config file, located by file, line and key.

use std::fmt;

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub col: Option<usize>,
    /// The key concerned, e.g. `listener[0].sink.path`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read and is wrong.
    #[error("{}", render(file, problems))]
    Invalid {
        /// The file.
        file: String,
        /// Everything that is wrong, in file order.
        problems: Vec<Problem>,
    },
}

fn render(file: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            let mut s = file.to_string();
            if let Some(line) = p.line {
                s.push_str(&format!(":{line}"));
                if let Some(col) = p.col {
                    s.push_str(&format!(":{col}"));
                }
            }
            s.push_str(": ");
            if let Some(key) = &p.key {
                s.push_str(&format!("`{key}`: "));
            }
            s.push_str(&p.message);
            s
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render("config", std::slice::from_ref(self)))
    }
}

/// A problem a component finds in its own table, keyed relative to the
/// table (`topics`, `ids.queue`; empty for the table itself). The loader
/// turns it into a [`Problem`] with the full key, file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProblem {
    /// The key, relative to the component's table.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Collects a component's problems while it converts its config.
#[derive(Debug, Default)]
pub struct KeyProblems(Vec<KeyProblem>);

impl KeyProblems {
    /// No problem yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with `key` (relative to the table).
    pub fn at(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(KeyProblem {
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Records a problem unless `ok`.
    pub fn check(&mut self, ok: bool, key: &str, message: impl Into<String>) {
        if !ok {
            self.at(key, message);
        }
    }

    /// Takes the problems of a nested conversion.
    pub fn extend(&mut self, other: Vec<KeyProblem>) {
        self.0.extend(other);
    }

    /// `value` when nothing was recorded, else the problems.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<KeyProblem>> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self.0)
        }
    }

    /// The problems recorded so far.
    pub fn into_vec(self) -> Vec<KeyProblem> {
        self.0
    }
}

/// A component's config together with the name it was given: what the
/// conversion into the component's runtime settings starts from
/// (`XSettings::try_from(Named { name, config })`).
#[derive(Debug, Clone, Copy)]
pub struct Named<'a, C> {
    /// The component's unique name.
    pub name: &'a str,
    /// Its config table.
    pub config: &'a C,
}
