//! What ingest counts per source: events accepted and duplicates dropped.
//! Kept in atomics on the submit path (one map lookup per batch), shown in
//! `/status` (`ingest`) and copied into the recorder at scrape time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use serde::Serialize;

/// Events ingest accepted (journaled, with the journal on), by source.
pub const INGEST_EVENTS_TOTAL: &str = "cxrelay_ingest_events_total";
/// Events ingest dropped as duplicates of ones already accepted, by source.
pub const INGEST_DUPLICATES_TOTAL: &str = "cxrelay_ingest_duplicates_total";

/// Every metric named here.
pub const METRICS: &[&str] = &[INGEST_EVENTS_TOTAL, INGEST_DUPLICATES_TOTAL];

#[derive(Debug, Default)]
struct Counts {
    accepted: AtomicU64,
    duplicates: AtomicU64,
}

/// One source's counts, as `/status` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SourceIngest {
    /// Events accepted.
    pub events: u64,
    /// Events dropped as duplicates.
    pub duplicates: u64,
}

/// Ingest's counters, by event source name.
#[derive(Debug, Default, Clone)]
pub struct IngestStats {
    // Looked up once per batch; foldhash costs a fraction of SipHash.
    by_source: Arc<DashMap<Arc<str>, Arc<Counts>, foldhash::fast::RandomState>>,
}

impl IngestStats {
    /// Counts a batch of `source` that ingest took.
    pub fn count(&self, source: &Arc<str>, accepted: usize, duplicates: usize) {
        let counts = match self.by_source.get(source) {
            Some(c) => c.clone(),
            None => self.by_source.entry(source.clone()).or_default().clone(),
        };
        counts.accepted.fetch_add(accepted as u64, Ordering::Relaxed);
        counts.duplicates.fetch_add(duplicates as u64, Ordering::Relaxed);
    }

    /// Every source's counts, by name.
    pub fn snapshot(&self) -> BTreeMap<String, SourceIngest> {
        self.by_source
            .iter()
            .map(|e| {
                let c = e.value();
                (
                    e.key().to_string(),
                    SourceIngest {
                        events: c.accepted.load(Ordering::Relaxed),
                        duplicates: c.duplicates.load(Ordering::Relaxed),
                    },
                )
            })
            .collect()
    }

    /// Copies the counts into the recorder (at scrape time).
    pub fn emit(&self) {
        for (source, c) in self.snapshot() {
            metrics::counter!(INGEST_EVENTS_TOTAL, "source" => source.clone()).absolute(c.events);
            metrics::counter!(INGEST_DUPLICATES_TOTAL, "source" => source).absolute(c.duplicates);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_source() {
        let s = IngestStats::default();
        let (a, b): (Arc<str>, Arc<str>) = ("queues".into(), "hook".into());
        s.count(&a, 3, 0);
        s.count(&a, 2, 1);
        s.count(&b, 0, 4);
        let snap = s.snapshot();
        assert_eq!(
            snap["queues"],
            SourceIngest {
                events: 5,
                duplicates: 1
            }
        );
        assert_eq!(
            snap["hook"],
            SourceIngest {
                events: 0,
                duplicates: 4
            }
        );
    }
}
