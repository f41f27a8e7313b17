//! The audit log, for admins.

use axum::extract::State;
use axum::Json;
use icehouse_api::audit::AuditEntry;
use icehouse_api::pagination::{ListParams, Page};
use icehouse_api::{Problem, Role};

use crate::auth::RequestContext;
use crate::db::{self, PageRequest};
use crate::error::ApiResult;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Every mutation in the tenant, newest first.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, body = Page<AuditEntry>), (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"))
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    ctx.require(Role::Admin)?;
    let page = PageRequest::from_params(&params)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let rows = db::audit::list(&mut tx, ctx.tenant_id, page.after, page.limit).await?;
    tx.commit().await?;
    let (rows, next_cursor) = page.finish(rows, |r| r.id);
    Ok(Json(Page { items: rows.into_iter().map(AuditEntry::from).collect(), next_cursor }))
}
