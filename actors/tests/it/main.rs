//! Tests of the actor runtime through its public API, in one test binary.

mod common;
mod pool;
mod router;
mod stuck;
mod supervision;
