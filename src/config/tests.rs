//! Loading: every problem of a file at once, each with its file, line and
//! key; each component's table read by its own kind.

use super::*;

fn problems(text: &str) -> Vec<Problem> {
    match load_str(text, "cfg.toml") {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

const GOOD: &str = r#"
[service]
data_dir = "data"

[[source]]
name = "gen"
kind = "generator"
topics = ["a.b"]

[[listener]]
name = "out"
topics = ["a.>"]
sink = { kind = "file", path = "data/out" }
"#;

#[test]
fn accepts_a_good_file() {
    let c = load_str(GOOD, "cfg.toml").unwrap();
    assert_eq!(c.listener[0].mailbox, 1024);
    assert_eq!(c.source[0].kind(), "generator");
    assert!(matches!(&c.source[0].spec, crate::sources::SourceSpec::Generator(g) if g.rate == 100.0));
    assert_eq!(c.listener[0].sink.kind(), "file");
    assert_eq!(c.listener[0].sink.common.batch_events, 1000);
}

#[test]
fn a_typo_names_the_key_file_and_line() {
    let text = GOOD.replace("data_dir = \"data\"", "data_dri = \"data\"");
    let err = load_str(&text, "cfg.toml").unwrap_err().to_string();
    assert!(err.starts_with("cfg.toml:3:1:"), "{err}");
    assert!(err.contains("`service.data_dri`: unknown field `data_dri`"), "{err}");
}

#[test]
fn a_typo_in_the_second_table_of_an_array_points_at_it() {
    let text = format!("{GOOD}\n[[listener]]\nname = \"two\"\ntopics = [\"x\"]\nsnk = 1\n");
    let p = problems(&text);
    let snk = p.iter().find(|p| p.key.as_deref() == Some("listener[1].snk")).unwrap();
    assert_eq!(snk.line, Some(18), "{p:?}");
    // The sink is missing too: both are reported.
    assert!(p.iter().any(|p| p.message.contains("missing field `sink`")), "{p:?}");
}

#[test]
fn a_typo_inside_an_inline_table() {
    let text = GOOD.replace("path = \"data/out\"", "pth = \"data/out\"");
    let p = problems(&text);
    let pth = p
        .iter()
        .find(|p| p.key.as_deref() == Some("listener[0].sink.pth"))
        .unwrap();
    assert_eq!(pth.line, Some(13));
    assert!(pth.message.contains("unknown field `pth`"), "{p:?}");
}

#[test]
fn a_typo_in_a_source_lists_the_keys_of_its_kind_only() {
    let text = GOOD.replace("topics = [\"a.b\"]", "topics = [\"a.b\"]\nrat = 5\npayload = 3");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "every unknown key at once: {p:?}");
    assert_eq!((p[0].line, p[0].key.as_deref()), (Some(9), Some("source[0].rat")));
    assert_eq!((p[1].line, p[1].key.as_deref()), (Some(10), Some("source[0].payload")));
    let m = &p[0].message;
    assert!(m.contains("a `generator` source takes"), "{m}");
    for key in ["`name`", "`kind`", "`enabled`", "`rate`", "`payload_bytes`", "`keys`"] {
        assert!(m.contains(key), "{key} missing from: {m}");
    }
    for other in ["`path`", "`interval`", "`max_channels`"] {
        assert!(!m.contains(other), "{other} belongs to another kind: {m}");
    }
}

#[test]
fn a_typo_in_a_sink_lists_the_keys_of_its_kind() {
    let text = GOOD.replace("path = \"data/out\"", "path = \"o\", rotate = 5");
    let p = problems(&text);
    let m = &p[0].message;
    assert!(m.contains("a `file` sink takes"), "{m}");
    assert!(
        m.contains("`rotate_bytes`") && m.contains("`batch_events`") && !m.contains("`url`"),
        "{m}"
    );
}

#[test]
fn a_bad_value_names_its_key() {
    let text = GOOD.replace("topics = [\"a.b\"]", "topics = [\"a.b\"]\nrate = \"fast\"");
    let p = problems(&text);
    assert_eq!(p[0].key.as_deref(), Some("source[0].rate"), "{p:?}");
    assert_eq!(p[0].line, Some(9));
    let text = GOOD.replace("name = \"out\"", "name = \"out\"\nmailbox = -1");
    let p = problems(&text);
    assert_eq!(p[0].key.as_deref(), Some("listener[0].mailbox"), "{p:?}");
}

#[test]
fn semantic_errors_name_key_and_line() {
    let text = GOOD
        .replace("topics = [\"a.>\"]", "topics = [\"a.>.b\"]")
        .replace("topics = [\"a.b\"]", "topics = [\"a.b\"]\nrate = -1");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].key.as_deref(), Some("source[0].rate"));
    assert_eq!(p[0].line, Some(9));
    assert_eq!(p[1].key.as_deref(), Some("listener[0].topics"));
    assert_eq!(p[1].line, Some(13));
}

