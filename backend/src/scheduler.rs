//! The scheduler keeps desired state and reality together. One leader at a
//! time (a Postgres advisory lock held on a dedicated connection), so any
//! number of `icehouse serve` processes can run.
//!
//! Workers claim slices of pipelines themselves; the leader's job is what no
//! single worker can see: declaring workers dead (no heartbeat), which frees
//! their slices, making sure every pipeline has its status row, and cutting
//! every running pipeline into slices for the live workers, again whenever
//! workers join or leave or a topic grows (`icehouse_workers::coord::slices`).
//! Hourly it also prunes old rows (`db::prune`).

use std::time::Duration;

use icehouse_workers::coord;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;

use crate::db;

/// An arbitrary constant naming the scheduler's advisory lock.
const LEADER_LOCK: i64 = 0x1ce_5ced;

/// How often the leader prunes old rows.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub async fn run(
    pool: PgPool,
    database_url: String,
    dead_after: Duration,
    audit_retention_days: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut leader: Option<PgConnection> = None;
    let mut pruned_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if leader.is_none() {
            leader = try_lead(&database_url).await;
            if leader.is_none() {
                continue;
            }
            tracing::info!("this process leads the scheduler");
        }
        if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(tokio::time::Instant::now());
            match db::prune::prune(&pool, audit_retention_days).await {
                Ok(pruned) => tracing::info!(?pruned, "pruned old rows"),
                Err(e) => tracing::warn!(error = %e, "pruning old rows failed"),
            }
        }
        if let Err(e) = round(&pool, dead_after).await {
            tracing::warn!(error = %e, "scheduler round failed");
            // A broken leader connection loses the lock; try again next tick.
            if let Some(conn) = leader.as_mut() {
                if conn.ping().await.is_err() {
                    leader = None;
                }
            }
        }
    }
}

async fn try_lead(database_url: &str) -> Option<PgConnection> {
    let mut conn = PgConnection::connect(database_url).await.ok()?;
    let got: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK).fetch_one(&mut conn).await.ok()?;
    got.then_some(conn)
}

async fn round(pool: &PgPool, dead_after: Duration) -> Result<(), sqlx::Error> {
    let reaped = coord::lease::reap_dead_workers(pool, dead_after).await?;
    if reaped > 0 {
        tracing::info!(reaped, "declared workers without a heartbeat dead and freed their slices");
    }
    let mut tx = coord::begin_system(pool).await?;
    sqlx::query(
        "INSERT INTO pipeline_leases (pipeline_id, tenant_id, state)
         SELECT id, tenant_id, CASE WHEN desired_state = 'paused' THEN 'paused' ELSE 'starting' END FROM pipelines
         ON CONFLICT (pipeline_id) DO NOTHING",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    for recut in coord::slices::rebalance(pool).await? {
        tracing::info!(pipeline = %recut.pipeline_id, slices = ?recut.slices, "re-cut the pipeline's slices");
    }
    Ok(())
}
