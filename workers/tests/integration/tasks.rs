//! The task queue against Postgres: claims (once, concurrently, past locked
//! rows, by kind, when due), expiry and re-claim with a higher epoch, the
//! stale holder fenced, the heartbeat's renewal, retries with backoff up to
//! the last attempt, the coalescing of duplicates, row-level security and
//! the wake-up notification.

use std::collections::HashSet;
use std::time::Duration;

use backon::ExponentialBuilder;
use chrono::{DateTime, Utc};
use icehouse_workers::coord::tasks::{self, AfterFailure, Enqueued, NewTask, Task, TaskError, TaskLease, TaskState};
use icehouse_workers::coord::{self, lease};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn worker(pool: &PgPool) -> Uuid {
    let id = Uuid::now_v7();
    lease::register(pool, id).await.unwrap();
    id
}

async fn tenant(pool: &PgPool) -> Uuid {
    let id = Uuid::now_v7();
    let mut tx = coord::begin_system(pool).await.unwrap();
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn enqueue(pool: &PgPool, task: NewTask<'_>) -> Enqueued {
    let mut tx = coord::begin_system(pool).await.unwrap();
    let enqueued = tasks::enqueue(&mut tx, &task).await.unwrap();
    tx.commit().await.unwrap();
    enqueued
}

async fn get(pool: &PgPool, id: Uuid) -> Task {
    let mut tx = coord::begin_system(pool).await.unwrap();
    let task = tasks::get(&mut tx, id).await.unwrap().expect("the task exists");
    tx.commit().await.unwrap();
    task
}

async fn claim(pool: &PgPool, worker: Uuid, kinds: &[&str], ttl: Duration) -> Vec<TaskLease> {
    tasks::claim(pool, worker, kinds, ttl, 10).await.unwrap()
}

async fn complete(pool: &PgPool, lease: &TaskLease) -> Result<(), TaskError> {
    let mut tx = coord::begin_system(pool).await.unwrap();
    let done = tasks::complete(&mut tx, lease).await;
    tx.commit().await.unwrap();
    done
}

async fn fail(
    pool: &PgPool,
    lease: &TaskLease,
    error: &str,
    backoff: ExponentialBuilder,
) -> Result<AfterFailure, TaskError> {
    let mut tx = coord::begin_system(pool).await.unwrap();
    let after = tasks::fail(&mut tx, lease, error, backoff).await;
    tx.commit().await.unwrap();
    after
}

async fn holds(pool: &PgPool, lease: &TaskLease) -> bool {
    let mut tx = coord::begin_system(pool).await.unwrap();
    let held = tasks::check_epoch(&mut tx, lease).await.unwrap();
    tx.rollback().await.unwrap();
    held
}

async fn db_now(pool: &PgPool) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()").fetch_one(pool).await.unwrap()
}

/// Sleeps until Postgres's clock has passed `t` (by a little).
async fn sleep_past(pool: &PgPool, t: DateTime<Utc>) {
    let left = (t - db_now(pool).await).to_std().unwrap_or_default();
    tokio::time::sleep(left + ms(50)).await;
}

