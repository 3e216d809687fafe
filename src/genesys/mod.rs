//! The client side of the Genesys Cloud wire contract
//! (`../shared/docs/genesys-api.md`): hosts, OAuth tokens, the API client.

pub mod api_client;
pub mod error;
pub mod hosts;
pub mod interval;
pub mod notification;
pub mod org;
pub mod rate_window;
pub mod token_provider;
pub mod topics;

pub use api_client::{ApiClient, RequestBudget, RetryPolicy};
pub use error::{ApiError, GenesysError, TokenError};
pub use hosts::Hosts;
pub use org::{ChannelClaims, GenesysOrg};
pub use token_provider::{AccessToken, Credentials, GetToken, TokenProvider, TokenSettings, Tokens};
