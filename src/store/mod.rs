//! Durable state: the journal, acknowledgements, checkpoints, idempotency
//! keys and dead letters, in one embedded redb file.

pub mod codec;
pub mod db;
pub mod dead_letter_table;
pub mod dead_letters;
pub mod idempotency;
pub mod journal_writer;
pub mod read_only;
pub mod replay;
pub mod store_actor;
pub mod telemetry;

pub use db::{Append, JournalEntry, StoreDb, StoreError};
pub use dead_letters::DeadLetter;
pub use journal_writer::{AppendOutcome, AppendQueue, AppendRequest, JournalWriter};
pub use read_only::StoreReader;
pub use store_actor::{DurableListener, PutDeadLetters, Store};
