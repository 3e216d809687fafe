//! Source checkpoints: what a source commits with its events (in the same
//! transaction) so that a restart resumes exactly after them. They are
//! JSON, so that an operator can read them and a newer cxrelay can add
//! fields.

use serde::de::DeserializeOwned;
use serde::Serialize;

use cxrelay_actors::registry::{Component, ComponentState};

use crate::ingest::Ingest;
use crate::store::{StoreDb, StoreError};

/// Whether a source commits checkpoints with its events: with the
/// journal, or in cluster mode (into the checkpoints bucket).
pub fn checkpointing(db: Option<&StoreDb>, ingest: &Ingest) -> bool {
    db.is_some() || ingest.as_cluster().is_some()
}

/// A source's saved state.
pub trait JsonCheckpoint: Serialize + DeserializeOwned + Default {
    /// What kind of source it belongs to (for logs).
    const KIND: &'static str;

    /// Reads a saved checkpoint (a fresh one when none or unreadable).
    fn decode(raw: Option<&[u8]>) -> Self {
        match raw.map(serde_json::from_slice::<Self>) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "{} checkpoint unreadable; starting over", Self::KIND);
                Self::default()
            }
            None => Self::default(),
        }
    }

    /// The bytes to commit.
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The checkpoint `source` saved: in the bucket the cluster keeps them
    /// in (cluster mode), else in `db` (a fresh one with the journal off).
    /// An unreadable store is an error: without its checkpoint a source
    /// would deliver again what it delivered.
    fn load(db: Option<&StoreDb>, ingest: &Ingest, source: &str) -> Result<Self, StoreError> {
        if let Some(cluster) = ingest.as_cluster() {
            return Ok(Self::decode(cluster.checkpoint(source).as_deref()));
        }
        match db {
            Some(db) => Ok(Self::decode(db.checkpoint(source)?.as_deref())),
            None => Ok(Self::default()),
        }
    }

    /// The checkpoint for a source starting up, or `None` after marking
    /// `component` restarting when the store cannot be read: without its
    /// checkpoint the source would deliver again what it delivered, so it
    /// waits for the store instead.
    fn load_for_start(db: Option<&StoreDb>, ingest: &Ingest, source: &str, component: &Component) -> Option<Self> {
        match Self::load(db, ingest, source) {
            Ok(c) => {
                component.set_state(ComponentState::Running);
                Some(c)
            }
            Err(e) => {
                component.fail(ComponentState::Restarting, format!("cannot read the checkpoint: {e}"));
                None
            }
        }
    }
}
