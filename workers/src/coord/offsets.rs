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

/// One partition's move in a commit: from the next offset stored when the
/// batch began to the one after its last message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetMove {
    pub from: i64,
    pub next: i64,
}

/// A commit whose batch did not start where the stored offsets are: the
/// slice read from somewhere else than where the last commit left off.
#[derive(Debug, thiserror::Error)]
#[error("partition {partition}: the batch starts at offset {from} but {stored:?} is stored; nothing was committed")]
pub struct OffsetsMoved {
    pub partition: i32,
    pub from: i64,
    pub stored: Option<i64>,
}

/// Inside a fenced commit: moves each partition's next offset, only from
/// where the batch began (so commits of a partition chain exactly: no two
/// cover the same messages, none jumps over messages no commit holds), and
/// the pipeline's counters (in total and in the current minute's bucket).
/// On [`OffsetsMoved`] the caller must roll back.
pub async fn record_commit(
    conn: &mut PgConnection,
    lease: &Lease,
    moves: &BTreeMap<i32, OffsetMove>,
    rows: u64,
    dead_letter_rows: u64,
) -> Result<Result<(), OffsetsMoved>, sqlx::Error> {
    for (&partition, m) in moves {
        let moved = sqlx::query(
            "UPDATE pipeline_offsets SET next_offset = $4
             WHERE pipeline_id = $1 AND partition = $2 AND next_offset = $3",
        )
        .bind(lease.pipeline_id)
        .bind(partition)
        .bind(m.from)
        .bind(m.next)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if moved != 1 {
            let stored = sqlx::query_scalar(
                "SELECT next_offset FROM pipeline_offsets WHERE pipeline_id = $1 AND partition = $2",
            )
            .bind(lease.pipeline_id)
            .bind(partition)
            .fetch_optional(&mut *conn)
            .await?;
            return Ok(Err(OffsetsMoved { partition, from: m.from, stored }));
        }
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
    Ok(Ok(()))
}
