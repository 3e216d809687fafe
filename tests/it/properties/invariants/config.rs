//! Invariants of the config loader (a part of `invariants.rs`).

use cxrelay::config::{load_str, ConfigError};

use super::Checked;

/// `load_str` on `text`: no panic; a refusal lists at least one problem,
/// each with a message, a line for every problem naming a key, and every
/// line and column inside the file.
/// Answers whether the config loaded.
pub fn check_config(text: &str) -> Checked<bool> {
    let err = match load_str(text, "fuzz.toml") {
        Ok(_) => return Ok(true),
        Err(e) => e,
    };
    ensure!(!err.to_string().trim().is_empty(), "an error that renders as nothing");
    let ConfigError::Invalid { file, problems } = err else {
        return Err(format!("load_str answered a read error: {err}"));
    };
    ensure!(file == "fuzz.toml", "problems reported against {file}");
    ensure!(!problems.is_empty(), "refused with no problem listed");
    let lines: Vec<&str> = text.split('\n').collect();
    for p in &problems {
        ensure!(!p.message.trim().is_empty(), "a problem without a message: {p:?}");
        // (A key may be empty: TOML allows `"" = 1`.)
        if p.key.is_some() {
            ensure!(p.line.is_some(), "a keyed problem without a line: {p:?}");
        }
        if let Some(line) = p.line {
            ensure!(
                line >= 1 && line <= lines.len(),
                "line {line} of a file of {} lines: {p:?}",
                lines.len()
            );
            if let Some(col) = p.col {
                ensure!(
                    col >= 1 && col <= lines[line - 1].len() + 1,
                    "column {col} of a line of {} bytes: {p:?}",
                    lines[line - 1].len()
                );
            }
        }
    }
    Ok(false)
}

/// The shipped config, the base of the config mutations.
pub const SHIPPED_CONFIG: &str = include_str!("../../../../config.toml");

/// A mutation of a config file, by line.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Deletes line `n` (modulo the line count).
    Delete(usize),
    /// Writes line `n` twice.
    Duplicate(usize),
    /// Replaces the value of the `n`th `key = value` line.
    SetValue(usize, String),
    /// Inserts a line before line `n`.
    Insert(usize, String),
    /// Swaps two lines.
    Swap(usize, usize),
}

/// Applies `mutations` to `base`, in order.
pub fn mutate(base: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    for m in mutations {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match m {
            Mutation::Delete(i) => {
                lines.remove(i % n);
            }
            Mutation::Duplicate(i) => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Mutation::SetValue(i, value) => {
                let assignments: Vec<usize> = (0..n).filter(|&j| lines[j].contains(" = ")).collect();
                if let Some(&j) = assignments.get(i % assignments.len().max(1)) {
                    let key = lines[j].split(" = ").next().unwrap_or_default().to_string();
                    lines[j] = format!("{key} = {value}");
                }
            }
            Mutation::Insert(i, line) => lines.insert(i % (n + 1), line.clone()),
            Mutation::Swap(a, b) => lines.swap(a % n, b % n),
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}
