//! Invitations: the only way into a tenant besides creating it.
//!
//! An admin invites an address with a role. The invitation has two
//! single-use links: one shown once to the admin, one e-mailed to the
//! address (when the server has mail). Either lets the account that has the
//! address join: by its logged-in session, or with its password. Only the
//! mailed one can make the account (the accepter picks its password), since
//! only opening it proves the address. So no admin can make an account for
//! someone else's address, set its password, or learn from the link whether
//! the address has an account (a wrong password and a missing account answer
//! alike). Where sign-up is open (`icehouse dev`), addresses are never
//! proven, and the shown link makes accounts too.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use icehouse_api::auth::{TokenResponse, User};
use icehouse_api::invitations::{
    AcceptInvitationRequest, CreateInvitationRequest, CreatedInvitation, Invitation, MailDelivery,
};
use icehouse_api::pagination::{ListParams, Page};
use icehouse_api::validate::Validator;
use icehouse_api::{InvitationId, Problem, Role, TenantId, UserId};
use uuid::Uuid;

use super::auth::session;
use crate::auth::context::{bearer, context_for, request_id};
use crate::auth::tokens::{hash_secret, new_secret};
use crate::auth::{password, Actor, RequestContext};
use crate::config::SignupMode;
use crate::db::{self, PageRequest};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, ClientAddr};
use crate::mail::Mail;
use crate::state::AppState;

const INVITATION_PREFIX: &str = "ihi_";
/// Open invitations a tenant may have at once.
const MAX_OPEN: i64 = 100;

