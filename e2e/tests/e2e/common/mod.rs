//! What the ingestion tests share: a deterministic stream of sales events
//! with 1 % bad messages of every kind, the pipeline's mapping, and the exact
//! checks of what independent readers find in the tables.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use icehouse_e2e::{read_table, Api, Broker};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

/// How many messages; the check uses 200,000 (the default).
pub fn message_count() -> usize {
    std::env::var("ICEHOUSE_E2E_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000)
}

pub const PARTITIONS: i32 = 4;
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// The kinds of bad message, one per `i % 800` slot from 0 to 7 (1 % in all).
pub const BAD_KINDS: [&str; 8] = [
    "invalid_json",
    "invalid_utf8",
    "wrong_type",
    "missing_required",
    "out_of_range",
    "too_large",
    "empty_value",
    "tombstone",
];

/// Message `i`: its value (None = tombstone) and, for a bad one, the error kind.
pub fn message(i: usize) -> (Option<Vec<u8>>, Option<&'static str>) {
    let slot = i % 100;
    let good = || {
        json!({
            "id": i, "store": format!("s-{}", i % 50), "qty": (i % 7) as i64, "price": format!("{}.{:02}", i % 1000, i % 100),
            "sold_at": format!("2026-11-{:02}T{:02}:{:02}:{:02}Z", 20 + i % 7, i % 24, i % 60, (i / 60) % 60),
            "customer": {"id": format!("00000000-0000-4000-8000-{:012}", i), "tier": if i.is_multiple_of(3) { Value::Null } else { json!("gold") }}
        })
        .to_string()
        .into_bytes()
    };
    if slot != 0 {
        return (Some(good()), None);
    }
    let kind = BAD_KINDS[(i / 100) % 8];
    let value = match kind {
        "invalid_json" => Some(b"{\"id\": 1, oops".to_vec()),
        "invalid_utf8" => Some(vec![b'{', 0xff, 0xfe, b'}']),
        "wrong_type" => Some(json!({"id": "not-a-number", "store": "s"}).to_string().into_bytes()),
        "missing_required" => Some(json!({"store": "s", "qty": 1}).to_string().into_bytes()),
        "out_of_range" => Some(json!({"id": i, "qty": 3_000_000_000i64}).to_string().into_bytes()),
        "too_large" => Some(json!({"id": i, "store": "x".repeat(MAX_MESSAGE_BYTES)}).to_string().into_bytes()),
        "empty_value" => Some(vec![]),
        _ => None,
    };
    (value, Some(kind))
}

pub fn mapping() -> Value {
    json!({"columns": [
        {"name": "id", "type": "long", "path": "$.id", "nullable": false},
        {"name": "store", "type": "string", "path": "$.store"},
        {"name": "qty", "type": "int", "path": "$.qty"},
        {"name": "price", "type": "decimal(10,2)", "path": "$.price"},
        {"name": "sold_at", "type": "timestamptz", "path": "$.sold_at"},
        {"name": "customer_id", "type": "uuid", "path": "$.customer.id"},
        {"name": "customer_tier", "type": "string", "path": "$.customer.tier"}
    ]})
}

/// The row PyIceberg should return for good message `i`.
pub fn expected_row(i: usize) -> Value {
    json!({
        "id": i, "store": format!("s-{}", i % 50), "qty": (i % 7) as i64,
        "price": format!("{}.{:02}", i % 1000, i % 100),
        "sold_at": format!("2026-11-{:02}T{:02}:{:02}:{:02}.000000", 20 + i % 7, i % 24, i % 60, (i / 60) % 60),
        "customer_id": format!("00000000-0000-4000-8000-{:012}", i),
        "customer_tier": if i.is_multiple_of(3) { Value::Null } else { json!("gold") }
    })
}

pub async fn produce(bootstrap: &str, topic: &str, range: std::ops::Range<usize>) {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("enable.idempotence", "true")
        .set("message.max.bytes", "1000000")
        .create()
        .unwrap();
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for i in range {
        let (value, _) = message(i);
        let key = format!("k{i}");
        let partition = (i % PARTITIONS as usize) as i32;
        let producer = producer.clone();
        let topic = topic.to_string();
        pending.push(async move {
            let mut record = FutureRecord::to(&topic).key(&key).partition(partition);
            if let Some(v) = &value {
                record = record.payload(v);
            }
            producer.send(record, Duration::from_secs(30)).await.map(|_| ()).map_err(|(e, _)| e)
        });
        if pending.len() >= 5000 {
            pending.next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = pending.next().await {
        r.unwrap();
    }
}

pub async fn wait_for_total(api: &Api, pipeline: &str, total: usize, timeout: Duration) -> Value {
    try_wait_for_total(api, pipeline, total, timeout).await.unwrap_or_else(|e| panic!("{e}"))
}

/// [`wait_for_total`], saying what the status was when time ran out.
pub async fn try_wait_for_total(api: &Api, pipeline: &str, total: usize, timeout: Duration) -> Result<Value, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let status = api.get(&format!("/api/v1/pipelines/{pipeline}/status")).await.unwrap();
        let done = status["rows_committed"].as_i64().unwrap_or(0) + status["dead_letter_rows"].as_i64().unwrap_or(0);
        if done as usize >= total {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let short = json!({"rows_committed": status["rows_committed"], "dead_letter_rows": status["dead_letter_rows"],
                               "partitions": status["partitions"], "state": status["state"], "last_error": status["last_error"]});
            return Err(format!("only {done} of {total} messages committed: {short}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Which good messages of `0..n` the table lacks or holds twice, as
/// (partition, offset) ranges: what a failed exactly-once check needs to
/// tell a skipped fetch from a lost commit.
pub fn explain_table(db_url: &str, catalog: &str, warehouse_uri: &str, n: usize) -> String {
    let ids = match read_table("duckdb", db_url, catalog, warehouse_uri, "default.sales", &["id"]) {
        Ok(rows) => rows.iter().map(|r| r["id"].as_u64().unwrap() as usize).collect::<Vec<_>>(),
        Err(e) => return format!("the table could not be read: {e:#}"),
    };
    let mut seen = vec![0u32; n];
    for id in &ids {
        if let Some(c) = seen.get_mut(*id) {
            *c += 1;
        }
    }
    let ranges = |pick: &dyn Fn(usize) -> bool| {
        let mut out: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
        for i in (0..n).filter(|&i| message(i).1.is_none() && pick(i)) {
            let (p, o) = (i % PARTITIONS as usize, i / PARTITIONS as usize);
            let list = out.entry(p).or_default();
            match list.last_mut() {
                // Bad messages are not in this table: a gap of them does not split a range.
                Some((_, end)) if o <= *end + 2 => *end = o,
                _ => list.push((o, o)),
            }
        }
        out
    };
    let missing = ranges(&|i| seen[i] == 0);
    let twice = ranges(&|i| seen[i] > 1);
    format!(
        "the table has {} rows; missing good messages by partition (offset ranges): {missing:?}; \
         held more than once: {twice:?}",
        ids.len()
    )
}

/// Creates the sales pipeline (day-partitioned on `sold_at`); returns (pipeline id, catalog, warehouse URI).
pub async fn create_pipeline(api: &Api, broker: &Broker, warehouse: &std::path::Path) -> (String, String, String) {
    let c =
        api.post("/api/v1/connections", json!({"name": "local", "bootstrap_servers": [broker.addr]})).await.unwrap();
    let warehouse_uri = format!("file://{}", warehouse.display());
    let d = api.post("/api/v1/destinations", json!({"name": "lake", "warehouse_uri": warehouse_uri})).await.unwrap();
    let p = api
        .post(
            "/api/v1/pipelines",
            json!({"name": "sales", "connection_id": c["id"], "topic": "sales", "destination_id": d["id"],
                   "table_name": "sales", "mapping": mapping(), "partition_by": [{"column": "sold_at", "transform": "day"}]}),
        )
        .await
        .unwrap();
    (p["id"].as_str().unwrap().to_string(), d["id"].as_str().unwrap().to_string(), warehouse_uri)
}

/// The table holds exactly the good messages of `0..n` (every value, read by
/// PyIceberg; the ids, read by DuckDB) and the dead-letter table exactly the
/// bad ones, each with its kind: nothing lost, nothing twice.
pub fn assert_tables_exact(db_url: &str, catalog: &str, warehouse_uri: &str, n: usize) {
    let columns = ["id", "store", "qty", "price", "sold_at", "customer_id", "customer_tier"];
    let mut rows = read_table("pyiceberg", db_url, catalog, warehouse_uri, "default.sales", &columns).unwrap();
    rows.sort_by_key(|r| r["id"].as_u64());
    let expected: Vec<Value> = (0..n).filter(|i| message(*i).1.is_none()).map(expected_row).collect();
    assert_eq!(rows.len(), expected.len(), "row count");
    for (got, want) in rows.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    let duck = read_table("duckdb", db_url, catalog, warehouse_uri, "default.sales", &["id"]).unwrap();
    let duck_ids: BTreeSet<u64> = duck.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(duck.len(), expected.len(), "duckdb sees duplicates or misses rows");
    assert_eq!(duck_ids, expected.iter().map(|r| r["id"].as_u64().unwrap()).collect());

    let dead = read_table(
        "pyiceberg",
        db_url,
        catalog,
        warehouse_uri,
        "default.sales_dead_letter",
        &["partition", "offset", "error_kind", "topic", "key"],
    )
    .unwrap();
    assert_dead_letters_exact(&dead, n);
}

/// The dead-letter rows (`partition`, `offset`, `error_kind`, `topic`) are
/// exactly the bad messages of `0..n`, each once, with its kind.
pub fn assert_dead_letters_exact(dead: &[Value], n: usize) {
    let got: BTreeMap<(i64, i64), String> = dead
        .iter()
        .map(|r| {
            (
                (r["partition"].as_i64().unwrap(), r["offset"].as_i64().unwrap()),
                r["error_kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got.len(), dead.len(), "a dead-letter row is duplicated");
    let want: BTreeMap<(i64, i64), String> = (0..n)
        .filter_map(|i| {
            message(i).1.map(|k| ((i as i64 % PARTITIONS as i64, i as i64 / PARTITIONS as i64), k.to_string()))
        })
        .collect();
    assert_eq!(got, want);
    assert!(dead.iter().all(|r| r["topic"] == "sales"));
}

/// `GET /api/v1/tables`: each table's name and row count.
pub async fn table_counts(api: &Api) -> Vec<(String, i64)> {
    let tables = api.get("/api/v1/tables").await.unwrap();
    tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["row_count"].as_i64().unwrap()))
        .collect()
}

/// Settings for a fast-failover fleet of `icehouse-worker` processes:
/// short leases, frequent heartbeats.
pub fn fleet_env(db_url: &str) -> Vec<(String, String)> {
    let mut env = icehouse_e2e::test_env(db_url);
    env.push(("ICEHOUSE__WORKER__MAX_MESSAGE_BYTES".into(), MAX_MESSAGE_BYTES.to_string()));
    env.push(("ICEHOUSE__WORKER__LEASE_TTL_SECS".into(), "2".into()));
    env.push(("ICEHOUSE__WORKER__HEARTBEAT_MS".into(), "300".into()));
    env
}
