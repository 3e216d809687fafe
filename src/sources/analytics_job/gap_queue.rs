//! Gap windows waiting to be backfilled. A notifications source hands them
//! in (from any channel's thread) when a socket was down; the backfill
//! job's runner takes them into its checkpoint, which makes them durable,
//! and covers each with a details job once the data lake has it.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::genesys::interval::Interval;

/// Windows handed in and not yet taken.
#[derive(Clone, Default)]
pub struct GapQueue {
    windows: Arc<Mutex<Vec<Interval>>>,
    arrived: Arc<Notify>,
}

impl std::fmt::Debug for GapQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GapQueue")
            .field("waiting", &self.windows.lock().len())
            .finish()
    }
}

impl GapQueue {
    /// Hands in a window to cover.
    pub fn push(&self, window: Interval) {
        if window.end_ms <= window.start_ms {
            return;
        }
        self.windows.lock().push(window);
        // Stores a permit when the runner is not waiting: it will not miss it.
        self.arrived.notify_one();
    }

    /// Takes every window handed in so far.
    pub fn take(&self) -> Vec<Interval> {
        std::mem::take(&mut *self.windows.lock())
    }

    /// Waits until a window is handed in.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }
}

/// `windows` merged into the sorted, disjoint `pending`, minus `busy` (the
/// window a job is covering now): overlapping gaps of several channels
/// become one job, and nothing is fetched twice.
pub fn merge(pending: &mut Vec<Interval>, windows: Vec<Interval>, busy: Option<Interval>) {
    let mut all: Vec<Interval> = std::mem::take(pending);
    for w in windows {
        match busy {
            Some(b) => all.extend(subtract(w, b)),
            None => all.push(w),
        }
    }
    all.sort_by_key(|i| (i.start_ms, i.end_ms));
    for i in all {
        match pending.last_mut() {
            Some(last) if i.start_ms <= last.end_ms => last.end_ms = last.end_ms.max(i.end_ms),
            _ => pending.push(i),
        }
    }
}

/// `a` without the part `b` covers.
fn subtract(a: Interval, b: Interval) -> Vec<Interval> {
    if b.end_ms <= a.start_ms || b.start_ms >= a.end_ms {
        return vec![a];
    }
    let mut out = Vec::new();
    if a.start_ms < b.start_ms {
        out.push(Interval::new(a.start_ms, b.start_ms));
    }
    if b.end_ms < a.end_ms {
        out.push(Interval::new(b.end_ms, a.end_ms));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(a: i64, b: i64) -> Interval {
        Interval::new(a, b)
    }

    #[test]
    fn overlapping_gaps_merge_and_the_busy_window_is_left_out() {
        let mut pending = vec![i(100, 200)];
        merge(&mut pending, vec![i(150, 250), i(300, 400), i(10, 20)], None);
        assert_eq!(pending, [i(10, 20), i(100, 250), i(300, 400)]);
        let mut pending = Vec::new();
        merge(&mut pending, vec![i(0, 100), i(40, 60), i(90, 120)], Some(i(30, 95)));
        assert_eq!(pending, [i(0, 30), i(95, 120)]);
        let mut pending = Vec::new();
        merge(&mut pending, vec![i(40, 60)], Some(i(30, 95)));
        assert!(pending.is_empty(), "already being covered");
    }

    #[tokio::test]
    async fn a_window_handed_in_before_anyone_waits_is_not_missed() {
        let q = GapQueue::default();
        q.push(i(1, 2));
        q.push(i(5, 5));
        q.arrived().await;
        assert_eq!(q.take(), [i(1, 2)], "empty windows are ignored");
        assert!(q.take().is_empty());
    }
}
