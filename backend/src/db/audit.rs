//! The audit log, written in the same transaction as the mutation it records.

use chrono::{DateTime, Utc};
use icehouse_api::audit::AuditEntry;
use icehouse_api::{ApiTokenId, AuditEntryId, UserId};
use serde::Serialize;
use sqlx::FromRow;
use uuid::Uuid;

use super::Tx;
use crate::auth::RequestContext;

/// One mutation. `before`/`after` are API representations, which never carry secrets.
pub async fn record<B: Serialize, A: Serialize>(
    tx: &mut Tx,
    ctx: &RequestContext,
    action: &str,
    resource_type: &str,
    resource_id: impl ToString,
    before: Option<&B>,
    after: Option<&A>,
) -> anyhow::Result<()> {
    let before = before.map(serde_json::to_value).transpose()?;
    let after = after.map(serde_json::to_value).transpose()?;
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, actor_user_id, actor_api_token_id, action, resource_type,
                                resource_id, before, after, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(Uuid::now_v7())
    .bind(ctx.tenant_id.as_uuid())
    .bind(ctx.user_id().map(|u| u.as_uuid()))
    .bind(ctx.api_token_id().map(|t| t.as_uuid()))
    .bind(action)
    .bind(resource_type)
    .bind(resource_id.to_string())
    .bind(before)
    .bind(after)
    .bind(&ctx.request_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_user_id: Option<Uuid>,
    pub actor_api_token_id: Option<Uuid>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub request_id: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: AuditEntryId::from_uuid(r.id),
            at: r.at,
            actor_user_id: r.actor_user_id.map(UserId::from_uuid),
            actor_api_token_id: r.actor_api_token_id.map(ApiTokenId::from_uuid),
            action: r.action,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            before: r.before,
            after: r.after,
            request_id: r.request_id,
        }
    }
}

/// Newest first; the cursor is the last id seen.
pub async fn list(
    tx: &mut Tx,
    tenant: icehouse_api::TenantId,
    before_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, at, actor_user_id, actor_api_token_id, action, resource_type, resource_id, before, after, request_id
         FROM audit_log WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant.as_uuid())
    .bind(before_id)
    .bind(limit + 1)
    .fetch_all(&mut **tx)
    .await
}
