//! The connection test against a real Kafka-protocol broker (tansu) and
//! against a port where nothing listens.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

/// A tansu broker on a free loopback port, killed on drop.
struct Broker {
    child: Child,
    addr: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn tansu_binary() -> std::path::PathBuf {
    let from_cache = std::env::var_os("ICEHOUSE_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/icehouse")))
        .map(|d| d.join("tools/bin/tansu"));
    if let Some(p) = from_cache.filter(|p| p.exists()) {
        return p;
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("tansu")).find(|p| p.exists()))
        .expect("the tansu broker is not installed: run scripts/test.sh, which installs it")
}

async fn start_broker() -> Broker {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("tcp://{addr}");
    let child = Command::new(tansu_binary())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting tansu");
    let broker = Broker { child, addr };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(&broker.addr).await.is_err() {
        assert!(Instant::now() < deadline, "tansu did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broker
}

async fn create_topic(addr: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", addr).create().expect("admin client");
    let results = admin
        .create_topics(&[NewTopic::new(name, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn connection_test_lists_brokers_and_topics_of_a_real_broker(pool: PgPool) {
    let broker = start_broker().await;
    create_topic(&broker.addr, "orders", 3).await;
    create_topic(&broker.addr, "payments.v1", 1).await;

    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let c = app.post("/api/v1/connections", &t, json!({"name": "local", "bootstrap_servers": [broker.addr]})).await;
    let cid = c.body["id"].as_str().unwrap();

    let r = app.post(&format!("/api/v1/connections/{cid}/test"), &t, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "ok", "{}", r.text);
    let port: i64 = broker.addr.rsplit(':').next().unwrap().parse().unwrap();
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
