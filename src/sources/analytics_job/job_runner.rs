//! The job loop of an analytics job source: plan a window, submit a job,
//! poll it, page its results with prefetch, commit each page with its
//! checkpoint, and recover from stale cursors, gone jobs and failures.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use cxrelay_actors::event::now_ms;
use cxrelay_actors::registry::{ComponentState, Progress};
use cxrelay_actors::retry::BackoffPolicy;
use futures_util::future::{select, Either};

use super::checkpoint::{Checkpoint, JobProgress};
use super::jobs_api::{JobStatus, JobsApi, ResultsPage};
use super::page::{page_events, PageContext};
use super::page_fetcher::{channel, fetch_pages, Fetched};
use super::telemetry::{
    AnalyticsJobStatus, JobFailed, JobResubmitted, JobSubmitted, PageCommitted, ResubmitReason, SubmissionUnanswered,
    WindowDelivered,
};
use super::window::{Plan, Schedule};
use super::AnalyticsJobSettings;
use crate::genesys::interval::{iso_ms, Interval};
use crate::genesys::ApiError;
use crate::ingest::IngestBatch;
use crate::sources::checkpoint::JsonCheckpoint;
use crate::sources::delivery::{Delivery, RunEnd as Stop};

/// Resubmissions of one window (stale cursors, gone jobs) before giving up:
/// past this something is wrong beyond a transient fault.
const MAX_RESUBMISSIONS: u32 = 20;

/// How paging a job ended.
enum Paged {
    /// Every page is committed.
    Complete,
    /// The cursor is refused while the job is still there: resubmit the
    /// rest.
    Stale(String),
    /// The job expired, was cancelled or is unknown: resubmit the rest.
    Gone(String),
    /// Fetching failed after the client's retries: try again from the
    /// saved cursor.
    Retry(String),
}

/// How a job settled.
#[derive(Debug)]
enum Settled {
    /// Its results can be paged.
    Fulfilled,
    /// FAILED, with the job's message.
    Failed(String),
    /// EXPIRED, CANCELLED or unknown.
    Gone(String),
}

/// API errors that no retry will fix.
fn is_fatal(e: &ApiError) -> bool {
    matches!(e.status(), Some(400 | 403 | 404 | 405 | 413 | 422))
}

/// The longest wait between attempts of a call that keeps failing.
pub(super) const TRANSIENT_MAX_DELAY: Duration = Duration::from_secs(60);

fn transient_policy() -> BackoffPolicy {
    BackoffPolicy {
        initial: Duration::from_secs(1),
        multiplier: 2.0,
        max: TRANSIENT_MAX_DELAY,
        randomization: 0.3,
        full_jitter: false,
    }
}

pub(super) struct JobRunner {
    s: Arc<AnalyticsJobSettings>,
    api: JobsApi,
    out: Delivery,
    cp: Checkpoint,
    checkpointing: bool,
    source: Arc<str>,
    topic: Arc<str>,
    /// This instance's progress report: every API call that finishes
    /// (answered or failed) and every page committed is a unit; it is busy
    /// from the moment it has a window to fetch until that is delivered.
    progress: Arc<Progress>,
    status: AnalyticsJobStatus,
}

impl JobRunner {
    pub(super) fn new(
        s: Arc<AnalyticsJobSettings>,
        api: JobsApi,
        out: Delivery,
        progress: Arc<Progress>,
        mut cp: Checkpoint,
        checkpointing: bool,
    ) -> Self {
        if let Schedule::Fixed(i) = s.schedule {
            let other_window = cp.window.is_some_and(|w| w != i);
            let other_end = cp.done_until.is_some_and(|d| d != i.end_ms);
            if other_window || other_end {
                tracing::warn!(source = %s.name, interval = %i,
                    "the configured interval changed since the checkpoint was saved; starting it from the beginning");
                cp = Checkpoint::default();
            }
        }
        let status = AnalyticsJobStatus {
            resubmissions: cp.resubmissions,
            job_failures: cp.failures,
            ..AnalyticsJobStatus::new(&s)
        };
        JobRunner {
            source: Arc::from(s.name.as_str()),
            topic: Arc::from(s.topic.as_str()),
            out: out.reporting(progress.clone()),
            progress,
            s,
            api,
            cp,
            checkpointing,
            status,
        }
    }

