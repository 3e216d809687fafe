//! The token provider: one actor per OAuth client that owns the access
//! token. It refreshes ahead of expiry (at 80% of the lifetime), makes
//! concurrent callers share one refresh, refreshes once when a call gets a
//! 401, and after repeated failures opens a circuit breaker: callers fail
//! fast (sources pause) and readiness says why, until a trial after the
//! cool-down succeeds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use base64::Engine;
use cxrelay_actors::registry::{Component, ComponentState};
use cxrelay_actors::retry::{Backoff, BackoffPolicy};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::error::TokenError;
use super::hosts::Hosts;
use crate::config::Secret;

/// An OAuth client's credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Client id (may be shown).
    pub client_id: String,
    /// Client secret (never shown).
    pub client_secret: Secret,
}

/// Refresh and breaker settings.
#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// Refresh when this fraction of the lifetime has passed.
    pub refresh_at: f64,
    /// Consecutive failures that open the breaker.
    pub breaker_after: u32,
    /// How long the breaker stays open before a trial.
    pub breaker_cooldown: Duration,
    /// Timeout of one token request.
    pub timeout: Duration,
    /// Delays between background refresh attempts.
    pub retry: BackoffPolicy,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            refresh_at: 0.8,
            breaker_after: 5,
            breaker_cooldown: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            retry: BackoffPolicy {
                initial: Duration::from_millis(500),
                multiplier: 2.0,
                max: Duration::from_secs(30),
                randomization: 0.3,
                full_jitter: false,
            },
        }
    }
}

/// A bearer token and when it stops working.
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// The token (never logged).
    pub value: Secret,
    /// When Genesys stops accepting it.
    pub expires_at: Instant,
}

impl AccessToken {
    fn usable(&self) -> bool {
        // A token about to expire would only earn a 401.
        Instant::now() + Duration::from_secs(1) < self.expires_at
    }
}

/// Longest token lifetime believed (Genesys allows 5 min to 48 h): a
/// larger `expires_in` is a broken answer, and `Instant + u64::MAX s`
/// would overflow.
const MAX_LIFETIME: Duration = Duration::from_secs(48 * 3600);

/// The token provider's address, stable across its restarts: the
/// supervisor replaces the actor behind it.
#[derive(Clone)]
pub struct Tokens(Arc<parking_lot::RwLock<Addr<TokenProvider>>>);

impl Tokens {
    /// A handle on `addr`.
    pub fn new(addr: Addr<TokenProvider>) -> Self {
        Tokens(Arc::new(parking_lot::RwLock::new(addr)))
    }

    /// Points the handle at a restarted provider.
    pub fn replace(&self, addr: Addr<TokenProvider>) {
        *self.0.write() = addr;
    }

    /// Sends `msg` to the current provider.
    pub fn send<M>(&self, msg: M) -> actix::dev::Request<TokenProvider, M>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        TokenProvider: Handler<M>,
    {
        self.0.read().send(msg)
    }
}

/// Asks for a usable token.
#[derive(Message)]
#[rtype(result = "Result<AccessToken, TokenError>")]
pub struct GetToken;

/// Reports that a call with this token got a 401; answers a fresh token.
#[derive(Message)]
#[rtype(result = "Result<AccessToken, TokenError>")]
pub struct TokenRejected(pub Secret);

type Waiter = oneshot::Sender<Result<AccessToken, TokenError>>;

/// The token provider's `/status` details, published on every change.
#[derive(Debug, Clone, Serialize)]
pub struct TokenStatus<'a> {
    /// Where tokens come from.
    pub login: &'a str,
    /// The OAuth client (its secret is never shown).
    pub client_id: &'a str,
    /// Tokens obtained so far.
    pub tokens_issued: u64,
    /// The last token's lifetime, once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_lifetime_s: Option<u64>,
    /// `closed`, or `open` after repeated failures (until a token comes).
    pub breaker: &'static str,
}

/// Owns one OAuth client's token.
pub struct TokenProvider {
    hosts: Hosts,
    creds: Credentials,
    settings: TokenSettings,
    http: Option<awc::Client>,
    current: Option<AccessToken>,
    waiters: Vec<Waiter>,
    refreshing: bool,
    failures: u32,
    breaker_until: Option<Instant>,
    last_error: Option<TokenError>,
    backoff: Backoff,
    refresh_timer: Option<SpawnHandle>,
    component: Arc<Component>,
    issued: u64,
    lifetime: Option<Duration>,
}

impl TokenProvider {
    /// A provider for `creds` at `hosts.login`, reporting as `component`.
    pub fn new(hosts: Hosts, creds: Credentials, settings: TokenSettings, component: Arc<Component>) -> Self {
        let provider = TokenProvider {
            backoff: settings.retry.schedule(),
            hosts,
            creds,
            settings,
            http: None,
            current: None,
            waiters: Vec::new(),
            refreshing: false,
            failures: 0,
            breaker_until: None,
            last_error: None,
            refresh_timer: None,
            component,
            issued: 0,
            lifetime: None,
        };
        provider.publish();
        provider
    }

    fn publish(&self) {
        self.component.set_status(&TokenStatus {
            login: &self.hosts.login,
            client_id: &self.creds.client_id,
            tokens_issued: self.issued,
            token_lifetime_s: self.lifetime.map(|l| l.as_secs()),
            breaker: if self.breaker_until.is_some() { "open" } else { "closed" },
        });
    }

