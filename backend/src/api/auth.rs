//! Log-in, token refresh, log-out, and who-am-I; the sessions they start.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use icehouse_api::auth::{LoginRequest, Me, Principal, RefreshRequest, TokenResponse, User};
use icehouse_api::{Problem, Role, TenantId, UserId};
use uuid::Uuid;

use crate::auth::tokens::{hash_secret, new_secret};
use crate::auth::{password, Actor, RequestContext};
use crate::db::{self, users::TenantRow, Tx};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ClientAddr};
use crate::state::AppState;

const REFRESH_PREFIX: &str = "ihr_";

/// Logs in with email and password.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Wrong email or password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address or on this account; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    const WRONG: ApiError = ApiError::Unauthorized("wrong email or password");
    state.auth_limits.check(client, Some(&req.email))?;
    let mut tx = db::begin_system(&state.system).await?;
    let user = db::users::user_by_email(&mut tx, &req.email).await?;
    // No connection is held while the password is checked (and maybe queued
    // behind other log-ins for a hashing permit).
    tx.commit().await?;
    let ok = password::verify(req.password.clone(), user.as_ref().map(|u| u.password_hash.clone())).await?;
    let Some(user) = user.filter(|_| ok) else { return Err(WRONG) };
    let mut tx = db::begin_system(&state.system).await?;
    let (tenant, role) =
        db::users::login_membership(&mut tx, UserId::from_uuid(user.id), req.tenant_id).await?.ok_or(WRONG)?;
    let role = db::users::parse_role(&role)?;
    let checked = Some(user.password_hash.as_str());
    let response = session(&state, &mut tx, tenant, User::from(&user), role, (Uuid::now_v7(), None), checked)
        .await
        .map_err(|e| if matches!(e, ApiError::Unauthorized(_)) { WRONG } else { e })?;
    tx.commit().await?;
    Ok(Json(response))
}

/// Exchanges a refresh token for a new session. Each refresh token works
/// once; presenting a spent one again ends the whole session (it was stolen,
/// or the client is broken) and answers 401.
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts from this address or on this account; `Retry-After` says when to try again", body = Problem, content_type = "application/problem+json")
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    // A refresh token is a random secret (nothing to guess); its account is
    // only known after the lookup, so the address alone limits it.
    state.auth_limits.check(client, None)?;
    let hash = hash_secret(&req.refresh_token);
    let mut tx = db::begin_system(&state.system).await?;
    // The account first, then the token: the order a password change locks
    // them in (`db::passwords::set_password`), so the two never deadlock and
    // a change either revokes the token this issues or waits for it.
    let owner =
        db::tokens::refresh_owner(&mut tx, &hash).await?.ok_or(ApiError::Unauthorized("invalid refresh token"))?;
    db::users::lock_password_hash(&mut tx, UserId::from_uuid(owner)).await?;
    let token =
        db::tokens::refresh_for_update(&mut tx, &hash).await?.ok_or(ApiError::Unauthorized("invalid refresh token"))?;
    if token.revoked_at.is_some() {
        return Err(ApiError::Unauthorized("this session has ended; log in again"));
    }
    if token.used_at.is_some() {
        db::tokens::revoke_family(&mut tx, token.family_id).await?;
        tx.commit().await?;
        tracing::warn!(family = %token.family_id, "refresh token reused; session revoked");
        return Err(ApiError::Unauthorized("refresh token reused; the session has been ended"));
    }
    if token.expires_at <= chrono::Utc::now() {
        return Err(ApiError::Unauthorized("refresh token expired; log in again"));
    }
    // Rotation keeps a session alive, but not for ever.
    let max_age = i64::try_from(state.config.auth.session_max_age_secs)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .unwrap_or(chrono::Duration::MAX);
    if chrono::Utc::now() - token.session_started_at > max_age {
        db::tokens::revoke_family(&mut tx, token.family_id).await?;
        tx.commit().await?;
        return Err(ApiError::Unauthorized("this session is too old; log in again"));
    }
    let user_id = UserId::from_uuid(token.user_id);
    let tenant_id = TenantId::from_uuid(token.tenant_id);
    let (tenant, role) = db::users::login_membership(&mut tx, user_id, Some(tenant_id))
        .await?
        .ok_or(ApiError::Unauthorized("no longer a member of this tenant"))?;
    let user =
        db::users::user_by_id(&mut tx, user_id).await?.ok_or(ApiError::Unauthorized("the account no longer exists"))?;
    db::tokens::mark_refresh_used(&mut tx, token.id).await?;
    let role = db::users::parse_role(&role)?;
    let family = (token.family_id, Some(token.session_started_at));
    let response = session(&state, &mut tx, tenant, User::from(&user), role, family, None).await?;
    tx.commit().await?;
    Ok(Json(response))
}

