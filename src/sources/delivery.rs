//! How the bulk sources (analytics jobs, exports) hand records over: a
//! batch goes to ingest together with the source's checkpoint (waiting,
//! paused, while the store cannot write), and records that cannot become
//! events are stored as dead letters *before* the checkpoint that moves
//! past them is committed, so that a crash can duplicate a dead letter but
//! never lose one.

use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use cxrelay_actors::registry::{Component, ComponentState, Progress, WaitingOnOthers};

use super::telemetry::{DeadLettersDropped, DeadLettersKept};
use crate::ingest::{Ingest, IngestBatch, IngestError, Receipt};
use crate::store::{DeadLetter, PutDeadLetters};

/// The service is shutting down: the source stops where it is (its last
/// commit is its resume point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// Why a bulk source's run ends.
pub(crate) enum RunEnd {
    /// Needs an operator; the message says why.
    Fatal(String),
    /// The service is stopping.
    Stopped,
}

impl From<Stopped> for RunEnd {
    fn from(_: Stopped) -> Self {
        RunEnd::Stopped
    }
}

const RETRY: Duration = Duration::from_millis(500);

/// A source's way out.
#[derive(Clone)]
pub struct Delivery {
    /// Where events go.
    pub ingest: Ingest,
    /// Where dead letters go (none with the journal off).
    pub dead_letters: Option<Recipient<PutDeadLetters>>,
    /// The source's health entry.
    pub component: Arc<Component>,
    /// The running instance's progress report, if it reports: waits here
    /// are on ingest and the store, and do not count as holding work.
    pub progress: Option<Arc<Progress>>,
}

impl Delivery {
    /// The same way out for one running instance of the source, which
    /// reports its progress through `progress`.
    pub fn reporting(&self, progress: Arc<Progress>) -> Delivery {
        Delivery {
            progress: Some(progress),
            ..self.clone()
        }
    }

    /// While the guard lives, the instance waits on ingest or the store:
    /// backpressure from a slow sink or a full disk is theirs to resolve
    /// (and theirs to be found stuck on), not the source's.
    fn waiting(&self) -> Option<WaitingOnOthers<'_>> {
        self.progress.as_deref().map(Progress::waiting_on_others)
    }

    /// Commits `source`'s checkpoint `encoded` alone (no events) and waits
    /// until it is durable.
    pub async fn save_checkpoint(&self, source: &str, encoded: Vec<u8>) -> Result<(), Stopped> {
        let entry = (source.to_string(), encoded);
        self.submit(|| IngestBatch {
            checkpoint: Some(entry.clone()),
            ..IngestBatch::default()
        })
        .await?;
        Ok(())
    }

    /// Submits the batch `make` builds (again after a store failure) and
    /// waits until it is durable. Waiting is the backpressure.
    pub async fn submit(&self, mut make: impl FnMut() -> IngestBatch) -> Result<Receipt, Stopped> {
        let _waiting = self.waiting();
        let mut paused = false;
        loop {
            if !self.ingest.is_available() {
                self.pause(&mut paused, "the store cannot write; waiting for it");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            match self.ingest.submit(make()).await {
                Ok(r) => {
                    if paused {
                        self.component.set_state(ComponentState::Running);
                        self.component.clear_error();
                    }
                    return Ok(r);
                }
                Err(IngestError::ShuttingDown) => return Err(Stopped),
                Err(IngestError::StoreUnavailable(e)) => {
                    self.pause(&mut paused, &e);
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    fn pause(&self, paused: &mut bool, why: &str) {
        if !*paused {
            *paused = true;
            tracing::warn!(source = %self.component.name(), error = why, "source paused: its events cannot be committed");
            self.component.fail(ComponentState::Paused, why.to_string());
        }
    }

    /// Stores dead letters durably (retrying while the store refuses).
    /// With the journal off there is nowhere to keep them: they are logged
    /// and counted as dropped. Answers how many were stored.
    pub async fn dead_letter(&self, letters: Vec<DeadLetter>) -> Result<usize, Stopped> {
        if letters.is_empty() {
            return Ok(0);
        }
        let n = letters.len();
        let source = self.component.name();
        let first = &letters[0];
        let Some(store) = &self.dead_letters else {
            DeadLettersDropped {
                source,
                records: n,
                first_error: &first.error,
            }
            .emit();
            return Ok(0);
        };
        DeadLettersKept {
            source,
            records: n,
            first_error: &first.error,
            first_position: first.position.as_deref(),
        }
        .emit();
        let _waiting = self.waiting();
        loop {
            match store.send(PutDeadLetters(letters.clone())).await {
                Ok(Ok(_)) => return Ok(n),
                Ok(Err(e)) => {
                    self.component
                        .fail(ComponentState::Degraded, format!("cannot store dead letters: {e}"));
                    tokio::time::sleep(RETRY).await;
                }
                Err(_) => return Err(Stopped),
            }
        }
    }
}
