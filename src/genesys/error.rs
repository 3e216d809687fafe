//! Errors of the Genesys client, carrying what Genesys said.

use serde::{Deserialize, Serialize};

/// Genesys's error body: `{"message","code","status","contextId",...}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GenesysError {
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Machine-readable code, e.g. `bad.request`, `too.many.requests.retry.after`.
    #[serde(default)]
    pub code: String,
    /// HTTP status repeated.
    #[serde(default)]
    pub status: u16,
    /// Genesys's request id (quote it to Genesys support).
    #[serde(default, rename = "contextId")]
    pub context_id: String,
}

/// Why obtaining a token failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// The OAuth client was refused. Names the client id, never the secret.
    #[error("OAuth client `{client_id}` was refused by {login}: {error} ({description})")]
    Refused {
        /// The client id.
        client_id: String,
        /// The login host.
        login: String,
        /// e.g. `invalid_client`.
        error: String,
        /// Genesys's description.
        description: String,
    },
    /// The login host answered something unexpected or could not be reached.
    #[error("token request to {login} failed: {message}")]
    Failed {
        /// The login host.
        login: String,
        /// Why.
        message: String,
    },
    /// Too many failures in a row: token requests are paused.
    #[error("authentication is paused after repeated failures (breaker open, retrying in {retry_in_s} s): {last}")]
    BreakerOpen {
        /// Seconds until the next attempt.
        retry_in_s: u64,
        /// The last failure.
        last: String,
    },
    /// The token provider is gone (shutting down).
    #[error("token provider stopped")]
    Stopped,
}

/// Why an API call failed (after its retries).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// Genesys answered an error status.
    #[error("{method} {path}: HTTP {status}: {} (code {}, contextId {})", .error.message, .error.code, .error.context_id)]
    Status {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Status.
        status: u16,
        /// The error body.
        error: Box<GenesysError>,
    },
    /// No token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The request did not complete (connection, timeout).
    #[error("{method} {path}: {message}")]
    Transport {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Why.
        message: String,
    },
    /// A request that creates something went out and no answer came: the
    /// platform may have carried it out, so it is not sent again blindly.
    #[error("{method} {path}: sent, but no answer came ({message}); it may have been carried out")]
    Unanswered {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Why.
        message: String,
    },
    /// The answer was not what the contract says.
    #[error("{method} {path}: unexpected answer: {message}")]
    Decode {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Why.
        message: String,
    },
}

impl ApiError {
    /// The HTTP status, if Genesys answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the request went out and its answer never came.
    pub fn is_unanswered(&self) -> bool {
        matches!(self, ApiError::Unanswered { .. })
    }

    /// The Genesys error body, if any.
    pub fn genesys(&self) -> Option<&GenesysError> {
        match self {
            ApiError::Status { error, .. } => Some(error),
            _ => None,
        }
    }
}
