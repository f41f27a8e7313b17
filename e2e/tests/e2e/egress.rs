//! The egress policy of `serve`: a tenant cannot make Icehouse connect to
//! the server's own network. The server allows only 127.0.0.2 here, so a
//! broker on 127.0.0.1, a broker reached on 127.0.0.2 that advertises
//! 127.0.0.1, and an S3 endpoint on 127.0.0.1 are refused as
//! `forbidden_address`, while a broker on 127.0.0.2 works; a server that
//! allows all of 127.0.0.0/8 still refuses its own Postgres. (Bootstrap
//! servers and S3 endpoints are refused before any connection; an
//! advertised broker when its metadata is read, see workers/src/egress.rs.)

use std::time::{Duration, Instant};

use icehouse_e2e::{Api, Broker, Server, TestDb};
use reqwest::Method;
use serde_json::{json, Value};

fn port_on(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

fn serve_allowing(db: &TestDb, allow: &str) -> Server {
    let mut env = icehouse_e2e::test_env(&db.url);
    env.retain(|(k, _)| k != "ICEHOUSE__EGRESS__ALLOW");
    env.push(("ICEHOUSE__EGRESS__ALLOW".into(), allow.into()));
    env.push(("ICEHOUSE__KAFKA__PROBE_TIMEOUT_MS".into(), "5000".into()));
    env.push(("ICEHOUSE__WORKER__IN_PROCESS".into(), "true".into()));
    Server::start("serve", &env, &std::env::temp_dir()).unwrap()
}

/// The connection test's outcome for `servers`, and how long it took.
async fn test_connection(api: &Api, servers: &str) -> (Value, Duration) {
    let started = Instant::now();
    let r =
        api.post("/api/v1/connections/test", json!({"name": "probe", "bootstrap_servers": [servers]})).await.unwrap();
    (r, started.elapsed())
}

fn assert_forbidden(outcome: &Value, naming: &str) {
    assert_eq!(outcome["status"], "failed", "{outcome}");
    assert_eq!(outcome["failure"]["kind"], "forbidden_address", "{outcome}");
    let message = outcome["failure"]["message"].as_str().unwrap();
    assert!(message.contains(naming) && message.contains("egress"), "{message}");
}

#[tokio::test]
async fn serve_refuses_the_servers_own_network_and_allows_a_configured_range() {
    let db = TestDb::create("icehouse_e2e").await.unwrap();
    let tmp = std::env::temp_dir();
    let loopback = Broker::start_memory().await.unwrap(); // on 127.0.0.1
    let allowed = format!("127.0.0.2:{}", port_on("127.0.0.2"));
    let good = Broker::start_advertising(&allowed, &allowed, "memory://tansu/".into(), &tmp).await.unwrap();
    // It advertises the loopback broker: librdkafka follows a cluster's
    // metadata on its own (rust-rdkafka offers no hook before it connects),
    // so what is checked is that Icehouse then refuses to use the cluster.
    let two_faced_addr = format!("127.0.0.2:{}", port_on("127.0.0.2"));
    let advertised = loopback.addr.clone();
    let _two_faced =
        Broker::start_advertising(&two_faced_addr, &advertised, "memory://tansu/".into(), &tmp).await.unwrap();
    let server = serve_allowing(&db, "127.0.0.2/32");
    let api = Api::signup(&server.base_url).await.unwrap();

    // A broker on loopback: refused before anything is sent, not a timeout.
    let (outcome, took) = test_connection(&api, &loopback.addr).await;
    assert_forbidden(&outcome, &format!("{} resolves to 127.0.0.1, a loopback address", loopback.addr));
    assert!(took < Duration::from_secs(3), "refused at once, took {took:?}");
    // A name is checked by what it resolves to.
    let (outcome, _) = test_connection(&api, &format!("localhost:{}", loopback.port())).await;
    assert_forbidden(&outcome, "a loopback address");

    // Reached on an allowed address, but the cluster advertises loopback.
    let (outcome, _) = test_connection(&api, &two_faced_addr).await;
    assert_forbidden(&outcome, &format!("{advertised} resolves to 127.0.0.1"));
    // …and the sampler, which would fetch from that broker, is refused too.
    let c = api.post("/api/v1/connections", json!({"name": "two-faced", "bootstrap_servers": [two_faced_addr]})).await;
    let id = c.unwrap()["id"].as_str().unwrap().to_string();
    let (status, body) = api
        .call(Method::POST, &format!("/api/v1/connections/{id}/topics/sales/sample"), Some(json!({})))
        .await
        .unwrap();
    assert_eq!(body["kind"], "forbidden_address", "{status} {body}");
    // …and so is a pipeline on it: its worker says why and reads nothing.
    let warehouse = tmp.join(format!("icehouse-e2e-wh-{}", uuid::Uuid::new_v4().simple()));
    let d = api
        .post(
            "/api/v1/destinations",
            json!({"name": "local", "warehouse_uri": format!("file://{}", warehouse.display())}),
        )
        .await
        .unwrap();
    let p = api
        .post(
            "/api/v1/pipelines",
            json!({"name": "sales", "connection_id": id, "topic": "sales", "destination_id": d["id"],
                   "table_name": "sales", "mapping": crate::common::mapping()}),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = api.get(&format!("/api/v1/pipelines/{}/status", p["id"].as_str().unwrap())).await.unwrap();
        if s["last_error"].as_str().is_some_and(|e| e.contains("forbidden_address")) {
            break s;
        }
        assert!(Instant::now() < deadline, "the pipeline never said its broker is refused: {s}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(status["state"], "failing", "{status}");
    assert!(status["last_error"].as_str().unwrap().contains(&advertised), "{status}");

    // The allowed range works.
    good.create_topic("sales", 2).await.unwrap();
    let (outcome, _) = test_connection(&api, &allowed).await;
    assert_eq!(outcome["status"], "ok", "{outcome}");
    assert!(outcome["topics"].as_array().unwrap().iter().any(|t| t["name"] == "sales"), "{outcome}");

    // An S3 endpoint on loopback: the destination is refused, naming the field.
    let (status, body) = api
        .call(
            Method::POST,
            "/api/v1/destinations",
            Some(json!({"name": "lake", "warehouse_uri": "s3://bucket/lake", "s3_endpoint": "http://127.0.0.1:9000",
                        "s3_access_key_id": "k", "s3_secret_access_key": "s"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 422, "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["field"], "s3_endpoint", "{body}");
    assert!(error["message"].as_str().unwrap().starts_with("forbidden_address: http://127.0.0.1:9000"), "{body}");
    // …and so is moving a destination there.
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/destinations/{}", d["id"].as_str().unwrap()),
            Some(json!({"warehouse_uri": "s3://bucket/lake", "s3_endpoint": "http://127.0.0.1:9000",
                        "s3_access_key_id": "k", "s3_secret_access_key": "s"})),
        )
        .await
        .unwrap();
    assert_eq!((status.as_u16(), body["errors"][0]["field"].as_str()), (422, Some("s3_endpoint")), "{body}");
    drop(server);

    // Allowing all of loopback still leaves the server's own Postgres out.
    let server = serve_allowing(&db, "127.0.0.0/8");
    let api = Api::signup_as(&server.base_url, "pg@e2e.test").await.unwrap();
    let pg = db.url.split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap().to_string();
    let (outcome, _) = test_connection(&api, &pg).await;
    assert_forbidden(&outcome, "this server's own database");
    let (outcome, _) = test_connection(&api, &loopback.addr).await;
    assert_eq!(outcome["status"], "ok", "loopback is allowed on this server: {outcome}");
    drop(server);
    db.drop_now().await.unwrap();
}
