//! A configured Genesys org as sources use it: its hosts, the token
//! provider of its OAuth client, and the request budget they all share.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;

use super::api_client::{ApiClient, RequestBudget, RetryPolicy};
use super::hosts::Hosts;
use super::token_provider::Tokens;

/// What a source needs to call the org. `Send` and cheap to clone; build
/// the (thread-bound) [`ApiClient`] with [`GenesysOrg::client`] on the
/// thread that uses it.
#[derive(Clone)]
pub struct GenesysOrg {
    /// API and login base URLs.
    pub hosts: Hosts,
    /// The OAuth client's token provider.
    pub tokens: Tokens,
    /// The request budget shared by every source of this org.
    pub budget: Arc<RequestBudget>,
    /// Retry settings of API calls.
    pub retry: RetryPolicy,
    /// The notification channels this process uses.
    pub channels: ChannelClaims,
}

/// The notification channels in use by this process's sources: a channel
/// listed by the platform that nobody here claims can be taken over (one
/// created by a request whose answer was lost).
#[derive(Clone, Default, Debug)]
pub struct ChannelClaims(Arc<Mutex<HashSet<String>>>);

impl ChannelClaims {
    /// Claims `id`; false if it was claimed already.
    pub fn claim(&self, id: &str) -> bool {
        self.0.lock().insert(id.to_string())
    }

    /// Lets `id` go.
    pub fn release(&self, id: &str) {
        self.0.lock().remove(id);
    }

    /// Whether `id` is claimed.
    pub fn is_claimed(&self, id: &str) -> bool {
        self.0.lock().contains(id)
    }
}

impl GenesysOrg {
    /// An API client for the current thread.
    pub fn client(&self) -> ApiClient {
        ApiClient::new(
            &self.hosts.api,
            self.tokens.clone(),
            self.budget.clone(),
            self.retry.clone(),
        )
    }
}
