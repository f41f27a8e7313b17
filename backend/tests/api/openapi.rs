use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::*;

/// The committed spec is the one the router generates. To regenerate:
/// `cargo run --release -p icehouse-backend --bin icehouse -- openapi > openapi/openapi.json`.
#[test]
fn committed_spec_matches_the_router() {
    let generated = serde_json::to_string_pretty(&icehouse_backend::openapi()).unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if std::env::var_os("ICEHOUSE_UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
        return;
    }
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run with ICEHOUSE_UPDATE_OPENAPI=1 (or `icehouse openapi`) and commit it"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn served_spec_lists_every_route(pool: PgPool) {
    let app = spawn(pool).await;
    let r = app.get("/api/v1/openapi.json", "").await;
    assert_eq!(r.status, StatusCode::OK);
    let paths = r.body["paths"].as_object().unwrap();
    for p in [
        "/api/v1/auth/signup",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/users",
        "/api/v1/users/{user_id}",
        "/api/v1/invitations",
        "/api/v1/invitations/{invitation_id}",
        "/api/v1/invitations/accept",
        "/api/v1/me/password",
        "/api/v1/auth/signup/confirm",
        "/api/v1/auth/password-reset",
        "/api/v1/auth/password-reset/confirm",
        "/api/v1/api-tokens",
        "/api/v1/api-tokens/{token_id}",
        "/api/v1/connections",
        "/api/v1/connections/{connection_id}",
        "/api/v1/connections/{connection_id}/test",
        "/api/v1/connections/{connection_id}/topics",
        "/api/v1/destinations/{destination_id}",
        "/api/v1/pipelines/{pipeline_id}/pause",
        "/api/v1/pipelines/{pipeline_id}/resume",
        "/api/v1/audit",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the spec");
    }
    assert!(r.body["components"]["securitySchemes"]["bearer"].is_object());
}

/// The statuses every guarded route shares are added by rule, pointing at the
/// one problem response; a status a route documents itself keeps its words.
#[test]
fn shared_statuses_are_documented_once_by_rule() {
    let spec = serde_json::to_value(icehouse_backend::openapi()).unwrap();
    let responses = |path: &str, method: &str| spec["paths"][path][method]["responses"].clone();
    let codes = |path: &str, method: &str| -> Vec<String> {
        responses(path, method).as_object().unwrap().keys().cloned().collect()
    };
    let problem = "#/components/responses/Problem";
    assert_eq!(
        spec["components"]["responses"]["Problem"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );

    // A protected create with a body: its own 403 and 409, the shared rest.
    assert_eq!(codes("/api/v1/connections", "post"), ["201", "400", "401", "403", "409", "413", "415", "422"]);
    assert_eq!(responses("/api/v1/connections", "post")["415"]["$ref"], problem);
    // A protected list with a query; a protected read by id.
    assert_eq!(codes("/api/v1/connections", "get"), ["200", "400", "401", "422"]);
    assert_eq!(codes("/api/v1/connections/{connection_id}", "get"), ["200", "401", "404"]);
    // Public routes answer no 401 unless they say so themselves.
    assert_eq!(codes("/api/v1/auth/signup", "post"), ["201", "202", "400", "409", "413", "415", "422", "429", "503"]);
    assert_eq!(responses("/api/v1/auth/login", "post")["401"]["description"], "Wrong email or password");
    assert_eq!(codes("/healthz", "get"), ["200"]);
}
