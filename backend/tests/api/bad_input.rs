use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::*;

/// Counts of every table a bad request could touch.
async fn snapshot(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for t in ["tenants", "users", "memberships", "connections", "destinations", "pipelines", "api_tokens", "audit_log"]
    {
        counts.push(app.count(t).await);
    }
    counts
}

#[sqlx::test(migrations = "../migrations")]
async fn malformed_bodies_name_the_field_and_change_nothing(pool: PgPool) {
    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let (cid, did, pid) = seed(&app, &t).await;
    let before = snapshot(&app).await;

    let raw = |body: &'static str| app.raw(Method::POST, "/api/v1/connections", Some(&t), "application/json", body);
    // Not JSON at all.
    let r = raw("{\"name\": ").await;
    r.assert_problem(400, None);
    assert!(r.body["detail"].as_str().unwrap().contains("not valid JSON"), "{}", r.text);
    raw("[1, 2").await.assert_problem(400, None);
    raw("").await.assert_problem(400, None);
    // Unknown, missing and mistyped fields.
    raw(r#"{"name": "c", "bootstrap_servers": ["k:9092"], "colour": "blue"}"#)
        .await
        .assert_problem(400, Some("colour"));
    raw(r#"{"bootstrap_servers": ["k:9092"]}"#).await.assert_problem(400, Some("name"));
    raw(r#"{"name": 7, "bootstrap_servers": ["k:9092"]}"#).await.assert_problem(400, Some("name"));
    raw(r#"{"name": "c", "bootstrap_servers": "k:9092"}"#).await.assert_problem(400, Some("bootstrap_servers"));
    raw(r#"{"name": "c", "bootstrap_servers": ["k:9092"], "security_protocol": "TLS"}"#)
        .await
        .assert_problem(400, Some("security_protocol"));
    // Nested paths are named in full.
    let mut p = pipeline_body("p2", &cid, &did, "t2");
    p["mapping"]["columns"][1]["nullable"] = json!("yes");
    app.post("/api/v1/pipelines", &t, p).await.assert_problem(400, Some("mapping.columns[1].nullable"));
    let mut p = pipeline_body("p2", &cid, &did, "t2");
    p["mapping"]["columns"][0]["typo"] = json!(1);
    app.post("/api/v1/pipelines", &t, p).await.assert_problem(400, Some("mapping.columns[0].typo"));
    // Not JSON by content type; too large.
    app.raw(Method::POST, "/api/v1/connections", Some(&t), "text/plain", "{}").await.assert_problem(415, None);
    let huge = format!(r#"{{"name": "{}", "bootstrap_servers": ["k:9092"]}}"#, "x".repeat(100 * 1024));
    app.raw(Method::POST, "/api/v1/connections", Some(&t), "application/json", huge).await.assert_problem(413, None);
    // Invalid query parameters and ids.
    app.get("/api/v1/pipelines?limit=0", &t).await.assert_problem(422, Some("limit"));
    app.get("/api/v1/pipelines?limit=abc", &t).await.assert_problem(400, Some("limit"));
    app.get("/api/v1/pipelines?cursor=zzz", &t).await.assert_problem(422, Some("cursor"));
    app.get("/api/v1/pipelines?sort=name", &t).await.assert_problem(400, Some("sort"));
    // No table name holds U+0000 (Postgres stores none): a miss, not a fault.
    app.get("/api/v1/tables/raw%00/orders", &t).await.assert_problem(404, None);
    // Unknown routes and methods are problems too.
    app.get("/api/v1/nope", &t).await.assert_problem(404, None);
    app.call(Method::PUT, &format!("/api/v1/pipelines/{pid}"), Some(&t), Some(json!({})))
        .await
        .assert_problem(405, None);

    assert_eq!(snapshot(&app).await, before, "nothing changed");
}

#[sqlx::test(migrations = "../migrations")]
async fn invalid_values_name_the_field_and_change_nothing(pool: PgPool) {
    let app = spawn(pool).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let (cid, did, pid) = seed(&app, &t).await;
    let before = snapshot(&app).await;
    let long = "x".repeat(101);

    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("/api/v1/connections", json!({"name": long, "bootstrap_servers": ["k:9092"]}), 422, "name"),
        ("/api/v1/connections", json!({"name": "  ", "bootstrap_servers": ["k:9092"]}), 422, "name"),
        ("/api/v1/connections", json!({"name": "c", "bootstrap_servers": []}), 422, "bootstrap_servers"),
        (
            "/api/v1/connections",
            json!({"name": "c", "bootstrap_servers": ["k:9092", "no-port"]}),
            422,
            "bootstrap_servers[1]",
        ),
        ("/api/v1/connections", json!({"name": "c", "bootstrap_servers": ["k:99999"]}), 422, "bootstrap_servers[0]"),
        (
            "/api/v1/connections",
            json!({"name": "c", "bootstrap_servers": ["http://k:9092"]}),
            422,
            "bootstrap_servers[0]",
        ),
        (
            "/api/v1/connections",
            json!({"name": "c", "bootstrap_servers": ["k:9092"], "security_protocol": "SASL_SSL"}),
            422,
            "sasl_mechanism",
        ),
        (
            "/api/v1/connections",
            json!({"name": "c", "bootstrap_servers": ["k:9092"], "sasl_username": "u"}),
            422,
            "sasl_username",
        ),
        ("/api/v1/connections", json!({"name": "kafka", "bootstrap_servers": ["k:9092"]}), 409, "name"),
        ("/api/v1/destinations", json!({"name": "d", "warehouse_uri": "/tmp/wh"}), 422, "warehouse_uri"),
        ("/api/v1/destinations", json!({"name": "d", "warehouse_uri": "file://relative/wh"}), 422, "warehouse_uri"),
        ("/api/v1/destinations", json!({"name": "d", "warehouse_uri": "file:///a/../etc"}), 422, "warehouse_uri"),
        ("/api/v1/destinations", json!({"name": "d", "warehouse_uri": "s3://B"}), 422, "warehouse_uri"),
        ("/api/v1/destinations", json!({"name": "d", "warehouse_uri": "ftp://x/y"}), 422, "warehouse_uri"),
        (
            "/api/v1/destinations",
            json!({"name": "d", "warehouse_uri": "file:///wh", "s3_region": "eu"}),
            422,
            "s3_region",
        ),
        (
            "/api/v1/destinations",
            json!({"name": "d", "warehouse_uri": "s3://bucket/x", "s3_access_key_id": "AK"}),
            422,
            "s3_secret_access_key",
        ),
        (
            "/api/v1/destinations",
            json!({"name": "d", "warehouse_uri": "file:///wh", "default_namespace": "Raw-Data"}),
            422,
            "default_namespace",
        ),
        ("/api/v1/destinations", json!({"name": "lake", "warehouse_uri": "file:///wh"}), 409, "name"),
        (
            "/api/v1/pipelines",
            json!({"name": "orders", "connection_id": cid, "topic": "t", "destination_id": did, "table_name": "other", "mapping": {"columns": [{"name": "a", "type": "long", "path": "$.a"}]}}),
            409,
            "name",
        ),
        ("/api/v1/pipelines", pipeline_body("p2", &cid, &did, "orders"), 409, "table_name"),
        (
            "/api/v1/pipelines",
            json!({"name": "p", "connection_id": cid, "topic": "bad topic!", "destination_id": did, "table_name": "t", "mapping": {"columns": [{"name": "a", "type": "long", "path": "$.a"}]}}),
            422,
            "topic",
        ),
        (
            "/api/v1/pipelines",
            json!({"name": "p", "connection_id": cid, "topic": "t", "destination_id": did, "table_name": "Bad-Name", "mapping": {"columns": [{"name": "a", "type": "long", "path": "$.a"}]}}),
            422,
            "table_name",
        ),
        (
            "/api/v1/pipelines",
            json!({"name": "p", "connection_id": cid, "topic": "t", "destination_id": did, "table_name": "t", "mapping": {"columns": []}}),
            422,
            "mapping.columns",
        ),
        (
            "/api/v1/pipelines",
            json!({"name": "p", "connection_id": cid, "topic": "t", "destination_id": did, "table_name": "t", "mapping": {"columns": [{"name": "a", "type": "decimal(40,2)", "path": "$.a"}]}}),
            422,
            "mapping.columns[0].type",
        ),
        (
            "/api/v1/pipelines",
            json!({"name": "p", "connection_id": cid, "topic": "t", "destination_id": did, "table_name": "t", "mapping": {"columns": [{"name": "a", "type": "long", "path": "a.b"}]}}),
            422,
            "mapping.columns[0].path",
        ),
        (
            "/api/v1/pipelines",
            json!({"name": "p", "connection_id": cid, "topic": "t", "destination_id": did, "table_name": "t", "mapping": {"columns": [{"name": "a", "type": "long", "path": "$.a"}, {"name": "a", "type": "string", "path": "$.b"}]}}),
            422,
            "mapping.columns[1].name",
        ),
        (
            "/api/v1/pipelines",
            json!({"name": "p", "connection_id": cid, "topic": "t", "destination_id": did, "table_name": "t", "mapping": {"columns": [{"name": "a", "type": "string", "path": "$.a"}]}, "partition_by": [{"column": "a", "transform": "day"}]}),
            422,
            "partition_by[0].column",
        ),
        (
            "/api/v1/pipelines",
            json!({"name": "p", "connection_id": cid, "topic": "t", "destination_id": did, "table_name": "t", "mapping": {"columns": [{"name": "a", "type": "long", "path": "$.a"}]}, "flush_interval_ms": 5}),
            422,
            "flush_interval_ms",
        ),
        (
            "/api/v1/pipelines",
            json!({"name": "p", "connection_id": uuid::Uuid::now_v7(), "topic": "t", "destination_id": did, "table_name": "t", "mapping": {"columns": [{"name": "a", "type": "long", "path": "$.a"}]}}),
            422,
            "connection_id",
        ),
        ("/api/v1/invitations", json!({"email": "not-an-email", "role": "viewer"}), 422, "email"),
        ("/api/v1/invitations", json!({"email": "ada@acme.test", "role": "viewer"}), 409, "email"),
        ("/api/v1/invitations", json!({"email": "new@acme.test", "role": "superuser"}), 400, "role"),
        (
            "/api/v1/invitations",
            json!({"email": "new@acme.test", "role": "viewer", "password": PASSWORD}),
            400,
            "password",
        ),
        ("/api/v1/me/password", json!({"current_password": PASSWORD, "new_password": "short"}), 422, "new_password"),
        (
            "/api/v1/me/password",
            json!({"current_password": "wrong wrong wrong", "new_password": PASSWORD}),
            422,
            "current_password",
        ),
        ("/api/v1/api-tokens", json!({"name": "t", "role": "viewer", "expires_in_days": 0}), 422, "expires_in_days"),
        // Postgres stores no U+0000: refused by its field, wherever it is.
        ("/api/v1/auth/login", json!({"email": "ada\u{0}@acme.test", "password": PASSWORD}), 422, "email"),
        (
            "/api/v1/connections",
            json!({"name": "c", "bootstrap_servers": ["k:9092", "\u{0}"]}),
            422,
            "bootstrap_servers[1]",
        ),
        (
            "/api/v1/pipelines",
            json!({"name": "p", "connection_id": cid, "topic": "t", "destination_id": did, "table_name": "t", "mapping": {"columns": [{"name": "a", "type": "long", "path": "$.a\u{0}"}]}}),
            422,
            "mapping.columns[0].path",
        ),
    ];
    for (path, body, status, field) in cases {
        let r = app.post(path, &t, body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{path} {body}: {}", r.text);
        r.assert_problem(status, Some(field));
    }
    // Updates are validated after merging with what is stored.
    for (path, body, field) in [
        (format!("/api/v1/connections/{cid}"), json!({"bootstrap_servers": ["nope"]}), "bootstrap_servers[0]"),
        (format!("/api/v1/connections/{cid}"), json!({"security_protocol": "SASL_PLAINTEXT"}), "sasl_mechanism"),
        (format!("/api/v1/destinations/{did}"), json!({"warehouse_uri": "file://x"}), "warehouse_uri"),
        (format!("/api/v1/pipelines/{pid}"), json!({"flush_interval_ms": 0}), "flush_interval_ms"),
        (
            format!("/api/v1/pipelines/{pid}"),
            json!({"mapping": {"columns": [{"name": "order_id", "type": "long", "path": "$.id"}]}}),
            "mapping.columns",
        ),
    ] {
        app.patch(&path, &t, body).await.assert_problem(422, Some(field));
    }
    // Things in use cannot be deleted from under a pipeline.
    app.delete(&format!("/api/v1/connections/{cid}"), &t).await.assert_problem(409, None);
    app.delete(&format!("/api/v1/destinations/{did}"), &t).await.assert_problem(409, None);

    assert_eq!(snapshot(&app).await, before, "nothing changed");
}

#[sqlx::test(migrations = "../migrations")]
async fn signup_refuses_bad_input(pool: PgPool) {
    let app = spawn(pool).await;
    app.signup("Acme", "ada@acme.test").await;
    let before = snapshot(&app).await;
    for (body, status, field) in [
        (json!({"tenant_name": "New", "email": "x@y.test", "password": "elevenchars"}), 422, "password"),
        (json!({"tenant_name": "New", "email": "x@", "password": PASSWORD}), 422, "email"),
        (json!({"tenant_name": "", "email": "x@y.test", "password": PASSWORD}), 422, "tenant_name"),
        (json!({"tenant_name": "x".repeat(101), "email": "x@y.test", "password": PASSWORD}), 422, "tenant_name"),
        (json!({"tenant_name": "acme", "email": "x@y.test", "password": PASSWORD}), 409, "tenant_name"),
        (json!({"tenant_name": "Other", "email": "ADA@acme.test", "password": PASSWORD}), 409, "email"),
        (json!({"tenant_name": "Other", "email": "x@y.test"}), 400, "password"),
    ] {
        let r = app.call(Method::POST, "/api/v1/auth/signup", None, Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text);
        r.assert_problem(status, Some(field));
    }
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(app.get("/healthz", "").await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz", "").await.status, StatusCode::OK);
}

/// A shared server (`serve` defaults) keeps tenants off its own disk and
/// its own cloud credentials; an operator may open one local folder.
#[sqlx::test(migrations = "../migrations")]
async fn destinations_stay_within_what_the_server_allows(pool: PgPool) {
    let root = std::env::temp_dir().join(format!("icehouse-allowed-{}", uuid::Uuid::new_v4().simple()));
    let mut config = test_config();
    config.destinations = Default::default();
    let app = spawn_with(pool.clone(), config.clone()).await;
    let t = token(&app.signup("Acme", "ada@acme.test").await);
    let before = snapshot(&app).await;
    let create = |body: Value| app.post("/api/v1/destinations", &t, body);

    let r = create(json!({"name": "local", "warehouse_uri": format!("file://{}", root.display())})).await;
    r.assert_problem(422, Some("warehouse_uri"));
    assert!(r.text.contains("destinations.local_root"), "{}", r.text);
    let r = create(json!({"name": "host", "warehouse_uri": "s3://lake-bucket/x", "s3_region": "eu-west-1"})).await;
    r.assert_problem(422, Some("s3_access_key_id"));
    assert_eq!(snapshot(&app).await, before);

    // With a local root: inside it, yes; beside it or above it, no.
    config.destinations.local_root = Some(root.clone());
    let app = spawn_with(pool, config).await;
    let create = |body: Value| app.post("/api/v1/destinations", &t, body);
    let inside = create(json!({"name": "in", "warehouse_uri": format!("file://{}/acme", root.display())})).await;
    assert_eq!(inside.status, StatusCode::CREATED, "{}", inside.text);
    let did = inside.body["id"].as_str().unwrap().to_string();
    for outside in [format!("{}-other", root.display()), "/etc".to_string()] {
        let r = create(json!({"name": "out", "warehouse_uri": format!("file://{outside}")})).await;
        r.assert_problem(422, Some("warehouse_uri"));
        assert!(r.text.contains(&root.display().to_string()), "{}", r.text);
    }
    // Moving an allowed destination out is refused the same way.
    let r = app.patch(&format!("/api/v1/destinations/{did}"), &t, json!({"warehouse_uri": "file:///etc"})).await;
    r.assert_problem(422, Some("warehouse_uri"));
    let d = app.get(&format!("/api/v1/destinations/{did}"), &t).await;
    assert_eq!(d.body["warehouse_uri"], format!("file://{}/acme", root.display()));
    // With keys, S3 is fine.
    let keyed = json!({"name": "s3", "warehouse_uri": "s3://lake-bucket/x", "s3_region": "eu-west-1",
                       "s3_access_key_id": "AKIA", "s3_secret_access_key": "secret-key"});
    assert_eq!(create(keyed).await.status, StatusCode::CREATED);
}
