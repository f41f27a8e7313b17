//! Reading what landed, through Icehouse: SQL over the tenant's tables
//! (DataFusion), the dead-letter rows of a pipeline, sampling a topic for the
//! wizard — and notifications when a pipeline fails. Against the real stack:
//! tansu, Postgres, the `icehouse` process with its in-process worker.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::common::*;
use icehouse_e2e::{free_port, test_env, Api, Broker, Server, TestDb};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const N: usize = 2_000;
/// Dead-letter rows keep this much of a key or value (the too-large messages are longer).
const KEPT_BYTES: usize = 1024;

fn start_server(db: &TestDb, in_process: bool) -> Server {
    let mut env = test_env(&db.url);
    env.push(("ICEHOUSE__WORKER__IN_PROCESS".into(), in_process.to_string()));
    env.push(("ICEHOUSE__WORKER__MAX_MESSAGE_BYTES".into(), MAX_MESSAGE_BYTES.to_string()));
    env.push(("ICEHOUSE__DEAD_LETTER__MAX_VALUE_BYTES".into(), KEPT_BYTES.to_string()));
    Server::start("serve", &env, &std::env::temp_dir()).unwrap()
}

async fn query(api: &Api, sql: &str, max_rows: Option<u32>) -> (StatusCode, Value) {
    let mut body = json!({ "sql": sql });
    if let Some(n) = max_rows {
        body["max_rows"] = json!(n);
    }
    api.call(Method::POST, "/api/v1/query", Some(body)).await.unwrap()
}

