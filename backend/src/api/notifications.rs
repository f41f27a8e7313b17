//! Notifications for admins: pipeline failures, newest first, with each
//! member's unread count.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use icehouse_api::notifications::{MarkReadRequest, NotificationList};
use icehouse_api::{Problem, Role};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::RequestContext;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    /// How many, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/v1/notifications", tag = "notifications", security(("bearer" = [])),
    params(NotificationParams),
    responses((status = 200, body = NotificationList), (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"))
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(params): ApiQuery<NotificationParams>,
) -> ApiResult<Json<NotificationList>> {
    ctx.require(Role::Admin)?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 200"));
    }
    let user = ctx.user_id().map(|u| u.as_uuid());
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let rows = db::notifications::list(&mut tx, ctx.tenant_id, user, limit as i64).await?;
    let unread = db::notifications::unread(&mut tx, ctx.tenant_id, user).await?;
    tx.commit().await?;
    let items = rows.into_iter().map(|r| r.to_api()).collect::<anyhow::Result<_>>()?;
    Ok(Json(NotificationList { items, unread }))
}

/// Marks the caller's notifications read, up to an id or all of them.
#[utoipa::path(
    post, path = "/api/v1/notifications/read", tag = "notifications", security(("bearer" = [])),
    request_body = MarkReadRequest,
    responses(
        (status = 204, description = "Marked"),
        (status = 403, description = "Needs the admin role, and a user: an API token has no read state", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn mark_read(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(req): ApiJson<MarkReadRequest>,
) -> ApiResult<StatusCode> {
    ctx.require(Role::Admin)?;
    let Some(user) = ctx.user_id() else {
        return Err(ApiError::Forbidden("read state belongs to a user; this API token has none".into()));
    };
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    db::notifications::mark_read(&mut tx, ctx.tenant_id, user.as_uuid(), req.up_to).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