#[test]
fn three_problems_of_different_kinds_are_reported_together() {
    let text = GOOD
        .replace("data_dir = \"data\"", "data_dir = \"data\"\nshutdown_timeot = \"1s\"")
        .replace("topics = [\"a.b\"]", "topics = [\"a.b\"]\nrate = 0")
        .replace("name = \"out\"", "name = \"gen\"");
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().filter_map(|p| p.key.as_deref()).collect();
    assert_eq!(
        keys,
        ["service.shutdown_timeot", "source[0].rate", "listener[0].name"],
        "{p:?}"
    );
}

#[test]
fn duplicate_names_and_keys_foreign_to_the_kind() {
    let text = GOOD.replace("name = \"out\"", "name = \"gen\"").replace(
        "sink = { kind = \"file\", path = \"data/out\" }",
        "sink = { kind = \"stdout\", path = \"x\" }",
    );
    let p = problems(&text);
    assert!(
        p.iter().any(|p| p.message.contains("already used by `source[0].name`")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|p| p.key.as_deref() == Some("listener[0].sink.path")),
        "{p:?}"
    );
}

#[test]
fn a_missing_secret_names_the_variable_and_the_key() {
    let text = format!("{GOOD}\n[genesys]\nenvironment = \"mypurecloud.ie\"\nclient_secret_env = \"MY_SECRET\"\n");
    let c = load_str(&text, "cfg.toml").unwrap();
    let env = |k: &str| (k == "GENESYS_CLIENT_ID").then(|| "id".to_string());
    let err = resolve_secrets_with(&c, &text, "cfg.toml", env)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "cfg.toml:17:1: `genesys.client_secret_env`: environment variable `MY_SECRET` is not set"
    );
    let env = |_: &str| Some("value".to_string());
    let s = resolve_secrets_with(&c, &text, "cfg.toml", env).unwrap();
    assert_eq!(s.genesys.unwrap().1.expose(), "value");
}

#[test]
fn components_secrets_are_read_by_component_and_key() {
    let text = r#"
[[source]]
name = "hook"
kind = "webhook"
path = "/in"
secret_env = "HOOK_SECRET"

[[listener]]
name = "out"
topics = ["a.>"]
sink = { kind = "http", url = "http://127.0.0.1:1/x", authorization_env = "AUTH" }
"#;
    let c = load_str(text, "cfg.toml").unwrap();
    let err = resolve_secrets_with(&c, text, "cfg.toml", |_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cfg.toml:6:1: `source[0].secret_env`: environment variable `HOOK_SECRET`"),
        "{err}"
    );
    assert!(
        err.contains("`listener[0].sink.authorization_env`: environment variable `AUTH`"),
        "{err}"
    );
    let s = resolve_secrets_with(&c, text, "cfg.toml", |k| Some(format!("{k}-value"))).unwrap();
    assert_eq!(s.component("hook", "secret_env").unwrap().expose(), "HOOK_SECRET-value");
    assert_eq!(s.under("out", "sink.")[0].0, "authorization_env");
}

#[test]
fn bulk_sources_are_validated_with_their_keys() {
    let genesys = "[genesys]\nenvironment = \"emulator\"\n";
    let ok = format!(
        "{genesys}[[source]]\nname = \"d\"\nkind = \"analytics_job\"\ninterval = \"2024-05-01T00:00:00Z/2024-05-02T00:00:00Z\"\n\n[[source]]\nname = \"e\"\nkind = \"export\"\ndownload_id = \"x\"\n"
    );
    let c = load_str(&ok, "cfg.toml").unwrap();
    assert_eq!(c.source[1].kind(), "export");
    let bad = "[[source]]\nname = \"d\"\nkind = \"analytics_job\"\nevery = \"5m\"\ninterval = \"2024-05-01\"\npage_size = 5000\nrate = 3\n\n[[source]]\nname = \"e\"\nkind = \"export\"\nurl = \"ftp://x\"\nlag = \"1m\"\n";
    let p = problems(bad);
    let keys: Vec<&str> = p.iter().filter_map(|p| p.key.as_deref()).collect();
    for k in [
        "source[0].every",
        "source[0].page_size",
        "source[0].rate",
        "source[0].kind",
        "source[1].url",
        "source[1].lag",
    ] {
        assert!(keys.contains(&k), "{k} not reported: {p:?}");
    }
    assert!(p.iter().any(|p| p.message.contains("[genesys]")), "{p:?}");
}

