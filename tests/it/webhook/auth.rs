//! Webhook authentication as a sender sees it: HMAC signatures (base64
//! and hex), address allow-lists, the unsigned opt-in, EventBridge API
//! destinations (API key and Basic) and signed Open Messaging.

use super::*;

#[test]
fn signatures_addresses_and_unsigned_opt_in() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = format!(
        "{}[[source]]\nname = \"open\"\nkind = \"webhook\"\npath = \"/ingest/open\"\nallow_unsigned = true\n\n[[source]]\nname = \"private\"\nkind = \"webhook\"\npath = \"/ingest/private\"\nsecret_env = \"HOOK_SECRET\"\nallow_ips = [\"10.0.0.0/8\"]\n\n[[source]]\nname = \"hook\"\nkind = \"webhook\"\npath = \"/ingest/eventbridge\"\nsecret_env = \"HOOK_SECRET\"\nsignature_encoding = \"hex\"\nsignature_header = \"X-Signature\"\nsignature_prefix = \"\"\n\n{}",
        preamble(dir),
        file_listener(dir)
    );
    let p = Proc::start_with(dir, &config, &env());
    wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    let body = bare(1);
    // Wrong or missing signature: 401 and nothing about why.
    let r = request(
        p.addr,
        "POST",
        "/ingest/eventbridge",
        &[("X-Signature", "00")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        (r.status, r.json()),
        (401, serde_json::json!({"error": "unauthorized"}))
    );
    let r = request(p.addr, "POST", "/ingest/eventbridge", &[], body.as_bytes()).unwrap();
    assert_eq!(r.status, 401);
    let hex = Verifier::new(SECRET.as_bytes(), "", SignatureEncoding::Hex).sign(body.as_bytes());
    let r = request(
        p.addr,
        "POST",
        "/ingest/eventbridge",
        &[("X-Signature", &hex)],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    // Not from an allowed address.
    let sig = verifier().sign(body.as_bytes());
    let r = request(
        p.addr,
        "POST",
        "/ingest/private",
        &[("X-Hub-Signature-256", &sig)],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 403);
    // Unsigned accepted only where explicitly allowed, and status says so.
    let r = request(p.addr, "POST", "/ingest/open", &[], bare(2).as_bytes()).unwrap();
    assert_eq!(r.status, 202);
    let open = component(&p.get("/status").json(), "open");
    assert_eq!(open["state"], "degraded");
    assert!(open["last_error"].as_str().unwrap().contains("UNSIGNED"));
    // Unsupported encodings are refused.
    let r = request(p.addr, "POST", "/ingest/open", &[("Content-Encoding", "br")], b"x").unwrap();
    assert_eq!(r.status, 415);
    assert!(!p.log_text().contains(SECRET), "the secret never appears in logs");
    assert!(!p.get("/status").text().contains(SECRET));
    assert!(p.terminate().success());

    // A webhook without a secret refuses to start.
    let bad = "[[source]]\nname = \"h\"\nkind = \"webhook\"\npath = \"/x\"\n";
    std::fs::write(dir.join("config.toml"), bad).unwrap();
    let (code, _, err) = cxrelay_cmd(dir, &["check"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("needs `secret_env`"), "{err}");
}

/// An Open Messaging outbound message as Genesys posts it to the
/// integration's outbound notification webhook.
fn open_message(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","channel":{{"id":"integration-1","platform":"Open","type":"Private","to":{{"id":"customer-7","idType":"Opaque"}},"from":{{"nickname":"Agent","id":"integration-1","idType":"Opaque"}},"time":"2024-05-01T14:02:03.120Z","messageId":"{id}"}},"type":"Text","text":"Hello","originatingEntity":"Human","direction":"Outbound"}}"#
    )
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// EventBridge API destinations (connections of type API_KEY and BASIC)
/// and a signed Open Messaging webhook, each on its own source: the right
/// credentials are accepted, wrong or missing ones get a bare 401, and
/// an API key is checked before the body is read.
#[test]
fn api_destinations_and_open_messaging_authenticate_each_their_own_way() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let listener = format!(
        "[[listener]]\nname = \"files\"\ntopics = [\"v2.detail.events.>\", \"openmessaging.>\"]\nsink = {{ kind = \"file\", path = \"{}\", batch_interval = \"20ms\" }}\n",
        dir.join("out").display()
    );
    let config = format!(
        "{}[[source]]\nname = \"apikey\"\nkind = \"webhook\"\npath = \"/ingest/apikey\"\nauth = \"api_key\"\nsecret_env = \"HOOK_KEY\"\n\n[[source]]\nname = \"basic\"\nkind = \"webhook\"\npath = \"/ingest/basic\"\nauth = \"basic\"\nusername_env = \"HOOK_USER\"\nsecret_env = \"HOOK_PASSWORD\"\n\n[[source]]\nname = \"om\"\nkind = \"webhook\"\npath = \"/ingest/om\"\nbody = \"open_messaging\"\nsecret_env = \"HOOK_SECRET\"\n\n{listener}",
        preamble(dir)
    );
    let (key, user, password) = ("eb-key-5f1c", "eventbridge", "eb-pass-93d2");
    let env = [
        ("HOOK_KEY", key),
        ("HOOK_USER", user),
        ("HOOK_PASSWORD", password),
        ("HOOK_SECRET", SECRET),
    ];
    let p = Proc::start_with(dir, &config, &env);
    wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    let post = |path: &str, headers: &[(&str, &str)], body: &str| {
        request(p.addr, "POST", path, headers, body.as_bytes()).unwrap()
    };
    let unauthorized = (401, serde_json::json!({"error": "unauthorized"}));

    // API key (EventBridge connection API_KEY: header name and value).
    let r = post("/ingest/apikey", &[("x-api-key", key)], &bridge(1));
    assert_eq!(r.status, 202, "{}", r.text());
    for headers in [
        vec![("x-api-key", "eb-key-5f1")],
        vec![("x-api-key", "EB-KEY-5F1C")],
        vec![("x-api-key", "")],
        vec![("authorization", key)],
        vec![],
    ] {
        let r = post("/ingest/apikey", &headers, &bridge(2));
        assert_eq!((r.status, r.json()), unauthorized, "{headers:?}");
    }
    // A signature is no API key.
    let sig = verifier().sign(bridge(2).as_bytes());
    let r = post("/ingest/apikey", &[("X-Hub-Signature-256", &sig)], &bridge(2));
    assert_eq!(r.status, 401);

    // Basic (EventBridge connection BASIC).
    let r = post(
        "/ingest/basic",
        &[("Authorization", &basic(user, password))],
        &bridge(3),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    for auth in [
        basic(user, "eb-pass-93d"),
        basic("eventbridge2", password),
        basic("", ""),
        format!("Bearer {password}"),
    ] {
        let r = post("/ingest/basic", &[("Authorization", &auth)], &bridge(4));
        assert_eq!((r.status, r.json()), unauthorized, "{auth}");
    }
    let r = post("/ingest/basic", &[], &bridge(4));
    assert_eq!(r.status, 401);

    // Open Messaging: signed like Genesys signs it.
    let message = open_message("om-5f9c1a6e");
    let sig = verifier().sign(message.as_bytes());
    let r = post("/ingest/om", &[("X-Hub-Signature-256", &sig)], &message);
    assert_eq!(r.status, 202, "{}", r.text());
    let r = post(
        "/ingest/om",
        &[("X-Hub-Signature-256", &sig)],
        &open_message("om-other"),
    );
    assert_eq!((r.status, r.json()), unauthorized);
    let r = post("/ingest/om", &[], &message);
    assert_eq!(r.status, 401);
    // Sent again: a duplicate, not a second event.
    let r = post("/ingest/om", &[("X-Hub-Signature-256", &sig)], &message);
    assert_eq!(r.json(), serde_json::json!({"accepted": 0, "duplicates": 1}));

    // Wrong credentials cost no body: refused before it is sent.
    let mut s = std::net::TcpStream::connect(p.addr).unwrap();
    s.write_all(b"POST /ingest/apikey HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\nx-api-key: nope\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = [0u8; 64];
    let n = std::io::Read::read(&mut s, &mut answer).unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 401"));

    wait_until("three events in the file sink", Duration::from_secs(10), || {
        read_ndjson_dir(&dir.join("out")).len() >= 3
    });
    let lines = read_ndjson_dir(&dir.join("out"));
    let ids: HashSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, HashSet::from(["eb-1", "eb-3", "om-5f9c1a6e"]));
    let om = lines.iter().find(|l| l["id"] == "om-5f9c1a6e").unwrap();
    assert_eq!(
        (&om["topic"], &om["key"], &om["event_time"]),
        (
            &serde_json::json!("openmessaging.outbound.text"),
            &serde_json::json!("customer-7"),
            &serde_json::json!(1714572123120i64)
        )
    );
    let status = p.get("/status").json();
    for (name, auth, body, refused) in [
        ("apikey", "api_key", "events", 7),
        ("basic", "basic", "events", 5),
        ("om", "hmac", "open_messaging", 2),
    ] {
        let c = component(&status, name);
        assert_eq!(c["state"], "running", "{c}");
        assert_eq!(
            (c["detail"]["auth"].as_str(), c["detail"]["body"].as_str()),
            (Some(auth), Some(body))
        );
        assert_eq!(c["detail"]["counters"]["bad_signature"], refused, "{name}: {c}");
    }
    let (log, status) = (p.log_text(), p.get("/status").text());
    for secret in [key, password, SECRET] {
        assert!(!log.contains(secret) && !status.contains(secret), "a secret showed");
    }
    assert!(p.terminate().success());

    // Basic without a user name, or a user name without Basic, is refused
    // at load with the fix.
    for (extra, expect) in [
        ("auth = \"basic\"\n", "needs `username_env`"),
        ("username_env = \"U\"\n", "only used with `auth = \"basic\"`"),
    ] {
        let bad = format!("[[source]]\nname = \"h\"\nkind = \"webhook\"\npath = \"/x\"\nsecret_env = \"S\"\n{extra}");
        std::fs::write(dir.join("config.toml"), bad).unwrap();
        let (code, _, err) = cxrelay_cmd(dir, &["check"], &[("S", "s"), ("U", "u")]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(expect), "{err}");
    }
}
