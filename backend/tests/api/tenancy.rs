use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

/// Every route that takes an id answers another tenant exactly as it answers
/// a missing id: 404, and nothing changes.
#[sqlx::test(migrations = "../migrations")]
async fn another_tenants_objects_are_not_found(pool: PgPool) {
    let app = spawn(pool).await;
    let a = token(&app.signup("Tenant A", "a@a.test").await);
    let b = token(&app.signup("Tenant B", "b@b.test").await);
    let (cid, did, pid) = seed(&app, &a).await;
    let invitation = app.invite(&a, "m@a.test", "viewer").await;
    let a_member = app.accept(&invitation, PASSWORD).await;
    let uid = a_member.body["user"]["id"].as_str().unwrap().to_string();
    let tok = app.post("/api/v1/api-tokens", &a, json!({"name": "t", "role": "viewer"})).await;
    let tid = tok.body["token"]["id"].as_str().unwrap().to_string();
    let missing = uuid::Uuid::now_v7().to_string();

    let routes = |c: &str, d: &str, p: &str, u: &str, t: &str| {
        vec![
            (Method::GET, format!("/api/v1/connections/{c}"), None),
            (Method::PATCH, format!("/api/v1/connections/{c}"), Some(json!({"name": "stolen"}))),
            (Method::POST, format!("/api/v1/connections/{c}/test"), None),
            (Method::GET, format!("/api/v1/connections/{c}/topics"), None),
            (Method::DELETE, format!("/api/v1/connections/{c}"), None),
            (Method::GET, format!("/api/v1/destinations/{d}"), None),
            (Method::PATCH, format!("/api/v1/destinations/{d}"), Some(json!({"name": "stolen"}))),
            (Method::DELETE, format!("/api/v1/destinations/{d}"), None),
            (Method::GET, format!("/api/v1/pipelines/{p}"), None),
            (Method::PATCH, format!("/api/v1/pipelines/{p}"), Some(json!({"name": "stolen"}))),
            (Method::POST, format!("/api/v1/pipelines/{p}/pause"), None),
            (Method::POST, format!("/api/v1/pipelines/{p}/resume"), None),
            (Method::DELETE, format!("/api/v1/pipelines/{p}"), None),
            (Method::PATCH, format!("/api/v1/users/{u}"), Some(json!({"role": "admin"}))),
            (Method::DELETE, format!("/api/v1/users/{u}"), None),
            (Method::DELETE, format!("/api/v1/api-tokens/{t}"), None),
        ]
    };
    let audit_before = app.count("audit_log").await;
    for ((method, path, body), (_, missing_path, _)) in
        routes(&cid, &did, &pid, &uid, &tid).into_iter().zip(routes(&missing, &missing, &missing, &missing, &missing))
    {
        let theirs = app.call(method.clone(), &path, Some(&b), body.clone()).await;
        let absent = app.call(method.clone(), &missing_path, Some(&b), body).await;
        theirs.assert_problem(404, None);
        assert_eq!(theirs.body["detail"], absent.body["detail"], "{method} {path}");
        assert_eq!(theirs.body["type"], absent.body["type"]);
    }
    // A malformed id is not found either.
    app.get("/api/v1/pipelines/not-a-uuid", &b).await.assert_problem(404, None);
    assert_eq!(app.count("audit_log").await, audit_before, "nothing changed");

    // Lists show only one's own objects.
    for path in
        ["/api/v1/connections", "/api/v1/destinations", "/api/v1/pipelines", "/api/v1/api-tokens", "/api/v1/audit"]
    {
        let r = app.get(path, &b).await;
        assert_eq!(r.status, StatusCode::OK);
        let items = r.body["items"].as_array().unwrap();
        assert!(
            items.iter().all(|i| ![cid.as_str(), did.as_str(), pid.as_str(), tid.as_str()]
                .contains(&i["id"].as_str().unwrap_or_default())),
            "{path}: {}",
            r.text
        );
    }
    let users = app.get("/api/v1/users", &b).await;
    assert_eq!(users.body["items"].as_array().unwrap().len(), 1);

    // B cannot point a pipeline at A's connection or destination.
    let (bc, bd, _) = seed(&app, &b).await;
    let r = app.post("/api/v1/pipelines", &b, pipeline_body("x", &cid, &bd, "x")).await;
    r.assert_problem(422, Some("connection_id"));
    let r = app.post("/api/v1/pipelines", &b, pipeline_body("x", &bc, &did, "x")).await;
    r.assert_problem(422, Some("destination_id"));

    // A still has everything, unchanged.
    let p = app.get(&format!("/api/v1/pipelines/{pid}"), &a).await;
    assert_eq!(p.body["name"], "orders");
    assert_eq!(p.body["desired_state"], "running");
}

