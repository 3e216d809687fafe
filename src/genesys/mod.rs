//! The client side of the Genesys Cloud wire contract
//! (`../shared/docs/genesys-api.md`).

pub mod notification;
