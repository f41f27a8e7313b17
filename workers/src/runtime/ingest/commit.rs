//! The fenced commit of one batch: its data files are written once, then the
//! table, its dead-letter table and the slice's next offsets move together in
//! one Postgres transaction that first checks the lease epoch.
//!
//! The slices of a pipeline commit independently to the same tables: when
//! two race, the pointer compare-and-swap lets one win and the other rebuilds
//! its snapshot on the fresh metadata (appends never conflict). A commit
//! whose outcome is unknown (the reply to COMMIT was lost) is looked up by
//! its id in the tables' snapshots before it is tried again.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Context;
use arrow::record_batch::RecordBatch;
use backon::{BackoffBuilder, ExponentialBuilder};
use sqlx::PgPool;
use uuid::Uuid;

use crate::coord::offsets::{self, OffsetMove};
use crate::coord::{self, lease, Lease};
use crate::iceberg::{self as ice, LakeErrorKind, LoadedTable, PreparedCommit, Warehouse};

/// Everything one commit needs.
pub struct Batch {
    pub rows: Option<RecordBatch>,
    pub dead: Option<RecordBatch>,
    /// Per partition with a message in the batch: where it started and ends.
    pub offsets: BTreeMap<i32, OffsetMove>,
    pub row_count: u64,
    pub dead_count: u64,
}

/// Whether a batch landed.
#[derive(Debug, PartialEq, Eq)]
pub enum Committed {
    Yes,
    /// Another worker holds the slice, or it was re-cut: nothing was
    /// committed, and nothing more may be.
    LeaseLost,
}

/// The table and its dead-letter table, as this slice last saw them.
pub type Tables = tokio::sync::Mutex<(LoadedTable, LoadedTable)>;

/// Writes the batch's files once, then commits them with the offsets in one
/// fenced transaction, retrying on a lost race and checking a commit whose
/// outcome is unknown by its id before trying again.
pub async fn commit(
    pool: &PgPool,
    warehouse: &Warehouse,
    tables: &Tables,
    lease: &Lease,
    batch: Batch,
) -> anyhow::Result<Committed> {
    let commit_id = Uuid::now_v7().to_string();
    let mut tables = tables.lock().await;
    let row_files = match batch.rows {
        Some(rows) => ice::write_data_files(warehouse, &tables.0, rows).await?,
        None => vec![],
    };
    let dead_files = match batch.dead {
        Some(dead) => ice::write_data_files(warehouse, &tables.1, dead).await?,
        None => vec![],
    };
    let next_offsets: BTreeMap<i32, i64> = batch.offsets.iter().map(|(&p, m)| (p, m.next)).collect();
    let summary = HashMap::from([
        (ice::COMMIT_ID_KEY.to_string(), commit_id.clone()),
        ("icehouse.pipeline-id".to_string(), lease.pipeline_id.to_string()),
        ("icehouse.epoch".to_string(), lease.epoch.to_string()),
        ("icehouse.next-offsets".to_string(), serde_json::to_string(&next_offsets)?),
    ]);
    // After an unknown outcome: back off (the database may be struggling).
    let mut unknown_outcome_delays = ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    // Why the previous attempt did not return: a lost race (another slice or
    // writer moved the pointer: retry at once) or an unknown outcome.
    let mut lost_race = false;
    for attempt in 0.. {
        if attempt > 0 {
            if lost_race {
                // A little jitter keeps slices that lost together from colliding again.
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 20)).await;
            } else {
                tokio::time::sleep(unknown_outcome_delays.next().unwrap_or(Duration::from_secs(5))).await;
            }
            // Fresh metadata: another writer may have committed, or our own
            // previous attempt may have landed without us hearing back.
            // The catalog is behind row-level security: a system transaction.
            // The pointers are read in a transaction, the files with none open.
            let mut tx = coord::begin_system(pool).await?;
            let ns = tables.0.namespace.clone();
            let table_at = ice::table_pointer(&mut tx, warehouse, &ns, &tables.0.name).await?;
            let dead_at = ice::table_pointer(&mut tx, warehouse, &ns, &tables.1.name).await?;
            tx.commit().await?;
            let fresh_table = ice::load_at(warehouse, &ns, &tables.0.name, table_at.context("table vanished")?).await?;
            let fresh_dead = ice::load_at(warehouse, &ns, &tables.1.name, dead_at.context("table vanished")?).await?;
            let landed =
                ice::has_commit(&fresh_table.metadata, &commit_id) || ice::has_commit(&fresh_dead.metadata, &commit_id);
            *tables = (fresh_table, fresh_dead);
            if landed {
                return Ok(Committed::Yes);
            }
        }
        let prepared_rows = match row_files.is_empty() {
            true => None,
            false => Some(ice::prepare_append(warehouse, &tables.0, row_files.clone(), summary.clone()).await?),
        };
        let prepared_dead = match dead_files.is_empty() {
            true => None,
            false => Some(ice::prepare_append(warehouse, &tables.1, dead_files.clone(), summary.clone()).await?),
        };
        let prepared: Vec<&PreparedCommit> = prepared_rows.iter().chain(prepared_dead.iter()).collect();

        let mut tx = coord::begin_system(pool).await?;
        if !lease::check_epoch(&mut tx, lease).await? {
            tx.rollback().await?;
            tracing::warn!(
                pipeline = %lease.pipeline_id, slice = lease.slice, epoch = lease.epoch, "lease lost; commit refused"
            );
            discard(warehouse, &prepared).await;
            return Ok(Committed::LeaseLost);
        }
        let mut lost = None;
        for p in &prepared {
            match ice::swap_pointer(&mut tx, warehouse, p).await {
                Ok(()) => {}
                Err(e) if e.kind() == LakeErrorKind::Conflict => {
                    lost = Some(e);
                    break;
                }
                Err(e) => {
                    tx.rollback().await?;
                    discard(warehouse, &prepared).await;
                    return Err(e.into());
                }
            }
        }
        if let Some(e) = lost {
            tx.rollback().await?;
            discard(warehouse, &prepared).await;
            tracing::debug!(
                pipeline = %lease.pipeline_id, slice = lease.slice, error = %e,
                "lost a commit race; retrying on fresh metadata"
            );
            lost_race = true;
            continue;
        }
        if let Err(moved) =
            offsets::record_commit(&mut tx, lease, &batch.offsets, batch.row_count, batch.dead_count).await?
        {
            // The epoch was ours, yet the batch does not follow the last
            // commit: committing would lose or repeat messages. The slice
            // starts again from the stored offsets.
            tx.rollback().await?;
            discard(warehouse, &prepared).await;
            tracing::error!(pipeline = %lease.pipeline_id, slice = lease.slice, error = %moved, "commit refused");
            return Err(moved.into());
        }
        match tx.commit().await {
            Ok(()) => {
                for p in &prepared {
                    ice::finish_commit(warehouse, p).await;
                }
                if let Some(p) = prepared_rows {
                    tables.0 = p.into_loaded();
                }
                if let Some(p) = prepared_dead {
                    tables.1 = p.into_loaded();
                }
                return Ok(Committed::Yes);
            }
            Err(e) => {
                tracing::warn!(error = %e, commit_id, "commit outcome unknown; checking before retrying");
                lost_race = false;
            }
        }
    }
    unreachable!("the retry loop only ends by returning")
}

async fn discard(warehouse: &Warehouse, prepared: &[&PreparedCommit]) {
    for p in prepared {
        ice::discard_prepared(warehouse, p).await;
    }
}
