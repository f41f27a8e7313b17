//! Slicing: how a pipeline's partitions are split over workers.
//!
//! The scheduler's leader decides ([`rebalance`]): a pipeline gets
//! `min(partitions, live workers)` slices, partitions dealt round-robin
//! (partition `p` goes to slice `p % slices`). With one slice, or while the
//! topic's partition count is not known yet, the one slice is "every
//! partition" (`partitions` NULL), and its holder follows the topic as it
//! grows. The workers report the partition count they see
//! ([`report_partition_count`]); a count that grew, or a worker that joined
//! or left, changes the plan, and the leader re-cuts the pipeline: all its
//! slice rows are replaced by new ones with new epochs, in one transaction.
//! Every old holder is fenced at once (its next commit is refused), stops,
//! and the new slices are claimed.
//!
//! That is safe because the next offset of every partition lives in
//! `pipeline_offsets`, moved only by a commit that holds the partition's
//! current slice: whoever holds a partition next resumes exactly where the
//! last successful commit left it. Re-cutting everything (rather than moving
//! single partitions) costs each worker a restart of its consumers, which is
//! cheap next to keeping the protocol obvious.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::begin_system;
use super::lease::{lock_pipeline, refresh_pipeline};
use super::state::SliceState;

/// The slices for a topic of `partition_count` partitions (`None`: not
/// known yet) over `live_workers` workers: each entry is one slice's
/// partitions, `None` meaning every partition.
pub fn plan(partition_count: Option<i32>, live_workers: usize) -> Vec<Option<Vec<i32>>> {
    let slices = match partition_count {
        Some(count) if count > 1 => (count as usize).min(live_workers),
        _ => 1,
    };
    if slices <= 1 {
        return vec![None];
    }
    let count = partition_count.unwrap_or(1);
    (0..slices).map(|s| Some((0..count).filter(|p| *p as usize % slices == s).collect())).collect()
}

/// The first slice of a new pipeline (every partition), created with it so a
/// worker can start before the scheduler's next round.
pub async fn insert_initial(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    tenant_id: Uuid,
    paused: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pipeline_slices (pipeline_id, tenant_id, slice, state) VALUES ($1, $2, 0, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(pipeline_id)
    .bind(tenant_id)
    .bind(if paused { SliceState::Paused } else { SliceState::Starting })
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the partition count a worker saw, if it is more than known
/// (Kafka topics only grow; a stale, smaller view never shrinks the slicing).
pub async fn report_partition_count(pool: &PgPool, pipeline_id: Uuid, count: i32) -> Result<bool, sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    let grew = sqlx::query(
        "UPDATE pipeline_leases SET partition_count = $2, updated_at = now()
         WHERE pipeline_id = $1 AND (partition_count IS NULL OR partition_count < $2)",
    )
    .bind(pipeline_id)
    .bind(count)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(grew)
}

/// A pipeline whose slicing changed in a [`rebalance`].
#[derive(Debug, PartialEq, Eq)]
pub struct Recut {
    pub pipeline_id: Uuid,
    pub slices: Vec<Option<Vec<i32>>>,
}

/// Brings every running pipeline's slicing in line with [`plan`] for the
/// registered workers (the scheduler reaps dead ones first). Returns the
/// pipelines it re-cut.
pub async fn rebalance(pool: &PgPool) -> Result<Vec<Recut>, sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM workers").fetch_one(&mut *tx).await?;
    let counts: Vec<(Uuid, Option<i32>)> = sqlx::query_as(
        "SELECT p.id, l.partition_count FROM pipelines p JOIN pipeline_leases l ON l.pipeline_id = p.id
         WHERE p.desired_state = 'running' ORDER BY p.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let slices: Vec<(Uuid, Option<Vec<i32>>)> = sqlx::query_as(
        "SELECT s.pipeline_id, s.partitions FROM pipeline_slices s JOIN pipelines p ON p.id = s.pipeline_id
         WHERE p.desired_state = 'running' ORDER BY s.pipeline_id, s.slice",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut current: HashMap<Uuid, Vec<Option<Vec<i32>>>> = HashMap::new();
    for (pipeline_id, partitions) in slices {
        current.entry(pipeline_id).or_default().push(partitions);
    }
    let pipelines = counts.into_iter().map(|(id, count)| (id, count, current.remove(&id).unwrap_or_default()));

    let mut recut = Vec::new();
    for (pipeline_id, count, current) in pipelines {
        if plan(count, live as usize) == current {
            continue;
        }
        if let Some(slices) = recut_pipeline(pool, pipeline_id, live as usize).await? {
            recut.push(Recut { pipeline_id, slices });
        }
    }
    Ok(recut)
}

/// Replaces the pipeline's slices by the plan, under the pipeline's lock
/// (so no commit of an old holder is half-way), re-reading what the plan
/// depends on. `None` if nothing had to change after all.
async fn recut_pipeline(
    pool: &PgPool,
    pipeline_id: Uuid,
    live_workers: usize,
) -> Result<Option<Vec<Option<Vec<i32>>>>, sqlx::Error> {
    let mut tx = begin_system(pool).await?;
    if !lock_pipeline(&mut tx, pipeline_id).await? {
        return Ok(None);
    }
    let (tenant_id, count): (Uuid, Option<i32>) =
        sqlx::query_as("SELECT tenant_id, partition_count FROM pipeline_leases WHERE pipeline_id = $1")
            .bind(pipeline_id)
            .fetch_one(&mut *tx)
            .await?;
    let current: Vec<Option<Vec<i32>>> =
        sqlx::query_scalar("SELECT partitions FROM pipeline_slices WHERE pipeline_id = $1 ORDER BY slice FOR UPDATE")
            .bind(pipeline_id)
            .fetch_all(&mut *tx)
            .await?;
    let target = plan(count, live_workers);
    if current == target {
        return Ok(None);
    }
    sqlx::query("DELETE FROM pipeline_slices WHERE pipeline_id = $1").bind(pipeline_id).execute(&mut *tx).await?;
    for (slice, partitions) in target.iter().enumerate() {
        sqlx::query("INSERT INTO pipeline_slices (pipeline_id, tenant_id, slice, partitions) VALUES ($1, $2, $3, $4)")
            .bind(pipeline_id)
            .bind(tenant_id)
            .bind(slice as i32)
            .bind(partitions)
            .execute(&mut *tx)
            .await?;
    }
    refresh_pipeline(&mut tx, pipeline_id, None).await?;
    tx.commit().await?;
    Ok(Some(target))
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn one_slice_of_everything_until_there_is_something_to_split() {
        assert_eq!(plan(None, 5), vec![None]);
        assert_eq!(plan(Some(4), 1), vec![None]);
        assert_eq!(plan(Some(4), 0), vec![None]);
        assert_eq!(plan(Some(1), 3), vec![None]);
    }

    #[test]
    fn partitions_are_dealt_round_robin_over_at_most_one_slice_per_worker() {
        assert_eq!(plan(Some(4), 2), vec![Some(vec![0, 2]), Some(vec![1, 3])]);
        assert_eq!(plan(Some(4), 3), vec![Some(vec![0, 3]), Some(vec![1]), Some(vec![2])]);
        assert_eq!(plan(Some(3), 8), vec![Some(vec![0]), Some(vec![1]), Some(vec![2])]);
        let six = plan(Some(6), 4);
        let mut all: Vec<i32> = six.iter().flat_map(|s| s.clone().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..6).collect::<Vec<_>>(), "every partition in exactly one slice");
    }
}
