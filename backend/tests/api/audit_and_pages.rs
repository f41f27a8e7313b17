use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrations = "../migrations")]
async fn every_mutation_is_audited_with_before_and_after(pool: PgPool) {
    let app = spawn(pool).await;
    let s = app.signup("Acme", "ada@acme.test").await;
    let t = token(&s);
    let (cid, _did, pid) = seed(&app, &t).await;
    app.patch(&format!("/api/v1/pipelines/{pid}"), &t, json!({"flush_interval_ms": 2000})).await;
    app.post(&format!("/api/v1/pipelines/{pid}/pause"), &t, json!({})).await;
    app.delete(&format!("/api/v1/pipelines/{pid}"), &t).await;
    app.delete(&format!("/api/v1/connections/{cid}"), &t).await;

    let audit = app.get("/api/v1/audit", &t).await;
    assert_eq!(audit.status, StatusCode::OK);
    let items = audit.body["items"].as_array().unwrap();
    let actions: Vec<&str> = items.iter().map(|i| i["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "connection.delete",
            "pipeline.delete",
            "pipeline.pause",
            "pipeline.update",
            "pipeline.create",
            "destination.create",
            "connection.create",
            "tenant.create"
        ]
    );
    let update = &items[3];
    assert_eq!(update["before"]["flush_interval_ms"], 1000);
    assert_eq!(update["after"]["flush_interval_ms"], 2000);
    assert_eq!(update["actor_user_id"], s["user"]["id"]);
    assert_eq!(update["resource_id"], pid.as_str());
    assert!(!update["request_id"].as_str().unwrap().is_empty());
    assert_eq!(items[0]["after"], serde_json::Value::Null);
    assert_eq!(items[0]["before"]["id"], cid.as_str());
}

#[sqlx::test(migrations = "../migrations")]
async fn lists_page_by_cursor_without_gaps_or_repeats(pool: PgPool) {
    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let mut created = Vec::new();
    for i in 0..5 {
        let r = app.post("/api/v1/connections", &t, connection_body(&format!("c{i}"))).await;
        created.push(r.body["id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/connections?limit=2&cursor={c}"),
            None => "/api/v1/connections?limit=2".to_string(),
        };
        let r = app.get(&path, &t).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        pages += 1;
        seen.extend(r.body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()));
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);
}
