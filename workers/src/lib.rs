//! The Icehouse data plane: every byte of Kafka, Parquet and Iceberg passes here.
//!
//! Kafka (client settings, the connection probe, the consumer), decoding of
//! messages by their format and mapping them to rows, the Iceberg catalog on
//! Postgres and its fenced commit,
//! and the worker runtime that claims pipelines under leases and ingests them
//! exactly once.
//!
//! What the control plane may use: [`coord`] (the coordination protocol in
//! Postgres: workers, slices, leases, offsets, typed states, the task
//! queue), [`iceberg`] (the catalog, including creating a pipeline's
//! tables), [`kafka`] (connection tests, sampling, watermarks), [`mapping`]
//! (schemas, suggestion), [`formats`] (decoders), [`config`] (the data
//! plane's settings), [`egress`] (where a tenant's connections may go),
//! [`secrets`] and the migrations.
//! Of [`runtime`], only [`runtime::run_worker`], to run a worker in-process.

pub mod config;
pub mod coord;
pub mod egress;
pub mod formats;
pub mod iceberg;
pub mod kafka;
pub mod mapping;
pub mod runtime;
pub mod secrets;

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// The database schema (the repository's `migrations/`), embedded.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connects to Postgres and brings the schema up to date.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    use anyhow::Context;
    let pool = pool(url, max_connections).await?;
    MIGRATOR.run(&pool).await.context("running migrations")?;
    Ok(pool)
}

/// A pool of its own, without running the migrations (for a second pool of
/// the same process: the scheduler's, the in-process worker's).
pub async fn pool(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    use anyhow::Context;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .context("connecting to Postgres (database.url)")
}
