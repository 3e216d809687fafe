//! The client side of the wire contract against the bundled emulator:
//! tokens (refresh ahead of expiry, 401 handling, refusals, the breaker)
//! and the shared request budget (rate, Retry-After).

use std::time::{Duration, Instant};

use crate::common::*;
use actix::prelude::*;
use cxrelay::config::Secret;
use cxrelay::emulator::{max_in_window, EmulatorHandle, EmulatorSettings, Fault, LoggedRequest};
use cxrelay::genesys::{
    ApiClient, ApiError, Credentials, GetToken, Hosts, RequestBudget, RetryPolicy, TokenError, TokenProvider,
    TokenSettings, Tokens,
};
use cxrelay_actors::{ComponentKind, ComponentState, Registry};
use futures_util::future::join_all;

const ORG: &str = "/api/v2/organizations/me";

fn provider(e: &EmulatorHandle, secret: &str, settings: TokenSettings, registry: &Registry) -> Addr<TokenProvider> {
    let creds = Credentials {
        client_id: cxrelay::emulator::DEFAULT_CLIENT_ID.into(),
        client_secret: Secret::new(secret),
    };
    let component = registry.register("genesys-auth", ComponentKind::Auth, true);
    TokenProvider::new(
        Hosts::resolve("emulator", Some(&e.url()), Some(&e.login_url())),
        creds,
        settings,
        component,
    )
    .start()
}

fn good_provider(e: &EmulatorHandle, registry: &Registry) -> Addr<TokenProvider> {
    provider(
        e,
        cxrelay::emulator::DEFAULT_CLIENT_SECRET,
        TokenSettings::default(),
        registry,
    )
}

fn client(e: &EmulatorHandle, tokens: Addr<TokenProvider>, per_minute: u32) -> ApiClient {
    ApiClient::new(
        &e.url(),
        Tokens::new(tokens),
        RequestBudget::new(per_minute),
        RetryPolicy::default(),
    )
}

fn requests(e: &EmulatorHandle, path: &str) -> Vec<LoggedRequest> {
    e.state().log.matching(|r| r.path == path)
}

/// Waits without blocking the actix system (condition polling with a
/// deadline, never a fixed sleep as synchronisation).
async fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix::test]
async fn tokens_are_refreshed_ahead_of_expiry_and_never_used_expired() {
    let e = emulator(EmulatorSettings {
        token_lifetime: Duration::from_secs(5),
        ..Default::default()
    });
    let registry = Registry::new();
    let tokens = good_provider(&e, &registry);
    let api = client(&e, tokens, 6000);
    let started = Instant::now();
    // Calls for longer than two lifetimes, as a source would make them.
    while started.elapsed() < Duration::from_millis(10_500) {
        let _: serde_json::Value = api.get(ORG).await.expect("every call succeeds");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = requests(&e, ORG);
    assert!(calls.len() > 50, "{}", calls.len());
    assert!(calls.iter().all(|r| r.status == 200), "a call met an expired token");
    let issued: Vec<Duration> = requests(&e, "/oauth/token").iter().map(|r| r.at).collect();
    // Issued at 0 s, then every 80% of 5 s.
    assert!(issued.len() >= 3, "{issued:?}");
    for pair in issued.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(3_800) && gap <= Duration::from_millis(4_600),
            "refresh {gap:?} after the previous token (expected ~4 s): {issued:?}"
        );
    }
    assert_eq!(registry.get("genesys-auth").unwrap().state(), ComponentState::Running);
}

#[actix::test]
async fn a_401_refreshes_once_and_retries_once_and_concurrent_callers_share_the_refresh() {
    let e = emulator(EmulatorSettings::default());
    let registry = Registry::new();
    let tokens = good_provider(&e, &registry);
    let api = client(&e, tokens, 60_000);
    let _: serde_json::Value = api.get(ORG).await.unwrap();
    assert_eq!(requests(&e, "/oauth/token").len(), 1);

    // Every token dies at once: twenty callers meet a 401 together.
    e.inject(Fault::ExpireTokens);
    let results = join_all((0..20).map(|_| api.get::<serde_json::Value>(ORG))).await;
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert_eq!(requests(&e, "/oauth/token").len(), 2, "one shared refresh");
    let statuses: Vec<u16> = requests(&e, ORG).iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 20, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 21, "{statuses:?}");

    // A second 401 right after the refresh is an error, not a loop.
    e.inject(Fault::Error {
        count: 2,
        status: 401,
        path: Some(ORG.into()),
    });
    let before = requests(&e, ORG).len();
    let err = api.get::<serde_json::Value>(ORG).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(requests(&e, ORG).len() - before, 2, "exactly one retry");
}

