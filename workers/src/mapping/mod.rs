//! Mapping: Kafka messages to typed Arrow rows, or to dead-letter rows with
//! a typed reason.
//!
//! This module owns the contract between a pipeline's [`Mapping`] and the
//! bytes that land in Iceberg: the table schema a mapping stands for
//! ([`table_schema`], with field ids assigned the way Iceberg assigns them to
//! a new table, so the ids we write are the ids the catalog keeps), the fixed
//! schema of every dead-letter table ([`dead_letter_schema`]), the decoder
//! that turns one message into one row ([`RowDecoder`]) and the builder of
//! dead-letter rows ([`DeadLetterBuilder`]). It knows nothing of Kafka clients,
//! Parquet or commits: the consumer hands it owned [`KafkaMessage`]s and takes
//! back Arrow [`RecordBatch`](arrow::record_batch::RecordBatch)es.
//!
//! A message is either a whole row or a [`Rejection`], never half a row: the
//! decoder converts every column before it appends anything, so exactly-once
//! accounting can count a message as "in the table" or "in the dead-letter
//! table" and nothing else.
//!
//! # How JSON values become column values
//!
//! Each message is parsed once with `serde_json`, borrowing: only the values
//! the mapping's paths reach are looked at, as raw JSON text, and numbers are
//! read from that text, so decimals and long integers are exact (no trip
//! through `f64`).
//!
//! | column type | accepted JSON | notes |
//! | --- | --- | --- |
//! | `boolean` | `true` / `false` | |
//! | `int`, `long` | integers | `3.0` and `3e2` are accepted (they are integers); `3.5` is `wrong_type`; outside int32/int64 is `out_of_range`; strings are `wrong_type` |
//! | `float`, `double` | numbers | rounded to nearest; a number beyond the type's range is `out_of_range` |
//! | `decimal(p,s)` | numbers or numeric strings (`"12.50"`, `"-1e3"`) | exact: more than `s` non-zero fractional digits or more than `p` digits is `out_of_range`, never rounded |
//! | `string` | strings | any other JSON value is stored as its JSON text exactly as it appears in the message (`12.50` → `"12.50"`, `{"a": 1}` → `"{\"a\": 1}"`) |
//! | `uuid` | strings in any form the `uuid` crate reads (hyphenated, simple, braced, urn) | stored as 16 big-endian bytes |
//! | `date` | `"YYYY-MM-DD"`; with an epoch `timestamp_format`, the UTC date of that instant | |
//! | `time` | `"HH:MM:SS"` with optional fraction | |
//! | `timestamptz` | RFC 3339 / ISO-8601 with `Z` or an offset (a `T` or a space between date and time) | stored in UTC; a string without an offset is `wrong_type` |
//! | `timestamp` | ISO-8601 without an offset | a string with an offset is converted to UTC and stored without it |
//! | `binary` | base64 strings (standard alphabet, padding optional) | |
//! | `list<T>` | arrays | `null` elements are null |
//! | `map<K,V>` | objects | keys are read as `K` from their text (`"7"` for a `long` key); a repeated key keeps its last value |
//! | `struct<…>` | objects | absent fields are null; unknown fields are ignored |
//!
//! Timestamps keep microseconds: sub-microsecond digits are dropped (towards
//! the past). With `timestamp_format` `epoch_seconds`, `epoch_millis` or
//! `epoch_micros` a timestamp or date column reads a JSON number or a numeric
//! string (fractions allowed, e.g. `1700000000.25` seconds); an ISO string is
//! then `wrong_type`, and with the default ISO-8601 format a number is
//! `wrong_type`. Nested timestamps (in lists, maps, structs) are always
//! ISO-8601, because a column's `timestamp_format` applies to the column.
//!
//! A path that does not reach a value (a missing field, an index past the end
//! of an array, a field of something that is not an object) is absent, the
//! same as `null`: the column is null, or, when the column is not nullable, the
//! message is rejected as `missing_required`. Nested struct fields, list
//! elements and map values are always optional.

mod builder;
mod convert;
mod dead_letter;
mod decoder;
mod json;
mod schema;

pub mod bench;
pub mod suggest;

pub use dead_letter::DeadLetterBuilder;
pub use decoder::RowDecoder;
pub use schema::{dead_letter_schema, partition_difference, schema_differences, table_schema, SchemaDifference};

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
    /// Reading the value as a JSON object.
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