    fn answer(&mut self, ctx: &mut Context<Self>) -> ResponseFuture<Result<AccessToken, TokenError>> {
        if let Some(t) = self.current.as_ref().filter(|t| t.usable()) {
            let t = t.clone();
            return Box::pin(async move { Ok(t) });
        }
        if let Some(until) = self.breaker_until {
            let now = Instant::now();
            if now < until {
                let err = TokenError::BreakerOpen {
                    retry_in_s: (until - now).as_secs().max(1),
                    last: self.last_error.as_ref().map(|e| e.to_string()).unwrap_or_default(),
                };
                return Box::pin(async move { Err(err) });
            }
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        self.refresh(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(TokenError::Stopped)) })
    }

    /// Starts a token request unless one is under way (callers share it).
    fn refresh(&mut self, ctx: &mut Context<Self>) {
        if self.refreshing {
            return;
        }
        self.refreshing = true;
        let http = self.http.get_or_insert_with(awc::Client::default).clone();
        let fut = request_token(
            http,
            self.hosts.login.clone(),
            self.creds.clone(),
            self.settings.timeout,
        );
        ctx.spawn(fut.into_actor(self).map(|res, this, ctx| this.refreshed(res, ctx)));
    }

    fn refreshed(&mut self, res: Result<(String, u64), TokenError>, ctx: &mut Context<Self>) {
        self.refreshing = false;
        match res {
            Ok((value, expires_in)) => {
                let lifetime = Duration::from_secs(expires_in.max(1)).min(MAX_LIFETIME);
                let now = Instant::now();
                let token = AccessToken {
                    value: Secret::new(value),
                    expires_at: now.checked_add(lifetime).unwrap_or(now),
                };
                self.current = Some(token.clone());
                self.failures = 0;
                self.breaker_until = None;
                self.last_error = None;
                self.backoff.reset();
                self.issued += 1;
                self.component.set_state(ComponentState::Running);
                self.component.clear_error();
                self.lifetime = Some(lifetime);
                self.publish();
                // Refresh ahead of expiry so that callers never wait.
                if let Some(h) = self.refresh_timer.take() {
                    ctx.cancel_future(h);
                }
                let ahead = lifetime.mul_f64(self.settings.refresh_at.clamp(0.1, 0.95));
                self.refresh_timer = Some(ctx.run_later(ahead, |this, ctx| {
                    this.refresh_timer = None;
                    this.refresh(ctx);
                }));
                for w in self.waiters.drain(..) {
                    let _ = w.send(Ok(token.clone()));
                }
            }
            Err(e) => {
                self.failures += 1;
                tracing::warn!(error = %e, failures = self.failures, "token request failed");
                self.last_error = Some(e.clone());
                let opened = self.failures >= self.settings.breaker_after;
                if opened {
                    self.breaker_until = Some(Instant::now() + self.settings.breaker_cooldown);
                    self.publish();
                    self.component
                        .fail(ComponentState::Paused, format!("authentication breaker open: {e}"));
                } else {
                    self.component.record_error(e.to_string());
                }
                let answer = if opened {
                    TokenError::BreakerOpen {
                        retry_in_s: self.settings.breaker_cooldown.as_secs().max(1),
                        last: e.to_string(),
                    }
                } else {
                    e
                };
                for w in self.waiters.drain(..) {
                    let _ = w.send(Err(answer.clone()));
                }
                // A proactive refresh that failed while the token is still
                // good tries again in the background.
                if self.current.as_ref().is_some_and(|t| t.usable()) && !opened {
                    let delay = self.backoff.next_delay();
                    ctx.run_later(delay, |this, ctx| this.refresh(ctx));
                }
            }
        }
    }
}

impl Actor for TokenProvider {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.component.set_state(ComponentState::Starting);
        self.publish();
    }
}

impl Handler<GetToken> for TokenProvider {
    type Result = ResponseFuture<Result<AccessToken, TokenError>>;

    fn handle(&mut self, _: GetToken, ctx: &mut Self::Context) -> Self::Result {
        self.answer(ctx)
    }
}

impl Handler<TokenRejected> for TokenProvider {
    type Result = ResponseFuture<Result<AccessToken, TokenError>>;

    fn handle(&mut self, msg: TokenRejected, ctx: &mut Self::Context) -> Self::Result {
        // Only the token that failed is dropped: if another caller already
        // got a new one, this caller shares it instead of refreshing again.
        if self.current.as_ref().is_some_and(|t| t.value == msg.0) {
            self.current = None;
        }
        self.answer(ctx)
    }
}

impl Handler<cxrelay_actors::supervision::Shutdown> for TokenProvider {
    type Result = ();
    fn handle(&mut self, _: cxrelay_actors::supervision::Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    description: String,
}

/// One client-credentials request. Answers the token and its lifetime.
async fn request_token(
    http: awc::Client,
    login: String,
    creds: Credentials,
    timeout: Duration,
) -> Result<(String, u64), TokenError> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        creds.client_id,
        creds.client_secret.expose()
    ));
    let failed = |message: String| TokenError::Failed {
        login: login.clone(),
        message,
    };
    let mut res = http
        .post(format!("{login}/oauth/token"))
        .timeout(timeout)
        .insert_header(("authorization", format!("Basic {basic}")))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .send_body("grant_type=client_credentials")
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = res.status();
    let body = res.body().limit(64 * 1024).await.map_err(|e| failed(e.to_string()))?;
    if status.is_success() {
        let t: TokenBody =
            serde_json::from_slice(&body).map_err(|e| failed(format!("unexpected token answer: {e}")))?;
        // Genesys's default lifetime when it does not say.
        return Ok((t.access_token, t.expires_in.unwrap_or(86_399)));
    }
    if status.as_u16() == 400 || status.as_u16() == 401 {
        let e: TokenErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        return Err(TokenError::Refused {
            client_id: creds.client_id.clone(),
            login: login.clone(),
            error: if e.error.is_empty() {
                format!("HTTP {status}")
            } else {
                e.error
            },
            description: e.description,
        });
    }
    Err(failed(format!("HTTP {status}")))
}