/// Row-level security holds even for a query that forgets its tenant filter.
#[sqlx::test(migrations = "../migrations")]
async fn row_level_security_is_a_second_wall(pool: PgPool) {
    let app = spawn(pool.clone()).await;
    let a = app.signup("Tenant A", "a@a.test").await;
    let b = app.signup("Tenant B", "b@b.test").await;
    seed(&app, &token(&a)).await;
    seed(&app, &token(&b)).await;
    let a_id: icehouse_api::TenantId = a["tenant"]["id"].as_str().unwrap().parse().unwrap();

    let mut tx = icehouse_backend::db::begin_tenant(&pool, a_id).await.unwrap();
    for table in ["connections", "destinations", "pipelines", "memberships", "audit_log", "tenants"] {
        let tenants: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT {} FROM {table}",
            if table == "tenants" { "id" } else { "tenant_id" }
        ))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        assert_eq!(tenants, vec![a_id.as_uuid()], "{table}");
    }
    // Writing a row for another tenant is refused by the policy.
    let b_id: uuid::Uuid = b["tenant"]["id"].as_str().unwrap().parse().unwrap();
    let err = sqlx::query("INSERT INTO connections (id, tenant_id, name, bootstrap_servers, security_protocol) VALUES ($1, $2, 'x', '{a:1}', 'PLAINTEXT')")
        .bind(uuid::Uuid::now_v7())
        .bind(b_id)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);

    // With no tenant set at all, nothing is visible.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pipelines").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 0);
}

/// Requests made for a tenant run under a login in `icehouse_tenant`: a
/// session of it can set `icehouse.system` and still sees only its own
/// tenant, in the catalog and the accounts too; it cannot become the system
/// login, write an account, or read what only system code may.
#[sqlx::test(migrations = "../migrations")]
async fn a_tenant_login_cannot_switch_off_row_level_security(pool: PgPool) {
    let app = spawn(pool.clone()).await;
    let a = app.signup("Tenant A", "a@a.test").await;
    let b = app.signup("Tenant B", "b@b.test").await;
    let (_, a_dest, _) = seed(&app, &token(&a)).await;
    seed(&app, &token(&b)).await;
    let a_id: icehouse_api::TenantId = a["tenant"]["id"].as_str().unwrap().parse().unwrap();
    let tenant = tenant_pool(&pool).await;

    let mut tx = icehouse_backend::db::begin_tenant(&tenant, a_id).await.unwrap();
    sqlx::query("SELECT set_config('icehouse.system', 'on', true)").execute(&mut *tx).await.unwrap();
    for table in ["connections", "destinations", "pipelines", "memberships", "audit_log", "tenants"] {
        let column = if table == "tenants" { "id" } else { "tenant_id" };
        let tenants: Vec<uuid::Uuid> =
            sqlx::query_scalar(&format!("SELECT DISTINCT {column} FROM {table}")).fetch_all(&mut *tx).await.unwrap();
        assert_eq!(tenants, vec![a_id.as_uuid()], "{table}");
    }
    let emails: Vec<String> = sqlx::query_scalar("SELECT email FROM users").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(emails, vec!["a@a.test"]);
    let catalogs: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT catalog_name FROM iceberg_tables").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(catalogs, vec![a_dest.clone()], "the catalog holds only A's destination");
    for table in ["password_resets", "signup_requests", "workers"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await.unwrap();
        assert_eq!(n, 0, "{table} is system code's only");
    }
    let err = sqlx::query("UPDATE users SET password_hash = 'x'").execute(&mut *tx).await;
    assert_eq!(err.unwrap().rows_affected(), 0, "a tenant cannot write an account, not even its own members'");
    let err = sqlx::query("INSERT INTO users (id, email, password_hash) VALUES ($1, 'evil@x.test', 'x')")
        .bind(uuid::Uuid::now_v7())
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);
    let mut conn = tenant.acquire().await.unwrap();
    let system_login = pool.connect_options().get_username().to_string();
    let err = sqlx::query(&format!("SET ROLE \"{system_login}\"")).execute(&mut *conn).await.unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");

    // The system login, with the same setting, does see both (the policies
    // are not merely refusing everything).
    let mut tx = icehouse_backend::db::begin_system(&pool).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(DISTINCT catalog_name) FROM iceberg_tables")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(n, 2);
    drop((tx, conn));
    tenant.close().await;
}
