//! The details jobs submitted: their state over time (QUEUED -> PENDING ->
//! FULFILLED, or FAILED; EXPIRED once the results are too old or on the
//! `expire_job` fault; CANCELLED when deleted), and the record of which
//! result pages were served (for tests).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use cxrelay_actors::event::now_ms;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::json;

use crate::emulator::faults::{Fault, FaultBook};
use crate::emulator::ids::uuid;
use crate::emulator::records::ActiveRecords;
use crate::emulator::settings::bulk::BulkSettings;
use crate::wire::{iso_ms, Interval};

const JOB: u64 = 0x004a_4f42;
/// Jobs remembered; the oldest are forgotten past this.
const MAX_JOBS: usize = 10_000;
/// Served pages remembered.
const MAX_SERVED: usize = 200_000;

/// A job's state, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Waiting to run.
    Queued,
    /// Running.
    Pending,
    /// Results can be fetched.
    Fulfilled,
    /// Ended in error (`errorMessage` says why).
    Failed,
    /// Deleted before or after it ran.
    Cancelled,
    /// Its results are gone.
    Expired,
}

impl JobState {
    /// The name as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "QUEUED",
            JobState::Pending => "PENDING",
            JobState::Fulfilled => "FULFILLED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
            JobState::Expired => "EXPIRED",
        }
    }
}

/// One submitted job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its number in submission order (0-based).
    pub no: u64,
    /// Its id.
    pub id: String,
    /// The interval asked for.
    pub interval: Interval,
    /// Its records: the conversations active in its interval, as they were
    /// when it looked.
    pub records: ActiveRecords,
    submitted: Instant,
    submitted_ms: i64,
    failure: Option<String>,
    ended: Option<JobState>,
}

impl Job {
    /// Number of records.
    pub fn len(&self) -> u64 {
        self.records.len()
    }

    /// When it was submitted (ms since the epoch).
    pub fn submitted_ms(&self) -> i64 {
        self.submitted_ms
    }

    /// True when the job holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn ready_after(s: &BulkSettings) -> Duration {
        s.job_queued + s.job_pending
    }

    /// The state now.
    pub fn state(&self, s: &BulkSettings) -> JobState {
        if let Some(st) = self.ended {
            return st;
        }
        let age = self.submitted.elapsed();
        let ready = Self::ready_after(s);
        if age < s.job_queued {
            JobState::Queued
        } else if age < ready {
            JobState::Pending
        } else if self.failure.is_some() {
            JobState::Failed
        } else if age >= ready + s.job_ttl {
            JobState::Expired
        } else {
            JobState::Fulfilled
        }
    }

    /// The body of `GET .../jobs/{jobId}`.
    pub(super) fn status_body(&self, s: &BulkSettings) -> serde_json::Value {
        let state = self.state(s);
        let completed = self.submitted_ms + Self::ready_after(s).as_millis() as i64;
        let mut body = json!({
            "state": state,
            "submissionDate": iso_ms(self.submitted_ms),
            "expirationDate": iso_ms(completed + s.job_ttl.as_millis() as i64),
        });
        if matches!(state, JobState::Fulfilled | JobState::Failed | JobState::Expired) {
            body["completionDate"] = json!(iso_ms(completed));
        }
        if let (JobState::Failed, Some(m)) = (state, &self.failure) {
            body["errorMessage"] = json!(m);
        }
        body
    }
}

/// A page of results as served (kept for tests: which pages the emulator
/// was asked for).
#[derive(Debug, Clone, Serialize)]
pub struct ServedPage {
    /// The job.
    pub job: String,
    /// Position of the page's first record in the job.
    pub offset: u64,
    /// Records in the page.
    pub count: u64,
    /// Whether the page was asked for with a cursor.
    pub with_cursor: bool,
    /// Time since the emulator started.
    #[serde(skip)]
    pub at: Duration,
}

#[derive(Debug, Default)]
struct Jobs {
    next_no: u64,
    by_id: HashMap<String, Job>,
    order: VecDeque<String>,
    served: VecDeque<ServedPage>,
}

/// Every job submitted, bounded.
#[derive(Debug)]
pub struct JobBook {
    seed: u64,
    started: Instant,
    inner: Mutex<Jobs>,
}

impl JobBook {
    /// An empty book.
    pub fn new(seed: u64) -> Self {
        JobBook {
            seed,
            started: Instant::now(),
            inner: Mutex::new(Jobs::default()),
        }
    }

    /// Records a new job for `records` of `interval`.
    pub fn submit(&self, interval: Interval, records: ActiveRecords, failure: Option<String>) -> Job {
        let mut j = self.inner.lock();
        let no = j.next_no;
        j.next_no += 1;
        let job = Job {
            no,
            id: uuid(self.seed, &[JOB, no]),
            interval,
            records,
            submitted: Instant::now(),
            submitted_ms: now_ms(),
            failure,
            ended: None,
        };
        j.order.push_back(job.id.clone());
        j.by_id.insert(job.id.clone(), job.clone());
        while j.order.len() > MAX_JOBS {
            if let Some(old) = j.order.pop_front() {
                j.by_id.remove(&old);
            }
        }
        job
    }

    /// The job `id`, if known.
    pub fn get(&self, id: &str) -> Option<Job> {
        self.inner.lock().by_id.get(id).cloned()
    }

    /// Every job, in submission order.
    pub fn all(&self) -> Vec<Job> {
        let j = self.inner.lock();
        j.order.iter().filter_map(|id| j.by_id.get(id).cloned()).collect()
    }

    /// Ends a job in `state` (false: no such job).
    pub(super) fn end(&self, id: &str, state: JobState) -> bool {
        match self.inner.lock().by_id.get_mut(id) {
            Some(job) => {
                job.ended = Some(state);
                true
            }
            None => false,
        }
    }

    /// Applies armed `expire_job` faults: the named job, or every job not
    /// already ended, becomes EXPIRED.
    pub fn absorb_faults(&self, book: &FaultBook) {
        let faults = book.take_all(|f| matches!(f, Fault::ExpireJob { .. }));
        for f in faults {
            let Fault::ExpireJob { job } = f else { continue };
            let mut j = self.inner.lock();
            for (id, job_entry) in j.by_id.iter_mut() {
                let hit = job.as_deref().is_none_or(|want| want == id.as_str());
                let settled = matches!(job_entry.ended, Some(JobState::Cancelled) | Some(JobState::Expired));
                if hit && !settled {
                    tracing::info!(job = %id, "emulator: job expired (fault)");
                    job_entry.ended = Some(JobState::Expired);
                }
            }
        }
    }

    /// Notes a served page.
    pub fn served(&self, page: ServedPage) {
        let mut j = self.inner.lock();
        if j.served.len() >= MAX_SERVED {
            j.served.pop_front();
        }
        j.served.push_back(ServedPage {
            at: self.started.elapsed(),
            ..page
        });
    }

    /// Pages served so far, oldest first.
    pub fn served_pages(&self) -> Vec<ServedPage> {
        self.inner.lock().served.iter().cloned().collect()
    }
}
