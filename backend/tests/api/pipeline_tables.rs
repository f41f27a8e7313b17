//! A pipeline's mapping against the Iceberg table it writes to: until schema
//! evolution exists, a mapping the table as it is cannot take is refused
//! (422 naming `mapping`, with the differing columns), on update and when a
//! new pipeline reuses a table a deleted one left; what leaves the schema as
//! it is (paths, timestamp formats, the name) is stored and runs.

use icehouse_api::pipelines::{CompiledMapping, Mapping, MessageFormat};
use icehouse_workers::formats::RowDecoder;
use icehouse_workers::iceberg::{load_table, S3Access, Warehouse};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::*;

/// The pipeline's table as its metadata says, and whether a worker's decoder
/// takes the pipeline's stored mapping on it (what the worker does first).
async fn decoder_takes_stored_mapping(app: &TestApp, t: &str, pid: &str) -> Result<(), String> {
    let p = app.get(&format!("/api/v1/pipelines/{pid}"), t).await.body;
    let did = p["destination_id"].as_str().unwrap();
    let d = app.get(&format!("/api/v1/destinations/{did}"), t).await.body;
    let wh = Warehouse::open(did, d["warehouse_uri"].as_str().unwrap(), &S3Access::default()).unwrap();
    let mut tx = icehouse_backend::db::begin_system(&app.pool).await.unwrap();
    let table = load_table(&mut tx, &wh, p["namespace"].as_str().unwrap(), p["table_name"].as_str().unwrap())
        .await
        .unwrap()
        .expect("the table exists from the pipeline's creation");
    tx.commit().await.unwrap();
    let mapping: Mapping = serde_json::from_value(p["mapping"].clone()).unwrap();
    let mapping = CompiledMapping::compile(&mapping).unwrap();
    RowDecoder::new(MessageFormat::Json, &mapping, table.arrow_schema().unwrap(), 1024)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

fn columns(columns: Value) -> Value {
    json!({"mapping": {"columns": columns}})
}

#[sqlx::test(migrations = "../migrations")]
async fn an_update_must_keep_the_tables_schema(pool: PgPool) {
    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let (_cid, _did, pid) = seed(&app, &t).await;
    let path = format!("/api/v1/pipelines/{pid}");
    let stored = app.get(&path, &t).await.body;
    decoder_takes_stored_mapping(&app, &t, &pid).await.unwrap();

    // Another type and a new column: refused, with both named, and nothing stored.
    let r = app
        .patch(
            &path,
            &t,
            columns(json!([
                {"name": "order_id", "type": "long", "path": "$.id", "nullable": false},
                {"name": "placed_at", "type": "timestamptz", "path": "$.placed_at"},
                {"name": "amount", "type": "string", "path": "$.amount"},
                {"name": "note", "type": "string", "path": "$.note"}
            ])),
        )
        .await;
    r.assert_problem(422, Some("mapping"));
    assert_eq!(
        r.body["errors"],
        json!([{
            "field": "mapping",
            "message": "does not match the existing table `raw.orders`, and changing a table's schema is not \
                        supported yet: column `amount`: table has decimal(12,2), mapping gives string; \
                        column `note` is not in the table"
        }]),
        "{}",
        r.text
    );
    assert!(r.body["detail"].as_str().unwrap().starts_with("mapping: does not match"), "{}", r.text);

    // Nullability, a dropped column and the order count as well.
    for (mapping, difference) in [
        (
            json!([
                {"name": "order_id", "type": "long", "path": "$.id", "nullable": true},
                {"name": "placed_at", "type": "timestamptz", "path": "$.placed_at"},
                {"name": "amount", "type": "decimal(12,2)", "path": "$.amount"}
            ]),
            "column `order_id`: table has required, mapping gives nullable",
        ),
        (
            json!([
                {"name": "order_id", "type": "long", "path": "$.id", "nullable": false},
                {"name": "placed_at", "type": "timestamptz", "path": "$.placed_at"}
            ]),
            "the table's column `amount` is not in the mapping",
        ),
        (
            json!([
                {"name": "placed_at", "type": "timestamptz", "path": "$.placed_at"},
                {"name": "order_id", "type": "long", "path": "$.id", "nullable": false},
                {"name": "amount", "type": "decimal(12,2)", "path": "$.amount"}
            ]),
            "the columns are in another order than the table's (order_id, placed_at, amount)",
        ),
    ] {
        let r = app.patch(&path, &t, columns(mapping)).await;
        r.assert_problem(422, Some("mapping"));
        let message = r.body["errors"][0]["message"].as_str().unwrap();
        assert!(message.ends_with(&format!("not supported yet: {difference}")), "{}", r.text);
    }
    let after = app.get(&path, &t).await.body;
    assert_eq!(after["mapping"], stored["mapping"]);
    assert_eq!(after["updated_at"], stored["updated_at"]);

    // Other paths, a timestamp format and a new name leave the schema as it is: stored, and a worker runs on it.
    let moved = json!([
        {"name": "order_id", "type": "long", "path": "$.order.id", "nullable": false},
        {"name": "placed_at", "type": "timestamptz", "path": "$.order.at", "timestamp_format": "epoch_millis"},
        {"name": "amount", "type": "decimal(12,2)", "path": "$.total"}
    ]);
    let r = app.patch(&path, &t, json!({"name": "orders v2", "mapping": {"columns": moved.clone()}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let after = app.get(&path, &t).await.body;
    assert_eq!(after["name"], "orders v2");
    assert_eq!(after["mapping"]["columns"][1]["timestamp_format"], "epoch_millis");
    assert_eq!(after["mapping"]["columns"][2]["path"], "$.total");
    decoder_takes_stored_mapping(&app, &t, &pid).await.unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_new_pipeline_on_a_left_table_must_fit_it(pool: PgPool) {
    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let (cid, did, pid) = seed(&app, &t).await;
    // Deleting the pipeline leaves its table (and its rows) in the warehouse.
    assert_eq!(app.delete(&format!("/api/v1/pipelines/{pid}"), &t).await.status, StatusCode::NO_CONTENT);
    let audit_before = app.count("audit_log").await;
    // As if the table came from another engine: no dead-letter table beside it.
    let mut tx = icehouse_backend::db::begin_system(&app.pool).await.unwrap();
    sqlx::query("DELETE FROM iceberg_tables WHERE table_name = 'orders_dead_letter'").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();

    let mut other = pipeline_body("orders again", &cid, &did, "orders");
    other["mapping"]["columns"][0]["type"] = json!("string");
    other["mapping"]["columns"][2]["name"] = json!("total");
    let r = app.post("/api/v1/pipelines", &t, other).await;
    r.assert_problem(422, Some("mapping"));
    assert_eq!(
        r.body["errors"][0]["message"],
        "does not match the existing table `raw.orders`, and changing a table's schema is not supported yet: \
         column `order_id`: table has long, mapping gives string; column `total` is not in the table; \
         the table's column `amount` is not in the mapping",
        "{}",
        r.text
    );
    // Another partitioning of the same columns is refused too, by its own field.
    let mut hourly = pipeline_body("orders again", &cid, &did, "orders");
    hourly["partition_by"] = json!([{"column": "placed_at", "transform": "hour"}]);
    let r = app.post("/api/v1/pipelines", &t, hourly).await;
    r.assert_problem(422, Some("partition_by"));
    assert_eq!(
        r.body["errors"],
        json!([{
            "field": "partition_by",
            "message": "does not match the existing table `raw.orders`: the table is partitioned by \
                        day(placed_at), the pipeline asks for hour(placed_at)"
        }])
    );
    assert_eq!(app.count("pipelines").await, 0, "nothing was created");
    assert_eq!(app.count("iceberg_tables").await, 1, "not even a dead-letter table for the refused pipeline");
    assert_eq!(app.count("audit_log").await, audit_before);

    // The same schema, read from other paths: the table is reused.
    let mut same = pipeline_body("orders again", &cid, &did, "orders");
    same["mapping"]["columns"][2]["path"] = json!("$.total");
    let r = app.post("/api/v1/pipelines", &t, same).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    decoder_takes_stored_mapping(&app, &t, r.body["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(app.count("iceberg_tables").await, 2, "the accepted one has its dead-letter table");
}

/// Only the table the pipeline writes to counts: one of the same name in
/// another namespace is another table.
#[sqlx::test(migrations = "../migrations")]
async fn another_namespace_is_another_table(pool: PgPool) {
    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let (cid, did, _pid) = seed(&app, &t).await;
    let mut other = pipeline_body("orders elsewhere", &cid, &did, "orders");
    other["namespace"] = json!("staging");
    other["mapping"]["columns"][0]["type"] = json!("string");
    let r = app.post("/api/v1/pipelines", &t, other).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
}

/// A pipeline whose row cannot be written after its tables were made (here
/// a trigger refuses the second insert: the first is the dry run) leaves no
/// tables behind: they are dropped again, files and all.
#[sqlx::test(migrations = "../migrations")]
async fn tables_made_for_a_pipeline_that_was_not_are_dropped(pool: PgPool) {
    for statement in [
        "CREATE SEQUENCE pipeline_inserts",
        "GRANT USAGE ON SEQUENCE pipeline_inserts TO icehouse_tenant",
        "CREATE FUNCTION refuse_every_second() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF nextval('pipeline_inserts') % 2 = 0 THEN RAISE EXCEPTION 'refused by the test'; END IF;
         RETURN NEW; END $$",
        "CREATE TRIGGER refuse_every_second BEFORE INSERT ON pipelines FOR EACH ROW EXECUTE FUNCTION refuse_every_second()",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let c = app.post("/api/v1/connections", &t, connection_body("kafka")).await;
    let d = app.post("/api/v1/destinations", &t, destination_body("lake")).await;
    let (cid, did) = (c.body["id"].as_str().unwrap(), d.body["id"].as_str().unwrap());
    let root = d.body["warehouse_uri"].as_str().unwrap().strip_prefix("file://").unwrap().to_string();

    let r = app.post("/api/v1/pipelines", &t, pipeline_body("orders", cid, did, "orders")).await;
    r.assert_problem(500, None);
    assert_eq!(app.count("pipelines").await, 0);
    assert_eq!(app.count("iceberg_tables").await, 0, "the tables made for it are gone");
    let metadata_files = walk(std::path::Path::new(&root)).into_iter().filter(|p| p.ends_with(".metadata.json"));
    assert_eq!(metadata_files.count(), 0, "and so are their metadata files");

    // Without the trigger, the same request lands, with both tables.
    sqlx::query("DROP TRIGGER refuse_every_second ON pipelines").execute(&app.pool).await.unwrap();
    let r = app.post("/api/v1/pipelines", &t, pipeline_body("orders", cid, did, "orders")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(app.count("iceberg_tables").await, 2);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|e| match e.file_type().is_ok_and(|t| t.is_dir()) {
            true => walk(&e.path()),
            false => vec![e.path().display().to_string()],
        })
        .collect()
}
