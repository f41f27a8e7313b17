//! Invitations to join a tenant: at most one open per address, single use,
//! stored by the hashes of their two tokens (shown to the admin; mailed).

use chrono::{DateTime, Utc};
use icehouse_api::invitations::Invitation;
use icehouse_api::{InvitationId, Role, TenantId, UserId};
use sqlx::FromRow;
use uuid::Uuid;

use super::users::parse_role;
use super::Tx;

const COLUMNS: &str = "id, tenant_id, email, role, invited_by, created_at, expires_at, accepted_at";

#[derive(Debug, FromRow)]
pub struct InvitationRow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub role: String,
    pub invited_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    /// From [`by_token_for_update`]: whether the token was the mailed one.
    #[sqlx(default)]
    pub by_mail: Option<bool>,
}

impl InvitationRow {
    /// Neither accepted nor expired.
    pub fn is_open(&self) -> bool {
        self.accepted_at.is_none() && self.expires_at > Utc::now()
    }
}

impl TryFrom<InvitationRow> for Invitation {
    type Error = anyhow::Error;
    fn try_from(r: InvitationRow) -> anyhow::Result<Self> {
        Ok(Invitation {
            id: InvitationId::from_uuid(r.id),
            email: r.email,
            role: parse_role(&r.role)?,
            invited_by: UserId::from_uuid(r.invited_by),
            created_at: r.created_at,
            expires_at: r.expires_at,
        })
    }
}

/// The open invitation to `email` in the tenant, if any, locked.
pub async fn open_for_address(
    tx: &mut Tx,
    tenant: TenantId,
    email: &str,
) -> Result<Option<InvitationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE tenant_id = $1 AND lower(email) = lower($2) AND accepted_at IS NULL
         FOR UPDATE"
    ))
    .bind(tenant.as_uuid())
    .bind(email)
    .fetch_optional(&mut **tx)
    .await
}

/// A new invitation with its two token hashes (the one shown to the admin,
/// and the mailed one when a mail goes out). The open one to the same
/// address in the tenant, if any, is replaced (its links stop working) and
/// returned.
#[allow(clippy::too_many_arguments)]
pub async fn replace_open(
    tx: &mut Tx,
    tenant: TenantId,
    email: &str,
    role: Role,
    token_hash: &[u8],
    mail_token_hash: Option<&[u8]>,
    invited_by: UserId,
    ttl_hours: u32,
) -> Result<(InvitationRow, Option<InvitationRow>), sqlx::Error> {
    let replaced: Option<InvitationRow> = sqlx::query_as(&format!(
        "DELETE FROM invitations WHERE tenant_id = $1 AND lower(email) = lower($2) AND accepted_at IS NULL
         RETURNING {COLUMNS}"
    ))
    .bind(tenant.as_uuid())
    .bind(email)
    .fetch_optional(&mut **tx)
    .await?;
    let row = sqlx::query_as(&format!(
        "INSERT INTO invitations (id, tenant_id, email, role, token_hash, mail_token_hash, invited_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(hours => $8)) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(email)
    .bind(role.as_str())
    .bind(token_hash)
    .bind(mail_token_hash)
    .bind(invited_by.as_uuid())
    .bind(ttl_hours.min(i32::MAX as u32) as i32)
    .fetch_one(&mut **tx)
    .await?;
    Ok((row, replaced))
}

/// How many open invitations the tenant has.
pub async fn count_open(tx: &mut Tx, tenant: TenantId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM invitations WHERE tenant_id = $1 AND accepted_at IS NULL AND expires_at > now()",
    )
    .bind(tenant.as_uuid())
    .fetch_one(&mut **tx)
    .await
}

pub async fn list_open(
    tx: &mut Tx,
    tenant: TenantId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<InvitationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invitations
         WHERE tenant_id = $1 AND accepted_at IS NULL AND expires_at > now() AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3"
    ))
    .bind(tenant.as_uuid())
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&mut **tx)
    .await
}

pub async fn open_by_id(tx: &mut Tx, tenant: TenantId, id: InvitationId) -> Result<Option<InvitationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM invitations
         WHERE tenant_id = $1 AND id = $2 AND accepted_at IS NULL AND expires_at > now() FOR UPDATE"
    ))
    .bind(tenant.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut **tx)
    .await
}

pub async fn delete(tx: &mut Tx, tenant: TenantId, id: InvitationId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM invitations WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The invitation with this token (either of its two), in any tenant (a
/// system transaction), locked against a second acceptance; `by_mail` says
/// which token it was.
pub async fn by_token_for_update(tx: &mut Tx, token_hash: &[u8]) -> Result<Option<InvitationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS}, mail_token_hash IS NOT DISTINCT FROM $1 AS by_mail FROM invitations
         WHERE token_hash = $1 OR mail_token_hash = $1 FOR UPDATE"
    ))
    .bind(token_hash)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn mark_accepted(tx: &mut Tx, id: Uuid, user: UserId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE invitations SET accepted_at = now(), accepted_by = $2 WHERE id = $1")
        .bind(id)
        .bind(user.as_uuid())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Withdraws the open invitations `user` made that their role (`None`: they
/// left) no longer lets them make: an admin invites up to admin, an owner
/// anyone, others nobody.
pub async fn withdraw_beyond(
    tx: &mut Tx,
    tenant: TenantId,
    user: UserId,
    role: Option<Role>,
) -> Result<Vec<InvitationRow>, sqlx::Error> {
    let allowed: Vec<&str> = match role {
        Some(Role::Owner) => vec!["viewer", "editor", "admin", "owner"],
        Some(Role::Admin) => vec!["viewer", "editor", "admin"],
        _ => vec![],
    };
    sqlx::query_as(&format!(
        "DELETE FROM invitations WHERE tenant_id = $1 AND invited_by = $2 AND accepted_at IS NULL
           AND expires_at > now() AND NOT (role = ANY($3)) RETURNING {COLUMNS}"
    ))
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(&allowed)
    .fetch_all(&mut **tx)
    .await
}

/// Whether an account with this address is already a member.
pub async fn is_member(tx: &mut Tx, tenant: TenantId, email: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
                        WHERE m.tenant_id = $1 AND lower(u.email) = lower($2))",
    )
    .bind(tenant.as_uuid())
    .bind(email)
    .fetch_one(&mut **tx)
    .await
}
