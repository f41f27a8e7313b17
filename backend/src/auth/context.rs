//! Who is calling, in which tenant, with which role.
//!
//! `authenticate` is the one middleware that turns a bearer token into a
//! [`RequestContext`]; handlers take the context as an extractor, so a handler
//! that forgets authentication does not compile, and a route outside the
//! middleware answers 401.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use icehouse_api::{ApiTokenId, Role, TenantId, UserId};

use super::tokens::{hash_secret, API_TOKEN_PREFIX};
use crate::db;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Clone, Debug)]
pub enum Actor {
    User(UserId),
    ApiToken { id: ApiTokenId, created_by: Option<UserId> },
}

#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    pub actor: Actor,
    pub tenant_id: TenantId,
    pub role: Role,
}

impl RequestContext {
    /// Refuses the request unless the caller's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {} role; you have {}",
                needed.as_str(),
                self.role.as_str()
            )))
        }
    }

    pub fn user_id(&self) -> Option<UserId> {
        match &self.actor {
            Actor::User(id) => Some(*id),
            Actor::ApiToken { created_by, .. } => *created_by,
        }
    }

    pub fn api_token_id(&self) -> Option<ApiTokenId> {
        match &self.actor {
            Actor::User(_) => None,
            Actor::ApiToken { id, .. } => Some(*id),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<RequestContext>().cloned().ok_or(ApiError::Unauthorized("authentication required"))
    }
}

/// The request id set by the tower stack (`x-request-id`).
pub fn request_id(parts_headers: &axum::http::HeaderMap) -> String {
    parts_headers.get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let token = bearer(req.headers()).ok_or(ApiError::Unauthorized("missing bearer token"))?.to_string();
    let ctx = context_for(&state, &token, request_id(req.headers())).await?;
    tracing::Span::current().record("tenant_id", tracing::field::display(ctx.tenant_id));
    req.extensions_mut().insert(ctx);
    Ok(next.run(req).await)
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// Who a bearer token (an API token or a session's access token) speaks for.
pub async fn context_for(state: &AppState, token: &str, request_id: String) -> Result<RequestContext, ApiError> {
    if token.starts_with(API_TOKEN_PREFIX) {
        let found = db::tokens::api_token_by_hash(&state.system, &hash_secret(token)).await?;
        let t = found.ok_or(ApiError::Unauthorized("invalid or expired token"))?;
        return Ok(RequestContext {
            request_id,
            actor: Actor::ApiToken { id: ApiTokenId::from_uuid(t.id), created_by: t.created_by.map(UserId::from_uuid) },
            tenant_id: TenantId::from_uuid(t.tenant_id),
            role: Role::parse(&t.role).ok_or_else(|| anyhow::anyhow!("bad role {}", t.role))?,
        });
    }
    let claims = state.jwt.verify(token).ok_or(ApiError::Unauthorized("invalid or expired token"))?;
    let tenant = TenantId::from_uuid(claims.tid);
    let (role, password_changed_at) = db::users::membership_role(&state.pool, tenant, UserId::from_uuid(claims.sub))
        .await?
        .ok_or(ApiError::Unauthorized("no longer a member of this tenant"))?;
    if password_changed_at.is_some_and(|at| claims.iat_ms < at.timestamp_millis()) {
        return Err(ApiError::Unauthorized("the password changed since this session began; log in again"));
    }
    Ok(RequestContext { request_id, actor: Actor::User(UserId::from_uuid(claims.sub)), tenant_id: tenant, role })
}
