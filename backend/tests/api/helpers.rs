//! A real server on port 0 over a fresh database (one per test, from
//! `#[sqlx::test]`), and a small client that speaks to it like an integrator.

use std::net::SocketAddr;

use base64::Engine;
use icehouse_backend::config::Config;
use icehouse_backend::state::AppState;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

pub const JWT_SECRET: [u8; 32] = [42u8; 32];

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub pool: PgPool,
    /// The server's tenant-login pool, closed when the test ends: sqlx's
    /// test harness drops the database then, which waits for its sessions.
    tenant: PgPool,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let tenant = self.tenant.clone();
        tokio::spawn(async move { tenant.close().await });
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// The `field` of each entry in a problem's `errors`.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| a.iter().map(|e| e["field"].as_str().unwrap_or_default().to_string()).collect())
            .unwrap_or_default()
    }

    #[track_caller]
    pub fn assert_problem(&self, status: u16, field: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(self.content_type, "application/problem+json", "body: {}", self.text);
        assert_eq!(self.body["status"], status);
        assert!(self.body["type"].as_str().unwrap().starts_with("/problems/"));
        assert!(self.body["error_id"].is_string());
        if let Some(field) = field {
            assert!(self.fields().iter().any(|f| f == field), "expected field {field} in {}", self.text);
        }
    }
}

pub fn test_config() -> Config {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut config = Config::default();
    config.auth.jwt_secret = Some(b64.encode(JWT_SECRET));
    config.secrets.master_key = Some(b64.encode([9u8; 32]));
    config.kafka.probe_timeout_ms = 4000;
    config.database.max_connections = 8;
    config.http.max_body_bytes = 64 * 1024;
    // As `icehouse dev`: local warehouses anywhere, S3 with the host's credentials.
    config.destinations.for_dev();
    // Tenants at once; tests of verified sign-up set it back.
    config.auth.for_dev();
    // Loopback and private networks, where the test brokers are.
    config.egress.for_dev();
    config
}

pub async fn spawn(pool: PgPool) -> TestApp {
    spawn_with(pool, test_config()).await
}

/// A pool on the test's database under the tenant login (what `serve`
/// takes from `database.tenant_url`; scripts/lib.sh creates the login and
/// exports ICEHOUSE_TENANT_DATABASE_URL).
pub async fn tenant_pool(pool: &PgPool) -> PgPool {
    let url = std::env::var("ICEHOUSE_TENANT_DATABASE_URL")
        .expect("ICEHOUSE_TENANT_DATABASE_URL is not set (scripts/lib.sh ensure_postgres exports it)");
    // postgres://user:password@host:port/db: only the login is taken.
    let userinfo = url.split_once("://").and_then(|(_, rest)| rest.split_once('@')).map(|(u, _)| u).unwrap();
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let options = (*pool.connect_options()).clone().username(user).password(password);
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .idle_timeout(std::time::Duration::from_secs(1))
        .connect_with(options)
        .await
        .unwrap()
}

pub async fn spawn_with(pool: PgPool, config: Config) -> TestApp {
    let http = config.http.clone();
    let tenant = tenant_pool(&pool).await;
    let state = AppState::new(pool.clone(), tenant.clone(), config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let router = icehouse_backend::router(state);
        icehouse_backend::serve::serve(listener, router, &http, std::future::pending()).await.unwrap()
    });
    TestApp { addr, http: icehouse_e2e::client(), pool, tenant }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        finish(req.send().await.unwrap()).await
    }

    /// Sends a raw body with a content type, for malformed input.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Resp {
        let mut req = self.http.request(method, self.url(path)).header("content-type", content_type).body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        finish(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Signs up a new tenant; returns the token response.
    pub async fn signup(&self, tenant: &str, email: &str) -> Value {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/signup",
                None,
                Some(json!({"tenant_name": tenant, "email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body
    }

    /// Invites `email` with a role (as `admin_token`); returns the invitation's token.
    pub async fn invite(&self, admin_token: &str, email: &str, role: &str) -> String {
        let r = self.post("/api/v1/invitations", admin_token, json!({"email": email, "role": role})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["token"].as_str().unwrap().to_string()
    }

    /// Accepts an invitation without a session, with `password`.
    pub async fn accept(&self, invitation: &str, password: &str) -> Resp {
        let body = json!({"token": invitation, "password": password});
        self.call(Method::POST, "/api/v1/invitations/accept", None, Some(body)).await
    }

    /// Adds a member with a role (invited by `admin_token`, accepted with
    /// [`PASSWORD`]); returns their access token.
    pub async fn member(&self, admin_token: &str, email: &str, role: &str) -> String {
        let invitation = self.invite(admin_token, email, role).await;
        let r = self.accept(&invitation, PASSWORD).await;
        assert!(r.status.is_success(), "{}", r.text);
        token(&r.body)
    }

    pub async fn login(&self, email: &str) -> Value {
        let r = self
            .call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": email, "password": PASSWORD})))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body
    }

    pub async fn count(&self, table: &str) -> i64 {
        // Counted as the table owner with RLS switched to system mode.
        let mut tx = icehouse_backend::db::begin_system(&self.pool).await.unwrap();
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        n
    }
}

async fn finish(resp: reqwest::Response) -> Resp {
    let status = resp.status();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, content_type, body, text }
}

pub const PASSWORD: &str = "correct horse battery staple";

pub fn token(v: &Value) -> String {
    v["access_token"].as_str().unwrap().to_string()
}

pub fn connection_body(name: &str) -> Value {
    json!({"name": name, "bootstrap_servers": ["127.0.0.1:9092"]})
}

/// A destination in a fresh local warehouse directory.
pub fn destination_body(name: &str) -> Value {
    let root = std::env::temp_dir().join(format!("icehouse-test-{}", uuid::Uuid::new_v4().simple()));
    json!({"name": name, "warehouse_uri": format!("file://{}", root.display()), "default_namespace": "raw"})
}

pub fn pipeline_body(name: &str, connection: &str, destination: &str, table: &str) -> Value {
    json!({
        "name": name,
        "connection_id": connection,
        "topic": "orders",
        "destination_id": destination,
        "table_name": table,
        "mapping": {"columns": [
            {"name": "order_id", "type": "long", "path": "$.id", "nullable": false},
            {"name": "placed_at", "type": "timestamptz", "path": "$.placed_at"},
            {"name": "amount", "type": "decimal(12,2)", "path": "$.amount"}
        ]},
        "partition_by": [{"column": "placed_at", "transform": "day"}]
    })
}

/// Creates a connection, a destination and a pipeline; returns their ids.
pub async fn seed(app: &TestApp, token: &str) -> (String, String, String) {
    let c = app.post("/api/v1/connections", token, connection_body("kafka")).await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    let d = app.post("/api/v1/destinations", token, destination_body("lake")).await;
    assert_eq!(d.status, StatusCode::CREATED, "{}", d.text);
    let (cid, did) = (c.body["id"].as_str().unwrap().to_string(), d.body["id"].as_str().unwrap().to_string());
    let p = app.post("/api/v1/pipelines", token, pipeline_body("orders", &cid, &did, "orders")).await;
    assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
    (cid, did, p.body["id"].as_str().unwrap().to_string())
}
