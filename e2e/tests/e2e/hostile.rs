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

/// Slowloris: 500 connections that each send one header byte a second (or
/// nothing) neither stop other clients nor stay open past the header timeout.
#[tokio::test]
async fn slow_clients_are_cut_off_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let db = TestDb::create("icehouse_e2e").await.unwrap();
    let mut env = test_env(&db.url);
    env.push(("ICEHOUSE__HTTP__HEADER_READ_TIMEOUT_SECS".into(), "3".into()));
    let server = Server::start("serve", &env, &std::env::temp_dir()).unwrap();
    let addr = server.base_url.trim_start_matches("http://").to_string();

    let started = Instant::now();
    let mut slow = Vec::new();
    for n in 0..500 {
        let addr = addr.clone();
        slow.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let (mut reader, mut writer) = stream.into_split();
            // Most trickle a request; one in ten sends nothing at all, and
            // one in ten only `P` (the start of an HTTP/2 preface).
            let opening: &'static [u8] = match n % 10 {
                0 => b"",
                1 => b"P",
                _ => b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
            };
            let trickle = async move {
                for byte in opening.iter().cycle() {
                    if writer.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                std::future::pending::<()>().await
            };
            let mut buf = [0u8; 512];
            tokio::select! {
                // The server closes (or answers, which would also free it).
                _ = reader.read(&mut buf) => Some(started.elapsed()),
                () = trickle => None,
                () = tokio::time::sleep(Duration::from_secs(20)) => None,
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Everyone else is served at once, while the 500 are connected.
    let http = icehouse_e2e::client();
    for _ in 0..10 {
        let asked = Instant::now();
        let r = http.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(asked.elapsed() < Duration::from_secs(1), "/healthz took {:?}", asked.elapsed());
    }

    let mut closed = Vec::new();
    for task in slow {
        closed.push(task.await.unwrap());
    }
    let cut: Vec<Duration> = closed.iter().flatten().copied().collect();
    assert_eq!(cut.len(), 500, "{} of 500 slow connections were still open after 20 s", 500 - cut.len());
    let latest = cut.iter().max().unwrap();
    assert!(*latest < Duration::from_secs(10), "the last slow connection was closed after {latest:?}");
    println!("500 slow connections closed by {latest:?} (header timeout 3 s)");

    drop(server);
    db.drop_now().await.unwrap();
}

/// A sample shows at most 64 KiB of a message and says it cut it, while the
/// check against the columns still sees all of it.
#[tokio::test]
async fn a_sampled_message_is_cut_for_showing() {
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let broker = Broker::start_memory().await.unwrap();
    broker.create_topic("big", 1).await.unwrap();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("message.max.bytes", "1000000")
        .create()
        .unwrap();
    let value = format!("{{\"id\": 1, \"blob\": \"{}\"}}", "x".repeat(200 * 1024));
    producer.send(FutureRecord::to("big").key("k").payload(&value), Duration::from_secs(30)).await.unwrap();
    let db = TestDb::create("icehouse_e2e").await.unwrap();
    let server = Server::start("serve", &test_env(&db.url), &std::env::temp_dir()).unwrap();
    let api = Api::signup(&server.base_url).await.unwrap();
    let conn = api.post("/api/v1/connections", serde_json::json!({"name": "b", "bootstrap_servers": [broker.addr]}));
    let cid = conn.await.unwrap()["id"].as_str().unwrap().to_string();

    let s = api.post(&format!("/api/v1/connections/{cid}/topics/big/sample"), serde_json::json!({})).await.unwrap();
    let m = &s["messages"][0];
    assert_eq!(
        (m["truncated"].as_bool(), m["value_bytes"].as_u64()),
        (Some(true), Some(value.len() as u64)),
        "{}",
        m["truncated"]
    );
    assert_eq!(m["value"].as_str().unwrap().len(), 64 * 1024);
    // The suggestion saw the whole message.
    let names: Vec<&str> = s["suggestion"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["id", "blob"], "{names:?}");

    drop(server);
    db.drop_now().await.unwrap();
}
