//! The bundled emulator's core against the wire contract
//! (genesys-api.md §1 and §6): OAuth client credentials, bearer checks,
//! rate limiting with the real 429, error bodies, the control endpoint.

use std::time::Duration;

use crate::common::*;
use cxrelay::emulator::{EmulatorHandle, EmulatorSettings};

fn api(e: &EmulatorHandle, token: &str, method: &str, path: &str) -> Response {
    let auth = format!("Bearer {token}");
    request(e.addr(), method, path, &[("Authorization", &auth)], b"").unwrap()
}

fn assert_error_body(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], status, "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(v["contextId"].as_str().map(str::len), Some(36), "{v}");
    assert!(v["details"].is_array() && v["errors"].is_array(), "{v}");
}

#[test]
fn client_credentials_issue_bearer_tokens_with_the_configured_lifetime() {
    let e = emulator(EmulatorSettings {
        token_lifetime: Duration::from_secs(300),
        ..Default::default()
    });
    let r = token_request(
        &e,
        &basic_auth(
            cxrelay::emulator::DEFAULT_CLIENT_ID,
            cxrelay::emulator::DEFAULT_CLIENT_SECRET,
        ),
        "grant_type=client_credentials",
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 300);
    assert!(v["access_token"].as_str().is_some_and(|t| t.len() >= 32));
}

#[test]
fn wrong_or_missing_credentials_are_invalid_client() {
    let e = emulator(EmulatorSettings::default());
    for auth in [
        basic_auth(cxrelay::emulator::DEFAULT_CLIENT_ID, "nope"),
        basic_auth("someone-else", cxrelay::emulator::DEFAULT_CLIENT_SECRET),
        "Basic !!!".to_string(),
        String::new(),
    ] {
        let r = token_request(&e, &auth, "grant_type=client_credentials");
        assert_eq!(r.status, 401, "{auth}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_client");
        assert_eq!(r.json()["description"], "authentication failed");
    }
    let r = token_request(
        &e,
        &basic_auth(
            cxrelay::emulator::DEFAULT_CLIENT_ID,
            cxrelay::emulator::DEFAULT_CLIENT_SECRET,
        ),
        "grant_type=password",
    );
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
}

#[test]
fn api_calls_need_a_live_bearer_token() {
    let e = emulator(EmulatorSettings {
        token_lifetime: Duration::from_secs(1),
        ..Default::default()
    });
    let r = request(e.addr(), "GET", "/api/v2/organizations/me", &[], b"").unwrap();
    assert_error_body(&r, 401, "authentication.required");
    assert_error_body(
        &api(&e, "made-up", "GET", "/api/v2/organizations/me"),
        401,
        "bad.credentials",
    );
    let t = emulator_token(&e);
    let r = api(&e, &t, "GET", "/api/v2/organizations/me");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "active");
    wait_until("the 1 s token expires", Duration::from_secs(5), || {
        api(&e, &t, "GET", "/api/v2/organizations/me").status == 401
    });
    assert_error_body(&api(&e, &t, "GET", "/api/v2/organizations/me"), 401, "bad.credentials");
}

#[test]
fn every_api_answer_carries_the_rate_limit_headers_and_the_limit_answers_429() {
    let e = emulator(EmulatorSettings {
        requests_per_minute: 3,
        ..Default::default()
    });
    let t = emulator_token(&e);
    for n in 1..=3 {
        let r = api(&e, &t, "GET", "/api/v2/organizations/me");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("inin-ratelimit-allowed"), Some("3"));
        assert_eq!(r.header("inin-ratelimit-count"), Some(n.to_string().as_str()));
        let reset: u64 = r.header("inin-ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        assert_eq!(r.header("inin-correlation-id").map(str::len), Some(36));
    }
    let r = api(&e, &t, "GET", "/api/v2/organizations/me");
    assert_error_body(&r, 429, "too.many.requests.retry.after");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        r.json()["message"],
        format!("Rate limit exceeded the maximum. Retry the request in [{retry}] seconds")
    );
}

#[test]
fn faults_are_armed_through_the_control_endpoint_and_spent_after_their_count() {
    let e = emulator(EmulatorSettings::default());
    let t = emulator_token(&e);
    let arm = |body: &str| {
        request(
            e.addr(),
            "POST",
            "/_emulator/faults",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap()
    };
    let r = arm(
        r#"[{"kind":"rate_limit","count":2,"retry_after_s":7},{"kind":"error","status":503,"path":"/api/v2/organizations"}]"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["armed"].as_array().unwrap().len(), 2);
    for _ in 0..2 {
        let r = api(&e, &t, "GET", "/api/v2/organizations/me");
        assert_error_body(&r, 429, "too.many.requests.retry.after");
        assert_eq!(r.header("retry-after"), Some("7"));
    }
    assert_error_body(
        &api(&e, &t, "GET", "/api/v2/organizations/me"),
        503,
        "service.unavailable",
    );
    assert_eq!(api(&e, &t, "GET", "/api/v2/organizations/me").status, 200);
    let applied = get(e.addr(), "/_emulator/faults").json();
    assert_eq!(applied["applied"].as_array().unwrap().len(), 3, "{applied}");
    assert!(applied["armed"].as_array().unwrap().is_empty());

    // A typo in a fault is refused with the field named.
    let r = arm(r#"{"kind":"rate_limit","retry_afetr_s":2}"#);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("retry_afetr_s"), "{}", r.text());

    // Slow answers, and token issuance failures.
    arm(r#"{"kind":"slow","delay_ms":300}"#);
    let started = std::time::Instant::now();
    assert_eq!(api(&e, &t, "GET", "/api/v2/organizations/me").status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    arm(r#"{"kind":"fail_token","status":500}"#);
    let r = token_request(
        &e,
        &basic_auth(
            cxrelay::emulator::DEFAULT_CLIENT_ID,
            cxrelay::emulator::DEFAULT_CLIENT_SECRET,
        ),
        "grant_type=client_credentials",
    );
    assert_eq!(r.status, 500);
    arm(r#"{"kind":"expire_tokens"}"#);
    assert_error_body(&api(&e, &t, "GET", "/api/v2/organizations/me"), 401, "bad.credentials");
}

#[test]
fn unknown_paths_answer_404_with_the_error_body_and_the_log_records_everything() {
    let e = emulator(EmulatorSettings::default());
    let t = emulator_token(&e);
    assert_error_body(&api(&e, &t, "GET", "/api/v2/nothing/here"), 404, "not.found");
    let log = get(e.addr(), "/_emulator/requests").json();
    let paths: Vec<&str> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/oauth/token", "/api/v2/nothing/here"]);
}

#[test]
fn faults_scheduled_in_config_are_armed_on_time() {
    let settings = cxrelay::config::load_str(
        r#"
[emulator]
seed = 7
[[emulator.faults]]
after = "300ms"
kind = "error"
status = 502
"#,
        "emulator.toml",
    )
    .unwrap();
    let e = emulator(settings.emulator.unwrap());
    assert_eq!(e.state().settings.seed, 7);
    let t = emulator_token(&e);
    assert_eq!(api(&e, &t, "GET", "/api/v2/organizations/me").status, 200);
    wait_until("the scheduled fault", Duration::from_secs(5), || {
        !e.state().faults.armed().is_empty()
    });
    assert_error_body(
        &api(&e, &t, "GET", "/api/v2/organizations/me"),
        502,
        "internal.server.error",
    );
}