fn assert_fenced<T: std::fmt::Debug>(result: Result<T, TaskError>, lease: &TaskLease) {
    match result {
        Err(TaskError::Fenced { task_id, epoch }) => assert_eq!((task_id, epoch), (lease.task_id, lease.epoch)),
        other => panic!("expected the stale holder to be fenced, got {other:?}"),
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_due_task_is_claimed_by_one_worker_and_completed_by_it(pool: PgPool) {
    let (w1, w2) = (worker(&pool).await, worker(&pool).await);
    let t = tenant(&pool).await;
    let enqueued = enqueue(&pool, NewTask::new("compact", "table-1").tenant(t)).await;
    assert!(enqueued.created);
    assert_eq!(enqueued.task.state, TaskState::Pending);
    assert_eq!((enqueued.task.attempts, enqueued.task.max_attempts), (0, tasks::DEFAULT_MAX_ATTEMPTS));

    let got = claim(&pool, w1, &["compact"], LONG).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let l = &got[0];
    assert_eq!(
        (l.task_id, l.tenant_id, l.kind.as_str(), l.subject.as_str(), l.worker_id, l.attempt),
        (enqueued.task.id, Some(t), "compact", "table-1", w1, 1)
    );
    assert_eq!(claim(&pool, w2, &["compact"], LONG).await, vec![], "a held task is nobody else's");
    assert!(holds(&pool, l).await);
    let running = get(&pool, l.task_id).await;
    assert_eq!(
        (running.state, running.worker_id, running.epoch, running.attempts, running.lease_expires_at),
        (TaskState::Running, Some(w1), Some(l.epoch), 1, Some(l.lease_expires_at))
    );

    complete(&pool, l).await.unwrap();
    let done = get(&pool, l.task_id).await;
    assert_eq!(
        (done.state, done.worker_id, done.epoch, done.lease_expires_at, done.last_error),
        (TaskState::Done, None, Some(l.epoch), None, None)
    );
    assert!(done.finished_at.is_some());
    assert!(!holds(&pool, l).await, "a finished task is held by nobody");
    assert_fenced(complete(&pool, l).await, l);
    assert_eq!(claim(&pool, w2, &["compact"], LONG).await, vec![], "a done task is not claimed again");

    // Finished tasks are purged after their age; pending ones never.
    let waiting = enqueue(&pool, NewTask::new("compact", "table-2")).await.task.id;
    let mut tx = coord::begin_system(&pool).await.unwrap();
    assert_eq!(tasks::purge_finished(&mut tx, Duration::from_secs(3600)).await.unwrap(), 0, "too young");
    assert_eq!(tasks::purge_finished(&mut tx, Duration::ZERO).await.unwrap(), 1);
    assert_eq!(tasks::get(&mut tx, l.task_id).await.unwrap(), None);
    assert!(tasks::get(&mut tx, waiting).await.unwrap().is_some());
    tx.commit().await.unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn concurrent_claimers_get_disjoint_tasks_and_skip_locked_ones_without_waiting(pool: PgPool) {
    let (w1, w2, w3) = (worker(&pool).await, worker(&pool).await, worker(&pool).await);
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(enqueue(&pool, NewTask::new("deliver", &format!("delivery-{i}"))).await.task.id);
    }

    // Another session holds two of the rows (as a claimer mid-transaction would).
    let mut blocker = coord::begin_system(&pool).await.unwrap();
    sqlx::query("SELECT 1 FROM tasks WHERE id = ANY($1) FOR UPDATE")
        .bind(&ids[..2])
        .execute(&mut *blocker)
        .await
        .unwrap();

    let (a, b) = tokio::time::timeout(
        Duration::from_secs(10),
        futures::future::join(
            tasks::claim(&pool, w1, &["deliver"], LONG, 4),
            tasks::claim(&pool, w2, &["deliver"], LONG, 4),
        ),
    )
    .await
    .expect("a claim skips locked rows instead of waiting for them");
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((a.len(), b.len()), (4, 4), "each claimer gets its limit: {a:?} {b:?}");
    let a_ids: HashSet<Uuid> = a.iter().map(|l| l.task_id).collect();
    let b_ids: HashSet<Uuid> = b.iter().map(|l| l.task_id).collect();
    assert!(a_ids.is_disjoint(&b_ids), "no task goes to two workers");
    let locked: HashSet<Uuid> = ids[..2].iter().copied().collect();
    assert!(a_ids.union(&b_ids).all(|id| !locked.contains(id)), "the locked rows were skipped");
    assert_eq!(claim(&pool, w3, &["deliver"], LONG).await, vec![], "the rest is locked");

    blocker.rollback().await.unwrap();
    let c = claim(&pool, w3, &["deliver"], LONG).await;
    assert_eq!(c.iter().map(|l| l.task_id).collect::<HashSet<_>>(), locked, "free again once unlocked");

    let epochs: HashSet<i64> = a.iter().chain(&b).chain(&c).map(|l| l.epoch).collect();
    assert_eq!(epochs.len(), 10, "every claim has an epoch of its own");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_worker_claims_only_its_kinds_and_only_due_tasks(pool: PgPool) {
    let w = worker(&pool).await;
    let later = db_now(&pool).await + chrono::Duration::milliseconds(400);
    let replay = enqueue(&pool, NewTask::new("replay", "pipeline-1").run_at(later)).await.task.id;
    let hook = enqueue(&pool, NewTask::new("webhook", "delivery-1")).await.task.id;

    assert_eq!(claim(&pool, w, &["compact"], LONG).await, vec![], "no task of that kind");
    assert_eq!(claim(&pool, w, &["replay"], LONG).await, vec![], "not due yet");
    let got = claim(&pool, w, &["replay", "webhook"], LONG).await;
    assert_eq!(got.iter().map(|l| l.task_id).collect::<Vec<_>>(), vec![hook]);

    sleep_past(&pool, later).await;
    let got = claim(&pool, w, &["replay", "webhook"], LONG).await;
    assert_eq!(got.iter().map(|l| l.task_id).collect::<Vec<_>>(), vec![replay], "due now");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_duplicate_joins_the_pending_task_but_waits_for_a_running_one(pool: PgPool) {
    let (w1, w2) = (worker(&pool).await, worker(&pool).await);
    let now = db_now(&pool).await;
    let first = enqueue(&pool, NewTask::new("compact", "table-1").run_at(now + chrono::Duration::hours(1))).await;
    assert!(first.created);
    let again = enqueue(&pool, NewTask::new("compact", "table-1")).await;
    assert!(!again.created, "a pending task of the same kind and subject is joined");
    assert_eq!(again.task.id, first.task.id);
    assert!(again.task.run_at < first.task.run_at, "and moved to the earlier time: {again:?}");
    let later = enqueue(&pool, NewTask::new("compact", "table-1").run_at(now + chrono::Duration::hours(2))).await;
    assert_eq!((later.created, later.task.run_at), (false, again.task.run_at), "never to a later one");
    assert!(enqueue(&pool, NewTask::new("expire", "table-1")).await.created, "another kind is another task");

    let running = claim(&pool, w1, &["compact"], LONG).await;
    assert_eq!(running.iter().map(|l| l.task_id).collect::<Vec<_>>(), vec![first.task.id]);
    let next = enqueue(&pool, NewTask::new("compact", "table-1")).await;
    assert!(next.created, "a request during a run is a new task");
    assert_eq!(next.task.state, TaskState::Pending);
    assert_eq!(claim(&pool, w2, &["compact"], LONG).await, vec![], "not run beside the running one");

    complete(&pool, &running[0]).await.unwrap();
    let got = claim(&pool, w2, &["compact"], LONG).await;
    assert_eq!(got.iter().map(|l| l.task_id).collect::<Vec<_>>(), vec![next.task.id], "run once that one ended");
}

#[sqlx::test(migrations = "../migrations")]
async fn an_expired_lease_is_claimed_again_with_a_higher_epoch_and_the_stale_holder_is_fenced(pool: PgPool) {
    let (w1, w2) = (worker(&pool).await, worker(&pool).await);
    let id = enqueue(&pool, NewTask::new("compact", "table-1")).await.task.id;
    let stale = claim(&pool, w1, &["compact"], ms(300)).await.remove(0);
    assert_eq!(claim(&pool, w2, &["compact"], LONG).await, vec![], "not before the lease expires");

    sleep_past(&pool, stale.lease_expires_at).await;
    let fresh = claim(&pool, w2, &["compact"], LONG).await;
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    let fresh = &fresh[0];
    assert_eq!((fresh.task_id, fresh.worker_id, fresh.attempt), (id, w2, 2), "the expired attempt counts");
    assert!(fresh.epoch > stale.epoch, "epochs only grow");

    let before = get(&pool, id).await;
    assert!(!holds(&pool, &stale).await);
    assert_fenced(complete(&pool, &stale).await, &stale);
    assert_fenced(fail(&pool, &stale, "late", tasks::DEFAULT_BACKOFF).await, &stale);
    let mut tx = coord::begin_system(&pool).await.unwrap();
    assert_eq!(tasks::renew(&mut tx, w1, LONG).await.unwrap(), vec![], "the old holder renews nothing");
    tx.commit().await.unwrap();
    assert_eq!(get(&pool, id).await, before, "the stale holder changed nothing");

    assert!(holds(&pool, fresh).await);
    complete(&pool, fresh).await.unwrap();
    assert_eq!(get(&pool, id).await.state, TaskState::Done);
    assert_fenced(fail(&pool, fresh, "twice", tasks::DEFAULT_BACKOFF).await, fresh);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_heartbeat_keeps_the_lease_alive(pool: PgPool) {
    let ttl = Duration::from_secs(1);
    let (w1, w2) = (worker(&pool).await, worker(&pool).await);
    let id = enqueue(&pool, NewTask::new("compact", "table-1")).await.task.id;
    let held = claim(&pool, w1, &["compact"], ttl).await.remove(0);

    tokio::time::sleep(ms(600)).await;
    assert!(lease::heartbeat(&pool, w1, ttl).await.unwrap().is_some());
    let renewed = get(&pool, id).await.lease_expires_at.unwrap();
    assert!(renewed > held.lease_expires_at, "renewed to {renewed} from {}", held.lease_expires_at);
    sleep_past(&pool, held.lease_expires_at).await;
    assert_eq!(claim(&pool, w2, &["compact"], LONG).await, vec![], "past the first expiry, still held");
    assert!(holds(&pool, &held).await);

    // No more heartbeats: the lease runs out and the task moves on.
    sleep_past(&pool, renewed).await;
    let taken = claim(&pool, w2, &["compact"], LONG).await;
    assert_eq!(taken.iter().map(|l| (l.task_id, l.worker_id)).collect::<Vec<_>>(), vec![(id, w2)]);
    assert!(lease::heartbeat(&pool, w1, ttl).await.unwrap().is_some());
    assert_eq!(get(&pool, id).await.worker_id, Some(w2), "a late heartbeat does not take it back");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_failure_is_retried_after_the_backoff_until_the_last_attempt(pool: PgPool) {
    let backoff =
        ExponentialBuilder::new().with_min_delay(ms(300)).with_max_delay(Duration::from_secs(5)).with_jitter();
    let (w1, w2) = (worker(&pool).await, worker(&pool).await);
    let id = enqueue(&pool, NewTask::new("webhook", "delivery-1").max_attempts(3)).await.task.id;

    let mut last_epoch = 0;
    for (attempt, base) in [(1, ms(300)), (2, ms(600))] {
        let l = claim(&pool, if attempt == 1 { w1 } else { w2 }, &["webhook"], LONG).await.remove(0);
        assert_eq!(l.attempt, attempt);
        assert!(l.epoch > last_epoch);
        last_epoch = l.epoch;
        let error = format!("503 from the endpoint ({attempt})");
        let AfterFailure::Retry { run_at } = fail(&pool, &l, &error, backoff).await.unwrap() else {
            panic!("attempt {attempt} of 3 is retried");
        };
        let task = get(&pool, id).await;
        assert_eq!(
            (task.state, task.attempts, task.last_error.as_deref(), task.worker_id, task.lease_expires_at, task.run_at),
            (TaskState::Pending, attempt, Some(error.as_str()), None, None, run_at)
        );
        // The failure set both in one statement: their difference is the delay.
        let delay = (task.run_at - task.updated_at).to_std().unwrap();
        assert!(delay >= base && delay <= base * 2, "attempt {attempt}: delay {delay:?}, base {base:?}, jitter < base");
        assert_eq!(claim(&pool, w1, &["webhook"], LONG).await, vec![], "not before the backoff");
        assert_fenced(complete(&pool, &l).await, &l);
        sleep_past(&pool, run_at).await;
    }

    let last = claim(&pool, w1, &["webhook"], LONG).await.remove(0);
    assert_eq!(last.attempt, 3);
    assert_eq!(fail(&pool, &last, "410 gone", backoff).await.unwrap(), AfterFailure::Failed);
    let task = get(&pool, id).await;
    assert_eq!(
        (task.state, task.attempts, task.last_error.as_deref(), task.worker_id, task.lease_expires_at),
        (TaskState::Failed, 3, Some("410 gone"), None, None)
    );
    assert!(task.finished_at.is_some());
    assert_eq!(claim(&pool, w1, &["webhook"], LONG).await, vec![], "failed for good");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_lease_that_expires_on_the_last_attempt_fails_the_task(pool: PgPool) {
    let (w1, w2) = (worker(&pool).await, worker(&pool).await);
    let id = enqueue(&pool, NewTask::new("compact", "table-1").max_attempts(1)).await.task.id;
    let stale = claim(&pool, w1, &["compact"], ms(200)).await.remove(0);
    sleep_past(&pool, stale.lease_expires_at).await;

    assert_eq!(claim(&pool, w2, &["compact"], LONG).await, vec![], "no attempt left");
    let task = get(&pool, id).await;
    assert_eq!((task.state, task.attempts, task.worker_id), (TaskState::Failed, 1, None));
    assert_eq!(task.last_error.as_deref(), Some("the lease of attempt 1 of 1 expired before its worker finished"));
    assert_fenced(complete(&pool, &stale).await, &stale);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_tasks_of_a_forgotten_worker_are_free_at_once(pool: PgPool) {
    let (w1, w2) = (worker(&pool).await, worker(&pool).await);
    let id = enqueue(&pool, NewTask::new("compact", "table-1")).await.task.id;
    let gone = claim(&pool, w1, &["compact"], LONG).await.remove(0);
    lease::deregister(&pool, w1).await.unwrap();
    assert_eq!(get(&pool, id).await.worker_id, None);

    let taken = claim(&pool, w2, &["compact"], LONG).await;
    assert_eq!(taken.iter().map(|l| (l.task_id, l.attempt)).collect::<Vec<_>>(), vec![(id, 2)]);
    assert!(taken[0].epoch > gone.epoch);
    assert_fenced(complete(&pool, &gone).await, &gone);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_tenant_sees_and_enqueues_only_its_own_tasks(pool: PgPool) {
    let (a, b) = (tenant(&pool).await, tenant(&pool).await);
    let of_a = enqueue(&pool, NewTask::new("replay", "a-1").tenant(a)).await.task.id;
    let of_b = enqueue(&pool, NewTask::new("replay", "b-1").tenant(b)).await.task.id;
    let system = enqueue(&pool, NewTask::new("expire", "everything")).await.task.id;

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('icehouse.tenant_id', $1, true)")
        .bind(a.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(tasks::get(&mut tx, of_a).await.unwrap().is_some());
    assert_eq!(tasks::get(&mut tx, of_b).await.unwrap(), None, "another tenant's task is invisible");
    assert_eq!(tasks::get(&mut tx, system).await.unwrap(), None, "a system-wide task is invisible");
    let own = tasks::enqueue(&mut tx, &NewTask::new("replay", "a-2").tenant(a)).await.unwrap();
    assert_eq!((own.created, own.task.tenant_id), (true, Some(a)));
    for refused in [NewTask::new("replay", "b-2").tenant(b), NewTask::new("expire", "a-wide")] {
        let mut sp = sqlx::Connection::begin(&mut *tx).await.unwrap();
        let err = tasks::enqueue(&mut sp, &refused).await.unwrap_err();
        let code = err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "row-level security refuses {refused:?}: {err}");
        sp.rollback().await.unwrap();
    }
    tx.commit().await.unwrap();

    let w = worker(&pool).await;
    let claimed: HashSet<Uuid> = claim(&pool, w, &["replay", "expire"], LONG).await.iter().map(|l| l.task_id).collect();
    assert_eq!(claimed, HashSet::from([of_a, of_b, system, own.task.id]), "workers run every tenant's tasks");
}

#[sqlx::test(migrations = "../migrations")]
async fn tenants_tasks_on_the_same_subject_neither_merge_nor_wait_for_each_other(pool: PgPool) {
    let (a, b) = (tenant(&pool).await, tenant(&pool).await);
    let of_a = enqueue(&pool, NewTask::new("compact", "sales.events").tenant(a)).await;
    let of_b = enqueue(&pool, NewTask::new("compact", "sales.events").tenant(b)).await;
    assert!(of_a.created && of_b.created, "the same table name in two tenants is two tasks");
    assert_eq!(of_b.task.tenant_id, Some(b));
    let system = enqueue(&pool, NewTask::new("compact", "sales.events")).await;
    assert!(system.created, "a system-wide task is neither tenant's");
    assert!(
        !enqueue(&pool, NewTask::new("compact", "sales.events").tenant(a)).await.created,
        "but within a tenant it joins"
    );

    let w = worker(&pool).await;
    let first = claim(&pool, w, &["compact"], LONG).await;
    assert_eq!(first.len(), 3, "a's running task holds back neither b's nor the system's");
    // A new request of a's waits for a's run; b's does not wait for it.
    let again_a = enqueue(&pool, NewTask::new("compact", "sales.events").tenant(a)).await.task.id;
    let b_lease = first.iter().find(|l| l.task_id == of_b.task.id).unwrap();
    let mut tx = coord::begin_system(&pool).await.unwrap();
    tasks::complete(&mut tx, b_lease).await.unwrap();
    tx.commit().await.unwrap();
    let again_b = enqueue(&pool, NewTask::new("compact", "sales.events").tenant(b)).await.task.id;
    let next: Vec<Uuid> = claim(&pool, w, &["compact"], LONG).await.iter().map(|l| l.task_id).collect();
    assert_eq!(next, vec![again_b], "a's second request waits for a's run, b's goes ahead ({again_a} waits)");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_task_due_now_wakes_the_listening_workers(pool: PgPool) {
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen("icehouse_work").await.unwrap();
    let later = db_now(&pool).await + chrono::Duration::hours(1);
    enqueue(&pool, NewTask::new("compact", "table-1").run_at(later)).await;
    assert!(
        tokio::time::timeout(ms(300), listener.recv()).await.is_err(),
        "a task due later wakes nobody (the next claim finds it)"
    );
    enqueue(&pool, NewTask::new("compact", "table-2")).await;
    let note = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await.expect("woken").unwrap();
    assert_eq!(note.channel(), "icehouse_work");
    // Joining the later task moves it to now: due, so the workers hear of it too.
    enqueue(&pool, NewTask::new("compact", "table-1")).await;
    tokio::time::timeout(Duration::from_secs(5), listener.recv()).await.expect("woken again").unwrap();
}