    /// Shows the status as it now is.
    fn publish(&self) {
        self.out.component.set_status(&self.status);
    }

    fn phase(&mut self, phase: &str) {
        self.status.phase = Some(phase.to_string());
        self.publish();
    }

    /// Runs until everything configured is delivered, the source fails, or
    /// the service stops; then stays put (its state says why).
    pub(super) async fn run(mut self) {
        let outcome = self.windows().await;
        self.progress.set_busy(false);
        match outcome {
            Ok(()) => {
                self.status.finished = true;
                self.phase("finished");
                self.out.component.set_state(ComponentState::Idle);
                tracing::info!(source = %self.source, records = self.status.records, "analytics job source finished its interval");
            }
            Err(Stop::Stopped) => return,
            Err(Stop::Fatal(message)) => {
                self.phase("failed");
                tracing::error!(source = %self.source, error = %message, "analytics job source failed");
                self.out.component.fail(ComponentState::Failed, message);
            }
        }
        std::future::pending::<()>().await;
    }

    async fn windows(&mut self) -> Result<(), Stop> {
        loop {
            // A window in progress is finished first, whatever the clock.
            let window = match self.cp.window {
                Some(w) => w,
                None if matches!(self.s.schedule, Schedule::Gaps) => self.next_gap().await?,
                None => {
                    let available = self
                        .call("GET jobs/availability", |api| async move { api.availability().await })
                        .await?;
                    self.status.data_available_until = Some(iso_ms(available));
                    match self.s.schedule.plan(self.cp.done_until, now_ms(), available) {
                        Plan::Finished => return Ok(()),
                        Plan::WaitUntil(at, why) => {
                            // Waiting for the clock holds no work.
                            self.progress.set_busy(false);
                            self.phase(&why);
                            self.out.component.set_state(ComponentState::Idle);
                            let wait = (at - now_ms()).max(0) as u64;
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                            continue;
                        }
                        Plan::Fetch(w) => {
                            self.cp.begin(w);
                            w
                        }
                    }
                }
            };
            self.progress.set_busy(true);
            self.out.component.set_state(ComponentState::Running);
            self.status.window = Some(window.to_string());
            // Counted per window (a resumed one keeps its counts).
            self.status.resubmissions = self.cp.resubmissions;
            self.status.job_failures = self.cp.failures;
            self.publish();
            self.fetch_window(window).await?;
            self.progress.set_busy(false);
            self.status.done_until = Some(iso_ms(window.end_ms));
            self.publish();
            WindowDelivered {
                source: &self.source,
                end_ms: window.end_ms,
            }
            .emit();
        }
    }

    /// Takes gap windows handed in since the last look into the checkpoint
    /// (merged, minus the window being covered); answers whether any came.
    fn absorb_gaps(&mut self) -> bool {
        let Some(q) = &self.s.gaps else {
            return false;
        };
        let new = q.take();
        if new.is_empty() {
            return false;
        }
        for w in &new {
            tracing::info!(source = %self.source, window = %w, "gap handed in for backfill");
        }
        let busy = self.cp.window;
        super::gap_queue::merge(&mut self.cp.pending, new, busy);
        self.status.pending_gaps = Some(self.cp.pending.len());
        self.publish();
        true
    }

