//! Members of the tenant. Admins manage members (who join by invitation,
//! `api/invitations.rs`); only owners grant or take away ownership, and the
//! last owner can be neither demoted nor removed. What a member made with
//! their rights follows them out and down: their API tokens are revoked or
//! capped, their open invitations beyond their new role withdrawn.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use icehouse_api::invitations::Invitation;
use icehouse_api::pagination::{ListParams, Page};
use icehouse_api::users::{ApiToken, Member, UpdateMemberRequest};
use icehouse_api::{Problem, Role, UserId};

use crate::auth::RequestContext;
use crate::db::Tx;
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
    withdraw_invitations(&mut tx, &ctx, user_id, Some(req.role)).await?;
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
    withdraw_invitations(&mut tx, &ctx, user_id, None).await?;
    db::audit::record(&mut tx, &ctx, "member.remove", "member", user_id, Some(&before), None::<&()>).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Withdraws the open invitations `user` made beyond what `role` (`None`:
/// gone) may invite, each with an audit entry.
async fn withdraw_invitations(tx: &mut Tx, ctx: &RequestContext, user: UserId, role: Option<Role>) -> ApiResult<()> {
    for row in db::invitations::withdraw_beyond(tx, ctx.tenant_id, user, role).await? {
        let invitation = Invitation::try_from(row)?;
        db::audit::record(tx, ctx, "invitation.withdraw", "invitation", invitation.id, Some(&invitation), None::<&()>)
            .await?;
    }
    Ok(())
}
