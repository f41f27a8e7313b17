//! Leases: which worker runs which slice of which pipeline, fenced by an epoch.
//!
//! A slice is a set of a pipeline's partitions (see [`super::slices`] for who
//! decides them). A claim gives the slice a new epoch from one global
//! sequence; every side effect of the holder checks, in the same transaction,
//! that the epoch is still its own. A worker that stalls past its lease (GC
//! pause, SIGSTOP, network partition) or whose slice was re-cut wakes up to a
//! newer epoch and its late commit is refused.
//!
//! Every transaction here that touches slices locks the pipeline's
//! `pipeline_leases` row first (see the slices migration for the lock
//! order), which also serialises the upkeep of the pipeline-level state over
//! all its slices ([`refresh_pipeline`]).

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::begin_system;
use super::state::SliceState;

/// A held lease on one slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub pipeline_id: Uuid,
    pub slice: i32,
    pub tenant_id: Uuid,
    pub worker_id: Uuid,
    pub epoch: i64,
    /// The slice's partitions; `None` is every partition the topic has.
    pub partitions: Option<Vec<i32>>,
}

pub async fn register(pool: &PgPool, worker_id: Uuid) -> Result<(), sqlx::Error> {
    let host =
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "unknown".into());
    // The registry is behind row-level security (system code only).
    let mut tx = begin_system(pool).await?;
    sqlx::query("INSERT INTO workers (id, host, pid) VALUES ($1, $2, $3)")
        .bind(worker_id)
        .bind(host)
        .bind(std::process::id() as i32)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Forgets a worker that stops cleanly (after it gave its leases back), so
/// the scheduler re-slices without waiting for its heartbeat to go stale.
pub async fn deregister(pool: &PgPool, worker_id: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    sqlx::query("DELETE FROM workers WHERE id = $1").bind(worker_id).execute(&mut *tx).await?;
    tx.commit().await
}

type SliceRow = (Uuid, i32, Uuid, i64, Option<Vec<i32>>);

fn lease_of(worker_id: Uuid, (pipeline_id, slice, tenant_id, epoch, partitions): SliceRow) -> Lease {
    Lease { pipeline_id, slice, tenant_id, worker_id, epoch, partitions }
}

/// Renews the worker's heartbeat and all its leases (slices and tasks);
/// returns the slices it still holds (one taken over or re-cut is gone from
/// the list), or `None` when the worker is not registered any more: the
/// scheduler declared it dead and freed everything it held.
pub async fn heartbeat(pool: &PgPool, worker_id: Uuid, ttl: Duration) -> Result<Option<Vec<Lease>>, sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    let known = sqlx::query("UPDATE workers SET heartbeat_at = now() WHERE id = $1")
        .bind(worker_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if !known {
        tx.commit().await?;
        return Ok(None);
    }
    let rows: Vec<SliceRow> = sqlx::query_as(
        "UPDATE pipeline_slices SET lease_expires_at = now() + make_interval(secs => $2)
         WHERE worker_id = $1 RETURNING pipeline_id, slice, tenant_id, epoch, partitions",
    )
    .bind(worker_id)
    .bind(ttl.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    crate::coord::tasks::renew(&mut tx, worker_id, ttl).await?;
    tx.commit().await?;
    Ok(Some(rows.into_iter().map(|r| lease_of(worker_id, r)).collect()))
}

/// Claims up to `limit` slices of running pipelines that nobody holds (never
/// held, given back, or whose lease expired). Each claim gets a new epoch.
///
/// A worker takes at most one slice of a pipeline, so that the slices spread
/// over the workers (the scheduler makes no more slices than live workers);
/// a second one only after the slice has been free for `grace`, so that a
/// slice whose intended worker is full or dead does not stay idle.
pub async fn claim(
    pool: &PgPool,
    worker_id: Uuid,
    ttl: Duration,
    grace: Duration,
    limit: usize,
) -> Result<Vec<Lease>, sqlx::Error> {
    let mut claimed = Vec::new();
    // A candidate can be taken by another worker between the pick and the
    // claim; a few extra rounds keep that from starving this worker.
    for _ in 0..limit.saturating_mul(2) {
        if claimed.len() >= limit {
            break;
        }
        let mut tx = begin_system(pool).await?;
        let candidate: Option<(Uuid, i32)> = sqlx::query_as(
            "SELECT s.pipeline_id, s.slice
             FROM pipeline_slices s
             JOIN pipelines p ON p.id = s.pipeline_id
             JOIN pipeline_leases l ON l.pipeline_id = s.pipeline_id
             WHERE p.desired_state = 'running'
               AND (s.worker_id IS NULL OR s.lease_expires_at IS NULL OR s.lease_expires_at < now())
               AND (NOT EXISTS (SELECT 1 FROM pipeline_slices m
                                WHERE m.pipeline_id = s.pipeline_id AND m.worker_id = $1
                                  AND m.lease_expires_at >= now())
                    OR coalesce(CASE WHEN s.worker_id IS NULL THEN s.free_since ELSE s.lease_expires_at END,
                                '-infinity') < now() - make_interval(secs => $2))
             ORDER BY s.pipeline_id, s.slice
             LIMIT 1
             FOR UPDATE OF l SKIP LOCKED",
        )
        .bind(worker_id)
        .bind(grace.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((pipeline_id, slice)) = candidate else {
            tx.commit().await?;
            break;
        };
        let row: Option<SliceRow> = sqlx::query_as(
            "UPDATE pipeline_slices SET worker_id = $3, epoch = nextval('lease_epochs'),
                    lease_expires_at = now() + make_interval(secs => $4), state = $5, updated_at = now()
             WHERE pipeline_id = $1 AND slice = $2
               AND (worker_id IS NULL OR lease_expires_at IS NULL OR lease_expires_at < now())
             RETURNING pipeline_id, slice, tenant_id, epoch, partitions",
        )
        .bind(pipeline_id)
        .bind(slice)
        .bind(worker_id)
        .bind(ttl.as_secs_f64())
        .bind(SliceState::Starting)
        .fetch_optional(&mut *tx)
        .await?;
        if row.is_some() {
            refresh_pipeline(&mut tx, pipeline_id, None).await?;
        }
        tx.commit().await?;
        claimed.extend(row.map(|r| lease_of(worker_id, r)));
    }
    Ok(claimed)
}

/// Locks the pipeline's status row: the first lock of every transaction that
/// changes its slices.
pub async fn lock_pipeline(conn: &mut PgConnection, pipeline_id: Uuid) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT 1 FROM pipeline_leases WHERE pipeline_id = $1 FOR UPDATE")
        .bind(pipeline_id)
        .fetch_optional(&mut *conn)
        .await?
        .is_some())
}

