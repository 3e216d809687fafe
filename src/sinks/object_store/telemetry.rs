//! What an object_store sink reports: its metrics and its `/status`
//! details.

use serde::Serialize;

/// Objects uploaded (complete, visible).
pub const OBJECTS_TOTAL: &str = "cxrelay_object_store_objects_total";
/// Bytes of those objects, as stored (compressed).
pub const BYTES_TOTAL: &str = "cxrelay_object_store_bytes_total";
/// Events found already stored by an earlier upload (after a crash or a
/// failed attempt) and not uploaded again.
pub const ALREADY_STORED_TOTAL: &str = "cxrelay_object_store_already_stored_total";

/// Every metric named here.
pub const METRICS: &[&str] = &[OBJECTS_TOTAL, BYTES_TOTAL, ALREADY_STORED_TOTAL];

/// An object was uploaded.
#[derive(Debug)]
pub struct ObjectUploaded<'a> {
    /// The listener.
    pub listener: &'a str,
    /// Its size as stored.
    pub bytes: u64,
}

impl ObjectUploaded<'_> {
    /// Counts it (no log: one per batch would drown the rest).
    pub fn emit(self) {
        metrics::counter!(OBJECTS_TOTAL, "listener" => self.listener.to_string()).increment(1);
        metrics::counter!(BYTES_TOTAL, "listener" => self.listener.to_string()).increment(self.bytes);
    }
}

/// Events of a batch were found in an object uploaded before.
#[derive(Debug)]
pub struct AlreadyStored<'a> {
    /// The listener.
    pub listener: &'a str,
    /// The directory of the objects holding them.
    pub dir: &'a str,
    /// How many of the batch's events they hold.
    pub events: u64,
}

impl AlreadyStored<'_> {
    /// Counts and logs it: it happens after a crash or a failed upload.
    pub fn emit(self) {
        metrics::counter!(ALREADY_STORED_TOTAL, "listener" => self.listener.to_string()).increment(self.events);
        tracing::info!(listener = %self.listener, dir = %self.dir, events = self.events,
            "events already stored by an earlier upload; not uploaded again");
    }
}

/// The writer's part of the listener's `/status` (never a credential).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectStoreStatus {
    /// `s3://bucket/prefix`.
    pub target: String,
    /// The endpoint, when not AWS's (shown without credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Objects uploaded by this writer.
    pub objects: u64,
    /// Their bytes as stored.
    pub bytes: u64,
    /// Events in them.
    pub events: u64,
    /// Events found already stored and not uploaded again.
    pub already_stored: u64,
    /// The last object uploaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_object: Option<String>,
}
