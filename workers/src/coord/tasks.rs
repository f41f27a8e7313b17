//! The task queue: general jobs in Postgres (`tasks`), claimed and fenced like slices.
//!
//! A task names a `kind` (what runs it) and a `subject` (what it works on).
//! Workers [`claim`] due tasks of the kinds they run with `FOR UPDATE SKIP
//! LOCKED`; every claim takes a new epoch from the global sequence
//! `lease_epochs` and a lease that the worker's heartbeat renews ([`renew`]).
//! A holder that dies or stalls past its lease loses the task to the next
//! claimer, and its late [`complete`] or [`fail`] is refused
//! ([`TaskError::Fenced`]): the holder's side effects belong in the same
//! transaction as its `complete`, after [`check_epoch`], like a slice's commit.
//!
//! `attempts` counts claims, so an attempt whose holder died counts too: a
//! task that kills every worker running it ends `failed` after
//! `max_attempts` claims instead of being retried forever. A failure is
//! retried after a backoff computed by `backon` from the attempt number. See
//! docs/tasks.md.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use super::begin_system;

/// Claims a task gets when its enqueuer does not say otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

/// Retry delays for kinds without a policy of their own: 10 s, 20 s, 40 s, …
/// up to an hour, each stretched by a random jitter of up to as much again so
/// that tasks failing together (a store outage) do not retry together.
pub const DEFAULT_BACKOFF: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_secs(10))
    .with_max_delay(Duration::from_secs(3600))
    .with_jitter();

/// Where a task is in its life, the Postgres enum `task_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "task_state", rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for its `run_at` (first run or a retry).
    Pending,
    /// Claimed; free to claim again once its lease expires.
    Running,
    /// Completed by its holder.
    Done,
    /// Given up on after its last attempt.
    Failed,
}

/// A task as stored.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Task {
    pub id: Uuid,
    /// `None` for a system-wide task.
    pub tenant_id: Option<Uuid>,
    pub kind: String,
    pub subject: String,
    pub state: TaskState,
    pub run_at: DateTime<Utc>,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The holder while running; `None` once its worker was forgotten.
    pub worker_id: Option<Uuid>,
    /// The epoch of the latest claim.
    pub epoch: Option<i64>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const TASK_COLUMNS: &str = "id, tenant_id, kind, subject, state, run_at, attempts, max_attempts, worker_id, epoch,
     lease_expires_at, last_error, created_at, updated_at, finished_at";

/// A task to enqueue; [`NewTask::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct NewTask<'a> {
    pub kind: &'a str,
    pub subject: &'a str,
    /// `None` for a system-wide task (only system sessions see it).
    pub tenant_id: Option<Uuid>,
    /// `None` is now.
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
}

impl<'a> NewTask<'a> {
    /// A system-wide task due now, with [`DEFAULT_MAX_ATTEMPTS`].
    pub fn new(kind: &'a str, subject: &'a str) -> Self {
        Self { kind, subject, tenant_id: None, run_at: None, max_attempts: DEFAULT_MAX_ATTEMPTS }
    }

    pub fn tenant(self, tenant_id: Uuid) -> Self {
        Self { tenant_id: Some(tenant_id), ..self }
    }

    pub fn run_at(self, run_at: DateTime<Utc>) -> Self {
        Self { run_at: Some(run_at), ..self }
    }

    pub fn max_attempts(self, max_attempts: i32) -> Self {
        Self { max_attempts, ..self }
    }
}

/// What [`enqueue`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The new task, or the pending one of the same kind and subject it joined.
    pub task: Task,
    pub created: bool,
}

/// A held claim on one task: what its holder presents to renew, check and finish it.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct TaskLease {
    pub task_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub kind: String,
    pub subject: String,
    pub worker_id: Uuid,
    pub epoch: i64,
    /// This claim's number, from 1.
    pub attempt: i32,
    pub max_attempts: i32,
    pub lease_expires_at: DateTime<Utc>,
}

