//! Refresh tokens (rotating, by family) and API tokens.

use chrono::{DateTime, Utc};
use icehouse_api::users::ApiToken;
use icehouse_api::{ApiTokenId, Role, TenantId, UserId};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::users::parse_role;
use super::Tx;

#[derive(Debug, FromRow)]
pub struct RefreshRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    /// When the session (the family's first token) began.
    pub session_started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert_refresh(
    tx: &mut Tx,
    tenant: TenantId,
    user: UserId,
    family: Uuid,
    session_started_at: Option<DateTime<Utc>>,
    hash: &[u8],
    ttl_secs: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, tenant_id, user_id, family_id, session_started_at, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, coalesce($7, now()), $5, now() + make_interval(secs => $6))",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(family)
    .bind(hash)
    .bind(ttl_secs as f64)
    .bind(session_started_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The account a refresh token belongs to, without locking anything.
pub async fn refresh_owner(tx: &mut Tx, hash: &[u8]) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT user_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash)
        .fetch_optional(&mut **tx)
        .await
}

/// The token with this hash, locked against a concurrent use of the same token.
pub async fn refresh_for_update(tx: &mut Tx, hash: &[u8]) -> Result<Option<RefreshRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, tenant_id, user_id, family_id, session_started_at, expires_at, used_at, revoked_at
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(hash)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn mark_refresh_used(tx: &mut Tx, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE id = $1").bind(id).execute(&mut **tx).await?;
    Ok(())
}

pub async fn revoke_family(tx: &mut Tx, family: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL")
        .bind(family)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[derive(Debug, FromRow)]
pub struct ApiTokenRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub role: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiTokenRow> for ApiToken {
    type Error = anyhow::Error;
    fn try_from(r: ApiTokenRow) -> anyhow::Result<Self> {
        Ok(ApiToken {
            id: ApiTokenId::from_uuid(r.id),
            name: r.name,
            role: parse_role(&r.role)?,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
        })
    }
}

const API_TOKEN_COLUMNS: &str = "id, tenant_id, name, role, created_by, created_at, expires_at, last_used_at";

pub async fn insert_api_token(
    tx: &mut Tx,
    tenant: TenantId,
    name: &str,
    role: Role,
    hash: &[u8],
    created_by: Option<UserId>,
    expires_in_days: u32,
) -> Result<ApiTokenRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO api_tokens (id, tenant_id, name, role, token_hash, created_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7))
         RETURNING {API_TOKEN_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(name)
    .bind(role.as_str())
    .bind(hash)
    .bind(created_by.map(|u| u.as_uuid()))
    .bind(expires_in_days as i32)
    .fetch_one(&mut **tx)
    .await
}

pub async fn list_api_tokens(
    tx: &mut Tx,
    tenant: TenantId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ApiTokenRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3"
    ))
    .bind(tenant.as_uuid())
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&mut **tx)
    .await
}

pub async fn delete_api_token(
    tx: &mut Tx,
    tenant: TenantId,
    id: ApiTokenId,
) -> Result<Option<ApiTokenRow>, sqlx::Error> {
    sqlx::query_as(&format!("DELETE FROM api_tokens WHERE tenant_id = $1 AND id = $2 RETURNING {API_TOKEN_COLUMNS}"))
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut **tx)
        .await
}

/// Deletes the tokens `user` created in `tenant` (they are leaving it).
pub async fn revoke_api_tokens_of(
    tx: &mut Tx,
    tenant: TenantId,
    user: UserId,
) -> Result<Vec<ApiTokenRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "DELETE FROM api_tokens WHERE tenant_id = $1 AND created_by = $2 RETURNING {API_TOKEN_COLUMNS}"
    ))
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .fetch_all(&mut **tx)
    .await
}

/// Lowers the tokens `user` created in `tenant` to at most `role` (they
/// were demoted to it); returns the tokens changed, as they are now.
pub async fn cap_api_tokens_of(
    tx: &mut Tx,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<Vec<ApiTokenRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE api_tokens SET role = $3
         WHERE tenant_id = $1 AND created_by = $2
           AND array_position(ARRAY['viewer', 'editor', 'admin', 'owner'], role)
             > array_position(ARRAY['viewer', 'editor', 'admin', 'owner'], $3)
         RETURNING {API_TOKEN_COLUMNS}"
    ))
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(role.as_str())
    .fetch_all(&mut **tx)
    .await
}

/// The live (unexpired) token with this hash, across tenants: the caller's
/// tenant is what we are finding out. Records its use at most once a minute.
pub async fn api_token_by_hash(pool: &PgPool, hash: &[u8]) -> Result<Option<ApiTokenRow>, sqlx::Error> {
    let mut tx = super::begin_system(pool).await?;
    let row: Option<ApiTokenRow> = sqlx::query_as(&format!(
        "SELECT {API_TOKEN_COLUMNS} FROM api_tokens
         WHERE token_hash = $1 AND expires_at > now()"
    ))
    .bind(hash)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = &row {
        if row.last_used_at.is_none_or(|t| Utc::now() - t > chrono::Duration::minutes(1)) {
            sqlx::query("UPDATE api_tokens SET last_used_at = now() WHERE id = $1")
                .bind(row.id)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(row)
}
