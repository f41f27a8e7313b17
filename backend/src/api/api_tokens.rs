//! API tokens: long-lived bearer tokens for integrators, scoped to a tenant
//! and a role. The secret is returned once, at creation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use icehouse_api::pagination::{ListParams, Page};
use icehouse_api::users::{ApiToken, CreateApiTokenRequest, CreatedApiToken};
use icehouse_api::{ApiTokenId, Problem, Role};

use crate::auth::tokens::{new_secret, API_TOKEN_PREFIX};
use crate::auth::RequestContext;
use crate::db::{self, PageRequest};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[utoipa::path(
    get, path = "/api/v1/api-tokens", tag = "api-tokens", security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, body = Page<ApiToken>), (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"))
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<ApiToken>>> {
    ctx.require(Role::Admin)?;
    let page = PageRequest::from_params(&params)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let rows = db::tokens::list_api_tokens(&mut tx, ctx.tenant_id, page.after, page.limit).await?;
    tx.commit().await?;
    let (rows, next_cursor) = page.finish(rows, |r| r.id);
    let items = rows.into_iter().map(ApiToken::try_from).collect::<anyhow::Result<_>>()?;
    Ok(Json(Page { items, next_cursor }))
}

#[utoipa::path(
    post, path = "/api/v1/api-tokens", tag = "api-tokens", security(("bearer" = [])),
    request_body = CreateApiTokenRequest,
    responses(
        (status = 201, body = CreatedApiToken),
        (status = 403, description = "Needs the admin role, and a token gets at most its creator's role", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(req): ApiJson<CreateApiTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedApiToken>)> {
    ctx.require(Role::Admin)?;
    let (secret, hash) = new_secret(API_TOKEN_PREFIX);
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    // The creator's membership, locked: removing or demoting them waits for
    // this token, and then revokes or caps it with the others.
    let creator = ctx.user_id().ok_or_else(|| ApiError::Forbidden("a token needs a member to create it".into()))?;
    let Some(member) = db::users::member(&mut tx, ctx.tenant_id, creator).await? else {
        return Err(ApiError::Forbidden("the token's creator is no longer a member".into()));
    };
    // At most the caller's role (a token's, when a token calls) and the
    // creator's as it is now, under the lock (a demotion may have just landed).
    let allowed = ctx.role.min(db::users::parse_role(&member.role)?);
    if req.role > allowed {
        return Err(ApiError::Forbidden(format!(
            "a token cannot have more rights than its creator ({})",
            allowed.as_str()
        )));
    }
    let row = db::tokens::insert_api_token(
        &mut tx,
        ctx.tenant_id,
        &req.name,
        req.role,
        &hash,
        ctx.user_id(),
        req.expires_in_days.unwrap_or(state.config.auth.api_token_ttl_days),
    )
    .await?;
    let token = ApiToken::try_from(row)?;
    db::audit::record(&mut tx, &ctx, "api_token.create", "api_token", token.id, None::<&()>, Some(&token)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedApiToken { token, secret })))
}

#[utoipa::path(
    delete, path = "/api/v1/api-tokens/{token_id}", tag = "api-tokens", security(("bearer" = [])),
    params(("token_id" = ApiTokenId, Path)),
    responses((status = 204, description = "Revoked"), (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json"))
)]
pub async fn delete(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<ApiTokenId>,
) -> ApiResult<StatusCode> {
    ctx.require(Role::Admin)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let row = db::tokens::delete_api_token(&mut tx, ctx.tenant_id, id).await?.ok_or(ApiError::NotFound("API token"))?;
    let before = ApiToken::try_from(row)?;
    db::audit::record(&mut tx, &ctx, "api_token.delete", "api_token", id, Some(&before), None::<&()>).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
