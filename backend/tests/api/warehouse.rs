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