#[test]
fn unknown_kinds_list_the_known_ones() {
    let text = GOOD.replace("kind = \"generator\"", "kind = \"generatr\"");
    let err = load_str(&text, "cfg.toml").unwrap_err().to_string();
    assert!(err.contains("cfg.toml:7:"), "{err}");
    assert!(err.contains("`generator`") && err.contains("`notifications`"), "{err}");
    let text = GOOD.replace("kind = \"file\"", "kind = \"fil\"");
    let err = load_str(&text, "cfg.toml").unwrap_err().to_string();
    assert!(
        err.contains("unknown sink kind `fil`") && err.contains("`blackhole`"),
        "{err}"
    );
}

#[test]
fn a_syntax_error_is_located() {
    let err = load_str("[service\ndata_dir = 1\n", "cfg.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("cfg.toml:1:"), "{err}");
}

#[test]
fn a_source_may_not_take_a_path_the_server_serves() {
    for (path, reserved) in [
        ("/status", true),
        ("/admin/x", true),
        ("/", true),
        ("/statusx", false),
        ("/in", false),
    ] {
        let text = format!("[[source]]\nname = \"h\"\nkind = \"webhook\"\npath = \"{path}\"\nallow_unsigned = true\n");
        let got = load_str(&text, "cfg.toml").err().map(|e| e.to_string());
        assert_eq!(
            got.as_deref().is_some_and(|e| e.contains("is reserved by cxrelay")),
            reserved,
            "{path}: {got:?}"
        );
    }
}

#[test]
fn every_wrong_value_of_a_table_is_reported_and_the_rest_still_checked() {
    let text = GOOD.replace(
        "topics = [\"a.b\"]",
        "topics = [\"a.b\"]\nrate = \"fast\"\nkeys = \"many\"\ncount = -1",
    );
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().filter_map(|p| p.key.as_deref()).collect();
    assert_eq!(keys, ["source[0].rate", "source[0].keys", "source[0].count"], "{p:?}");
}

#[test]
fn a_wrong_section_leaves_the_others_as_written() {
    // `[http]` is wrong; `[genesys]` must not be taken as missing.
    let text = "[http]\nworkers = \"two\"\n\n[genesys]\nenvironment = \"emulator\"\n\n[[source]]\nname = \"q\"\nkind = \"notifications\"\ntopics = [\"v2.users.u1.presence\"]\n";
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key.as_deref(), Some("http.workers"));
}

#[test]
fn relative_paths_are_taken_from_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{GOOD}\n[[listener]]\nname = \"pg\"\ntopics = [\"a.>\"]\nsink = {{ kind = \"postgres\", url_env = \"PG\", table = \"t\", tls = true, tls_ca_file = \"ca.pem\" }}\n\n[[listener]]\nname = \"abs\"\ntopics = [\"a.>\"]\nsink = {{ kind = \"file\", path = \"/var/out\" }}\n\n[[source]]\nname = \"rec\"\nkind = \"recordings\"\nrecordings = [\"c1/r1\"]\noutput = \"rec\"\n\n[genesys]\nenvironment = \"emulator\"\n"
    );
    let sub = dir.path().join("conf");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("c.toml"), text).unwrap();
    let c = load(&sub.join("c.toml")).unwrap().config;
    assert_eq!(c.service.data_dir, sub.join("data"));
    let out = |i: usize| c.listener[i].sink.spec.builder().output_dir().map(|p| p.to_path_buf());
    assert_eq!(out(0), Some(sub.join("data/out")));
    assert_eq!(
        out(2),
        Some(std::path::PathBuf::from("/var/out")),
        "absolute paths stay"
    );
    match &c.listener[1].sink.spec {
        crate::sinks::SinkSpec::Postgres(p) => assert_eq!(p.tls_ca_file, Some(sub.join("ca.pem"))),
        other => panic!("{other:?}"),
    }
    match &c.source[1].spec {
        crate::sources::SourceSpec::Recordings(r) => assert_eq!(r.output, sub.join("rec")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_region_given_as_a_host_is_accepted_and_a_url_with_a_path_is_refused_with_the_fix() {
    let text = format!("{GOOD}\n[genesys]\nenvironment = \"api.mypurecloud.com\"\n");
    assert!(load_str(&text, "cfg.toml").is_ok());
    let text = format!("{GOOD}\n[genesys]\nenvironment = \"https://api.mypurecloud.de/api/v2\"\n");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key.as_deref(), Some("genesys.environment"));
    assert!(p[0].message.contains("e.g. `mypurecloud.com`"), "{}", p[0].message);
    // With both hosts given explicitly, the environment is not used for them.
    let text =
        format!("{GOOD}\n[genesys]\nenvironment = \"proxy\"\napi_url = \"http://p:1\"\nlogin_url = \"http://p:2\"\n");
    assert!(load_str(&text, "cfg.toml").is_ok());
}
