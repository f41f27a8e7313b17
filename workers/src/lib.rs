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

/// Connects to Postgres (a system login, see [`check_role`]) and brings the
/// schema up to date.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    use anyhow::Context;
    let pool = pool(url, max_connections).await?;
    check_role(&pool, false).await?;
    MIGRATOR.run(&pool).await.context("running migrations")?;
    Ok(pool)
}

/// Refuses a database role that row-level security does not hold (a
/// superuser, a BYPASSRLS role), and one on the wrong side of the wall: a
/// pool for `tenant` requests must be a member of `icehouse_tenant`, a
/// system pool must not be.
pub async fn check_role(pool: &PgPool, tenant: bool) -> anyhow::Result<()> {
    // NULL while the role icehouse_tenant does not exist (the migrations say how to make it).
    let (name, superuser, bypass, is_tenant): (String, bool, bool, Option<bool>) = sqlx::query_as(
        "SELECT rolname::text, rolsuper, rolbypassrls,
                (SELECT pg_has_role(current_user, t.oid, 'MEMBER') FROM pg_roles t WHERE t.rolname = 'icehouse_tenant')
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    let is_tenant = is_tenant.unwrap_or(false);
    let setting = if tenant { "database.tenant_url" } else { "database.url" };
    if superuser || bypass {
        let what = if superuser { "a superuser" } else { "BYPASSRLS" };
        anyhow::bail!(
            "{setting}: the role `{name}` is {what}, which row-level security does not hold; \
             use a role without SUPERUSER and BYPASSRLS (docs/operations.md)"
        );
    }
    match (tenant, is_tenant) {
        (true, false) => anyhow::bail!(
            "{setting}: the role `{name}` is not a member of icehouse_tenant, so tenant requests could act \
             as system code (docs/operations.md)"
        ),
        (false, true) => {
            anyhow::bail!("{setting}: the role `{name}` is a member of icehouse_tenant, which cannot run system code")
        }
        _ => Ok(()),
    }
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
