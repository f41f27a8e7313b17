//! Passwords: changed by their owner (knowing the current one) or reset
//! through a single-use link e-mailed to the account's address. Either way
//! every session of the account ends (`db::passwords::set_password`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use icehouse_api::auth::{
    ChangePasswordRequest, CheckYourEmail, ConfirmPasswordResetRequest, PasswordResetRequest, TokenResponse, User,
};
use icehouse_api::{Problem, Role, TenantId, UserId};
use uuid::Uuid;

use super::auth::session;
use crate::auth::context::request_id;
use crate::auth::tokens::{hash_secret, new_secret};
use crate::auth::{password, Actor, RequestContext};
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ClientAddr};
use crate::mail::Mail;
use crate::state::AppState;

const RESET_PREFIX: &str = "ihp_";

/// Changes the caller's password. Every session of the account ends; the
/// answer is a new one in the caller's tenant.
#[utoipa::path(
    post, path = "/api/v1/me/password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; a new session (every other one has ended)", body = TokenResponse),
        (status = 403, description = "An API token has no password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`current_password` is wrong, or `new_password` too short", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts on this account; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn change(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ctx: RequestContext,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let Actor::User(user_id) = ctx.actor else {
        return Err(ApiError::Forbidden("an API token has no password to change".into()));
    };
    let mut tx = db::begin_system(&state.system).await?;
    let user = db::users::user_by_id(&mut tx, user_id).await?.ok_or(ApiError::NotFound("user"))?;
    tx.commit().await?;
    // A stolen access token must not make guessing the password cheap.
    state.auth_limits.check(client, Some(&user.email))?;
    if !password::verify(req.current_password.clone(), Some(user.password_hash.clone())).await? {
        return Err(ApiError::field("current_password", "is not the current password"));
    }
    let hash = password::hash(req.new_password.clone()).await?;
    let mut tx = db::begin_system(&state.system).await?;
    if !db::passwords::set_password(&mut tx, user_id, Some(&user.password_hash), &hash).await? {
        return Err(ApiError::Conflict { field: None, detail: "the password changed meanwhile; try again".into() });
    }
    let (tenant, role) = db::users::login_membership(&mut tx, user_id, Some(ctx.tenant_id))
        .await?
        .ok_or(ApiError::Unauthorized("no longer a member of this tenant"))?;
    audit_everywhere(&mut tx, user_id, &ctx.request_id, "user.password_change").await?;
    let role = db::users::parse_role(&role)?;
    let response = session(&state, &mut tx, tenant, User::from(&user), role, (Uuid::now_v7(), None), None).await?;
    tx.commit().await?;
    Ok(Json(response))
}

/// Mails a password-reset link to the address, if it has an account. The
/// answer is the same either way.
#[utoipa::path(
    post, path = "/api/v1/auth/password-reset", tag = "auth",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "If the address has an account, a link is on its way to it", body = CheckYourEmail),
        (status = 429, description = "Too many attempts from this address or for this account; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This server has no mail settings", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn request_reset(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(req): ApiJson<PasswordResetRequest>,
) -> ApiResult<(StatusCode, Json<CheckYourEmail>)> {
    if !state.mailer.is_configured() {
        return Err(ApiError::Unavailable(
            "password reset sends a link by e-mail, and this server has no mail settings (mail.smtp_host)".into(),
        ));
    }
    state.auth_limits.check(client, Some(&req.email))?;
    let mut tx = db::begin_system(&state.system).await?;
    if let Some(user) = db::users::user_by_email(&mut tx, &req.email).await? {
        let (token, token_hash) = new_secret(RESET_PREFIX);
        let minutes = state.config.auth.password_reset_ttl_minutes;
        db::passwords::insert_reset(&mut tx, user.id, &token_hash, minutes).await?;
        tx.commit().await?;
        if state.auth_limits.allow_mail(&user.email) {
            state.mailer.send_later(Mail::password_reset(
                &user.email,
                &state.mailer.link("/password-reset", &token),
                minutes,
            ));
        } else {
            tracing::warn!("password-reset mail dropped: too many to one address");
        }
    } else {
        tx.commit().await?;
    }
    let message = "If this address has an account, a link to reset its password is on its way to it.".to_string();
    Ok((StatusCode::ACCEPTED, Json(CheckYourEmail { message })))
}

/// Sets a new password with a reset link's token; every session of the
/// account ends, and the owner logs in again.
#[utoipa::path(
    post, path = "/api/v1/auth/password-reset/confirm", tag = "auth",
    request_body = ConfirmPasswordResetRequest,
    responses(
        (status = 204, description = "The password is set; log in with it"),
        (status = 404, description = "Unknown, used or expired link", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn confirm_reset(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ConfirmPasswordResetRequest>,
) -> ApiResult<StatusCode> {
    state.auth_limits.check(client, None)?;
    let token_hash = hash_secret(&req.token);
    // A cheap look first, so a made-up token costs no argon2 time.
    let mut tx = db::begin_system(&state.system).await?;
    let known = db::passwords::reset_exists(&mut tx, &token_hash).await?;
    tx.commit().await?;
    if !known {
        return Err(ApiError::NotFound("reset link"));
    }
    // Hashed before the token is locked: no transaction waits on argon2.
    let hash = password::hash(req.new_password.clone()).await?;
    let mut tx = db::begin_system(&state.system).await?;
    let reset = db::passwords::reset_for_update(&mut tx, &token_hash)
        .await?
        .filter(|r| r.used_at.is_none() && r.expires_at > chrono::Utc::now())
        .ok_or(ApiError::NotFound("reset link"))?;
    let user_id = UserId::from_uuid(reset.user_id);
    if !db::passwords::set_password(&mut tx, user_id, None, &hash).await? {
        return Err(ApiError::NotFound("reset link"));
    }
    audit_everywhere(&mut tx, user_id, &request_id(&headers), "user.password_reset").await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An audit entry in every tenant the account belongs to: its sessions ended
/// in all of them.
async fn audit_everywhere(tx: &mut Tx, user: UserId, request_id: &str, action: &str) -> ApiResult<()> {
    for tenant in db::passwords::tenants_of(tx, user).await? {
        let ctx = RequestContext {
            request_id: request_id.to_string(),
            actor: Actor::User(user),
            tenant_id: TenantId::from_uuid(tenant),
            // Not used by the audit entry; the actor is the account itself.
            role: Role::Viewer,
        };
        db::audit::record(tx, &ctx, action, "user", user, None::<&()>, None::<&()>).await?;
    }
    Ok(())
}