const LEASE_COLUMNS: &str = "id AS task_id, tenant_id, kind, subject, worker_id, epoch, attempts AS attempt,
     max_attempts, lease_expires_at";

/// What became of a failed task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterFailure {
    /// Pending again, claimable from `run_at`.
    Retry { run_at: DateTime<Utc> },
    /// That was its last attempt.
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The lease is no longer the task's: it expired and another worker
    /// claimed the task, or the task is finished. Nothing was changed; roll
    /// back whatever the transaction did for it.
    #[error("task {task_id} is no longer held by epoch {epoch}")]
    Fenced { task_id: Uuid, epoch: i64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Adds a task, unless one of the same kind and subject is already pending:
/// then that one is returned (`created: false`), moved to the earlier of the
/// two `run_at`s, its tenant and `max_attempts` unchanged. A running task
/// does not absorb the request (it may have read its inputs already): the
/// new one waits, and is not claimed before the running one ends.
///
/// Runs on the caller's connection, so the task can be enqueued in the
/// transaction that makes it necessary; row-level security lets a tenant's
/// transaction enqueue for its own tenant only.
pub async fn enqueue(conn: &mut PgConnection, task: &NewTask<'_>) -> Result<Enqueued, sqlx::Error> {
    let id = Uuid::now_v7();
    // The conflict target names the partial index `tasks_one_pending` by its
    // expression and predicate, which have to be spelled as in the index.
    let stored: Task = sqlx::query_as(&format!(
        "INSERT INTO tasks (id, tenant_id, kind, subject, run_at, max_attempts)
         VALUES ($1, $2, $3, $4, coalesce($5, now()), $6)
         ON CONFLICT ((coalesce(tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)), kind, subject)
             WHERE state = 'pending' DO UPDATE SET
             run_at = least(tasks.run_at, excluded.run_at),
             updated_at = CASE WHEN excluded.run_at < tasks.run_at THEN now() ELSE tasks.updated_at END
         RETURNING {TASK_COLUMNS}"
    ))
    .bind(id)
    .bind(task.tenant_id)
    .bind(task.kind)
    .bind(task.subject)
    .bind(task.run_at)
    .bind(task.max_attempts)
    .fetch_one(&mut *conn)
    .await?;
    let created = stored.id == id;
    Ok(Enqueued { task: stored, created })
}

/// Claims up to `limit` claimable tasks of the given kinds, oldest due
/// first, each with a new epoch and a lease of `ttl`. Claimable: pending
/// and due (and no task of the same kind and subject running), or running
/// with an expired lease or a forgotten worker. A running task whose lease
/// expired on its last attempt is marked failed instead.
pub async fn claim(
    pool: &PgPool,
    worker_id: Uuid,
    kinds: &[&str],
    ttl: Duration,
    limit: usize,
) -> Result<Vec<TaskLease>, sqlx::Error> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut tx = begin_system(pool).await?;
    sqlx::query(
        "UPDATE tasks SET state = $2, worker_id = NULL, lease_expires_at = NULL, finished_at = now(),
                updated_at = now(),
                last_error = format('the lease of attempt %s of %s expired before its worker finished', attempts,
                                    max_attempts)
         WHERE id IN (SELECT id FROM tasks
                      WHERE kind = ANY($1) AND state = $3 AND (worker_id IS NULL OR lease_expires_at < now())
                        AND attempts >= max_attempts
                      FOR UPDATE SKIP LOCKED)",
    )
    .bind(kinds)
    .bind(TaskState::Failed)
    .bind(TaskState::Running)
    .execute(&mut *tx)
    .await?;
    // MATERIALIZED: the candidates are picked and locked once; a subquery the
    // planner re-ran per row could claim more than `limit`.
    let leases: Vec<TaskLease> = sqlx::query_as(&format!(
        "WITH candidates AS MATERIALIZED (
             SELECT id FROM tasks t
             WHERE kind = ANY($1)
               AND ((state = $5 AND run_at <= now()
                     AND NOT EXISTS (SELECT 1 FROM tasks r
                                     WHERE r.tenant_id IS NOT DISTINCT FROM t.tenant_id
                                       AND r.kind = t.kind AND r.subject = t.subject AND r.state = $6))
                    OR (state = $6 AND (worker_id IS NULL OR lease_expires_at < now())
                        AND attempts < max_attempts))
             ORDER BY run_at, id
             LIMIT $4
             FOR UPDATE SKIP LOCKED)
         UPDATE tasks SET state = $6, worker_id = $2, epoch = nextval('lease_epochs'),
                lease_expires_at = now() + make_interval(secs => $3), attempts = attempts + 1, updated_at = now()
         WHERE id IN (SELECT id FROM candidates)
         RETURNING {LEASE_COLUMNS}"
    ))
    .bind(kinds)
    .bind(worker_id)
    .bind(ttl.as_secs_f64())
    .bind(limit)
    .bind(TaskState::Pending)
    .bind(TaskState::Running)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(leases)
}

