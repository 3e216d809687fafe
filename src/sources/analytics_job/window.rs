//! Which interval to fetch next: a fixed interval once, or rolling windows
//! of `every` that stay `lag` behind now and never reach past the data
//! lake's availability, so that no window ever includes "now".

use std::time::Duration;

use crate::genesys::interval::Interval;

/// Longest interval one job asks for when catching up.
pub const MAX_JOB_SPAN_MS: i64 = 24 * 3600 * 1000;

/// What a source fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// One interval.
    Fixed(Interval),
    /// Consecutive windows of `every`, aligned to multiples of `every`
    /// since the epoch.
    Rolling {
        /// Window length.
        every: Duration,
        /// How far behind now a window must end.
        lag: Duration,
        /// Where the first window starts (default: the latest complete
        /// window).
        start: Option<i64>,
        /// Longest job when catching up after downtime (ms; at least
        /// `every`).
        catch_up_ms: i64,
    },
    /// The gap windows of a notifications source, handed in as they happen
    /// (see [`super::GapQueue`]); each is fetched once the data lake has
    /// it. Never finished.
    Gaps,
}

/// The next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Fetch this interval.
    Fetch(Interval),
    /// Nothing is ready; look again at this time (ms since the epoch).
    WaitUntil(i64, String),
    /// Everything configured is delivered.
    Finished,
}

impl Schedule {
    /// The next step, given what is delivered (`done_until`), the time and
    /// the data lake's availability.
    pub fn plan(&self, done_until: Option<i64>, now_ms: i64, available_ms: i64) -> Plan {
        match *self {
            Schedule::Fixed(interval) => {
                if done_until.is_some_and(|d| d >= interval.end_ms) {
                    Plan::Finished
                } else if interval.end_ms <= available_ms && interval.end_ms <= now_ms {
                    Plan::Fetch(interval)
                } else {
                    let behind = (interval.end_ms - available_ms.min(now_ms)).clamp(1000, 60_000);
                    Plan::WaitUntil(
                        now_ms + behind,
                        "waiting for the data lake's availability to reach the end of the interval".into(),
                    )
                }
            }
            // The runner takes gap windows from its checkpoint instead.
            Schedule::Gaps => Plan::WaitUntil(now_ms + 60_000, "waiting for gaps".into()),
            Schedule::Rolling {
                every,
                lag,
                start,
                catch_up_ms,
            } => {
                let every = (every.as_millis() as i64).max(1);
                let lag = lag.as_millis() as i64;
                let horizon = (now_ms - lag).min(available_ms);
                let aligned = horizon.div_euclid(every) * every;
                let from = done_until.or(start).unwrap_or(aligned - every);
                if aligned <= from {
                    let by_clock = from + every + lag;
                    let next = if now_ms - lag >= from + every {
                        // The clock allows it; the data lake does not yet.
                        now_ms + every.min(60_000)
                    } else {
                        by_clock
                    };
                    return Plan::WaitUntil(next.max(now_ms + 1000), "waiting for the next window".into());
                }
                let span = catch_up_ms.clamp(every, MAX_JOB_SPAN_MS.max(every));
                Plan::Fetch(Interval::new(from, aligned.min(from + span)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn a_fixed_interval_waits_for_availability_then_finishes() {
        let i = Interval::new(10 * MIN, 20 * MIN);
        let s = Schedule::Fixed(i);
        assert_eq!(s.plan(None, 100 * MIN, 100 * MIN), Plan::Fetch(i));
        assert!(matches!(s.plan(None, 100 * MIN, 15 * MIN), Plan::WaitUntil(..)));
        assert_eq!(s.plan(Some(20 * MIN), 100 * MIN, 100 * MIN), Plan::Finished);
    }

    #[test]
    fn rolling_windows_never_include_now_nor_pass_availability() {
        let s = Schedule::Rolling {
            every: Duration::from_secs(300),
            lag: Duration::from_secs(60),
            start: None,
            catch_up_ms: MAX_JOB_SPAN_MS,
        };
        // Now 12:03, availability 12:02: the latest complete window before
        // 12:02 is 11:55-12:00.
        let now = 12 * 60 * MIN + 3 * MIN;
        let first = s.plan(None, now, now - MIN);
        assert_eq!(first, Plan::Fetch(Interval::new(now - 8 * MIN, now - 3 * MIN)));
        let Plan::Fetch(w) = first else { unreachable!() };
        assert!(w.end_ms <= now - MIN);
        // Done until 12:00: the next window ends 12:05, allowed at 12:06.
        match s.plan(Some(w.end_ms), now, now - MIN) {
            Plan::WaitUntil(t, _) => assert_eq!(t, w.end_ms + 6 * MIN),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.plan(Some(w.end_ms), w.end_ms + 6 * MIN, w.end_ms + 6 * MIN),
            Plan::Fetch(Interval::new(w.end_ms, w.end_ms + 5 * MIN))
        );
        // The clock allows the window but the data lake lags: wait for it.
        assert!(matches!(
            s.plan(Some(w.end_ms), w.end_ms + 7 * MIN, w.end_ms + MIN),
            Plan::WaitUntil(..)
        ));
        // Far behind: catch up a day at a time.
        let old = Schedule::Rolling {
            every: Duration::from_secs(300),
            lag: Duration::ZERO,
            start: Some(0),
            catch_up_ms: MAX_JOB_SPAN_MS,
        };
        assert_eq!(
            old.plan(None, 10 * MAX_JOB_SPAN_MS, 10 * MAX_JOB_SPAN_MS),
            Plan::Fetch(Interval::new(0, MAX_JOB_SPAN_MS))
        );
        // Or a window at a time, if so configured.
        let windowed = Schedule::Rolling {
            every: Duration::from_secs(300),
            lag: Duration::ZERO,
            start: Some(0),
            catch_up_ms: 300_000,
        };
        assert_eq!(
            windowed.plan(None, 10 * MAX_JOB_SPAN_MS, 10 * MAX_JOB_SPAN_MS),
            Plan::Fetch(Interval::new(0, 300_000))
        );
    }
}
