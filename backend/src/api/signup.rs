//! Sign-up: a new tenant with the caller as its owner.
//!
//! Open sign-up (`auth.signup = "open"`, `icehouse dev`'s default) makes the
//! tenant at once. Verified sign-up (`serve`'s default) answers the same
//! "check your e-mail" whatever the address: a new one gets a link that
//! makes the tenant when opened, one that has an account gets a note saying
//! so. Nobody learns from sign-up which addresses have accounts.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use icehouse_api::auth::{CheckYourEmail, ConfirmSignupRequest, SignupRequest, TokenResponse, User};
use icehouse_api::{Problem, Role, TenantId, UserId};
use uuid::Uuid;

use super::auth::session;
use crate::auth::context::request_id;
use crate::auth::tokens::{hash_secret, new_secret};
use crate::auth::{password, Actor, RequestContext};
use crate::config::SignupMode;
use crate::db::{self, Tx};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ClientAddr};
use crate::mail::Mail;
use crate::state::AppState;

const SIGNUP_PREFIX: &str = "ihs_";

/// Creates a tenant with the caller as its owner: at once (open sign-up, 201
/// with a session), or once the address is confirmed (verified sign-up, 202:
/// the link arrives by e-mail and `POST /api/v1/auth/signup/confirm` takes it).
#[utoipa::path(
    post, path = "/api/v1/auth/signup", tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Open sign-up: the tenant exists and this is a session in it", body = TokenResponse),
        (status = 202, description = "Verified sign-up: the next step is in an e-mail to the address (the same answer whether or not it has an account)", body = CheckYourEmail),
        (status = 409, description = "Tenant name taken, or (open sign-up only) the email has an account", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address or on this account; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Verified sign-up on a server without mail settings", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn signup(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SignupRequest>,
) -> ApiResult<Response> {
    state.auth_limits.check(client, Some(&req.email))?;
    if state.config.auth.signup_mode() == SignupMode::Verified && !state.mailer.is_configured() {
        return Err(ApiError::Unavailable(
            "sign-up confirms the address by e-mail, and this server has no mail settings (mail.smtp_host)".into(),
        ));
    }
    // The same work whether or not the address has an account.
    let hash = password::hash(req.password.clone()).await?;
    if state.config.auth.signup_mode() == SignupMode::Open {
        let mut tx = db::begin_system(&state.system).await?;
        let response = create_tenant(&state, &mut tx, &headers, &req.tenant_name, &req.email, &hash).await?;
        tx.commit().await?;
        return Ok((StatusCode::CREATED, Json(response)).into_response());
    }

    let mut tx = db::begin_system(&state.system).await?;
    if db::signups::tenant_name_taken(&mut tx, &req.tenant_name).await? {
        return Err(ApiError::Conflict {
            field: Some("tenant_name"),
            detail: "a tenant with this name already exists".into(),
        });
    }
    let mail = if db::users::user_by_email(&mut tx, &req.email).await?.is_some() {
        Mail::account_exists(&req.email, &state.mailer.page("/login"), &state.mailer.page("/password-reset"))
    } else {
        let (token, token_hash) = new_secret(SIGNUP_PREFIX);
        let hours = state.config.auth.signup_ttl_hours;
        db::signups::insert(&mut tx, &req.email, &req.tenant_name, &hash, &token_hash, hours).await?;
        Mail::confirm_signup(&req.email, &req.tenant_name, &state.mailer.link("/signup/confirm", &token), hours)
    };
    tx.commit().await?;
    if state.auth_limits.allow_mail(&req.email) {
        state.mailer.send_later(mail);
    } else {
        tracing::warn!("sign-up mail dropped: too many to one address");
    }
    let message = "If this address can be used, a link to finish signing up is on its way to it.".to_string();
    Ok((StatusCode::ACCEPTED, Json(CheckYourEmail { message })).into_response())
}

/// Finishes a verified sign-up: makes the tenant and its owner, and logs in.
#[utoipa::path(
    post, path = "/api/v1/auth/signup/confirm", tag = "auth",
    request_body = ConfirmSignupRequest,
    responses(
        (status = 201, body = TokenResponse),
        (status = 404, description = "Unknown, used or expired link", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The tenant name or the address was taken in the meantime", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ConfirmSignupRequest>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    state.auth_limits.check(client, None)?;
    let mut tx = db::begin_system(&state.system).await?;
    let pending =
        db::signups::take(&mut tx, &hash_secret(&req.token)).await?.ok_or(ApiError::NotFound("sign-up link"))?;
    let response =
        create_tenant(&state, &mut tx, &headers, &pending.tenant_name, &pending.email, &pending.password_hash).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(response)))
}

/// A tenant, its owner's new account, and a session for them.
async fn create_tenant(
    state: &AppState,
    tx: &mut Tx,
    headers: &HeaderMap,
    tenant_name: &str,
    email: &str,
    password_hash: &str,
) -> ApiResult<TokenResponse> {
    let tenant = db::users::insert_tenant(tx, tenant_name).await?;
    let user = db::users::insert_user(tx, email, password_hash).await?;
    let tenant_id = TenantId::from_uuid(tenant.id);
    let user_id = UserId::from_uuid(user.id);
    db::users::insert_membership(tx, tenant_id, user_id, Role::Owner).await?;
    let ctx =
        RequestContext { request_id: request_id(headers), actor: Actor::User(user_id), tenant_id, role: Role::Owner };
    let api_user = User::from(&user);
    db::audit::record(tx, &ctx, "tenant.create", "tenant", tenant.id, None::<&()>, Some(&api_user)).await?;
    session(state, tx, tenant, api_user, Role::Owner, (Uuid::now_v7(), None), None).await
}
