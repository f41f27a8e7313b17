//! What a running pipeline is doing, and what the tables hold.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::PipelineId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PipelineState {
    /// Waiting for a worker, or connecting.
    Starting,
    Running,
    Paused,
    /// Something is wrong (see `last_error`); it keeps retrying by itself.
    Failing,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PipelineStatus {
    pub pipeline_id: PipelineId,
    pub state: PipelineState,
    pub partitions: Vec<PartitionStatus>,
    /// Rows committed to the table since the pipeline was created.
    pub rows_committed: i64,
    /// Messages committed to the dead-letter table.
    pub dead_letter_rows: i64,
    #[serde(default)]
    pub last_commit_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_error_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The last 60 minutes, oldest first, one bucket a minute (zeros included).
    pub minutes: Vec<MinuteBucket>,
    /// Why watermarks are missing, when the cluster could not be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermarks_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PartitionStatus {
    pub partition: i32,
    /// The next offset to be committed (everything before it is in a table).
    pub committed_offset: i64,
    #[serde(default)]
    pub high_watermark: Option<i64>,
    #[serde(default)]
    pub lag: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MinuteBucket {
    pub minute: chrono::DateTime<chrono::Utc>,
    pub rows: i64,
    pub dead_letter_rows: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TableSummary {
    /// The catalog (JDBC catalog `catalog_name`): the destination id.
    pub catalog: String,
    pub namespace: String,
    pub name: String,
    pub row_count: i64,
    pub snapshot_count: usize,
    pub metadata_location: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TableDetail {
    #[serde(flatten)]
    pub summary: TableSummary,
    pub location: String,
    /// The Iceberg schema as in the table metadata.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    /// The default partition spec as in the table metadata.
    #[schema(value_type = Object)]
    pub partition_spec: serde_json::Value,
    pub snapshots: Vec<SnapshotInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotInfo {
    pub snapshot_id: i64,
    #[serde(default)]
    pub parent_snapshot_id: Option<i64>,
    pub sequence_number: i64,
    pub timestamp_ms: i64,
    pub operation: String,
    pub summary: std::collections::BTreeMap<String, String>,
}

/// One message of a pipeline's dead-letter table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterRow {
    pub partition: i32,
    pub offset: i64,
    #[serde(default)]
    pub kafka_timestamp: Option<chrono::DateTime<chrono::Utc>>,
    /// The raw key as text (invalid UTF-8 replaced).
    #[serde(default)]
    pub key: Option<String>,
    /// The raw value as text (invalid UTF-8 replaced); absent for a tombstone.
    #[serde(default)]
    pub value: Option<String>,
    pub error_stage: String,
    pub error_kind: String,
    pub error_message: String,
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// Whether the row holds less than the message did: the table keeps up
    /// to `dead_letter.max_value_bytes` of the key, of the value and of the
    /// headers, and this view shows up to 64 KiB of the key and of the value.
    #[serde(default)]
    pub truncated: bool,
    /// The value's length as received (unknown for rows written before
    /// Icehouse recorded it).
    #[serde(default)]
    pub value_bytes: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterList {
    /// Newest first.
    pub rows: Vec<DeadLetterRow>,
    /// All rows of the dead-letter table.
    pub total: i64,
}
