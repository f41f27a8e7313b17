//! The slice protocol against Postgres, without Kafka: the scheduler's cut
//! for the live workers, claims spread one per worker, every old holder
//! fenced by a re-cut, the pipeline's state summed up over its slices, and
//! commits of a partition that chain exactly.
//! (e2e/tests/e2e/slices.rs runs the same with real workers and a broker.)

use std::time::Duration;

use icehouse_workers::coord::lease::{self, Lease};
use icehouse_workers::coord::slices::{self, Recut};
use icehouse_workers::coord::SliceState;
use sqlx::PgPool;
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(3600);

/// A running pipeline with its status row and first slice, as the API creates it.
async fn pipeline(pool: &PgPool) -> Uuid {
    let (tenant, connection, destination, pipeline) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut tx = icehouse_workers::coord::begin_system(pool).await.unwrap();
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, 'T')").bind(tenant).execute(&mut *tx).await.unwrap();
    sqlx::query(
        "INSERT INTO connections (id, tenant_id, name, bootstrap_servers, security_protocol)
         VALUES ($1, $2, 'c', ARRAY['127.0.0.1:1'], 'PLAINTEXT')",
    )
    .bind(connection)
    .bind(tenant)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO destinations (id, tenant_id, name, warehouse_uri, default_namespace)
         VALUES ($1, $2, 'd', 'file:///tmp/nowhere', 'default')",
    )
    .bind(destination)
    .bind(tenant)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO pipelines (id, tenant_id, name, connection_id, topic, destination_id, namespace, table_name,
                                format, mapping, start_position, flush_interval_ms, desired_state)
         VALUES ($1, $2, 'p', $3, 't', $4, 'default', 't', 'json', '{\"columns\": []}', 'earliest', 1000, 'running')",
    )
    .bind(pipeline)
    .bind(tenant)
    .bind(connection)
    .bind(destination)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO pipeline_leases (pipeline_id, tenant_id) VALUES ($1, $2)")
        .bind(pipeline)
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .unwrap();
    slices::insert_initial(&mut tx, pipeline, tenant, false).await.unwrap();
    tx.commit().await.unwrap();
    pipeline
}

async fn worker(pool: &PgPool) -> Uuid {
    let id = Uuid::now_v7();
    lease::register(pool, id).await.unwrap();
    id
}

async fn claim(pool: &PgPool, worker: Uuid) -> Vec<Lease> {
    lease::claim(pool, worker, TTL, GRACE, 10).await.unwrap()
}

async fn holds(pool: &PgPool, lease: &Lease) -> bool {
    let mut tx = icehouse_workers::coord::begin_system(pool).await.unwrap();
    let held = lease::check_epoch(&mut tx, lease).await.unwrap();
    tx.rollback().await.unwrap();
    held
}

async fn status(pool: &PgPool, pipeline: Uuid) -> (String, Option<String>) {
    let mut tx = icehouse_workers::coord::begin_system(pool).await.unwrap();
    let row = sqlx::query_as("SELECT state, last_error FROM pipeline_leases WHERE pipeline_id = $1")
        .bind(pipeline)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    row
}

fn parts(slices: &[&[i32]]) -> Vec<Option<Vec<i32>>> {
    slices.iter().map(|s| Some(s.to_vec())).collect()
}

/// Claims one slice for each worker, in order, and checks each got one of its own.
async fn claim_one_each(pool: &PgPool, workers: &[Uuid]) -> Vec<Lease> {
    let mut leases = Vec::new();
    for w in workers {
        let got = claim(pool, *w).await;
        assert_eq!(got.len(), 1, "worker {w} claims exactly one slice of the pipeline: {got:?}");
        leases.extend(got);
    }
    let mut slices: Vec<i32> = leases.iter().map(|l| l.slice).collect();
    slices.sort_unstable();
    slices.dedup();
    assert_eq!(slices.len(), workers.len(), "each worker holds a different slice");
    leases
}

