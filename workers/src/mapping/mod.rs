//! Mapping: the table side of ingestion, the same for every message format.
//!
//! This module owns what a pipeline's mapping means for the bytes that land
//! in Iceberg: the table schema a compiled mapping stands for
//! ([`table_schema`], with field ids assigned the way Iceberg assigns them to
//! a new table, so the ids we write are the ids the catalog keeps), the fixed
//! schema of every dead-letter table ([`dead_letter_schema`]), the column
//! values every format's decoder produces ([`Cell`]) and the Arrow builders
//! that take them, the builder of dead-letter rows ([`DeadLetterBuilder`]),
//! why a message is rejected ([`Rejection`]), and the suggestion of a
//! mapping from sampled messages ([`suggest`]). How a message's bytes
//! become cells is [`formats`](crate::formats)'. It knows nothing of Kafka
//! clients, Parquet or commits: the consumer hands owned [`KafkaMessage`]s
//! to a decoder and takes back Arrow
//! [`RecordBatch`](arrow::record_batch::RecordBatch)es.

pub(crate) mod builder;
mod cell;
mod dead_letter;
mod schema;

pub mod suggest;

pub(crate) use cell::{Cell, Ty};
pub use dead_letter::DeadLetterBuilder;
pub use schema::{
    dead_letter_schema, partition_difference, schema_differences, table_schema, SchemaDifference, DEAD_LETTER_ADDED,
};

/// One Kafka message, owned: the consumer copies it out of the client's buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch (create or log-append time, as the topic says).
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// In the order the message carries them; a key may repeat.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Where a message was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Reading the value in its format (a JSON object, say).
    Decode,
    /// Turning the object's values into the mapping's columns.
    Map,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Map => "map",
        }
    }
}

/// Why a message was rejected: stable names, stored in the dead-letter table
/// and shown to users, so never rename one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The message has no value (a delete marker on a compacted topic).
    Tombstone,
    /// The value is zero bytes long.
    EmptyValue,
    /// The value is longer than the pipeline's message size limit.
    TooLarge,
    InvalidUtf8,
    /// Not JSON, or JSON that is not an object.
    InvalidJson,
    /// A non-nullable column's path is absent or null.
    MissingRequired,
    /// A value of the wrong JSON type or format for its column.
    WrongType,
    /// A value of the right type that does not fit its column.
    OutOfRange,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Tombstone => "tombstone",
            ErrorKind::EmptyValue => "empty_value",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::InvalidUtf8 => "invalid_utf8",
            ErrorKind::InvalidJson => "invalid_json",
            ErrorKind::MissingRequired => "missing_required",
            ErrorKind::WrongType => "wrong_type",
            ErrorKind::OutOfRange => "out_of_range",
        }
    }
}

/// A message that cannot become a row, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub stage: Stage,
    pub kind: ErrorKind,
    /// Short and human, e.g. ``column `quantity` ($.qty): expected long, found string "7x"``.
    pub message: String,
}

impl Rejection {
    pub(crate) fn new(stage: Stage, kind: ErrorKind, message: impl Into<String>) -> Rejection {
        Rejection { stage, kind, message: message.into() }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.kind.as_str(), self.stage.as_str(), self.message)
    }
}

impl std::error::Error for Rejection {}
