//! The emulator's modules form layers (see the module documentation): no
//! file uses another that uses it back, directly or through others, and
//! nothing outside the emulator is used but [`crate::wire`]. Checked on the
//! source text: `use` trees and `crate::`/`super::`/`self::` paths (and
//! paths into a child module) are resolved to the files that define them,
//! following `pub use` re-exports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A module path from the crate root, e.g. `["emulator", "settings"]`.
type Module = Vec<String>;

/// The emulator's files by module, their text without comments, strings
/// and character literals.
fn sources() -> BTreeMap<Module, (PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src.join("emulator"), &mut files);
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut module: Module = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            let text = strip(&std::fs::read_to_string(&path).unwrap());
            (module, (path, text))
        })
        .collect()
}

/// Blanks comments, string and character literals (lifetimes stay).
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let at = |i: usize, k: usize| b.get(i + k).copied().unwrap_or(' ');
        match b[i] {
            '/' if at(i, 1) == '/' => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i, 1) == '*' => {
                i += 2;
                while i < b.len() && !(b[i] == '*' && at(i, 1) == '/') {
                    i += 1;
                }
                i += 2;
            }
            'r' if (at(i, 1) == '"' || at(i, 1) == '#') && (i == 0 || !b[i - 1].is_alphanumeric()) => {
                let hashes = b[i + 1..].iter().take_while(|c| **c == '#').count();
                if b.get(i + 1 + hashes) != Some(&'"') {
                    out.push(b[i]);
                    i += 1;
                    continue;
                }
                i += 2 + hashes;
                while i < b.len() && !(b[i] == '"' && (1..=hashes).all(|k| at(i, k) == '#')) {
                    i += 1;
                }
                i += 1 + hashes;
                out.push_str("\"\"");
            }
            '"' => {
                i += 1;
                while i < b.len() && b[i] != '"' {
                    i += if b[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            '\'' if at(i, 1) == '\\' || at(i, 2) == '\'' => {
                // Past the quote, and past an escaped character.
                i += if at(i, 1) == '\\' { 3 } else { 1 };
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The paths a `use` tree names: `a::{b, c::{d, e as f}}` gives `a::b`,
/// `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    fn go(prefix: &[String], t: &str, out: &mut Vec<Vec<String>>) {
        let segs = |s: &str| -> Vec<String> {
            let s = s.split(" as ").next().unwrap_or(s);
            s.split("::")
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        };
        let Some(open) = t.find('{') else {
            out.push([prefix, &segs(t)[..]].concat());
            return;
        };
        let head = [prefix, &segs(&t[..open])[..]].concat();
        let body = &t[open + 1..t.rfind('}').unwrap_or(t.len())];
        let (mut depth, mut start) = (0, 0);
        for (k, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    go(&head, &body[start..k], out);
                    start = k + 1;
                }
                _ => {}
            }
        }
        if start < body.len() {
            go(&head, &body[start..], out);
        }
    }
    go(&[], &tree, &mut out);
    out
}

/// Inline `mod name { ... }` blocks: (start, end, name).
fn inline_modules(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("mod ").map(|k| k + from) {
        from = at + 4;
        if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + 4..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !rest[name.len()..].trim_start().starts_with('{') {
            continue;
        }
        let open = at + 4 + name.len() + rest[name.len()..].find('{').unwrap_or(0);
        let mut depth = 0;
        let mut end = text.len();
        for (k, c) in text[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push((at, end, name));
    }
    out
}

/// Every path the text names at `pos`-dependent scope: (scope, segments).
fn paths(module: &Module, text: &str, files: &BTreeMap<Module, (PathBuf, String)>) -> Vec<(Module, Vec<String>)> {
    let mods = inline_modules(text);
    let scope = |pos: usize| -> Module {
        let mut m = module.clone();
        m.extend(
            mods.iter()
                .filter(|(a, b, _)| *a <= pos && pos <= *b)
                .map(|x| x.2.clone()),
        );
        m
    };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(at) = text[pos..].find("use ").map(|k| k + pos) {
        pos = at + 4;
        if text[..at].ends_with(ident) {
            continue;
        }
        let end = text[at..].find(';').map_or(text.len(), |k| k + at);
        let here = scope(at);
        for p in expand(&text[at + 4..end]) {
            // `use child::X` names a module under the current one.
            let relative = files.contains_key(&[&here[..], &p[..1]].concat());
            match p[0].as_str() {
                "crate" | "super" | "self" => out.push((here.clone(), p)),
                _ if relative => out.push((here.clone(), [&["self".to_string()], &p[..]].concat())),
                _ => {}
            }
        }
    }
    // Paths in code: `crate::a::b`, `super::x`, and `child::x` where
    // `child` is a module under the current one.
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let (at, c) = chars[k];
        let boundary = k == 0 || !(ident(chars[k - 1].1) || chars[k - 1].1 == ':');
        if !(boundary && ident(c)) {
            k += 1;
            continue;
        }
        let len = text[at..]
            .find(|c: char| !(ident(c) || c == ':'))
            .unwrap_or(text.len() - at);
        let path: Vec<String> = text[at..at + len].split("::").map(str::to_string).collect();
        k += text[at..at + len].chars().count();
        if path.len() < 2 || text[..at].ends_with("pub(in ") || path.iter().any(String::is_empty) {
            continue;
        }
        let here = scope(at);
        let child = [&here[..], &path[..1]].concat();
        if matches!(path[0].as_str(), "crate" | "super" | "self") {
            out.push((here, path));
        } else if files.contains_key(&child) && !text[..at].trim_end().ends_with("mod") {
            out.push((here, [&["self".to_string()], &path[..]].concat()));
        }
    }
    out
}