#[sqlx::test(migrations = "../migrations")]
async fn slices_follow_the_workers_and_partitions_and_every_recut_fences_the_old_holders(pool: PgPool) {
    let p = pipeline(&pool).await;
    let (w1, w2) = (worker(&pool).await, worker(&pool).await);

    // Partition count unknown: one slice of everything, which one worker takes.
    assert_eq!(slices::rebalance(&pool).await.unwrap(), vec![]);
    let first = claim(&pool, w1).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].partitions, None);
    assert_eq!(claim(&pool, w2).await, vec![], "nothing left to claim");
    assert!(holds(&pool, &first[0]).await);

    // The worker saw 4 partitions: two slices, dealt round-robin.
    assert!(slices::report_partition_count(&pool, p, 4).await.unwrap());
    let two = parts(&[&[0, 2], &[1, 3]]);
    assert_eq!(slices::rebalance(&pool).await.unwrap(), vec![Recut { pipeline_id: p, slices: two.clone() }]);
    assert_eq!(slices::rebalance(&pool).await.unwrap(), vec![], "a stable plan changes nothing");
    assert!(!holds(&pool, &first[0]).await, "the re-cut fenced the holder of the old slice");
    assert_eq!(lease::heartbeat(&pool, w1, TTL).await.unwrap(), Some(vec![]), "and its heartbeat says so");
    let gen2 = claim_one_each(&pool, &[w1, w2]).await;
    for l in &gen2 {
        assert!(l.epoch > first[0].epoch, "epochs only grow");
        assert!(holds(&pool, l).await);
    }
    assert_eq!(claim(&pool, w1).await, vec![]);

    // A third worker joins: three slices, every old holder fenced.
    let w3 = worker(&pool).await;
    let three = parts(&[&[0, 3], &[1], &[2]]);
    assert_eq!(slices::rebalance(&pool).await.unwrap(), vec![Recut { pipeline_id: p, slices: three }]);
    for l in &gen2 {
        assert!(!holds(&pool, l).await);
    }
    let gen3 = claim_one_each(&pool, &[w1, w2, w3]).await;

    // w2 stops heartbeating and is declared dead: its slice is free at once,
    // and the pipeline is cut for the two that are left.
    let mut tx = icehouse_workers::coord::begin_system(&pool).await.unwrap();
    sqlx::query("UPDATE workers SET heartbeat_at = now() - interval '1 hour' WHERE id = $1")
        .bind(w2)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(lease::reap_dead_workers(&pool, Duration::from_secs(60)).await.unwrap(), 1);
    let of_w2 = gen3.iter().find(|l| l.worker_id == w2).unwrap();
    assert!(!holds(&pool, of_w2).await, "a dead worker cannot commit");
    assert_eq!(lease::heartbeat(&pool, w2, TTL).await.unwrap(), None, "a dead worker learns it is dead");
    assert_eq!(slices::rebalance(&pool).await.unwrap(), vec![Recut { pipeline_id: p, slices: two.clone() }]);
    let gen4 = claim_one_each(&pool, &[w1, w3]).await;

    // The topic grows to 6 partitions: re-cut over them; a stale smaller count is ignored.
    assert!(!slices::report_partition_count(&pool, p, 3).await.unwrap());
    assert!(slices::report_partition_count(&pool, p, 6).await.unwrap());
    let six = parts(&[&[0, 2, 4], &[1, 3, 5]]);
    assert_eq!(slices::rebalance(&pool).await.unwrap(), vec![Recut { pipeline_id: p, slices: six }]);
    assert!(!holds(&pool, &gen4[0]).await && !holds(&pool, &gen4[1]).await);

    // One worker left: one slice of everything again.
    lease::deregister(&pool, w3).await.unwrap();
    assert_eq!(slices::rebalance(&pool).await.unwrap(), vec![Recut { pipeline_id: p, slices: vec![None] }]);
    let last = claim(&pool, w1).await;
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].partitions, None);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_worker_takes_a_second_slice_of_a_pipeline_only_after_the_grace_time(pool: PgPool) {
    let p = pipeline(&pool).await;
    let (w1, w2) = (worker(&pool).await, worker(&pool).await);
    slices::report_partition_count(&pool, p, 4).await.unwrap();
    slices::rebalance(&pool).await.unwrap();
    let mine = claim(&pool, w1).await;
    assert_eq!(mine.len(), 1);
    // w2 is registered but never claims (full, or stuck): after the grace
    // time, w1 takes its slice too rather than leave partitions idle.
    assert_eq!(claim(&pool, w1).await, vec![]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = lease::claim(&pool, w1, TTL, Duration::from_millis(10), 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].slice, mine[0].slice);
    assert_eq!(claim(&pool, w2).await, vec![]);
}

