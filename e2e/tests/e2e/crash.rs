//! Exactly once when things go wrong: a fleet of two `icehouse-worker`
//! processes, the holder of partition 0 killed with SIGKILL again and again,
//! or frozen past its lease while the other takes over (the pipeline is
//! sliced over both workers; every kill or freeze also re-cuts it).

use std::time::{Duration, Instant};

use crate::common::*;
use icehouse_e2e::{lease_holder, Api, Broker, Server, TestDb, Worker};

struct Fleet {
    broker: Broker,
    db: TestDb,
    _server: Server,
    api: Api,
    workers: Vec<Worker>,
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
    let workers = vec![Worker::start(&env).unwrap(), Worker::start(&env).unwrap()];
    let api = Api::signup(&server.base_url).await.unwrap();
    let warehouse = std::env::temp_dir().join(format!("icehouse-e2e-wh-{}", uuid::Uuid::new_v4().simple()));
    let (pipeline, catalog, warehouse_uri) = create_pipeline(&api, &broker, &warehouse).await;
    Fleet { broker, db, _server: server, api, workers, pipeline, catalog, warehouse_uri }
}

impl Fleet {
    /// The worker holding the lease now, waiting for one to hold it.
    async fn holder(&self) -> (usize, i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((pid, epoch)) = lease_holder(&self.db.url, &self.pipeline).await.unwrap() {
                if let Some(i) = self.workers.iter().position(|w| w.pid() == pid) {
                    return (i, epoch);
                }
            }
            assert!(Instant::now() < deadline, "no worker took the pipeline");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn committed(&self) -> i64 {
        let s = self.api.get(&format!("/api/v1/pipelines/{}/status", self.pipeline)).await.unwrap();
        s["rows_committed"].as_i64().unwrap() + s["dead_letter_rows"].as_i64().unwrap()
    }
}

#[tokio::test]
async fn killing_the_lease_holder_five_times_loses_and_duplicates_nothing() {
    let n = message_count();
    let mut f = fleet().await;
    let addr = f.broker.addr.clone();
    // Messages keep arriving while workers die.
    let producer = tokio::spawn(async move {
        for chunk in 0..10 {
            produce(&addr, "sales", chunk * n / 10..(chunk + 1) * n / 10).await;
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    });

    let mut last_epoch = 0;
    for kill in 0..5 {
        // Let the current holder commit something first, then kill it mid-stream.
        let before = f.committed().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while f.committed().await == before && (kill * n / 5) as i64 > before {
            assert!(Instant::now() < deadline, "no progress before kill {kill}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (i, epoch) = f.holder().await;
        assert!(epoch > last_epoch, "every claim has a new epoch");
        last_epoch = epoch;
        f.workers[i].kill9_and_restart().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    producer.await.unwrap();
    if let Err(e) = try_wait_for_total(&f.api, &f.pipeline, n, Duration::from_secs(180)).await {
        panic!("{e}\n{}", explain_table(&f.db.url, &f.catalog, &f.warehouse_uri, n));
    }
    let (_, epoch) = f.holder().await;
    assert!(epoch >= 6, "five take-overs happened (epoch {epoch})");
    assert_tables_exact(&f.db.url, &f.catalog, &f.warehouse_uri, n);
    drop(f.workers);
    f.db.drop_now().await.unwrap();
}

#[tokio::test]
async fn a_frozen_worker_cannot_commit_after_another_took_its_lease() {
    let n = message_count().min(60_000);
    let f = fleet().await;
    produce(&f.broker.addr, "sales", 0..n / 3).await;
    wait_for_total(&f.api, &f.pipeline, n / 3, Duration::from_secs(120)).await;

    // Freeze the holder past its lease, with fresh messages in its consumer.
    let (frozen, epoch) = f.holder().await;
    produce(&f.broker.addr, "sales", n / 3..2 * n / 3).await;
    f.workers[frozen].signal("STOP");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (_taker, new_epoch) = loop {
        let (i, e) = f.holder().await;
        if i != frozen {
            break (i, e);
        }
        assert!(Instant::now() < deadline, "nobody took over the frozen worker's lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(new_epoch > epoch);
    wait_for_total(&f.api, &f.pipeline, 2 * n / 3, Duration::from_secs(120)).await;

    // Wake it: whatever it was about to commit is refused by the epoch check.
    f.workers[frozen].signal("CONT");
    produce(&f.broker.addr, "sales", 2 * n / 3..n).await;
    wait_for_total(&f.api, &f.pipeline, n, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // room for a late, refused commit
    assert_eq!(f.committed().await, n as i64, "a late commit added rows");
    // Its claim never came back: whoever holds partition 0 now (the taker, or
    // the woken worker after the pipeline was re-cut for it) has a newer one.
    let (_, now_epoch) = f.holder().await;
    assert!(now_epoch >= new_epoch, "the frozen worker's stale claim (epoch {epoch}) is in force again");
    assert_tables_exact(&f.db.url, &f.catalog, &f.warehouse_uri, n);
    f.db.drop_now().await.unwrap();
}

async fn wait_for_state(api: &Api, pipeline: &str, state: &str, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let s = api.get(&format!("/api/v1/pipelines/{pipeline}/status")).await.unwrap();
        if s["state"] == state {
            return s;
        }
        assert!(Instant::now() < deadline, "pipeline never became {state}: {s}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The broker frozen for 20 s, then killed and restarted on its durable
/// storage: the pipeline says `failing` with the reason, recovers by itself,
/// and the tables are exactly right.
#[tokio::test]
async fn a_frozen_then_restarted_broker_makes_the_pipeline_fail_and_recover() {
    let n = message_count().min(30_000);
    let dir = std::env::temp_dir().join(format!("icehouse-e2e-tansu-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = icehouse_e2e::free_port();
    let mut broker = Broker::start_durable(port, &dir).await.unwrap();
    broker.create_topic("sales", PARTITIONS).await.unwrap();
    let db = TestDb::create("icehouse_e2e").await.unwrap();
    let mut env = fleet_env(&db.url);
    env.push(("ICEHOUSE__WORKER__IN_PROCESS".into(), "true".into()));
    let server = Server::start("serve", &env, &std::env::temp_dir()).unwrap();
    let api = Api::signup(&server.base_url).await.unwrap();
    let warehouse = std::env::temp_dir().join(format!("icehouse-e2e-wh-{}", uuid::Uuid::new_v4().simple()));
    let (pipeline, catalog, warehouse_uri) = create_pipeline(&api, &broker, &warehouse).await;

    produce(&broker.addr, "sales", 0..n / 3).await;
    wait_for_total(&api, &pipeline, n / 3, Duration::from_secs(120)).await;
    wait_for_state(&api, &pipeline, "running", Duration::from_secs(30)).await;

    // Frozen: requests time out, the pipeline says so, and comes back by itself.
    broker.signal("STOP");
    let failing = wait_for_state(&api, &pipeline, "failing", Duration::from_secs(40)).await;
    assert!(failing["last_error"].as_str().unwrap().starts_with("Kafka: "), "{failing}");
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(Duration::from_secs(0))).await;
    broker.signal("CONT");
    produce(&broker.addr, "sales", n / 3..2 * n / 3).await;
    wait_for_total(&api, &pipeline, 2 * n / 3, Duration::from_secs(120)).await;
    wait_for_state(&api, &pipeline, "running", Duration::from_secs(30)).await;

    // Killed and restarted on the same storage: the same again.
    broker.child.kill().unwrap();
    broker.child.wait().unwrap();
    let failing = wait_for_state(&api, &pipeline, "failing", Duration::from_secs(40)).await;
    assert!(failing["last_error"].as_str().unwrap().contains("Kafka"), "{failing}");
    broker = Broker::start_durable(port, &dir).await.unwrap();
    produce(&broker.addr, "sales", 2 * n / 3..n).await;
    wait_for_total(&api, &pipeline, n, Duration::from_secs(120)).await;
    wait_for_state(&api, &pipeline, "running", Duration::from_secs(30)).await;

    assert_tables_exact(&db.url, &catalog, &warehouse_uri, n);
    drop(server);
    drop(broker);
    db.drop_now().await.unwrap();
}