#[actix::test]
async fn a_refused_client_names_the_client_id_never_the_secret() {
    let e = emulator(EmulatorSettings::default());
    let registry = Registry::new();
    let tokens = provider(&e, "wrong-secret-s3cr3t", TokenSettings::default(), &registry);
    let err = tokens.send(GetToken).await.unwrap().unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TokenError::Refused { .. }), "{err:?}");
    assert!(text.contains(cxrelay::emulator::DEFAULT_CLIENT_ID), "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
    let api = client(&e, tokens, 6000);
    let call = api.get::<serde_json::Value>(ORG).await.unwrap_err();
    assert!(matches!(call, ApiError::Token(TokenError::Refused { .. })), "{call}");
    assert!(!call.to_string().contains("s3cr3t"));
    let status = serde_json::to_string(&registry.snapshot()).unwrap();
    assert!(!status.contains("s3cr3t"), "{status}");
}

#[actix::test]
async fn repeated_failures_open_the_breaker_which_closes_after_a_successful_trial() {
    let e = emulator(EmulatorSettings::default());
    let registry = Registry::new();
    let settings = TokenSettings {
        breaker_after: 3,
        breaker_cooldown: Duration::from_millis(800),
        ..TokenSettings::default()
    };
    let tokens = provider(&e, cxrelay::emulator::DEFAULT_CLIENT_SECRET, settings, &registry);
    e.inject(Fault::FailToken { count: 3, status: 503 });
    for _ in 0..3 {
        let err = tokens.send(GetToken).await.unwrap().unwrap_err();
        assert!(
            matches!(err, TokenError::Failed { .. } | TokenError::BreakerOpen { .. }),
            "{err:?}"
        );
    }
    // Open: callers fail fast, without asking the login service.
    let asked = requests(&e, "/oauth/token").len();
    assert_eq!(asked, 3);
    let err = tokens.send(GetToken).await.unwrap().unwrap_err();
    assert!(matches!(err, TokenError::BreakerOpen { .. }), "{err:?}");
    assert!(err.to_string().contains("503"), "the last failure is named: {err}");
    assert_eq!(requests(&e, "/oauth/token").len(), asked);
    let auth = registry.get("genesys-auth").unwrap();
    assert_eq!(auth.state(), ComponentState::Paused);
    let not_ready = registry.not_ready();
    assert!(
        not_ready
            .iter()
            .any(|(name, why)| name == "genesys-auth" && why.contains("breaker open")),
        "{not_ready:?}"
    );
    // After the cool-down one trial goes out; it succeeds and closes it.
    eventually("cool-down over", Duration::from_secs(5), || {
        auth.snapshot().since_ms + 800 <= cxrelay_actors::event::now_ms()
    })
    .await;
    let mut token = tokens.send(GetToken).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while token.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        token = tokens.send(GetToken).await.unwrap();
    }
    assert!(token.is_ok(), "{token:?}");
    assert_eq!(auth.state(), ComponentState::Running);
    assert_eq!(auth.snapshot().detail["breaker"], "closed");
    assert!(registry.not_ready().is_empty());
}

#[actix::test]
async fn the_budget_holds_two_hundred_concurrent_calls_to_the_configured_rate() {
    let e = emulator(EmulatorSettings {
        requests_per_minute: 0,
        ..Default::default()
    });
    let registry = Registry::new();
    let tokens = good_provider(&e, &registry);
    let api = client(&e, tokens, 600);
    let started = Instant::now();
    let results = join_all((0..200).map(|_| api.get::<serde_json::Value>(ORG))).await;
    assert!(results.iter().all(|r| r.is_ok()));
    let times: Vec<Duration> = requests(&e, ORG).iter().map(|r| r.at).collect();
    assert_eq!(times.len(), 200);
    let busiest = max_in_window(&times, Duration::from_secs(1));
    assert!(busiest <= 10, "{busiest} requests within one second at the emulator");
    // Evenly spaced, not slower than the budget needs either.
    assert!(started.elapsed() < Duration::from_secs(23), "{:?}", started.elapsed());
}

