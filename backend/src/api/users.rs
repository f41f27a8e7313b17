//! Members of the tenant. Admins manage members; only owners grant or take
//! away ownership, and the last owner can be neither demoted nor removed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use icehouse_api::pagination::{ListParams, Page};
use icehouse_api::users::{AddMemberRequest, ApiToken, Member, UpdateMemberRequest};
use icehouse_api::{Problem, Role, UserId};

use crate::auth::{password, RequestContext};
use crate::db::{self, PageRequest};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

#[utoipa::path(
    get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, body = Page<Member>))
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Member>>> {
    ctx.require(Role::Viewer)?;
    let page = PageRequest::from_params(&params)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let rows = db::users::list_members(&mut tx, ctx.tenant_id, page.after, page.limit).await?;
    tx.commit().await?;
    let (rows, next_cursor) = page.finish(rows, |r| r.user_id);
    let items = rows.into_iter().map(Member::try_from).collect::<anyhow::Result<_>>()?;
    Ok(Json(Page { items, next_cursor }))
}

/// Adds a user by email: an existing account joins as it is; a new one is
/// created with the given initial password.
#[utoipa::path(
    post, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    request_body = AddMemberRequest,
    responses(
        (status = 201, body = Member),
        (status = 403, description = "Needs the admin role, and owner to add an owner", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn add(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(req): ApiJson<AddMemberRequest>,
) -> ApiResult<(StatusCode, Json<Member>)> {
    ctx.require(Role::Admin)?;
    if req.role == Role::Owner {
        ctx.require(Role::Owner)?;
    }
    // Looking up an account by email crosses tenants: users are global.
    let mut tx = db::begin_system(&state.pool).await?;
    let existing = db::users::user_by_email(&mut tx, &req.email).await?;
    // No connection is held while a new password is hashed.
    tx.commit().await?;
    let new_hash = match (&existing, req.password.clone()) {
        (Some(_), _) => None,
        (None, Some(password)) => Some(password::hash(password).await?),
        (None, None) => return Err(ApiError::field("password", "is required to create a new account")),
    };
    let mut tx = db::begin_system(&state.pool).await?;
    let user = match (existing, new_hash) {
        (Some(user), _) => user,
        // A concurrent add of the same address loses on the unique email (409).
        (None, hash) => db::users::insert_user(&mut tx, &req.email, &hash.expect("hashed above")).await?,
    };
    let member: Member =
        db::users::insert_membership(&mut tx, ctx.tenant_id, UserId::from_uuid(user.id), req.role).await?.try_into()?;
    db::audit::record(&mut tx, &ctx, "member.add", "member", member.user_id, None::<&()>, Some(&member)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(member)))
}

#[utoipa::path(
    patch, path = "/api/v1/users/{user_id}", tag = "users", security(("bearer" = [])),
    params(("user_id" = UserId, Path)),
    request_body = UpdateMemberRequest,
    responses(
        (status = 200, body = Member),
        (status = 403, description = "Needs the admin role, and owner to grant or take away ownership", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Would leave the tenant without an owner", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn update(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(user_id): ApiPath<UserId>,
    ApiJson(req): ApiJson<UpdateMemberRequest>,
) -> ApiResult<Json<Member>> {
    ctx.require(Role::Admin)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let before: Member =
        db::users::member(&mut tx, ctx.tenant_id, user_id).await?.ok_or(ApiError::NotFound("user"))?.try_into()?;
    if before.role == Role::Owner || req.role == Role::Owner {
        ctx.require(Role::Owner)?;
    }
    if before.role == Role::Owner
        && req.role != Role::Owner
        && db::users::lock_owner_count(&mut tx, ctx.tenant_id).await? <= 1
    {
        return Err(ApiError::Conflict {
            field: Some("role"),
            detail: "the tenant's last owner cannot be demoted; make someone else owner first".into(),
        });
    }
    db::users::set_member_role(&mut tx, ctx.tenant_id, user_id, req.role).await?;
    // A token has at most its creator's rights, now as when it was made.
    for row in db::tokens::cap_api_tokens_of(&mut tx, ctx.tenant_id, user_id, req.role).await? {
        let token = ApiToken::try_from(row)?;
        db::audit::record(&mut tx, &ctx, "api_token.cap", "api_token", token.id, None::<&()>, Some(&token)).await?;
    }
    let after = Member { role: req.role, ..before.clone() };
    db::audit::record(&mut tx, &ctx, "member.update", "member", user_id, Some(&before), Some(&after)).await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[utoipa::path(
    delete, path = "/api/v1/users/{user_id}", tag = "users", security(("bearer" = [])),
    params(("user_id" = UserId, Path)),
    responses(
        (status = 204, description = "Removed from the tenant"),
        (status = 403, description = "Needs the admin role, and owner to remove an owner", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(user_id): ApiPath<UserId>,
) -> ApiResult<StatusCode> {
    ctx.require(Role::Admin)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let before: Member =
        db::users::member(&mut tx, ctx.tenant_id, user_id).await?.ok_or(ApiError::NotFound("user"))?.try_into()?;
    if before.role == Role::Owner {
        ctx.require(Role::Owner)?;
        if db::users::lock_owner_count(&mut tx, ctx.tenant_id).await? <= 1 {
            return Err(ApiError::Conflict { field: None, detail: "the tenant's last owner cannot be removed".into() });
        }
    }
    db::users::delete_member(&mut tx, ctx.tenant_id, user_id).await?;
    for row in db::tokens::revoke_api_tokens_of(&mut tx, ctx.tenant_id, user_id).await? {
        let token = ApiToken::try_from(row)?;
        db::audit::record(&mut tx, &ctx, "api_token.revoke", "api_token", token.id, Some(&token), None::<&()>).await?;
    }
    db::audit::record(&mut tx, &ctx, "member.remove", "member", user_id, Some(&before), None::<&()>).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