#[utoipa::path(
    post, path = "/api/v1/invitations", tag = "users", security(("bearer" = [])),
    request_body = CreateInvitationRequest,
    responses(
        (status = 201, description = "The invitation and its link, shown this once. The answer is the same whether or not the address has an account", body = CreatedInvitation),
        (status = 403, description = "Needs the admin role, and owner to invite an owner", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member, or too many open invitations", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiJson(req): ApiJson<CreateInvitationRequest>,
) -> ApiResult<(StatusCode, Json<CreatedInvitation>)> {
    ctx.require(Role::Admin)?;
    if req.role == Role::Owner {
        ctx.require(Role::Owner)?;
    }
    let inviter = ctx.user_id().ok_or_else(|| ApiError::Forbidden("this token has no creator to invite as".into()))?;
    let email = req.email.trim();
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    if db::invitations::is_member(&mut tx, ctx.tenant_id, email).await? {
        return Err(ApiError::Conflict { field: Some("email"), detail: "this address is already a member".into() });
    }
    match db::invitations::open_for_address(&mut tx, ctx.tenant_id, email).await? {
        // Replacing an invitation as owner is withdrawing it, which needs an owner.
        Some(open) if open.role == Role::Owner.as_str() => ctx.require(Role::Owner)?,
        Some(_) => {}
        None if db::invitations::count_open(&mut tx, ctx.tenant_id).await? >= MAX_OPEN => {
            return Err(ApiError::Conflict {
                field: None,
                detail: format!("the tenant has {MAX_OPEN} open invitations; withdraw some first"),
            });
        }
        None => {}
    }
    // The mailed link, when a mail goes out: only it can make an account.
    let mail = if !state.mailer.is_configured() {
        MailDelivery::NotConfigured
    } else if !state.auth_limits.allow_invitation_mail(ctx.tenant_id, email) {
        MailDelivery::Throttled
    } else {
        MailDelivery::Sent
    };
    let mailed = (mail == MailDelivery::Sent).then(|| new_secret(INVITATION_PREFIX));
    let (token, token_hash) = new_secret(INVITATION_PREFIX);
    let hours = state.config.auth.invitation_ttl_hours;
    let mail_hash = mailed.as_ref().map(|(_, hash)| hash.as_slice());
    let (row, replaced) =
        db::invitations::replace_open(&mut tx, ctx.tenant_id, email, req.role, &token_hash, mail_hash, inviter, hours)
            .await?;
    if let Some(replaced) = replaced {
        let replaced = Invitation::try_from(replaced)?;
        db::audit::record(
            &mut tx,
            &ctx,
            "invitation.withdraw",
            "invitation",
            replaced.id,
            Some(&replaced),
            None::<&()>,
        )
        .await?;
    }
    let invitation = Invitation::try_from(row)?;
    db::audit::record(&mut tx, &ctx, "invitation.create", "invitation", invitation.id, None::<&()>, Some(&invitation))
        .await?;
    let tenant = db::users::tenant(&mut tx, ctx.tenant_id).await?.ok_or(ApiError::NotFound("tenant"))?;
    let inviter_email = db::users::user_by_id(&mut tx, inviter).await?.map(|u| u.email).unwrap_or_default();
    tx.commit().await?;

    let url = state.mailer.link("/invitations/accept", &token);
    let mail = match mailed {
        None => mail,
        Some((mail_token, _)) => {
            let link = state.mailer.link("/invitations/accept", &mail_token);
            let message = Mail::invitation(email, &tenant.name, &inviter_email, req.role.as_str(), &link, hours);
            // lettre bounds each SMTP step; this bounds the whole hand-over,
            // well inside the request's own timeout (the link must be shown).
            let limit = Duration::from_secs(
                (state.config.mail.timeout_secs.max(1) * 3).min(state.config.http.request_timeout_secs / 2).max(1),
            );
            tokio::time::timeout(limit, state.mailer.send(message)).await.unwrap_or(MailDelivery::Failed)
        }
    };
    Ok((StatusCode::CREATED, Json(CreatedInvitation { invitation, token, url, mail })))
}

#[utoipa::path(
    get, path = "/api/v1/invitations", tag = "users", security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "Open invitations (not accepted, not expired)", body = Page<Invitation>),
        (status = 403, description = "Needs the admin role", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn list(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Invitation>>> {
    ctx.require(Role::Admin)?;
    let page = PageRequest::from_params(&params)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let rows = db::invitations::list_open(&mut tx, ctx.tenant_id, page.after, page.limit).await?;
    tx.commit().await?;
    let (rows, next_cursor) = page.finish(rows, |r| r.id);
    let items = rows.into_iter().map(Invitation::try_from).collect::<anyhow::Result<_>>()?;
    Ok(Json(Page { items, next_cursor }))
}

#[utoipa::path(
    delete, path = "/api/v1/invitations/{invitation_id}", tag = "users", security(("bearer" = [])),
    params(("invitation_id" = InvitationId, Path)),
    responses(
        (status = 204, description = "Withdrawn: its link no longer works"),
        (status = 403, description = "Needs the admin role, and owner for an invitation as owner", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn withdraw(
    State(state): State<AppState>,
    ctx: RequestContext,
    ApiPath(id): ApiPath<InvitationId>,
) -> ApiResult<StatusCode> {
    ctx.require(Role::Admin)?;
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let row = db::invitations::open_by_id(&mut tx, ctx.tenant_id, id).await?.ok_or(ApiError::NotFound("invitation"))?;
    let invitation = Invitation::try_from(row)?;
    if invitation.role == Role::Owner {
        ctx.require(Role::Owner)?;
    }
    db::invitations::delete(&mut tx, ctx.tenant_id, id).await?;
    db::audit::record(&mut tx, &ctx, "invitation.withdraw", "invitation", id, Some(&invitation), None::<&()>).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Joins the invited tenant and starts a session in it. With a user's
/// bearer token the logged-in account joins (it must have the invited
/// address); without one, a new address gets an account with `password`,
/// and an existing account needs its own password.
#[utoipa::path(
    post, path = "/api/v1/invitations/accept", tag = "users",
    request_body = AcceptInvitationRequest,
    responses(
        (status = 200, description = "An existing account joined; a session in the tenant", body = TokenResponse),
        (status = 201, description = "A new account was made and joined; a session in the tenant", body = TokenResponse),
        (status = 401, description = "Wrong password for the existing account, or a bad bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The logged-in account has another address", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown, used, withdrawn or expired invitation", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address or on this account; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn accept(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    ApiJson(req): ApiJson<AcceptInvitationRequest>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    /// One answer for a wrong password and for an address without an
    /// account that only the mailed link may make, so the admin's copy of
    /// the link tells nothing about which addresses have accounts.
    const NO_ENTRY: ApiError = ApiError::Unauthorized(
        "wrong password for this address's account (a new account is made only from the link in the invitation e-mail)",
    );
    let logged_in = match bearer(&headers) {
        None => None,
        Some(token) => match context_for(&state, token, request_id(&headers)).await?.actor {
            Actor::User(id) => Some(id),
            Actor::ApiToken { .. } => {
                return Err(ApiError::Forbidden("an API token cannot accept an invitation".into()))
            }
        },
    };
    let token_hash = hash_secret(&req.token);
    let mut tx = db::begin_system(&state.system).await?;
    let invitation = db::invitations::by_token_for_update(&mut tx, &token_hash)
        .await?
        .filter(|i| i.is_open())
        .ok_or(ApiError::NotFound("invitation"))?;
    let account = match logged_in {
        Some(id) => Some(db::users::user_by_id(&mut tx, id).await?.ok_or(ApiError::Unauthorized("no such account"))?),
        None => db::users::user_by_email(&mut tx, &invitation.email).await?,
    };
    // No transaction is held while a password is checked or hashed.
    tx.commit().await?;
    // Counted once, on the address and on the invited account (a password guess).
    state.auth_limits.check(client, logged_in.is_none().then_some(invitation.email.as_str()))?;
    // A new account only from the mailed link, or where sign-up is open (an
    // address proves nothing on such a server anyway).
    let may_create = invitation.by_mail == Some(true) || state.config.auth.signup_mode() == SignupMode::Open;

    let (checked, new_account_hash) = match (&account, logged_in) {
        (Some(user), Some(_)) => {
            if !user.email.eq_ignore_ascii_case(&invitation.email) {
                return Err(ApiError::Forbidden(
                    "this invitation is for another address; log out, or accept with that address's password".into(),
                ));
            }
            (None, None)
        }
        (None, _) if may_create => {
            let Some(given) = req.password.clone() else {
                return Err(ApiError::field("password", "is required to create the account"));
            };
            let mut v = Validator::new();
            v.password("password", &given);
            v.finish().map_err(ApiError::Validation)?;
            (None, Some(password::hash(given).await?))
        }
        (account, _) => {
            let Some(given) = req.password.clone() else {
                return Err(ApiError::field("password", "is required: the password of this address's account"));
            };
            // With no account, the same work as a wrong password.
            let stored = account.as_ref().map(|u| u.password_hash.clone());
            if !password::verify(given, stored.clone()).await? {
                return Err(NO_ENTRY);
            }
            (stored, None)
        }
    };

    let mut tx = db::begin_system(&state.system).await?;
    // Looked at again under the lock: withdrawn or accepted in the meantime.
    let invitation = db::invitations::by_token_for_update(&mut tx, &token_hash)
        .await?
        .filter(|i| i.is_open())
        .ok_or(ApiError::NotFound("invitation"))?;
    let (user, status) = match (account, new_account_hash) {
        (Some(user), _) => (user, StatusCode::OK),
        // An account made for the address in the meantime wins (409 on the unique email).
        (None, Some(hash)) => (db::users::insert_user(&mut tx, &invitation.email, &hash).await?, StatusCode::CREATED),
        (None, None) => return Err(NO_ENTRY),
    };
    let tenant_id = TenantId::from_uuid(invitation.tenant_id);
    let user_id = UserId::from_uuid(user.id);
    let role = db::users::parse_role(&invitation.role)?;
    let member = db::users::insert_membership(&mut tx, tenant_id, user_id, role).await?;
    db::invitations::mark_accepted(&mut tx, invitation.id, user_id).await?;
    let ctx = RequestContext { request_id: request_id(&headers), actor: Actor::User(user_id), tenant_id, role };
    let member = icehouse_api::users::Member::try_from(member)?;
    db::audit::record(&mut tx, &ctx, "invitation.accept", "member", user_id, None::<&()>, Some(&member)).await?;
    let tenant = db::users::tenant(&mut tx, tenant_id).await?.ok_or(ApiError::NotFound("tenant"))?;
    let response =
        session(&state, &mut tx, tenant, User::from(&user), role, (Uuid::now_v7(), None), checked.as_deref()).await?;
    tx.commit().await?;
    Ok((status, Json(response)))
}
