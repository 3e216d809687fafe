//! The client side of the wire contract against the bundled emulator:
//! tokens (refresh ahead of expiry, 401 handling, refusals, the breaker)
//! and the shared request budget (rate, Retry-After).

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use common::*;
use cxrelay::config::Secret;
use cxrelay::emulator::{EmulatorHandle, EmulatorSettings};
use cxrelay::genesys::{
    ApiClient, Credentials, GetToken, Hosts, RequestBudget, RetryPolicy, TokenProvider, TokenSettings,
};
use cxrelay_actors::Registry;

fn provider(e: &EmulatorHandle, secret: &str, settings: TokenSettings, registry: &Registry) -> Addr<TokenProvider> {
    let creds = Credentials {
        client_id: cxrelay::emulator::DEFAULT_CLIENT_ID.into(),
        client_secret: Secret::new(secret),
    };
    let component = registry.register("genesys-auth", "auth", true);
    TokenProvider::new(Hosts::single(&e.url()), creds, settings, component).start()
}

fn client(e: &EmulatorHandle, tokens: Addr<TokenProvider>, per_minute: u32) -> ApiClient {
    ApiClient::new(&e.url(), tokens, RequestBudget::new(per_minute), RetryPolicy::default())
}

#[actix::test]
async fn a_token_is_obtained_and_used() {
    let e = emulator(EmulatorSettings::default());
    let registry = Registry::new();
    let tokens = provider(
        &e,
        cxrelay::emulator::DEFAULT_CLIENT_SECRET,
        TokenSettings::default(),
        &registry,
    );
    let api = client(&e, tokens.clone(), 6000);
    let org: serde_json::Value = api.get("/api/v2/organizations/me").await.unwrap();
    assert_eq!(org["state"], "active");
    let t = tokens.send(GetToken).await.unwrap().unwrap();
    assert!(t.expires_at > std::time::Instant::now() + Duration::from_secs(86_000));
    let _ = Arc::strong_count(e.state());
}
