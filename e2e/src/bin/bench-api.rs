//! Latency of `GET /api/v1/pipelines` under 200 concurrent clients, against
//! the real `icehouse serve` process and a fresh database, beside a reference
//! measured in the same run: `GET /healthz` (the same HTTP stack and load
//! generator, with no authentication and no database).
//!
//! Run: `scripts/bench-api.sh` (or `cargo run --release -p icehouse-e2e --bin
//! bench-api` with `DATABASE_URL` set and the workspace binaries built).
//! The load generator shares the machine's cores with the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use icehouse_e2e::{test_env, Server, TestDb};
use serde_json::{json, Value};

const CONCURRENCY: usize = 200;
const REQUESTS_PER_CLIENT: usize = 50;
const PIPELINES: usize = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = TestDb::create("icehouse_bench").await?;
    let server = Server::start("serve", &test_env(&db.url), &std::env::temp_dir())?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build()?;

    let signup: Value = http
        .post(server.url("/api/v1/auth/signup"))
        .json(&json!({"tenant_name": "Bench", "email": "bench@bench.test", "password": "bench password 123"}))
        .send()
        .await?
        .json()
        .await?;
    let token = signup["access_token"].as_str().context("signup failed")?.to_string();
    let post = |path: &str, body: Value| http.post(server.url(path)).bearer_auth(&token).json(&body).send();
    let c: Value = post("/api/v1/connections", json!({"name": "k", "bootstrap_servers": ["127.0.0.1:9092"]}))
        .await?
        .json()
        .await?;
    let d: Value =
        post("/api/v1/destinations", json!({"name": "d", "warehouse_uri": format!("file://{}", std::env::temp_dir().join("icehouse-bench-api-wh").display())})).await?.json().await?;
    for i in 0..PIPELINES {
        let body = json!({
            "name": format!("p{i}"), "connection_id": c["id"], "topic": format!("t{i}"), "destination_id": d["id"],
            "table_name": format!("t{i}"),
            "mapping": {"columns": [
                {"name": "id", "type": "long", "path": "$.id", "nullable": false},
                {"name": "at", "type": "timestamptz", "path": "$.at"},
                {"name": "payload", "type": "string", "path": "$.payload"}
            ]},
            "partition_by": [{"column": "at", "transform": "day"}]
        });
        let r = post("/api/v1/pipelines", body).await?;
        anyhow::ensure!(r.status() == 201, "creating a pipeline: {}", r.text().await?);
    }

    println!(
        "bench-api: {CONCURRENCY} concurrent clients × {REQUESTS_PER_CLIENT} requests, {} cores, server and load generator on the same machine",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    // Warm both paths (connections, caches) before measuring.
    run(&http, &server.url("/healthz"), None, 20, 10).await?;
    run(&http, &server.url("/api/v1/pipelines"), Some(&token), 20, 10).await?;

    let reference = run(&http, &server.url("/healthz"), None, CONCURRENCY, REQUESTS_PER_CLIENT).await?;
    let measured = run(&http, &server.url("/api/v1/pipelines"), Some(&token), CONCURRENCY, REQUESTS_PER_CLIENT).await?;
    println!("{:<44} {:>8} {:>8} {:>8} {:>8} {:>10}", "", "p50 ms", "p90 ms", "p99 ms", "max ms", "req/s");
    reference.print("reference: GET /healthz (no auth, no DB)");
    measured.print(&format!("GET /api/v1/pipelines ({PIPELINES} items, JWT)"));
    println!(
        "ratio p50 {:.1}x, p99 {:.1}x the reference",
        measured.p(0.50) / reference.p(0.50),
        measured.p(0.99) / reference.p(0.99)
    );

    drop(server);
    db.drop_now().await?;
    Ok(())
}

struct Stats {
    latencies_ms: Vec<f64>,
    wall: Duration,
}

impl Stats {
    fn p(&self, q: f64) -> f64 {
        let i = ((self.latencies_ms.len() as f64 - 1.0) * q).round() as usize;
        self.latencies_ms[i]
    }

    fn print(&self, label: &str) {
        println!(
            "{label:<44} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.0}",
            self.p(0.50),
            self.p(0.90),
            self.p(0.99),
            self.latencies_ms.last().copied().unwrap_or_default(),
            self.latencies_ms.len() as f64 / self.wall.as_secs_f64()
        );
    }
}

async fn run(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    clients: usize,
    per_client: usize,
) -> anyhow::Result<Stats> {
    let url = Arc::new(url.to_string());
    let token = token.map(|t| Arc::new(t.to_string()));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                let mut req = http.get(url.as_str());
                if let Some(token) = &token {
                    req = req.bearer_auth(token.as_str());
                }
                let resp = req.send().await?;
                anyhow::ensure!(resp.status().is_success(), "status {}", resp.status());
                resp.bytes().await?;
                out.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(out)
        }));
    }
    let mut latencies_ms = Vec::with_capacity(clients * per_client);
    for task in tasks {
        latencies_ms.extend(task.await??);
    }
    let wall = started.elapsed();
    latencies_ms.sort_by(|a, b| a.total_cmp(b));
    Ok(Stats { latencies_ms, wall })
}
