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