/// Extends the lease of every task the worker holds to `ttl` from now, and
/// returns them: one missing from the list is no longer this worker's. Part
/// of the worker's heartbeat (its transaction, a system one). A lease that
/// expired but that nobody claimed yet is still the worker's, and renewed.
pub async fn renew(conn: &mut PgConnection, worker_id: Uuid, ttl: Duration) -> Result<Vec<TaskLease>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE tasks SET lease_expires_at = now() + make_interval(secs => $2)
         WHERE worker_id = $1 AND state = $3
         RETURNING {LEASE_COLUMNS}"
    ))
    .bind(worker_id)
    .bind(ttl.as_secs_f64())
    .bind(TaskState::Running)
    .fetch_all(&mut *conn)
    .await
}

/// Inside the holder's transaction: locks the task's row and tells whether
/// the lease is still its own. While the transaction lasts nobody can claim
/// the task, so everything it writes after `true` is fenced.
pub async fn check_epoch(conn: &mut PgConnection, lease: &TaskLease) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query("SELECT 1 FROM tasks WHERE id = $1 AND epoch = $2 AND worker_id = $3 AND state = $4 FOR UPDATE")
        .bind(lease.task_id)
        .bind(lease.epoch)
        .bind(lease.worker_id)
        .bind(TaskState::Running)
        .fetch_optional(&mut *conn)
        .await?
        .is_some())
}

/// Marks the task done, if the lease is still its own; commit it with the
/// task's side effects. `last_error` stays as a record of earlier attempts.
pub async fn complete(conn: &mut PgConnection, lease: &TaskLease) -> Result<(), TaskError> {
    if finish(conn, lease, TaskState::Done, None).await? {
        Ok(())
    } else {
        Err(TaskError::Fenced { task_id: lease.task_id, epoch: lease.epoch })
    }
}

/// Ends the held task in `state` (done or failed for good) if the lease is
/// still its own; `error`, when given, becomes its last error. `false`: fenced.
async fn finish(
    conn: &mut PgConnection,
    lease: &TaskLease,
    state: TaskState,
    error: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let ended = sqlx::query(
        "UPDATE tasks SET state = $5, last_error = coalesce($6, last_error), worker_id = NULL,
                lease_expires_at = NULL, finished_at = now(), updated_at = now()
         WHERE id = $1 AND epoch = $2 AND worker_id = $3 AND state = $4",
    )
    .bind(lease.task_id)
    .bind(lease.epoch)
    .bind(lease.worker_id)
    .bind(TaskState::Running)
    .bind(state)
    .bind(error)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(ended == 1)
}

