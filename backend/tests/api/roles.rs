use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;

#[sqlx::test(migrations = "../migrations")]
async fn each_role_can_do_what_it_may_and_nothing_more(pool: PgPool) {
    let app = spawn(pool).await;
    let owner = token(&app.signup("Acme", "owner@acme.test").await);
    let (cid, did, pid) = seed(&app, &owner).await;
    let viewer = app.member(&owner, "viewer@acme.test", "viewer").await;
    let editor = app.member(&owner, "editor@acme.test", "editor").await;
    let admin = app.member(&owner, "admin@acme.test", "admin").await;

    // Everyone reads.
    for t in [&viewer, &editor, &admin, &owner] {
        for path in [
            "/api/v1/connections".to_string(),
            format!("/api/v1/connections/{cid}"),
            "/api/v1/destinations".to_string(),
            format!("/api/v1/destinations/{did}"),
            "/api/v1/pipelines".to_string(),
            format!("/api/v1/pipelines/{pid}"),
            "/api/v1/users".to_string(),
            "/api/v1/me".to_string(),
        ] {
            assert_eq!(app.get(&path, t).await.status, StatusCode::OK, "{path}");
        }
    }

    // Viewers change nothing.
    for (path, body) in [
        ("/api/v1/connections", connection_body("v")),
        ("/api/v1/destinations", destination_body("v")),
        ("/api/v1/pipelines", pipeline_body("v", &cid, &did, "v")),
    ] {
        app.post(path, &viewer, body).await.assert_problem(403, None);
    }
    app.patch(&format!("/api/v1/connections/{cid}"), &viewer, json!({"name": "x"})).await.assert_problem(403, None);
    app.delete(&format!("/api/v1/destinations/{did}"), &viewer).await.assert_problem(403, None);
    app.post(&format!("/api/v1/pipelines/{pid}/pause"), &viewer, json!({})).await.assert_problem(403, None);
    app.post("/api/v1/invitations", &viewer, json!({"email": "x@acme.test", "role": "viewer"}))
        .await
        .assert_problem(403, None);
    app.get("/api/v1/audit", &viewer).await.assert_problem(403, None);

    // Editors manage connections, destinations and pipelines, but not people or tokens.
    assert_eq!(app.post("/api/v1/connections", &editor, connection_body("e")).await.status, StatusCode::CREATED);
    let paused = app.post(&format!("/api/v1/pipelines/{pid}/pause"), &editor, json!({})).await;
    assert_eq!(paused.body["desired_state"], "paused");
    let resumed = app.post(&format!("/api/v1/pipelines/{pid}/resume"), &editor, json!({})).await;
    assert_eq!(resumed.body["desired_state"], "running");
    app.post("/api/v1/invitations", &editor, json!({"email": "x@acme.test", "role": "viewer"}))
        .await
        .assert_problem(403, None);
    app.get("/api/v1/invitations", &editor).await.assert_problem(403, None);
    app.post("/api/v1/api-tokens", &editor, json!({"name": "ci", "role": "viewer"})).await.assert_problem(403, None);
    app.get("/api/v1/api-tokens", &editor).await.assert_problem(403, None);
    app.get("/api/v1/audit", &editor).await.assert_problem(403, None);

    // Admins also manage users and tokens, but cannot hand out ownership.
    let invitation = app.invite(&admin, "new@acme.test", "editor").await;
    let added = app.accept(&invitation, PASSWORD).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let new_id = added.body["user"]["id"].as_str().unwrap().to_string();
    app.post("/api/v1/invitations", &admin, json!({"email": "boss@acme.test", "role": "owner"}))
        .await
        .assert_problem(403, None);
    app.patch(&format!("/api/v1/users/{new_id}"), &admin, json!({"role": "owner"})).await.assert_problem(403, None);
    assert_eq!(
        app.patch(&format!("/api/v1/users/{new_id}"), &admin, json!({"role": "viewer"})).await.body["role"],
        "viewer"
    );
    assert_eq!(app.get("/api/v1/audit", &admin).await.status, StatusCode::OK);
    let owner_id = app.get("/api/v1/me", &owner).await.body["principal"]["id"].as_str().unwrap().to_string();
    app.delete(&format!("/api/v1/users/{owner_id}"), &admin).await.assert_problem(403, None);
    app.patch(&format!("/api/v1/users/{owner_id}"), &admin, json!({"role": "viewer"})).await.assert_problem(403, None);

    // Owners do everything but leave the tenant without an owner.
    app.patch(&format!("/api/v1/users/{owner_id}"), &owner, json!({"role": "admin"}))
        .await
        .assert_problem(409, Some("role"));
    app.delete(&format!("/api/v1/users/{owner_id}"), &owner).await.assert_problem(409, None);
    assert_eq!(
        app.patch(&format!("/api/v1/users/{new_id}"), &owner, json!({"role": "owner"})).await.body["role"],
        "owner"
    );
    // With a second owner, the first may step down.
    assert_eq!(
        app.patch(&format!("/api/v1/users/{owner_id}"), &owner, json!({"role": "admin"})).await.status,
        StatusCode::OK
    );
    // …and the role change applies to the very next request of their live token.
    app.patch(&format!("/api/v1/users/{new_id}"), &owner, json!({"role": "viewer"})).await.assert_problem(403, None);
}

