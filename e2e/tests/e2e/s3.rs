//! Ingestion into an S3 warehouse: a local S3-compatible server (moto), a
//! tansu broker, Postgres and the `icehouse` process with its in-process
//! worker; the tables read back by PyIceberg straight from the bucket and by
//! Icehouse's own SQL endpoint.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use icehouse_e2e::{free_port, read_table_with, test_env, Api, Broker, Server, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const BUCKET: &str = "icehouse-e2e";
const REGION: &str = "us-east-1";
const KEY_ID: &str = "icehouse-e2e-key";
const SECRET: &str = "icehouse-e2e-secret-4f1c9a";

/// `moto_server` (from the Python venv the scripts install) on a free
/// loopback port, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("ICEHOUSE_PYTHON").expect("ICEHOUSE_PYTHON is not set: scripts/test.sh installs the venv and sets it")
}

impl Moto {
    async fn start() -> Moto {
        let bin = PathBuf::from(python()).with_file_name("moto_server");
        assert!(
            bin.exists(),
            "{} is missing: scripts/lib.sh ensure_python_readers installs moto[server]",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(&moto.endpoint).await.is_err() {
            assert!(Instant::now() < deadline, "moto_server did not answer on {}", moto.endpoint);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// Runs a few lines of boto3 against the server (`s3` is the client); returns stdout.
    fn boto3(&self, code: &str) -> String {
        let script = format!(
            "import boto3, json\ns3 = boto3.client('s3', endpoint_url='{}', region_name='{REGION}', \
             aws_access_key_id='{KEY_ID}', aws_secret_access_key='{SECRET}')\n{code}",
            self.endpoint
        );
        let out = Command::new(python()).args(["-c", &script]).output().expect("running python");
        assert!(out.status.success(), "boto3 failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Every object key under `prefix`.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self.boto3(&format!(
            "keys = []\nfor page in s3.get_paginator('list_objects_v2').paginate(Bucket='{BUCKET}', Prefix='{prefix}'):\n    \
             keys += [o['Key'] for o in page.get('Contents', [])]\nprint(json.dumps(keys))"
        ));
        serde_json::from_str(out.trim()).unwrap()
    }
}

#[tokio::test]
async fn a_pipeline_writes_its_tables_to_an_s3_warehouse_exactly_once() {
    let n = 5_000;
    let moto = Moto::start().await;
    moto.boto3(&format!("s3.create_bucket(Bucket='{BUCKET}')"));

    let broker = Broker::start().await.unwrap();
    broker.create_topic("sales", PARTITIONS).await.unwrap();
    produce(&broker.addr, "sales", 0..n).await;

    let db = TestDb::create("icehouse_e2e_s3").await.unwrap();
    let mut env = test_env(&db.url);
    env.push(("ICEHOUSE__WORKER__IN_PROCESS".into(), "true".into()));
    env.push(("ICEHOUSE__WORKER__MAX_MESSAGE_BYTES".into(), MAX_MESSAGE_BYTES.to_string()));
    // Nothing of the host's AWS setup may stand in for the destination's own settings.
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL"] {
        env.push((var.into(), "not-for-icehouse".into()));
    }
    let server = Server::start("serve", &env, &std::env::temp_dir()).unwrap();
    let api = Api::signup(&server.base_url).await.unwrap();

    let c =
        api.post("/api/v1/connections", json!({"name": "local", "bootstrap_servers": [broker.addr]})).await.unwrap();
    let warehouse = format!("s3://{BUCKET}/lake");
    let d = api
        .post(
            "/api/v1/destinations",
            json!({"name": "lake", "warehouse_uri": warehouse, "s3_endpoint": moto.endpoint, "s3_region": REGION,
                   "s3_access_key_id": KEY_ID, "s3_secret_access_key": SECRET}),
        )
        .await
        .unwrap();
    assert_eq!(d["s3_secret_access_key_set"], true, "{d}");
    assert!(!d.to_string().contains(SECRET), "the secret came back: {d}");
    let catalog = d["id"].as_str().unwrap().to_string();
    let p = api
        .post(
            "/api/v1/pipelines",
            json!({"name": "sales", "connection_id": c["id"], "topic": "sales", "destination_id": d["id"],
                   "table_name": "sales", "mapping": mapping(), "partition_by": [{"column": "sold_at", "transform": "day"}]}),
        )
        .await
        .unwrap();
    let pid = p["id"].as_str().unwrap().to_string();

    let started = Instant::now();
    let status = wait_for_total(&api, &pid, n, Duration::from_secs(180)).await;
    eprintln!("{n} messages committed to S3 in {:?}", started.elapsed());
    let good: Vec<usize> = (0..n).filter(|i| message(*i).1.is_none()).collect();
    let bad = n - good.len();
    assert_eq!(status["rows_committed"], good.len() as i64, "{status}");
    assert_eq!(status["dead_letter_rows"], bad as i64, "{status}");
    assert_eq!(status["state"], "running", "{status}");

    // The tables live in the bucket, each in a folder of its own (`<name>-<uuid>`).
    let detail = api.get("/api/v1/tables/default/sales").await.unwrap();
    let location = detail["location"].as_str().unwrap().to_string();
    let folder = location.strip_prefix(&format!("{warehouse}/default/sales-")).unwrap_or_else(|| panic!("{location}"));
    assert_eq!(uuid::Uuid::parse_str(folder).unwrap().get_version_num(), 7, "{location}");
    assert!(detail["metadata_location"].as_str().unwrap().starts_with(&format!("{location}/metadata/")), "{detail}");
    let keys = moto.keys("lake/default/");
    let table_key = format!("lake/default/sales-{folder}/");
    assert!(keys.iter().any(|k| k.starts_with(&format!("{table_key}data/")) && k.ends_with(".parquet")), "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with(&format!("{table_key}metadata/")) && k.ends_with(".metadata.json")));
    assert!(keys.iter().any(|k| k.starts_with("lake/default/sales_dead_letter-")), "{keys:?}");

    // PyIceberg, from the bucket: exactly the good messages, every value…
    let props = [
        ("s3.endpoint", moto.endpoint.as_str()),
        ("s3.region", REGION),
        ("s3.access-key-id", KEY_ID),
        ("s3.secret-access-key", SECRET),
    ];
    let columns = ["id", "store", "qty", "price", "sold_at", "customer_id", "customer_tier"];
    let mut rows =
        read_table_with("pyiceberg", &db.url, &catalog, &warehouse, "default.sales", &columns, &props).unwrap();
    rows.sort_by_key(|r| r["id"].as_u64());
    let expected: Vec<Value> = good.iter().map(|&i| expected_row(i)).collect();
    assert_eq!(rows.len(), expected.len(), "row count");
    for (got, want) in rows.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    // …and exactly the bad ones in the dead-letter table, each with its kind.
    let dead = read_table_with(
        "pyiceberg",
        &db.url,
        &catalog,
        &warehouse,
        "default.sales_dead_letter",
        &["partition", "offset", "error_kind", "topic"],
        &props,
    )
    .unwrap();
    assert_dead_letters_exact(&dead, n);

    // Icehouse's own readers go through the same S3 warehouse.
    let (code, r) = api
        .call(Method::POST, "/api/v1/query", Some(json!({"sql": "SELECT count(*) AS n FROM default.sales"})))
        .await
        .unwrap();
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["rows"], json!([[good.len()]]), "{r}");
    let dl = api.get(&format!("/api/v1/pipelines/{pid}/dead-letters?limit=5")).await.unwrap();
    assert_eq!(dl["total"], bad as i64, "{dl}");
    assert_eq!(dl["rows"].as_array().unwrap().len(), 5, "{dl}");
    assert_eq!(
        table_counts(&api).await,
        vec![("sales".to_string(), good.len() as i64), ("sales_dead_letter".to_string(), bad as i64)]
    );

    drop(server);
    db.drop_now().await.unwrap();
}

/// A warehouse that cannot be reached is refused when the pipeline is
/// created, naming the destination, and nothing is left behind.
#[tokio::test]
async fn an_unreachable_s3_warehouse_is_a_clear_error() {
    let broker = Broker::start_memory().await.unwrap();
    broker.create_topic("sales", 1).await.unwrap();
    let db = TestDb::create("icehouse_e2e_s3").await.unwrap();
    let server = Server::start("serve", &test_env(&db.url), &std::env::temp_dir()).unwrap();
    let api = Api::signup(&server.base_url).await.unwrap();
    let c =
        api.post("/api/v1/connections", json!({"name": "local", "bootstrap_servers": [broker.addr]})).await.unwrap();
    // A loopback port nobody listens on.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let d = api
        .post(
            "/api/v1/destinations",
            json!({"name": "lake", "warehouse_uri": format!("s3://{BUCKET}/lake"), "s3_endpoint": endpoint,
                   "s3_access_key_id": KEY_ID, "s3_secret_access_key": SECRET}),
        )
        .await
        .unwrap();
    let (code, body) = api
        .call(
            Method::POST,
            "/api/v1/pipelines",
            Some(json!({"name": "sales", "connection_id": c["id"], "topic": "sales", "destination_id": d["id"],
                        "table_name": "sales", "mapping": mapping()})),
        )
        .await
        .unwrap();
    // The warehouse's store is down, not the request wrong: a 502 of its own kind.
    assert_eq!(code, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["type"], "/problems/warehouse-unavailable", "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("the warehouse could not be reached") && detail.ends_with("connection refused"),
        "{detail}"
    );
    assert!(!body.to_string().contains(SECRET), "{body}");
    let pipelines = api.get("/api/v1/pipelines").await.unwrap();
    assert_eq!(pipelines["items"], json!([]), "{pipelines}");
    drop(server);
    db.drop_now().await.unwrap();
}

/// A TCP proxy in front of moto that, once told to, stops answering: every
/// connection (open or new) is held and nothing more is passed either way.
struct Tarpit {
    endpoint: String,
    hang: tokio::sync::watch::Sender<bool>,
}

impl Tarpit {
    async fn start(upstream: &str) -> Tarpit {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let (hang, hung) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut client, _)) = listener.accept().await {
                if *hung.borrow() {
                    held.push(client);
                    continue;
                }
                let (upstream, mut hung) = (upstream.clone(), hung.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = async { drop(hung.wait_for(|h| *h).await) } => {
                            // Silent from now on: the client's socket stays open.
                            drop(server);
                            std::future::pending::<()>().await;
                        }
                    }
                });
            }
        });
        Tarpit { endpoint, hang }
    }
}

