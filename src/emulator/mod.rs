//! The bundled Genesys Cloud emulator: the server side of the wire
//! contract (`../shared/docs/genesys-api.md`), over real HTTP and WebSocket,
//! with faults on demand.
//!
//! It is a product feature: `cxrelay demo` runs the whole pipeline against
//! it with no credentials, `cxrelay emulator` runs it alone, and every
//! source is tested against it on loopback. Everything it generates is
//! deterministic for a seed.

pub mod analytics;
pub mod bulk;
pub mod control;
pub mod downloads;
pub mod error_body;
pub mod exports;
pub mod faults;
pub mod gate;
pub mod ids;
pub mod notifications;
pub mod oauth;
pub mod organization;
pub mod rate_limit;
pub mod recordings;
pub mod records;
pub mod request_log;
pub mod server;
pub mod settings;
pub mod state;
pub mod tokens;

pub use faults::{Fault, FaultBook, ScheduledFault};
pub use request_log::{max_in_window, LoggedRequest};
pub use server::{start, start_in_thread, EmulatorHandle};
pub use settings::{EmulatorSettings, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
pub use state::EmulatorState;
