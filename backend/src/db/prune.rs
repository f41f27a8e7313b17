//! Old rows pruned on a schedule (by the scheduler's leader, hourly), so the
//! control plane's tables do not grow for ever: notifications every admin
//! and owner (those who can read them) has read once a month has passed,
//! minute buckets past the status window, refresh tokens that can no longer
//! be used, audit entries past `audit.retention_days` (0 keeps them), and
//! invitations, reset links and sign-up requests past use (invitations a
//! month after, so an admin can still see why a link stopped working).
//!
//! A used refresh token stays until it expires: presenting it again is how a
//! stolen one is caught (the whole session ends), so it must still be found.

use sqlx::PgPool;

use super::begin_system;

/// How many rows one pass removed, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub notifications: u64,
    pub minutes: u64,
    pub refresh_tokens: u64,
    pub audit: u64,
    /// Invitations, reset links and sign-up requests that can no longer be used.
    pub links: u64,
}

/// One pass over every tenant.
pub async fn prune(pool: &PgPool, audit_retention_days: u32) -> Result<Pruned, sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    let notifications = sqlx::query(
        "DELETE FROM notifications n
         WHERE n.created_at < now() - interval '30 days'
           AND NOT EXISTS (
               SELECT 1 FROM memberships m
               LEFT JOIN notification_reads r ON r.tenant_id = m.tenant_id AND r.user_id = m.user_id
               WHERE m.tenant_id = n.tenant_id AND m.role IN ('admin', 'owner')
                 AND coalesce(r.read_up_to, 0) < n.id)",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // The status shows the last hour; keep a second one for slow readers.
    let minutes = sqlx::query("DELETE FROM pipeline_minutes WHERE minute < now() - interval '2 hours'")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let refresh_tokens =
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < now() OR revoked_at < now() - interval '1 day'")
            .execute(&mut *tx)
            .await?
            .rows_affected();
    let audit = match audit_retention_days {
        0 => 0,
        days => sqlx::query("DELETE FROM audit_log WHERE at < now() - make_interval(days => $1)")
            .bind(days.min(i32::MAX as u32) as i32)
            .execute(&mut *tx)
            .await?
            .rows_affected(),
    };
    let mut links = 0;
    for sql in [
        "DELETE FROM invitations WHERE expires_at < now() - interval '30 days' OR accepted_at < now() - interval '30 days'",
        "DELETE FROM password_resets WHERE expires_at < now() - interval '1 day'",
        "DELETE FROM signup_requests WHERE expires_at < now()",
    ] {
        links += sqlx::query(sql).execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok(Pruned { notifications, minutes, refresh_tokens, audit, links })
}
