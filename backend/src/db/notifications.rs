//! Notifications (written by a trigger, see the notifications migration) and
//! each member's read position.

use chrono::{DateTime, Utc};
use icehouse_api::notifications::{Notification, NotificationKind};
use icehouse_api::{PipelineId, TenantId};
use sqlx::FromRow;
use uuid::Uuid;

use super::Tx;

#[derive(Debug, FromRow)]
pub struct NotificationRow {
    pub id: i64,
    pub pipeline_id: Option<Uuid>,
    pub pipeline_name: Option<String>,
    pub kind: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
    pub read: bool,
}

impl NotificationRow {
    pub fn to_api(self) -> anyhow::Result<Notification> {
        let kind = match self.kind.as_str() {
            "pipeline_failing" => NotificationKind::PipelineFailing,
            "pipeline_error" => NotificationKind::PipelineError,
            "pipeline_recovered" => NotificationKind::PipelineRecovered,
            other => anyhow::bail!("unknown notification kind {other:?}"),
        };
        Ok(Notification {
            id: self.id,
            kind,
            pipeline_id: self.pipeline_id.map(PipelineId::from_uuid),
            pipeline_name: self.pipeline_name,
            message: self.message,
            created_at: self.created_at,
            read: self.read,
        })
    }
}

/// The newest `limit` notifications, with `read` for `user` (never read for
/// callers without a user).
pub async fn list(tx: &mut Tx, tenant: TenantId, user: Option<Uuid>, limit: i64) -> sqlx::Result<Vec<NotificationRow>> {
    sqlx::query_as(
        "SELECT n.id, n.pipeline_id, n.pipeline_name, n.kind, n.message, n.created_at,
                n.id <= coalesce(r.read_up_to, 0) AS read
           FROM notifications n
           LEFT JOIN notification_reads r ON r.tenant_id = n.tenant_id AND r.user_id = $2
          WHERE n.tenant_id = $1
          ORDER BY n.id DESC
          LIMIT $3",
    )
    .bind(tenant.as_uuid())
    .bind(user)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

pub async fn unread(tx: &mut Tx, tenant: TenantId, user: Option<Uuid>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM notifications n
          WHERE n.tenant_id = $1
            AND n.id > coalesce((SELECT read_up_to FROM notification_reads
                                  WHERE tenant_id = $1 AND user_id = $2), 0)",
    )
    .bind(tenant.as_uuid())
    .bind(user)
    .fetch_one(&mut **tx)
    .await
}

/// Moves the read position forward to `up_to` (or the newest), never back.
pub async fn mark_read(tx: &mut Tx, tenant: TenantId, user: Uuid, up_to: Option<i64>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO notification_reads (tenant_id, user_id, read_up_to)
         SELECT $1, $2, coalesce($3, (SELECT max(id) FROM notifications WHERE tenant_id = $1), 0)
         ON CONFLICT (tenant_id, user_id)
         DO UPDATE SET read_up_to = greatest(notification_reads.read_up_to, excluded.read_up_to)",
    )
    .bind(tenant.as_uuid())
    .bind(user)
    .bind(up_to)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
