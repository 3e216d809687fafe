//! Supervision: restart failed actors from a factory, with backoff and an
//! OTP-style restart-intensity limit.
//!
//! actix's own `Supervisor` restarts only actors that stop, and a panic in a
//! handler kills an actor for good. Here a child is watched through its
//! address (`connected()`), so a panic, a stop, or a lost arbiter all count
//! as a failure.

mod intensity;
mod supervisor;

pub use intensity::RestartIntensity;
pub use supervisor::{
    Child, ChildSpec, RestartPolicy, Shutdown, StillStopping, StopChild, StopChildren, Supervise, Supervisor,
};
