//! Serving generated files, for recordings and exports alike: `Range`
//! requests over content produced from any offset ([`ranged`]), behind
//! time-limited signed URLs ([`signed_url`]).

pub mod ranged;
pub mod signed_url;

pub use ranged::{respond, Content, Download};
pub use signed_url::{UrlRefusal, UrlSigner};