/// Records a failed attempt, if the lease is still its own: keeps `error` as
/// the task's last error and either schedules a retry at now plus the
/// `backoff`'s delay for this attempt (its first delay after attempt 1, the
/// second after attempt 2, …) or, on the last attempt, marks the task failed
/// for good. The task's `max_attempts` sets the backoff's `max_times`; a
/// `total_delay` on the backoff ends the retries earlier.
pub async fn fail(
    conn: &mut PgConnection,
    lease: &TaskLease,
    error: &str,
    backoff: ExponentialBuilder,
) -> Result<AfterFailure, TaskError> {
    let after: Option<AfterFailure> = match retry_delay(backoff, lease.attempt, lease.max_attempts) {
        Some(delay) => sqlx::query_as::<_, (DateTime<Utc>,)>(
            "UPDATE tasks SET state = $5, run_at = now() + make_interval(secs => $6), last_error = $7,
                    worker_id = NULL, lease_expires_at = NULL, updated_at = now()
             WHERE id = $1 AND epoch = $2 AND worker_id = $3 AND state = $4
             RETURNING run_at",
        )
        .bind(lease.task_id)
        .bind(lease.epoch)
        .bind(lease.worker_id)
        .bind(TaskState::Running)
        .bind(TaskState::Pending)
        .bind(delay.as_secs_f64())
        .bind(error)
        .fetch_optional(&mut *conn)
        .await?
        .map(|(run_at,)| AfterFailure::Retry { run_at }),
        None => finish(conn, lease, TaskState::Failed, Some(error)).await?.then_some(AfterFailure::Failed),
    };
    after.ok_or(TaskError::Fenced { task_id: lease.task_id, epoch: lease.epoch })
}

/// The delay before the retry that follows `attempt` (from 1), or `None`
/// when it was the last: backon's exponential backoff, limited to
/// `max_attempts - 1` retries, yields one delay per retry.
fn retry_delay(backoff: ExponentialBuilder, attempt: i32, max_attempts: i32) -> Option<Duration> {
    let retries = usize::try_from(max_attempts - 1).unwrap_or(0);
    let attempt = usize::try_from(attempt).unwrap_or(1).max(1);
    backoff.with_max_times(retries).build().nth(attempt - 1)
}

/// The task, if the connection's session may see it.
pub async fn get(conn: &mut PgConnection, task_id: Uuid) -> Result<Option<Task>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"))
        .bind(task_id)
        .fetch_optional(&mut *conn)
        .await
}

/// Deletes the tasks that finished (done or failed) more than `age` ago;
/// returns how many. For the scheduler's upkeep, in a system transaction.
pub async fn purge_finished(conn: &mut PgConnection, age: Duration) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM tasks WHERE state IN ($2, $3) AND finished_at < now() - make_interval(secs => $1)")
        .bind(age.as_secs_f64())
        .bind(TaskState::Done)
        .bind(TaskState::Failed)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(backoff: ExponentialBuilder, max_attempts: i32) -> Vec<Option<Duration>> {
        (1..=max_attempts).map(|attempt| retry_delay(backoff, attempt, max_attempts)).collect()
    }

    #[test]
    fn the_backoff_grows_per_attempt_and_ends_at_the_last() {
        let backoff =
            ExponentialBuilder::new().with_min_delay(Duration::from_secs(1)).with_max_delay(Duration::from_secs(3));
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(delays(backoff, 5), vec![secs(1), secs(2), secs(3), secs(3), None]);
        assert_eq!(delays(backoff, 1), vec![None], "one attempt: no retry");
    }

    #[test]
    fn the_default_jitter_stretches_each_delay_by_up_to_as_much_again() {
        for _ in 0..100 {
            let first = retry_delay(DEFAULT_BACKOFF, 1, 3).unwrap();
            assert!(first >= Duration::from_secs(10) && first < Duration::from_secs(20), "{first:?}");
            let second = retry_delay(DEFAULT_BACKOFF, 2, 3).unwrap();
            assert!(second >= Duration::from_secs(20) && second < Duration::from_secs(40), "{second:?}");
        }
    }
}
