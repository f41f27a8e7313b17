//! What a tenant's broker says is not trusted: a topic with more partitions
//! than a pipeline reads is refused with a clear error (a hostile broker
//! could otherwise have the scheduler plan a million slices).

use std::time::{Duration, Instant};

use crate::common::*;
use icehouse_e2e::{test_env, Api, Broker, Server, TestDb};

#[tokio::test]
async fn a_topic_with_too_many_partitions_fails_the_pipeline_clearly() {
    let broker = Broker::start_memory().await.unwrap();
    broker.create_topic("sales", 12).await.unwrap();
    produce(&broker.addr, "sales", 0..100).await;
    let db = TestDb::create("icehouse_e2e").await.unwrap();
    let warehouse = std::env::temp_dir().join(format!("icehouse-e2e-wh-{}", uuid::Uuid::new_v4().simple()));
    let mut env = test_env(&db.url);
    env.push(("ICEHOUSE__WORKER__IN_PROCESS".into(), "true".into()));
    env.push(("ICEHOUSE__WORKER__MAX_TOPIC_PARTITIONS".into(), "8".into()));
    let server = Server::start("serve", &env, &std::env::temp_dir()).unwrap();
    let api = Api::signup(&server.base_url).await.unwrap();
    let (pid, _, _) = create_pipeline(&api, &broker, &warehouse).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = api.get(&format!("/api/v1/pipelines/{pid}/status")).await.unwrap();
        if status["state"] == "failing" {
            break status;
        }
        assert!(Instant::now() < deadline, "the pipeline did not fail: {status}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("has 12 partitions, more than the 8 a pipeline reads"), "{status}");
    // Nothing was read: no partition got an offset, no row was committed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = api.get(&format!("/api/v1/pipelines/{pid}/status")).await.unwrap();
    assert_eq!(status["partitions"], serde_json::json!([]), "{status}");
    assert_eq!((status["rows_committed"].as_i64(), status["state"].as_str()), (Some(0), Some("failing")), "{status}");

    drop(server);
    db.drop_now().await.unwrap();
}