#[tokio::test]
async fn sql_dead_letters_and_samples_read_the_real_tables() {
    let broker = Broker::start_memory().await.unwrap();
    broker.create_topic("sales", PARTITIONS).await.unwrap();
    produce(&broker.addr, "sales", 0..N).await;
    let db = TestDb::create("icehouse_e2e_query").await.unwrap();
    let warehouse = std::env::temp_dir().join(format!("icehouse-e2e-wh-{}", uuid::Uuid::new_v4().simple()));
    let server = start_server(&db, true);
    let api = Api::signup(&server.base_url).await.unwrap();
    let (pid, _catalog, _uri) = create_pipeline(&api, &broker, &warehouse).await;
    wait_for_total(&api, &pid, N, Duration::from_secs(120)).await;
    let good: Vec<usize> = (0..N).filter(|i| message(*i).1.is_none()).collect();

    // A count and an aggregate, checked against the messages produced.
    let (status, r) = query(&api, "SELECT count(*) AS n FROM default.sales", None).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["columns"][0]["name"], "n");
    assert_eq!(r["rows"], json!([[good.len()]]));
    assert_eq!(r["truncated"], false);

    let (status, r) = query(
        &api,
        "SELECT store, count(*) AS n, sum(qty) AS q FROM default.sales GROUP BY store ORDER BY store",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for &i in &good {
        let e = expected.entry(format!("s-{}", i % 50)).or_default();
        e.0 += 1;
        e.1 += (i % 7) as i64;
    }
    let want: Vec<Value> = expected.iter().map(|(s, (n, q))| json!([s, n, q])).collect();
    assert_eq!(r["rows"], json!(want));

    // Typed values: a decimal as its exact text, a timestamp in ISO-8601.
    let (status, r) =
        query(&api, "SELECT id, price, sold_at, customer_tier FROM default.sales WHERE id = 7", None).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let row = &r["rows"][0];
    assert_eq!(row[0], 7);
    assert_eq!(row[1], "7.07");
    let sold_at = expected_row(7)["sold_at"].as_str().unwrap()[..19].to_string();
    assert!(row[2].as_str().unwrap().starts_with(&sold_at), "{row}");
    assert_eq!(row[3], "gold");

    // The row bound: cut, and said so.
    let (status, r) = query(&api, "SELECT id FROM default.sales", Some(10)).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["rows"].as_array().unwrap().len(), 10);
    assert_eq!(r["truncated"], true);

    // Only one read-only SELECT, over tables that exist; errors by the `sql` field.
    for (sql, says) in [
        ("DELETE FROM default.sales", "read-only"),
        ("DROP TABLE default.sales", "read-only"),
        ("INSERT INTO default.sales SELECT * FROM default.sales", "read-only"),
        ("CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/'", "read-only"),
        ("SELECT 1; SELECT 2", "one"),
        ("SELECT * FROM default.nope", "does not exist"),
        ("SELECT * FROM sales", "namespace"),
        ("SELEC 1", ""),
        ("SELECT no_such_column FROM default.sales", "no_such_column"),
    ] {
        let (status, r) = query(&api, sql, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{sql}: {r}");
        assert_eq!(r["errors"][0]["field"], "sql", "{sql}: {r}");
        let message = r["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{sql}: {message}");
    }
    // Still exactly the good rows: nothing above changed the table.
    let (_, r) = query(&api, "SELECT count(*) FROM default.sales", None).await;
    assert_eq!(r["rows"], json!([[good.len()]]));

    // Another tenant sees none of it.
    let other = signup_other(&server.base_url).await;
    let (status, r) = query(&other, "SELECT count(*) FROM default.sales", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert!(r["errors"][0]["message"].as_str().unwrap().contains("does not exist"), "{r}");
    let (status, _) = other.call(Method::GET, &format!("/api/v1/pipelines/{pid}/dead-letters"), None).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The dead-letter rows: every bad message with its kind and raw value, newest first.
    let d = api.get(&format!("/api/v1/pipelines/{pid}/dead-letters?limit=200")).await.unwrap();
    let bad: BTreeMap<(i64, i64), &str> =
        (0..N).filter_map(|i| message(i).1.map(|k| (((i % 4) as i64, (i / 4) as i64), k))).collect();
    assert_eq!(d["total"], bad.len() as i64, "{d}");
    let rows = d["rows"].as_array().unwrap();
    let got: BTreeMap<(i64, i64), &str> = rows
        .iter()
        .map(|r| ((r["partition"].as_i64().unwrap(), r["offset"].as_i64().unwrap()), r["error_kind"].as_str().unwrap()))
        .collect();
    assert_eq!(got, bad);
    // As instants: RFC 3339 text drops trailing zeros (`.454Z` is before `.454028Z`).
    let received: Vec<chrono::DateTime<chrono::Utc>> =
        rows.iter().map(|r| r["received_at"].as_str().unwrap().parse().unwrap()).collect();
    assert!(received.windows(2).all(|w| w[0] >= w[1]), "not newest first: {received:?}");
    let invalid = rows.iter().find(|r| r["error_kind"] == "invalid_json").unwrap();
    assert_eq!(invalid["value"], "{\"id\": 1, oops", "{invalid}");
    assert_eq!(invalid["error_stage"], "decode");
    assert_eq!((invalid["truncated"].as_bool(), invalid["value_bytes"].as_i64()), (Some(false), Some(14)), "{invalid}");
    // A value past dead_letter.max_value_bytes is kept cut, and says so.
    let large = rows.iter().find(|r| r["error_kind"] == "too_large").unwrap();
    let i = (large["offset"].as_i64().unwrap() * 4 + large["partition"].as_i64().unwrap()) as usize;
    let whole = String::from_utf8(message(i).0.unwrap()).unwrap();
    assert_eq!(
        (large["truncated"].as_bool(), large["value_bytes"].as_u64(), large["value"].as_str()),
        (Some(true), Some(whole.len() as u64), Some(&whole[..KEPT_BYTES])),
    );
    let (_, r) = query(&api, "SELECT count(*) FROM default.sales_dead_letter WHERE truncated", None).await;
    assert_eq!(r["rows"], json!([[bad.values().filter(|k| **k == "too_large").count()]]), "{r}");
    assert!(rows.iter().find(|r| r["error_kind"] == "tombstone").unwrap()["value"].is_null());
    let (status, r) =
        api.call(Method::GET, &format!("/api/v1/pipelines/{pid}/dead-letters?limit=0"), None).await.unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");

    // Sampling the topic for the wizard: the newest 100, spread over the partitions.
    let connections = api.get("/api/v1/connections").await.unwrap();
    let cid = connections["items"][0]["id"].as_str().unwrap().to_string();
    let sample_path = format!("/api/v1/connections/{cid}/topics/sales/sample");
    let s = api.post(&sample_path, json!({})).await.unwrap();
    let offsets: BTreeSet<(i64, i64)> = s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["partition"].as_i64().unwrap(), m["offset"].as_i64().unwrap()))
        .collect();
    let newest: BTreeSet<(i64, i64)> = (N - 100..N).map(|i| ((i % 4) as i64, (i / 4) as i64)).collect();
    assert_eq!(offsets, newest);
    let suggested: BTreeMap<&str, &str> = s["suggestion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
        .collect();
    assert_eq!(suggested.get("sold_at"), Some(&"timestamptz"), "{suggested:?}");
    assert_eq!(suggested.get("customer_id"), Some(&"uuid"), "{suggested:?}");
    assert_eq!(suggested.get("store"), Some(&"string"), "{suggested:?}");
    // Checked against the pipeline's own mapping, the one bad message of the
    // newest 100 (message 1900, without an id) is flagged with its reason.
    let s = api.post(&sample_path, json!({"columns": mapping()["columns"]})).await.unwrap();
    assert_eq!(s["misfits"], 1, "{s}");
    let flagged: Vec<&Value> = s["messages"].as_array().unwrap().iter().filter(|m| !m["problem"].is_null()).collect();
    assert_eq!((flagged[0]["partition"].as_i64(), flagged[0]["offset"].as_i64()), (Some(0), Some(475)));
    assert!(flagged[0]["problem"].as_str().unwrap().starts_with("missing_required"), "{}", flagged[0]);
    let (status, r) = api
        .call(Method::POST, &format!("/api/v1/connections/{cid}/topics/nope/sample"), Some(json!({})))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "{r}");
    let (status, r) = api.call(Method::POST, &sample_path, Some(json!({"limit": 101}))).await.unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");

    // Testing settings before saving them.
    let t =
        api.post("/api/v1/connections/test", json!({"name": "x", "bootstrap_servers": [broker.addr]})).await.unwrap();
    assert_eq!(t["status"], "ok", "{t}");
    assert!(t["topics"].as_array().unwrap().contains(&json!({"name": "sales", "partitions": PARTITIONS})), "{t}");

    drop(server);
    db.drop_now().await.unwrap();
}

