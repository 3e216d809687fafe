//! The config loader. Byte 0 even: the rest is the file's text. Odd: the
//! rest drives mutations of the shipped config.toml (3 bytes each: what,
//! where, which value), like the property test's. No panic, every refusal
//! listing problems with messages, at lines and columns inside the file.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

use invariants::{mutate, Mutation, SHIPPED_CONFIG};

/// Values a mutation writes: each kind of TOML scalar, and edge cases.
const VALUES: &[&str] = &[
    "0",
    "-1",
    "18446744073709551616",
    "9223372036854775807",
    "1.5e308",
    "inf",
    "nan",
    "true",
    "\"\"",
    "\"0s\"",
    "\"99999999999h\"",
    "\"5x\"",
    "\"127.0.0.1:0\"",
    "\"*\"",
    "\">\"",
    "[]",
    "{}",
    "[1, \"a\", {}]",
    "{ kind = \"file\" }",
    "1979-05-27T07:32:00Z",
    "\"\\u0000\"",
    "",
];

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    let text = if mode & 1 == 0 {
        match std::str::from_utf8(rest) {
            Ok(t) => t.to_string(),
            Err(_) => return,
        }
    } else {
        let mutations: Vec<Mutation> = rest
            .chunks_exact(3)
            .take(8)
            .map(|m| {
                let (at, v) = (usize::from(m[1]), usize::from(m[2]));
                let value = VALUES[v % VALUES.len()].to_string();
                match m[0] % 5 {
                    0 => Mutation::Delete(at),
                    1 => Mutation::Duplicate(at),
                    2 => Mutation::SetValue(at, value),
                    3 => Mutation::Insert(
                        at,
                        format!("{} = {value}", ["name", "kind", "path", "topics", "every"][v % 5]),
                    ),
                    _ => Mutation::Swap(at, v),
                }
            })
            .collect();
        mutate(SHIPPED_CONFIG, &mutations)
    };
    if let Err(broken) = invariants::verdict(invariants::check_config(&text)) {
        panic!("{broken}");
    }
});