#[sqlx::test(migrations = "../migrations")]
async fn api_tokens_carry_a_role_and_die_when_revoked(pool: PgPool) {
    let app = spawn(pool).await;
    let owner = token(&app.signup("Acme", "owner@acme.test").await);
    let admin = app.member(&owner, "admin@acme.test", "admin").await;

    let created = app
        .post("/api/v1/api-tokens", &admin, json!({"name": "ci-reader", "role": "viewer", "expires_in_days": 30}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret = created.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("ihk_"));
    let token_id = created.body["token"]["id"].as_str().unwrap().to_string();
    assert!(created.body["token"]["expires_at"].is_string());

    // The secret is never shown again.
    let listed = app.get("/api/v1/api-tokens", &admin).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert!(!listed.text.contains(&secret));

    let me = app.get("/api/v1/me", &secret).await;
    assert_eq!(me.body["principal"], json!({"kind": "api_token", "id": token_id, "name": "ci-reader"}));
    assert_eq!(me.body["role"], "viewer");
    assert_eq!(app.get("/api/v1/pipelines", &secret).await.status, StatusCode::OK);
    app.post("/api/v1/connections", &secret, connection_body("c")).await.assert_problem(403, None);

    // No token with more rights than its creator.
    app.post("/api/v1/api-tokens", &admin, json!({"name": "root", "role": "owner"})).await.assert_problem(403, None);
    // Duplicate names are refused by field.
    app.post("/api/v1/api-tokens", &admin, json!({"name": "ci-reader", "role": "viewer"}))
        .await
        .assert_problem(409, Some("name"));

    // An editor token can write.
    let editor_token = app.post("/api/v1/api-tokens", &admin, json!({"name": "ci-writer", "role": "editor"})).await;
    let writer = editor_token.body["secret"].as_str().unwrap().to_string();
    assert_eq!(app.post("/api/v1/connections", &writer, connection_body("c")).await.status, StatusCode::CREATED);

    assert_eq!(app.delete(&format!("/api/v1/api-tokens/{token_id}"), &admin).await.status, StatusCode::NO_CONTENT);
    app.get("/api/v1/me", &secret).await.assert_problem(401, None);
}

/// A token lives no longer than its creator's membership and has no more
/// rights than the creator has now; without an expiry it gets the default.
#[sqlx::test(migrations = "../migrations")]
async fn api_tokens_follow_their_creator_out_and_down(pool: PgPool) {
    let app = spawn(pool).await;
    let owner = token(&app.signup("Acme", "owner@acme.test").await);
    let admin = app.member(&owner, "admin@acme.test", "admin").await;
    let admin_id = app.get("/api/v1/me", &admin).await.body["principal"]["id"].as_str().unwrap().to_string();

    let created = app.post("/api/v1/api-tokens", &admin, json!({"name": "ci-writer", "role": "admin"})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let expires: chrono::DateTime<chrono::Utc> =
        created.body["token"]["expires_at"].as_str().unwrap().parse().expect("every token expires");
    let days = (expires - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((89.9..=90.1).contains(&days), "expires in {days} days, not the default 90");
    let writer = created.body["secret"].as_str().unwrap().to_string();
    // A token made by the token still belongs to the admin.
    let child = app.post("/api/v1/api-tokens", &writer, json!({"name": "ci-child", "role": "editor"})).await;
    assert_eq!(child.status, StatusCode::CREATED, "{}", child.text);
    let child = child.body["secret"].as_str().unwrap().to_string();
    assert_eq!(app.post("/api/v1/connections", &writer, connection_body("a")).await.status, StatusCode::CREATED);

    // Demoted to viewer: the tokens are viewers too.
    let r = app.patch(&format!("/api/v1/users/{admin_id}"), &owner, json!({"role": "viewer"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for t in [&writer, &child] {
        assert_eq!(app.get("/api/v1/me", t).await.body["role"], "viewer");
        app.post("/api/v1/connections", t, connection_body("b")).await.assert_problem(403, None);
    }
    let listed = app.get("/api/v1/api-tokens", &owner).await;
    let roles: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().map(|t| t["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["viewer", "viewer"]);
    // Promoted again, the tokens stay capped (a new token is needed for more).
    app.patch(&format!("/api/v1/users/{admin_id}"), &owner, json!({"role": "admin"})).await;
    assert_eq!(app.get("/api/v1/me", &writer).await.body["role"], "viewer");

    // Removed: the tokens die with the membership.
    assert_eq!(app.delete(&format!("/api/v1/users/{admin_id}"), &owner).await.status, StatusCode::NO_CONTENT);
    for t in [&writer, &child] {
        app.get("/api/v1/me", t).await.assert_problem(401, None);
    }
    assert_eq!(app.get("/api/v1/api-tokens", &owner).await.body["items"], json!([]));
}
