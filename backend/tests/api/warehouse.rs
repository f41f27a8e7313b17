//! A pipeline's tables are created with it, in its destination's warehouse:
//! a warehouse that cannot be written is the warehouse's failure (502, and
//! the pipeline is not created), not a bad request.

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrations = "../migrations")]
async fn a_warehouse_that_cannot_be_written_is_a_502_and_no_pipeline(pool: PgPool) {
    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let c = app.post("/api/v1/connections", &t, connection_body("kafka")).await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);

    // The root is there, but where the namespace's folder must go is a
    // regular file (which stops root too, unlike a chmod).
    let root = std::env::temp_dir().join(format!("icehouse-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("raw"), b"not a folder").unwrap();
    let body =
        json!({"name": "lake", "warehouse_uri": format!("file://{}", root.display()), "default_namespace": "raw"});
    let d = app.post("/api/v1/destinations", &t, body).await;
    assert_eq!(d.status, StatusCode::CREATED, "{}", d.text);
    let (cid, did) = (c.body["id"].as_str().unwrap(), d.body["id"].as_str().unwrap());

    let p = app.post("/api/v1/pipelines", &t, pipeline_body("orders", cid, did, "orders")).await;
    p.assert_problem(502, None);
    assert_eq!(p.body["type"], "/problems/warehouse-unavailable", "{}", p.text);
    let detail = p.body["detail"].as_str().unwrap();
    let want = "the warehouse could not be reached: table raw.orders: writing the first metadata file file://";
    assert!(detail.starts_with(want), "{detail}");
    assert!(detail.contains("Not a directory"), "{detail}");
    assert_eq!(app.count("pipelines").await, 0);
    assert_eq!(app.count("iceberg_tables").await, 0);
    std::fs::remove_dir_all(&root).unwrap();
}

/// Item 7 of the security issue: what a tenant's endpoint answers is not
/// echoed. An "S3" that refuses everything with a body of its choosing (here
/// a canary) yields a kind and a short message, never that body.
#[sqlx::test(migrations = "../migrations")]
async fn an_object_stores_error_body_is_never_echoed(pool: PgPool) {
    const CANARY: &str = "CANARY-7f3a <script>alert(1)</script>";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 64 * 1024];
                let _ = stream.read(&mut buf).await;
                let body = format!(
                    "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>{CANARY}</Message></Error>"
                );
                let answer = format!(
                    "HTTP/1.1 403 Forbidden\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });

    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let c = app.post("/api/v1/connections", &t, connection_body("kafka")).await;
    let d = app.post("/api/v1/destinations", &t, s3_destination(&endpoint)).await;
    // Either the destination or the pipeline that writes into it meets the refusal.
    let failed = if d.status == StatusCode::CREATED {
        let (cid, did) = (c.body["id"].as_str().unwrap(), d.body["id"].as_str().unwrap());
        app.post("/api/v1/pipelines", &t, pipeline_body("orders", cid, did, "orders")).await
    } else {
        d
    };
    failed.assert_problem(502, None);
    assert!(!failed.text.contains("CANARY") && !failed.text.contains("<Error>"), "{}", failed.text);
    assert!(failed.text.contains("access denied by the object store"), "{}", failed.text);
}

/// Item 9 of the security issue: a bucket that accepts connections and never
/// answers holds no database connection while it is waited for, so with 50
/// table listings and 50 pipeline creations (which write the new tables'
/// metadata) in flight on a pool of 8, the health checks and another
/// tenant's tables still answer at once.
#[sqlx::test(migrations = "../migrations")]
async fn a_silent_bucket_does_not_take_the_pool(pool: PgPool) {
    // A tarpit: connections are accepted and held, and nothing is ever sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut config = test_config();
    config.database.max_connections = 8;
    config.http.request_timeout_secs = 8;
    let app = spawn_with(pool, config).await;
    let slow = token(&app.signup("Slow", "ada@slow.test").await);
    let other = token(&app.signup("Other", "bob@other.test").await);
    let d = app.post("/api/v1/destinations", &slow, s3_destination(&endpoint)).await;
    assert_eq!(d.status, StatusCode::CREATED, "{}", d.text);
    // A table in the catalog whose metadata file is behind the tarpit.
    let mut tx = icehouse_backend::db::begin_system(&app.pool).await.unwrap();
    sqlx::query("INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, metadata_location) VALUES ($1, 'raw', 't', $2)")
        .bind(d.body["id"].as_str().unwrap())
        .bind("s3://bucket/wh/raw/t/metadata/00001-0195e8a6-8c3e-7c1a-9b7e-3b6a3c1e2f40.metadata.json")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let c = app.post("/api/v1/connections", &slow, connection_body("kafka")).await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    let (cid, did) = (c.body["id"].as_str().unwrap(), d.body["id"].as_str().unwrap());

    let mut stuck = Vec::new();
    for i in 0..50 {
        let (http, url, bearer) = (app.http.clone(), app.url("/api/v1/tables"), slow.clone());
        stuck.push(tokio::spawn(async move { http.get(url).bearer_auth(bearer).send().await.map(|r| r.status()) }));
        let (http, url, bearer) = (app.http.clone(), app.url("/api/v1/pipelines"), slow.clone());
        let body = pipeline_body(&format!("p{i}"), cid, did, &format!("t{i}"));
        stuck.push(tokio::spawn(async move {
            http.post(url).bearer_auth(bearer).json(&body).send().await.map(|r| r.status())
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(stuck.iter().all(|t| !t.is_finished()), "the tarpit answered");
    for (path, bearer) in [("/healthz", ""), ("/readyz", ""), ("/api/v1/tables", other.as_str())] {
        let asked = std::time::Instant::now();
        let r = app.get(path, bearer).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert!(asked.elapsed() < std::time::Duration::from_secs(1), "{path} took {:?}", asked.elapsed());
    }
    // The stuck ones end by the request timeout (503), or the store client's own (502).
    for task in stuck {
        let status = task.await.unwrap().unwrap();
        assert!(matches!(status.as_u16(), 502 | 503), "{status}");
    }
    // No pipeline was made without its tables, and none holds a table name.
    assert_eq!(app.count("pipelines").await, 0);
}

/// A destination in an S3 bucket behind `endpoint` (a server the test runs).
fn s3_destination(endpoint: &str) -> serde_json::Value {
    json!({"name": "lake", "warehouse_uri": "s3://bucket/wh", "s3_endpoint": endpoint, "s3_region": "us-east-1",
           "s3_access_key_id": "AKIDEXAMPLE", "s3_secret_access_key": "secret", "default_namespace": "raw"})
}

/// Item 8 of the security issue: a table's manifests are the tenant's to
/// write, so a scan reads only files inside the table's folder. Here the
/// metadata of `other` (inside its folder, as checked on load) names a copy
/// of `orders`' manifest list, whose manifests and data files are
/// `orders'`: the query refuses it (502, the metadata is not read) instead
/// of answering with `orders'` rows.
#[sqlx::test(migrations = "../migrations")]
async fn a_table_whose_manifests_lie_outside_its_folder_is_not_read(pool: PgPool) {
    use icehouse_api::pipelines::{CompiledMapping, MessageFormat};
    use icehouse_workers::formats::RowDecoder;
    use icehouse_workers::iceberg::{self as ice, S3Access, Warehouse};
    use icehouse_workers::mapping::KafkaMessage;

    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let (cid, did, pid) = seed(&app, &t).await;
    let p = app.post("/api/v1/pipelines", &t, pipeline_body("other", &cid, &did, "other")).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
    let d = app.get(&format!("/api/v1/destinations/{did}"), &t).await.body;
    let wh = Warehouse::open(&did, d["warehouse_uri"].as_str().unwrap(), &S3Access::default()).unwrap();
    let load = |name: &'static str| {
        let (pool, wh) = (app.pool.clone(), wh.clone());
        async move {
            let mut tx = icehouse_backend::db::begin_system(&pool).await.unwrap();
            let table = ice::load_table(&mut tx, &wh, "raw", name).await.unwrap().unwrap();
            tx.commit().await.unwrap();
            table
        }
    };

    // One row in `orders`.
    let orders = load("orders").await;
    let mapping = app.get(&format!("/api/v1/pipelines/{pid}"), &t).await.body["mapping"].clone();
    let mapping = CompiledMapping::compile(&serde_json::from_value(mapping).unwrap()).unwrap();
    let mut rows = RowDecoder::new(MessageFormat::Json, &mapping, orders.arrow_schema().unwrap(), 1024).unwrap();
    let value = br#"{"id": 7, "placed_at": "2026-12-01T10:00:00Z", "amount": "12.50"}"#.to_vec();
    rows.push(&KafkaMessage { topic: "orders".into(), value: Some(value), ..Default::default() }).unwrap();
    let files = ice::write_data_files(&wh, &orders, rows.finish()).await.unwrap();
    let prepared = ice::prepare_append(&wh, &orders, files, Default::default()).await.unwrap();
    let mut tx = icehouse_backend::db::begin_system(&app.pool).await.unwrap();
    ice::swap_pointer(&mut tx, &wh, &prepared).await.unwrap();
    tx.commit().await.unwrap();
    let query = |sql: &'static str| app.post("/api/v1/query", &t, json!({"sql": sql}));
    let r = query("SELECT order_id FROM raw.orders").await;
    assert_eq!((r.status, &r.body["rows"]), (StatusCode::OK, &json!([[7]])), "{}", r.text);

    // `other`'s planted metadata: `orders`' with `other`'s location, its
    // manifest list copied into `other`'s folder.
    let other = load("other").await;
    let folder = other.metadata.location().to_string();
    let local = |url: &str| std::path::PathBuf::from(url.strip_prefix("file://").unwrap());
    let mut planted = serde_json::to_value(&prepared.into_loaded().metadata).unwrap();
    planted["location"] = json!(folder);
    planted["metadata-log"] = json!([]);
    for snapshot in planted["snapshots"].as_array_mut().unwrap() {
        let list = snapshot["manifest-list"].as_str().unwrap().to_string();
        let copy = format!("{folder}/metadata/{}", list.rsplit('/').next().unwrap());
        std::fs::copy(local(&list), local(&copy)).unwrap();
        snapshot["manifest-list"] = json!(copy);
    }
    let planted_at = format!("{folder}/metadata/00001-{}.metadata.json", uuid::Uuid::new_v4());
    std::fs::write(local(&planted_at), serde_json::to_vec(&planted).unwrap()).unwrap();
    let mut tx = icehouse_backend::db::begin_system(&app.pool).await.unwrap();
    sqlx::query("UPDATE iceberg_tables SET metadata_location = $1 WHERE table_name = 'other'")
        .bind(&planted_at)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let r = query("SELECT order_id FROM raw.other").await;
    r.assert_problem(502, None);
    let orders_folder = orders.metadata.location();
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.starts_with("the warehouse holds metadata Icehouse does not read: "), "{detail}");
    assert!(detail.contains(&format!("{orders_folder}/metadata/")), "names the manifest: {detail}");
    assert!(detail.contains(&format!("is not inside {folder}")), "{detail}");
}