/// Ends the session the refresh token belongs to. Always answers 204.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "Logged out"))
)]
pub async fn logout(State(state): State<AppState>, ApiJson(req): ApiJson<RefreshRequest>) -> ApiResult<StatusCode> {
    let mut tx = db::begin_system(&state.system).await?;
    if let Some(token) = db::tokens::refresh_for_update(&mut tx, &hash_secret(&req.refresh_token)).await? {
        db::tokens::revoke_family(&mut tx, token.family_id).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller, their tenant and role.
#[utoipa::path(
    get, path = "/api/v1/me", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Me))
)]
pub async fn me(State(state): State<AppState>, ctx: RequestContext) -> ApiResult<Json<Me>> {
    let mut tx = db::begin_tenant(&state.pool, ctx.tenant_id).await?;
    let tenant = db::users::tenant(&mut tx, ctx.tenant_id).await?.ok_or(ApiError::NotFound("tenant"))?;
    let principal = match &ctx.actor {
        Actor::User(id) => {
            let user = db::users::user_by_id(&mut tx, *id).await?.ok_or(ApiError::NotFound("user"))?;
            Principal::User { id: *id, email: user.email }
        }
        Actor::ApiToken { id, .. } => {
            let name: String = sqlx::query_scalar("SELECT name FROM api_tokens WHERE tenant_id = $1 AND id = $2")
                .bind(ctx.tenant_id.as_uuid())
                .bind(id.as_uuid())
                .fetch_one(&mut *tx)
                .await?;
            Principal::ApiToken { id: *id, name }
        }
    };
    tx.commit().await?;
    Ok(Json(Me { principal, tenant: tenant.into(), role: ctx.role }))
}

/// A fresh access token and a refresh token in `family`: (its id, when the
/// session began, `None` for a new one). The account is locked for share
/// first, so a password change cannot slip between the check that let the
/// caller in and the session (see `db::passwords::set_password`); with
/// `checked`, the password hash the caller verified must still be the
/// account's (401 otherwise).
pub(super) async fn session(
    state: &AppState,
    tx: &mut Tx,
    tenant: TenantRow,
    user: User,
    role: Role,
    family: (Uuid, Option<chrono::DateTime<chrono::Utc>>),
    checked: Option<&str>,
) -> ApiResult<TokenResponse> {
    let current = db::users::lock_password_hash(tx, user.id).await?;
    if checked.is_some_and(|checked| current.as_deref() != Some(checked)) {
        return Err(ApiError::Unauthorized("the password changed meanwhile; log in again"));
    }
    let tenant_id = TenantId::from_uuid(tenant.id);
    let (refresh_token, hash) = new_secret(REFRESH_PREFIX);
    let ttl = state.config.auth.refresh_token_ttl_secs;
    db::tokens::insert_refresh(tx, tenant_id, user.id, family.0, family.1, &hash, ttl).await?;
    let access_token = state.jwt.issue(user.id.as_uuid(), tenant.id)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: state.jwt.ttl_secs,
        refresh_token,
        tenant: tenant.into(),
        user,
        role,
    })
}