#[actix::test]
async fn a_429_retry_after_window_is_honoured_by_every_caller() {
    let e = emulator(EmulatorSettings {
        requests_per_minute: 0,
        ..Default::default()
    });
    let registry = Registry::new();
    let tokens = good_provider(&e, &registry);
    let api = client(&e, tokens, 600);
    let _: serde_json::Value = api.get(ORG).await.unwrap();
    e.inject(Fault::RateLimit {
        count: 1,
        retry_after_s: 2,
        path: None,
    });
    let results = join_all((0..30).map(|_| api.get::<serde_json::Value>(ORG))).await;
    assert!(results.iter().all(|r| r.is_ok()), "the 429 was retried: {results:?}");
    let log = requests(&e, ORG);
    let limited: Vec<&LoggedRequest> = log.iter().filter(|r| r.status == 429).collect();
    assert_eq!(limited.len(), 1);
    let at = limited[0].at;
    let inside: Vec<Duration> = log
        .iter()
        .filter(|r| r.at > at && r.at < at + Duration::from_secs(2))
        .map(|r| r.at - at)
        .collect();
    assert!(inside.is_empty(), "requests inside the Retry-After window: {inside:?}");
    let after = log.iter().filter(|r| r.at >= at + Duration::from_secs(2)).count();
    assert!(after >= 1, "calls resumed after the window");
    // Still within the rate after the window opened: no burst.
    let times: Vec<Duration> = log.iter().map(|r| r.at).collect();
    assert!(max_in_window(&times, Duration::from_secs(1)) <= 10);
}

/// The emulator allows 20 requests a minute and says so in its
/// `inin-ratelimit-*` headers; our budget would send 10 a second. After
/// the first answer the budget spreads what is left over the window
/// instead of running into 429s.
#[actix::test]
async fn the_platforms_rate_limit_headers_slow_the_budget_before_any_429() {
    let e = emulator(EmulatorSettings {
        requests_per_minute: 20,
        ..Default::default()
    });
    let registry = Registry::new();
    let tokens = good_provider(&e, &registry);
    let budget = RequestBudget::new(600);
    let api = ApiClient::new(&e.url(), Tokens::new(tokens), budget.clone(), RetryPolicy::default());
    let _: serde_json::Value = api.get(ORG).await.unwrap();
    // 19 left for up to 60 s: about one every 3 s, not one every 100 ms.
    let pace = budget.platform_pace().expect("paced by the platform's headers");
    assert!(pace >= Duration::from_secs(2), "{pace:?}");
    let calls = join_all((0..10).map(|_| api.get::<serde_json::Value>(ORG)));
    // At our own rate the ten would be done in about a second.
    let finished = tokio::time::timeout(Duration::from_millis(1500), calls).await;
    assert!(finished.is_err(), "the calls kept to the platform's pace");
    let log = requests(&e, ORG);
    assert!(log.len() <= 2, "{} requests reached the emulator", log.len());
    assert!(
        log.iter().all(|r| r.status == 200),
        "no 429: {:?}",
        log.iter().map(|r| r.status).collect::<Vec<_>>()
    );
}

#[actix::test]
async fn errors_carry_the_genesys_body_and_context_id() {
    let e = emulator(EmulatorSettings::default());
    let registry = Registry::new();
    let tokens = good_provider(&e, &registry);
    let api = client(&e, tokens, 60_000);
    let err = api.get::<serde_json::Value>("/api/v2/no/such/thing").await.unwrap_err();
    let body = err.genesys().expect("the Genesys error body");
    assert_eq!((err.status(), body.code.as_str()), (Some(404), "not.found"));
    assert_eq!(body.context_id.len(), 36);
    assert!(err.to_string().contains(&body.context_id), "{err}");
    // 5xx are retried, then reported.
    e.inject(Fault::Error {
        count: 2,
        status: 503,
        path: Some(ORG.into()),
    });
    let _: serde_json::Value = api.get(ORG).await.expect("retried past two 503s");
    assert_eq!(
        requests(&e, ORG).iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 503, 200]
    );
}

/// A login host that answers every token request with `body`.
fn fake_login(body: &'static str) -> std::net::SocketAddr {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = Vec::new();
            while read_request(&mut conn, &mut buf).is_some() {
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if conn.write_all(reply.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    addr
}

#[actix::test]
async fn a_token_lifetime_of_u64_max_is_clamped_not_a_panic() {
    let addr = fake_login(r#"{"access_token":"t","token_type":"bearer","expires_in":18446744073709551615}"#);
    let creds = Credentials {
        client_id: "id".into(),
        client_secret: Secret::new("secret"),
    };
    let component = Registry::new().register("genesys-auth", cxrelay_actors::ComponentKind::Auth, true);
    let hosts = Hosts::single(&format!("http://{addr}"));
    let tokens = TokenProvider::new(hosts, creds, TokenSettings::default(), component).start();
    let t = tokens.send(GetToken).await.unwrap().unwrap();
    assert_eq!(t.value.expose(), "t");
    assert!(t.expires_at <= std::time::Instant::now() + Duration::from_secs(48 * 3600));
    // Still serving (a panic would have stopped it).
    assert!(tokens.send(GetToken).await.unwrap().is_ok());
}
