//! The final flush: asking a sink to commit what it holds now. A sink whose
//! batch is waiting out a retry delay holds its mailbox for the whole wait,
//! so the request also travels beside the mailbox, as a [`FlushSignal`]
//! that cuts the wait short.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::Notify;

/// Commits pending events now; answers once they are durable or the
/// attempt failed.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct FlushNow;

/// A flush on its way to a sink, seen without going through its mailbox:
/// one per listener, shared by every instance of its sink.
#[derive(Clone, Default)]
pub struct FlushSignal(Arc<SignalState>);

#[derive(Default)]
struct SignalState {
    requested: AtomicBool,
    wake: Notify,
    /// Commit attempts that failed, over the sink's instances.
    failures: AtomicU64,
}

impl FlushSignal {
    /// Says a flush is coming: a retry wait under way ends now, and a
    /// failed attempt is not retried until the flush has answered.
    pub fn request(&self) {
        self.0.requested.store(true, Ordering::SeqCst);
        self.0.wake.notify_waiters();
    }

    /// Ends a retry wait under way, once: the sink tries again now and,
    /// if that fails too, goes back to its normal pace (used at shutdown
    /// before the queues drain, so a target that is back gets them at
    /// once).
    pub fn nudge(&self) {
        self.0.wake.notify_waiters();
    }

    /// Whether a flush is coming.
    pub fn is_requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }

    /// Counts a failed commit attempt.
    pub fn attempt_failed(&self) {
        self.0.failures.fetch_add(1, Ordering::SeqCst);
    }

    /// Commit attempts that failed so far: one more after a nudge means
    /// the target is still down.
    pub fn failures(&self) -> u64 {
        self.0.failures.load(Ordering::SeqCst)
    }

    /// The flush has answered: retries go back to their normal pace.
    pub fn clear(&self) {
        self.0.requested.store(false, Ordering::SeqCst);
    }

    /// Sleeps for `delay`, or less if a flush is requested meanwhile (or
    /// already was) or a nudge comes; answers whether it was cut short.
    pub async fn sleep(&self, delay: Duration) -> bool {
        let woken = self.0.wake.notified();
        tokio::pin!(woken);
        // Registered before the check, so a request between the two is
        // not missed.
        woken.as_mut().enable();
        if self.is_requested() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => false,
            _ = woken => true,
        }
    }
}

/// Asks a sink to commit what it holds (the final flush at shutdown).
#[derive(Clone)]
pub struct Flusher {
    /// The sink instance's mailbox.
    pub recipient: Recipient<FlushNow>,
    /// Its listener's signal.
    pub signal: FlushSignal,
}

impl Flusher {
    /// Ends the sink's retry wait, if one is under way (see
    /// [`FlushSignal::nudge`]).
    pub fn nudge(&self) {
        self.signal.nudge();
    }

    /// Commits what the sink holds without waiting out a retry delay;
    /// answers whether everything it received is durable.
    pub async fn flush(&self) -> Result<(), String> {
        self.signal.request();
        match self.recipient.send(FlushNow).await {
            Ok(answer) => answer,
            Err(e) => Err(format!("the sink did not answer: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minute's sleep on a fresh signal, and `then` done to the signal a
    /// second into it: the signal, once the sleep has ended cut short.
    async fn a_second_into_a_minute(then: fn(&FlushSignal)) -> FlushSignal {
        let signal = FlushSignal::default();
        let started = tokio::time::Instant::now();
        let sleeping = tokio::spawn({
            let signal = signal.clone();
            async move { signal.sleep(Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        then(&signal);
        assert!(sleeping.await.unwrap(), "cut short");
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        signal
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_cuts_a_sleep_short_whether_it_comes_before_or_during_it() {
        let signal = a_second_into_a_minute(FlushSignal::request).await;
        let started = tokio::time::Instant::now();
        // Still requested: a later wait does not start at all.
        assert!(signal.sleep(Duration::from_secs(60)).await);
        assert_eq!(started.elapsed(), Duration::ZERO);
        // Cleared: waits run their full length again.
        signal.clear();
        assert!(!signal.sleep(Duration::from_secs(5)).await);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_nudge_ends_the_sleep_under_way_only() {
        let signal = a_second_into_a_minute(FlushSignal::nudge).await;
        assert!(!signal.is_requested());
        // Nothing is kept for the next sleep.
        let started = tokio::time::Instant::now();
        assert!(!signal.sleep(Duration::from_secs(5)).await);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
