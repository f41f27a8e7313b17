//! A pipeline's dead-letter rows, newest first: read from its dead-letter
//! Iceberg table through the query service, like any reader would.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use icehouse_api::status::{DeadLetterList, DeadLetterRow};
use icehouse_api::{PipelineId, Problem, Role};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::RequestContext;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::query;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterParams {
    /// How many rows, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/v1/pipelines/{pipeline_id}/dead-letters", tag = "pipelines", security(("bearer" = [])),
    params(("pipeline_id" = PipelineId, Path), DeadLetterParams),
    responses((status = 200, body = DeadLetterList), (status = 502, description = "A warehouse could not be reached", body = Problem, content_type = "application/problem+json"))
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<PipelineId>,
    ApiQuery(params): ApiQuery<DeadLetterParams>,
) -> ApiResult<Json<DeadLetterList>> {
    ctx.require(Role::Viewer)?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 200"));
    }
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let pipeline =
        db::pipelines::get(&mut tx, ctx.tenant_id, id, false).await?.ok_or(ApiError::NotFound("pipeline"))?;
    tx.commit().await?;
    let table = format!("\"{}\".\"{}_dead_letter\"", pipeline.namespace, pipeline.table_name);
    // Every column: a table made by an earlier release may not have the
    // newer ones yet (a worker adds them when it next runs the pipeline).
    let sql = format!("SELECT * FROM {table} ORDER BY received_at DESC, \"partition\", \"offset\" DESC LIMIT {limit}");
    let out = query::run(&state, ctx.tenant_id, &sql, limit as usize).await.map_err(internal)?;
    let mut rows = Vec::new();
    for batch in &out.batches {
        rows.extend(to_rows(batch)?);
    }
    let count =
        query::run(&state, ctx.tenant_id, &format!("SELECT count(*) FROM {table}"), 1).await.map_err(internal)?;
    let total = count
        .batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| cast(b.column(0), &DataType::Int64).map(|c| c.as_primitive::<Int64Type>().value(0)))
        .transpose()
        .map_err(ApiError::internal)?
        .unwrap_or(0);
    Ok(Json(DeadLetterList { rows, total }))
}

/// Our own SQL over our own table: a failure here is not the caller's mistake.
fn internal(e: ApiError) -> ApiError {
    match e {
        ApiError::Validation(errors) => ApiError::internal(anyhow::anyhow!(
            "reading the dead-letter table: {}",
            errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ")
        )),
        other => other,
    }
}

/// How much of a key or value the view shows.
const SHOWN_BYTES: usize = 64 * 1024;

fn to_rows(batch: &RecordBatch) -> ApiResult<Vec<DeadLetterRow>> {
    let optional = |name: &str, ty: &DataType| {
        batch.column_by_name(name).map(|c| cast(c, ty)).transpose().map_err(ApiError::internal)
    };
    let col = |name: &str, ty: &DataType| {
        optional(name, ty)?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the dead-letter table has no column {name}")))
    };
    let micros = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00")));
    let partition = col("partition", &DataType::Int32)?;
    let offset = col("offset", &DataType::Int64)?;
    let kafka_ts = col("kafka_timestamp", &micros)?;
    let key = col("key", &DataType::Binary)?;
    let value = col("value", &DataType::Binary)?;
    let stage = col("error_stage", &DataType::Utf8)?;
    let kind = col("error_kind", &DataType::Utf8)?;
    let message = col("error_message", &DataType::Utf8)?;
    let received = col("received_at", &micros)?;
    let stored_cut = optional("truncated", &DataType::Boolean)?;
    let value_bytes = optional("value_bytes", &DataType::Int64)?;
    let ts = |a: &dyn Array, i: usize| {
        (!a.is_null(i))
            .then(|| chrono::DateTime::from_timestamp_micros(a.as_primitive::<TimestampMicrosecondType>().value(i)))
            .flatten()
    };
    // Up to SHOWN_BYTES, as text; whether that cut it.
    let text = |a: &dyn Array, i: usize| {
        if a.is_null(i) {
            return (None, false);
        }
        let bytes = a.as_binary::<i32>().value(i);
        let shown = &bytes[..bytes.len().min(SHOWN_BYTES)];
        (Some(String::from_utf8_lossy(shown).into_owned()), shown.len() < bytes.len())
    };
    let flag = |a: &Option<datafusion::arrow::array::ArrayRef>, i: usize| {
        a.as_ref().is_some_and(|a| a.is_valid(i) && a.as_boolean().value(i))
    };
    (0..batch.num_rows())
        .map(|i| {
            let (key, key_cut) = text(key.as_ref(), i);
            let (value_text, value_cut) = text(value.as_ref(), i);
            Ok(DeadLetterRow {
                partition: partition.as_primitive::<Int32Type>().value(i),
                offset: offset.as_primitive::<Int64Type>().value(i),
                kafka_timestamp: ts(kafka_ts.as_ref(), i),
                key,
                value: value_text,
                truncated: key_cut || value_cut || flag(&stored_cut, i),
                value_bytes: value_bytes
                    .as_ref()
                    .and_then(|a| a.is_valid(i).then(|| a.as_primitive::<Int64Type>().value(i))),
                error_stage: stage.as_string::<i32>().value(i).to_string(),
                error_kind: kind.as_string::<i32>().value(i).to_string(),
                error_message: message.as_string::<i32>().value(i).to_string(),
                received_at: ts(received.as_ref(), i)
                    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a dead-letter row without received_at")))?,
            })
        })
        .collect()
}