    /// The next gap window to cover, once the data lake has all of it.
    /// New gaps are saved as they arrive, whatever the runner waits for.
    async fn next_gap(&mut self) -> Result<Interval, Stop> {
        loop {
            if self.absorb_gaps() {
                self.save().await?;
            }
            let Some(&w) = self.cp.pending.first() else {
                self.progress.set_busy(false);
                self.phase("waiting for gaps");
                self.out.component.set_state(ComponentState::Idle);
                if let Some(q) = self.s.gaps.clone() {
                    q.arrived().await;
                } else {
                    std::future::pending::<()>().await;
                }
                continue;
            };
            let available = self
                .call("GET jobs/availability", |api| async move { api.availability().await })
                .await?;
            self.status.data_available_until = Some(iso_ms(available));
            let now = now_ms();
            if w.end_ms <= available && w.end_ms <= now {
                self.cp.pending.remove(0);
                self.cp.begin(w);
                self.status.pending_gaps = Some(self.cp.pending.len());
                self.publish();
                return Ok(w);
            }
            self.progress.set_busy(false);
            self.phase("waiting for the data lake's availability to reach the end of the gap");
            self.out.component.set_state(ComponentState::Idle);
            let behind = (w.end_ms - available.min(now)).clamp(1000, 60_000) as u64;
            let sleep = tokio::time::sleep(Duration::from_millis(behind));
            match self.s.gaps.clone() {
                Some(q) => {
                    let arrived = q.arrived();
                    let _ = select(pin!(sleep), pin!(arrived)).await;
                }
                None => sleep.await,
            }
        }
    }

