//! `POST /api/v1/query`: one read-only SELECT over the tenant's tables.

use axum::extract::State;
use axum::Json;
use icehouse_api::query::{QueryColumn, QueryRequest, QueryResult, DEFAULT_QUERY_ROWS};
use icehouse_api::{Problem, Role};

use crate::auth::RequestContext;
use crate::error::ApiResult;
use crate::extract::ApiJson;
use crate::query;
use crate::state::AppState;

/// Runs one `SELECT` with DataFusion over the tenant's Iceberg tables (named
/// `namespace.table`), reading each table's current snapshot. Bounded in rows
/// (`max_rows`), time and memory; a mistake in the SQL is a 422 with the
/// error on the `sql` field.
#[utoipa::path(
    post, path = "/api/v1/query", tag = "query", security(("bearer" = [])),
    request_body = QueryRequest,
    responses(
        (status = 200, body = QueryResult),
        (status = 422, description = "Not a valid read-only query, or one over its time or memory", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many queries running (the tenant's, or the server's); `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "A warehouse could not be reached", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn run(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(req): ApiJson<QueryRequest>,
) -> ApiResult<Json<QueryResult>> {
    ctx.require(Role::Viewer)?;
    let max_rows = req.max_rows.unwrap_or(DEFAULT_QUERY_ROWS) as usize;
    let (out, rows) = query::run_json(&state, ctx.tenant_id, &req.sql, max_rows).await?;
    let columns = out
        .schema
        .fields()
        .iter()
        .map(|f| QueryColumn { name: f.name().clone(), data_type: f.data_type().to_string() })
        .collect();
    Ok(Json(QueryResult { columns, rows, truncated: out.truncated, elapsed_ms: out.elapsed.as_millis() as u64 }))
}
