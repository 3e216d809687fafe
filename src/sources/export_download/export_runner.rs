//! The download loop of an export source: the body reader feeds the parser
//! thread through a bounded channel while parsed batches are committed
//! (one submit in flight, the next batch waiting), each with the checkpoint
//! that moves past it.

use std::pin::pin;
use std::sync::Arc;

use bytes::Bytes;
use cxrelay_actors::event::now_ms;
use cxrelay_actors::registry::{ComponentState, Progress};
use cxrelay_actors::Event;
use futures_util::future::{select, Either};
use tokio::sync::mpsc;

use super::checkpoint::ExportCheckpoint;
use super::format::{Detected, ExportFormat};
use super::parser::{self, ExportRecord, Parsed, ParsedBatch, ParserSettings};
use super::ranged_body::RangedBody;
use super::telemetry::{ExportBatchCommitted, ExportStatus};
use super::ExportSettings;
use crate::ingest::IngestBatch;
use crate::sources::checkpoint::JsonCheckpoint;
use crate::sources::delivery::{Delivery, RunEnd as Stop};

/// Chunks of body waiting for the parser.
const CHUNKS_IN_FLIGHT: usize = 8;

pub(super) struct ExportRunner {
    s: Arc<ExportSettings>,
    out: Delivery,
    cp: ExportCheckpoint,
    checkpointing: bool,
    source: Arc<str>,
    topic: Arc<str>,
    /// This instance's progress report: each chunk of body received, each
    /// failed transfer attempt (counted by the reader) and each batch
    /// committed is a unit; it is busy until the file is delivered.
    progress: Arc<Progress>,
    status: ExportStatus,
}

impl ExportRunner {
    pub(super) fn new(
        s: Arc<ExportSettings>,
        out: Delivery,
        progress: Arc<Progress>,
        cp: ExportCheckpoint,
        checkpointing: bool,
    ) -> Self {
        ExportRunner {
            source: Arc::from(s.name.as_str()),
            topic: Arc::from(s.topic.as_str()),
            status: ExportStatus {
                next_record: cp.records,
                ..ExportStatus::new(&s)
            },
            out: out.reporting(progress.clone()),
            progress,
            s,
            cp,
            checkpointing,
        }
    }

    /// Shows the status as it now is.
    fn publish(&self) {
        self.out.component.set_status(&self.status);
    }

    /// Downloads and delivers the export (from where the checkpoint says),
    /// then stays put; its state says how it ended.
    pub(super) async fn run(mut self, make_body: impl FnOnce(u64) -> RangedBody) {
        self.progress.set_busy(true);
        let outcome = self.download(make_body).await;
        self.progress.set_busy(false);
        match outcome {
            Ok(()) => {
                self.status.phase = Some("finished");
                self.status.finished = true;
                self.status.records_in_file = Some(self.cp.records);
                self.publish();
                self.out.component.set_state(ComponentState::Idle);
                tracing::info!(source = %self.source, records = self.cp.records, "export delivered");
            }
            Err(Stop::Stopped) => return,
            Err(Stop::Fatal(message)) => {
                self.status.phase = Some("failed");
                self.publish();
                tracing::error!(source = %self.source, error = %message, "export source failed");
                self.out.component.fail(ComponentState::Failed, message);
            }
        }
        std::future::pending::<()>().await;
    }

