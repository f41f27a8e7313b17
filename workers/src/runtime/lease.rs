//! Leases: which worker runs which pipeline, fenced by an epoch.
//!
//! A claim bumps the epoch; every side effect of the holder checks, in the
//! same transaction, that the epoch is still its own. A worker that stalls
//! past its lease (GC pause, SIGSTOP, network partition) and wakes up finds a
//! newer epoch and its late commit is refused.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A held lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub pipeline_id: Uuid,
    pub tenant_id: Uuid,
    pub worker_id: Uuid,
    pub epoch: i64,
}

pub async fn begin_system(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('icehouse.system', 'on', true)").execute(&mut *tx).await?;
    Ok(tx)
}

pub async fn register(pool: &PgPool, worker_id: Uuid) -> Result<(), sqlx::Error> {
    let host =
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "unknown".into());
    sqlx::query("INSERT INTO workers (id, host, pid) VALUES ($1, $2, $3)")
        .bind(worker_id)
        .bind(host)
        .bind(std::process::id() as i32)
        .execute(pool)
        .await?;
    Ok(())
}

/// Renews the worker's heartbeat and all its leases; returns the pipelines it
/// still holds (a lease taken over by another worker is gone from the list).
pub async fn heartbeat(pool: &PgPool, worker_id: Uuid, ttl: Duration) -> Result<Vec<Lease>, sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    sqlx::query("UPDATE workers SET heartbeat_at = now() WHERE id = $1").bind(worker_id).execute(&mut *tx).await?;
    let rows: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
        "UPDATE pipeline_leases SET lease_expires_at = now() + make_interval(secs => $2)
         WHERE worker_id = $1 RETURNING pipeline_id, tenant_id, epoch",
    )
    .bind(worker_id)
    .bind(ttl.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|(pipeline_id, tenant_id, epoch)| Lease { pipeline_id, tenant_id, worker_id, epoch })
        .collect())
}

/// Claims up to `limit` running pipelines that nobody holds (never held,
/// released, or whose lease expired). Each claim bumps the epoch.
pub async fn claim(pool: &PgPool, worker_id: Uuid, ttl: Duration, limit: i64) -> Result<Vec<Lease>, sqlx::Error> {
    if limit <= 0 {
        return Ok(vec![]);
    }
    let mut tx = begin_system(pool).await?;
    let rows: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
        "UPDATE pipeline_leases l SET worker_id = $1, epoch = l.epoch + 1,
                lease_expires_at = now() + make_interval(secs => $2), state = 'starting', updated_at = now()
         WHERE l.pipeline_id IN (
             SELECT c.pipeline_id FROM pipeline_leases c JOIN pipelines p ON p.id = c.pipeline_id
             WHERE p.desired_state = 'running'
               AND (c.worker_id IS NULL OR c.lease_expires_at IS NULL OR c.lease_expires_at < now())
             ORDER BY c.pipeline_id
             FOR UPDATE OF c SKIP LOCKED
             LIMIT $3)
         RETURNING l.pipeline_id, l.tenant_id, l.epoch",
    )
    .bind(worker_id)
    .bind(ttl.as_secs_f64())
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|(pipeline_id, tenant_id, epoch)| Lease { pipeline_id, tenant_id, worker_id, epoch })
        .collect())
}

/// Gives a lease back (pipeline paused or deleted, worker stopping).
pub async fn release(pool: &PgPool, lease: &Lease, state: &str) -> Result<(), sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    sqlx::query(
        "UPDATE pipeline_leases SET worker_id = NULL, lease_expires_at = NULL, state = $3, updated_at = now()
         WHERE pipeline_id = $1 AND epoch = $2",
    )
    .bind(lease.pipeline_id)
    .bind(lease.epoch)
    .bind(state)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Inside a commit transaction: locks the lease row and checks the epoch.
pub async fn check_epoch(conn: &mut PgConnection, lease: &Lease) -> Result<bool, sqlx::Error> {
    let epoch: Option<i64> = sqlx::query_scalar("SELECT epoch FROM pipeline_leases WHERE pipeline_id = $1 FOR UPDATE")
        .bind(lease.pipeline_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(epoch == Some(lease.epoch))
}

/// Records a failure (state `failing`) if the lease is still ours.
pub async fn set_failing(pool: &PgPool, lease: &Lease, error: &str) -> Result<(), sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    sqlx::query(
        "UPDATE pipeline_leases SET state = 'failing', last_error = $3, last_error_at = now(), updated_at = now()
         WHERE pipeline_id = $1 AND epoch = $2",
    )
    .bind(lease.pipeline_id)
    .bind(lease.epoch)
    .bind(error)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Frees the leases of workers whose heartbeat is older than `dead_after`
/// and forgets those workers. Run by the scheduler's leader.
pub async fn reap_dead_workers(pool: &PgPool, dead_after: Duration) -> Result<u64, sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    let freed = sqlx::query(
        "UPDATE pipeline_leases SET worker_id = NULL, lease_expires_at = NULL, updated_at = now()
         WHERE worker_id IN (SELECT id FROM workers WHERE heartbeat_at < now() - make_interval(secs => $1))",
    )
    .bind(dead_after.as_secs_f64())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM workers WHERE heartbeat_at < now() - make_interval(secs => $1)")
        .bind(dead_after.as_secs_f64())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(freed)
}
