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
    let sql = format!(
        "SELECT \"partition\", \"offset\", kafka_timestamp, key, value, error_stage, error_kind, error_message, \
         received_at FROM {table} ORDER BY received_at DESC, \"partition\", \"offset\" DESC LIMIT {limit}"
    );
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

fn to_rows(batch: &RecordBatch) -> ApiResult<Vec<DeadLetterRow>> {
    let col = |i: usize, ty: &DataType| cast(batch.column(i), ty).map_err(ApiError::internal);
    let micros = DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00")));
    let partition = col(0, &DataType::Int32)?;
    let offset = col(1, &DataType::Int64)?;
    let kafka_ts = col(2, &micros)?;
    let key = col(3, &DataType::Binary)?;
    let value = col(4, &DataType::Binary)?;
    let stage = col(5, &DataType::Utf8)?;
    let kind = col(6, &DataType::Utf8)?;
    let message = col(7, &DataType::Utf8)?;
    let received = col(8, &micros)?;
    let ts = |a: &dyn Array, i: usize| {
        (!a.is_null(i))
            .then(|| chrono::DateTime::from_timestamp_micros(a.as_primitive::<TimestampMicrosecondType>().value(i)))
            .flatten()
    };
    let text = |a: &dyn Array, i: usize| {
        (!a.is_null(i)).then(|| String::from_utf8_lossy(a.as_binary::<i32>().value(i)).into_owned())
    };
    (0..batch.num_rows())
        .map(|i| {
            Ok(DeadLetterRow {
                partition: partition.as_primitive::<Int32Type>().value(i),
                offset: offset.as_primitive::<Int64Type>().value(i),
                kafka_timestamp: ts(kafka_ts.as_ref(), i),
                key: text(key.as_ref(), i),
                value: text(value.as_ref(), i),
                error_stage: stage.as_string::<i32>().value(i).to_string(),
                error_kind: kind.as_string::<i32>().value(i).to_string(),
                error_message: message.as_string::<i32>().value(i).to_string(),
                received_at: ts(received.as_ref(), i)
                    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a dead-letter row without received_at")))?,
            })
        })
        .collect()
}