    async fn download(&mut self, make_body: impl FnOnce(u64) -> RangedBody) -> Result<(), Stop> {
        let origin = self.s.origin.name();
        if self.cp.origin != origin {
            self.cp = ExportCheckpoint {
                origin,
                ..ExportCheckpoint::default()
            };
        }
        if self.cp.done {
            tracing::info!(source = %self.source, "export already delivered (checkpoint)");
            return Ok(());
        }
        // A plain file resumes by Range right after the last committed
        // record; a container is read from the start again and the
        // committed records skipped.
        let resume = match (self.cp.resume_at, self.cp.detected) {
            (Some(at), Some(d)) if d.is_plain() && self.cp.records > 0 => Some((at, d)),
            _ => None,
        };
        let mut body = make_body(resume.map_or(0, |(at, _)| at)).reporting(self.progress.clone());
        self.status.phase = Some("downloading");
        self.status.next_record = self.cp.records;
        self.publish();
        body.open().await.map_err(|e| Stop::Fatal(e.0))?;
        if !self.cp.same_file(body.etag(), body.total()) {
            return Err(Stop::Fatal(format!(
                "the export is not the file whose first {} records were delivered (its ETag or size changed); rename the source to download it again from the start",
                self.cp.records
            )));
        }
        self.cp.etag = body.etag().map(str::to_string);
        self.cp.total = body.total();
        if self.cp.records > 0 {
            tracing::info!(source = %self.source, records = self.cp.records, by_range = resume.is_some(),
                "resuming the export after its last committed record");
        }
        let (forced, containers) = match self.s.format {
            ExportFormat::Auto => (None, true),
            ExportFormat::Ndjson => (Some(Detected::Ndjson), false),
            ExportFormat::Json => (Some(Detected::JsonArray), false),
            ExportFormat::Zip => (Some(Detected::Zip), true),
            ExportFormat::Gzip => (Some(Detected::Gzip), true),
        };
        let settings = ParserSettings {
            source: self.source.clone(),
            key_field: self.s.key_field.clone(),
            time_field: self.s.time_field.clone(),
            batch_records: self.s.batch_records,
            start_index: if resume.is_some() { self.cp.records } else { 0 },
            start_offset: resume.map_or(0, |(at, _)| at),
            skip_before: if resume.is_some() { 0 } else { self.cp.records },
            forced: resume.map(|(_, d)| d).or(forced),
            mid_file: resume.is_some(),
            containers,
        };
        let (chunk_tx, chunk_rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
        let (parsed_tx, parsed_rx) = mpsc::channel::<Parsed>(1);
        parser::spawn(settings, chunk_rx, parsed_tx)
            .map_err(|e| Stop::Fatal(format!("cannot start the parser thread: {e}")))?;
        // The reader counts each chunk and each failed attempt as progress.
        let feed = async move {
            loop {
                match body.next().await {
                    Ok(Some(chunk)) => {
                        if chunk_tx.send(chunk).await.is_err() {
                            // The parser stopped; the consumer says why.
                            return Ok(());
                        }
                    }
                    // Dropping the sender ends the parser's stream.
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        };
        let consume = self.consume(parsed_rx);
        match select(pin!(consume), pin!(feed)).await {
            Either::Left((outcome, _)) => outcome,
            Either::Right((Err(e), _)) => Err(Stop::Fatal(format!("download failed: {e}"))),
            Either::Right((Ok(()), consume)) => consume.await,
        }
    }

    async fn consume(&mut self, mut rx: mpsc::Receiver<Parsed>) -> Result<(), Stop> {
        while let Some(p) = rx.recv().await {
            match p {
                Parsed::Batch(b) => self.commit(b).await?,
                Parsed::Finished { records, detected } => {
                    self.cp.records = records;
                    self.cp.detected = detected.or(self.cp.detected);
                    self.cp.done = true;
                    self.cp.resume_at = None;
                    self.save().await?;
                    return Ok(());
                }
                Parsed::Failed(m) => {
                    return Err(Stop::Fatal(format!(
                        "the export cannot be parsed past record {}: {m}",
                        self.cp.records
                    )))
                }
            }
        }
        Err(Stop::Fatal("the parser stopped without finishing".into()))
    }

    async fn save(&mut self) -> Result<(), Stop> {
        if !self.checkpointing {
            return Ok(());
        }
        Ok(self.out.save_checkpoint(&self.s.name, self.cp.encode()).await?)
    }

    fn event(&self, r: &ExportRecord, received: i64) -> Event {
        Event::builder(self.source.clone(), self.topic.clone())
            .id(r.index.to_string())
            .key_opt(r.key.clone())
            .event_time(r.time)
            .received_at(received)
            .payload(r.payload.clone())
            .build()
    }

    /// Commits a batch: dead letters first, then the events with the
    /// checkpoint after them.
    async fn commit(&mut self, mut b: ParsedBatch) -> Result<(), Stop> {
        let letters = std::mem::take(&mut b.dead_letters);
        self.status.dead_lettered += self.out.dead_letter(letters).await? as u64;
        let mut next = self.cp.clone();
        next.records = b.next_index;
        next.resume_at = b.resume_at;
        next.detected = b.detected.or(next.detected);
        let entry = self.checkpointing.then(|| (self.s.name.clone(), next.encode()));
        let received = now_ms();
        let receipt = self
            .out
            .submit(|| IngestBatch {
                events: b.records.iter().map(|r| self.event(r, received)).collect(),
                keys: Vec::new(),
                hashes: Vec::new(),
                checkpoint: entry.clone(),
            })
            .await?;
        self.cp = next;
        self.progress.advance();
        ExportBatchCommitted {
            source: &self.source,
            records: receipt.accepted,
        }
        .emit();
        self.status.records += receipt.accepted as u64;
        self.status.next_record = self.cp.records;
        self.status.format = self.cp.detected.map(|d| d.as_str());
        self.publish();
        Ok(())
    }
}
