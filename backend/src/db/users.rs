//! Tenants, users and memberships.

use chrono::{DateTime, Utc};
use icehouse_api::auth::{Tenant, User};
use icehouse_api::users::Member;
use icehouse_api::{Role, TenantId, UserId};
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use super::Tx;

#[derive(Debug, FromRow)]
pub struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<TenantRow> for Tenant {
    fn from(r: TenantRow) -> Self {
        Tenant { id: TenantId::from_uuid(r.id), name: r.name, created_at: r.created_at }
    }
}

#[derive(Debug, FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

impl From<&UserRow> for User {
    fn from(r: &UserRow) -> Self {
        User { id: UserId::from_uuid(r.id), email: r.email.clone(), created_at: r.created_at }
    }
}

#[derive(Debug, FromRow)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub email: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<MemberRow> for Member {
    type Error = anyhow::Error;
    fn try_from(r: MemberRow) -> anyhow::Result<Self> {
        Ok(Member {
            user_id: UserId::from_uuid(r.user_id),
            email: r.email,
            role: parse_role(&r.role)?,
            created_at: r.created_at,
        })
    }
}

pub fn parse_role(s: &str) -> anyhow::Result<Role> {
    Role::parse(s).ok_or_else(|| anyhow::anyhow!("unknown role `{s}` in the database"))
}

pub async fn insert_tenant(tx: &mut Tx, name: &str) -> Result<TenantRow, sqlx::Error> {
    sqlx::query_as("INSERT INTO tenants (id, name) VALUES ($1, $2) RETURNING id, name, created_at")
        .bind(Uuid::now_v7())
        .bind(name)
        .fetch_one(&mut **tx)
        .await
}

pub async fn tenant(tx: &mut Tx, id: TenantId) -> Result<Option<TenantRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, created_at FROM tenants WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(&mut **tx)
        .await
}

pub async fn insert_user(tx: &mut Tx, email: &str, password_hash: &str) -> Result<UserRow, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)
         RETURNING id, email, password_hash, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(password_hash)
    .fetch_one(&mut **tx)
    .await
}

pub async fn user_by_email(tx: &mut Tx, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, email, password_hash, created_at FROM users WHERE lower(email) = lower($1)")
        .bind(email)
        .fetch_optional(&mut **tx)
        .await
}

pub async fn user_by_id(tx: &mut Tx, id: UserId) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, email, password_hash, created_at FROM users WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(&mut **tx)
        .await
}

pub async fn insert_membership(
    tx: &mut Tx,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<MemberRow, sqlx::Error> {
    sqlx::query_as(
        "WITH m AS (INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)
                    RETURNING user_id, role, created_at)
         SELECT m.user_id, u.email, m.role, m.created_at FROM m JOIN users u ON u.id = m.user_id",
    )
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(role.as_str())
    .fetch_one(&mut **tx)
    .await
}

/// The account's password hash, locked against a change until the caller's
/// transaction ends: a session is issued only if the password it was
/// checked against is still the account's.
pub async fn lock_password_hash(tx: &mut Tx, user: UserId) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1 FOR SHARE")
        .bind(user.as_uuid())
        .fetch_optional(&mut **tx)
        .await
}

/// The user's role in the tenant, if still a member, and when the account's
/// password last changed (access tokens from before then are refused).
pub async fn membership_role(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<(Role, Option<DateTime<Utc>>)>, crate::error::ApiError> {
    let mut tx = super::begin_tenant(pool, tenant).await?;
    let row: Option<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT m.role, u.password_changed_at FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.tenant_id = $1 AND m.user_id = $2",
    )
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(|(r, changed)| Ok::<_, anyhow::Error>((parse_role(&r)?, changed))).transpose()?)
}

/// The tenant a log-in enters: the requested one, else the oldest membership.
pub async fn login_membership(
    tx: &mut Tx,
    user: UserId,
    tenant: Option<TenantId>,
) -> Result<Option<(TenantRow, String)>, sqlx::Error> {
    let row: Option<(Uuid, String, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT t.id, t.name, t.created_at, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
         WHERE m.user_id = $1 AND ($2::uuid IS NULL OR m.tenant_id = $2)
         ORDER BY m.created_at, t.id LIMIT 1",
    )
    .bind(user.as_uuid())
    .bind(tenant.map(|t| t.as_uuid()))
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|(id, name, created_at, role)| (TenantRow { id, name, created_at }, role)))
}

pub async fn list_members(
    tx: &mut Tx,
    tenant: TenantId,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<MemberRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.user_id, u.email, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.tenant_id = $3 AND ($1::uuid IS NULL OR m.user_id > $1) ORDER BY m.user_id LIMIT $2",
    )
    .bind(after)
    .bind(limit + 1)
    .bind(tenant.as_uuid())
    .fetch_all(&mut **tx)
    .await
}

pub async fn member(tx: &mut Tx, tenant: TenantId, user: UserId) -> Result<Option<MemberRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.user_id, u.email, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.tenant_id = $2 AND m.user_id = $1 FOR UPDATE OF m",
    )
    .bind(user.as_uuid())
    .bind(tenant.as_uuid())
    .fetch_optional(&mut **tx)
    .await
}

pub async fn set_member_role(tx: &mut Tx, tenant: TenantId, user: UserId, role: Role) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE memberships SET role = $2 WHERE tenant_id = $3 AND user_id = $1")
        .bind(user.as_uuid())
        .bind(role.as_str())
        .bind(tenant.as_uuid())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn delete_member(tx: &mut Tx, tenant: TenantId, user: UserId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM memberships WHERE tenant_id = $2 AND user_id = $1")
        .bind(user.as_uuid())
        .bind(tenant.as_uuid())
        .execute(&mut **tx)
        .await?;
    // Sessions of a removed member end with the membership.
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE tenant_id = $2 AND user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user.as_uuid())
    .bind(tenant.as_uuid())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Owners of the tenant, locked so two concurrent demotions cannot both pass
/// the last-owner check.
pub async fn lock_owner_count(tx: &mut Tx, tenant: TenantId) -> Result<i64, sqlx::Error> {
    let owners: Vec<Uuid> =
        sqlx::query_scalar("SELECT user_id FROM memberships WHERE tenant_id = $1 AND role = 'owner' FOR UPDATE")
            .bind(tenant.as_uuid())
            .fetch_all(&mut **tx)
            .await?;
    Ok(owners.len() as i64)
}