/// Resolves `segments` seen in `scope` to the module file that defines
/// what they name (`Err`: a path outside the emulator).
fn resolve(
    scope: &Module,
    segments: &[String],
    files: &BTreeMap<Module, (PathBuf, String)>,
    reexports: &BTreeMap<Module, BTreeMap<String, Module>>,
) -> Option<Result<Module, String>> {
    let (mut m, mut rest): (Module, &[String]) = match segments[0].as_str() {
        "crate" => (Vec::new(), &segments[1..]),
        "self" => (scope.clone(), &segments[1..]),
        "super" => {
            let ups = segments.iter().take_while(|s| *s == "super").count();
            (scope[..scope.len().saturating_sub(ups)].to_vec(), &segments[ups..])
        }
        _ => return None,
    };
    if m.first().is_none_or(|r| r != "emulator") {
        if m.is_empty() && rest.first().is_some_and(|r| r == "emulator") {
            m.push(rest[0].clone());
            rest = &rest[1..];
        } else {
            let mut named = m.clone();
            named.extend(rest.iter().take(2).cloned());
            return Some(Err(named.join("::")));
        }
    }
    while !rest.is_empty() && files.contains_key(&[&m[..], &rest[..1]].concat()) {
        m.push(rest[0].clone());
        rest = &rest[1..];
    }
    for _ in 0..8 {
        match rest.first().and_then(|name| reexports.get(&m)?.get(name)) {
            Some(to) => m = to.clone(),
            None => break,
        }
    }
    while !files.contains_key(&m) && !m.is_empty() {
        m.pop();
    }
    Some(Ok(m))
}

#[test]
fn the_emulator_modules_form_layers_and_use_only_the_wire_module_outside() {
    let files = sources();
    let mut reexports: BTreeMap<Module, BTreeMap<String, Module>> = BTreeMap::new();
    for (module, (_, text)) in &files {
        let mut pos = 0;
        while let Some(at) = text[pos..].find("pub use ").map(|k| k + pos) {
            pos = at + 8;
            let end = text[at..].find(';').map_or(text.len(), |k| k + at);
            for p in expand(&text[at + 8..end]) {
                let p = match p[0].as_str() {
                    "crate" | "super" | "self" => p,
                    _ => [&["self".to_string()], &p[..]].concat(),
                };
                if let (Some(Ok(to)), Some(name)) = (resolve(module, &p, &files, &BTreeMap::new()), p.last()) {
                    reexports.entry(module.clone()).or_default().insert(name.clone(), to);
                }
            }
        }
    }
    let mut uses: BTreeMap<Module, Vec<Module>> = BTreeMap::new();
    let mut outside = Vec::new();
    for (module, (path, text)) in &files {
        let edges = uses.entry(module.clone()).or_default();
        for (scope, p) in paths(module, text, &files) {
            match resolve(&scope, &p, &files, &reexports) {
                Some(Ok(to)) if &to != module && !edges.contains(&to) => edges.push(to),
                Some(Err(named)) if !named.starts_with("wire") => {
                    let file = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path);
                    outside.push(format!("{}: {named}", file.display()));
                }
                _ => {}
            }
        }
    }
    outside.dedup();
    assert!(
        outside.is_empty(),
        "the emulator uses more than crate::wire: {outside:#?}"
    );
    // Depth-first search for a path back to a file being visited.
    fn visit(
        m: &Module,
        uses: &BTreeMap<Module, Vec<Module>>,
        state: &mut BTreeMap<Module, bool>,
        stack: &mut Vec<Module>,
    ) -> Option<Vec<String>> {
        state.insert(m.clone(), false);
        stack.push(m.clone());
        for to in uses.get(m).into_iter().flatten() {
            match state.get(to) {
                Some(false) => {
                    let from = stack.iter().position(|s| s == to).unwrap_or(0);
                    return Some(stack[from..].iter().chain([to]).map(|m| m.join("::")).collect());
                }
                Some(true) => {}
                None => {
                    if let Some(cycle) = visit(to, uses, state, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        state.insert(m.clone(), true);
        None
    }
    let mut state = BTreeMap::new();
    for m in files.keys() {
        if !state.contains_key(m) {
            let cycle = visit(m, &uses, &mut state, &mut Vec::new());
            assert!(
                cycle.is_none(),
                "emulator modules use each other in a circle: {cycle:?}"
            );
        }
    }
    // The check sees the edges the layers are made of.
    let m = |s: &str| -> Module { s.split("::").map(str::to_string).collect() };
    assert!(uses[&m("emulator::state")].contains(&m("emulator::notifications::channel_table")));
    assert!(uses[&m("emulator::notifications::channels")].contains(&m("emulator::state")));
    assert!(uses[&m("emulator::settings")].contains(&m("emulator::settings::bulk")));
}
