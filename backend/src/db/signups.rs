//! Verified sign-ups waiting for their owner to open the e-mailed link.

use sqlx::FromRow;
use uuid::Uuid;

use super::Tx;

#[derive(Debug, FromRow)]
pub struct SignupRow {
    pub email: String,
    pub tenant_name: String,
    pub password_hash: String,
}

pub async fn insert(
    tx: &mut Tx,
    email: &str,
    tenant_name: &str,
    password_hash: &str,
    token_hash: &[u8],
    ttl_hours: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO signup_requests (id, email, tenant_name, password_hash, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(hours => $6))",
    )
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(tenant_name)
    .bind(password_hash)
    .bind(token_hash)
    .bind(ttl_hours.min(i32::MAX as u32) as i32)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes the request with this token, if it has not expired: a link works once.
pub async fn take(tx: &mut Tx, token_hash: &[u8]) -> Result<Option<SignupRow>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM signup_requests WHERE token_hash = $1 AND expires_at > now()
         RETURNING email, tenant_name, password_hash",
    )
    .bind(token_hash)
    .fetch_optional(&mut **tx)
    .await
}

/// Whether a tenant has this name (compared as the unique index does).
pub async fn tenant_name_taken(tx: &mut Tx, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE lower(name) = lower($1))")
        .bind(name)
        .fetch_one(&mut **tx)
        .await
}
