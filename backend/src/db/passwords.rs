//! Password changes and reset tokens. A new password ends every session of
//! the account: its refresh tokens are revoked in every tenant, open reset
//! links stop working, and `password_changed_at` makes the authentication
//! middleware refuse access tokens issued before it.

use chrono::{DateTime, Utc};
use icehouse_api::UserId;
use sqlx::FromRow;
use uuid::Uuid;

use super::Tx;

#[derive(Debug, FromRow)]
pub struct ResetRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

pub async fn insert_reset(tx: &mut Tx, user: Uuid, token_hash: &[u8], ttl_minutes: u32) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO password_resets (id, user_id, token_hash, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(mins => $4))",
    )
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(token_hash)
    .bind(ttl_minutes.min(i32::MAX as u32) as i32)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn reset_for_update(tx: &mut Tx, token_hash: &[u8]) -> Result<Option<ResetRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, user_id, expires_at, used_at FROM password_resets WHERE token_hash = $1 FOR UPDATE")
        .bind(token_hash)
        .fetch_optional(&mut **tx)
        .await
}

/// Sets the password and ends every session of the account (a system
/// transaction: its refresh tokens are in every tenant it belongs to). The
/// time of the change is this process's clock, the one that stamps access
/// tokens, so the session issued just after it is never taken for older.
pub async fn set_password(tx: &mut Tx, user: UserId, password_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE id = $1")
        .bind(user.as_uuid())
        .bind(password_hash)
        .bind(chrono::Utc::now())
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE password_resets SET used_at = now() WHERE user_id = $1 AND used_at IS NULL")
        .bind(user.as_uuid())
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user.as_uuid())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
