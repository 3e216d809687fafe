//! The bundled Genesys Cloud emulator: the server side of the wire
//! contract (`../shared/docs/genesys-api.md`), over real HTTP and WebSocket,
//! with faults on demand.
//!
//! It is a product feature: `cxrelay demo` runs the whole pipeline against
//! it with no credentials, `cxrelay emulator` runs it alone, and every
//! source is tested against it on loopback. Everything it generates is
//! deterministic for a seed. It is the cargo feature `emulator` (on by
//! default), and from the rest of the crate it uses only [`crate::wire`].
//!
//! Its modules form layers; each uses only those below it:
//!
//! 1. Settings and shared parts: [`settings`] (every `[emulator.*]`
//!    section), [`faults`], [`ids`], [`error_body`], [`records`],
//!    [`tokens`], [`rate_limit`], [`request_log`], [`downloads`], [`hosts`].
//! 2. The state of each API area: the analytics job book, the recording
//!    book, the export catalog ([`bulk`] gathers them), the notification
//!    channel table with its records and traffic control.
//! 3. [`state`]: the emulator's world, holding all of the above.
//! 4. The endpoints of each area, over the world: [`oauth`],
//!    [`organization`], [`analytics`], [`recordings`], [`exports`],
//!    [`notifications`], [`control`], and the [`gate`] in front of them.
//! 5. [`server`]: the routes and the running server.

pub mod analytics;
pub mod bulk;
pub mod control;
pub mod downloads;
pub mod error_body;
pub mod exports;
pub mod faults;
pub mod gate;
pub mod hosts;
pub mod ids;
#[cfg(test)]
mod layering;
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
pub use hosts::HostAddrs;
pub use request_log::{max_in_window, LoggedRequest};
pub use server::{start, start_in_thread, EmulatorHandle};
pub use settings::{EmulatorSettings, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
pub use state::EmulatorState;
