//! Next offsets and commit counters: what a slice holder writes besides the
//! tables. Offsets stored are always *next* offsets (last consumed + 1) and
//! move only inside a commit transaction that has passed
//! [`super::lease::check_epoch`]; whoever holds a partition next resumes
//! exactly there. The one write outside a commit, [`resolve_start`], only
//! seeds a partition that has no offset yet (an existing one always wins), so
//! a holder that lost its lease cannot move anything with it.

use std::collections::{BTreeMap, HashMap};

use sqlx::PgConnection;
use uuid::Uuid;

use super::lease::Lease;

/// The stored next offset of each partition of the pipeline that has one.
pub async fn stored(conn: &mut PgConnection, pipeline_id: Uuid) -> Result<HashMap<i32, i64>, sqlx::Error> {
    let rows: Vec<(i32, i64)> =
        sqlx::query_as("SELECT partition, next_offset FROM pipeline_offsets WHERE pipeline_id = $1")
            .bind(pipeline_id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Stores `start` as the first next offset of a partition never consumed
/// (resolved from the start position once, so a restart neither skips nor
/// repeats). Another holder of the partition (one just fenced by a re-cut)
/// may have resolved it first: its value stands and is returned.
pub async fn resolve_start(
    conn: &mut PgConnection,
    pipeline_id: Uuid,
    tenant_id: Uuid,
    partition: i32,
    start: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO pipeline_offsets (pipeline_id, tenant_id, partition, next_offset) VALUES ($1, $2, $3, $4)
         ON CONFLICT (pipeline_id, partition) DO UPDATE SET next_offset = pipeline_offsets.next_offset
         RETURNING next_offset",
    )
    .bind(pipeline_id)
    .bind(tenant_id)
    .bind(partition)
    .bind(start.max(0))
    .fetch_one(&mut *conn)
    .await
}

/// Inside a fenced commit: the batch's next offsets, and the pipeline's
/// counters (in total and in the current minute's bucket).
pub async fn record_commit(
    conn: &mut PgConnection,
    lease: &Lease,
    next_offsets: &BTreeMap<i32, i64>,
    rows: u64,
    dead_letter_rows: u64,
) -> Result<(), sqlx::Error> {
    for (partition, next) in next_offsets {
        sqlx::query(
            "INSERT INTO pipeline_offsets (pipeline_id, tenant_id, partition, next_offset) VALUES ($1, $2, $3, $4)
             ON CONFLICT (pipeline_id, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
        )
        .bind(lease.pipeline_id)
        .bind(lease.tenant_id)
        .bind(partition)
        .bind(next)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "UPDATE pipeline_leases SET rows_committed = rows_committed + $2, dead_letter_rows = dead_letter_rows + $3,
                last_commit_at = now(), updated_at = now()
         WHERE pipeline_id = $1",
    )
    .bind(lease.pipeline_id)
    .bind(rows as i64)
    .bind(dead_letter_rows as i64)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO pipeline_minutes (pipeline_id, tenant_id, minute, rows, dead_letter_rows)
         VALUES ($1, $2, date_trunc('minute', now()), $3, $4)
         ON CONFLICT (pipeline_id, minute) DO UPDATE
         SET rows = pipeline_minutes.rows + EXCLUDED.rows,
             dead_letter_rows = pipeline_minutes.dead_letter_rows + EXCLUDED.dead_letter_rows",
    )
    .bind(lease.pipeline_id)
    .bind(lease.tenant_id)
    .bind(rows as i64)
    .bind(dead_letter_rows as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