#[tokio::test]
async fn a_failing_pipeline_notifies_admins_once() {
    let db = TestDb::create("icehouse_e2e_notify").await.unwrap();
    let warehouse = std::env::temp_dir().join(format!("icehouse-e2e-wh-{}", uuid::Uuid::new_v4().simple()));
    let server = start_server(&db, true);
    let api = Api::signup(&server.base_url).await.unwrap();
    let closed = format!("127.0.0.1:{}", free_port());
    let c = api.post("/api/v1/connections", json!({"name": "gone", "bootstrap_servers": [closed]})).await.unwrap();
    let uri = format!("file://{}", warehouse.display());
    let d = api.post("/api/v1/destinations", json!({"name": "lake", "warehouse_uri": uri})).await.unwrap();
    let p = api
        .post(
            "/api/v1/pipelines",
            json!({"name": "orders feed", "connection_id": c["id"], "topic": "orders", "destination_id": d["id"],
                   "table_name": "orders", "mapping": mapping()}),
        )
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let list = loop {
        let list = api.get("/api/v1/notifications").await.unwrap();
        if list["unread"].as_i64().unwrap() > 0 {
            break list;
        }
        assert!(Instant::now() < deadline, "no notification: {list}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let first = &list["items"][0];
    assert_eq!(first["kind"], "pipeline_failing", "{list}");
    assert_eq!(first["pipeline_id"], p["id"]);
    assert_eq!(first["pipeline_name"], "orders feed");
    assert_eq!(first["read"], false);
    let status = api.get(&format!("/api/v1/pipelines/{}/status", p["id"].as_str().unwrap())).await.unwrap();
    assert_eq!(status["state"], "failing", "{status}");
    assert_eq!(first["message"], status["last_error"], "{list} {status}");

    // Retries hitting the same error do not notify again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let list = api.get("/api/v1/notifications").await.unwrap();
    let failing = list["items"].as_array().unwrap().iter().filter(|n| n["kind"] == "pipeline_failing").count();
    assert_eq!(failing, 1, "{list}");

    let (status, _) = api.call(Method::POST, "/api/v1/notifications/read", Some(json!({}))).await.unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let list = api.get("/api/v1/notifications").await.unwrap();
    assert_eq!(list["unread"], 0, "{list}");
    assert!(list["items"].as_array().unwrap().iter().all(|n| n["read"] == true), "{list}");
    let (status, r) = api.call(Method::POST, "/api/v1/notifications/read", Some(json!({"up_to": -1}))).await.unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");

    // Another tenant's admin sees none of them.
    let other = signup_other(&server.base_url).await;
    let list = other.get("/api/v1/notifications").await.unwrap();
    assert_eq!((list["unread"].as_i64(), list["items"].as_array().map(Vec::len)), (Some(0), Some(0)), "{list}");

    drop(server);
    db.drop_now().await.unwrap();
}

async fn signup_other(base: &str) -> Api {
    let http = icehouse_e2e::client();
    let r: Value = http
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&json!({"tenant_name": "Other", "email": "eve@other.test", "password": "other password 123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Api { http, base: base.to_string(), token: r["access_token"].as_str().unwrap().to_string() }
}