    /// Delivers `window` completely.
    async fn fetch_window(&mut self, window: Interval) -> Result<(), Stop> {
        let mut retry = transient_policy().schedule();
        loop {
            let (job, resumed) = match self.cp.job.clone() {
                Some(j) => (j, true),
                None => (self.submit(window).await?, false),
            };
            self.status.job = Some(job.id.clone());
            self.publish();
            match self.await_job(&job, resumed).await? {
                Settled::Fulfilled => {}
                Settled::Failed(message) => {
                    self.cp.failures += 1;
                    self.status.job_failures = self.cp.failures;
                    self.publish();
                    let retrying = self.cp.failures < self.s.max_job_attempts;
                    JobFailed {
                        source: &self.source,
                        job: &job.id,
                        error: &message,
                        attempt: self.cp.failures,
                        retrying,
                    }
                    .emit();
                    if !retrying {
                        return Err(Stop::Fatal(format!(
                            "details job {} for {} FAILED {} times; last error: {message}",
                            job.id, job.interval, self.cp.failures
                        )));
                    }
                    self.cp.job = None;
                    continue;
                }
                Settled::Gone(state) => {
                    self.resubmit(&job, ResubmitReason::Gone, &format!("job is {state}"))?;
                    continue;
                }
            }
            match self.page_job(window, job.clone()).await? {
                Paged::Complete => {
                    // Its results are delivered; the job can go.
                    let api = self.api.clone();
                    if let Err(e) = api.delete(&job.id).await {
                        tracing::debug!(job = %job.id, error = %e, "could not delete a finished details job");
                    }
                    self.progress.advance();
                    return Ok(());
                }
                Paged::Stale(why) => self.resubmit(&job, ResubmitReason::StaleCursor, &why)?,
                Paged::Gone(why) => self.resubmit(&job, ResubmitReason::Gone, &why)?,
                Paged::Retry(why) => {
                    let delay = retry.next_delay();
                    self.out.component.fail(ComponentState::Degraded, why);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn resubmit(&mut self, job: &JobProgress, reason: ResubmitReason, why: &str) -> Result<(), Stop> {
        self.cp.resubmissions += 1;
        self.status.resubmissions = self.cp.resubmissions;
        self.publish();
        let retrying = self.cp.resubmissions <= MAX_RESUBMISSIONS;
        JobResubmitted {
            source: &self.source,
            job: &job.id,
            reason,
            why,
            from_ms: self.cp.high_water,
            retrying,
        }
        .emit();
        if !retrying {
            return Err(Stop::Fatal(format!(
                "gave up on {} after {} resubmissions; last: {why}",
                job.interval, MAX_RESUBMISSIONS
            )));
        }
        self.cp.job = None;
        Ok(())
    }

    /// Submits a job for what is left of the window and saves it.
    async fn submit(&mut self, window: Interval) -> Result<JobProgress, Stop> {
        let interval = self.cp.remaining(window);
        self.phase("submitting");
        let id = loop {
            let submitted = self
                .call("POST details/jobs", |api| async move { api.submit(interval).await })
                .await?;
            match submitted {
                Ok(id) => break id,
                Err(e) => {
                    self.status.unanswered_submissions += 1;
                    self.publish();
                    SubmissionUnanswered {
                        source: &self.source,
                        interval,
                        error: &e.to_string(),
                    }
                    .emit();
                }
            }
        };
        JobSubmitted {
            source: &self.source,
            job: &id,
            interval,
        }
        .emit();
        let job = JobProgress {
            id,
            interval,
            cursor: None,
            pages: 0,
        };
        self.cp.job = Some(job.clone());
        self.save().await?;
        Ok(job)
    }

    /// Commits the checkpoint alone.
    async fn save(&mut self) -> Result<(), Stop> {
        if !self.checkpointing {
            return Ok(());
        }
        Ok(self.out.save_checkpoint(&self.s.name, self.cp.encode()).await?)
    }

    /// Polls until the job settles: at once when resuming after a restart,
    /// otherwise after the first delay (2 s, x1.5, up to 30 s, jittered).
    async fn await_job(&mut self, job: &JobProgress, poll_now: bool) -> Result<Settled, Stop> {
        let mut delays = self.s.poll.schedule();
        let mut first = true;
        loop {
            if !(first && poll_now) {
                tokio::time::sleep(delays.next_delay()).await;
            }
            first = false;
            self.phase("polling");
            let id = job.id.clone();
            match self
                .call("GET details/jobs/{id}", |api| {
                    let id = id.clone();
                    async move { api.status(&id).await }
                })
                .await?
            {
                JobStatus::Running(state) => self.job_state(state),
                JobStatus::Fulfilled => {
                    self.job_state("FULFILLED".into());
                    return Ok(Settled::Fulfilled);
                }
                JobStatus::Failed(message) => {
                    self.job_state("FAILED".into());
                    return Ok(Settled::Failed(message));
                }
                JobStatus::Gone(state) => {
                    self.job_state(state.clone());
                    return Ok(Settled::Gone(state));
                }
            }
        }
    }

    fn job_state(&mut self, state: String) {
        self.status.job_state = Some(state);
        self.publish();
    }

    /// Pages `job` from its saved cursor: a fetcher runs ahead while pages
    /// are committed in order.
    async fn page_job(&mut self, window: Interval, job: JobProgress) -> Result<Paged, Stop> {
        self.phase("paging");
        let (permits, tx, mut rx) = channel(self.s.prefetch);
        let fetch = fetch_pages(
            self.api.clone(),
            job.id.clone(),
            job.cursor.clone(),
            self.s.page_size,
            permits,
            tx,
        );
        let commit = async move {
            let mut page_no = job.pages;
            while let Some(fetched) = rx.recv().await {
                // A page fetched (or a fetch given up on) is a finished call.
                self.progress.advance();
                match fetched {
                    Fetched::Page { page, permit } => {
                        let last = page.cursor.as_deref().is_none_or(str::is_empty);
                        self.commit_page(window, &job.id, page_no, page).await?;
                        drop(permit);
                        page_no += 1;
                        if last {
                            return Ok(Paged::Complete);
                        }
                    }
                    Fetched::Failed { error, cursor } => return self.page_failed(&job, error, cursor).await,
                }
            }
            Ok(Paged::Retry("the page fetcher stopped".into()))
        };
        // When committing ends (done, or an error), the fetcher is dropped
        // with it: no request goes out for a page nobody will take.
        match select(pin!(commit), pin!(fetch)).await {
            Either::Left((outcome, _)) => outcome,
            Either::Right(((), commit)) => commit.await,
        }
    }

    async fn page_failed(&mut self, job: &JobProgress, error: ApiError, cursor: Option<String>) -> Result<Paged, Stop> {
        if !matches!(error.status(), Some(400 | 404)) {
            tracing::warn!(source = %self.source, job = %job.id, error = %error, "fetching results failed; retrying from the saved cursor");
            return Ok(Paged::Retry(error.to_string()));
        }
        // A refused cursor, or results that are gone: the job says which.
        let id = job.id.clone();
        let status = self
            .call("GET details/jobs/{id}", |api| {
                let id = id.clone();
                async move { api.status(&id).await }
            })
            .await?;
        let with = if cursor.is_some() { "cursor" } else { "first page" };
        Ok(match status {
            JobStatus::Gone(state) => Paged::Gone(format!("job is {state}")),
            other => Paged::Stale(format!(
                "results refused for the {with} while the job is {other:?}: {error}"
            )),
        })
    }

    /// Commits one page: its dead letters first, then its events with the
    /// checkpoint that moves past it.
    async fn commit_page(&mut self, window: Interval, job: &str, page_no: u64, page: ResultsPage) -> Result<(), Stop> {
        // Gaps that arrived meanwhile become durable with this page.
        self.absorb_gaps();
        let cx = PageContext {
            source: &self.source,
            topic: &self.topic,
            window,
            job,
            page: page_no,
        };
        let mut built = Some(page_events(&cx, &page.conversations));
        let held_open = built.as_ref().map_or(0, |b| b.held_open);
        let letters = built
            .as_mut()
            .map(|b| std::mem::take(&mut b.dead_letters))
            .unwrap_or_default();
        let letters_n = letters.len();
        self.status.dead_lettered += self.out.dead_letter(letters).await? as u64;

        let mut next = self.cp.clone();
        let high = built.as_ref().and_then(|b| b.high_water);
        let n = built.as_ref().map_or(0, |b| b.events.len());
        let bytes: usize = built
            .as_ref()
            .map_or(0, |b| b.events.iter().map(|e| e.payload.len()).sum());
        if let Some(j) = next.job.as_mut() {
            j.cursor = page.cursor.clone().filter(|c| !c.is_empty());
            j.pages += 1;
        }
        if let Some(h) = high {
            next.high_water = Some(next.high_water.map_or(h, |old| old.max(h)));
        }
        next.delivered += n as u64;
        if page.cursor.as_deref().is_none_or(str::is_empty) {
            next.finish(window);
        }
        let entry = self.checkpointing.then(|| (self.s.name.clone(), next.encode()));
        let receipt = self
            .out
            .submit(|| {
                let b = built.take().unwrap_or_else(|| page_events(&cx, &page.conversations));
                IngestBatch {
                    events: b.events,
                    keys: b.keys,
                    hashes: Vec::new(),
                    checkpoint: entry.clone(),
                }
            })
            .await?;
        self.cp = next;
        self.progress.advance();
        PageCommitted {
            source: &self.source,
            records: receipt.accepted,
            duplicates: receipt.duplicates,
            held_open,
        }
        .emit();
        let st = &mut self.status;
        st.pages += 1;
        st.held_open += held_open as u64;
        st.records += receipt.accepted as u64;
        st.bytes += bytes as u64;
        st.duplicates += receipt.duplicates as u64;
        if letters_n > 0 {
            st.last_dead_letter_page = Some(page_no);
        }
        if let Some(h) = self.cp.high_water {
            st.high_water = Some(iso_ms(h));
        }
        self.publish();
        Ok(())
    }

    /// Calls the API, retrying what can be retried (the client has already
    /// retried 429s and 5xx; this outlasts longer outages) and stopping on
    /// what cannot.
    async fn call<T, F, Fut>(&mut self, what: &str, mut f: F) -> Result<T, Stop>
    where
        F: FnMut(JobsApi) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut delays = transient_policy().schedule();
        let mut degraded = false;
        loop {
            let answer = f(self.api.clone()).await;
            // Answered or failed, a finished call is progress.
            self.progress.advance();
            match answer {
                Ok(v) => {
                    if degraded {
                        self.out.component.set_state(ComponentState::Running);
                        self.out.component.clear_error();
                    }
                    return Ok(v);
                }
                Err(e) if is_fatal(&e) => return Err(Stop::Fatal(format!("{what}: {e}"))),
                Err(e) => {
                    degraded = true;
                    let delay = delays.next_delay();
                    tracing::warn!(source = %self.source, error = %e, ?delay, "{what} failed; retrying");
                    self.out
                        .component
                        .fail(ComponentState::Degraded, format!("{what}: {e}"));
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
