//! A configured Genesys org as sources use it: its hosts, the token
//! provider of its OAuth client, and the request budget they all share.

use std::sync::Arc;

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
