//! Exactly-once ingestion against the real stack: a tansu broker, Postgres,
//! the `icehouse` process with its in-process worker, and the tables read
//! back by PyIceberg and DuckDB.

use std::time::{Duration, Instant};

use crate::common::*;
use icehouse_e2e::{test_env, Api, Broker, Server, TestDb};

#[tokio::test]
async fn every_message_lands_once_in_the_table_or_the_dead_letter_table() {
    let n = message_count();
    let broker = Broker::start().await.unwrap();
    broker.create_topic("sales", PARTITIONS).await.unwrap();
    produce(&broker.addr, "sales", 0..n).await;

    let db = TestDb::create("icehouse_e2e").await.unwrap();
    let warehouse = std::env::temp_dir().join(format!("icehouse-e2e-wh-{}", uuid::Uuid::new_v4().simple()));
    let mut env = test_env(&db.url);
    env.push(("ICEHOUSE__WORKER__IN_PROCESS".into(), "true".into()));
    env.push(("ICEHOUSE__WORKER__MAX_MESSAGE_BYTES".into(), MAX_MESSAGE_BYTES.to_string()));
    let server = Server::start("serve", &env, &std::env::temp_dir()).unwrap();
    let api = Api::signup(&server.base_url).await.unwrap();
    let (pid, catalog, warehouse_uri) = create_pipeline(&api, &broker, &warehouse).await;

    let started = Instant::now();
    let status = wait_for_total(&api, &pid, n, Duration::from_secs(300)).await;
    eprintln!("{n} messages committed in {:?}", started.elapsed());

    // Exactly the good ones, and exactly the bad ones, by the counters…
    let bad = (0..n).filter(|i| message(*i).1.is_some()).count();
    assert_eq!(status["rows_committed"], (n - bad) as i64, "{status}");
    assert_eq!(status["dead_letter_rows"], bad as i64, "{status}");
    assert_eq!(status["state"], "running", "{status}");
    for part in status["partitions"].as_array().unwrap() {
        let p = part["partition"].as_i64().unwrap() as usize;
        let count = (0..n).filter(|i| i % PARTITIONS as usize == p).count() as i64;
        assert_eq!(part["committed_offset"], count, "{status}");
    }
    // …and by what independent readers find in the tables.
    assert_tables_exact(&db.url, &catalog, &warehouse_uri, n);

    // The tables endpoint shows both tables with their row counts.
    assert_eq!(
        table_counts(&api).await,
        vec![("sales".to_string(), (n - bad) as i64), ("sales_dead_letter".to_string(), bad as i64)]
    );
    let detail = api.get("/api/v1/tables/default/sales").await.unwrap();
    assert_eq!(detail["partition_spec"]["fields"][0]["name"], "sold_at_day", "{detail}");
    let last = detail["snapshots"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["operation"], "append");
    assert_eq!(last["summary"]["icehouse.pipeline-id"], pid.as_str());

    drop(server);
    db.drop_now().await.unwrap();
}
