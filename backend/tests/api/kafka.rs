//! The connection test against a real Kafka-protocol broker (tansu) and
//! against a port where nothing listens.

use std::time::{Duration, Instant};

use icehouse_e2e::{free_port, Broker};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrations = "../migrations")]
async fn connection_test_lists_brokers_and_topics_of_a_real_broker(pool: PgPool) {
    let broker = Broker::start_memory().await.unwrap();
    broker.create_topic("orders", 3).await.unwrap();
    broker.create_topic("payments.v1", 1).await.unwrap();

    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let c = app.post("/api/v1/connections", &t, json!({"name": "local", "bootstrap_servers": [broker.addr]})).await;
    let cid = c.body["id"].as_str().unwrap();

    let r = app.post(&format!("/api/v1/connections/{cid}/test"), &t, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "ok", "{}", r.text);
    let port = i64::from(broker.port());
    let brokers = r.body["brokers"].as_array().unwrap();
    assert_eq!(brokers.len(), 1, "{}", r.text);
    assert_eq!(brokers[0]["host"], "127.0.0.1");
    assert_eq!(brokers[0]["port"], port);
    let topics = r.body["topics"].as_array().unwrap();
    assert!(topics.contains(&json!({"name": "orders", "partitions": 3})), "{}", r.text);
    assert!(topics.contains(&json!({"name": "payments.v1", "partitions": 1})), "{}", r.text);

    let listed = app.get(&format!("/api/v1/connections/{cid}/topics"), &t).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert!(listed.body["topics"].as_array().unwrap().contains(&json!({"name": "orders", "partitions": 3})));
}

#[sqlx::test(migrations = "../migrations")]
async fn connection_test_reports_an_unreachable_cluster_within_the_timeout(pool: PgPool) {
    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let closed = format!("127.0.0.1:{}", free_port());
    let c = app.post("/api/v1/connections", &t, json!({"name": "nowhere", "bootstrap_servers": [closed]})).await;
    let cid = c.body["id"].as_str().unwrap();

    let started = Instant::now();
    let r = app.post(&format!("/api/v1/connections/{cid}/test"), &t, json!({})).await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "failed", "{}", r.text);
    assert_eq!(r.body["failure"]["kind"], "unreachable", "{}", r.text);
    let message = r.body["failure"]["message"].as_str().unwrap();
    assert!(message.contains(&closed), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
    // The configured timeout is 4 s; a refused connection is known long before.
    assert!(took < Duration::from_secs(4), "took {took:?}");

    let listed = app.get(&format!("/api/v1/connections/{cid}/topics"), &t).await;
    listed.assert_problem(502, None);
    assert_eq!(listed.body["kind"], "unreachable");
}
