//! Durable state: the journal (append-only segment files), and in one
//! embedded redb file acknowledgements, checkpoints, idempotency keys and
//! dead letters.

pub mod appends;
pub mod codec;
pub mod committer;
pub mod db;
pub mod dead_letter_table;
pub mod dead_letters;
pub mod idempotency;
pub mod journal_writer;
mod migrate;
mod publisher;
pub mod read_only;
pub mod replay;
pub mod routes;
pub mod segments;
pub mod store_actor;
pub mod telemetry;

pub use committer::Committer;
pub use db::{Append, JournalEntry, StoreDb, StoreError};
pub use dead_letters::DeadLetter;
pub use journal_writer::{AppendOutcome, AppendQueue, AppendRequest, JournalWriter};
pub use read_only::StoreReader;
pub use store_actor::{DurableListener, PutDeadLetters, Store};