/// Item 10 of the security issue: a pipeline whose bucket stops answering
/// is paused, and another pipeline on the same worker keeps committing
/// every second all the while; the hung one reaches `paused` once its
/// commit meets the commit deadline.
#[tokio::test]
async fn a_hung_bucket_stalls_only_its_own_pipeline() {
    let moto = Moto::start().await;
    moto.boto3(&format!("s3.create_bucket(Bucket='{BUCKET}')"));
    let tarpit = Tarpit::start(&moto.endpoint).await;
    let broker = Broker::start().await.unwrap();
    for topic in ["hung", "fine"] {
        broker.create_topic(topic, PARTITIONS).await.unwrap();
        produce(&broker.addr, topic, 0..100).await;
    }
    let db = TestDb::create("icehouse_e2e_s3").await.unwrap();
    let mut env = test_env(&db.url);
    env.push(("ICEHOUSE__WORKER__IN_PROCESS".into(), "true".into()));
    env.push(("ICEHOUSE__WORKER__COMMIT_TIMEOUT_SECS".into(), "8".into()));
    env.push(("ICEHOUSE__WORKER__MAX_MESSAGE_BYTES".into(), MAX_MESSAGE_BYTES.to_string()));
    let server = Server::start("serve", &env, &std::env::temp_dir()).unwrap();
    let api = Api::signup(&server.base_url).await.unwrap();
    let c =
        api.post("/api/v1/connections", json!({"name": "local", "bootstrap_servers": [broker.addr]})).await.unwrap();
    let s3 = api
        .post(
            "/api/v1/destinations",
            json!({"name": "s3", "warehouse_uri": format!("s3://{BUCKET}/hung"), "s3_endpoint": tarpit.endpoint,
                   "s3_region": REGION, "s3_access_key_id": KEY_ID, "s3_secret_access_key": SECRET}),
        )
        .await
        .unwrap();
    let local = std::env::temp_dir().join(format!("icehouse-e2e-wh-{}", uuid::Uuid::new_v4().simple()));
    let disk = api
        .post("/api/v1/destinations", json!({"name": "disk", "warehouse_uri": format!("file://{}", local.display())}));
    let disk = disk.await.unwrap();
    let mut pipelines = Vec::new();
    for (topic, dest) in [("hung", &s3), ("fine", &disk)] {
        let body = json!({"name": topic, "connection_id": c["id"], "topic": topic, "destination_id": dest["id"],
                          "table_name": topic, "mapping": mapping(), "flush_interval_ms": 250});
        let p = api.post("/api/v1/pipelines", body).await.unwrap();
        pipelines.push(p["id"].as_str().unwrap_or_else(|| panic!("{p}")).to_string());
    }
    let (hung, fine) = (pipelines[0].clone(), pipelines[1].clone());
    let good = (0..100).filter(|i| message(*i).1.is_none()).count();
    wait_for_total(&api, &hung, 100, Duration::from_secs(60)).await;
    wait_for_total(&api, &fine, 100, Duration::from_secs(60)).await;

    // The bucket goes silent with a batch on its way; then the pipeline is paused.
    tarpit.hang.send(true).unwrap();
    produce(&broker.addr, "hung", 100..200).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    api.post(&format!("/api/v1/pipelines/{hung}/pause"), json!({})).await.unwrap();

    // The other pipeline commits every second meanwhile.
    let rows = |s: &Value| s["rows_committed"].as_i64().unwrap_or(0);
    let mut last = rows(&api.get(&format!("/api/v1/pipelines/{fine}/status")).await.unwrap());
    let mut last_change = Instant::now();
    let mut longest = Duration::ZERO;
    let mut next = 200;
    let started = Instant::now();
    let mut hung_state = String::new();
    while started.elapsed() < Duration::from_secs(15) {
        produce(&broker.addr, "fine", next..next + 10).await;
        next += 10;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = rows(&api.get(&format!("/api/v1/pipelines/{fine}/status")).await.unwrap());
        if now > last {
            longest = longest.max(last_change.elapsed());
            (last, last_change) = (now, Instant::now());
        }
        hung_state = api.get(&format!("/api/v1/pipelines/{hung}/status")).await.unwrap()["state"]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    longest = longest.max(last_change.elapsed());
    println!("the other pipeline's longest wait between commits: {longest:?}; the hung one is {hung_state}");
    assert!(longest < Duration::from_millis(2500), "the other pipeline went {longest:?} without a commit");
    assert!(last as usize > good, "the other pipeline committed nothing new: {last}");
    assert_eq!(hung_state, "paused", "the hung pipeline did not reach paused within 15 s");

    drop(server);
    db.drop_now().await.unwrap();
    let _ = std::fs::remove_dir_all(&local);
}