#[sqlx::test(migrations = "../migrations")]
async fn the_pipeline_state_sums_up_its_slices(pool: PgPool) {
    let p = pipeline(&pool).await;
    let (w1, w2) = (worker(&pool).await, worker(&pool).await);
    slices::report_partition_count(&pool, p, 2).await.unwrap();
    slices::rebalance(&pool).await.unwrap();
    let leases = claim_one_each(&pool, &[w1, w2]).await;
    let (a, b) = (&leases[0], &leases[1]);
    assert_eq!(status(&pool, p).await.0, "starting");

    lease::set_state(&pool, a, SliceState::Running).await.unwrap();
    assert_eq!(status(&pool, p).await.0, "starting", "one slice still starts");
    lease::set_state(&pool, b, SliceState::Running).await.unwrap();
    assert_eq!(status(&pool, p).await.0, "running");

    lease::set_failing(&pool, b, "Kafka: broker down").await.unwrap();
    assert_eq!(status(&pool, p).await, ("failing".into(), Some("Kafka: broker down".into())));
    lease::set_state(&pool, b, SliceState::Running).await.unwrap();
    assert_eq!(status(&pool, p).await, ("running".into(), Some("Kafka: broker down".into())), "the last error stays");

    // A failing pipeline that is re-cut stays failing until all its slices run.
    lease::set_failing(&pool, a, "decoder exploded").await.unwrap();
    let w3 = worker(&pool).await;
    slices::report_partition_count(&pool, p, 3).await.unwrap();
    assert_eq!(slices::rebalance(&pool).await.unwrap().len(), 1);
    assert_eq!(status(&pool, p).await.0, "failing");
    // A fenced holder changes nothing any more.
    lease::set_state(&pool, a, SliceState::Running).await.unwrap();
    lease::set_failing(&pool, b, "late news").await.unwrap();
    assert_eq!(status(&pool, p).await, ("failing".into(), Some("decoder exploded".into())));
    let leases = claim_one_each(&pool, &[w1, w2, w3]).await;
    for (i, l) in leases.iter().enumerate() {
        assert_eq!(status(&pool, p).await.0, "failing", "{i} of 3 slices run");
        lease::set_state(&pool, l, SliceState::Running).await.unwrap();
    }
    assert_eq!(status(&pool, p).await.0, "running");

    // Paused: every slice given back as paused.
    for l in &leases {
        lease::release(&pool, l, SliceState::Paused).await.unwrap();
    }
    assert_eq!(status(&pool, p).await.0, "paused");
}

/// A commit moves a partition's offset only from where its batch began: a
/// batch that repeats committed messages, or one that starts past offsets
/// no commit holds, is refused even with the right epoch, and changes nothing.
#[sqlx::test(migrations = "../migrations")]
async fn commits_of_a_partition_chain_exactly(pool: PgPool) {
    use icehouse_workers::coord::offsets::{self, OffsetMove};
    use std::collections::BTreeMap;
    let p = pipeline(&pool).await;
    let w = worker(&pool).await;
    let lease = claim(&pool, w).await.pop().expect("a slice");
    let mut tx = icehouse_workers::coord::begin_system(&pool).await.unwrap();
    assert_eq!(offsets::resolve_start(&mut tx, p, lease.tenant_id, 0, 100).await.unwrap(), 100);
    tx.commit().await.unwrap();

    let commit = |from: i64, next: i64| {
        let (pool, lease) = (pool.clone(), lease.clone());
        async move {
            let mut tx = icehouse_workers::coord::begin_system(&pool).await.unwrap();
            assert!(lease::check_epoch(&mut tx, &lease).await.unwrap());
            let moves = BTreeMap::from([(0, OffsetMove { from, next })]);
            let done = offsets::record_commit(&mut tx, &lease, &moves, (next - from) as u64, 0).await.unwrap();
            match done {
                Ok(()) => tx.commit().await.unwrap(),
                Err(_) => tx.rollback().await.unwrap(),
            }
            done.map_err(|moved| (moved.partition, moved.from, moved.stored))
        }
    };
    assert_eq!(commit(100, 150).await, Ok(()));
    assert_eq!(commit(100, 150).await, Err((0, 100, Some(150))), "the same messages again");
    assert_eq!(commit(160, 200).await, Err((0, 160, Some(150))), "past 150..160, which nothing holds");
    assert_eq!(commit(150, 200).await, Ok(()));
    let mut tx = icehouse_workers::coord::begin_system(&pool).await.unwrap();
    assert_eq!(offsets::stored(&mut tx, p).await.unwrap().get(&0), Some(&200));
    let (rows,): (i64,) = sqlx::query_as("SELECT rows_committed FROM pipeline_leases WHERE pipeline_id = $1")
        .bind(p)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(rows, 100, "only the two chained commits counted");
    tx.commit().await.unwrap();
    let unseeded = BTreeMap::from([(1, OffsetMove { from: 0, next: 5 })]);
    let mut tx = icehouse_workers::coord::begin_system(&pool).await.unwrap();
    let refused = offsets::record_commit(&mut tx, &lease, &unseeded, 5, 0).await.unwrap().unwrap_err();
    assert_eq!((refused.partition, refused.stored), (1, None), "a partition with no stored offset");
}
