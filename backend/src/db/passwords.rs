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
/// transaction: its refresh tokens are in every tenant it belongs to).
///
/// The account's row is locked first. Every path that issues a session
/// (log-in, refresh, an accepted invitation) locks it for share before it
/// does, so a session being issued either finishes before the change, and
/// its refresh token is revoked here, or waits and then sees the new
/// password. The time of the change is taken after the lock, from this
/// process's clock: access tokens are stamped by the API processes' clocks,
/// and a skew between processes is what this comparison can be off by.
///
/// With `expected`, only if that is still the account's hash (the one the
/// caller checked the current password against); false if it is not.
pub async fn set_password(
    tx: &mut Tx,
    user: UserId,
    expected: Option<&str>,
    password_hash: &str,
) -> Result<bool, sqlx::Error> {
    let current: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1 FOR UPDATE")
        .bind(user.as_uuid())
        .fetch_optional(&mut **tx)
        .await?;
    if current.is_none() || expected.is_some_and(|expected| current.as_deref() != Some(expected)) {
        return Ok(false);
    }
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
    Ok(true)
}

/// The tenants the account belongs to (for audit entries of a change that
/// concerns all of them).
pub async fn tenants_of(tx: &mut Tx, user: UserId) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT tenant_id FROM memberships WHERE user_id = $1")
        .bind(user.as_uuid())
        .fetch_all(&mut **tx)
        .await
}

/// A reset link by its token, unlocked (a cheap look before any hashing).
pub async fn reset_exists(tx: &mut Tx, token_hash: &[u8]) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now())",
    )
    .bind(token_hash)
    .fetch_one(&mut **tx)
    .await
}
