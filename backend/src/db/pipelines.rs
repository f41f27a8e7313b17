//! Pipelines: topic → table, with the mapping kept as JSON.

use chrono::{DateTime, Utc};
use icehouse_api::pipelines::{DesiredState, Mapping, PartitionField, Pipeline};
use icehouse_api::{ConnectionId, DestinationId, PipelineId, TenantId};
use icehouse_workers::coord::SliceState;
use sqlx::types::Json;
use sqlx::FromRow;
use uuid::Uuid;

use super::Tx;

#[derive(Clone, Debug, FromRow)]
pub struct PipelineRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub connection_id: Uuid,
    pub topic: String,
    pub destination_id: Uuid,
    pub namespace: String,
    pub table_name: String,
    pub format: String,
    pub mapping: Json<Mapping>,
    pub partition_by: Json<Vec<PartitionField>>,
    pub start_position: String,
    pub flush_interval_ms: i32,
    pub desired_state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Our enums are stored as their JSON names.
fn from_text<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    Ok(serde_json::from_value(serde_json::Value::String(text.to_string()))?)
}

pub fn to_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => panic!("not a unit enum: {other:?}"),
    }
}

impl PipelineRow {
    pub fn to_api(&self) -> anyhow::Result<Pipeline> {
        Ok(Pipeline {
            id: PipelineId::from_uuid(self.id),
            name: self.name.clone(),
            connection_id: ConnectionId::from_uuid(self.connection_id),
            topic: self.topic.clone(),
            destination_id: DestinationId::from_uuid(self.destination_id),
            namespace: self.namespace.clone(),
            table_name: self.table_name.clone(),
            format: from_text(&self.format)?,
            mapping: self.mapping.0.clone(),
            partition_by: self.partition_by.0.clone(),
            start_position: from_text(&self.start_position)?,
            flush_interval_ms: self.flush_interval_ms as u32,
            desired_state: from_text::<DesiredState>(&self.desired_state)?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "id, tenant_id, name, connection_id, topic, destination_id, namespace, table_name, format, \
                       mapping, partition_by, start_position, flush_interval_ms, desired_state, created_at, updated_at";

pub async fn insert(tx: &mut Tx, tenant: TenantId, row: &PipelineRow) -> Result<PipelineRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO pipelines (id, tenant_id, name, connection_id, topic, destination_id, namespace, table_name,
                                format, mapping, partition_by, start_position, flush_interval_ms, desired_state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(&row.name)
    .bind(row.connection_id)
    .bind(&row.topic)
    .bind(row.destination_id)
    .bind(&row.namespace)
    .bind(&row.table_name)
    .bind(&row.format)
    .bind(&row.mapping)
    .bind(&row.partition_by)
    .bind(&row.start_position)
    .bind(row.flush_interval_ms)
    .bind(&row.desired_state)
    .fetch_one(&mut **tx)
    .await
}

pub async fn update(tx: &mut Tx, tenant: TenantId, row: &PipelineRow) -> Result<PipelineRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE pipelines SET name = $3, mapping = $4, flush_interval_ms = $5, desired_state = $6, updated_at = now()
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant.as_uuid())
    .bind(row.id)
    .bind(&row.name)
    .bind(&row.mapping)
    .bind(row.flush_interval_ms)
    .bind(&row.desired_state)
    .fetch_one(&mut **tx)
    .await
}

pub async fn get(
    tx: &mut Tx,
    tenant: TenantId,
    id: PipelineId,
    lock: bool,
) -> Result<Option<PipelineRow>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM pipelines WHERE tenant_id = $1 AND id = $2{lock}"))
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut **tx)
        .await
}

pub async fn list(
    tx: &mut Tx,
    tenant: TenantId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<PipelineRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM pipelines WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(tenant.as_uuid())
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&mut **tx)
    .await
}

pub async fn delete(tx: &mut Tx, tenant: TenantId, id: PipelineId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM pipelines WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The worker side of a pipeline, as the workers last recorded it.
#[derive(Debug, Default, FromRow)]
pub struct LeaseRow {
    pub state: SliceState,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_commit_at: Option<DateTime<Utc>>,
    pub rows_committed: i64,
    pub dead_letter_rows: i64,
}

pub async fn lease(tx: &mut Tx, tenant: TenantId, id: PipelineId) -> Result<Option<LeaseRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT state, last_error, last_error_at, last_commit_at, rows_committed, dead_letter_rows
         FROM pipeline_leases WHERE tenant_id = $1 AND pipeline_id = $2",
    )
    .bind(tenant.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut **tx)
    .await
}

/// (partition, next offset) in partition order.
pub async fn offsets(tx: &mut Tx, tenant: TenantId, id: PipelineId) -> Result<Vec<(i32, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT partition, next_offset FROM pipeline_offsets WHERE tenant_id = $1 AND pipeline_id = $2 ORDER BY partition",
    )
    .bind(tenant.as_uuid())
    .bind(id.as_uuid())
    .fetch_all(&mut **tx)
    .await
}

/// (minute, rows, dead-letter rows) of the last hour.
pub async fn minutes(
    tx: &mut Tx,
    tenant: TenantId,
    id: PipelineId,
) -> Result<Vec<(DateTime<Utc>, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT minute, rows, dead_letter_rows FROM pipeline_minutes
         WHERE tenant_id = $1 AND pipeline_id = $2 AND minute > now() - interval '61 minutes' ORDER BY minute",
    )
    .bind(tenant.as_uuid())
    .bind(id.as_uuid())
    .fetch_all(&mut **tx)
    .await
}

/// The worker-side rows, created with the pipeline: its status row and its
/// first slice (every partition), so a worker can claim it at once.
pub async fn insert_lease(tx: &mut Tx, tenant: TenantId, id: PipelineId, paused: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pipeline_leases (pipeline_id, tenant_id, state) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(id.as_uuid())
    .bind(tenant.as_uuid())
    .bind(if paused { SliceState::Paused } else { SliceState::Starting })
    .execute(&mut **tx)
    .await?;
    icehouse_workers::coord::slices::insert_initial(tx, id.as_uuid(), tenant.as_uuid(), paused).await
}
