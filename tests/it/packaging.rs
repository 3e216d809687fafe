//! `packaging/`, checked with the tools that read each file: the systemd
//! unit with `systemd-analyze verify`, the alert rules and their unit
//! tests and the dashboard's queries with `promtool`,
//! and every metric the rules and the Grafana dashboard query against
//! README's metrics reference; the Containerfile against the tree it
//! copies and the config it rewrites.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::{binary, cxrelay_cmd};
use super::webdriver::{on_path, skip_or_fail};

const README: &str = include_str!("../../README.md");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn packaging(file: &str) -> String {
    std::fs::read_to_string(repo().join("packaging").join(file)).unwrap_or_else(|e| panic!("packaging/{file}: {e}"))
}

#[test]
fn the_systemd_unit_verifies() {
    let Some(analyze) = on_path(&["systemd-analyze"]) else {
        // systemd is not in every build container: checked where it is.
        eprintln!(
            "\n**********************************************************************\n\
             SKIPPED the_systemd_unit_verifies: no `systemd-analyze` on PATH (Debian package `systemd`).\n\
             **********************************************************************\n"
        );
        return;
    };
    // verify insists that ExecStart's program exists: the unit is checked
    // as installed, pointing at the binary under test.
    let unit = packaging("cxrelay.service");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/cxrelay run --config /etc/cxrelay/config.toml"),
        "{unit}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("cxrelay.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/cxrelay", &binary().display().to_string()),
    )
    .unwrap();
    let out = Command::new(analyze).arg("verify").arg(&path).output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // verify answers 0 for unknown keys and bad values too, and only says
    // so: anything it says about the unit is a failure.
    let about_unit: Vec<&str> = said.lines().filter(|l| l.contains("cxrelay.service")).collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify: {}\n{said}",
        out.status
    );
    // The command line it runs is one cxrelay takes.
    let help = Command::new(binary())
        .args(["run", "--config", "/etc/cxrelay/config.toml", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success(), "{}", String::from_utf8_lossy(&help.stderr));
}

#[test]
fn the_alert_rules_and_the_dashboards_queries_pass_promtool() {
    let Some(promtool) = on_path(&["promtool"]) else {
        return skip_or_fail(
            "the_alert_rules_and_the_dashboards_queries_pass_promtool",
            "no `promtool` on PATH (Debian package `prometheus`)",
            "apt-get install prometheus",
        );
    };
    let check = |rules: &Path| {
        let out = Command::new(&promtool)
            .arg("check")
            .arg("rules")
            .arg(rules)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool check rules {}: {}\n{}{}",
            rules.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    check(&repo().join("packaging/prometheus/alerts.yml"));
    // The rules' own unit tests: when each fires, for which labels, and
    // what it says.
    let tests = repo().join("packaging/prometheus/alerts.test.yml");
    let out = Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .arg(&tests)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool test rules: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The dashboard's queries, as recording rules, so that promtool parses
    // them too (Grafana would only show a broken panel). JSON strings are
    // YAML strings.
    let dashboard: serde_json::Value = serde_json::from_str(&packaging("grafana/cxrelay.json")).unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else { continue };
            let expr = expr.replace("$instance", ".*");
            rules.push_str(&format!(
                "      - record: dashboard:panel_{}_{}\n        expr: {}\n",
                panel["id"],
                target["refId"].as_str().unwrap_or("x"),
                serde_json::Value::from(expr)
            ));
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("dashboard-queries.yml");
    std::fs::write(&path, rules).unwrap();
    check(&path);
}

/// Every `cxrelay_...` name in `text`, a histogram's series folded into
/// the histogram's name.
fn metric_names_in(text: &str, histograms: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("cxrelay_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        // Not part of a longer word (`job=~".*cxrelay.*"` is no metric).
        let standalone = !rest[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        if standalone && name.len() > "cxrelay_".len() {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| histograms.contains(b)))
                .unwrap_or(name);
            names.insert(base.to_string());
        }
        rest = &tail[end..];
    }
    names
}

#[test]
fn alerts_and_dashboard_query_only_documented_metrics() {
    let reference = cxrelay::telemetry::metrics_reference(README);
    let histograms: BTreeSet<&str> = reference
        .iter()
        .filter(|(_, d)| d.kind == "histogram")
        .map(|(n, _)| n.as_str())
        .collect();
    let dashboard = packaging("grafana/cxrelay.json");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = parsed["panels"].as_array().expect("panels");
    let ids: Vec<u64> = panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(
        ids.len(),
        ids.iter().collect::<BTreeSet<_>>().len(),
        "panel ids are unique"
    );
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 10, "the dashboard queries: {exprs:?}");
    for (file, text) in [
        ("prometheus/alerts.yml", packaging("prometheus/alerts.yml")),
        ("grafana/cxrelay.json", dashboard.clone()),
    ] {
        let used = metric_names_in(&text, &histograms);
        assert!(!used.is_empty(), "{file} queries no cxrelay metric");
        let unknown: Vec<&String> = used.iter().filter(|n| !reference.contains_key(*n)).collect();
        assert!(
            unknown.is_empty(),
            "packaging/{file} queries metrics the README's reference does not name: {unknown:?}"
        );
    }
}

#[test]
fn the_containerfile_copies_what_the_build_needs_and_rewrites_the_shipped_config() {
    let file = packaging("Containerfile");
    let root = repo();
    // What the build stage copies from the tree exists, and covers the
    // manifest's members and targets (cargo reads them all).
    let mut copied = Vec::new();
    for line in file.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for src in &words[..words.len() - 1] {
            assert!(
                root.join(src).exists(),
                "the Containerfile copies {src}, which is not in the tree"
            );
            copied.push(src.to_string());
        }
    }
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "actors",
        "src",
        "benches",
        "examples",
        "tests",
    ] {
        assert!(
            copied.iter().any(|c| c == needed),
            "the Containerfile does not copy {needed}"
        );
    }
    // The shipped config is rewritten for the container by sed: each line
    // it replaces is there, and the result passes `cxrelay check`.
    let config = std::fs::read_to_string(root.join("config.toml")).unwrap();
    let mut rewritten = config.clone();
    for (key, value) in [
        ("data_dir", "\"/data\""),
        ("listen", "\"0.0.0.0:8080\""),
        ("log_format", "\"json\""),
    ] {
        assert!(
            file.contains(&format!("s|^{key} = .*|{key} = {value}|")),
            "the Containerfile no longer sets {key}"
        );
        let lines: Vec<&str> = config.lines().filter(|l| l.starts_with(&format!("{key} = "))).collect();
        assert_eq!(
            lines.len(),
            1,
            "config.toml has one `{key} = ` line for the Containerfile's sed"
        );
        rewritten = rewritten.replace(lines[0], &format!("{key} = {value}"));
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.toml"), rewritten).unwrap();
    // (cxrelay_cmd names dir/config.toml as the config.)
    let (code, out, err) = cxrelay_cmd(tmp.path(), &["check", "--offline"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("data_dir: /data") && out.contains("http: 0.0.0.0:8080"),
        "{out}"
    );
}
