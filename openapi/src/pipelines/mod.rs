//! Pipelines: a Kafka topic flowing into an Iceberg table, with the mapping
//! from message fields to typed columns.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{Validate, Validator};
use crate::{ConnectionId, DestinationId, FieldError, PipelineId};

mod compiled;
mod paths;
mod types;

pub use compiled::{CompiledColumn, CompiledMapping, MappingErrors, MAX_PARTITION_FIELDS};
pub use paths::{JsonPath, PathSegment};
pub use types::IcebergType;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageFormat {
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// From the oldest message the topic still holds.
    Earliest,
    /// Only messages produced after the pipeline first starts.
    Latest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Running,
    Paused,
}

/// How a numeric or string value becomes a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    Iso8601,
    EpochSeconds,
    EpochMillis,
    EpochMicros,
}

/// One column of the table and where its value comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnMapping {
    /// The column name: lower-case letters, digits and `_`.
    pub name: String,
    /// An Iceberg type: `boolean`, `int`, `long`, `float`, `double`,
    /// `decimal(p,s)`, `string`, `uuid`, `date`, `time`, `timestamp`,
    /// `timestamptz`, `binary`, `list<T>`, `map<K,V>`, `struct<a:T,b:U>`.
    #[serde(rename = "type")]
    pub column_type: String,
    /// A JSON path into the message, e.g. `$.customer.id` or `$.items[0].sku`.
    pub path: String,
    #[serde(default = "yes")]
    pub nullable: bool,
    /// For timestamp, timestamptz and date columns; ISO-8601 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_format: Option<TimestampFormat>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub columns: Vec<ColumnMapping>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartitionTransform {
    Identity,
    Year,
    Month,
    Day,
    Hour,
}

/// One field of the table's partition spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionField {
    pub column: String,
    pub transform: PartitionTransform,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pipeline {
    pub id: PipelineId,
    pub name: String,
    pub connection_id: ConnectionId,
    pub topic: String,
    pub destination_id: DestinationId,
    pub namespace: String,
    pub table_name: String,
    pub format: MessageFormat,
    pub mapping: Mapping,
    pub partition_by: Vec<PartitionField>,
    pub start_position: StartPosition,
    pub flush_interval_ms: u32,
    pub desired_state: DesiredState,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePipelineRequest {
    pub name: String,
    pub connection_id: ConnectionId,
    pub topic: String,
    pub destination_id: DestinationId,
    /// The destination's default namespace when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub table_name: String,
    #[serde(default = "default_format")]
    pub format: MessageFormat,
    pub mapping: Mapping,
    #[serde(default)]
    pub partition_by: Vec<PartitionField>,
    #[serde(default = "default_start")]
    pub start_position: StartPosition,
    /// Upper bound on the time between two commits (100 to 600000 ms; default 1000).
    #[serde(default = "default_flush")]
    pub flush_interval_ms: u32,
    #[serde(default = "default_state")]
    pub desired_state: DesiredState,
}

fn default_format() -> MessageFormat {
    MessageFormat::Json
}
fn default_start() -> StartPosition {
    StartPosition::Earliest
}
fn default_flush() -> u32 {
    1000
}
fn default_state() -> DesiredState {
    DesiredState::Running
}

/// Changes the given fields; absent fields keep their value. The source
/// (connection, topic) and the target (destination, namespace, table) of a
/// pipeline are fixed once created: make a new pipeline to move them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePipelineRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<Mapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_interval_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_state: Option<DesiredState>,
}

pub const MIN_FLUSH_MS: u32 = 100;
pub const MAX_FLUSH_MS: u32 = 600_000;
pub const MAX_COLUMNS: usize = 1000;

impl Validate for CreatePipelineRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        v.name("name", &self.name);
        validate_topic(&mut v, "topic", &self.topic);
        if let Some(ns) = &self.namespace {
            v.identifier("namespace", ns);
        }
        v.identifier("table_name", &self.table_name);
        if self.table_name.ends_with("_dead_letter") {
            v.error("table_name", "must not end in _dead_letter (reserved for dead-letter tables)");
        }
        validate_flush(&mut v, self.flush_interval_ms);
        match validate_mapping(&mut v, &self.mapping) {
            Some(mapping) => mapping.check_partitioning(&mut v, &self.partition_by),
            // The partition columns are checked once the mapping is valid.
            None => compiled::check_partition_count(&mut v, &self.partition_by),
        }
        v.finish()
    }
}

impl Validate for UpdatePipelineRequest {
    fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut v = Validator::new();
        if let Some(name) = &self.name {
            v.name("name", name);
        }
        if let Some(ms) = self.flush_interval_ms {
            validate_flush(&mut v, ms);
        }
        if let Some(mapping) = &self.mapping {
            validate_mapping(&mut v, mapping);
        }
        v.finish()
    }
}

fn validate_flush(v: &mut Validator, ms: u32) {
    v.check(
        (MIN_FLUSH_MS..=MAX_FLUSH_MS).contains(&ms),
        "flush_interval_ms",
        format!("must be between {MIN_FLUSH_MS} and {MAX_FLUSH_MS}"),
    );
}

/// Kafka's own topic name rules.
pub fn validate_topic(v: &mut Validator, field: &str, topic: &str) {
    let ok = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-');
    v.check(ok, field, "must be 1 to 249 characters of letters, digits, ., _ and -");
}

/// Adds the mapping's problems to `v`; the compiled mapping when it has none.
pub fn validate_mapping(v: &mut Validator, mapping: &Mapping) -> Option<CompiledMapping> {
    compiled::compile_into(v, mapping)
}
