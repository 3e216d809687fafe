//! Supervision: restart failed actors from a factory, with backoff and an
//! OTP-style restart-intensity limit.
//!
//! actix's own `Supervisor` restarts only actors that stop, and a panic in a
//! handler kills an actor for good. Here a child is watched through its
//! address (`connected()`), so a panic, a stop, or a lost arbiter all count
//! as a failure. A child that reports progress is also watched for being
//! stuck: holding work without progress is a failure too.

mod intensity;
mod stuck;
mod supervisor;

pub use intensity::RestartIntensity;
pub use stuck::StuckCheck;
pub use supervisor::{
    Child, ChildSpec, RestartPolicy, Shutdown, StillStopping, StopChild, StopChildren, Supervise, Supervisor,
};
