//! The table of issued OAuth tokens that every API request is checked
//! against.

use std::time::{Duration, Instant};

use dashmap::DashMap;

/// An issued token.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The client it was issued to.
    pub client_id: String,
    /// When it stops working.
    pub expires_at: Instant,
    /// Revoked early (fault `expire_tokens`).
    pub revoked: bool,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Unknown, expired or revoked.
    Invalid,
}

/// The holder of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The OAuth client.
    pub client_id: String,
    /// The token.
    pub token: String,
}

/// Issued tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: DashMap<String, Issued>,
}

impl Tokens {
    /// Issues a token for `client_id` valid for `lifetime`.
    pub fn issue(&self, client_id: &str, lifetime: Duration) -> String {
        let token: String = (0..4).map(|_| format!("{:016x}", rand::random::<u64>())).collect();
        // Forget tokens long dead so the table stays small over months.
        let now = Instant::now();
        self.issued
            .retain(|_, t| t.expires_at + Duration::from_secs(3600) > now);
        self.issued.insert(
            token.clone(),
            Issued {
                client_id: client_id.to_string(),
                expires_at: now + lifetime,
                revoked: false,
            },
        );
        token
    }

    /// The client a header's bearer token belongs to, if it is valid now.
    pub fn check(&self, authorization: Option<&str>) -> Result<String, Refusal> {
        self.caller(authorization).map(|c| c.client_id)
    }

    /// Who calls with this header: the client and the token itself (the
    /// platform scopes rate limits and channel listings per token).
    pub fn caller(&self, authorization: Option<&str>) -> Result<Caller, Refusal> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .ok_or(Refusal::Missing)?
            .trim();
        let t = self.issued.get(token).ok_or(Refusal::Invalid)?;
        if t.revoked || Instant::now() >= t.expires_at {
            return Err(Refusal::Invalid);
        }
        Ok(Caller {
            client_id: t.client_id.clone(),
            token: token.to_string(),
        })
    }

    /// Revokes one token (a `token_revoked` system message).
    pub fn revoke(&self, token: &str) {
        if let Some(mut t) = self.issued.get_mut(token) {
            t.revoked = true;
        }
    }

    /// Revokes every token issued so far.
    pub fn revoke_all(&self) {
        for mut t in self.issued.iter_mut() {
            t.revoked = true;
        }
    }

    /// Tokens issued and not yet expired.
    pub fn live(&self) -> usize {
        let now = Instant::now();
        self.issued.iter().filter(|t| !t.revoked && t.expires_at > now).count()
    }
}