/// Sets the pipeline-level state from its slices' (and records `error` as
/// its last error): `failing` if one slice fails, `running` once all run,
/// `paused` once all are paused; otherwise `starting`, except that a failing
/// pipeline stays `failing` until it runs again (so a restart does not hide
/// the error, and its recovery is seen as one). The caller holds the lock of
/// [`lock_pipeline`].
pub async fn refresh_pipeline(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE pipeline_leases l SET
             state = CASE
                 WHEN a.failing > 0 THEN 'failing'
                 WHEN a.n > 0 AND a.running = a.n THEN 'running'
                 WHEN a.n > 0 AND a.paused = a.n THEN 'paused'
                 WHEN l.state = 'failing' THEN 'failing'
                 ELSE 'starting' END,
             last_error = coalesce($2, l.last_error),
             last_error_at = CASE WHEN $2 IS NULL THEN l.last_error_at ELSE now() END,
             updated_at = now()
         FROM (SELECT count(*) AS n,
                      count(*) FILTER (WHERE state = 'failing') AS failing,
                      count(*) FILTER (WHERE state = 'running') AS running,
                      count(*) FILTER (WHERE state = 'paused') AS paused
               FROM pipeline_slices WHERE pipeline_id = $1) a
         WHERE l.pipeline_id = $1",
    )
    .bind(pipeline_id)
    .bind(error)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Sets the state of the holder's slice (if the lease is still its own) and
/// the pipeline's; `error` becomes the pipeline's last error.
async fn set_slice_state(
    pool: &PgPool,
    lease: &Lease,
    state: SliceState,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    lock_pipeline(&mut tx, lease.pipeline_id).await?;
    let ours = sqlx::query(
        "UPDATE pipeline_slices SET state = $5, updated_at = now()
         WHERE pipeline_id = $1 AND slice = $2 AND epoch = $3 AND worker_id = $4",
    )
    .bind(lease.pipeline_id)
    .bind(lease.slice)
    .bind(lease.epoch)
    .bind(lease.worker_id)
    .bind(state)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if ours {
        refresh_pipeline(&mut tx, lease.pipeline_id, error).await?;
    }
    tx.commit().await
}

/// Records the slice's state (starting, running) if the lease is still ours.
pub async fn set_state(pool: &PgPool, lease: &Lease, state: SliceState) -> Result<(), sqlx::Error> {
    set_slice_state(pool, lease, state, None).await
}

/// Records a failure (state `failing`, and the pipeline's last error) if the
/// lease is still ours.
pub async fn set_failing(pool: &PgPool, lease: &Lease, error: &str) -> Result<(), sqlx::Error> {
    set_slice_state(pool, lease, SliceState::Failing, Some(error)).await
}

/// Gives a lease back (pipeline paused or deleted, worker stopping).
pub async fn release(pool: &PgPool, lease: &Lease, state: SliceState) -> Result<(), sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    lock_pipeline(&mut tx, lease.pipeline_id).await?;
    let ours = sqlx::query(
        "UPDATE pipeline_slices SET worker_id = NULL, lease_expires_at = NULL, free_since = now(), state = $5,
                updated_at = now()
         WHERE pipeline_id = $1 AND slice = $2 AND epoch = $3 AND worker_id = $4",
    )
    .bind(lease.pipeline_id)
    .bind(lease.slice)
    .bind(lease.epoch)
    .bind(lease.worker_id)
    .bind(state)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if ours {
        refresh_pipeline(&mut tx, lease.pipeline_id, None).await?;
    }
    tx.commit().await
}

/// Inside a commit transaction: locks the pipeline's row and the slice's,
/// and checks that the slice is still held by this lease. Everything the
/// transaction writes after `true` is fenced.
pub async fn check_epoch(conn: &mut PgConnection, lease: &Lease) -> Result<bool, sqlx::Error> {
    if !lock_pipeline(conn, lease.pipeline_id).await? {
        return Ok(false);
    }
    let held: Option<(i64, Option<Uuid>)> =
        sqlx::query_as("SELECT epoch, worker_id FROM pipeline_slices WHERE pipeline_id = $1 AND slice = $2 FOR UPDATE")
            .bind(lease.pipeline_id)
            .bind(lease.slice)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(held == Some((lease.epoch, Some(lease.worker_id))))
}

/// Forgets the workers whose heartbeat is older than `dead_after`; their
/// slices become free (the foreign key sets `worker_id` to NULL). Run by the
/// scheduler's leader. Returns how many workers were declared dead.
pub async fn reap_dead_workers(pool: &PgPool, dead_after: Duration) -> Result<u64, sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    let reaped = sqlx::query("DELETE FROM workers WHERE heartbeat_at < now() - make_interval(secs => $1)")
        .bind(dead_after.as_secs_f64())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(reaped)
}
