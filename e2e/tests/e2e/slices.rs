//! One pipeline over several `icehouse-worker` processes: the scheduler cuts
//! a 4-partition topic into slices for the live workers, every slice commits
//! to the same tables on its own, and when a worker joins or is killed the
//! pipeline is re-cut; the tables stay exact throughout.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::common::*;
use icehouse_e2e::{slices, Api, Broker, Server, SliceLease, TestDb, Worker};

struct Fleet {
    broker: Broker,
    db: TestDb,
    _server: Server,
    api: Api,
    env: Vec<(String, String)>,
    pipeline: String,
    catalog: String,
    warehouse_uri: String,
}

async fn fleet() -> Fleet {
    let broker = Broker::start().await.unwrap();
    broker.create_topic("sales", PARTITIONS).await.unwrap();
    let db = TestDb::create("icehouse_e2e").await.unwrap();
    let env = fleet_env(&db.url);
    let server = Server::start("serve", &env, &std::env::temp_dir()).unwrap();
    let api = Api::signup(&server.base_url).await.unwrap();
    let warehouse = std::env::temp_dir().join(format!("icehouse-e2e-wh-{}", uuid::Uuid::new_v4().simple()));
    let (pipeline, catalog, warehouse_uri) = create_pipeline(&api, &broker, &warehouse).await;
    Fleet { broker, db, _server: server, api, env, pipeline, catalog, warehouse_uri }
}

impl Fleet {
    /// Waits until the lease rows cut the pipeline into exactly `want`, every
    /// slice held by a different one of `workers`; returns the slices.
    async fn wait_for_slicing(&self, workers: &[&Worker], want: &[&[i32]]) -> Vec<SliceLease> {
        let want: Vec<Option<Vec<i32>>> = want.iter().map(|p| Some(p.to_vec())).collect();
        let pids: BTreeSet<u32> = workers.iter().map(|w| w.pid()).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = slices(&self.db.url, &self.pipeline).await.unwrap();
            let cut: Vec<Option<Vec<i32>>> = now.iter().map(|s| s.partitions.clone()).collect();
            let holders: Vec<u32> = now.iter().filter_map(|s| s.holder).collect();
            if cut == want && holders.len() == now.len() && holders.iter().copied().collect::<BTreeSet<_>>() == pids {
                return now;
            }
            assert!(Instant::now() < deadline, "the slices never became {want:?} held by {pids:?}: {now:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn committed(&self) -> i64 {
        let s = self.api.get(&format!("/api/v1/pipelines/{}/status", self.pipeline)).await.unwrap();
        s["rows_committed"].as_i64().unwrap() + s["dead_letter_rows"].as_i64().unwrap()
    }

    async fn wait_for_progress(&self, beyond: i64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.committed().await <= beyond {
            assert!(Instant::now() < deadline, "no commit beyond {beyond}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything is in the tables exactly once: by the status counters and
    /// offsets, by the snapshot history, and by PyIceberg and DuckDB.
    async fn assert_exact(&self, n: usize) {
        let status = wait_for_total(&self.api, &self.pipeline, n, Duration::from_secs(180)).await;
        tokio::time::sleep(Duration::from_secs(3)).await; // room for a late commit that must be refused
        let status_now = self.api.get(&format!("/api/v1/pipelines/{}/status", self.pipeline)).await.unwrap();
        assert_eq!(status_now["rows_committed"], status["rows_committed"], "a late commit added rows");
        let bad = (0..n).filter(|i| message(*i).1.is_some()).count();
        assert_eq!(status_now["rows_committed"], (n - bad) as i64, "{status_now}");
        assert_eq!(status_now["dead_letter_rows"], bad as i64, "{status_now}");
        for part in status_now["partitions"].as_array().unwrap() {
            let p = part["partition"].as_i64().unwrap() as usize;
            let count = (0..n).filter(|i| i % PARTITIONS as usize == p).count() as i64;
            assert_eq!(part["committed_offset"], count, "{status_now}");
        }
        assert_tables_exact(&self.db.url, &self.catalog, &self.warehouse_uri, n);
    }

    /// The epochs of the claims whose commits are in the table's history.
    async fn committing_epochs(&self) -> BTreeSet<i64> {
        let detail = self.api.get("/api/v1/tables/default/sales").await.unwrap();
        detail["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["summary"]["icehouse.epoch"].as_str().unwrap().parse().unwrap())
            .collect()
    }
}

#[tokio::test]
async fn two_workers_each_hold_a_slice_and_the_table_is_exact() {
    let n = message_count().min(100_000);
    let f = fleet().await;
    let workers = [Worker::start(&f.env).unwrap(), Worker::start(&f.env).unwrap()];
    produce(&f.broker.addr, "sales", 0..n / 2).await;

    let cut = f.wait_for_slicing(&[&workers[0], &workers[1]], &[&[0, 2], &[1, 3]]).await;
    produce(&f.broker.addr, "sales", n / 2..n).await;
    f.assert_exact(n).await;

    // The same two claims held to the end (nothing re-cut or taken over), and
    // both committed to the one table.
    assert_eq!(slices(&f.db.url, &f.pipeline).await.unwrap(), cut);
    let epochs = f.committing_epochs().await;
    for slice in &cut {
        assert!(epochs.contains(&slice.epoch), "slice {slice:?} never committed; epochs in the table: {epochs:?}");
    }
    drop(workers);
    f.db.drop_now().await.unwrap();
}

#[tokio::test]
async fn a_worker_joining_and_one_killed_rebalance_the_slices_without_loss_or_duplicates() {
    let n = message_count().min(100_000);
    let f = fleet().await;
    let mut workers = vec![Worker::start(&f.env).unwrap(), Worker::start(&f.env).unwrap()];
    // Messages keep arriving while workers come and go.
    let addr = f.broker.addr.clone();
    let producer = tokio::spawn(async move {
        for chunk in 0..20 {
            produce(&addr, "sales", chunk * n / 20..(chunk + 1) * n / 20).await;
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    });

    let two = f.wait_for_slicing(&[&workers[0], &workers[1]], &[&[0, 2], &[1, 3]]).await;
    f.wait_for_progress(f.committed().await).await;

    // A third worker joins mid-ingest: three slices, every claim new.
    workers.push(Worker::start(&f.env).unwrap());
    let three = f.wait_for_slicing(&[&workers[0], &workers[1], &workers[2]], &[&[0, 3], &[1], &[2]]).await;
    let oldest_new = three.iter().map(|s| s.epoch).min().unwrap();
    assert!(two.iter().all(|s| s.epoch < oldest_new), "a re-cut gives every slice a new epoch");
    f.wait_for_progress(f.committed().await).await;

    // One is killed mid-ingest: once it is declared dead, two slices again
    // over the survivors.
    let victim = workers.remove(0);
    victim.signal("KILL");
    let survivors = f.wait_for_slicing(&[&workers[0], &workers[1]], &[&[0, 2], &[1, 3]]).await;
    assert!(survivors.iter().all(|s| three.iter().all(|t| s.epoch > t.epoch)));
    drop(victim);

    producer.await.unwrap();
    f.assert_exact(n).await;
    drop(workers);
    f.db.drop_now().await.unwrap();
}
